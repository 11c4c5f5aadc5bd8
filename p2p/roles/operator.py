"""The operator role: sortition, the task committee round, the executor and the verifier.

For every posted task, once its seed is computable (the block after the one that included it),
an operator runs sortition (`admission.draw_task`: one VRF proof, nothing more when it is not
drawn) and, when drawn, wants its CREDENTIAL on the ledger. When the credential window closes the
ledger fixes the roster; each member ranks the candidates by the VRF priority of their
credentials (the ledger's roster entry names the CREDENTIAL transaction by hash) and runs the
committee `Round` for the task over direct requests to the other members:

* executor agreement decided -> the executor runs the job (`Execute`), the members want the
  TASK_CERTIFICATE on the ledger;
* the executor proposes its report digest -> each member fetches the report from it
  (PROTO_REPORT), verifies it (`executor.verify.verify_report`), re-executes deterministic jobs
  (`Execute(purpose=REEXECUTE)`, `compare_reexecution`) and gives its verdict to the round;
* result agreement decided -> the members want the TASK_RESULT on the ledger (the escrow pays);
  a rejection hands the task to the next-ranked candidate (the round's next attempt) and its
  certificate goes on the ledger too (the executor is slashed).

Certificates are submitted at once by the executor and the best-ranked `CoreConfig.submitters`
members, by the others only if the ledger still lacks them `SUBMIT_DELAY_BLOCKS` later. The
executor keeps its report and output to serve verifiers and the poster (PROTO_REPORT,
PROTO_OUTPUT); verifiers whose re-execution agreed keep theirs too, so the poster can fetch the
output from any of them.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Final

from committee.errors import PENALTY_INVALID, PENALTY_STALE
from committee.events import (
    Broadcast,
    Decide,
    DecisionKind,
    GiveUp,
    LocalCredential,
    LocalVerdict,
    MessageReceived,
    NeedVerdict,
    Phase,
    ReportMisbehaviour,
    Send,
    TimerFired,
)
from committee.events import StartTimer as RoundTimer
from committee.messages import RejectReason, peek_subject
from committee.round import TIMEOUT_MS_MAX, Round, RoundConfig, Timing
from executor.report import Outcome, UnverifiedReport
from executor.spec import JobSpec
from executor.verify import (
    TaskView,
    VerdictReason,
    VerifiedReport,
    compare_reexecution,
    verify_report,
)
from ledger.block import CertifiedBlock
from ledger.certificates import Membership, QuorumCertificate
from ledger.chain import round_seed
from ledger.domains import Domain, digest
from ledger.errors import DecodeError
from ledger.state import TASK_CLOSED, KeyKind, State, Task, TaskStatus
from ledger.tx import (
    Credential,
    PostTask,
    RoundKind,
    TaskCertificate,
    TaskResult,
    TxKind,
    derived_id,
)
from p2p.admission import Drawn, draw_task, member_priority
from p2p.events import (
    PROTO_COMMITTEE,
    PROTO_REPORT,
    Connect,
    CoreMisuse,
    Execute,
    ExecutionFinished,
    LogLevel,
    Purpose,
    RequestFailed,
    RequestReceived,
    Respond,
    TaskPhase,
)
from p2p.outbox import Wanted
from p2p.roles.base import Answer, Services, slash_wanted
from p2p.wire import OutputResponse, TaskRequest

# Tasks this operator holds a credential for and that are not closed yet. Its declared capacity
# bounds the rosters it is on; credentials still waiting for their window add a few more.
SLOTS_MAX: Final = 4096
# Job specs of recently posted tasks (needed when this node is drawn, one block later). A spec is
# at most 64 KiB; entries leave once the task's seed block passed and this node was not drawn.
SPECS_MAX: Final = 1024
# Candidates a member connects to ahead of the round (`_connect_ahead`): view 0's proposer and the
# next one.
LIKELY_PROPOSERS: Final = 2
# Why this node was not drawn, for `posi-peer why TASK`: the most recent tasks.
WHY_MAX: Final = 4096
# Reports and outputs kept to serve verifiers and posters (outputs are at most 16 MiB each).
EXECUTIONS_MAX: Final = 64
KEPT_BYTES_MAX: Final = 256 * 1024 * 1024
# Round messages for a task that arrive before this node applied the block fixing its roster.
EARLY_MESSAGES_MAX: Final = 256
# Round messages per task whose acknowledgements are remembered (see `_run`): a member sends a
# few per view and resends only its current NEW_VIEW and vote, so a few views' worth is plenty.
ACKED_MESSAGES_MAX: Final = 16
# Report fetch attempts per proposed report, and the pause between them.
FETCH_TRIES_MAX: Final = 4
FETCH_RETRY_MS: Final = 1000
# Members beyond the first `submitters` wait this many blocks before submitting a certificate the
# ledger still lacks (one block for the first submitters' transaction, one spare).
SUBMIT_DELAY_BLOCKS: Final = 2
# What an execution costs besides the job's own wall time: container create, start and removal
# (0.2-0.5 s measured, seconds on a loaded engine), the report, and the network round trips.
EXECUTE_OVERHEAD_MS: Final = 5000
# Outcomes where the executor ran nothing it could stand behind as *the* execution: it hands the
# task over (CANNOT_EXECUTE) instead of proposing its report.
_NOT_RUN: Final = frozenset(
    {
        Outcome.IMAGE_MISSING,
        Outcome.IMAGE_MISMATCH,
        Outcome.IMAGE_REJECTED,
        Outcome.POLICY_REFUSED,
        Outcome.RUNTIME_UNAVAILABLE,
        Outcome.SANDBOX_ERROR,
    }
)
_ZERO: Final = bytes(32)
_TASK_PREFIX: Final = bytes([KeyKind.TASK])


@dataclasses.dataclass(slots=True)
class _Verify:
    """This member's check of one proposed report."""

    attempt: int
    digest: bytes
    executor: bytes
    tries: int = 0
    verified: VerifiedReport | None = None
    done: bool = False


