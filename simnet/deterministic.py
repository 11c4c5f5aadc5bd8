"""The deterministic mode: every peer a real `PeerCore`, driven by a seeded discrete-event scheduler
over the network model of `simnet.network`. No trio scheduling, no sockets, no clock.

One seed fixes the world (`simnet.world`), the network's random stream and every policy's random
stream; the driver consumes them in the scheduler's order, and the scheduler orders entries by
(time, sequence). So a seed gives the same run, and `run(...)` the same report, byte for byte.

How the contract of `p2p.events` is executed:

- `Publish`: `Network.disseminate` over the topic's mesh; each reached live peer validates
  (`validate_gossip`) and, if accepted, gets `GossipReceived` at its arrival time. Copies of the
  same bytes from several publishers (every validator publishes a finalised block) collapse, as
  content-addressed gossip ids do.
- `Request`: `Network.transmit`; the target gets `RequestReceived`; its `Respond` travels back and
  becomes `ResponseReceived` (or `RequestFailed(REJECTED)` for an error). A lost message, a
  partition or a crash makes the request time out (`timeout_ms`); a peer that is down when the
  request leaves is `UNREACHABLE` after a failed dial.
- `StartTimer`: `TimerFired` after the delay (to the same incarnation of the peer).
- `Connect`: ignored (the network model has no connections: every request pays one latency).
- `Execute`: `executor.run.execute` with the fake sandbox (`executor.fake.FakeSandbox`, scripted by
  `simnet.jobs`); `ExecutionFinished` after the job's simulated run time.
- `StoreBlock`: recorded (height and hash for the checkers; state and commit for a restart).
- `TaskEvent`, `Penalise`, `TaskSubmitted`, `ResultReady`, `Log`: recorded.

Faults: a crash stops a peer (its scheduled events are dropped by incarnation); a restart builds a
new core from the state and commit it last stored, with an archive of the blocks it stored, and it
catches up by sync as a real node does. Partitions, slow links and extra loss change the network
model for their duration. Flooding peers send junk gossip to their mesh neighbours and junk
requests to random peers at their policy's interval.

The run stops when every task is decided and the faults are over (plus a few blocks for the
stragglers), or at the liveness deadline of the last task.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import trio

from committee.messages import kind_name
from executor.fake import FakeSandbox
from executor.policy import Runtime
from executor.run import execute
from executor.spec import JobSpec
from executor.verify import VerifyPolicy
from ledger.block import CertifiedBlock
from ledger.certificates import QuorumCertificate
from ledger.domains import Domain, digest
from ledger.errors import DecodeError
from ledger.state import State, genesis_state
from ledger.tx import Transaction
from p2p.core import PeerCore
from p2p.events import (
    PROTO_COMMITTEE,
    PROTO_TX,
    PROTOCOL_SPECS,
    TOPIC_TASKS,
    Accept,
    Connect,
    Execute,
    ExecutionFinished,
    FailureKind,
    GossipReceived,
    Log,
    LogLevel,
    PeerConnected,
    PeerDisconnected,
    Penalise,
    Publish,
    Reject,
    Request,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    ResultReady,
    Started,
    StartTimer,
    StoreBlock,
    SubmitTask,
    TaskEvent,
    TaskPhase,
    TaskSubmitted,
    TimerFired,
)
from p2p.policy import Policy
from p2p.roles.base import CoreConfig
from simnet import jobs
from simnet.checkers import Findings, check
from simnet.errors import SimnetError
from simnet.network import ENVELOPE_BYTES, Network
from simnet.observe import Recorder
from simnet.policies import SimPolicy, make_policy
from simnet.report import percentiles
from simnet.scenario import Scenario
from simnet.scheduler import Scheduler
from simnet.shared import SharedChecks, SimCore
from simnet.summary import build_report
from simnet.world import PeerRole, PeerSpec, World, build_world

# A dial to a peer that is down fails after about this long (py-libp2p measured 678 ms for
# SwarmDialAllFailedError against a killed process; notes/py-libp2p-0.8.1.md).
DIAL_FAIL_MS: Final = 700
# Peers start within this window (a swarm never starts in the same millisecond).
START_JITTER_MS: Final = 500
# After the last task is decided (and the faults are over) the run goes on this many block
# intervals so the last blocks reach every peer before the ledgers are compared.
TAIL_BLOCKS: Final = 3
# Gossip messages remembered to collapse copies published by several peers (content-addressed
# ids): a few minutes of blocks and tasks.
GOSSIP_SEEN_MAX: Final = 4096
# What every simulated executor reports as its software measurement (a fixed value: the
# simulator's verifiers accept any, as a test network does).
SIM_SOFTWARE: Final = digest(Domain.SOFTWARE, b"posi-peer simnet")
# Junk a flooding peer sends: bytes that decode as nothing.
JUNK_BYTES: Final = 512
# Different kinds of `Log` actions counted by name in the report.
LOG_KINDS_MAX: Final = 64


@dataclasses.dataclass(slots=True)
class SimPeer:
    """A simulated peer: its spec, its current core and incarnation, and its requests."""

    spec: PeerSpec
    core: PeerCore
    policy: Policy | None
    honest: bool
    up: bool = True
    incarnation: int = 0
    next_inbound: int = 0
    # inbound request id -> (caller index, caller incarnation, caller's request id, protocol)
    inbound: dict[int, tuple[int, int, int, str]] = dataclasses.field(default_factory=dict)
    # outbound request id -> protocol (awaiting an answer)
    pending: dict[int, str] = dataclasses.field(default_factory=dict)
    last_state: State | None = None
    last_commit: QuorumCertificate | None = None
    stored: dict[int, bytes] = dataclasses.field(default_factory=dict)  # height -> block hash
    handled: int = 0
    busy_ns: int = 0


class Archive:
    """One peer's view of the shared block archive: only blocks this peer stored
    (`p2p.roles.base.ChainArchive`)."""

    def __init__(
        self,
        owner: SimPeer,
        blocks: dict[bytes, CertifiedBlock],
        txs: dict[bytes, tuple[int, Transaction, bytes]],
    ) -> None:
        self.owner = owner
        self._blocks = blocks
        self._txs = txs

    def blocks(self, first: int, last: int) -> Iterable[CertifiedBlock]:
        for height in range(first, last + 1):
            block_hash = self.owner.stored.get(height)
            if block_hash is None:
                return
            yield self._blocks[block_hash]

    def transaction(self, tx_hash: bytes) -> tuple[int, Transaction] | None:
        found = self._txs.get(tx_hash)
        if found is None or self.owner.stored.get(found[0]) != found[2]:
            return None
        return found[0], found[1]


def run_inline_execution(
    sandbox: FakeSandbox, task_id: bytes, job_spec: bytes, key: Any
) -> tuple[bytes, bytes]:
    """Run `executor.run.execute` with the fake sandbox to completion, synchronously (the fake
    sandbox only checkpoints). Returns (report bytes, stdout)."""

    async def one() -> tuple[bytes, bytes]:
        result = await execute(
            task_id, job_spec, sandbox=sandbox, key=key, software_measurement=SIM_SOFTWARE
        )
        return result.report.encode(), result.stdout

    return trio.run(one)


class DeterministicRun:
    """One seeded run (see the module docstring). `shared=False` gives every peer its own checks
    (slow: for the test that sharing changes nothing)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        shared: bool = True,
        block_interval_ms: int = 1000,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.world: World = build_world(scenario, block_interval_ms=block_interval_ms)
        self.sched = Scheduler()
        self.net = Network(
            scenario.network, len(self.world.peers), random.Random(f"network/{scenario.seed}")
        )
        self.shared = SharedChecks() if shared else None
        self.progress = progress
        self.lies: set[bytes] = set()
        self.genesis_state = genesis_state(self.world.genesis)
        self.sandbox = FakeSandbox(jobs.fake_outcome)
        self.verify_policy = VerifyPolicy(allowed_runtimes=frozenset({Runtime.FAKE}))
        self.archive_blocks: dict[bytes, CertifiedBlock] = {}
        self.archive_txs: dict[bytes, tuple[int, Transaction, bytes]] = {}
        self.gossip_seen: collections.OrderedDict[tuple[str, bytes, int], None] = (
            collections.OrderedDict()
        )
        self.logs: collections.Counter[str] = collections.Counter()
        self.closed: set[bytes] = set()
        self.crashed_for_good: set[int] = set()
        self.peers: list[SimPeer] = []
        for spec in self.world.peers:
            policy = self._policy(spec)
            core = self._core(spec, self.genesis_state, None, policy, None)
            self.peers.append(SimPeer(spec, core, policy, spec.policy is None))
        self.index_of = {p.spec.identity.public: p.spec.index for p in self.peers}
        self.subscribers = [True] * len(self.peers)
        self.rec = Recorder([p.honest for p in self.peers])
        self._dispatch: dict[type, Callable[[SimPeer, Any], None]] = {
            Publish: self._publish,
            Request: self._request,
            Respond: self._respond,
            StartTimer: self._timer,
            Execute: self._execute,
            StoreBlock: self._store,
            TaskEvent: self._task_event,
            Penalise: self._penalise,
            TaskSubmitted: self._submitted,
            ResultReady: self._result_ready,
            Log: self._log,
            Connect: lambda peer, action: None,
        }

    # --- construction ----------------------------------------------------------------------

    def _policy(self, spec: PeerSpec) -> SimPolicy | None:
        if spec.policy is None:
            return None
        rng = random.Random(f"policy/{self.scenario.seed}/{spec.index}")
        return make_policy(spec.policy, spec.identity, rng, self.lies)

    def _core(
        self,
        spec: PeerSpec,
        state: State,
        commit: QuorumCertificate | None,
        policy: Policy | None,
        archive: Archive | None,
    ) -> PeerCore:
        config = CoreConfig(
            identity=spec.identity,
            vrf_key=spec.vrf_key,
            validator=spec.role is PeerRole.VALIDATOR,
            operator=spec.role is PeerRole.OPERATOR,
            block_interval_ms=self.world.block_interval_ms,
            verify_policy=self.verify_policy,
            open_tasks_max=self.world.scenario.workload.open_tasks_max,
            poll_blocks=self.world.scenario.workload.poll_blocks,
        )
        if self.shared is not None:
            return SimCore(
                config,
                state=state,
                shared=self.shared,
                tip_commit=commit,
                archive=archive,
                policy=policy,
            )
        return PeerCore(config, state=state, tip_commit=commit, archive=archive, policy=policy)

    # --- delivering events -----------------------------------------------------------------

    def _handle(self, peer: SimPeer, event: Any) -> None:
        started = time.perf_counter_ns()
        actions = peer.core.handle(event)
        peer.busy_ns += time.perf_counter_ns() - started
        peer.handled += 1
        self.rec.events += 1
        dispatch = self._dispatch
        for action in actions:
            if not peer.up:
                return  # crashed while acting? (never: crashes are scheduled entries)
            dispatch[type(action)](peer, action)

    def _deliver(self, entry: tuple[int, int, Any]) -> None:
        index, incarnation, event = entry
        peer = self.peers[index]
        if not peer.up or peer.incarnation != incarnation:
            return
        self._handle(peer, event)

    def _later(self, delay_ms: int, peer: SimPeer, make: Callable[[int], Any]) -> None:
        """Deliver `make(now_ms)` to `peer` (its current incarnation) after `delay_ms`."""
        self.sched.after(delay_ms, self._deliver_made, (peer.spec.index, peer.incarnation, make))

    def _deliver_made(self, entry: tuple[int, int, Callable[[int], Any]]) -> None:
        index, incarnation, make = entry
        peer = self.peers[index]
        if not peer.up or peer.incarnation != incarnation:
            return
        self._handle(peer, make(self.sched.now_ms))

    # --- actions: gossip -------------------------------------------------------------------

    def _publish(self, peer: SimPeer, action: Publish) -> None:
        side = self.net.state.side.get(peer.spec.index, 0)
        key = (action.topic, action.data, side)
        if key in self.gossip_seen:
            # Another publisher's copy already spreads on this side: ours only adds our own
            # sends to our mesh neighbours, which the others drop as duplicates.
            copies = len(self.net.mesh[peer.spec.index])
            self.rec.message(
                f"gossip {action.topic}", copies, copies * (len(action.data) + ENVELOPE_BYTES)
            )
            return
        self.gossip_seen[key] = None
        while len(self.gossip_seen) > GOSSIP_SEEN_MAX:
            self.gossip_seen.popitem(last=False)
        spread = self.net.disseminate(peer.spec.index, len(action.data), self.subscribers)
        self.rec.message(f"gossip {action.topic}", spread.messages, spread.bytes)
        origin = peer.spec.identity.public
        for target, delay, via in spread.arrivals:
            receiver = self.peers[target]
            self.sched.after(
                delay,
                self._gossip_arrive,
                (target, receiver.incarnation, action.topic, via, action.data, origin),
            )

    def _gossip_arrive(self, entry: tuple[int, int, str, int, bytes, bytes]) -> None:
        index, incarnation, topic, via, data, origin = entry
        peer = self.peers[index]
        if not peer.up or peer.incarnation != incarnation:
            return
        sender = self.peers[via].spec.identity.public
        verdict = peer.core.validate_gossip(topic, sender, data)
        if isinstance(verdict, Accept):
            now = self.sched.now_ms
            self._handle(peer, GossipReceived(now, topic, sender, data, origin))
        elif isinstance(verdict, Reject):
            self.rec.penalised(
                index,
                self.peers[via].honest,
                Penalise(sender, f"gossip:{verdict.reason}", verdict.penalty),
            )

    # --- actions: requests -----------------------------------------------------------------

    def _request(self, peer: SimPeer, action: Request) -> None:
        size = len(action.data)
        self.rec.message(f"request {action.protocol}", 1, size + ENVELOPE_BYTES)
        if action.protocol == PROTO_COMMITTEE:
            self.rec.round_message(kind_name(action.data))
        injected = action.request_id < 0
        target = self.index_of.get(action.peer)
        if not injected:
            peer.pending[action.request_id] = action.protocol
            self._fail_soon(peer, action.request_id, FailureKind.TIMEOUT, action.timeout_ms)
        if target is None or target == peer.spec.index:
            if not injected:
                self._fail_soon(peer, action.request_id, FailureKind.UNREACHABLE, DIAL_FAIL_MS)
            return
        callee = self.peers[target]
        if not callee.up:
            if not injected:
                self._fail_soon(peer, action.request_id, FailureKind.UNREACHABLE, DIAL_FAIL_MS)
            return
        for delay in self.net.transmit(peer.spec.index, target, size, self.sched.now_ms):
            self.sched.after(
                delay,
                self._request_arrive,
                (target, callee.incarnation, peer.spec.index, peer.incarnation, action),
            )

    def _fail_soon(self, peer: SimPeer, request_id: int, kind: FailureKind, delay: int) -> None:
        """Deliver `RequestFailed(kind)` after `delay` unless an answer came first."""
        self.sched.after(
            delay, self._failure_arrive, (peer.spec.index, peer.incarnation, request_id, kind)
        )

    def _failure_arrive(self, entry: tuple[int, int, int, FailureKind]) -> None:
        index, incarnation, rid, kind = entry
        peer = self.peers[index]
        if not peer.up or peer.incarnation != incarnation or rid not in peer.pending:
            return
        del peer.pending[rid]
        self._handle(peer, RequestFailed(self.sched.now_ms, rid, kind))

    def _request_arrive(self, entry: tuple[int, int, int, int, Request]) -> None:
        index, incarnation, caller, caller_inc, action = entry
        peer = self.peers[index]
        if not peer.up or peer.incarnation != incarnation:
            return
        peer.next_inbound += 1
        rid = peer.next_inbound
        peer.inbound[rid] = (caller, caller_inc, action.request_id, action.protocol)
        caller_id = self.peers[caller].spec.identity.public
        self._handle(
            peer,
            RequestReceived(self.sched.now_ms, rid, caller_id, action.protocol, action.data),
        )

    def _respond(self, peer: SimPeer, action: Respond) -> None:
        found = peer.inbound.pop(action.request_id, None)
        if found is None:
            raise SimnetError(f"peer {peer.spec.index} answered unknown request {action}")
        caller, caller_inc, caller_rid, protocol = found
        size = len(action.data) if action.error is None else len(action.error)
        self.rec.message(f"response {protocol}", 1, size + ENVELOPE_BYTES)
        if action.error is not None and action.penalty > 0:
            self.rec.penalised(
                peer.spec.index,
                self.peers[caller].honest,
                Penalise(
                    self.peers[caller].spec.identity.public,
                    f"request:{action.error}",
                    action.penalty,
                ),
            )
        if caller_rid < 0:
            return  # a policy's injected request: the core never asked, nobody waits
        for delay in self.net.transmit(peer.spec.index, caller, size, self.sched.now_ms):
            self.sched.after(delay, self._response_arrive, (caller, caller_inc, caller_rid, action))

    def _response_arrive(self, entry: tuple[int, int, int, Respond]) -> None:
        index, incarnation, rid, action = entry
        peer = self.peers[index]
        if not peer.up or peer.incarnation != incarnation or rid not in peer.pending:
            return
        del peer.pending[rid]
        now = self.sched.now_ms
        if action.error is None:
            self._handle(peer, ResponseReceived(now, rid, action.data))
        else:
            self._handle(peer, RequestFailed(now, rid, FailureKind.REJECTED, action.error))

    # --- actions: the rest -----------------------------------------------------------------

    def _timer(self, peer: SimPeer, action: StartTimer) -> None:
        key = action.key
        self._later(action.delay_ms, peer, lambda now: TimerFired(now, key))

    def _execute(self, peer: SimPeer, action: Execute) -> None:
        report, output = run_inline_execution(
            self.sandbox, action.task_id, action.job_spec, peer.spec.identity
        )
        self.rec.executed(peer.spec.index, action.purpose.value, action.job_spec, output)
        try:
            duration = jobs.run_ms(JobSpec.decode(action.job_spec))
        except DecodeError:
            duration = jobs.SANDBOX_OVERHEAD_MS
        task_id, attempt, purpose = action.task_id, action.attempt, action.purpose
        self._later(
            duration,
            peer,
            lambda now: ExecutionFinished(now, task_id, attempt, purpose, report, output),
        )

    def _store(self, peer: SimPeer, action: StoreBlock) -> None:
        cb = action.block
        header = cb.block.header
        block_hash = header.hash()
        if block_hash not in self.archive_blocks:
            self.archive_blocks[block_hash] = cb
            for tx in cb.block.txs:
                self.archive_txs[tx.hash()] = (header.height, tx, block_hash)
        peer.stored[header.height] = block_hash
        peer.last_state = action.state
        peer.last_commit = cb.commit
        self.rec.stored(peer.spec.index, header.height, block_hash, self.sched.now_ms, action.via)

    def _task_event(self, peer: SimPeer, action: TaskEvent) -> None:
        self.rec.task_event(peer.spec.index, action)
        if peer.spec.role is PeerRole.POSTER and action.phase in (
            TaskPhase.PAID,
            TaskPhase.FAILED,
            TaskPhase.EXPIRED,
        ):
            self.closed.add(action.task_id)

    def _penalise(self, peer: SimPeer, action: Penalise) -> None:
        target = self.index_of.get(action.peer)
        self.rec.penalised(
            peer.spec.index, target is not None and self.peers[target].honest, action
        )

    def _submitted(self, peer: SimPeer, action: TaskSubmitted) -> None:
        self.rec.submitted(action.ref, action.task_id, self.sched.now_ms)

    def _result_ready(self, peer: SimPeer, action: ResultReady) -> None:
        self.rec.result_ready(action)

    def _log(self, peer: SimPeer, action: Log) -> None:
        if action.level >= LogLevel.WARNING:
            key = f"{action.level.name.lower()} {action.what}"
            if key in self.logs or len(self.logs) < LOG_KINDS_MAX:
                self.logs[key] += 1

    # --- workload, faults, floods ----------------------------------------------------------

    def _schedule_workload(self) -> None:
        fee, tau = self.scenario.workload.fee, self.scenario.workload.tau
        for plan in self.world.tasks:
            poster = self.peers[plan.poster]
            self.sched.at(plan.at_ms, self._submit, (poster.spec.index, plan.index, fee, tau))

    def _submit(self, entry: tuple[int, int, int, int]) -> None:
        index, plan, fee, tau = entry
        peer = self.peers[index]
        if not peer.up:
            return
        job = self.world.tasks[plan].job_spec
        self._handle(peer, SubmitTask(self.sched.now_ms, plan, job, fee, tau))

    def _schedule_faults(self) -> None:
        for i, rf in enumerate(self.world.faults):
            self.sched.at(rf.fault.at_ms, self._fault_start, i)
            if rf.fault.until_ms is not None:
                self.sched.at(rf.fault.until_ms, self._fault_end, i)
            elif rf.fault.kind == "crash":
                self.crashed_for_good.update(rf.peers)

    def _fault_start(self, i: int) -> None:
        rf = self.world.faults[i]
        kind = rf.fault.kind
        if kind == "crash":
            for index in rf.peers:
                self._crash(self.peers[index])
        elif kind == "partition":
            self.net.partition([rf.peers])
        elif kind == "slow":
            self.net.set_slow(rf.peers, rf.fault.factor)
        elif kind == "loss":
            self.net.set_extra_loss(rf.fault.loss)

    def _fault_end(self, i: int) -> None:
        rf = self.world.faults[i]
        kind = rf.fault.kind
        if kind == "crash":
            for index in rf.peers:
                self._restart(self.peers[index])
        elif kind == "partition":
            self.net.heal()
        elif kind == "slow":
            self.net.set_slow(rf.peers, 1.0)
        elif kind == "loss":
            self.net.set_extra_loss(0.0)

    def _neighbours(self, index: int) -> list[int]:
        return self.net.mesh[index]

    def _crash(self, peer: SimPeer) -> None:
        if not peer.up:
            return
        peer.up = False
        peer.incarnation += 1
        peer.inbound.clear()
        peer.pending.clear()
        self.net.crash([peer.spec.index])
        gone = peer.spec.identity.public
        for n in self._neighbours(peer.spec.index):
            other = self.peers[n]
            if other.up:
                self._later(1, other, lambda now, g=gone: PeerDisconnected(now, g))

    def _restart(self, peer: SimPeer) -> None:
        if peer.up:
            return
        state = peer.last_state or self.genesis_state
        archive = Archive(peer, self.archive_blocks, self.archive_txs)
        peer.core = self._core(peer.spec, state, peer.last_commit, peer.policy, archive)
        peer.up = True
        peer.incarnation += 1
        peer.next_inbound = 0
        self.net.restart([peer.spec.index])
        self._later(0, peer, Started)
        me = peer.spec.identity.public
        for n in self._neighbours(peer.spec.index):
            other = self.peers[n]
            if other.up:
                ident = other.spec.identity.public
                self._later(1, peer, lambda now, i=ident: PeerConnected(now, i))
                self._later(1, other, lambda now, i=me: PeerConnected(now, i))

    def _schedule_floods(self) -> None:
        for peer in self.peers:
            policy = peer.policy
            if isinstance(policy, SimPolicy) and policy.flood_interval_ms > 0:
                self.sched.at(policy.flood_interval_ms, self._flood, peer.spec.index)

    def _flood(self, index: int) -> None:
        peer = self.peers[index]
        policy = peer.policy
        assert isinstance(policy, SimPolicy)
        self.sched.after(policy.flood_interval_ms, self._flood, index)
        if not peer.up:
            return
        rng = policy.rng
        junk = rng.randbytes(JUNK_BYTES)
        self.rec.flood_sent += 1
        neighbours = self._neighbours(index)
        self.rec.message("flood gossip", len(neighbours), len(neighbours) * JUNK_BYTES)
        for n in neighbours:
            delays = self.net.transmit(index, n, JUNK_BYTES, self.sched.now_ms)
            for delay in delays[:1]:
                self.sched.after(
                    delay,
                    self._gossip_arrive,
                    (
                        n,
                        self.peers[n].incarnation,
                        TOPIC_TASKS,
                        index,
                        junk,
                        peer.spec.identity.public,
                    ),
                )
        target = rng.randrange(len(self.peers))
        if target != index:
            request = Request(
                policy.injected_request_id(),
                self.peers[target].spec.identity.public,
                PROTO_TX,
                junk,
                PROTOCOL_SPECS[PROTO_TX].timeout_ms,
            )
            self._request(peer, request)

    # --- running ---------------------------------------------------------------------------

    def _start(self) -> None:
        rng = random.Random(f"start/{self.scenario.seed}")
        for peer in self.peers:
            at = rng.randint(0, START_JITTER_MS)
            index = peer.spec.index
            self.sched.at(at, self._deliver_made, (index, peer.incarnation, Started))
            for n in self._neighbours(index):
                ident = self.peers[n].spec.identity.public
                self.sched.at(
                    at,
                    self._deliver_made,
                    (index, peer.incarnation, lambda now, i=ident: PeerConnected(now, i)),
                )

    def _all_decided(self) -> bool:
        return len(self.closed) >= len(self.world.tasks) and all(
            r.task_id in self.closed for r in self.rec.tasks.values()
        )

    def deadline_ms(self) -> int:
        """When the run stops at the latest: the liveness deadline of the last task."""
        sc = self.scenario
        last = max((t.at_ms for t in self.world.tasks), default=0)
        return max(last, sc.faults_until_ms) + sc.phases.liveness_bound_ms + 1

    def run(self, reproduce: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """Run to the end; returns (report, perf figures). The report is deterministic."""
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        self._start()
        self._schedule_workload()
        self._schedule_faults()
        self._schedule_floods()
        deadline = self.deadline_ms()
        step = max(1000, self.world.block_interval_ms)
        t = 0
        finished_early = False
        next_note = 0.0
        while t < deadline:
            t = min(deadline, t + step)
            self.sched.run_until(t)
            if self.progress is not None and time.perf_counter() >= next_note:
                next_note = time.perf_counter() + 5.0
                self.progress(
                    f"t={t / 1000:.0f}s height {max(self.rec.heights, default=0)} "
                    f"tasks decided {len(self.closed)}/{len(self.world.tasks)} "
                    f"events {self.rec.events}"
                )
            if t >= self.scenario.faults_until_ms and self._all_decided() and self.world.tasks:
                finished_early = True
                self.sched.run_until(t + TAIL_BLOCKS * self.world.block_interval_ms)
                t = self.sched.now_ms
                break
        end_ms = t
        report = self._report(end_ms, finished_early, reproduce)
        perf = self._perf(time.perf_counter() - wall0, time.process_time() - cpu0)
        return report, perf

    # --- results ---------------------------------------------------------------------------

    def final_state(self) -> State:
        """The most advanced honest peer's state."""
        best = self.genesis_state
        for peer in self.peers:
            if peer.honest and peer.core.state.height > best.height:
                best = peer.core.state
        return best

    def findings(self, end_ms: int, finished_early: bool) -> Findings:
        """Run the checkers on what happened so far."""
        faulty = {p.spec.identity.public for p in self.peers if not p.honest}
        faulty |= {self.peers[i].spec.identity.public for i in self.crashed_for_good}
        return check(
            self.world,
            self.rec,
            self.final_state(),
            faulty=faulty,
            lies=self.lies,
            end_ms=end_ms,
            finished_early=finished_early,
        )

    def _report(self, end_ms: int, finished_early: bool, reproduce: str) -> dict[str, Any]:
        findings = self.findings(end_ms, finished_early)
        by_role: dict[str, list[int]] = collections.defaultdict(list)
        for peer in self.peers:
            by_role[peer.spec.role.value].append(peer.handled)
        figures = {
            "events_handled": {role: percentiles(v) for role, v in sorted(by_role.items())},
            "heights": percentiles(self.rec.peer_height),
            "down_at_end": sorted(p.spec.index for p in self.peers if not p.up),
        }
        return build_report(
            self.world,
            self.rec,
            findings,
            mode="deterministic",
            sandbox="fake",
            end_ms=end_ms,
            reproduce=reproduce,
            peers_figures=figures,
            extra={
                "logs": dict(sorted(self.logs.items())),
                "flood": {"junk_messages": self.rec.flood_sent},
                "lies_signed": len(self.lies),
                "scheduler_entries": self.sched.ran,
                "fault_windows": [
                    {"kind": f.kind, "at_ms": f.at_ms, "until_ms": f.until_ms}
                    for f in self.scenario.faults
                ],
            },
        )

    def _perf(self, wall_s: float, cpu_s: float) -> dict[str, Any]:
        import psutil  # noqa: PLC0415 - only for the figures

        by_role: dict[str, list[int]] = collections.defaultdict(list)
        for peer in self.peers:
            by_role[peer.spec.role.value].append(peer.busy_ns // 1000)
        rss = psutil.Process().memory_info().rss
        shared = self.shared
        return {
            "wall_s": round(wall_s, 2),
            "cpu_s": round(cpu_s, 2),
            "rss_bytes": rss,
            "rss_per_peer_bytes": rss // max(1, len(self.peers)),
            "core_cpu_us_per_peer": {role: percentiles(v) for role, v in sorted(by_role.items())},
            "events_per_s": round(self.rec.events / wall_s) if wall_s else None,
            "shared_state_hits": None if shared is None else shared.hits,
            "shared_state_misses": None if shared is None else shared.misses,
        }


def run(
    scenario: Scenario,
    *,
    reproduce: str = "",
    shared: bool = True,
    progress: Callable[[str], None] | None = None,
    block_interval_ms: int = 1000,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one scenario deterministically; returns (report, perf)."""
    return DeterministicRun(
        scenario, shared=shared, progress=progress, block_interval_ms=block_interval_ms
    ).run(reproduce)
