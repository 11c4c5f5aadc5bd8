"""The committee's BFT round as a pure state machine: `Round.handle(event) -> list[Action]`.

A round runs one or more *agreements* over one fixed membership (README: the round):

- a block round: one agreement on the block hash of a height;
- a task round: for attempt a = 0, 1, ...: an *executor agreement* (instance 2a) picks the
  executor among the ranked candidates, then a *result agreement* (instance 2a+1) decides either
  the executor's report (the result certificate: RESULT_ACCEPT votes of more than two thirds of the
  weight) or the executor's rejection (RESULT_REJECT votes), which hands the task to the next
  candidate in attempt a+1, with the rejection certificate as evidence.

Every agreement runs views. View v has one proposer; its phases are PROPOSE -> PREPARE -> COMMIT,
and VIEW_CHANGE when a timer fires. Votes are weighted; a quorum is more than two thirds of the
weight. Votes go to the view's proposer, which aggregates them into certificates and broadcasts
them (messages per view are linear in the membership, not quadratic). A prepare certificate locks
its value: a member prepares a value other than its lock's only if the proposal carries a prepare
certificate at least as recent as the lock. A commit certificate decides. On a timeout a member
broadcasts NEW_VIEW with its highest prepare certificate; a quorum of NEW_VIEWs (a view
certificate) starts the next view, whose proposer re-proposes the highest locked value it learned
(or, unlocked, its own value: for a task that means the next-ranked candidate proposes itself).

Everything that happens is in the transition table `TRANSITIONS` and the `_on_*` methods below.
The core never reads the clock or does I/O: time arrives as TimerFired events, output leaves as
actions. Invalid input from a peer becomes a ReportMisbehaviour action; local misuse raises
EventNotAllowed.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Final

from committee.errors import PENALTY_INVALID, PENALTY_PROVABLE, ConfigError, EventNotAllowed
from committee.events import (
    Action,
    Broadcast,
    Decide,
    DecisionKind,
    Event,
    GiveUp,
    LocalCredential,
    LocalVerdict,
    MessageReceived,
    Misbehaviour,
    NeedVerdict,
    Phase,
    ReportMisbehaviour,
    Send,
    StartTimer,
    TimerFired,
)
from committee.messages import (
    SUBJECT_LEN,
    CertificateMessage,
    Message,
    NewView,
    Proposal,
    RejectReason,
    VoteMessage,
    decode_message,
    encode_message,
)
from ledger.certificates import (
    NO_VALUE,
    CertificateError,
    InvalidVoteSignature,
    Membership,
    NotAMember,
    QuorumCertificate,
    UnverifiedVote,
    VerifiedCertificate,
    Vote,
    VoteKind,
    WrongWeight,
    block_round_id,
    build_certificate,
    conflicting,
    make_evidence,
    result_round_id,
    sign_vote,
    task_round_id,
    verify_certificate,
)
from ledger.errors import DecodeError
from ledger.signing import IdentityKey

# NEW_VIEW votes are kept for views up to this far ahead of the current one: enough to follow
# members that timed out several times while this node was slow, small enough that a member
# spamming far-future views costs at most this many entries.
FUTURE_VIEWS_MAX: Final = 32
# A member that is behind gets the certificate that moved the others on; this many replies per
# member and agreement cover lost replies without letting a peer make us send without bound.
REPLIES_PER_PEER_MAX: Final = 8
# Distinct reports a node may judge in one attempt: an honest executor signs one; more means the
# shell is feeding the core something other than this attempt's report.
VERDICTS_PER_ATTEMPT_MAX: Final = 4
# Verified-signature cache: a round sees a few votes per member per view; beyond this the cache is
# cleared (a cache miss only costs a signature check).
SIGNATURE_CACHE_MAX: Final = 8192
# Messages that arrive before the round starts are kept (members start a few milliseconds apart)
# up to this many per member.
EARLY_MESSAGES_PER_MEMBER: Final = 4
# Attempts of a task: each rejected executor costs one; past this the task is left to expire.
ATTEMPTS_MAX_DEFAULT: Final = 4
# Timeouts double per view up to 2^BACKOFF_VIEWS_MAX times their base, so that views eventually
# outlast any finite network delay (liveness after the network stabilises).
BACKOFF_VIEWS_MAX: Final = 6
TIMEOUT_MS_MAX: Final = 24 * 3600 * 1000


class RoundKind(enum.Enum):
    """What the round decides."""

    BLOCK = "block"
    TASK = "task"


class _Stage(enum.Enum):
    BLOCK = "block"
    EXECUTOR = "executor"
    RESULT = "result"


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """Timeouts of the round, in milliseconds, for view 0 (they double per view, see
    BACKOFF_VIEWS_MAX). Raises ConfigError if any is outside [1, TIMEOUT_MS_MAX] or if the
    proposer's collection window is not shorter than the proposal timeout."""

    propose_ms: int = 3000  # a member waits this long for a view's proposal
    collect_ms: int = 300  # a new view's proposer waits this long for the stragglers' NEW_VIEWs
    prepare_ms: int = 2000  # wait for the prepare certificate after preparing
    commit_ms: int = 2000  # wait for the decision after committing
    view_change_retry_ms: int = 2000  # resend NEW_VIEW while no view certificate forms
    execute_ms: int = 60_000  # the executor's deadline to propose its report (view 0 of a result)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or not 1 <= value <= TIMEOUT_MS_MAX:
                raise ConfigError(
                    f"Timing.{field.name} = {value!r}: must be an int in [1, {TIMEOUT_MS_MAX}]"
                )
        if self.collect_ms >= self.propose_ms:
            raise ConfigError(
                f"Timing.collect_ms = {self.collect_ms} must be below propose_ms = "
                f"{self.propose_ms}: members must not time out while the proposer collects"
            )

    def scaled(self, base_ms: int, view: int) -> int:
        """`base_ms` doubled `view` times, capped."""
        return min(base_ms << min(view, BACKOFF_VIEWS_MAX), TIMEOUT_MS_MAX)


