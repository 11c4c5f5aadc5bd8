"""The validator role: build, check and finalise blocks with the committee's BFT round over the
genesis validator set.

For each height h = tip + 1 a validator runs one block `Round` (proposers rotate with the height).
It starts the round as soon as it applied block h-1, with the hash of its own candidate block as
the value it would propose in a later view; the view-0 proposer instead waits one block interval
(collecting transactions) and then proposes. A proposal travels with its block body
(`ConsensusMessage.block`); a validator checks the body (`ledger.chain.check_proposal` with the
node's `admit` rule, and a block time at most `clock_skew_ms_max` ahead of ours) *before* it hands
the proposal to its round, so the round only ever prepares blocks this node checked. When the round
decides, the block and its commit certificate are applied, stored and gossiped (every validator
publishes the same bytes; gossip ids are content addresses, so the copies collapse).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from committee.errors import PENALTY_INVALID
from committee.events import (
    Broadcast,
    Decide,
    GiveUp,
    LocalCredential,
    MessageReceived,
    NeedVerdict,
    Phase,
    ReportMisbehaviour,
    Send,
    TimerFired,
)
from committee.events import StartTimer as RoundTimer
from committee.messages import MessageTag, Proposal, decode_message
from committee.round import Round, RoundConfig
from ledger.block import Block, CertifiedBlock
from ledger.chain import check_proposal
from ledger.errors import DecodeError, LedgerError
from ledger.fold import build_block
from ledger.state import State
from ledger.tx import RoundKind
from p2p.admission import admit, hold_back_tasks
from p2p.events import PROTO_CONSENSUS, TOPIC_BLOCKS, LogLevel, Publish, RequestReceived, Respond
from p2p.roles.base import Services, slash_wanted
from p2p.wire import ConsensusMessage

# Checked block bodies kept per height: one per proposer and view in practice; a byzantine
# validator sending many bodies costs us one fold each, so the table (and that work) is capped.
BODIES_PER_HEIGHT_MAX: Final = 16
# Messages for heights after ours, kept until we get there: a few per validator and height, for
# the next few heights (a validator one block behind its peers is normal).
EARLY_HEIGHTS_MAX: Final = 4
EARLY_PER_HEIGHT_MAX: Final = 256
# Finished rounds kept to answer validators that missed the decision.
OLD_ROUNDS_MAX: Final = 2
# A proposal whose block body we do not have is dropped; it costs the sender a little (an honest
# proposer always attaches the body, but a message can be reordered after a view change).
PENALTY_NO_BODY: Final = 5
PENALTY_INVALID_BLOCK: Final = 50
PENALTY_CLOCK: Final = 5

Finalise = Callable[[CertifiedBlock, State], None]


class ValidatorRole:
    """Block production and finality for one validator (see the module docstring)."""

    def __init__(self, s: Services, finalise: Finalise, want_sync: Callable[[bytes], None]) -> None:
        self.s = s
        self.finalise = finalise
        self.want_sync = want_sync
        self.validators = s.state.validators
        self.height = 0
        self.round: Round | None = None
        self.started = False
        self.bodies: dict[bytes, tuple[Block, State]] = {}
        self.invalid: set[bytes] = set()
        self.early: dict[int, list[tuple[bytes, ConsensusMessage]]] = {}
        self.old_rounds: dict[int, Round] = {}
        self.built_version = -1  # the mempool version our current candidate was built from

    # --- heights -----------------------------------------------------------------------------

    def on_new_tip(self) -> None:
        """The tip moved (or the node started): set up the round of the next height."""
        state = self.s.state
        if self.round is not None:
            self.old_rounds[self.height] = self.round
            while len(self.old_rounds) > OLD_ROUNDS_MAX:
                del self.old_rounds[min(self.old_rounds)]
        self.height = state.height + 1
        config = RoundConfig.for_block(
            self.height, self.validators, self.s.key, timing=self.s.config.block_round_timing()
        )
        self.round = Round(config)
        self.started = False
        self.bodies = {}
        self.invalid = set()
        proposer = self.validators.members[config.ranking[0]].identity
        if proposer == self.s.me:
            self.s.timer(("block", self.height), self.s.config.block_interval_ms)
        else:
            self._start()
        for height in [h for h in self.early if h < self.height]:
            del self.early[height]
        for peer, msg in self.early.pop(self.height, []):
            self._deliver(peer, msg)

    def _build(self) -> bytes:
        """Build our candidate for this height from the mempool; returns its hash."""
        state = self.s.state
        mempool = self.s.mempool
        assert mempool is not None
        self.built_version = mempool.version
        candidates = hold_back_tasks(
            self.s.policy.candidates(list(mempool.candidates(state))),
            state,
            self.s.config.open_tasks_max,
        )
        built = build_block(
            state,
            candidates,
            proposer=self.s.me,
            time_ms=self.s.now_ms,
            parent_commit=self.s.tip_commit,
            cache=self.s.cache,
            admit=admit,
        )
        mempool.drop(tx for tx, _ in built.rejected)
        value = built.block.hash()
        if len(self.bodies) < BODIES_PER_HEIGHT_MAX:
            self.bodies[value] = (built.block, built.state)
        return value

    def _start(self) -> None:
        assert self.round is not None
        assert not self.started
        value = self._build()
        self.started = True
        self._run(self.round.handle(LocalCredential(value)))

    def _refresh(self) -> None:
        """Before the round handles an event that may make us a view's proposer (a timeout, a
        view change), rebuild our candidate if the mempool changed since we built it: a candidate
        built when the round started would leave out what arrived meanwhile (credentials whose
        window is a few blocks long)."""
        rnd = self.round
        mempool = self.s.mempool
        assert rnd is not None
        assert mempool is not None
        if mempool.version == self.built_version or len(self.bodies) >= BODIES_PER_HEIGHT_MAX:
            return
        ranking = rnd.config.ranking
        me = rnd.me
        if me not in (ranking[rnd.view % len(ranking)], ranking[(rnd.view + 1) % len(ranking)]):
            return
        rnd.my_value = self._build()

    def on_timer(self, key: tuple[object, ...]) -> None:
        """("block", h): the proposer's interval ended; ("round", h, instance, view, phase)."""
        if key[0] == "block":
            if key[1] == self.height and not self.started:
                self._start()
            return
        _, height, instance, view, phase = key
        if height != self.height or self.round is None or not self.started:
            return
        assert isinstance(instance, int)
        assert isinstance(view, int)
        assert isinstance(phase, str)
        self._run(self.round.handle(TimerFired(instance, view, Phase(phase))))

    # --- inbound -----------------------------------------------------------------------------

    def on_request(self, event: RequestReceived) -> None:
        """A consensus message from another validator."""
        peer = event.peer
        if peer not in self.validators:
            self.s.emit(Respond(event.request_id, error="not-a-validator", penalty=PENALTY_INVALID))
            return
        try:
            msg = ConsensusMessage.decode(event.data)
        except DecodeError as exc:
            self.s.emit(Respond(event.request_id, error="malformed", penalty=PENALTY_INVALID))
            self.s.log(LogLevel.DEBUG, "malformed-consensus", str(exc))
            return
        self.s.emit(Respond(event.request_id))
        if msg.height < self.height:
            old = self.old_rounds.get(msg.height)
            if old is not None:  # a validator that missed the decision gets the certificate
                self._run(old.handle(MessageReceived(peer, msg.message)), msg.height)
            return
        if msg.height > self.height:
            if msg.height <= self.height + EARLY_HEIGHTS_MAX:
                box = self.early.setdefault(msg.height, [])
                if len(box) < EARLY_PER_HEIGHT_MAX:
                    box.append((peer, msg))
            self.want_sync(peer)  # others are ahead of us
            return
        self._deliver(peer, msg)

    def _deliver(self, peer: bytes, msg: ConsensusMessage) -> None:
        assert self.round is not None
        if msg.block is not None and not self._check_body(peer, msg.block):
            return
        if msg.message[:1] == bytes([MessageTag.PROPOSAL]):
            try:
                _, proposal = decode_message(msg.message)
            except DecodeError:
                proposal = None  # the round reports malformed bytes itself
            if isinstance(proposal, Proposal) and proposal.vote.value not in self.bodies:
                self.s.penalise(peer, "proposal-without-block", PENALTY_NO_BODY)
                return
        if self.started:
            self._refresh()
        self._run(self.round.handle(MessageReceived(peer, msg.message)))

    def _check_body(self, peer: bytes, block: Block) -> bool:
        block_hash = block.hash()
        if block_hash in self.bodies:
            return True
        if block_hash in self.invalid:
            self.s.penalise(peer, "invalid-block", PENALTY_INVALID_BLOCK, "known invalid")
            return False
        header = block.header
        if header.height != self.height:
            self.s.penalise(peer, "wrong-height", PENALTY_INVALID, f"block {header.height}")
            return False
        # A time in our future is refused (a proposer must not run the chain's clock ahead); a
        # time in our past is fine: a candidate built when the round started is proposed only
        # after view changes, and the fold keeps block times from going backwards.
        if header.time_ms > self.s.now_ms + self.s.config.clock_skew_ms_max:
            self.s.penalise(
                peer, "clock-skew", PENALTY_CLOCK, f"{header.time_ms} vs {self.s.now_ms}"
            )
            return False
        if len(self.bodies) >= BODIES_PER_HEIGHT_MAX:
            return False  # enough candidates for this height; no blame
        try:
            state = check_proposal(self.s.state, block, admit=admit, cache=self.s.cache)
        except LedgerError as exc:
            if len(self.invalid) < BODIES_PER_HEIGHT_MAX:
                self.invalid.add(block_hash)
            self.s.penalise(peer, "invalid-block", PENALTY_INVALID_BLOCK, str(exc))
            return False
        self.bodies[block_hash] = (block, state)
        return True

    # --- round actions -----------------------------------------------------------------------

    def _run(self, actions: list[object], height: int | None = None) -> None:
        height = self.height if height is None else height
        others = [m.identity for m in self.validators.members if m.identity != self.s.me]

        def current() -> bool:
            return self.height == height

        for action in actions:
            if isinstance(action, Send):
                data = ConsensusMessage(height, action.data, None).encode()
                self.s.send_round_message(action.to, PROTO_CONSENSUS, data, current)
            elif isinstance(action, Broadcast):
                block = self._body_of(action.data) if height == self.height else None
                data = ConsensusMessage(height, action.data, block).encode()
                for peer in others:
                    self.s.send_round_message(peer, PROTO_CONSENSUS, data, current)
            elif isinstance(action, RoundTimer):
                key = ("round", height, action.instance, action.view, action.phase.value)
                self.s.timer(key, action.duration_ms)
            elif isinstance(action, Decide):
                self._decided(height, action)
            elif isinstance(action, ReportMisbehaviour):
                self.s.penalise(action.peer, action.reason.value, action.penalty, action.detail)
                if action.evidence is not None:
                    self.s.want(slash_wanted(RoundKind.BLOCK, bytes(32), height, action.evidence))
            elif isinstance(action, NeedVerdict | GiveUp):  # pragma: no cover - task rounds only
                raise AssertionError(f"a block round emitted {type(action).__name__}")

    def _body_of(self, data: bytes) -> Block | None:
        if data[:1] != bytes([MessageTag.PROPOSAL]):
            return None
        _, proposal = decode_message(data)
        assert isinstance(proposal, Proposal)
        body = self.bodies.get(proposal.vote.value)
        return None if body is None else body[0]

    def _decided(self, height: int, decision: Decide) -> None:
        if height != self.height or height != self.s.state.height + 1:
            return  # a finished round answering a laggard does not decide again
        body = self.bodies.get(decision.value)
        if body is None:
            # We saw the decision but not the block (we missed the proposal): gossip or sync
            # will bring it, with this very certificate or another one.
            self.s.log(LogLevel.INFO, "decided-without-block", f"height {height}")
            self.want_sync(self.validators.members[height % len(self.validators)].identity)
            return
        block, state = body
        certified = CertifiedBlock(block, decision.certificate)
        self.finalise(certified, state)  # stores it first: nothing acts on an unstored block
        self.s.emit(Publish(TOPIC_BLOCKS, certified.encode()))
