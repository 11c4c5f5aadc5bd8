"""An in-memory network of `PeerCore`s for tests: a seeded event queue, the fake sandbox.

NOTE for simnet/: this is a small *test* driver, not the simulator. What is worth sharing with a
deterministic simulator is how it executes each action kind of `p2p.events` (see `MemNet._act`):
gossip goes through the receiver's `validate_gossip` before `GossipReceived`; every `Request`
gets exactly one `ResponseReceived`/`RequestFailed` (an unreachable peer fails after one latency,
a peer that never answers times out after `Request.timeout_ms`); `Respond` errors and penalties
are recorded; timers of a crashed or restarted node are dropped by a per-node generation number;
`Execute` runs `executor.run.execute` on a `FakeSandbox` (inside `trio.run`) and answers with
`ExecutionFinished` after `exec_ms`; `StoreBlock` is recorded before the next action. Byzantine
behaviour goes through `p2p.policy.Policy` (one per node).

The network is a full mesh with a seeded latency per message; `run_until(predicate, deadline)`
runs events in (time, sequence) order, so one seed reproduces a run exactly.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from collections.abc import Callable
from typing import Any

import trio

from committee.round import Timing
from executor.fake import FakeOutcome, FakeSandbox
from executor.policy import Runtime
from executor.run import execute
from executor.spec import JobSpec, make_spec
from executor.verify import VerifyPolicy
from ledger.block import CertifiedBlock
from ledger.devnet import DevNet
from ledger.genesis import ChainParams
from ledger.signing import IdentityKey
from ledger.state import State, genesis_state
from p2p import events as ev
from p2p.core import CoreConfig, FoldCache, PeerCore
from p2p.policy import Policy

IMAGE = "sha256:" + "ab" * 32
SOFTWARE = bytes(range(32))
# Fast simulated timings: a block per second, short committee timeouts, a 4 s execution deadline.
BLOCK_MS = 1000
TASK_TIMING = Timing(
    propose_ms=1500,
    collect_ms=200,
    prepare_ms=1000,
    commit_ms=1000,
    view_change_retry_ms=1000,
    execute_ms=6000,
)
PARAMS = ChainParams(credential_window_blocks=2, task_timeout_blocks=60, max_attempts=3)


def job(data: bytes = b"hello posi", *, deterministic: bool = True) -> bytes:
    """A job spec (the fake sandbox echoes its input). A 500 ms wall-time limit keeps the
    executor's deadline at TASK_TIMING.execute_ms."""
    spec = make_spec(IMAGE, ["cat"], input=data, deterministic=deterministic, wall_time_ms=500)
    return spec.encode()


@dataclasses.dataclass
class MemNode:
    """One node of the in-memory network."""

    name: str
    key: IdentityKey
    config: CoreConfig
    core: PeerCore
    policy: Policy | None = None
    alive: bool = True
    generation: int = 0
    stored: list[CertifiedBlock] = dataclasses.field(default_factory=list)
    events: list[ev.TaskEvent] = dataclasses.field(default_factory=list)
    penalties: list[ev.Penalise] = dataclasses.field(default_factory=list)
    logs: list[ev.Log] = dataclasses.field(default_factory=list)
    results: list[ev.ResultReady] = dataclasses.field(default_factory=list)
    submitted: list[ev.TaskSubmitted] = dataclasses.field(default_factory=list)
    executions: list[ev.Execute] = dataclasses.field(default_factory=list)
    # penalties and error answers this node's requests earned (recorded by the receiver's core)
    refused: list[ev.Respond] = dataclasses.field(default_factory=list)
    rejected_gossip: list[ev.Reject] = dataclasses.field(default_factory=list)

    @property
    def identity(self) -> bytes:
        return self.key.public

    @property
    def state(self) -> State:
        return self.core.state

    def phases(self, task_id: bytes) -> list[ev.TaskPhase]:
        return [e.phase for e in self.events if e.task_id == task_id]


@dataclasses.dataclass
class _Pending:
    requester: MemNode
    generation: int
    request_id: int
    answered: bool = False


