"""The trio shell `run_node` around a scripted core: action execution order (a block is durable
before the next action), timers, request/response both ways, gossip validation and penalties,
executions, status file, metrics endpoint, shutdown. Real hosts on 127.0.0.1; waits are on events
under deadlines, never on the clock."""

from __future__ import annotations

import functools
import json
import sqlite3
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from executor.report import UnverifiedReport
from ledger.devnet import DevChain, DevNet
from p2p import events as ev
from p2p.config import BackoffConfig, ConnectionConfig
from p2p.metrics_export import NodeMetrics
from p2p.node import NodeAddresses, NodeDeps, run_node
from p2p.nodeconfig import NodeConfig, Role
from tests.p2p.nodekit import RuncLikeSandbox, data_dir, devnet, job_spec, trio_test

DEADLINE_S = 20.0
FAST_CONNECTIONS = ConnectionConfig(maintain_interval_s=0.2, pex_interval_s=0.5)
# No redial within a test: a node stopping while its dial is in flight leaves the library's raw
# socket to the garbage collector (a py-libp2p leak, not ours), which pytest reports as an error.
# The first dial of a bootstrap peer is immediate whatever the backoff.
NO_REDIAL = BackoffConfig(base_s=60.0, cap_s=60.0, jitter=0.5)

Script = Callable[["ScriptedCore", Any], list[Any]]


