"""PeerCores wired together in memory (4 validators, 8 operators, 1 poster; seeded queue, fake
sandbox): a task end to end, executor failover, a validator stopping, an operator restarting,
forged credentials, malformed and forged messages. Simulated time only: nothing sleeps."""

from __future__ import annotations

import dataclasses

from committee.messages import NewView, decode_message
from ledger.block import CertifiedBlock
from ledger.certificates import (
    Membership,
    VoteKind,
    result_round_id,
    verify_certificate,
)
from ledger.devnet import DEV_BALANCE, DEV_STAKE
from ledger.domains import Domain, digest
from ledger.genesis import BPS
from ledger.state import TaskStatus
from ledger.sync import SyncRequest
from ledger.tx import (
    Credential,
    PostTask,
    TaskCertificate,
    TaskResult,
    Transfer,
    TxKind,
    sign_transaction,
)
from p2p import events as ev
from p2p.policy import Policy
from p2p.wire import ConsensusMessage
from tests.p2p.core_support import MemNet, MemNode, job

DEADLINE_MS = 120_000  # simulated: a task takes ~10 blocks of 1 s; failover adds a deadline


def _settle(net: MemNet, height: int) -> None:
    assert net.run_until(lambda: all(n.state.height >= height for n in net.alive()), 60_000)


def _result_tx(node: MemNode, task_id: bytes) -> tuple[TaskResult, int]:
    for cb in node.stored:
        for tx in cb.block.txs:
            if tx.kind == TxKind.TASK_RESULT:
                body = tx.body()
                assert isinstance(body, TaskResult)
                if body.task_id == task_id and body.certificate.kind == VoteKind.RESULT_ACCEPT:
                    return body, cb.block.header.height
    raise AssertionError("no accepted TASK_RESULT stored")


def _operator_by_identity(net: MemNet, identity: bytes) -> MemNode:
    return net.by_identity[identity]