@dataclasses.dataclass(slots=True)
class _Slot:
    """A task this node was drawn for."""

    task_id: bytes
    drawn: Drawn
    posted_height: int
    job_spec: bytes | None
    window_end: int  # `draw_until` of the credential window this draw is for
    credentials: dict[bytes, tuple[bytes, int]] = dataclasses.field(default_factory=dict)
    # Co-members whose credential landed, by identity: their candidate priority (lower ranks
    # first), and the ones this node asked a connection to (`_connect_ahead`).
    landed: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    connect_asked: set[bytes] = dataclasses.field(default_factory=set)
    round: Round | None = None
    ranking: tuple[int, ...] = ()
    early: list[tuple[bytes, bytes]] = dataclasses.field(default_factory=list)
    synced_at: int = -1  # our height when an early message last made us ask its sender for blocks
    verifying: dict[tuple[int, bytes], _Verify] = dataclasses.field(default_factory=dict)
    executors: dict[int, bytes] = dataclasses.field(default_factory=dict)
    views: dict[int, int] = dataclasses.field(default_factory=dict)  # agreement -> highest view
    # Round message bytes -> the members that acknowledged them (see `_run`).
    acked: dict[bytes, set[bytes]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class _Kept:
    """A report and output this node serves for one attempt."""

    report: bytes
    output: bytes
    certificate: QuorumCertificate | None = None


class OperatorRole:
    """Task committees for one operator (see the module docstring)."""

    def __init__(self, s: Services, want_sync: Callable[[bytes], None]) -> None:
        self.s = s
        self.want_sync = want_sync  # ask this peer for the blocks after our tip
        vrf_key = s.config.vrf_key
        if vrf_key is None:
            raise CoreMisuse("the operator role needs CoreConfig.vrf_key")
        self.vrf_key = vrf_key
        self.slots: dict[bytes, _Slot] = {}
        # Tasks whose credential window closed empty (or with a roster below the ledger's minimum
        # weight, which the ledger drops) in the last block: drawn again in this one, when the
        # new seed is computable (`ledger.chain.round_seed`).
        self.redraws: list[bytes] = []
        self.specs: collections.OrderedDict[bytes, tuple[int, bytes]] = collections.OrderedDict()
        self.why_not: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self.kept: collections.OrderedDict[tuple[bytes, int], _Kept] = collections.OrderedDict()
        self.kept_bytes = 0

    # --- queries -----------------------------------------------------------------------------

    def why(self, task_id: bytes) -> str | None:
        """Why this node was or was not drawn for `task_id` (None if it never looked)."""
        slot = self.slots.get(task_id)
        if slot is not None:
            return f"drawn with weight {slot.drawn.weight}"
        return self.why_not.get(task_id)

    # --- blocks ------------------------------------------------------------------------------

    def resume(self) -> None:
        """The node reached the chain's tip (at start, or after catching up): draw for every task
        whose credential window is still open. (While it replays old blocks it draws nothing:
        those windows are closed by the time it is done.)"""
        open_tasks = sorted(
            (key[1:], record.posted_height)
            for key, record in self.s.state.entries.items()
            if key[:1] == _TASK_PREFIX
            and isinstance(record, Task)
            and record.status in (TaskStatus.SEEDING, TaskStatus.DRAWING)
        )
        for task_id, posted in open_tasks:
            self._draw(task_id, posted)

    def on_block(self, cb: CertifiedBlock, new: State, *, live: bool) -> None:
        """Follow the tasks a new block touched. `live` is False while the node replays blocks
        to catch up: it then only remembers specs and credentials."""
        height = new.height
        landed: dict[bytes, _Slot] = {}  # slots with a co-member's credential in this block
        for tx in cb.block.txs:
            if tx.kind == TxKind.POST_TASK:
                body = tx.body()
                assert isinstance(body, PostTask)
                task_id = derived_id(Domain.TASK_ID, tx, new.genesis_hash)
                self.specs[task_id] = (height, body.job_spec)
                while len(self.specs) > SPECS_MAX:
                    self.specs.popitem(last=False)
            elif tx.kind == TxKind.CREDENTIAL:
                cred = tx.body()
                assert isinstance(cred, Credential)
                slot = self.slots.get(cred.subject)
                if slot is not None and cred.round == RoundKind.TASK:
                    slot.credentials[tx.hash()] = (cred.vrf_proof, cred.weight)
                    if live and tx.signer != self.s.me:
                        slot.landed[tx.signer] = member_priority(cred.vrf_proof, cred.weight)
                        landed[slot.task_id] = slot
        for slot in landed.values():
            self._connect_ahead(slot)
        # Seeds computable now: tasks redrawn in the previous block, and tasks posted in it.
        redraws, self.redraws = self.redraws, []
        for task_id in redraws if live else ():
            task = new.task(task_id)
            if task is not None:
                self._draw(task_id, task.posted_height)
        for task_id, (posted, _) in list(self.specs.items()):
            if posted == height - 1 and live:
                self._draw(task_id, posted)
            elif posted < height - 1 and task_id not in self.slots:
                task = new.task(task_id)
                if task is None or task.status not in (TaskStatus.SEEDING, TaskStatus.DRAWING):
                    del self.specs[task_id]
        # Sorted: `changed` is a set, and its order varies between processes (hash seeds); the
        # order of our actions must not (a simulator seed reproduces a run exactly).
        touched = sorted(k[1:] for k in new.changed if k[:1] == _TASK_PREFIX and len(k) == 33)
        for task_id in touched:
            slot = self.slots.get(task_id)
            if slot is not None:
                self._task_changed(slot, new)
            task = new.task(task_id)
            if task is not None and task.status == TaskStatus.SEEDING and task.draw_until:
                self.redraws.append(task_id)  # its window closed empty or light (ledger/README.md)

    def _connect_ahead(self, slot: _Slot) -> None:
        """Ask for connections to the co-members this node will talk to, while the credential
        window is open rather than when the round's first messages need them (a dial under load
        takes seconds). Votes go to a view's proposer, who broadcasts the certificates, so the
        links that matter are between the candidates ranked first (view 0's proposer, then the
        next if it fails) and everyone: a likely proposer connects to every co-member, the others
        to the likely proposers. Ranks come from the credentials landed so far (a better one
        landing later adds its links)."""
        ranked = sorted(
            [*slot.landed.items(), (self.s.me, slot.drawn.priority)], key=lambda m: m[1]
        )
        leaders = {identity for identity, _ in ranked[:LIKELY_PROPOSERS]}
        wanted = slot.landed.keys() if self.s.me in leaders else leaders - {self.s.me}
        for peer in sorted(wanted - slot.connect_asked):
            slot.connect_asked.add(peer)
            self.s.emit(Connect(peer))

    def _draw(self, task_id: bytes, posted: int) -> None:
        if task_id in self.slots:
            return
        state = self.s.state
        result = draw_task(state, task_id, self.s.me, self.vrf_key)
        if result is None:
            return
        if not isinstance(result, Drawn):
            self._remember_why(task_id, f"{result.reason.value}: {result.detail}")
            self.s.task_event(task_id, TaskPhase.NOT_DRAWN, result.reason.value)
            return
        if len(self.slots) >= SLOTS_MAX:
            self.s.log(LogLevel.WARNING, "too-many-rounds", task_id.hex()[:16])
            return
        spec = self.specs.get(task_id)
        task = state.task(task_id)
        assert task is not None  # draw_task drew on it
        window_end = task.draw_until
        if task.status == TaskStatus.SEEDING:  # the seed is fixed in the next block
            window_end = task.seed_height() + 1 + state.params.credential_window_blocks
        slot = _Slot(task_id, result, posted, None if spec is None else spec[1], window_end)
        self.slots[task_id] = slot
        self._remember_why(task_id, f"drawn with weight {result.weight}")
        self.s.task_event(task_id, TaskPhase.DRAWN, f"weight {result.weight}")
        body = self.s.policy.credential(
            Credential(RoundKind.TASK, task_id, result.proof, result.weight)
        )
        me, seed = self.s.me, result.seed

        def needed(st: State) -> bool:  # while this draw's window is (about to be) open
            task = st.task(task_id)
            if task is None or any(m.identity == me for m in task.roster):
                return False
            if task.status == TaskStatus.SEEDING:
                return task.draw_until < window_end  # this window is still to come
            return (
                task.status == TaskStatus.DRAWING
                and task.seed == seed
                and st.height + 1 < task.draw_until == window_end
            )

        def ready(st: State) -> bool:  # the next block takes credentials for this round
            return round_seed(st, RoundKind.TASK, task_id) is not None

        self.s.want(Wanted(("credential", task_id), body, needed, ready))

    def _remember_why(self, task_id: bytes, why: str) -> None:
        self.why_not[task_id] = why
        self.why_not.move_to_end(task_id)
        while len(self.why_not) > WHY_MAX:
            self.why_not.popitem(last=False)

    def _task_changed(self, slot: _Slot, state: State) -> None:
        task = state.task(slot.task_id)
        if task is None:
            return
        on_roster = any(m.identity == self.s.me for m in task.roster)
        if task.status in TASK_CLOSED:
            if task.status == TaskStatus.COMPLETED:
                self.s.task_event(slot.task_id, TaskPhase.PAID, f"attempt {task.attempt}")
            elif task.status == TaskStatus.EXPIRED:
                self.s.task_event(slot.task_id, TaskPhase.EXPIRED)
            else:
                self.s.task_event(slot.task_id, TaskPhase.FAILED, "closed by the ledger")
            del self.slots[slot.task_id]
            return
        if task.status == TaskStatus.SEEDING and task.draw_until >= slot.window_end:
            # The window closed with no credential or too little weight (ours may have landed:
            # the ledger dropped that roster); the ledger draws the task again, and this node
            # draws on the new seed like everyone else.
            self._remember_why(
                slot.task_id, "drawn, but the window closed empty or too light: drawn again"
            )
            self.s.task_event(slot.task_id, TaskPhase.NOT_DRAWN, "window closed empty or too light")
            del self.slots[slot.task_id]
            return
        if task.status in (TaskStatus.DRAWING, TaskStatus.SEEDING):
            return
        if not on_roster:
            self._remember_why(slot.task_id, "drawn, but the credential missed the window")
            self.s.task_event(slot.task_id, TaskPhase.NOT_DRAWN, "credential not included")
            del self.slots[slot.task_id]
            return
        if slot.round is None:
            self._start_round(slot, task)

    # --- the round ---------------------------------------------------------------------------

    def _start_round(self, slot: _Slot, task: Task) -> None:
        membership = Membership.roster(task.roster)
        priorities: list[bytes] = []
        for member in membership.members:
            assert member.credential is not None  # task rosters always name the credential
            found = slot.credentials.get(member.credential)
            if found is None and self.s.archive is not None:
                stored = self.s.archive.transaction(member.credential)
                if stored is not None:
                    cred = stored[1].body()
                    assert isinstance(cred, Credential)
                    found = (cred.vrf_proof, cred.weight)
            if found is None:
                self.s.log(
                    LogLevel.ERROR,
                    "credential-unknown",
                    f"task {slot.task_id.hex()[:16]}: cannot rank the roster",
                )
                return
            priorities.append(member_priority(*found))
        slot.ranking = tuple(sorted(range(len(membership)), key=priorities.__getitem__))
        if slot.job_spec is None:
            slot.job_spec = self._spec_from_archive(task)
        config = RoundConfig.for_task(
            slot.task_id,
            membership,
            slot.ranking,
            self.s.key,
            timing=self._timing(slot),
            attempts_max=self.s.state.params.max_attempts,
        )
        slot.round = Round(config)
        rank = slot.ranking.index(membership.index_of(self.s.me))
        self.s.task_event(
            slot.task_id,
            TaskPhase.ROSTER,
            f"{len(membership)} members, weight {membership.total_weight}, rank {rank}",
        )
        value = self.s.me if self._can_execute(slot) else None
        self._run(slot, slot.round.handle(LocalCredential(value)))
        early, slot.early = slot.early, []
        for peer, data in early:
            self._run(slot, slot.round.handle(MessageReceived(peer, data)))

    def _timing(self, slot: _Slot) -> Timing:
        """The configured timeouts stretched to fit the job: the executor runs it once (its
        deadline covers that and the verifiers' run), and once it proposed its report, it waits
        for the verifiers to fetch and re-run the job before their prepare votes can come (the
        prepare timeout covers one run; the round core uses one prepare timeout for every
        agreement of the round)."""
        timing = self.s.config.task_timing
        try:
            spec = JobSpec.decode(slot.job_spec or b"")
        except DecodeError:
            return timing
        run_ms = spec.limits.wall_time_ms + EXECUTE_OVERHEAD_MS
        return dataclasses.replace(
            timing,
            execute_ms=min(max(timing.execute_ms, 2 * run_ms), TIMEOUT_MS_MAX),
            prepare_ms=min(max(timing.prepare_ms, run_ms), TIMEOUT_MS_MAX),
        )

    def _spec_from_archive(self, task: Task) -> bytes | None:
        if self.s.archive is None:
            return None
        stored = self.s.archive.transaction(task.post_tx)
        if stored is None:
            return None
        body = stored[1].body()
        assert isinstance(body, PostTask)
        return body.job_spec

    def _can_execute(self, slot: _Slot) -> bool:
        if slot.job_spec is None:
            return False
        try:
            spec = JobSpec.decode(slot.job_spec)
        except DecodeError:
            return False
        images = self.s.config.images
        return images is None or spec.image_digest in images

    def on_request(self, event: RequestReceived) -> None:
        """A committee message from another member."""
        try:
            subject = peek_subject(event.data)
        except DecodeError:
            self.s.emit(Respond(event.request_id, error="malformed", penalty=PENALTY_INVALID))
            return
        slot = self.slots.get(subject)
        if slot is None:
            # Not a round of ours (any more): no blame if the task exists (a late message).
            known = self.s.state.task(subject) is not None
            penalty = 0 if known else PENALTY_STALE
            self.s.emit(Respond(event.request_id, error="unknown-round", penalty=penalty))
            return
        if slot.round is None:
            if len(slot.early) < EARLY_MESSAGES_MAX:
                slot.early.append((event.peer, event.data))
                self.s.emit(Respond(event.request_id))
            else:  # not kept: the sender must not count it as delivered (see `_run`)
                self.s.emit(Respond(event.request_id, error="busy", penalty=0))
            if slot.synced_at != self.s.state.height:
                # The sender started the round, so it holds the block with the roster and we do
                # not: ask it for blocks now rather than wait for gossip or the periodic sync
                # (under load a block reaches the last peers tens of seconds late, and a member
                # that starts late costs its round a view change).
                slot.synced_at = self.s.state.height
                self.want_sync(event.peer)
            return
        self.s.emit(Respond(event.request_id))
        self._run(slot, slot.round.handle(MessageReceived(event.peer, event.data)))

    def on_timer(self, key: tuple[object, ...]) -> None:
        """("task", id, "round", instance, view, phase) or ("task", id, "fetch", attempt,
        report digest)."""
        task_id = key[1]
        assert isinstance(task_id, bytes)
        slot = self.slots.get(task_id)
        if slot is None or slot.round is None:
            return
        if key[2] == "round":
            _, _, _, instance, view, phase = key
            assert isinstance(instance, int)
            assert isinstance(view, int)
            assert isinstance(phase, str)
            self._run(slot, slot.round.handle(TimerFired(instance, view, Phase(phase))))
        elif key[2] == "fetch":
            attempt, report = key[3], key[4]
            assert isinstance(attempt, int)
            assert isinstance(report, bytes)
            v = slot.verifying.get((attempt, report))
            if v is not None and not v.done:
                self._fetch(slot, v)

    def _run(self, slot: _Slot, actions: list[object]) -> None:
        assert slot.round is not None
        membership = slot.round.membership
        others = [m.identity for m in membership.members if m.identity != self.s.me]
        task_id = slot.task_id

        def unacked(peer: bytes, acked: set[bytes]) -> Callable[[], bool]:
            return lambda: task_id in self.slots and peer not in acked

        def send(peer: bytes, data: bytes) -> None:
            # The same bytes again (a NEW_VIEW resent while no view certificate forms, a vote
            # resent when a live view gets one more wait) go only to the members that did not
            # acknowledge them: at 300 real peers on two cores, resending every NEW_VIEW to every
            # member made them most of the committee requests, and most of those timed out.
            acked = slot.acked.get(data)
            if acked is None:
                acked = slot.acked[data] = set()
                while len(slot.acked) > ACKED_MESSAGES_MAX:
                    del slot.acked[next(iter(slot.acked))]
            if peer not in acked:
                self.s.send_round_message(
                    peer,
                    PROTO_COMMITTEE,
                    data,
                    unacked(peer, acked),  # a retry stops once another copy got through
                    delivered=functools.partial(acked.add, peer),
                )

        for action in actions:
            if isinstance(action, Send):
                send(action.to, action.data)
            elif isinstance(action, Broadcast):
                for peer in others:
                    send(peer, action.data)
            elif isinstance(action, RoundTimer):
                key = ("task", slot.task_id, "round", action.instance, action.view)
                self.s.timer((*key, action.phase.value), action.duration_ms)
                if action.view > slot.views.get(action.instance, 0):
                    slot.views[action.instance] = action.view
                    self.s.task_event(
                        task_id,
                        TaskPhase.VIEW_CHANGED,
                        f"agreement {action.instance}: view {action.view}",
                    )
            elif isinstance(action, Decide):
                self._decided(slot, action)
            elif isinstance(action, NeedVerdict):
                self._need_verdict(slot, action)
            elif isinstance(action, GiveUp):
                self.s.task_event(slot.task_id, TaskPhase.FAILED, action.reason)
            elif isinstance(action, ReportMisbehaviour):
                self.s.penalise(action.peer, action.reason.value, action.penalty, action.detail)
                if action.evidence is not None:
                    self.s.want(
                        slash_wanted(
                            RoundKind.TASK, slot.task_id, slot.round.attempt, action.evidence
                        )
                    )

    # --- decisions ---------------------------------------------------------------------------

    def _is_submitter(self, slot: _Slot, executor: bytes) -> bool:
        assert slot.round is not None
        if executor == self.s.me:
            return True
        me = slot.round.membership.index_of(self.s.me)
        return slot.ranking.index(me) < self.s.config.submitters

    def _decided(self, slot: _Slot, decision: Decide) -> None:
        task_id, attempt, cert = slot.task_id, decision.attempt, decision.certificate
        not_before = self.s.state.height
        if slot.round is not None:
            executor = slot.executors.get(attempt, decision.value)
            if not self._is_submitter(slot, executor):
                not_before += SUBMIT_DELAY_BLOCKS
        if decision.kind is DecisionKind.EXECUTOR:
            executor = decision.value
            slot.executors[attempt] = executor
            self.s.task_event(
                task_id, TaskPhase.EXECUTOR_CONFIRMED, f"attempt {attempt}: {executor.hex()[:16]}"
            )
            self._want_task_certificate(
                task_id, TaskCertificate(task_id, attempt, executor, cert), not_before
            )
            if executor == self.s.me:
                self._execute(slot, attempt)
        elif decision.kind is DecisionKind.RESULT:
            self.s.task_event(task_id, TaskPhase.CERTIFIED, decision.value.hex())
            kept = self.kept.get((task_id, attempt))
            if kept is not None:
                kept.certificate = cert
            body = TaskResult(task_id, attempt, decision.value, cert)
            self._want_result(task_id, body, not_before)
        elif decision.kind is DecisionKind.REJECTED:
            self.s.task_event(
                task_id, TaskPhase.REJECTED, f"attempt {attempt}: {decision.value.hex()[:16]}"
            )
            known = [d for (a, d) in slot.verifying if a == attempt]
            report = known[0] if known else _ZERO
            self._want_result(task_id, TaskResult(task_id, attempt, report, cert), not_before)

    def _want_task_certificate(
        self, task_id: bytes, body: TaskCertificate, not_before: int
    ) -> None:
        attempt = body.attempt

        def needed(st: State) -> bool:
            t = st.task(task_id)
            return (
                t is not None
                and t.status not in TASK_CLOSED
                and (t.attempt < attempt or (t.attempt == attempt and t.executor is None))
            )

        def ready(st: State) -> bool:
            t = st.task(task_id)
            return (
                st.height >= not_before
                and t is not None
                and t.status == TaskStatus.ELECTING
                and t.attempt == attempt
            )

        self.s.want(Wanted(("task-certificate", task_id, attempt), body, needed, ready))

    def _want_result(self, task_id: bytes, body: TaskResult, not_before: int) -> None:
        attempt = body.attempt

        def needed(st: State) -> bool:
            t = st.task(task_id)
            return t is not None and t.status not in TASK_CLOSED and t.attempt <= attempt

        def ready(st: State) -> bool:
            t = st.task(task_id)
            return (
                st.height >= not_before
                and t is not None
                and t.status == TaskStatus.EXECUTING
                and t.attempt == attempt
            )

        self.s.want(Wanted(("task-result", task_id, attempt), body, needed, ready))

    # --- executing ---------------------------------------------------------------------------

    def _execute(self, slot: _Slot, attempt: int) -> None:
        if slot.job_spec is None:
            self.s.log(LogLevel.ERROR, "spec-unknown", f"task {slot.task_id.hex()[:16]}")
            self._verdict(slot, LocalVerdict(attempt, _ZERO, False, RejectReason.CANNOT_EXECUTE))
            return
        if not self.s.policy.execute(slot.task_id, attempt):
            return
        self.s.task_event(slot.task_id, TaskPhase.STARTED, f"execute attempt {attempt}")
        self.s.emit(Execute(slot.task_id, attempt, slot.job_spec, Purpose.EXECUTE))

    def on_execution(self, event: ExecutionFinished) -> None:
        """The sandbox finished (as executor, or re-executing as verifier)."""
        task_id, attempt = event.task_id, event.attempt
        report_bytes, output = event.report, event.output
        if event.purpose is Purpose.EXECUTE:
            report_bytes, output = self.s.policy.report(task_id, attempt, report_bytes, output)
        try:
            report = UnverifiedReport.decode(report_bytes)
        except DecodeError as exc:
            raise CoreMisuse(f"ExecutionFinished carries an undecodable report: {exc}") from None
        self.s.task_event(
            task_id, TaskPhase.FINISHED, f"{event.purpose.value}: {report.body.outcome.name}"
        )
        slot = self.slots.get(task_id)
        if event.purpose is Purpose.EXECUTE:
            self._keep(task_id, attempt, _Kept(report_bytes, output))
            if slot is None or slot.round is None:
                return
            report_hash = digest(Domain.REPORT, report_bytes)
            if report.body.outcome in _NOT_RUN:
                verdict = LocalVerdict(attempt, report_hash, False, RejectReason.CANNOT_EXECUTE)
            else:
                verdict = LocalVerdict(attempt, report_hash, True)
            self._verdict(slot, verdict)
            return
        if slot is None:
            return
        pending = [v for v in slot.verifying.values() if v.attempt == attempt and not v.done]
        if not pending or pending[0].verified is None:
            return
        v = pending[0]
        assert v.verified is not None
        compared = compare_reexecution(v.verified, report.body)
        if compared.accepted:
            self._keep(task_id, attempt, _Kept(v.verified.report.encode(), output))
            self._give(slot, v, True, RejectReason.NONE)
        elif compared.reason is VerdictReason.OUTPUT_MISMATCH:
            self.s.log(LogLevel.WARNING, "output-mismatch", compared.detail)
            self._give(slot, v, False, RejectReason.WRONG_OUTPUT)
        else:  # our own run proves nothing either way: the report's checks stand
            self._give(slot, v, True, RejectReason.NONE)

    def _keep(self, task_id: bytes, attempt: int, kept: _Kept) -> None:
        old = self.kept.pop((task_id, attempt), None)
        if old is not None:
            self.kept_bytes -= len(old.report) + len(old.output)
        self.kept[(task_id, attempt)] = kept
        self.kept_bytes += len(kept.report) + len(kept.output)
        while len(self.kept) > EXECUTIONS_MAX or (
            self.kept_bytes > KEPT_BYTES_MAX and len(self.kept) > 1
        ):
            _, gone = self.kept.popitem(last=False)
            self.kept_bytes -= len(gone.report) + len(gone.output)

    # --- verifying ---------------------------------------------------------------------------

    def _need_verdict(self, slot: _Slot, need: NeedVerdict) -> None:
        key = (need.attempt, need.report)
        if key in slot.verifying:
            return
        v = _Verify(need.attempt, need.report, need.executor)
        slot.verifying[key] = v
        if need.executor == self.s.me:
            return  # our own report: the round has our verdict already
        self._fetch(slot, v)

    def _fetch(self, slot: _Slot, v: _Verify) -> None:
        v.tries += 1
        request = TaskRequest(slot.task_id, v.attempt).encode()

        def on_answer(ans: Answer) -> None:
            self._on_report(slot.task_id, v, ans)

        self.s.request(v.executor, PROTO_REPORT, request, on_answer)

    def _on_report(self, task_id: bytes, v: _Verify, ans: Answer) -> None:
        slot = self.slots.get(task_id)
        if slot is None or v.done:
            return
        if isinstance(ans, RequestFailed):
            if v.tries < FETCH_TRIES_MAX:
                key = ("task", task_id, "fetch", v.attempt, v.digest)
                self.s.timer(key, FETCH_RETRY_MS)
            else:
                self.s.log(LogLevel.INFO, "report-unavailable", f"{ans.kind.value} {ans.reason}")
            return
        if digest(Domain.REPORT, ans.data) != v.digest:
            self.s.penalise(v.executor, "wrong-report", PENALTY_INVALID, "digest differs")
            self._give(slot, v, False, RejectReason.INVALID_REPORT)
            return
        if slot.job_spec is None:
            self.s.log(LogLevel.ERROR, "spec-unknown", f"task {task_id.hex()[:16]}")
            return
        view = TaskView(task_id, slot.job_spec, v.executor)
        verdict = verify_report(view, ans.data, self.s.config.verify_policy)
        if not verdict.accepted or verdict.report is None:
            detail = f"{verdict.reason.name}: {verdict.detail}"
            self.s.log(LogLevel.WARNING, "report-rejected", detail)
            self._give(slot, v, False, RejectReason.INVALID_REPORT)
            return
        verified = verdict.report
        if verified.spec is not None and verified.spec.deterministic:
            v.verified = verified
            self.s.task_event(task_id, TaskPhase.STARTED, f"re-execute attempt {v.attempt}")
            self.s.emit(Execute(task_id, v.attempt, slot.job_spec, Purpose.REEXECUTE))
            return
        self._give(slot, v, True, RejectReason.NONE)

    def _give(self, slot: _Slot, v: _Verify, accept: bool, reason: RejectReason) -> None:
        v.done = True
        accept = self.s.policy.verdict(slot.task_id, v.attempt, accept)
        reason = RejectReason.NONE if accept else (reason or RejectReason.OTHER)
        self._verdict(slot, LocalVerdict(v.attempt, v.digest, accept, reason))

    def _verdict(self, slot: _Slot, verdict: LocalVerdict) -> None:
        if slot.round is None or verdict.attempt < slot.round.attempt:
            return
        self._run(slot, slot.round.handle(verdict))

    # --- serving -----------------------------------------------------------------------------

    def serve(self, event: RequestReceived, *, output: bool) -> None:
        """PROTO_REPORT / PROTO_OUTPUT: a report (and its output) this node keeps."""
        try:
            request = TaskRequest.decode(event.data)
        except DecodeError:
            self.s.emit(Respond(event.request_id, error="malformed", penalty=PENALTY_INVALID))
            return
        kept = self.kept.get((request.task_id, request.attempt))
        if kept is None:
            self.s.emit(Respond(event.request_id, error="unknown-report", penalty=0))
            return
        if not output:
            self.s.emit(Respond(event.request_id, data=kept.report))
            return
        data = OutputResponse(kept.report, kept.output, kept.certificate).encode()
        self.s.emit(Respond(event.request_id, data=data))