class ScriptedCore:
    """A core whose answers are a function of the event; records every event."""

    def __init__(
        self,
        script: Script,
        verdict: Callable[[str, bytes, bytes], ev.GossipVerdict] | None = None,
    ) -> None:
        self.script = script
        self.verdict = verdict or (lambda topic, sender, data: ev.ACCEPT)
        self.events: list[Any] = []
        self.validated: list[bytes] = []
        self._changed = trio.Event()
        self.notes: dict[str, Any] = {}

    def handle(self, event: Any) -> list[Any]:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()
        return self.script(self, event)

    def validate_gossip(self, topic: str, sender: bytes, data: bytes) -> ev.GossipVerdict:
        self.validated.append(data)
        return self.verdict(topic, sender, data)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def seen(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def nothing(core: ScriptedCore, event: Any) -> list[Any]:
    return []


@pytest.fixture(scope="module")
def net() -> DevNet:
    return devnet()


def deps(core: ScriptedCore, **kw: Any) -> NodeDeps:
    kw.setdefault("host_reconnect", NO_REDIAL)
    return NodeDeps(
        core_factory=lambda config, keys, store: core,
        host_connections=FAST_CONNECTIONS,
        **kw,
    )


@asynccontextmanager
async def node(config: NodeConfig, d: NodeDeps) -> AsyncIterator[NodeAddresses]:
    """A running node; leaving the block stops it (and waits for it: nodes of one process must
    stop one after another)."""
    async with trio.open_nursery() as nursery:
        addrs: NodeAddresses = await nursery.start(functools.partial(run_node, config, deps=d))
        try:
            yield addrs
        finally:
            nursery.cancel_scope.cancel()


def blocks_on_disk(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM blocks").fetchone()
    return int(count)


@trio_test
async def test_store_block_is_durable_before_the_next_action(tmp_path: Path, net: DevNet) -> None:
    chain = DevChain(net)
    first, second = chain.extend(), chain.extend()
    states = {1: None, 2: chain.state}
    state_after_first = DevChain(net)
    state_after_first.extend()
    states[1] = state_after_first.state
    config = data_dir(tmp_path, "a", net.users[0], net)
    on_disk: list[int] = []

    def script(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.Started):
            # Two blocks then a zero-delay timer in one batch: the timer's event must find both
            # blocks committed (another SQLite connection sees them).
            return [
                ev.StoreBlock(first, states[1], "gossip"),
                ev.StoreBlock(second, states[2], "sync"),
                ev.StartTimer("after", 0),
            ]
        if isinstance(event, ev.TimerFired):
            on_disk.append(blocks_on_disk(config.store_path))
        return []

    core = ScriptedCore(script)
    metrics = NodeMetrics()
    with trio.fail_after(DEADLINE_S):
        async with node(config, deps(core, metrics=metrics)):
            await core.wait_for(lambda: bool(on_disk))
    assert isinstance(core.events[0], ev.Started)
    assert on_disk == [2]
    assert metrics.blocks_stored.labels(via="gossip")._value.get() == 1
    assert metrics.blocks_stored.labels(via="sync")._value.get() == 1
    status = json.loads(config.status_path.read_text())
    assert status["height"] == 2
    assert status["tip_hash"] == second.block.header.hash().hex()


@trio_test
async def test_restart_reopens_the_store_at_its_tip(tmp_path: Path, net: DevNet) -> None:
    chain = DevChain(net)
    block = chain.extend()
    config = data_dir(tmp_path, "a", net.users[0], net)
    heights: list[int] = []

    def store_once(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.Started):
            return [ev.StoreBlock(block, chain.state), ev.StartTimer("done", 0)]
        return []

    def factory(config: NodeConfig, keys: Any, store: Any, *, core: ScriptedCore) -> ScriptedCore:
        heights.append(store.height)
        return core

    first = ScriptedCore(store_once)
    again = ScriptedCore(nothing)
    for core in (first, again):
        with trio.fail_after(DEADLINE_S):
            d = deps(core)
            d.core_factory = functools.partial(factory, core=core)
            async with node(config, d):
                if core is first:
                    await first.wait_for(lambda: bool(first.seen(ev.TimerFired)))
    assert heights == [0, 1]
    assert isinstance(again.events[0], ev.Started)


@trio_test
async def test_requests_both_ways_and_refusals(tmp_path: Path, net: DevNet) -> None:
    a_id, b_id = net.users[0], net.users[1]

    def a_script(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.PeerConnected) and event.peer == b_id.public:
            return [
                ev.Request(1, b_id.public, ev.PROTO_TX, b"ping", 5000),
                ev.Request(2, b_id.public, ev.PROTO_TX, b"bad", 5000),
                ev.Request(3, b_id.public, ev.PROTO_TX, b"x" * (ev.TX_MESSAGE_BYTES_MAX + 1), 5000),
            ]
        return []

    def b_script(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.RequestReceived):
            if event.data == b"ping":
                assert event.peer == a_id.public
                assert event.protocol == ev.PROTO_TX
                return [ev.Respond(event.request_id, b"pong")]
            return [ev.Respond(event.request_id, error="bad-tx", penalty=7)]
        return []

    a, b = ScriptedCore(a_script), ScriptedCore(b_script)
    b_metrics = NodeMetrics()
    with trio.fail_after(DEADLINE_S):
        async with node(data_dir(tmp_path, "a", a_id, net), deps(a)) as addr_a:
            b_config = data_dir(tmp_path, "b", b_id, net, bootstrap=(addr_a.listen[0],))
            async with node(b_config, deps(b, metrics=b_metrics)):
                await a.wait_for(
                    lambda: len(a.seen(ev.ResponseReceived)) + len(a.seen(ev.RequestFailed)) == 3
                )
    (ok,) = a.seen(ev.ResponseReceived)
    assert (ok.request_id, ok.data) == (1, b"pong")
    failed = {f.request_id: f for f in a.seen(ev.RequestFailed)}
    assert failed[2].kind is ev.FailureKind.REJECTED
    assert failed[2].reason == "bad-tx"
    assert failed[3].kind is ev.FailureKind.TOO_LARGE
    assert b_metrics.rejections.labels("bad-tx")._value.get() == 1
    assert len(b.seen(ev.RequestReceived)) == 2  # the oversized one never left A


@trio_test
async def test_gossip_is_validated_by_the_core_and_rejections_cost_the_sender(
    tmp_path: Path, net: DevNet
) -> None:
    a_id, b_id = net.users[0], net.users[1]
    sent = iter(range(1000))

    def a_script(core: ScriptedCore, event: Any) -> list[Any]:
        # Publish a bad and a good task every 200 ms until B has the good one (the mesh forms on
        # the first heartbeats; earlier publishes may reach nobody).
        if isinstance(event, ev.Started | ev.TimerFired):
            n = next(sent)
            return [
                ev.Publish(ev.TOPIC_TASKS, b"bad-%d" % n),
                ev.Publish(ev.TOPIC_TASKS, b"good-%d" % n),
                ev.StartTimer("again", 200),
            ]
        return []

    def verdict(topic: str, sender: bytes, data: bytes) -> ev.GossipVerdict:
        if data.startswith(b"bad"):
            return ev.Reject("bad-task", 1, "scripted")
        return ev.ACCEPT

    a, b = ScriptedCore(a_script), ScriptedCore(nothing, verdict)
    b_metrics = NodeMetrics()
    with trio.fail_after(DEADLINE_S):
        async with node(data_dir(tmp_path, "a", a_id, net), deps(a)) as addr_a:
            b_config = data_dir(tmp_path, "b", b_id, net, bootstrap=(addr_a.listen[0],))
            async with node(b_config, deps(b, metrics=b_metrics)):
                await b.wait_for(lambda: bool(b.seen(ev.GossipReceived)))
    got = b.seen(ev.GossipReceived)[0]
    assert got.topic == ev.TOPIC_TASKS
    assert got.data.startswith(b"good")
    assert got.origin == a_id.public
    assert got.sender == a_id.public
    assert all(not e.data.startswith(b"bad") for e in b.seen(ev.GossipReceived))
    assert any(d.startswith(b"bad") for d in b.validated)
    assert b_metrics.host.gossip_rejected[(ev.TOPIC_TASKS, "bad-task")] >= 1
    assert b_metrics.rejections.labels("bad-task")._value.get() >= 1


@trio_test
async def test_a_penalty_from_the_core_bans_and_disconnects(tmp_path: Path, net: DevNet) -> None:
    a_id, b_id = net.users[0], net.users[1]

    def a_script(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.PeerConnected):
            return [ev.Penalise(event.peer, "forged", 500, "scripted")]
        return []

    a, b = ScriptedCore(a_script), ScriptedCore(nothing)
    metrics = NodeMetrics()
    with trio.fail_after(DEADLINE_S):
        async with node(data_dir(tmp_path, "a", a_id, net), deps(a, metrics=metrics)) as addr_a:
            b_config = data_dir(tmp_path, "b", b_id, net, bootstrap=(addr_a.listen[0],))
            async with node(b_config, deps(b)):
                await a.wait_for(lambda: bool(a.seen(ev.PeerDisconnected)))
    assert a.seen(ev.PeerDisconnected)[0].peer == b_id.public
    assert metrics.host.bans == 1
    assert metrics.penalties.labels("forged")._value.get() == 1


@trio_test
async def test_execute_runs_the_sandbox_and_returns_a_signed_report(
    tmp_path: Path, net: DevNet
) -> None:
    op = net.operators[0]
    spec = job_spec(b"echo me")
    task_id = b"\x05" * 32

    def script(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.Started):
            return [ev.Execute(task_id, 1, spec.encode(), ev.Purpose.REEXECUTE)]
        return []

    core = ScriptedCore(script)
    sandbox = RuncLikeSandbox()
    config = data_dir(
        tmp_path, "op", op.identity, net, vrf_seed=op.vrf_key.seed, roles=frozenset({Role.OPERATOR})
    )
    with trio.fail_after(DEADLINE_S):
        async with node(config, deps(core, sandbox=sandbox, software_measurement=b"\x02" * 32)):
            await core.wait_for(lambda: bool(core.seen(ev.ExecutionFinished)))
    (done,) = core.seen(ev.ExecutionFinished)
    assert (done.task_id, done.attempt, done.purpose) == (task_id, 1, ev.Purpose.REEXECUTE)
    assert done.output == b"echo me"
    report = UnverifiedReport.decode(done.report)
    assert report.body.executor_key == op.identity.public
    assert report.body.software_measurement == b"\x02" * 32
    assert sandbox.calls == 1


@trio_test
async def test_metrics_endpoint_serves_counters(tmp_path: Path, net: DevNet) -> None:
    def script(core: ScriptedCore, event: Any) -> list[Any]:
        if isinstance(event, ev.Started):
            return [ev.TaskEvent(b"\x09" * 32, ev.TaskPhase.POSTED, event.now_ms)]
        return []

    core = ScriptedCore(script)
    config = data_dir(tmp_path, "a", net.users[0], net, metrics=("127.0.0.1", 0))
    with trio.fail_after(DEADLINE_S):
        async with node(config, deps(core)) as addrs:
            assert addrs.metrics is not None
            url = f"http://{addrs.metrics[0]}:{addrs.metrics[1]}/metrics"
            body = await trio.to_thread.run_sync(fetch, url)
    assert 'posi_messages_in_total{type="Started"} 1.0' in body
    assert 'posi_task_phases_total{phase="posted"} 1.0' in body
    assert "posi_height 0.0" in body
    status = json.loads(config.status_path.read_text())
    assert status["recent_tasks"][0]["task"] == "09" * 32
    assert status["metrics"] == f"{addrs.metrics[0]}:{addrs.metrics[1]}"


@trio_test
async def test_validator_role_needs_a_genesis_validator_identity(
    tmp_path: Path, net: DevNet
) -> None:
    from p2p.node import NodeStartError

    config = data_dir(tmp_path, "a", net.users[0], net, roles=frozenset({Role.VALIDATOR}))
    with pytest.raises(NodeStartError, match="genesis validator list"):
        await run_node(config, deps=deps(ScriptedCore(nothing)))