def test_one_task_end_to_end() -> None:
    net = MemNet(1)
    net.start()
    _settle(net, 3)
    spec = job(b"the input, echoed")
    poster = net.nodes["u0"]
    task_id = net.submit("u0", spec)
    assert net.run_until(lambda: bool(poster.results), DEADLINE_MS)

    # Every node followed the same chain: one state root at the tip.
    _settle(net, poster.state.height)
    tip = poster.state.height
    roots = {n.state.state_root for n in net.nodes.values() if n.state.height == tip}
    assert len(roots) == 1
    task = poster.state.task(task_id)
    assert task is not None
    assert task.status == TaskStatus.COMPLETED
    assert task.escrow == 0

    # The poster holds the output, the certified report and a certificate anyone can check.
    result = poster.results[0]
    assert result.task_id == task_id
    assert result.output == b"the input, echoed"
    assert result.report_digest == task.report_digest == digest(Domain.REPORT, result.report)
    verified = verify_certificate(
        result.certificate,
        Membership.roster(task.roster),
        kind=VoteKind.RESULT_ACCEPT,
        context=result_round_id(task_id, task.attempt),
    )
    assert verified.value == task.report_digest
    assert result.roster == Membership.roster(task.roster)

    # The escrow paid the executor and the verifiers that signed, by the ledger's rule.
    fee = 1_000_000
    assert poster.state.account(poster.identity).balance == DEV_BALANCE - fee  # type: ignore[union-attr]
    body, _ = _result_tx(poster, task_id)
    roster = Membership.roster(task.roster)
    assert task.executor is not None
    signers = [roster.members[s.member] for s in body.certificate.signers]
    verifiers = [m for m in signers if m.identity != task.executor]
    assert verifiers, "some verifier signed the result"
    pool = fee - fee * poster.state.params.executor_share_bps // BPS
    weight = sum(m.weight for m in verifiers)
    expected = {m.identity: pool * m.weight // weight for m in verifiers}
    expected[task.executor] = fee - sum(expected.values())
    for op in net.devnet.operators:
        account = poster.state.account(op.identity.public)
        assert account is not None
        assert account.balance - DEV_BALANCE == expected.get(op.identity.public, 0)

    # The timeline, from the poster's and the executor's point of view.
    assert poster.phases(task_id) == [
        ev.TaskPhase.POSTED,
        ev.TaskPhase.INCLUDED,
        ev.TaskPhase.SEED,
        ev.TaskPhase.ROSTER,
        ev.TaskPhase.EXECUTOR_CONFIRMED,
        ev.TaskPhase.CERTIFIED,
        ev.TaskPhase.PAID,
        ev.TaskPhase.OUTPUT_FETCHED,
    ]
    executor = _operator_by_identity(net, task.executor)
    assert executor.phases(task_id) == [
        ev.TaskPhase.DRAWN,
        ev.TaskPhase.ROSTER,
        ev.TaskPhase.EXECUTOR_CONFIRMED,
        ev.TaskPhase.STARTED,
        ev.TaskPhase.FINISHED,
        ev.TaskPhase.CERTIFIED,
        ev.TaskPhase.PAID,
    ]
    # Deterministic job: every other member re-executed it.
    for member in roster.members:
        node = _operator_by_identity(net, member.identity)
        purposes = {e.purpose for e in node.executions if e.task_id == task_id}
        wanted = ev.Purpose.EXECUTE if member.identity == task.executor else ev.Purpose.REEXECUTE
        assert purposes == {wanted}

    # Honest nodes never penalised each other; stored chains are contiguous.
    for node in net.nodes.values():
        assert node.penalties == [], (node.name, node.penalties[:3])
        heights = [cb.block.header.height for cb in node.stored]
        assert heights == list(range(1, node.state.height + 1))


class SilentFirstExecutor(Policy):
    """Never runs attempt 0 when chosen (takes part in the rounds otherwise)."""

    def execute(self, task_id: bytes, attempt: int) -> bool:
        return attempt != 0


def test_silent_executor_hands_over_to_the_next_ranked_candidate() -> None:
    policies: dict[str, Policy] = {f"o{i}": SilentFirstExecutor() for i in range(8)}
    net = MemNet(2, policies=policies)
    net.start()
    _settle(net, 3)
    poster = net.nodes["u0"]
    task_id = net.submit("u0", job(b"failover"))
    assert net.run_until(lambda: bool(poster.results), DEADLINE_MS)
    assert poster.results[0].output == b"failover"

    task = poster.state.task(task_id)
    assert task is not None
    assert task.status == TaskStatus.COMPLETED
    assert task.attempt == 1
    # Each member ranked the roster the same way; attempt a ran on the candidate of rank a.
    ranks = {}
    for node in net.nodes.values():
        for e in node.events:
            if e.task_id == task_id and e.phase is ev.TaskPhase.ROSTER and "rank" in e.detail:
                ranks[node.identity] = int(e.detail.rsplit("rank ", 1)[1])
    chosen = []  # the ledger's record of each attempt's executor
    for cb in poster.stored:
        for tx in cb.block.txs:
            if tx.kind == TxKind.TASK_CERTIFICATE:
                cert = tx.body()
                assert isinstance(cert, TaskCertificate)
                chosen.append((cert.attempt, cert.executor))
    assert sorted((a, ranks[who]) for a, who in chosen) == [(0, 0), (1, 1)]
    ran = [
        (e.attempt, node.identity)
        for node in net.nodes.values()
        for e in node.executions
        if e.task_id == task_id and e.purpose is ev.Purpose.EXECUTE
    ]
    assert ran == [(1, task.executor)]  # the silent one never ran the job
    first = next(who for a, who in chosen if a == 0)
    assert task.executor != first
    # The silent executor was rejected on the ledger and slashed.
    op = poster.state.operator(first)
    assert op is not None
    slash = DEV_STAKE * poster.state.params.slash_wrong_result_bps // BPS
    assert op.stake == DEV_STAKE - slash
    assert ev.TaskPhase.REJECTED in _operator_by_identity(net, first).phases(task_id)
    # The members left the silent executor's view 0 of attempt 0's result agreement (instance 1)
    # and said so; no agreement needed a second view change.
    moved = {
        e.detail
        for node in net.nodes.values()
        for e in node.events
        if e.task_id == task_id and e.phase is ev.TaskPhase.VIEW_CHANGED
    }
    assert moved == {"agreement 1: view 1"}


def test_a_resent_round_message_goes_only_to_members_that_did_not_acknowledge_it() -> None:
    """A member whose view change waits resends its NEW_VIEW (first sent to the next proposer
    only, then to every member), and a member whose live view gets one more wait resends its
    vote; members that acknowledged those bytes already hold them and are skipped (with a fifth
    of every message lost, some did not, and still get them)."""
    policies: dict[str, Policy] = {f"o{i}": SilentFirstExecutor() for i in range(8)}
    net = MemNet(3, policies=policies, loss=0.2, latency_ms=(5, 150))
    sent: dict[tuple[str, int], tuple[bytes, bytes]] = {}  # (node, request id) -> (to, bytes)
    acked: set[tuple[str, bytes, bytes]] = set()  # (sender, to, bytes) acknowledged
    late: list[tuple[str, bytes]] = []  # messages sent again to a member that had acked them
    sends: dict[tuple[str, bytes], list[bytes]] = {}  # (sender, NEW_VIEW bytes) -> targets

    act, deliver = net._act, net.deliver

    def spy_act(node: MemNode, action: ev.Action) -> None:
        if isinstance(action, ev.Request) and action.protocol == ev.PROTO_COMMITTEE:
            if (node.name, action.peer, action.data) in acked:
                late.append((node.name, action.peer))
            if isinstance(decode_message(action.data)[1], NewView):
                sends.setdefault((node.name, action.data), []).append(action.peer)
            sent[(node.name, action.request_id)] = (action.peer, action.data)
        act(node, action)

    def spy_deliver(node: MemNode, event: ev.Event) -> None:
        if isinstance(event, ev.ResponseReceived) and (node.name, event.request_id) in sent:
            acked.add((node.name, *sent[(node.name, event.request_id)]))
        deliver(node, event)

    net._act, net.deliver = spy_act, spy_deliver  # type: ignore[method-assign]
    net.start()
    _settle(net, 3)
    poster = net.nodes["u0"]
    net.submit("u0", job(b"resent"))
    assert net.run_until(lambda: bool(poster.results), 4 * DEADLINE_MS)
    assert poster.results[0].output == b"resent"
    assert late == []
    # Some NEW_VIEW went to a member more than once (a lost copy, or the resend after the first
    # copy to the next proposer only), and some NEW_VIEW sent again skipped a member: not every
    # target got it twice.
    again = [targets for targets in sends.values() if len(targets) > len(set(targets))]
    assert again
    assert any(len(t) < 2 * len(set(t)) for t in again)


def test_a_validator_stops_and_blocks_keep_coming() -> None:
    net = MemNet(3)
    net.start()
    _settle(net, 3)
    net.crash("v1")
    start = max(n.state.height for n in net.alive())
    _settle(net, start + 9)
    node = net.nodes["o0"]
    tip = node.state.height
    hashes = {n.state.tip_hash for n in net.alive() if n.state.height == tip}
    assert len(hashes) == 1
    dead = net.nodes["v1"].identity
    # Heights whose first proposer was the stopped validator were finalised after a view change.
    by_height = {cb.block.header.height: cb for cb in node.stored}
    skipped = [h for h in range(start + 2, tip + 1) if h % 4 == 1]
    assert skipped
    for h in skipped:
        assert by_height[h].block.header.proposer != dead
        assert by_height[h].commit.view >= 1


def test_an_operator_restarts_catches_up_by_sync_and_is_drawn_again() -> None:
    net = MemNet(4)
    net.start()
    _settle(net, 3)
    net.crash("o3")
    net.run_for(6_000)
    net.restart("o3")
    target = net.nodes["v0"].state.height
    assert net.run_until(lambda: net.nodes["o3"].state.height >= target, 30_000)
    assert [cb.block.header.height for cb in net.nodes["o3"].stored][-1] >= target
    task_id = net.submit("u0", job(b"after restart"), tau=64)
    poster = net.nodes["u0"]
    assert net.run_until(lambda: bool(poster.results), DEADLINE_MS)
    assert ev.TaskPhase.DRAWN in net.nodes["o3"].phases(task_id)
    task = poster.state.task(task_id)
    assert task is not None
    assert net.nodes["o3"].identity in {m.identity for m in task.roster}


class ForgedWeight(Policy):
    """Claims more weight than sortition gave."""

    def credential(self, body: Credential) -> Credential:
        return dataclasses.replace(body, weight=body.weight + 3)


def test_forged_credentials_are_refused_by_the_validators() -> None:
    net = MemNet(5, policies={"o0": ForgedWeight(), "o1": ForgedWeight()})
    net.start()
    _settle(net, 3)
    poster = net.nodes["u0"]
    task_id = net.submit("u0", job(b"honest roster"), tau=32)
    assert net.run_until(lambda: bool(poster.results), DEADLINE_MS)
    task = poster.state.task(task_id)
    assert task is not None
    forgers = {net.nodes["o0"].identity, net.nodes["o1"].identity}
    # Both were drawn (so both sent a forged credential), and neither reached the roster.
    assert all(ev.TaskPhase.DRAWN in net.nodes[n].phases(task_id) for n in ("o0", "o1"))
    assert forgers.isdisjoint(m.identity for m in task.roster)
    assert task.status == TaskStatus.COMPLETED


def test_malformed_and_forged_messages_are_rejected_with_reasons() -> None:
    net = MemNet(6)
    net.start()
    _settle(net, 4)
    v0, v2, o0, u0 = (net.nodes[n] for n in ("v0", "v2", "o0", "u0"))
    junk = b"\xc1 definitely not msgpack"
    chain = v0.state.genesis_hash

    # Gossip: junk, a forged commit certificate, a non-task, a badly signed task.
    verdict = v0.core.validate_gossip(ev.TOPIC_BLOCKS, o0.identity, junk)
    assert isinstance(verdict, ev.Reject)
    assert (verdict.reason, verdict.penalty) == ("malformed-block", 20)
    real = v0.stored[-1]
    forged_commit = dataclasses.replace(
        real.commit,
        signers=tuple(dataclasses.replace(s, signature=bytes(64)) for s in real.commit.signers),
    )
    header = dataclasses.replace(real.block.header, height=v0.state.height + 1)
    forged = CertifiedBlock(dataclasses.replace(real.block, header=header), forged_commit)
    verdict = v0.core.validate_gossip(ev.TOPIC_BLOCKS, o0.identity, forged.encode())
    assert isinstance(verdict, ev.Reject)
    assert verdict.reason == "bad-commit"
    transfer = sign_transaction(u0.key, chain, 0, Transfer(o0.identity, 5))
    verdict = v0.core.validate_gossip(ev.TOPIC_TASKS, u0.identity, transfer.encode())
    assert isinstance(verdict, ev.Reject)
    assert verdict.reason == "not-a-task"
    post = sign_transaction(u0.key, chain, 0, PostTask(job(), 10, 4))
    bad_sig = dataclasses.replace(post, signature=bytes(64))
    verdict = v0.core.validate_gossip(ev.TOPIC_TASKS, u0.identity, bad_sig.encode())
    assert isinstance(verdict, ev.Reject)
    assert verdict.reason == "bad-signature"

    # Requests from a flooding operator: each refused with a reason and a penalty, no exception.
    def ask(target: MemNode, protocol: str, data: bytes) -> list[ev.Action]:
        return target.core.handle(
            ev.RequestReceived(net.now_ms, 10_000 + len(data), o0.identity, protocol, data)
        )

    def refusal(actions: list[ev.Action]) -> tuple[str | None, int]:
        responds = [a for a in actions if isinstance(a, ev.Respond)]
        assert len(responds) == 1
        return responds[0].error, responds[0].penalty

    assert refusal(ask(v0, ev.PROTO_TX, junk)) == ("malformed-tx", 20)
    assert refusal(ask(v0, ev.PROTO_TX, bad_sig.encode())) == ("bad-signature", 25)
    assert refusal(ask(v0, ev.PROTO_CONSENSUS, junk)) == ("not-a-validator", 25)
    assert refusal(ask(v0, ev.PROTO_SYNC, junk)) == ("malformed", 20)
    assert refusal(ask(o0, ev.PROTO_COMMITTEE, junk)) == ("malformed", 25)
    no_round = b"\x02" + bytes(32) + junk  # a message header naming no task at all
    assert refusal(ask(o0, ev.PROTO_COMMITTEE, no_round)) == ("unknown-round", 5)
    assert refusal(ask(o0, ev.PROTO_REPORT, junk)) == ("malformed", 25)
    # A validator sending a block that does not fold: penalised, not voted for.
    bad_block = dataclasses.replace(
        real.block,
        header=dataclasses.replace(
            real.block.header,
            height=v2.state.height + 1,
            parent_hash=v2.state.tip_hash,
            time_ms=net.now_ms,
        ),
    )
    message = ConsensusMessage(v2.state.height + 1, b"\x02" + bytes(40), bad_block).encode()
    actions = v2.core.handle(
        ev.RequestReceived(net.now_ms, 99_999, v0.identity, ev.PROTO_CONSENSUS, message)
    )
    penalties = [a for a in actions if isinstance(a, ev.Penalise)]
    assert [p.reason for p in penalties] == ["invalid-block"]
    assert penalties[0].peer == v0.identity
    # A sync request asking for nothing valid is refused the same way.
    actions = ask(v0, ev.PROTO_SYNC, SyncRequest(1, 1).encode()[:-1])
    assert refusal(actions) == ("malformed", 20)

    # The network is unharmed: a task still completes.
    poster = net.nodes["u0"]
    net.submit("u0", job(b"still fine"))
    assert net.run_until(lambda: bool(poster.results), net.now_ms + DEADLINE_MS)
    assert poster.results[0].output == b"still fine"


def test_a_seed_reproduces_a_run_exactly_with_or_without_shared_folds() -> None:
    tips = []
    for share in (True, False):
        net = MemNet(7, share_folds=share)
        net.start()
        net.submit("u0", job(b"same"))
        net.run_for(15_000)
        tips.append(tuple(n.state.tip_hash for n in net.nodes.values()))
    assert tips[0] == tips[1]


def test_tasks_complete_when_a_tenth_of_all_messages_is_lost() -> None:
    net = MemNet(8, latency_ms=(5, 150), loss=0.1)
    net.start()
    poster = net.nodes["u0"]
    for i in range(3):
        net.submit("u0", job(f"lossy {i}".encode()), tau=8)
    assert net.run_until(lambda: len(poster.results) == 3, 300_000)
    assert sorted(r.output for r in poster.results) == [b"lossy 0", b"lossy 1", b"lossy 2"]


def test_mutated_traffic_never_raises_and_every_request_gets_one_answer() -> None:
    """Record a run's real requests and gossip, then feed bit-flipped, truncated and extended
    copies to a validator, a roster member and the poster: no exception, one `Respond` per
    request, and the network still finishes a task afterwards."""
    net = MemNet(9)
    recorded: list[tuple[str, str, bytes]] = []  # (kind, protocol or topic, data)
    act = net._act

    def recording(node: MemNode, action: ev.Action) -> None:
        if isinstance(action, ev.Request):
            recorded.append(("request", action.protocol, action.data))
        elif isinstance(action, ev.Publish):
            recorded.append(("gossip", action.topic, action.data))
        act(node, action)

    net._act = recording  # type: ignore[method-assign]
    net.start()
    poster = net.nodes["u0"]
    task_id = net.submit("u0", job(b"first"))
    assert net.run_until(lambda: bool(poster.results), DEADLINE_MS)
    task = poster.state.task(task_id)
    assert task is not None
    member = net.by_identity[task.roster[0].identity]
    kinds = {(k, p) for k, p, _ in recorded}
    assert {p for _, p in kinds} >= {
        ev.PROTO_TX,
        ev.PROTO_CONSENSUS,
        ev.PROTO_COMMITTEE,
        ev.PROTO_REPORT,
        ev.PROTO_OUTPUT,
        ev.PROTO_SYNC,
        ev.TOPIC_TASKS,
        ev.TOPIC_BLOCKS,
    }
    rng = net.rng
    sender = net.nodes["v1"].identity  # a validator: its messages get past the membership checks
    request_id = 1_000_000
    for kind, where, data in recorded[:: max(1, len(recorded) // 400)]:
        for _ in range(3):
            mutated = bytearray(data)
            choice = rng.randrange(3)
            if choice == 0 and mutated:
                at = rng.randrange(len(mutated))
                mutated[at] ^= 1 << rng.randrange(8)
            elif choice == 1:
                del mutated[rng.randrange(len(mutated) + 1) :]
            else:
                mutated += rng.randbytes(rng.randrange(1, 8))
            for target in (net.nodes["v0"], member, poster):
                now = net.now_ms
                if kind == "gossip":
                    verdict = target.core.validate_gossip(where, sender, bytes(mutated))
                    if isinstance(verdict, ev.Accept):
                        for action in target.core.handle(
                            ev.GossipReceived(now, where, sender, bytes(mutated))
                        ):
                            net._act(target, action)
                    continue
                request_id += 1
                actions = target.core.handle(
                    ev.RequestReceived(now, request_id, sender, where, bytes(mutated))
                )
                answers = [a for a in actions if isinstance(a, ev.Respond)]
                assert [a.request_id for a in answers] == [request_id]
                for action in actions:
                    if not isinstance(action, ev.Respond):
                        net._act(target, action)
    net.submit("u0", job(b"second"))
    assert net.run_until(lambda: len(poster.results) == 2, net.now_ms + DEADLINE_MS)
    assert poster.results[1].output == b"second"