class MemNet:
    """Cores wired together in memory (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        *,
        validators: int = 4,
        operators: int = 8,
        users: int = 1,
        params: ChainParams = PARAMS,
        latency_ms: tuple[int, int] = (5, 25),
        exec_ms: int = 300,
        policies: dict[str, Policy] | None = None,
        share_folds: bool = True,
        loss: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.folds = FoldCache() if share_folds else None
        self.devnet = DevNet.create(
            validators=validators, operators=operators, users=users, params=params
        )
        self.genesis_state = genesis_state(self.devnet.genesis)
        self.latency_ms = latency_ms
        self.loss = loss  # share of gossip deliveries and request/answer legs dropped
        self.exec_ms = exec_ms
        self.now_ms = 0
        self._queue: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = itertools.count()
        self._rids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self.sandbox_outcome: Callable[[JobSpec], FakeOutcome] | None = None
        self.drop_execute: Callable[[MemNode, ev.Execute], bool] = lambda _n, _e: False
        self.nodes: dict[str, MemNode] = {}
        policies = policies or {}
        verify = VerifyPolicy(allowed_runtimes=frozenset({Runtime.FAKE}))
        for i, key in enumerate(self.devnet.validators):
            cfg = CoreConfig(
                key, validator=True, block_interval_ms=BLOCK_MS, task_timing=TASK_TIMING
            )
            self._add(f"v{i}", key, cfg, policies.get(f"v{i}"))
        for i, op in enumerate(self.devnet.operators):
            cfg = CoreConfig(
                op.identity,
                vrf_key=op.vrf_key,
                operator=True,
                block_interval_ms=BLOCK_MS,
                task_timing=TASK_TIMING,
                verify_policy=verify,
            )
            self._add(f"o{i}", op.identity, cfg, policies.get(f"o{i}"))
        for i, key in enumerate(self.devnet.users):
            cfg = CoreConfig(key, block_interval_ms=BLOCK_MS, task_timing=TASK_TIMING)
            self._add(f"u{i}", key, cfg, policies.get(f"u{i}"))
        self.by_identity = {n.identity: n for n in self.nodes.values()}

    def _add(self, name: str, key: IdentityKey, cfg: CoreConfig, policy: Policy | None) -> None:
        core = PeerCore(cfg, state=self.genesis_state, policy=policy, folds=self.folds)
        self.nodes[name] = MemNode(name, key, cfg, core, policy)

    # --- scheduling --------------------------------------------------------------------------

    def at(self, time_ms: int, callback: Callable[[Any], None], arg: Any = None) -> None:
        heapq.heappush(self._queue, (max(time_ms, self.now_ms), next(self._seq), callback, arg))

    def latency(self) -> int:
        lo, hi = self.latency_ms
        return self.rng.randint(lo, hi)

    def start(self) -> None:
        """Deliver Started and the connections to every node."""
        for node in self.nodes.values():
            self.deliver(node, ev.Started(self.now_ms))
        for node in self.nodes.values():
            for other in self.nodes.values():
                if other is not node:
                    self.deliver(node, ev.PeerConnected(self.now_ms, other.identity))

    def run_until(self, done: Callable[[], bool], deadline_ms: int) -> bool:
        """Run events in order until `done()` or simulated time passes `deadline_ms`."""
        while not done():
            if not self._queue or self._queue[0][0] > deadline_ms:
                self.now_ms = max(self.now_ms, deadline_ms)
                return False
            time_ms, _, callback, arg = heapq.heappop(self._queue)
            self.now_ms = time_ms
            callback(arg)
        return True

    def run_for(self, duration_ms: int) -> None:
        self.run_until(lambda: False, self.now_ms + duration_ms)

    # --- nodes -------------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        node = self.nodes[name]
        node.alive = False
        node.generation += 1

    def restart(self, name: str) -> None:
        """Bring a crashed node back with an empty chain (it catches up by sync)."""
        node = self.nodes[name]
        node.core = PeerCore(
            node.config, state=self.genesis_state, policy=node.policy, folds=self.folds
        )
        node.alive = True
        node.generation += 1
        self.deliver(node, ev.Started(self.now_ms))
        for other in self.nodes.values():
            if other is not node and other.alive:
                self.deliver(node, ev.PeerConnected(self.now_ms, other.identity))

    def deliver(self, node: MemNode, event: ev.Event) -> None:
        if not node.alive:
            return
        for action in node.core.handle(event):
            self._act(node, action)

    def _later(self, node: MemNode, delay_ms: int, make: Callable[[int], ev.Event]) -> None:
        """Deliver `make(now)` to `node` after `delay_ms`, unless it crashed or restarted."""
        generation = node.generation

        def fire(_: Any) -> None:
            if node.alive and node.generation == generation:
                self.deliver(node, make(self.now_ms))

        self.at(self.now_ms + delay_ms, fire)

    # --- actions -----------------------------------------------------------------------------

    def _act(self, node: MemNode, action: ev.Action) -> None:
        match action:
            case ev.Publish(topic=topic, data=data):
                for other in self.nodes.values():
                    if other is not node:
                        self._gossip(node, other, topic, data)
            case ev.Request():
                self._request(node, action)
            case ev.Connect():
                pass  # a hint: the in-memory network has no connections to prepare
            case ev.Respond():
                self._respond(node, action)
            case ev.StartTimer(key=key, delay_ms=delay):
                self._later(node, delay, lambda now, key=key: ev.TimerFired(now, key))
            case ev.Execute():
                node.executions.append(action)
                if not self.drop_execute(node, action):
                    self._execute(node, action)
            case ev.StoreBlock(block=block):
                node.stored.append(block)
            case ev.TaskEvent():
                node.events.append(action)
            case ev.Penalise():
                node.penalties.append(action)
            case ev.Log():
                node.logs.append(action)
            case ev.ResultReady():
                node.results.append(action)
            case ev.TaskSubmitted():
                node.submitted.append(action)
            case _:
                raise AssertionError(f"unknown action {action!r}")

    def lost(self) -> bool:
        return self.loss > 0 and self.rng.random() < self.loss

    def _gossip(self, sender: MemNode, target: MemNode, topic: str, data: bytes) -> None:
        if self.lost():
            return

        def arrive(_: Any) -> None:
            if not target.alive:
                return
            verdict = target.core.validate_gossip(topic, sender.identity, data)
            if isinstance(verdict, ev.Reject):
                sender.rejected_gossip.append(verdict)
            elif isinstance(verdict, ev.Accept):
                self.deliver(
                    target,
                    ev.GossipReceived(self.now_ms, topic, sender.identity, data, sender.identity),
                )

        self.at(self.now_ms + self.latency(), arrive)

    def _request(self, node: MemNode, req: ev.Request) -> None:
        target = self.by_identity.get(req.peer)
        pending = _Pending(node, node.generation, req.request_id)
        rid = next(self._rids)
        self._pending[rid] = pending

        def answer(event: ev.Event) -> None:
            if pending.answered:
                return
            pending.answered = True
            self._pending.pop(rid, None)
            if node.alive and node.generation == pending.generation:
                self.deliver(node, event)

        if target is None or not target.alive:
            self.at(
                self.now_ms + self.latency(),
                lambda _: answer(
                    ev.RequestFailed(self.now_ms, req.request_id, ev.FailureKind.UNREACHABLE)
                ),
            )
            return
        self.at(
            self.now_ms + req.timeout_ms,
            lambda _: answer(ev.RequestFailed(self.now_ms, req.request_id, ev.FailureKind.TIMEOUT)),
        )
        if self.lost():
            return  # the request is lost: the requester times out
        self._later(
            target,
            self.latency(),
            lambda now: ev.RequestReceived(now, rid, node.identity, req.protocol, req.data),
        )

    def _respond(self, node: MemNode, resp: ev.Respond) -> None:
        pending = self._pending.get(resp.request_id)
        if pending is None:
            return
        requester = pending.requester
        if resp.error is not None:
            requester.refused.append(resp)
        if self.lost():
            return  # the answer is lost: the requester times out

        def arrive(_: Any) -> None:
            if pending.answered:
                return
            pending.answered = True
            self._pending.pop(resp.request_id, None)
            if not (requester.alive and requester.generation == pending.generation):
                return
            if resp.error is None:
                event: ev.Event = ev.ResponseReceived(self.now_ms, pending.request_id, resp.data)
            else:
                event = ev.RequestFailed(
                    self.now_ms, pending.request_id, ev.FailureKind.REJECTED, resp.error
                )
            self.deliver(requester, event)

        self.at(self.now_ms + self.latency(), arrive)

    def _execute(self, node: MemNode, action: ev.Execute) -> None:
        sandbox = FakeSandbox(self.sandbox_outcome) if self.sandbox_outcome else FakeSandbox()
        result = trio.run(
            lambda: execute(
                action.task_id,
                action.job_spec,
                sandbox=sandbox,
                key=node.key,
                software_measurement=SOFTWARE,
            )
        )
        event = ev.ExecutionFinished(
            self.now_ms + self.exec_ms,
            action.task_id,
            action.attempt,
            action.purpose,
            result.report.encode(),
            result.stdout,
        )
        generation = node.generation

        def finish(_: Any) -> None:
            if node.alive and node.generation == generation:
                self.deliver(node, dataclasses.replace(event, now_ms=self.now_ms))

        self.at(self.now_ms + self.exec_ms, finish)

    # --- queries -----------------------------------------------------------------------------

    def alive(self) -> list[MemNode]:
        return [n for n in self.nodes.values() if n.alive]

    def submit(self, name: str, spec: bytes, *, fee: int = 1_000_000, tau: int = 16) -> bytes:
        """Post a task from node `name`; returns its task id."""
        node = self.nodes[name]
        before = len(node.submitted)
        self.deliver(node, ev.SubmitTask(self.now_ms, 1, spec, fee, tau))
        # The poster signs once it reached the chain's tip (right after start it may not have).
        assert self.run_until(lambda: len(node.submitted) > before, self.now_ms + 10_000)
        return node.submitted[before].task_id
