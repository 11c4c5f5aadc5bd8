"""What every role of a `PeerCore` shares: the configuration, the chain tip, the action buffer,
outbound requests and timers, and the node's own transactions (`Services`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import Final, Protocol

import vrf
from committee.round import Timing
from executor.verify import VerifyPolicy
from ledger.block import CertifiedBlock
from ledger.certificates import EquivocationEvidence, QuorumCertificate
from ledger.domains import Domain, digest_parts
from ledger.signing import IdentityKey
from ledger.state import State, offence_key
from ledger.tx import (
    RoundKind,
    SlashEvidence,
    Transaction,
    VerifiedTxCache,
    verify_transaction,
)
from p2p.events import (
    PROTO_TX,
    PROTOCOL_SPECS,
    Action,
    CoreMisuse,
    FailureKind,
    Log,
    LogLevel,
    Penalise,
    Request,
    RequestFailed,
    ResponseReceived,
    StartTimer,
    TaskEvent,
    TaskPhase,
)
from p2p.mempool import Mempool
from p2p.outbox import Outbox, Wanted
from p2p.policy import HONEST, Policy

# Outbound requests awaiting an answer. Every committee and consensus message is a request, so a
# busy member of many rounds has a few thousand in flight at most; past this the oldest are
# forgotten (their answers are then ignored: roles retry on timers, never on answers alone).
PENDING_REQUESTS_MAX: Final = 8192
# Signature-checked transactions remembered (a cache miss only costs one Ed25519 check; bodies of
# posted tasks carry up to 64 KiB each, so this stays well below the ledger's default).
TX_CACHE_MAX: Final = 8192
# Folds shared between cores of one process (`FoldCache`): a few heights of one chain.
FOLD_CACHE_MAX: Final = 64
# A transaction goes to the view-0 proposers of this many next heights: one lost copy must not
# hold it back a whole resend period (a node's later transactions wait for its earlier nonces),
# and validators relay what they take to the others (`PeerCore._relay_tx`): one copy that arrives
# reaches every mempool. At 300 real peers four copies per transaction (every validator) cost
# more than they saved: transaction requests timed out by the thousand.
TX_FANOUT: Final = 2
# Round messages (committee and consensus) are sent again this many times when a request fails
# (timeout, peer unreachable): the round core never resends a proposal, so one lost message would
# otherwise cost a view change. Duplicates are harmless. (Transactions have the outbox instead.)
ROUND_MESSAGE_RETRIES: Final = 2
# Block interval bounds: below 100 ms the validators' round trips do not fit; above 10 minutes a
# task's windows (counted in blocks) stretch past any useful deadline.
BLOCK_INTERVAL_MS_MIN: Final = 100
BLOCK_INTERVAL_MS_MAX: Final = 600_000
# Open tasks (posted, not closed) up to which a proposing validator includes new POST_TASKs; past
# it they wait in the mempool (`admission.hold_back_tasks`). Every open task keeps a roster of
# about tau operators busy, and a network that starts more rounds than its operators can run
# fails them all (timeouts, view changes) instead of finishing some: waiting is better.
OPEN_TASKS_MAX: Final = 256
OPEN_TASKS_MAX_LIMIT: Final = 1 << 20  # the highest value a node accepts for it


_DEFAULT_TIMING: Final = Timing()
_DEFAULT_VERIFY: Final = VerifyPolicy()


class CoreConfigError(CoreMisuse, ValueError):
    """A `CoreConfig` breaks a rule; the message names the field, the value and the fix."""


@dataclasses.dataclass(frozen=True)
class CoreConfig:
    """What a `PeerCore` is: its keys, roles and tunables. Validated once at construction.

    Raises CoreConfigError naming the field (an operator without a VRF key, an interval out of
    range...)."""

    identity: IdentityKey
    vrf_key: vrf.SecretKey | None = None  # operators: the key registered on the ledger
    validator: bool = False  # finalise blocks (the identity must be in the genesis validator set)
    operator: bool = False  # join task committees, execute and verify
    block_interval_ms: int = 2000  # a validator proposes this long after the previous block
    task_timing: Timing = _DEFAULT_TIMING  # committee round timeouts of task rounds
    block_timing: Timing | None = None  # of block rounds; None: derived from block_interval_ms
    verify_policy: VerifyPolicy = _DEFAULT_VERIFY  # what reports this node accepts as verifier
    images: frozenset[str] | None = None  # image digests present locally (None: do not check)
    clock_skew_ms_max: int = 30_000  # a proposal's time may be this far ahead of our clock
    sync_interval_ms: int | None = None  # ask peers for blocks after this long without one
    submitters: int = 2  # roster members (by rank) that submit round certificates at once
    open_tasks_max: int = OPEN_TASKS_MAX  # validators: start no task past this many open ones
    poll_blocks: bool = False  # follow the chain by long poll when gossip misses blocks (chain.py)

    def __post_init__(self) -> None:
        if type(self.identity) is not IdentityKey:
            raise CoreConfigError("CoreConfig.identity must be a ledger.signing.IdentityKey")
        if self.operator and self.vrf_key is None:
            raise CoreConfigError(
                "CoreConfig.operator is set but vrf_key is None: an operator needs the VRF key "
                "it registered on the ledger"
            )
        if not BLOCK_INTERVAL_MS_MIN <= self.block_interval_ms <= BLOCK_INTERVAL_MS_MAX:
            raise CoreConfigError(
                f"CoreConfig.block_interval_ms = {self.block_interval_ms}: must be in "
                f"[{BLOCK_INTERVAL_MS_MIN}, {BLOCK_INTERVAL_MS_MAX}]"
            )
        if self.clock_skew_ms_max < 0:
            raise CoreConfigError("CoreConfig.clock_skew_ms_max must be >= 0")
        if self.sync_interval_ms is not None and self.sync_interval_ms < self.block_interval_ms:
            raise CoreConfigError(
                "CoreConfig.sync_interval_ms must be at least block_interval_ms (or None)"
            )
        if not 1 <= self.submitters <= 64:
            raise CoreConfigError(f"CoreConfig.submitters = {self.submitters}: use 1..64")
        if not 1 <= self.open_tasks_max <= OPEN_TASKS_MAX_LIMIT:
            raise CoreConfigError(
                f"CoreConfig.open_tasks_max = {self.open_tasks_max}: use 1..{OPEN_TASKS_MAX_LIMIT}"
            )

    @property
    def sync_every_ms(self) -> int:
        """How long without a new block before the node asks a peer for blocks."""
        return self.sync_interval_ms or 3 * self.block_interval_ms

    def block_round_timing(self) -> Timing:
        """Block round timeouts. Members start a height's round when they apply the previous
        block, but its first proposer waits one block interval before proposing: the proposal
        timeout covers that interval plus the network."""
        if self.block_timing is not None:
            return self.block_timing
        step = max(1000, self.block_interval_ms)
        return Timing(
            propose_ms=self.block_interval_ms + step,
            collect_ms=min(300, step // 2),
            prepare_ms=step,
            commit_ms=step,
            view_change_retry_ms=step,
        )


class ChainArchive(Protocol):
    """Read access to finalised blocks older than the core keeps in memory (`ledger.store.Store`
    satisfies it). Reads must be synchronous and return only blocks the core itself stored."""

    def blocks(self, first: int, last: int) -> Iterable[CertifiedBlock]: ...

    def transaction(self, tx_hash: bytes) -> tuple[int, Transaction] | None: ...


class FoldCache:
    """Block folds shared by the cores of one process (the simulator runs thousands): the state
    after a block depends only on the parent state and the block, and a parent state is fixed by
    its chain and tip hash, so one core's fold serves every core at the same tip. Commit
    certificates are still checked by each core. Not for cores of different chains."""

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: dict[tuple[bytes, bytes], State] = {}

    def get(self, parent: State, block_hash: bytes) -> State | None:
        """The state after `block_hash` on top of `parent`, if some core folded it."""
        return self._states.get((parent.tip_hash, block_hash))

    def put(self, parent: State, block_hash: bytes, state: State) -> None:
        """Remember a fold (oldest forgotten first)."""
        self._states[(parent.tip_hash, block_hash)] = state
        while len(self._states) > FOLD_CACHE_MAX:
            del self._states[next(iter(self._states))]


Answer = ResponseReceived | RequestFailed
AnswerHandler = Callable[[Answer], None]


def _ignore(_: Answer) -> None:
    return None


class Services:
    """Shared by the roles of one core: state, outputs, requests, timers, own transactions."""

    def __init__(
        self,
        config: CoreConfig,
        state: State,
        tip_commit: QuorumCertificate | None,
        archive: ChainArchive | None,
        policy: Policy | None,
        *,
        folds: FoldCache | None = None,
    ) -> None:
        self.config = config
        self.key = config.identity
        self.me = config.identity.public
        self.state = state
        self.tip_commit = tip_commit
        self.archive = archive
        self.policy = policy or HONEST
        self.now_ms = 0
        self.out: list[Action] = []
        self.cache = VerifiedTxCache(TX_CACHE_MAX)
        self.folds = folds
        self.outbox = Outbox(config.identity, state.genesis_hash)
        self.mempool: Mempool | None = Mempool() if config.validator else None
        self.on_lost: Callable[[Wanted], None] = lambda _: None
        # The outbox is reconciled once per event, after everything the event did (see
        # `flush_outbox`); this says an entry or the tip changed since the last time.
        self.outbox_due = False
        self._pending: dict[int, AnswerHandler] = {}
        self._next_request_id = 1

    # --- outputs -----------------------------------------------------------------------------

    def emit(self, action: Action) -> None:
        """Append an action to the current batch."""
        self.out.append(action)

    def timer(self, key: Hashable, delay_ms: int) -> None:
        """Ask for `TimerFired(key)` after `delay_ms`."""
        self.out.append(StartTimer(key, max(0, delay_ms)))

    def penalise(self, peer: bytes, reason: str, penalty: int, detail: str = "") -> None:
        """Lower `peer`'s score (a no-op for our own identity)."""
        if peer != self.me and penalty > 0:
            self.out.append(Penalise(peer, reason, penalty, detail))

    def log(self, level: LogLevel, what: str, detail: str = "") -> None:
        """Something for the operator's log."""
        self.out.append(Log(level, what, detail))

    def task_event(self, task_id: bytes, phase: TaskPhase, detail: str = "") -> None:
        """A point on a task's timeline."""
        self.out.append(TaskEvent(task_id, phase, self.now_ms, detail))

    # --- requests ----------------------------------------------------------------------------

    def request(
        self,
        peer: bytes,
        protocol: str,
        data: bytes,
        on_answer: AnswerHandler | None = None,
    ) -> int:
        """Send a request; `on_answer` gets the `ResponseReceived` or `RequestFailed`."""
        request_id = self._next_request_id
        self._next_request_id += 1
        if len(self._pending) >= PENDING_REQUESTS_MAX:
            del self._pending[next(iter(self._pending))]
        self._pending[request_id] = on_answer or _ignore
        timeout_ms = PROTOCOL_SPECS[protocol].timeout_ms
        self.out.append(Request(request_id, peer, protocol, data, timeout_ms))
        return request_id

    def send_round_message(
        self,
        peer: bytes,
        protocol: str,
        data: bytes,
        still_wanted: Callable[[], bool],
        *,
        delivered: Callable[[], None] | None = None,
    ) -> None:
        """Send a round message; if the request fails (not refused: lost or timed out), send it
        again, up to ROUND_MESSAGE_RETRIES times, while `still_wanted()`. `delivered` is called
        when the peer acknowledged it (its core took the message)."""
        tries = 0

        def on_answer(ans: Answer) -> None:
            nonlocal tries
            if delivered is not None and isinstance(ans, ResponseReceived):
                delivered()
            if (
                isinstance(ans, RequestFailed)
                and ans.kind in (FailureKind.TIMEOUT, FailureKind.UNREACHABLE)
                and tries < ROUND_MESSAGE_RETRIES
                and still_wanted()
            ):
                tries += 1
                self.request(peer, protocol, data, on_answer)

        self.request(peer, protocol, data, on_answer)

    def answer(self, event: Answer) -> None:
        """Route an answer to whoever asked. Raises CoreMisuse for an id the core never used."""
        if not 1 <= event.request_id < self._next_request_id:
            raise CoreMisuse(f"an answer to request {event.request_id}, which was never sent")
        handler = self._pending.pop(event.request_id, None)
        if handler is not None:  # None: answered before, or forgotten (PENDING_REQUESTS_MAX)
            handler(event)

    # --- own transactions --------------------------------------------------------------------

    def next_proposers(self, count: int = TX_FANOUT) -> list[bytes]:
        """The view-0 proposers of the next `count` heights (block rounds rotate by height)."""
        members = self.state.validators.members
        n = len(members)
        seen: list[bytes] = []
        for height in range(self.state.height + 1, self.state.height + 1 + count):
            identity = members[height % n].identity
            if identity not in seen:
                seen.append(identity)
        return seen

    def send_txs(self, txs: Iterable[Transaction]) -> None:
        """Send transactions to the next proposers (and our own mempool, as a validator). A
        failed send is not retried here: the outbox sends the transaction again after every
        block that did not take it, to that block's next proposers (at the default 2 s blocks
        that is sooner than the request's 5 s timeout; with retries on top, a node whose
        requests timed out under load sent each transaction up to three times per proposer and
        block)."""
        targets = [p for p in self.next_proposers() if p != self.me]
        for tx in txs:
            if self.mempool is not None:
                self.mempool.add(verify_transaction(tx, self.state.genesis_hash), self.state)
            data = tx.encode()
            for peer in targets:
                self.request(peer, PROTO_TX, data)

    def want(self, wanted: Wanted) -> None:
        """Queue a transaction this node wants on the ledger and send what is ready."""
        if not self.outbox.add(wanted):
            if wanted.key not in self.outbox:
                self.log(LogLevel.WARNING, "outbox-full", repr(wanted.key)[:120])
            return
        self.outbox_due = True

    def flush_outbox(self) -> None:
        """Reconcile the outbox with the tip and send what needs sending. The core calls it at
        the end of an event that changed the tip or the outbox (`outbox_due`), not per block: a
        sync answer applies up to SYNC_BLOCKS_MAX blocks at once, and a node catching up sent
        its transactions again after each of them, signed against states already behind."""
        self.outbox_due = False
        send, lost = self.outbox.reconcile(self.state)
        self.send_txs(send)
        for w in lost:
            self.on_lost(w)


def slash_wanted(
    round_kind: RoundKind, subject: bytes, number: int, evidence: EquivocationEvidence
) -> Wanted:
    """An outbox entry for equivocation evidence: needed while the offence is unpunished, the
    offender holds stake and the round's dispute window is open."""
    voter, context = evidence.first.voter, evidence.first.context
    offence = offence_key(digest_parts(Domain.EVIDENCE, voter, context))
    body = SlashEvidence(round_kind, subject, number, evidence)

    def needed(st: State) -> bool:
        op = st.operator(voter)
        if st.get(offence) is not None or op is None or op.stake + op.unbonding == 0:
            return False
        window = st.params.dispute_window_blocks
        if round_kind == RoundKind.BLOCK:
            return st.height - number < window
        task = st.task(subject)
        return task is not None and (
            task.closed_height is None or st.height < task.closed_height + window
        )

    return Wanted(("slash", voter, context), body, needed, lambda _: True)