@dataclasses.dataclass(frozen=True)
class RoundConfig:
    """Everything fixed when a round starts. Build it with `for_task` or `for_block`.

    Raises ConfigError if the key is not a member, the ranking is not a permutation of the member
    indices, the subject is not 32 bytes, or attempts_max is below 1."""

    kind: RoundKind
    subject: bytes  # task id, or height_subject(height)
    membership: Membership
    ranking: tuple[int, ...]  # member indices, best candidate (proposer) first
    key: IdentityKey
    timing: Timing = Timing()
    attempts_max: int = ATTEMPTS_MAX_DEFAULT
    height: int | None = None  # block rounds

    def __post_init__(self) -> None:
        if len(self.subject) != SUBJECT_LEN:
            raise ConfigError(f"RoundConfig.subject must be {SUBJECT_LEN} bytes")
        if sorted(self.ranking) != list(range(len(self.membership))):
            raise ConfigError("RoundConfig.ranking must list every member index exactly once")
        if self.key.public not in self.membership:
            raise ConfigError("RoundConfig.key is not a member of the round's membership")
        if not 1 <= self.attempts_max <= 1 << 16:
            raise ConfigError(f"RoundConfig.attempts_max = {self.attempts_max}: use 1..65536")
        if self.kind is RoundKind.BLOCK and (self.height is None or self.attempts_max != 1):
            raise ConfigError("a block round needs its height and exactly one attempt")

    @classmethod
    def for_task(
        cls,
        task_id: bytes,
        membership: Membership,
        ranking: tuple[int, ...],
        key: IdentityKey,
        *,
        timing: Timing | None = None,
        attempts_max: int = ATTEMPTS_MAX_DEFAULT,
    ) -> RoundConfig:
        """A task round: `membership` is the task's roster, `ranking` its members by ascending
        VRF priority (`credentials.roster` computes both)."""
        return cls(
            RoundKind.TASK, task_id, membership, ranking, key, timing or Timing(), attempts_max
        )

    @classmethod
    def for_block(
        cls,
        height: int,
        validators: Membership,
        key: IdentityKey,
        *,
        timing: Timing | None = None,
    ) -> RoundConfig:
        """A block round over the validator set; proposers rotate with the height."""
        n = len(validators)
        ranking = tuple((height + i) % n for i in range(n))
        subject = height.to_bytes(SUBJECT_LEN, "big")
        return cls(
            RoundKind.BLOCK, subject, validators, ranking, key, timing or Timing(), 1, height
        )


@dataclasses.dataclass
class _Agreement:
    """State of one agreement (one context). Reset per view where noted."""

    index: int  # instance number (timers carry it)
    stage: _Stage
    attempt: int
    context: bytes
    proposers: tuple[int, ...]  # member indices; view v's proposer is proposers[v % len]
    start_certificate: QuorumCertificate | None
    view: int = 0
    high: VerifiedCertificate | None = None  # highest prepare certificate known (the lock)
    decided: VerifiedCertificate | None = None
    # per view:
    proposal: UnverifiedVote | None = None  # the first valid proposal of this view
    pending: Proposal | None = None  # a proposal waiting for this node's verdict
    proposed: bytes | None = None  # what this node proposed (as the view's proposer)
    prepares: dict[int, Vote] = dataclasses.field(default_factory=dict)
    commits: dict[int, Vote] = dataclasses.field(default_factory=dict)
    committed: bool = False  # this node sent its commit-class vote in this view
    view_certificate: QuorumCertificate | None = None
    my_new_view: bytes | None = None  # wire bytes, resent on VIEW_CHANGE timeouts
    resends: int = 0  # times my_new_view was resent in this view (each wait doubles)
    my_vote: bytes | None = None  # wire bytes of our last vote sent to the proposer
    extended: Phase | None = None  # the phase whose timeout we extended once (see _on_timer)
    # across views (pruned below the current view):
    entered: QuorumCertificate | None = None  # view certificate of the highest view entered
    new_views: dict[int, dict[int, Vote]] = dataclasses.field(default_factory=dict)
    seen: dict[tuple[int, int, int], UnverifiedVote] = dataclasses.field(default_factory=dict)
    reported: set[tuple[int, int, int]] = dataclasses.field(default_factory=set)

    def proposer(self, view: int) -> int:
        return self.proposers[view % len(self.proposers)]

    def reset_view(self, view: int) -> None:
        self.view = view
        self.proposal = self.pending = self.proposed = None
        self.prepares = {}
        self.commits = {}
        self.committed = False
        self.view_certificate = None
        self.my_new_view = None
        self.resends = 0
        self.my_vote = None
        self.extended = None
        self.new_views = {v: votes for v, votes in self.new_views.items() if v >= view}
        self.seen = {k: vote for k, vote in self.seen.items() if k[1] >= view}
        self.reported = {k for k in self.reported if k[1] >= view}


# How each phase treats each event type. "handle": dispatched to the _on_* method; "reject": local
# misuse, raises EventNotAllowed; "buffer": kept until the round starts; "stale": ignored (an
# input that arrives after the round moved on is normal in an asynchronous network).
TRANSITIONS: Final[dict[Phase, dict[type, str]]] = {
    Phase.IDLE: {
        LocalCredential: "handle",
        MessageReceived: "buffer",
        TimerFired: "reject",  # no timer was ever started
        LocalVerdict: "reject",  # no executor can exist before the round starts
    },
    **{
        phase: {
            LocalCredential: "reject",  # started twice
            MessageReceived: "handle",
            TimerFired: "handle",  # stale timers are dropped inside
            LocalVerdict: "handle",  # a verdict for a future attempt is rejected inside
        }
        for phase in (Phase.PROPOSE, Phase.PREPARE, Phase.COMMIT, Phase.VIEW_CHANGE)
    },
    Phase.DONE: {
        LocalCredential: "reject",
        MessageReceived: "handle",  # laggards get the certificates that ended the round
        TimerFired: "stale",
        LocalVerdict: "stale",
    },
}


