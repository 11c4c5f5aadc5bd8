"""`PeerCore`: the whole node as a pure state machine (events in, actions out).

    core = PeerCore(config, state=store.state, tip_commit=store.tip_commit, archive=store)
    actions = core.handle(Started(now_ms))          # then every event the shell sees
    verdict = core.validate_gossip(topic, sender, data)   # the host's gossip validator

It composes the roles of `p2p.roles` over one shared `Services` (state, action buffer, requests,
timers, the node's own transactions):

| role | who | does |
|---|---|---|
| chain (`roles.chain`) | every node | applies finalised blocks; serves and asks for sync |
| validator (`roles.validator`) | `config.validator` | mempool, builds and checks blocks, `Round` |
| operator (`roles.operator`) | `config.operator` | sortition, task `Round`, executes, verifies |
| poster (`roles.poster`) | every node | `SubmitTask`/`FollowTask`: posts, follows, fetches |

The event/action contract, the topics and the protocols are in `p2p.events`; the wire records in
`p2p.wire`; the byzantine hook in `p2p.policy`. When a block is applied the roles react in a
fixed order: the mempool drops what the block consumed, the outbox forgets what it included, the
operator and the poster follow their tasks, the outbox sends what became ready, and a validator
sets up the next height's round (so its first candidate already holds this node's new
transactions).

Invalid input from peers never raises: requests get `Respond(error=...)`, gossip gets `Reject`,
everything else `Penalise`. `CoreMisuse` (and `CoreConfigError`) mean the driver broke the
contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from committee.round import Timing
from ledger.block import CertifiedBlock
from ledger.certificates import QuorumCertificate
from ledger.errors import DecodeError, TransactionError
from ledger.state import State
from ledger.tx import PostTask, Transaction, TxKind, VerifiedTransaction, verify_transaction
from p2p.admission import admit
from p2p.events import (
    ACCEPT,
    PROTO_COMMITTEE,
    PROTO_CONSENSUS,
    PROTO_OUTPUT,
    PROTO_REPORT,
    PROTO_SYNC,
    PROTO_TX,
    TOPIC_BLOCKS,
    TOPIC_SPECS,
    TOPIC_TASKS,
    Action,
    CoreMisuse,
    Event,
    ExecutionFinished,
    FollowTask,
    GossipReceived,
    GossipVerdict,
    Ignore,
    PeerConnected,
    PeerDisconnected,
    Reject,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    Started,
    SubmitTask,
    TimerFired,
)
from p2p.policy import Policy
from p2p.roles.base import ChainArchive, CoreConfig, CoreConfigError, FoldCache, Services
from p2p.roles.chain import ChainRole
from p2p.roles.operator import OperatorRole
from p2p.roles.poster import PosterRole
from p2p.roles.validator import ValidatorRole

if TYPE_CHECKING:
    from ledger.store import Store

__all__ = [
    "ChainArchive",
    "CoreConfig",
    "CoreConfigError",
    "FoldCache",
    "PeerCore",
    "core_from_store",
]

# Penalties for transactions (points; the shell bans at 100). Undecodable or badly signed
# transactions can not come from an honest node; a relayed stale one can.
PENALTY_MALFORMED_TX = 20
PENALTY_BAD_SIGNATURE = 25


class PeerCore:
    """One node: events in, actions out (see the module docstring).

    Build it from the chain state the node has (genesis state, or a reopened store's state and
    tip commit). `archive` serves blocks and credentials older than the core keeps in memory;
    `policy` is the byzantine hook (simulator only); `folds` shares block folds between the
    cores of one process (simulator). Raises CoreConfigError if the configuration does not fit
    the chain (a validator role for an identity outside the validator set)."""

    def __init__(
        self,
        config: CoreConfig,
        *,
        state: State,
        tip_commit: QuorumCertificate | None = None,
        archive: ChainArchive | None = None,
        policy: Policy | None = None,
        folds: FoldCache | None = None,
    ) -> None:
        if config.validator and config.identity.public not in state.validators:
            raise CoreConfigError(
                "CoreConfig.validator is set but this identity is not in the genesis validator "
                "set: drop the validator role or use a validator's key"
            )
        if state.height > 0 and tip_commit is None:
            raise CoreConfigError("a state past genesis needs the tip's commit certificate")
        self.config = config
        self.s = Services(config, state, tip_commit, archive, policy, folds=folds)
        self.chain = ChainRole(self.s, self._on_block)
        self.validator = (
            ValidatorRole(self.s, self._finalise, self.chain.sync_now) if config.validator else None
        )
        self.operator = OperatorRole(self.s, self.chain.sync_now) if config.operator else None
        self.poster = PosterRole(self.s)
        self._started = False
        self._live = False  # set once the chain role first reached the network's tip

    # --- queries (for the shell's status and `why`) ------------------------------------------

    @property
    def state(self) -> State:
        """The ledger state after the tip."""
        return self.s.state

    @property
    def height(self) -> int:
        """The tip's height."""
        return self.s.state.height

    @property
    def caught_up(self) -> bool:
        """True once the node reached the network's tip (submissions wait for it)."""
        return self.chain.caught_up

    @property
    def identity(self) -> bytes:
        """This node's identity public key."""
        return self.s.me

    def why(self, task_id: bytes) -> str:
        """Why this node was or was not drawn for `task_id`, in words."""
        if self.operator is None:
            return "this node does not run the operator role"
        answer = self.operator.why(task_id)
        if answer is not None:
            return answer
        task = self.s.state.task(task_id)
        if task is None:
            return "unknown task (not on the ledger this node follows)"
        return f"not evaluated by this node (the task is {task.status.name})"

    # --- events ------------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to execute, in order.

        Raises CoreMisuse if the driver broke the contract (time going backwards, a second
        Started, an answer to a request never sent, an unknown protocol, a malformed local
        command). Never raises on peer input."""
        s = self.s
        if event.now_ms < s.now_ms:
            raise CoreMisuse(f"now_ms went backwards: {event.now_ms} after {s.now_ms}")
        s.now_ms = event.now_ms
        s.out = []
        try:
            self._dispatch(event)
            if self.chain.caught_up and not self._live:
                self._live = True  # reached the tip: act on what is open now
                if self.operator is not None:
                    self.operator.resume()
            if self.poster.deferred and self._live:
                self.poster.flush()
            if s.outbox_due:
                s.flush_outbox()
            actions = s.out
        finally:
            s.out = []
        return s.policy.outgoing(actions)

    def _dispatch(self, event: Event) -> None:
        match event:
            case Started():
                if self._started:
                    raise CoreMisuse("Started delivered twice")
                self._started = True
                self.chain.start()
                if self.validator is not None:
                    self.validator.on_new_tip()
            case PeerConnected(peer=peer):
                self.chain.peer_connected(peer)
            case PeerDisconnected(peer=peer):
                self.chain.peer_disconnected(peer)
            case GossipReceived():
                self._on_gossip(event)
            case RequestReceived():
                self._on_request(event)
            case ResponseReceived() | RequestFailed():
                self.s.answer(event)
            case TimerFired():
                self._on_timer(event)
            case ExecutionFinished():
                if self.operator is None:
                    raise CoreMisuse("ExecutionFinished without the operator role")
                self.operator.on_execution(event)
            case SubmitTask():
                self.poster.submit(event, caught_up=self.chain.caught_up)
            case FollowTask():
                self.poster.follow(event)
            case _:
                raise CoreMisuse(f"not a core event: {type(event).__name__}")

    # --- gossip ------------------------------------------------------------------------------

    def validate_gossip(self, topic: str, sender: bytes, data: bytes) -> GossipVerdict:
        """The quick validator the shell passes to `host.subscribe`: size, strict decoding,
        signatures, certificates. Pure and cheap (a few signature checks at most)."""
        spec = TOPIC_SPECS.get(topic)
        if spec is None:
            return Reject("unknown-topic", PENALTY_MALFORMED_TX, topic[:64])
        if len(data) > spec.max_message_bytes:
            return Reject("too-large", PENALTY_MALFORMED_TX, f"{len(data)} bytes")
        if topic == TOPIC_BLOCKS:
            return self.chain.validate(data)
        return self._validate_task(data)

    def _validate_task(self, data: bytes) -> GossipVerdict:
        state = self.s.state
        try:
            tx = Transaction.decode(data)
        except DecodeError as exc:
            return Reject("malformed-tx", PENALTY_MALFORMED_TX, str(exc))
        if tx.kind != TxKind.POST_TASK:
            return Reject("not-a-task", PENALTY_MALFORMED_TX, tx.kind.name)
        vtx: VerifiedTransaction | None = None
        body = self.s.cache.body(tx.hash())
        if body is None:
            try:
                vtx = verify_transaction(tx, state.genesis_hash)
            except TransactionError as exc:
                return Reject("bad-signature", PENALTY_BAD_SIGNATURE, str(exc))
            body = vtx.body
        assert isinstance(body, PostTask)
        try:
            admit(state, tx)
        except TransactionError as exc:
            return Reject("invalid-spec", PENALTY_MALFORMED_TX, str(exc))
        params = state.params
        if body.fee < params.min_task_fee or not 1 <= body.tau <= params.tau_max:
            return Reject("invalid-task", PENALTY_MALFORMED_TX, "fee or tau out of bounds")
        account = state.account(tx.signer)
        if account is None:
            return Ignore("unknown-account")
        if tx.nonce < account.nonce:
            return Ignore("stale-nonce")
        if vtx is not None:
            self.s.cache.add(vtx)
        return ACCEPT

    def _on_gossip(self, event: GossipReceived) -> None:
        if event.topic == TOPIC_BLOCKS:
            self.chain.on_gossip(event.sender, event.data)
            return
        if event.topic != TOPIC_TASKS:
            raise CoreMisuse(f"gossip on a topic the core never subscribed to: {event.topic!r}")
        mempool = self.s.mempool
        if mempool is None:
            return  # only validators keep transactions
        vtx = self._checked_tx(event.data)
        if isinstance(vtx, str):
            self.s.penalise(event.sender, vtx, PENALTY_MALFORMED_TX)
            return
        mempool.add(vtx, self.s.state)

    def _checked_tx(self, data: bytes) -> VerifiedTransaction | str:
        """Decode and signature-check a transaction (once: the cache remembers it)."""
        try:
            tx = Transaction.decode(data)
        except DecodeError:
            return "malformed-tx"
        tx_hash = tx.hash()
        body = self.s.cache.body(tx_hash)
        if body is not None:
            return VerifiedTransaction(tx, tx_hash, body)
        try:
            vtx = verify_transaction(tx, self.s.state.genesis_hash)
        except TransactionError:
            return "bad-signature"
        self.s.cache.add(vtx)
        return vtx

    # --- requests ----------------------------------------------------------------------------

    def _on_request(self, event: RequestReceived) -> None:
        protocol = event.protocol
        if protocol == PROTO_SYNC:
            self.chain.serve(event)
        elif protocol == PROTO_TX:
            self._on_tx(event)
        elif protocol == PROTO_CONSENSUS:
            if self.validator is None:
                self.s.emit(Respond(event.request_id, error="not-a-validator", penalty=0))
            else:
                self.validator.on_request(event)
        elif protocol == PROTO_COMMITTEE:
            if self.operator is None:
                self.s.emit(Respond(event.request_id, error="not-an-operator", penalty=0))
            else:
                self.operator.on_request(event)
        elif protocol in (PROTO_REPORT, PROTO_OUTPUT):
            if self.operator is None:
                self.s.emit(Respond(event.request_id, error="unknown-report", penalty=0))
            else:
                self.operator.serve(event, output=protocol == PROTO_OUTPUT)
        else:
            raise CoreMisuse(f"a request on a protocol the core does not serve: {protocol!r}")

    def _on_tx(self, event: RequestReceived) -> None:
        mempool = self.s.mempool
        if mempool is None:
            self.s.emit(Respond(event.request_id, error="not-a-validator", penalty=0))
            return
        vtx = self._checked_tx(event.data)
        if isinstance(vtx, str):
            penalty = PENALTY_BAD_SIGNATURE if vtx == "bad-signature" else PENALTY_MALFORMED_TX
            self.s.emit(Respond(event.request_id, error=vtx, penalty=penalty))
            return
        version = mempool.version
        refused = mempool.add(vtx, self.s.state)
        if refused is None:
            self.s.emit(Respond(event.request_id))
            if mempool.version != version:
                self._relay_tx(event.peer, event.data)
        else:
            self.s.emit(Respond(event.request_id, error=refused, penalty=0))

    def _relay_tx(self, sender: bytes, data: bytes) -> None:
        """Pass a transaction new to our mempool, from a non-validator, to the other validators:
        whichever proposes next has it, even if the signer reached only one of them. Validators
        never relay what another validator sent (no echo), and a copy already in a mempool does
        not travel further. One try each: the signer resends anything not included."""
        validators = [m.identity for m in self.s.state.validators.members]
        if sender in validators:
            return
        for peer in validators:
            if peer != self.s.me:
                self.s.request(peer, PROTO_TX, data)

    # --- timers ------------------------------------------------------------------------------

    def _on_timer(self, event: TimerFired) -> None:
        key = event.key
        if not isinstance(key, tuple) or not key:
            raise CoreMisuse(f"a timer key the core never used: {key!r}")
        owner = key[0]
        if owner == "chain":
            self.chain.on_timer(key)
        elif owner in ("block", "round"):
            if self.validator is not None:
                self.validator.on_timer(key)
        elif owner == "task":
            if self.operator is not None:
                self.operator.on_timer(key)
        elif owner == "poster":
            self.poster.on_timer(key)
        else:
            raise CoreMisuse(f"a timer key the core never used: {key!r}")

    # --- blocks ------------------------------------------------------------------------------

    def _finalise(self, certified: CertifiedBlock, state: State) -> None:
        """A block this validator's round decided (its state already computed)."""
        if self.chain.apply(certified, None, state):
            self.chain.caught_up = True  # our own round finalised it: we are at the tip

    def _on_block(self, certified: CertifiedBlock, old: State, new: State) -> None:
        del old
        s = self.s
        if s.mempool is not None:
            s.mempool.after_block(new)
        s.outbox.drop_included(tx.hash() for tx in certified.block.txs)
        if self.operator is not None:
            self.operator.on_block(certified, new, live=self._live)
        self.poster.on_block(certified, new)
        s.outbox_due = True  # sent at the end of the event (Services.flush_outbox)
        if self.validator is not None and self._started:
            self.validator.on_new_tip()


def core_from_store(
    config: Any,
    keys: Any,
    store: Store,
    policy: Policy | None = None,
    *,
    task_timing: Timing | None = None,
) -> PeerCore:
    """The production core for a node: roles from `config.roles` (a `p2p.nodeconfig.NodeConfig`),
    keys from `keys` (`p2p.node.NodeKeys`), the chain from the reopened `store` (which also
    serves old blocks and credentials). `task_timing` overrides the committee timeouts of task
    rounds (the executor's deadline is at least 60 s by default; tests that kill an executor want
    less). Raises CoreConfigError if the roles do not fit the keys or the chain."""
    roles = {getattr(r, "value", r) for r in config.roles}
    core_config = CoreConfig(
        identity=keys.identity,
        vrf_key=keys.vrf_key,
        validator="validator" in roles,
        operator="operator" in roles,
        block_interval_ms=config.block_interval_ms,
        task_timing=task_timing or Timing(),
    )
    return PeerCore(
        core_config,
        state=store.state,
        tip_commit=store.tip_commit,
        archive=store,
        policy=policy,
    )
