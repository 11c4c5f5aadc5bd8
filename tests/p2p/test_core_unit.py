"""Unit tests of `PeerCore` with no network: events in, actions out."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from committee.round import Timing
from ledger.block import CertifiedBlock, verify_commit
from ledger.devnet import DevChain, DevNet
from ledger.errors import InvalidCredential, MalformedPayload
from ledger.signing import IdentityKey
from ledger.state import State, TaskStatus, genesis_state
from ledger.sync import SYNC_WAIT_MS_MAX, SyncRequest, SyncResponse
from ledger.tx import Credential, PostTask, Transaction, Transfer, TxKind, sign_transaction
from p2p import events as ev
from p2p.admission import admit, hold_back_tasks, member_priority, open_tasks
from p2p.core import CoreConfig, CoreConfigError, PeerCore
from p2p.roles.chain import GAP_GRACE_MS, SYNC_HELD_MAX
from p2p.wire import ConsensusMessage
from tests.p2p.core_support import job

NET = DevNet.create(validators=1, operators=2, users=2)
GENESIS = genesis_state(NET.genesis)
USER = NET.users[0]
PEER = NET.users[1].public  # some other node


def _of(actions: list[ev.Action], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def validator_core() -> PeerCore:
    return PeerCore(
        CoreConfig(NET.validators[0], validator=True, block_interval_ms=1000), state=GENESIS
    )


def follower_core(
    state: State = GENESIS, commit: object = None, *, poll_blocks: bool = False
) -> PeerCore:
    config = CoreConfig(USER, poll_blocks=poll_blocks)
    return PeerCore(config, state=state, tip_commit=commit)  # type: ignore[arg-type]


def operator_core(index: int = 0) -> PeerCore:
    op = NET.operators[index]
    return PeerCore(CoreConfig(op.identity, vrf_key=op.vrf_key, operator=True), state=GENESIS)


def dev_blocks(count: int, txs: list[list[Transaction]] | None = None) -> list[CertifiedBlock]:
    chain = DevChain(NET)
    return [chain.extend((txs or [])[i] if txs and i < len(txs) else []) for i in range(count)]


def feed(core: PeerCore, cb: CertifiedBlock, now_ms: int = 0) -> list[ev.Action]:
    data = cb.encode()
    assert core.validate_gossip(ev.TOPIC_BLOCKS, PEER, data) == ev.ACCEPT
    return core.handle(ev.GossipReceived(now_ms, ev.TOPIC_BLOCKS, PEER, data))


# --- the contract ------------------------------------------------------------------------------


def test_every_protocol_and_topic_has_bounds_that_fit_its_records() -> None:
    from p2p.wire import ConsensusMessage, OutputResponse, TaskRequest

    assert {t.name for t in ev.TOPICS} == {ev.TOPIC_TASKS, ev.TOPIC_BLOCKS}
    assert all(
        p.protocol_id.startswith("/posi/") and p.protocol_id.endswith("/1") for p in ev.PROTOCOLS
    )
    specs = ev.PROTOCOL_SPECS
    assert specs[ev.PROTO_CONSENSUS].max_request_bytes >= ConsensusMessage.MAX_BYTES
    assert specs[ev.PROTO_REPORT].max_request_bytes >= TaskRequest.MAX_BYTES
    assert specs[ev.PROTO_OUTPUT].max_response_bytes >= OutputResponse.MAX_BYTES
    assert specs[ev.PROTO_SYNC].max_request_bytes >= SyncRequest.MAX_BYTES
    assert specs[ev.PROTO_SYNC].max_response_bytes >= SyncResponse.MAX_BYTES
    assert specs[ev.PROTO_TX].max_request_bytes >= Transaction.MAX_BYTES
    assert ev.TOPIC_SPECS[ev.TOPIC_TASKS].max_message_bytes >= Transaction.MAX_BYTES
    assert ev.TOPIC_SPECS[ev.TOPIC_BLOCKS].max_message_bytes >= CertifiedBlock.MAX_BYTES


def test_local_misuse_raises_typed_errors() -> None:
    core = follower_core()
    core.handle(ev.Started(100))
    with pytest.raises(ev.CoreMisuse, match="twice"):
        core.handle(ev.Started(100))
    with pytest.raises(ev.CoreMisuse, match="backwards"):
        core.handle(ev.PeerConnected(99, PEER))
    with pytest.raises(ev.CoreMisuse, match="never sent"):
        core.handle(ev.ResponseReceived(100, 12345, b""))
    with pytest.raises(ev.CoreMisuse, match="protocol"):
        core.handle(ev.RequestReceived(100, 1, PEER, "/posi/nope/1", b""))
    with pytest.raises(ev.CoreMisuse, match="timer"):
        core.handle(ev.TimerFired(100, ("nobody",)))
    with pytest.raises(ev.CoreMisuse, match="operator"):
        core.handle(ev.ExecutionFinished(100, bytes(32), 0, ev.Purpose.EXECUTE, b"", b""))
    with pytest.raises(CoreConfigError, match="vrf_key"):
        CoreConfig(USER, operator=True)
    with pytest.raises(CoreConfigError, match="block_interval_ms"):
        CoreConfig(USER, block_interval_ms=1)
    with pytest.raises(CoreConfigError, match="validator set"):
        PeerCore(CoreConfig(USER, validator=True), state=GENESIS)
    blocks = dev_blocks(1)
    with pytest.raises(CoreConfigError, match="commit"):
        PeerCore(CoreConfig(USER), state=_after(blocks))


def _after(blocks: list[CertifiedBlock]) -> State:
    chain = DevChain(NET)
    for cb in blocks:
        chain.extend(cb.block.txs)
    return chain.state


# --- validator ---------------------------------------------------------------------------------


def test_a_lone_validator_proposes_finalises_stores_and_gossips_a_block() -> None:
    core = validator_core()
    started = core.handle(ev.Started(0))
    assert ev.StartTimer(("block", 1), 1000) in started
    assert core.handle(ev.TimerFired(1000, ("block", 2))) == []  # not this height: dropped
    actions = core.handle(ev.TimerFired(1000, ("block", 1)))
    stores = _of(actions, ev.StoreBlock)
    publishes = _of(actions, ev.Publish)
    assert len(stores) == 1
    assert len(publishes) == 1
    # The block is stored before it is gossiped, and the gossip is the stored certified block.
    assert actions.index(stores[0]) < actions.index(publishes[0])
    cb = CertifiedBlock.decode(publishes[0].data)
    assert cb == stores[0].block
    verify_commit(cb.block.header, cb.commit, GENESIS.validators)
    assert core.height == 1
    assert ev.StartTimer(("block", 2), 1000) in actions
    assert core.handle(ev.TimerFired(1001, ("block", 1))) == []  # stale timer: dropped


def test_transactions_from_requests_and_gossip_go_into_the_next_block() -> None:
    core = validator_core()
    core.handle(ev.Started(0))
    transfer = sign_transaction(USER, GENESIS.genesis_hash, 0, Transfer(PEER, 7))
    answer = core.handle(ev.RequestReceived(5, 1, PEER, ev.PROTO_TX, transfer.encode()))
    assert answer == [ev.Respond(1)]
    post = sign_transaction(NET.users[1], GENESIS.genesis_hash, 0, PostTask(job(), 10, 4))
    assert core.validate_gossip(ev.TOPIC_TASKS, PEER, post.encode()) == ev.ACCEPT
    assert core.handle(ev.GossipReceived(6, ev.TOPIC_TASKS, PEER, post.encode())) == []
    actions = core.handle(ev.TimerFired(1000, ("block", 1)))
    (store,) = _of(actions, ev.StoreBlock)
    assert set(store.block.block.txs) == {transfer, post}
    # A replay of the transfer is now stale: refused, no blame.
    again = core.handle(ev.RequestReceived(1001, 2, PEER, ev.PROTO_TX, transfer.encode()))
    assert again == [ev.Respond(2, error="stale-nonce", penalty=0)]


def test_a_validator_relays_a_new_transaction_to_the_other_validators_once() -> None:
    net = DevNet.create(validators=4, operators=1, users=1)
    genesis = genesis_state(net.genesis)
    _, *others = (v.public for v in net.validators)
    core = PeerCore(CoreConfig(net.validators[0], validator=True), state=genesis)
    core.handle(ev.Started(0))
    user = net.users[0]
    tx = sign_transaction(user, genesis.genesis_hash, 0, Transfer(PEER, 7)).encode()
    actions = core.handle(ev.RequestReceived(5, 1, user.public, ev.PROTO_TX, tx))
    relayed = [a for a in _of(actions, ev.Request) if a.protocol == ev.PROTO_TX]
    assert {r.peer for r in relayed} == set(others)  # not back to itself
    assert all(r.data == tx for r in relayed)
    # The same transaction again (the signer resends it), or from another validator: no relay.
    again = core.handle(ev.RequestReceived(6, 2, user.public, ev.PROTO_TX, tx))
    assert again == [ev.Respond(2)]
    tx2 = sign_transaction(user, genesis.genesis_hash, 1, Transfer(PEER, 8)).encode()
    assert core.handle(ev.RequestReceived(7, 3, others[0], ev.PROTO_TX, tx2)) == [ev.Respond(3)]


def test_bad_transactions_are_refused_with_reasons_and_penalties() -> None:
    core = validator_core()
    good = sign_transaction(USER, GENESIS.genesis_hash, 0, Transfer(PEER, 7))
    forged = dataclasses.replace(good, signature=bytes(64))
    assert core.handle(ev.RequestReceived(1, 1, PEER, ev.PROTO_TX, b"\x00junk")) == [
        ev.Respond(1, error="malformed-tx", penalty=20)
    ]
    assert core.handle(ev.RequestReceived(1, 2, PEER, ev.PROTO_TX, forged.encode())) == [
        ev.Respond(2, error="bad-signature", penalty=25)
    ]
    far = sign_transaction(USER, GENESIS.genesis_hash, 500, Transfer(PEER, 7))
    assert core.handle(ev.RequestReceived(1, 3, PEER, ev.PROTO_TX, far.encode())) == [
        ev.Respond(3, error="nonce-too-far", penalty=0)
    ]
    follower = follower_core()
    assert follower.handle(ev.RequestReceived(1, 4, PEER, ev.PROTO_TX, good.encode())) == [
        ev.Respond(4, error="not-a-validator", penalty=0)
    ]


def test_task_gossip_validation() -> None:
    core = follower_core()
    chain = GENESIS.genesis_hash
    post = sign_transaction(USER, chain, 0, PostTask(job(), 10, 4))
    assert core.validate_gossip(ev.TOPIC_TASKS, PEER, post.encode()) == ev.ACCEPT

    def reason(data: bytes, topic: str = ev.TOPIC_TASKS) -> str:
        verdict = core.validate_gossip(topic, PEER, data)
        assert isinstance(verdict, ev.Reject | ev.Ignore)
        return verdict.reason

    assert reason(b"junk") == "malformed-tx"
    assert reason(sign_transaction(USER, chain, 0, Transfer(PEER, 1)).encode()) == "not-a-task"
    assert reason(dataclasses.replace(post, signature=bytes(64)).encode()) == "bad-signature"
    bad_spec = sign_transaction(USER, chain, 0, PostTask(b"not a spec", 10, 4))
    assert reason(bad_spec.encode()) == "invalid-spec"
    too_big_tau = sign_transaction(USER, chain, 0, PostTask(job(), 10, 10_000))
    assert reason(too_big_tau.encode()) == "invalid-task"
    stranger = sign_transaction(NET.validators[0], chain, 0, PostTask(job(), 10, 4))
    assert reason(stranger.encode()) == "unknown-account"
    assert reason(b"x" * (ev.TX_MESSAGE_BYTES_MAX + 1)) == "too-large"
    assert reason(b"x", topic="posi/other/1") == "unknown-topic"


# --- follower and sync -------------------------------------------------------------------------


def test_a_follower_applies_gossiped_blocks_and_fills_gaps_by_sync() -> None:
    blocks = dev_blocks(4)
    core = follower_core()
    core.handle(ev.Started(0))
    (stored,) = _of(feed(core, blocks[0]), ev.StoreBlock)
    assert stored.block == blocks[0]
    assert core.height == 1
    # A block we hold is relayed (accepted by validation) but not applied again.
    assert isinstance(core.validate_gossip(ev.TOPIC_BLOCKS, PEER, blocks[0].encode()), ev.Accept)
    assert not _of(feed(core, blocks[0]), ev.StoreBlock)
    # Block 4 arrives before 2 and 3: kept, and the sender is asked for what is missing.
    actions = feed(core, blocks[3])
    (request,) = _of(actions, ev.Request)
    assert request.protocol == ev.PROTO_SYNC
    assert request.peer == PEER
    assert SyncRequest.decode(request.data) == SyncRequest(2, 64)
    assert core.height == 1
    response = SyncResponse(3, (blocks[1], blocks[2])).encode()
    actions = core.handle(ev.ResponseReceived(10, request.request_id, response))
    assert [s.block.block.header.height for s in _of(actions, ev.StoreBlock)] == [2, 3, 4]
    assert core.height == 4
    assert core.state.state_root == _after(blocks).state_root


def test_a_one_block_gap_waits_for_gossip_before_syncing() -> None:
    blocks = dev_blocks(4)
    core = follower_core()
    core.handle(ev.Started(0))
    feed(core, blocks[0])
    # Block 3 before block 2: no sync yet, a grace timer instead.
    actions = feed(core, blocks[2], now_ms=10)
    assert not _of(actions, ev.Request)
    (timer,) = [t for t in _of(actions, ev.StartTimer) if t.key[:2] == ("chain", "gap")]
    assert timer.delay_ms == GAP_GRACE_MS
    # Block 2 comes by gossip within the grace: both apply and the timer finds nothing to do.
    assert [a.block.block.header.height for a in _of(feed(core, blocks[1], 15), ev.StoreBlock)] == [
        2,
        3,
    ]
    assert not _of(core.handle(ev.TimerFired(20, timer.key)), ev.Request)
    # A later one-block gap that gossip does not fill is synced when the grace ends.
    timer2 = _of(feed(core, dev_blocks(5)[4], now_ms=30), ev.StartTimer)[-1]
    (request,) = _of(core.handle(ev.TimerFired(30 + GAP_GRACE_MS, timer2.key)), ev.Request)
    assert request.protocol == ev.PROTO_SYNC
    assert SyncRequest.decode(request.data).first == 4
    # An old block that is not the one we hold is not relayed.
    header = dataclasses.replace(blocks[1].block.header, time_ms=blocks[1].block.header.time_ms + 1)
    other = dataclasses.replace(
        blocks[1], block=dataclasses.replace(blocks[1].block, header=header)
    )
    assert isinstance(core.validate_gossip(ev.TOPIC_BLOCKS, PEER, other.encode()), ev.Ignore)


def test_a_node_the_gossip_misses_follows_the_chain_by_long_poll() -> None:
    blocks = dev_blocks(5)
    core = follower_core(poll_blocks=True)
    wait = min(SYNC_WAIT_MS_MAX, 2 * core.config.block_interval_ms)
    core.handle(ev.PeerConnected(0, PEER))
    (ask,) = _of(core.handle(ev.Started(0)), ev.Request)
    assert SyncRequest.decode(ask.data) == SyncRequest(1, 64)  # the first ask does not wait
    # Sync, not gossip, brought us to the tip: ask the same peer for the next block, waiting.
    answer = SyncResponse(2, (blocks[0], blocks[1])).encode()
    actions = core.handle(ev.ResponseReceived(1, ask.request_id, answer))
    assert [a.via for a in _of(actions, ev.StoreBlock)] == ["sync", "sync"]
    (poll,) = _of(actions, ev.Request)
    assert (poll.peer, SyncRequest.decode(poll.data)) == (ask.peer, SyncRequest(3, 64, wait))
    # The peer answers when it has block 3: stored, and the next poll goes out.
    actions = core.handle(
        ev.ResponseReceived(2, poll.request_id, SyncResponse(3, (blocks[2],)).encode())
    )
    assert [a.via for a in _of(actions, ev.StoreBlock)] == ["poll"]
    (poll,) = _of(actions, ev.Request)
    assert SyncRequest.decode(poll.data) == SyncRequest(4, 64, wait)
    # Gossip brings block 4 before the poll's answer: gossip feeds us, the polling ends.
    assert [a.via for a in _of(feed(core, blocks[3], 3), ev.StoreBlock)] == ["gossip"]
    late = SyncResponse(4, (blocks[3],)).encode()
    assert not _of(core.handle(ev.ResponseReceived(4, poll.request_id, late)), ev.Request)
    # Periodic sync again (no block for a while); an empty answer to a poll ends it too.
    (ask,) = _of(core.handle(ev.TimerFired(10_000, ("chain", "sync"))), ev.Request)
    assert SyncRequest.decode(ask.data) == SyncRequest(5, 64)
    answer = SyncResponse(5, (blocks[4],)).encode()
    (poll,) = _of(core.handle(ev.ResponseReceived(10_001, ask.request_id, answer)), ev.Request)
    empty = SyncResponse(5, ()).encode()
    assert not core.handle(ev.ResponseReceived(15_001, poll.request_id, empty))
    assert core.height == 5


def test_without_poll_blocks_a_sync_answer_that_reaches_the_tip_asks_nothing_more() -> None:
    blocks = dev_blocks(2)
    core = follower_core()
    core.handle(ev.PeerConnected(0, PEER))
    (ask,) = _of(core.handle(ev.Started(0)), ev.Request)
    answer = SyncResponse(2, (blocks[0], blocks[1])).encode()
    actions = core.handle(ev.ResponseReceived(1, ask.request_id, answer))
    assert [a.via for a in _of(actions, ev.StoreBlock)] == ["sync", "sync"]
    assert not _of(actions, ev.Request)
    assert core.height == 2


def test_without_a_hint_a_node_syncs_from_a_validator_and_from_a_peer_after_one_failed() -> None:
    validator = NET.validators[0].public
    core = follower_core()
    every = core.config.sync_every_ms
    core.handle(ev.PeerConnected(0, PEER))
    (ask,) = _of(core.handle(ev.Started(0)), ev.Request)
    assert ask.peer == validator  # not the connected peer, which may be as far behind as we are
    core.handle(ev.RequestFailed(1, ask.request_id, ev.FailureKind.TIMEOUT))
    (ask,) = _of(core.handle(ev.TimerFired(every, ("chain", "sync"))), ev.Request)
    assert ask.peer == PEER  # the validator did not answer: a connected peer, once
    core.handle(ev.ResponseReceived(every + 1, ask.request_id, SyncResponse(0, ()).encode()))
    (ask,) = _of(core.handle(ev.TimerFired(2 * every, ("chain", "sync"))), ev.Request)
    assert ask.peer == validator


def test_a_sync_answer_of_several_blocks_sends_the_nodes_transactions_once() -> None:
    """The outbox is reconciled at the end of an event, not after each block it applied: a
    node catching up sent its transactions again after every block of a sync answer."""
    chain, _, blocks = _posted_chain()
    third = chain.extend()
    core = operator_core(0)
    (ask,) = _of(core.handle(ev.Started(0)), ev.Request)
    core.handle(ev.ResponseReceived(1, ask.request_id, SyncResponse(1, (blocks[0],)).encode()))
    assert core.caught_up  # live: the node acts on the blocks it applies from here on
    every = core.config.sync_every_ms
    (ask,) = _of(core.handle(ev.TimerFired(every + 1, ("chain", "sync"))), ev.Request)
    answer = SyncResponse(3, (blocks[1], third)).encode()
    actions = core.handle(ev.ResponseReceived(every + 2, ask.request_id, answer))
    assert [a.block.block.header.height for a in _of(actions, ev.StoreBlock)] == [2, 3]
    (sent,) = [r for r in _of(actions, ev.Request) if r.protocol == ev.PROTO_TX]
    assert Transaction.decode(sent.data).kind == TxKind.CREDENTIAL  # drawn at block 2


def test_a_sync_request_that_waits_is_held_until_the_block_comes() -> None:
    blocks = dev_blocks(3)
    server = follower_core()
    feed(server, blocks[0])
    feed(server, blocks[1])

    def ask(request_id: int, request: SyncRequest, now_ms: int = 1) -> list[ev.Action]:
        return server.handle(
            ev.RequestReceived(now_ms, request_id, PEER, ev.PROTO_SYNC, request.encode())
        )

    def answered(actions: list[ev.Action]) -> dict[int, tuple[int, int]]:
        """request id -> (tip, heights sent) of each Respond."""
        out = {}
        for r in _of(actions, ev.Respond):
            response = SyncResponse.decode(r.data)
            out[r.request_id] = (response.tip_height, len(response.blocks))
        return out

    # A waiting request for a block we have is answered at once, like any other.
    assert answered(ask(1, SyncRequest(2, 64, 4000))) == {1: (2, 1)}
    # One for the next block is held: a timer, no answer...
    (timer,) = _of(ask(2, SyncRequest(3, 64, 4000)), ev.StartTimer)
    assert (timer.key, timer.delay_ms) == (("chain", "held", 2), 4000)
    # ...until the block comes: then it is answered with it, and its timer finds nothing to do.
    assert answered(feed(server, blocks[2], 2)) == {2: (3, 1)}
    assert not server.handle(ev.TimerFired(4001, timer.key))
    # A request whose wait ends first is answered with what we have (no block past our tip).
    (timer,) = _of(ask(3, SyncRequest(4, 64, 1000), 5000), ev.StartTimer)
    assert answered(server.handle(ev.TimerFired(6000, timer.key))) == {3: (3, 0)}
    # At most SYNC_HELD_MAX are held; past it a request is answered at once.
    for request_id in range(100, 100 + SYNC_HELD_MAX):
        assert not answered(ask(request_id, SyncRequest(4, 64, 1000), 6000))
    assert answered(ask(999, SyncRequest(4, 64, 1000), 6000)) == {999: (3, 0)}


def test_forged_and_malformed_blocks_are_rejected() -> None:
    blocks = dev_blocks(2)
    core = follower_core()
    forged_commit = dataclasses.replace(
        blocks[0].commit,
        signers=tuple(
            dataclasses.replace(s, signature=bytes(64)) for s in blocks[0].commit.signers
        ),
    )
    forged = CertifiedBlock(blocks[0].block, forged_commit)
    other = DevNet.create(validators=1, chain_name="another")
    foreign = DevChain(other).extend()

    def verdict(data: bytes) -> ev.GossipVerdict:
        return core.validate_gossip(ev.TOPIC_BLOCKS, PEER, data)

    def rejected(data: bytes) -> tuple[str, int]:
        v = verdict(data)
        assert isinstance(v, ev.Reject)
        return v.reason, v.penalty

    assert rejected(forged.encode()) == ("bad-commit", 50)
    assert rejected(b"\x93garbage") == ("malformed-block", 20)
    assert rejected(foreign.encode()) == ("wrong-chain", 50)
    # A block with a valid certificate that does not fold (wrong parent) costs its sender.
    wrong_parent = dataclasses.replace(blocks[1].block.header, height=1, parent_commit=None)
    bad = CertifiedBlock(
        dataclasses.replace(blocks[1].block, header=wrong_parent), blocks[1].commit
    )
    actions = core.handle(ev.GossipReceived(1, ev.TOPIC_BLOCKS, PEER, bad.encode()))
    assert [p.reason for p in _of(actions, ev.Penalise)] == ["invalid-block"]
    assert core.height == 0


def test_sync_is_served_and_bad_sync_answers_are_penalised() -> None:
    blocks = dev_blocks(3)
    server = follower_core()
    for cb in blocks:
        feed(server, cb)
    request = SyncRequest(2, 64).encode()
    (respond,) = server.handle(ev.RequestReceived(1, 7, PEER, ev.PROTO_SYNC, request))
    assert isinstance(respond, ev.Respond)
    assert respond.error is None
    response = SyncResponse.decode(respond.data)
    assert response.tip_height == 3
    assert response.blocks == (blocks[1], blocks[2])
    assert server.handle(ev.RequestReceived(1, 8, PEER, ev.PROTO_SYNC, b"?")) == [
        ev.Respond(8, error="malformed", penalty=20)
    ]

    client = follower_core()
    client.handle(ev.PeerConnected(0, PEER))
    (ask,) = _of(client.handle(ev.Started(0)), ev.Request)
    actions = client.handle(ev.ResponseReceived(1, ask.request_id, b"junk"))
    assert [(p.peer, p.reason) for p in _of(actions, ev.Penalise)] == [(ask.peer, "malformed-sync")]
    # The periodic check asks again; an answer that skips a block is refused whole.
    (ask,) = _of(client.handle(ev.TimerFired(10_000, ("chain", "sync"))), ev.Request)
    skipping = SyncResponse(3, (blocks[1], blocks[2])).encode()
    actions = client.handle(ev.ResponseReceived(10_001, ask.request_id, skipping))
    assert [p.reason for p in _of(actions, ev.Penalise)] == ["invalid-sync"]
    assert client.height == 0


# --- operator ----------------------------------------------------------------------------------


def _posted_chain(tau: int = 64) -> tuple[DevChain, bytes, list[CertifiedBlock]]:
    chain = DevChain(NET)
    post = chain.sign(USER, PostTask(job(), 100, tau))
    first = chain.extend([post])
    task_id = next(iter(k[1:] for k in chain.state.changed if k[:1] == b"\x03"))
    second = chain.extend()
    return chain, task_id, [first, second]


def test_an_operator_draws_once_the_seed_is_known_and_sends_an_admissible_credential() -> None:
    chain, task_id, blocks = _posted_chain()
    core = operator_core(0)
    core.handle(ev.Started(0))
    assert _of(feed(core, blocks[0]), ev.TaskEvent) == []  # the seed is not known yet
    actions = feed(core, blocks[1])
    (drawn,) = _of(actions, ev.TaskEvent)
    assert drawn.phase is ev.TaskPhase.DRAWN
    assert drawn.task_id == task_id
    requests = [r for r in _of(actions, ev.Request) if r.protocol == ev.PROTO_TX]
    assert {r.peer for r in requests} == {NET.validators[0].public}
    tx = Transaction.decode(requests[0].data)
    assert tx.kind == TxKind.CREDENTIAL
    body = tx.body()
    assert isinstance(body, Credential)
    admit(chain.state, tx)  # the validators' sortition check accepts it...
    lie = sign_transaction(
        NET.operators[0].identity,
        chain.state.genesis_hash,
        tx.nonce,
        dataclasses.replace(body, weight=body.weight + 1),
    )
    with pytest.raises(InvalidCredential, match="sortition gives"):
        admit(chain.state, lie)  # ...and refuses a claimed weight sortition did not give
    assert core.why(task_id) == f"drawn with weight {body.weight}"
    # Included, the credential puts the operator on the roster (the fold accepts it).
    chain.extend([tx])
    assert NET.operators[0].identity.public in {
        m.identity for m in chain.state.task(task_id).roster
    }  # type: ignore[union-attr]


def _credentials(actions: list[ev.Action]) -> list[Transaction]:
    txs = [
        Transaction.decode(r.data) for r in _of(actions, ev.Request) if r.protocol == ev.PROTO_TX
    ]
    return [tx for tx in txs if tx.kind == TxKind.CREDENTIAL]


def test_an_operator_draws_again_on_the_new_seed_when_a_window_closed_empty() -> None:
    chain, task_id, blocks = _posted_chain()
    core = operator_core(0)
    core.handle(ev.Started(0))
    feed(core, blocks[0])
    (first,) = _credentials(feed(core, blocks[1]))
    # The blocks leave the credential out until the window closes empty: the task seeds again.
    for _ in range(NET.genesis.params.credential_window_blocks + 1):
        actions = feed(core, chain.extend())
    task = chain.state.task(task_id)
    assert task is not None
    assert (task.status, bool(task.draw_until)) == (TaskStatus.SEEDING, True)
    assert not _credentials(actions)  # the old proof is not sent again
    assert core.why(task_id) == "drawn, but the window closed empty or too light: drawn again"
    # One block later the new seed is computable: the operator draws on it.
    (again,) = _credentials(feed(core, chain.extend()))
    body, old = again.body(), first.body()
    assert isinstance(body, Credential)
    assert isinstance(old, Credential)
    assert body.vrf_proof != old.vrf_proof
    admit(chain.state, again)
    chain.extend([])  # the seed is fixed; the credential lands in the block after
    chain.extend([again])
    roster = chain.state.task(task_id).roster  # type: ignore[union-attr]
    assert NET.operators[0].identity.public in {m.identity for m in roster}


def test_an_operator_whose_credential_landed_on_a_roster_too_light_draws_again() -> None:
    chain, task_id, blocks = _posted_chain(tau=64)
    core = operator_core(0)
    core.handle(ev.Started(0))
    feed(core, blocks[0])
    (first,) = _credentials(feed(core, blocks[1]))
    body = first.body()
    assert isinstance(body, Credential)
    assert body.weight < NET.genesis.params.min_roster_weight(64)  # alone, it is too light
    feed(core, chain.extend([]))  # the seed is fixed; the credential lands in the block after
    feed(core, chain.extend([first]))
    assert [m.identity for m in chain.state.task(task_id).roster] == [  # type: ignore[union-attr]
        NET.operators[0].identity.public
    ]
    while chain.state.task(task_id).status == TaskStatus.DRAWING:  # type: ignore[union-attr]
        actions = feed(core, chain.extend())
    task = chain.state.task(task_id)
    assert task is not None
    assert (task.status, task.roster) == (TaskStatus.SEEDING, ())  # dropped by the ledger
    assert not _credentials(actions)
    assert core.why(task_id) == "drawn, but the window closed empty or too light: drawn again"
    assert not [r for r in _of(actions, ev.Request) if r.protocol == ev.PROTO_COMMITTEE]
    (again,) = _credentials(feed(core, chain.extend()))
    assert again.body().vrf_proof != body.vrf_proof  # type: ignore[union-attr]
    admit(chain.state, again)


def test_drawn_operators_connect_ahead_to_the_likely_proposers_and_these_to_everyone() -> None:
    """Votes go to a view's proposer: the two best-ranked members connect to every co-member,
    the others to those two, as the credentials land (before the round needs the links)."""
    net = DevNet.create(validators=1, operators=5, users=1)
    state = genesis_state(net.genesis)
    chain = DevChain(net)
    first = chain.extend([chain.sign(net.users[0], PostTask(job(), 100, 64))])
    blocks = [first, chain.extend()]
    cores, credentials = [], []
    for op in net.operators:
        core = PeerCore(CoreConfig(op.identity, vrf_key=op.vrf_key, operator=True), state=state)
        core.handle(ev.Started(0))
        for block in blocks:
            actions = feed(core, block)
        cores.append(core)
        credentials.append(Transaction.decode(_of(actions, ev.Request)[0].data))
    members = [op.identity.public for op in net.operators]
    ranked = sorted(
        members,
        key=lambda m: member_priority(
            *next((c.body().vrf_proof, c.body().weight) for c in credentials if c.signer == m)
        ),
    )
    leaders = set(ranked[:2])
    # The last-ranked member's credential lands alone first: it is a likely proposer so far.
    early = chain.extend([c for c in credentials if c.signer == ranked[-1]])
    late = chain.extend([c for c in credentials if c.signer != ranked[-1]])
    for core, me in zip(cores, members, strict=True):
        asked = [a.peer for a in _of(feed(core, early), ev.Connect)]
        asked += [a.peer for a in _of(feed(core, late), ev.Connect)]
        assert me not in asked  # never itself
        assert len(asked) == len(set(asked))  # once each
        if me in leaders:
            assert set(asked) == set(members) - {me}
        elif me == ranked[-1]:
            assert set(asked) == leaders  # its own credential alone asks for nothing
        else:
            # Ranked above the only co-member landed first, it looked like a proposer then.
            assert set(asked) == {ranked[-1]} | leaders


def test_a_member_behind_the_roster_block_asks_the_first_co_member_it_hears_for_blocks() -> None:
    """A committee message before the block that starts the round: the sender holds that block,
    so the member syncs from it at once (once per height), and runs the message later."""
    _, task_id, blocks = _posted_chain()
    core = operator_core(0)
    core.handle(ev.Started(0))
    for block in blocks:
        feed(core, block)  # drawn; its credential is on its way, no roster yet
    other = NET.operators[1].identity.public
    early = b"\x02" + task_id + b"\x90"

    def hear(rid: int, peer: bytes) -> list[ev.Request]:
        actions = core.handle(ev.RequestReceived(5, rid, peer, ev.PROTO_COMMITTEE, early))
        assert _of(actions, ev.Respond) == [ev.Respond(rid)]  # kept for the round, no blame
        return [r for r in _of(actions, ev.Request) if r.protocol == ev.PROTO_SYNC]

    (sync,) = hear(1, other)
    assert sync.peer == other
    assert SyncRequest.decode(sync.data).first == len(blocks) + 1  # the blocks after our tip
    assert hear(2, PEER) == []  # once per height


def test_a_transaction_is_sent_again_after_each_block_that_did_not_take_it() -> None:
    chain, _, blocks = _posted_chain()
    core = operator_core(0)
    core.handle(ev.Started(0))
    feed(core, blocks[0])

    def sent(actions: list[ev.Action]) -> list[ev.Request]:
        return [r for r in _of(actions, ev.Request) if r.protocol == ev.PROTO_TX]

    (first,) = sent(feed(core, blocks[1]))
    # A failed request is not retried by itself (the outbox is the retry)...
    timeout = ev.FailureKind.TIMEOUT
    assert _of(core.handle(ev.RequestFailed(1, first.request_id, timeout)), ev.Request) == []
    # ...a block without the transaction sends it again, a block that took it ends the sends.
    (again,) = sent(feed(core, chain.extend(), now_ms=2))
    assert again.data == first.data
    assert sent(feed(core, chain.extend([Transaction.decode(first.data)]), now_ms=3)) == []
    assert sent(feed(core, chain.extend(), now_ms=4)) == []


def test_an_operator_not_drawn_says_why() -> None:
    _, task_id, blocks = _posted_chain(tau=1)
    # With tau 1 over two operators at most one is drawn; look for one that was not.
    for index in (0, 1):
        core = operator_core(index)
        core.handle(ev.Started(0))
        feed(core, blocks[0])
        events = _of(feed(core, blocks[1]), ev.TaskEvent)
        if events[0].phase is ev.TaskPhase.NOT_DRAWN:
            assert events[0].detail == "weight-zero"
            assert core.why(task_id).startswith("weight-zero: no sub-user drawn")
            return
    raise AssertionError("both operators drawn with tau 1")


def test_a_proposer_holds_back_tasks_past_the_open_tasks_max_with_their_signers_rest() -> None:
    chain, _, _ = _posted_chain()
    assert open_tasks(chain.state) == 1
    gh = chain.state.genesis_hash
    other = NET.users[1]

    def post(who: IdentityKey, nonce: int) -> Transaction:
        return sign_transaction(who, gh, nonce, PostTask(job(bytes([nonce])), 100, 4))

    a1, a2 = post(USER, 1), sign_transaction(USER, gh, 2, Transfer(PEER, 7))
    b0, b1 = post(other, 0), post(other, 1)
    c0 = sign_transaction(NET.operators[0].identity, gh, 0, Transfer(PEER, 7))
    txs = [a1, a2, b0, b1, c0]
    assert hold_back_tasks(txs, chain.state, 4) == txs  # room for three more tasks
    # Room for one: b0 waits, and so does b1 after it (no nonce gaps); others go on.
    assert hold_back_tasks(txs, chain.state, 2) == [a1, a2, c0]
    # No room: every task waits, with what its signer sent after it.
    assert hold_back_tasks(txs, chain.state, 1) == [c0]
    # The held transactions stay valid for a later block: nothing about them was rejected.
    chain.extend([a1, a2, c0])
    assert open_tasks(chain.state) == 2


def test_admission_refuses_invalid_job_specs() -> None:
    tx = sign_transaction(USER, GENESIS.genesis_hash, 0, PostTask(b"\x01nope", 10, 4))
    with pytest.raises(MalformedPayload, match="JobSpec"):
        admit(GENESIS, tx)


def test_committee_messages_for_unknown_rounds_and_reports_are_refused() -> None:
    core = operator_core(0)
    _, task_id, _ = _posted_chain()
    header = b"\x02" + task_id + b"\x90"
    assert core.handle(ev.RequestReceived(1, 1, PEER, ev.PROTO_COMMITTEE, header)) == [
        ev.Respond(1, error="unknown-round", penalty=5)
    ]
    from p2p.wire import TaskRequest

    ask = TaskRequest(task_id, 0).encode()
    assert core.handle(ev.RequestReceived(1, 2, PEER, ev.PROTO_OUTPUT, ask)) == [
        ev.Respond(2, error="unknown-report", penalty=0)
    ]


# --- poster ------------------------------------------------------------------------------------


def test_a_poster_signs_gossips_and_follows_a_task_once_it_reached_the_tip() -> None:
    core = follower_core()
    core.handle(ev.PeerConnected(0, PEER))
    (sync,) = _of(core.handle(ev.Started(0)), ev.Request)
    waiting = core.handle(ev.SubmitTask(0, 42, job(), 100, 8))
    assert [a.what for a in _of(waiting, ev.Log)] == ["submit-waits-for-sync"]
    assert _of(waiting, ev.TaskSubmitted) == []
    assert not core.caught_up
    # The peer has nothing beyond genesis: the node is at the tip and signs.
    actions = core.handle(ev.ResponseReceived(5, sync.request_id, SyncResponse(0, ()).encode()))
    assert core.caught_up
    (submitted,) = _of(actions, ev.TaskSubmitted)
    (publish,) = _of(actions, ev.Publish)
    (posted,) = _of(actions, ev.TaskEvent)
    assert submitted.ref == 42
    assert publish.topic == ev.TOPIC_TASKS
    assert publish.data == submitted.tx
    assert posted.phase is ev.TaskPhase.POSTED
    assert posted.task_id == submitted.task_id
    tx = Transaction.decode(publish.data)
    assert tx.kind == TxKind.POST_TASK
    # Once a block includes it, the poster's timeline moves on.
    chain = DevChain(NET)
    cb = chain.extend([tx])
    events = _of(feed(core, cb, now_ms=10), ev.TaskEvent)
    assert [(e.task_id, e.phase) for e in events] == [(submitted.task_id, ev.TaskPhase.INCLUDED)]


@pytest.mark.parametrize(
    ("spec", "fee", "tau", "match"),
    [
        (b"not a spec", 100, 8, "JobSpec"),
        (None, 0, 8, "min_task_fee"),
        (None, 100, 1000, "tau"),
        (None, 10**15, 8, "holds"),
    ],
)
def test_a_bad_submission_is_local_misuse(
    spec: bytes | None, fee: int, tau: int, match: str
) -> None:
    core = follower_core()
    with pytest.raises(ev.CoreMisuse, match=match):
        core.handle(ev.SubmitTask(0, 1, job() if spec is None else spec, fee, tau))


def test_block_round_timing_covers_the_proposers_interval() -> None:
    config = CoreConfig(USER, block_interval_ms=2000)
    timing = config.block_round_timing()
    assert timing.propose_ms > config.block_interval_ms
    custom = Timing(propose_ms=5000)
    assert CoreConfig(USER, block_timing=custom).block_round_timing() is custom


def test_a_validator_checks_a_proposed_block_before_its_round_sees_it() -> None:
    net2 = DevNet.create(validators=2, operators=1, users=1)
    state = genesis_state(net2.genesis)
    me, other = net2.validators
    core = PeerCore(CoreConfig(me, validator=True, block_interval_ms=1000), state=state)
    core.handle(ev.Started(0))
    chain = DevChain(net2)
    skew = core.config.clock_skew_ms_max

    def offer(time_ms: int, request_id: int) -> list[ev.Action]:
        block = chain.propose([], time_ms=time_ms).block
        message = ConsensusMessage(1, b"\x01" + bytes(40), block).encode()
        return core.handle(
            ev.RequestReceived(1000, request_id, other.public, ev.PROTO_CONSENSUS, message)
        )

    # From the future: refused before any fold.
    ahead = offer(1000 + skew + 1, 1)
    assert [(p.reason, p.peer) for p in _of(ahead, ev.Penalise)] == [("clock-skew", other.public)]
    # From the past (a candidate built before view changes) is fine: the body is accepted and the
    # round gets the (here malformed) round message, which it reports itself.
    past = offer(0, 2)
    assert [p.reason for p in _of(past, ev.Penalise)] == ["malformed"]
    # A non-validator may not speak in consensus at all.
    stranger = core.handle(ev.RequestReceived(1000, 3, USER.public, ev.PROTO_CONSENSUS, b"\x00"))
    assert stranger == [ev.Respond(3, error="not-a-validator", penalty=25)]


def test_store_block_actions_persist_and_a_core_restarts_from_the_store(tmp_path: Path) -> None:
    from ledger.store import Store
    from p2p.core import core_from_store

    config = SimpleNamespace(roles={"validator"}, block_interval_ms=1000)
    keys = SimpleNamespace(identity=NET.validators[0], vrf_key=None)
    path = tmp_path / "chain.sqlite"
    with Store.open(path, NET.genesis) as store:
        core = core_from_store(config, keys, store)
        core.handle(ev.Started(0))
        for height in (1, 2):
            actions = core.handle(ev.TimerFired(1000 * height, ("block", height)))
            for action in _of(actions, ev.StoreBlock):
                store.append(action.block, action.state)  # what the shell does, in order
        assert store.height == 2
    with Store.open(path, NET.genesis) as store:
        again = core_from_store(config, keys, store)
        assert again.height == 2
        assert again.state.state_root == core.state.state_root
        again.handle(ev.Started(5000))
        (store_action,) = _of(again.handle(ev.TimerFired(6000, ("block", 3))), ev.StoreBlock)
        assert store_action.block.block.header.parent_commit == store.tip_commit
        store.append(store_action.block, store_action.state)
        # Blocks from before the restart come from the store (the archive).
        served = again.handle(
            ev.RequestReceived(6001, 1, PEER, ev.PROTO_SYNC, SyncRequest(1, 64).encode())
        )
        (respond,) = _of(served, ev.Respond)
        assert [cb.block.header.height for cb in SyncResponse.decode(respond.data).blocks] == [
            1,
            2,
            3,
        ]