class Round:
    """One member's view of one round. Feed it events; execute the actions it returns in order."""

    def __init__(self, config: RoundConfig) -> None:
        self.config = config
        self.membership = config.membership
        self.me = self.membership.index_of(config.key.public)
        self.identity = config.key.public
        self.phase = Phase.IDLE
        self.my_value: bytes | None = None
        self.rejected: list[int] = []  # executors rejected in earlier attempts, in order
        self.verdicts: dict[bytes, tuple[bool, RejectReason]] = {}  # this attempt's, by report
        self.asked: set[bytes] = set()  # reports of this attempt we asked verdicts on
        self.history: dict[bytes, QuorumCertificate] = {}  # decided contexts -> decision
        self.replies: dict[tuple[bytes, int], int] = {}
        self.cache: set[UnverifiedVote] = set()
        self.early: list[MessageReceived] = []
        self.outcome: Decide | GiveUp | None = None
        first = _Stage.BLOCK if config.kind is RoundKind.BLOCK else _Stage.EXECUTOR
        self.ag = self._agreement(first, 0, None)

    # ------------------------------------------------------------------------------ public API

    @property
    def instance(self) -> int:
        return self.ag.index

    @property
    def view(self) -> int:
        return self.ag.view

    @property
    def attempt(self) -> int:
        return self.ag.attempt

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to execute, in order.

        Raises EventNotAllowed for local misuse (an event the current phase does not accept, see
        TRANSITIONS). Never raises on peer input: that becomes ReportMisbehaviour actions."""
        rule = TRANSITIONS[self.phase].get(type(event))
        if rule is None:
            raise EventNotAllowed(f"{type(event).__name__} is not a round event")
        if rule == "reject":
            raise EventNotAllowed(f"{type(event).__name__} is not allowed in phase {self.phase}")
        if rule == "stale":
            return []
        if rule == "buffer":
            assert isinstance(event, MessageReceived)
            if len(self.early) < EARLY_MESSAGES_PER_MEMBER * len(self.membership):
                self.early.append(event)
            return []
        handler: Callable[[Event], list[Action]] = getattr(self, _HANDLERS[type(event)])
        return handler(event)

    # ------------------------------------------------------------------------------- start

    def _on_start(self, event: Event) -> list[Action]:
        assert isinstance(event, LocalCredential)
        if event.value is not None and len(event.value) != 32:
            raise EventNotAllowed("LocalCredential.value must be 32 bytes or None")
        if self.config.kind is RoundKind.TASK and event.value not in (None, self.identity):
            raise EventNotAllowed("in a task round a node can only propose itself as executor")
        cred = event.credential
        if cred is not None:
            member = self.membership.members[self.me]
            if cred.operator != self.identity or cred.weight != member.weight:
                raise EventNotAllowed("the credential is not this node's roster entry")
            if member.credential is not None and member.credential != cred.record.digest():
                raise EventNotAllowed("the credential differs from the one on the roster")
        self.my_value = event.value
        out = self._enter_view(0, None)
        for early in self.early:
            out += self._on_message(early)
        self.early = []
        return out

    # ------------------------------------------------------------------------------- timers

    def _on_timer(self, event: Event) -> list[Action]:
        assert isinstance(event, TimerFired)
        ag = self.ag
        if (event.instance, event.view, event.phase) != (ag.index, ag.view, self.phase):
            return []  # a timer of a view, phase or agreement we already left
        if self.phase is Phase.VIEW_CHANGE:
            # No view certificate yet (the new proposer is down, slow, or missed NEW_VIEWs):
            # resend NEW_VIEW to every member, so that they can form the certificate without
            # the proposer, waiting twice as long each time: when members time out because the
            # network or their machines are overloaded, resending at a fixed pace adds load
            # until nothing gets through (a storm seen with 100 real peers). Every member, not
            # only those not heard from: holding a member's NEW_VIEW says nothing of whether ours
            # reached it, and a quorum may need every honest member (10,000-seed sweep, seeds
            # 6321 and 8842 with lossy links). (A node's shell may skip the members that
            # acknowledged these same bytes: p2p/roles/operator.py.)
            assert ag.my_new_view is not None
            ag.resends += 1
            wait = self.config.timing.scaled(
                self.config.timing.view_change_retry_ms, ag.view + ag.resends
            )
            return [Broadcast(ag.my_new_view), StartTimer(ag.index, ag.view, self.phase, wait)]
        if self.phase in (Phase.PREPARE, Phase.COMMIT) and ag.extended is not self.phase:
            # The view is alive (a valid proposal, or a prepare certificate, came): before paying
            # for a view change (every member's NEW_VIEW to every other) wait once more, twice
            # as long, and send our vote again in case it was lost. At 300 real peers on two
            # cores most view changes began here, with the certificate on its way (round trips
            # of 1-3 s against 2-4 s phase timeouts), and NEW_VIEWs were 85-90 % of the
            # committee requests. A proposer that withholds certificates delays the view change
            # by one extension per phase.
            ag.extended = self.phase
            base = self.config.timing.prepare_ms
            if self.phase is Phase.COMMIT:
                base = self.config.timing.commit_ms
            proposer = self.membership.members[ag.proposer(ag.view)].identity
            out = [] if ag.my_vote is None else [Send(proposer, ag.my_vote)]
            return [*out, self._timer(2 * base)]
        if self.phase is Phase.PROPOSE and ag.proposer(ag.view) == self.me and ag.proposed is None:
            out = self._propose()  # the collection window (or the executor's deadline) ended
            if out:
                return out
            if ag.stage is _Stage.RESULT and ag.view > 0 and ag.extended is not Phase.PROPOSE:
                # Still verifying the executor's report (see _own_value): wait once for the
                # verdict rather than propose to reject an executor whose report we may be about
                # to accept; half of what is left of the members' proposal timeout, so that a
                # rejection proposed after the wait still reaches them in this view (a longer
                # wait livelocked a withholding executor's task through every view).
                ag.extended = Phase.PROPOSE
                timing = self.config.timing
                return [self._timer((timing.propose_ms - timing.collect_ms) // 2)]
        reason = RejectReason.NONE
        if ag.stage is _Stage.RESULT and ag.view == 0 and ag.proposal is None:
            reason = RejectReason.SILENT
        elif (
            ag.stage is _Stage.EXECUTOR
            and self.phase is Phase.PROPOSE
            and ag.proposer(ag.view) == self.me
            and ag.proposed is None
        ):
            reason = RejectReason.CANNOT_EXECUTE  # our collection window ended with no value
        return self._start_view_change(ag.view + 1, reason)

    # ------------------------------------------------------------------------------- verdicts

    def _on_verdict(self, event: Event) -> list[Action]:
        assert isinstance(event, LocalVerdict)
        if event.attempt < self.attempt:
            return []  # the attempt is over
        if event.attempt > self.attempt or self.config.kind is RoundKind.BLOCK:
            raise EventNotAllowed(f"no attempt {event.attempt} is running (now {self.attempt})")
        if len(event.report) != 32:
            raise EventNotAllowed("LocalVerdict.report must be a 32-byte digest")
        known = self.verdicts.get(event.report)
        if known is not None:
            if known[0] != event.accept:
                raise EventNotAllowed("two different verdicts on one report")
            return []
        if len(self.verdicts) >= VERDICTS_PER_ATTEMPT_MAX:
            raise EventNotAllowed(f"more than {VERDICTS_PER_ATTEMPT_MAX} reports in one attempt")
        self.verdicts[event.report] = (event.accept, event.reason)
        ag = self.ag
        if ag.stage is not _Stage.RESULT:
            return []  # kept for the result agreement
        if ag.pending is not None and ag.pending.vote.value == event.report:
            proposal, ag.pending = ag.pending, None
            return self._consider(proposal, None)
        if (
            self.phase is Phase.PROPOSE
            and ag.view > 0
            and ag.proposer(ag.view) == self.me
            and ag.proposed is None
            and ag.extended is Phase.PROPOSE
        ):
            return self._propose()  # the verdict this view's proposer waited for (_own_value)
        if (
            self.phase is Phase.PROPOSE
            and ag.view == 0
            and ag.proposer(0) == self.me
            and ag.proposed is None
        ):
            # The executor's own verdict: it proposes its report, or (it could not run the job)
            # the rejection of itself, which hands the task over without waiting for a timeout.
            return self._propose()
        return []

    # ------------------------------------------------------------------------------- messages

    def _on_message(self, event: Event) -> list[Action]:
        assert isinstance(event, MessageReceived)
        sender = event.sender
        if sender not in self.membership:
            return [self._misbehaviour(sender, Misbehaviour.NOT_A_MEMBER, "sender")]
        if sender == self.identity:
            return []  # our own broadcast looped back
        try:
            subject, message = decode_message(event.data)
        except DecodeError as exc:
            return [self._misbehaviour(sender, Misbehaviour.MALFORMED, str(exc))]
        if subject != self.config.subject:
            return [self._misbehaviour(sender, Misbehaviour.WRONG_SUBJECT, subject.hex()[:16])]
        context = _context_of(message)
        if context in self.history:
            # A NEW_VIEW for an agreement we decided: the sender missed the decision.
            return self._reply(sender, context) if isinstance(message, NewView) else []
        if context != self.ag.context:
            return self._maybe_next(sender, message)
        if self.phase is Phase.DONE:
            return []
        match message:
            case Proposal():
                return self._on_proposal(sender, message)
            case VoteMessage():
                return self._on_vote(sender, message)
            case CertificateMessage():
                return self._on_certificate(sender, message.certificate)
            case NewView():
                return self._on_new_view(sender, message)
        raise AssertionError("unreachable")  # pragma: no cover

    def _maybe_next(self, sender: bytes, message: Message) -> list[Action]:
        """A message for another agreement: the next one's proposal carries the certificate that
        ends ours (so a member that missed it catches up); anything else is ignored (it is either
        ahead of us, and will be resent, or for no agreement of this round)."""
        if not isinstance(message, Proposal) or message.start_certificate is None:
            return []
        start = message.start_certificate
        if start.context != self.ag.context or self.phase is Phase.DONE:
            return []
        out = self._on_certificate(sender, start)
        if message.vote.context == self.ag.context:
            out += self._on_proposal(sender, message)
        return out

    # --- proposals

    def _on_proposal(self, sender: bytes, p: Proposal) -> list[Action]:
        ag = self.ag
        vote = p.vote
        if vote.kind is not VoteKind.PROPOSE:
            return [self._misbehaviour(sender, Misbehaviour.UNEXPECTED_VOTE, "proposal kind")]
        checked = self._verify_vote(sender, vote, direct=True)
        if isinstance(checked, ReportMisbehaviour):
            return [checked]
        if checked.member != ag.proposer(vote.view):
            return [self._misbehaviour(sender, Misbehaviour.NOT_PROPOSER, f"view {vote.view}")]
        out = self._record(checked)
        if vote.view < ag.view or (
            vote.view == ag.view and self.phase is not Phase.VIEW_CHANGE and ag.proposal is not None
        ):
            return out  # stale, or a duplicate (equivocation was reported by _record)
        if vote.view > ag.view or self.phase is Phase.VIEW_CHANGE:
            tc = p.view_certificate
            if tc is None:
                return out  # can not join that view yet; NEW_VIEWs will bring us there
            verified = self._verify_cert(sender, tc, VoteKind.NEW_VIEW)
            if isinstance(verified, ReportMisbehaviour) or verified.view != vote.view:
                return [*out, self._misbehaviour(sender, Misbehaviour.BAD_CERTIFICATE, "view")]
            out += self._enter_view(vote.view, tc)
            if self.ag is not ag or ag.proposal is not None:
                return out  # entering the view decided or moved us (or we proposed it ourselves)
        justification: VerifiedCertificate | None = None
        if p.justification is not None:
            # A justification may even be from a later view than the proposal's (the proposer
            # learned it while behind); any prepare certificate is safe to lock on.
            just = self._verify_cert(sender, p.justification, VoteKind.PREPARE)
            if isinstance(just, ReportMisbehaviour) or just.value != vote.value:
                return [*out, self._misbehaviour(sender, Misbehaviour.BAD_CERTIFICATE, "justify")]
            justification = just
            self._raise_lock(just)
        elif not self._fresh_value_ok(vote.view, checked.member, vote.value):
            return [*out, self._misbehaviour(sender, Misbehaviour.INVALID_PROPOSAL, "value")]
        ag.proposal = vote
        return out + self._consider(p, justification)

    def _consider(self, p: Proposal, justification: VerifiedCertificate | None) -> list[Action]:
        """Prepare the current view's proposal if the lock and (for a result) the verdict allow."""
        ag = self.ag
        vote = p.vote
        if self.phase is not Phase.PROPOSE or vote.view != ag.view:
            return []
        lock = ag.high
        unlocked = (
            lock is None
            or lock.value == vote.value
            or (justification is not None and justification.view >= lock.view)
        )
        if not unlocked:
            return []  # locked on another value: let the view time out
        if justification is None and not (lock is not None and lock.value == vote.value):
            gate = self._gate(vote.value, vote.view, ag.proposer(vote.view))
            if gate is None:
                ag.pending = p
                if len(self.asked) < VERDICTS_PER_ATTEMPT_MAX:
                    self.asked.add(vote.value)
                executor = self.membership.members[ag.proposers[0]].identity
                return [NeedVerdict(ag.attempt, vote.value, executor)]
            if gate is not True:
                return self._start_view_change(ag.view + 1, gate)
        return self._prepare(vote.value)

    def _prepare(self, value: bytes) -> list[Action]:
        ag = self.ag
        vote = self._sign(VoteKind.PREPARE, ag.view, value)
        self.phase = Phase.PREPARE
        out: list[Action] = [self._timer(self.config.timing.prepare_ms)]
        return out + self._deliver_vote(vote)

    # --- votes

    def _on_vote(self, sender: bytes, m: VoteMessage) -> list[Action]:
        vote = m.vote
        ag = self.ag
        if vote.kind not in (VoteKind.PREPARE, self._commit_kind(vote.value)):
            return [self._misbehaviour(sender, Misbehaviour.UNEXPECTED_VOTE, vote.kind.name)]
        checked = self._verify_vote(sender, vote, direct=True)
        if isinstance(checked, ReportMisbehaviour):
            return [checked]
        out = self._record(checked)
        if vote.view != ag.view or ag.proposer(ag.view) != self.me or ag.proposed is None:
            return out  # not ours to collect (late, early, or sent to a non-proposer)
        if vote.value != ag.proposed:
            return [*out, self._misbehaviour(sender, Misbehaviour.UNEXPECTED_VOTE, "value")]
        return out + self._collect(checked)

    def _deliver_vote(self, vote: Vote) -> list[Action]:
        """Send our vote to the view's proposer (or count it, if we are the proposer)."""
        ag = self.ag
        proposer = ag.proposer(ag.view)
        if proposer == self.me:
            return self._collect(vote)
        to = self.membership.members[proposer].identity
        ag.my_vote = self._wire(VoteMessage(vote.record))
        return [Send(to, ag.my_vote)]

    def _collect(self, vote: Vote) -> list[Action]:
        """As the view's proposer: count a vote; broadcast a certificate when a quorum forms."""
        ag = self.ag
        box = ag.prepares if vote.kind is VoteKind.PREPARE else ag.commits
        if vote.member in box:
            return []
        box[vote.member] = vote
        if not self.membership.is_quorum(sum(v.weight for v in box.values())):
            return []
        already = ag.high if vote.kind is VoteKind.PREPARE else ag.decided
        if already is not None and already.view == ag.view and already.kind == vote.kind:
            return []  # certificate already formed in this view
        cert = build_certificate(box.values(), self.membership)
        out: list[Action] = [Broadcast(self._wire(CertificateMessage(cert.certificate)))]
        return out + self._apply_certificate(cert)

    # --- certificates

    def _on_certificate(self, sender: bytes, cert: QuorumCertificate) -> list[Action]:
        verified = self._verify_cert(sender, cert, None)
        if isinstance(verified, ReportMisbehaviour):
            return [verified]
        if verified.kind is VoteKind.PROPOSE or (
            verified.kind not in (VoteKind.PREPARE, VoteKind.NEW_VIEW)
            and verified.kind is not self._commit_kind(verified.value)
        ):
            return [self._misbehaviour(sender, Misbehaviour.BAD_CERTIFICATE, "kind")]
        return self._apply_certificate(verified)

    def _apply_certificate(self, cert: VerifiedCertificate) -> list[Action]:
        ag = self.ag
        if cert.kind is VoteKind.NEW_VIEW:
            if cert.view > ag.view or (cert.view == ag.view and self.phase is Phase.VIEW_CHANGE):
                return self._enter_view(cert.view, cert.certificate)
            return []
        if cert.kind is VoteKind.PREPARE:
            self._raise_lock(cert)
            waiting = self.phase in (Phase.PROPOSE, Phase.PREPARE)
            if cert.view != ag.view or ag.committed or not waiting:
                return []
            ag.committed = True
            self.phase = Phase.COMMIT
            vote = self._sign(self._commit_kind(cert.value), ag.view, cert.value)
            out: list[Action] = [self._timer(self.config.timing.commit_ms)]
            return out + self._deliver_vote(vote)
        return self._decide(cert)

    def _raise_lock(self, cert: VerifiedCertificate) -> None:
        if self.ag.high is None or cert.view > self.ag.high.view:
            self.ag.high = cert

    # --- view change

    def _on_new_view(self, sender: bytes, m: NewView) -> list[Action]:
        vote = m.vote
        ag = self.ag
        if vote.kind is not VoteKind.NEW_VIEW or vote.value != NO_VALUE or vote.view == 0:
            return [self._misbehaviour(sender, Misbehaviour.UNEXPECTED_VOTE, "new-view")]
        checked = self._verify_vote(sender, vote, direct=True)
        if isinstance(checked, ReportMisbehaviour):
            return [checked]
        if m.high_certificate is not None:
            high = self._verify_cert(sender, m.high_certificate, VoteKind.PREPARE)
            if isinstance(high, ReportMisbehaviour):
                return [self._misbehaviour(sender, Misbehaviour.BAD_CERTIFICATE, "high")]
            self._raise_lock(high)
        out: list[Action] = []
        if m.view_certificate is not None:
            entered = self._verify_cert(sender, m.view_certificate, VoteKind.NEW_VIEW)
            if isinstance(entered, ReportMisbehaviour) or entered.view >= vote.view:
                return [self._misbehaviour(sender, Misbehaviour.BAD_CERTIFICATE, "entered")]
            out += self._apply_certificate(entered)  # catch up to the sender's last view
            if self.ag is not ag or self.phase is Phase.DONE:
                return out
        if not ag.view <= vote.view <= ag.view + FUTURE_VIEWS_MAX:
            return out
        ag.new_views.setdefault(vote.view, {})[checked.member] = checked
        if (
            m.reason is RejectReason.CANNOT_EXECUTE
            and vote.view == ag.view + 1
            and checked.member == ag.proposer(ag.view)
            and self.phase is Phase.PROPOSE
        ):
            # The proposer of our view gave it up (it cannot execute): no proposal will come,
            # so leave the view now rather than at its timeout. Only that proposer can make us
            # leave this way, and only its own view, which it could stall anyway by silence.
            return out + self._start_view_change(vote.view, RejectReason.NONE)
        return out + self._check_views()

    def _check_views(self) -> list[Action]:
        """Enter a view that has a quorum of NEW_VIEWs; join a view change that more than a third
        of the weight has started; as a proposer, propose once every member has asked for the
        view."""
        ag = self.ag
        changing = self.phase is Phase.VIEW_CHANGE
        for view in sorted(ag.new_views, reverse=True):
            if view < ag.view or (view == ag.view and not changing):
                break
            votes = ag.new_views[view]
            if self.membership.is_quorum(sum(v.weight for v in votes.values())):
                cert = build_certificate(votes.values(), self.membership)
                return self._enter_view(view, cert.certificate)
        highest: dict[int, int] = {}
        for view, votes in ag.new_views.items():
            for member in votes:
                highest[member] = max(highest.get(member, 0), view)
        weight = 0
        for member, view in sorted(highest.items(), key=lambda kv: -kv[1]):
            weight += self.membership.members[member].weight
            if self.membership.is_blocking(weight):
                if view > ag.view:
                    return self._start_view_change(view, RejectReason.NONE)
                break
        if (
            self.phase is Phase.PROPOSE
            and ag.proposer(ag.view) == self.me
            and ag.proposed is None
            and len(ag.new_views.get(ag.view, {})) == len(self.membership)
        ):
            return self._propose()
        return []

    def _start_view_change(self, view: int, reason: RejectReason) -> list[Action]:
        ag = self.ag
        if self.phase is Phase.DONE:
            return []
        ag.reset_view(view)
        self.phase = Phase.VIEW_CHANGE
        vote = self._sign(VoteKind.NEW_VIEW, view, NO_VALUE)
        high = ag.high.certificate if ag.high is not None else None
        ag.my_new_view = self._wire(NewView(vote.record, high, ag.entered, reason))
        ag.new_views.setdefault(view, {})[self.me] = vote
        out: list[Action] = []
        proposer = ag.proposer(view)
        if reason is RejectReason.CANNOT_EXECUTE:
            # We are the proposer of the view we leave: tell every member, so that they leave it
            # too rather than wait out its proposal timeout (see _on_new_view).
            out.append(Broadcast(ag.my_new_view))
        elif proposer != self.me:
            # Linear view change: only the next proposer needs our NEW_VIEW. It builds the view
            # certificate from a quorum of them and its proposal carries it to everyone. If it
            # is down or slow, the resend goes to every member (_on_timer) and the members form
            # the certificate themselves. Sending every NEW_VIEW to every member cost m (m - 1)
            # messages per view change: at 300 real peers on two cores, most of the committee
            # requests, most of which timed out.
            out.append(Send(self.membership.members[proposer].identity, ag.my_new_view))
        out.append(self._timer(self.config.timing.view_change_retry_ms))
        return out + self._check_views()

    def _enter_view(self, view: int, view_certificate: QuorumCertificate | None) -> list[Action]:
        ag = self.ag
        ag.reset_view(view)
        ag.view_certificate = view_certificate
        if view_certificate is not None:
            ag.entered = view_certificate
        self.phase = Phase.PROPOSE
        timing = self.config.timing
        proposer = ag.proposer(view) == self.me
        if view == 0 and ag.stage is _Stage.RESULT:
            # The executor has until its deadline to run the job and propose its report.
            base = timing.execute_ms if proposer else timing.execute_ms + timing.propose_ms
        elif proposer and view > 0:
            base = timing.collect_ms
        else:
            base = timing.propose_ms
        out: list[Action] = [StartTimer(ag.index, view, Phase.PROPOSE, timing.scaled(base, view))]
        if proposer and (view == 0 or len(ag.new_views.get(view, {})) == len(self.membership)):
            proposed = self._propose()
            if proposed or (ag.stage is _Stage.RESULT and (view == 0 or self._verifying())):
                return out + proposed  # (the collection timer decides whether to wait)
            return out + self._start_view_change(view + 1, RejectReason.CANNOT_EXECUTE)
        return out

    # --- proposing

    def _propose(self) -> list[Action]:
        """As the view's proposer: propose the locked value, or our own; [] if we have none yet."""
        ag = self.ag
        if ag.high is not None:
            value: bytes | None = ag.high.value
            justification: QuorumCertificate | None = ag.high.certificate
        else:
            value, justification = self._own_value(), None
        if value is None:
            return []
        ag.proposed = value
        vote = self._sign(VoteKind.PROPOSE, ag.view, value)
        ag.proposal = vote.record
        proposal = Proposal(vote.record, justification, ag.view_certificate, ag.start_certificate)
        out: list[Action] = [Broadcast(self._wire(proposal))]
        return out + self._prepare(value)

    def _own_value(self) -> bytes | None:
        ag = self.ag
        if ag.stage is not _Stage.RESULT:
            return self.my_value
        executor = self.membership.members[ag.proposers[0]].identity
        accepted = [r for r, (ok, _) in self.verdicts.items() if ok]
        if ag.view == 0:
            if accepted:
                return accepted[0]
            rejected = any(not ok for ok, _ in self.verdicts.values())
            return executor if rejected else None  # the executor gives up, or is still running
        if accepted:
            return accepted[0]
        if self._verifying() and ag.extended is not Phase.PROPOSE:
            # A later view's proposer that is still verifying the report (fetching it, or
            # re-running the job) waits once for its verdict before proposing the rejection: on
            # overloaded machines verification outlasts view 0, and rejecting then slashes an
            # honest executor (300 real peers with Docker jobs: 21 rejected attempts in 50 tasks).
            return None
        return executor

    def _verifying(self) -> bool:
        """A verdict this node asked for in this attempt has not come yet."""
        return any(report not in self.verdicts for report in self.asked)

    # --- decisions and the task lifecycle

    def _decide(self, cert: VerifiedCertificate) -> list[Action]:
        ag = self.ag
        if ag.decided is not None:
            return []
        ag.decided = cert
        self.history[ag.context] = cert.certificate
        value = cert.value
        if ag.stage is _Stage.BLOCK:
            return self._finish(Decide(DecisionKind.BLOCK, 0, value, cert.certificate))
        if ag.stage is _Stage.EXECUTOR:
            out: list[Action] = [Decide(DecisionKind.EXECUTOR, ag.attempt, value, cert.certificate)]
            if value not in self.membership:  # only a quorum of forgers could certify this
                return out + self._finish(GiveUp(ag.attempt, "decided executor is not a member"))
            executor = self.membership.index_of(value)
            # Every member may propose in a result agreement (views > 0 reject the executor), so
            # a silent executor can not hold the task even when it is the last candidate.
            rest = self._rotate_after(self.config.ranking, executor)
            self.ag = self._agreement(
                _Stage.RESULT, ag.attempt, cert.certificate, (executor, *rest)
            )
            return out + self._enter_view(0, None)
        executor_index = ag.proposers[0]
        if value != self.membership.members[executor_index].identity:
            return self._finish(Decide(DecisionKind.RESULT, ag.attempt, value, cert.certificate))
        out = [Decide(DecisionKind.REJECTED, ag.attempt, value, cert.certificate)]
        self.rejected.append(executor_index)
        attempt = ag.attempt + 1
        if attempt >= self.config.attempts_max or not self._candidates(attempt):
            return out + self._finish(GiveUp(ag.attempt, "no candidate or attempt left"))
        self.verdicts = {}
        self.asked = set()
        self.ag = self._agreement(_Stage.EXECUTOR, attempt, cert.certificate)
        return out + self._enter_view(0, None)

    def _finish(self, outcome: Decide | GiveUp) -> list[Action]:
        self.phase = Phase.DONE
        self.outcome = outcome
        return [outcome]

    def _candidates(self, attempt: int) -> tuple[int, ...]:
        """Executor candidates of `attempt`: the ranking without the rejected executors, starting
        after the last rejected one (ranked failover)."""
        order: tuple[int, ...] = self.config.ranking
        for rejected in self.rejected[:attempt]:
            order = self._rotate_after(order, rejected)
        return order

    @staticmethod
    def _rotate_after(order: tuple[int, ...], member: int) -> tuple[int, ...]:
        if member not in order:
            return order
        at = order.index(member)
        return order[at + 1 :] + order[:at]

    def _agreement(
        self,
        stage: _Stage,
        attempt: int,
        start: QuorumCertificate | None,
        proposers: tuple[int, ...] | None = None,
    ) -> _Agreement:
        subject = self.config.subject
        if stage is _Stage.BLOCK:
            assert self.config.height is not None
            context, index = block_round_id(self.config.height), 0
        elif stage is _Stage.EXECUTOR:
            context, index = task_round_id(subject, attempt), 2 * attempt
        else:
            context, index = result_round_id(subject, attempt), 2 * attempt + 1
        if proposers is None:
            proposers = self._candidates(attempt)
        return _Agreement(index, stage, attempt, context, proposers, start)

    # --- rules that depend on what is being decided

    def _commit_kind(self, value: bytes) -> VoteKind:
        ag = self.ag
        if ag.stage is not _Stage.RESULT:
            return VoteKind.COMMIT
        executor = self.membership.members[ag.proposers[0]].identity
        return VoteKind.RESULT_REJECT if value == executor else VoteKind.RESULT_ACCEPT

    def _fresh_value_ok(self, view: int, proposer: int, value: bytes) -> bool:
        """May `proposer` propose `value` in `view` without a justifying certificate?"""
        ag = self.ag
        if ag.stage is _Stage.BLOCK:
            return True  # the shell validated the block before delivering the proposal
        if ag.stage is _Stage.EXECUTOR:
            return value == self.membership.members[proposer].identity
        executor = self.membership.members[ag.proposers[0]].identity
        return view > 0 or value != executor or proposer == ag.proposers[0]

    def _gate(self, value: bytes, view: int, proposer: int) -> bool | RejectReason | None:
        """For a fresh value: True to prepare it, a reason to leave the view, None to wait for
        this node's verdict."""
        ag = self.ag
        if ag.stage is not _Stage.RESULT:
            return True
        executor = self.membership.members[ag.proposers[0]].identity
        if value == executor:
            return True  # rejecting the executor (its deadline passed, or it gave up)
        verdict = self.verdicts.get(value)
        if verdict is None:
            return None
        return True if verdict[0] else (verdict[1] if verdict[1] else RejectReason.OTHER)

    # ------------------------------------------------------------------------------- helpers

    def _verify_vote(
        self, sender: bytes, vote: UnverifiedVote, *, direct: bool
    ) -> Vote | ReportMisbehaviour:
        if direct and vote.voter != sender:
            return self._misbehaviour(sender, Misbehaviour.IMPERSONATION, vote.kind.name)
        self._trim_cache()
        try:
            return vote.verify(self.membership, cache=self.cache)
        except NotAMember:
            return self._misbehaviour(sender, Misbehaviour.NOT_A_MEMBER, "voter")
        except WrongWeight as exc:
            return self._misbehaviour(sender, Misbehaviour.WRONG_WEIGHT, str(exc))
        except InvalidVoteSignature as exc:
            return self._misbehaviour(sender, Misbehaviour.BAD_SIGNATURE, str(exc))

    def _verify_cert(
        self, sender: bytes, cert: QuorumCertificate, kind: VoteKind | None
    ) -> VerifiedCertificate | ReportMisbehaviour:
        self._trim_cache()
        try:
            return verify_certificate(
                cert, self.membership, kind=kind, context=self.ag.context, cache=self.cache
            )
        except CertificateError as exc:
            return self._misbehaviour(sender, Misbehaviour.BAD_CERTIFICATE, str(exc))

    def _trim_cache(self) -> None:
        if len(self.cache) >= SIGNATURE_CACHE_MAX:
            self.cache.clear()

    def _record(self, vote: Vote) -> list[Action]:
        """Remember a verified vote of the current agreement; report equivocation once."""
        ag = self.ag
        if vote.kind is VoteKind.NEW_VIEW:
            return []
        key = (_CLASS[vote.kind], vote.view, vote.member)
        first = ag.seen.get(key)
        if first is None:
            if ag.view <= vote.view <= ag.view + FUTURE_VIEWS_MAX:  # bounded memory
                ag.seen[key] = vote.record
            return []
        if not conflicting(first, vote.record) or key in ag.reported:
            return []
        ag.reported.add(key)
        return [
            ReportMisbehaviour(
                vote.voter,
                Misbehaviour.EQUIVOCATION,
                PENALTY_PROVABLE,
                make_evidence(first, vote.record),
                f"{vote.kind.name} view {vote.view}",
            )
        ]

    def _reply(self, sender: bytes, context: bytes) -> list[Action]:
        """A member is behind: send it the certificate that ended that agreement (bounded)."""
        member = self.membership.index_of(sender)
        key = (context, member)
        count = self.replies.get(key, 0)
        if count >= REPLIES_PER_PEER_MAX:
            return []
        self.replies[key] = count + 1
        return [Send(sender, self._wire(CertificateMessage(self.history[context])))]

    def _sign(self, kind: VoteKind, view: int, value: bytes) -> Vote:
        return sign_vote(
            self.config.key,
            self.membership,
            kind=kind,
            context=self.ag.context,
            view=view,
            value=value,
        )

    def _wire(self, message: Message) -> bytes:
        return encode_message(self.config.subject, message)

    def _timer(self, base_ms: int) -> StartTimer:
        ag = self.ag
        return StartTimer(
            ag.index, ag.view, self.phase, self.config.timing.scaled(base_ms, ag.view)
        )

    def _misbehaviour(self, peer: bytes, reason: Misbehaviour, detail: str) -> ReportMisbehaviour:
        return ReportMisbehaviour(peer, reason, PENALTY_INVALID, None, detail)


_CLASS: Final = {
    VoteKind.PROPOSE: 1,
    VoteKind.PREPARE: 2,
    VoteKind.COMMIT: 3,
    VoteKind.RESULT_ACCEPT: 3,
    VoteKind.RESULT_REJECT: 3,
}

_HANDLERS: Final[dict[type, str]] = {
    LocalCredential: "_on_start",
    MessageReceived: "_on_message",
    TimerFired: "_on_timer",
    LocalVerdict: "_on_verdict",
}


def _context_of(message: Message) -> bytes:
    if isinstance(message, CertificateMessage):
        return message.certificate.context
    return message.vote.context
