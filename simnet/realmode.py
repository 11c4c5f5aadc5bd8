"""The real mode: real `PeerCore`s on real py-libp2p hosts (`p2p.host.open_host`) over loopback TCP,
spread over worker processes, with real Docker jobs (one engine shared by every peer) or the fake
sandbox.

Layout. The coordinator (this process) builds the world (`simnet.world`) and starts `workers`
worker processes for the operators (dealt round-robin) plus one process for the validators and the
posters: in a real network they are separate machines, and a validator sharing an event loop with
150 operators' libp2p stacks finalised a block a minute instead of one per interval (measured). A
worker runs one trio loop holding its peers:

- a light shell per peer (`LivePeer`): its host, its core (a `simnet.shared.SimCore`: the pure
  checks shared by the peers of the process, as in the deterministic mode), gossip readers and
  request handlers; the worker's single event loop is the only caller of every core's `handle`
  and takes queued events in slices of `LOOP_SLICE_S` (a checkpoint per event let the queue grow
  to 15-30 s of waiting at 300 peers); one timer heap serves all peers;
- hosts are opened one after another, each with few connections (`CONNECTIONS_TARGET`): the notes
  measured CPU per delivery growing with connections and swarm size; host upkeep runs every
  `MAINTAIN_INTERVAL_S` instead of every second (hundreds of hosts per process);
- every peer knows every other peer's address (ports are picked before the run): roster members,
  validators and executors are reached by identity over direct streams;
- once every host listens, the workload waits until the swarm has formed (`_settle`: the chain at
  `SETTLE_HEIGHT`, `SETTLE_SHARE` of the peers holding a block); a worker that sent its final
  figures exits without closing its hosts one by one.

The coordinator follows the chain itself (it applies every block a worker reports, checking its
commit certificate), collects the observations (task timelines, stored blocks, executions, results)
into the same `Recorder` the deterministic mode fills, posts the workload and injects the faults
at their times, prints progress, and at the end runs the same checkers and writes the same report.

Faults in this mode act in the shells: a crash closes the peer's host (remotes see it leave) and a
restart reopens it on the same port with a core rebuilt from the state and commit it last stored;
partitions, slow links and extra loss filter and delay what a peer's shell hands to its core and
sends out (the TCP connections themselves stay up). Times in a scenario count from the end of the
settling wait (`t0`).

Each worker reports, next to its CPU and memory, how late its loop woke a sleeper (`loop_lag_ms`),
how long events waited for their core (`queue_wait_ms`), answered requests' round trips by protocol
and whether a connection had to be dialled (`request_ms`), request streams opened and reused per
protocol (`request_streams`), what py-libp2p's resource manager refused (`library_refusals`), mesh
sizes per topic and connections per peer: where a large run spends its time.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import heapq
import itertools
import multiprocessing
import multiprocessing.connection
import os
import random
import socket
import time
from collections.abc import Callable, Hashable
from typing import Any, Final

import trio

from committee.messages import kind_name
from committee.round import Timing
from executor.fake import FakeSandbox
from executor.policy import Runtime
from executor.run import execute
from executor.verify import VerifyPolicy
from ledger.block import CertifiedBlock
from ledger.certificates import QuorumCertificate
from ledger.chain import accept_block
from ledger.domains import Domain, digest
from ledger.errors import LedgerError
from ledger.state import State, genesis_state
from p2p import events as ev
from p2p.config import ConnectionConfig, GossipConfig, HostConfig, ProtocolConfig, TopicConfig
from p2p.errors import (
    P2PError,
    PeerUnreachable,
    RemoteProtocolError,
    RequestRejected,
    RequestTimeout,
)
from p2p.host import ACCEPT, Ignore, P2PHost, Reject, Verdict, open_host
from p2p.identity import NotAnIdentityPeerId, peer_id_of, public_key_of
from p2p.peers import PeerSource
from p2p.roles.base import CoreConfig
from simnet import jobhost, jobs
from simnet.checkers import check
from simnet.errors import SimnetError
from simnet.jobhost import RemoteSandbox
from simnet.observe import Recorder
from simnet.policies import SimPolicy, make_policy
from simnet.report import percentiles
from simnet.scenario import Scenario
from simnet.shared import SharedChecks, SimCore
from simnet.summary import build_report, latency_samples
from simnet.world import PeerRole, PeerSpec, World, build_world

# Connections each host keeps: few connections per peer keep GossipSub's per-delivery CPU low
# (notes/py-libp2p-0.8.1.md); 4 random links per peer connect a swarm of hundreds w.h.p.
CONNECTIONS_TARGET: Final = 4
# Above this the library prunes. Direct streams to roster members open more: a member of a few
# rosters talks to dozens of peers, and at 48 the library could prune live roster links (the next
# message redials, a failed dial lands in the 60 s negative dial cache). Validators accept the
# whole swarm: every member sends them transactions. Not a cure for the committee request storm
# described in the README (it happened at 128 too).
CONNECTIONS_MAX: Final = 128
# How often a host checks its connection targets (a real node: every second), and how often the
# shells tell cores about connections: hundreds of hosts per process make both a cost.
MAINTAIN_INTERVAL_S: Final = 5.0
WATCH_INTERVAL_S: Final = 2.0
# GossipSub mesh degrees for the simulator's hosts (D, D_lo, D_hi): a smaller mesh than a real
# node's 6/4/12, because every extra mesh link is another copy of every block to process.
GOSSIP_DEGREES: Final = (4, 3, 8)
# Default block interval of the real mode: a block costs every peer a gossip delivery (about
# 300 x 10 ms of CPU for 300 peers on two cores), so blocks come every few seconds.
REAL_BLOCK_INTERVAL_MS: Final = 4000
# Task round timeouts stretch with the block interval, from the core's default interval: the real
# mode packs hundreds of peers on two cores, so a message between members takes seconds at p95
# (README, "300 peers"), and rounds whose timeouts fire on slow votes change views, which costs
# every member another broadcast and loads the machine further.
CORE_BLOCK_INTERVAL_MS: Final = CoreConfig.block_interval_ms
# The worker's event queue: every peer's events wait here for the loop (backpressure beyond).
EVENT_QUEUE_LEN: Final = 65_536
# Requests each peer keeps in flight at once (each is a trio task and a stream): a member of a few
# 16-member rosters broadcasts a few dozen at once, as run_node allows 256 per node. Per peer, not
# per worker: a validator's consensus messages must never wait behind other peers' rounds.
REQUESTS_IN_FLIGHT_MAX: Final = 128
# Inbound requests a host serves at once (the host's default is 64; past it callers get "busy"):
# bursts of committee traffic for several rosters land on the same members.
INBOUND_REQUESTS_MAX: Final = 256
# Executions at once per worker: one Docker engine serves every peer of the machine, and a
# container start costs about 120 ms of the engine's time (executor README).
EXECUTIONS_PER_WORKER_MAX: Final = 2
# A worker's statistics that feed the report rather than perf.json (everything else goes to
# perf.json as measured, so a new figure cannot be dropped on the way).
_WORKER_STATS_NOT_IN_PERF: Final = frozenset(
    {"handled", "busy_us", "gossip_in", "gossip_in_bytes", "lies"}
)
# py-libp2p's switch for yamux window updates (see _worker_main).
YAMUX_RELEASE_ON_READ_ENV: Final = "PY_YAMUX_RELEASE_ON_READ"
# The loop-lag probe's sleep, and the samples kept of it and of the event queue's waits.
LAG_PROBE_S: Final = 0.1
SAMPLES_MAX: Final = 20_000
SAMPLE_REPLACE_SHARE: Final = 0.01
# The event loop hands events to cores for up to this long before it lets the hosts run.
LOOP_SLICE_S: Final = 0.02
# Observations are sent to the coordinator in batches at this interval.
FLUSH_INTERVAL_S: Final = 0.5
# A slow link adds this many milliseconds times its factor to every message (loopback has none).
SLOW_BASE_MS: Final = 20
# The coordinator prints progress this often.
PROGRESS_INTERVAL_S: Final = 5.0
# After the last task is decided the run continues this many block intervals (the last blocks
# reach every peer before the final figures).
TAIL_BLOCKS: Final = 2
# The workload starts once the chain has this height and this share of the peers stored a block.
SETTLE_HEIGHT: Final = 2
SETTLE_SHARE: Final = 0.95
# How long a worker may take to open its hosts (the notes measured 15-20 s for 100 hosts).
STARTUP_TIMEOUT_S: Final = 600.0
# A stopping worker waits this long for its executions in flight, sends its figures and exits.
EXIT_WAIT_S: Final = 120.0
# Words of a failure reason kept when failures are counted by reason.
REASON_WORDS_MAX: Final = 12
# Different request failures and core warnings counted by name in the report.
LOG_KINDS_MAX: Final = 64
# Outputs sent to the coordinator for the checkers (bigger ones are sent as their hash only).
OUTPUT_SENT_BYTES_MAX: Final = 64 * 1024
SIM_SOFTWARE: Final = digest(Domain.SOFTWARE, b"posi-peer simnet")
# A peer id that does not inline an Ed25519 key is not a node of the run: the host's penalty for a
# protocol violation (p2p.config.ScoreConfig).
BAD_PEER_ID_PENALTY: Final = 20


def _now_ms(epoch: float) -> int:
    return int((time.time() - epoch) * 1000)


# ------------------------------------------------------------------------------------- worker


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What a worker needs: it rebuilds the world from the scenario (deterministic)."""

    worker: int
    scenario: Scenario
    peers: tuple[int, ...]
    block_interval_ms: int
    image_digest: str
    sandbox: str
    epoch: float
    ports: tuple[int, ...]  # every peer's listen port, by peer index


@dataclasses.dataclass(slots=True)
class LivePeer:
    """One peer of a worker: its host, its core, its incarnation."""

    spec: PeerSpec
    policy: SimPolicy | None
    core: SimCore | None = None
    host: P2PHost | None = None
    stop: trio.Event | None = None
    closed: trio.Event = dataclasses.field(default_factory=trio.Event)
    port: int = 0
    incarnation: int = 0
    next_inbound: int = 0
    inbound: dict[int, tuple[trio.Event, list[ev.Respond]]] = dataclasses.field(
        default_factory=dict
    )
    last_state: State | None = None
    last_commit: QuorumCertificate | None = None
    connected: set[bytes] = dataclasses.field(default_factory=set)
    request_slots: trio.Semaphore = dataclasses.field(
        default_factory=lambda: trio.Semaphore(REQUESTS_IN_FLIGHT_MAX)
    )
    handled: int = 0
    busy_ns: int = 0


class Worker:
    """One worker process's peers (see the module docstring)."""

    def __init__(
        self,
        setup: WorkerSetup,
        conn: multiprocessing.connection.Connection,
        jobs_conn: multiprocessing.connection.Connection | None = None,
    ) -> None:
        self.setup = setup
        self.conn = conn
        self.jobs_conn = jobs_conn  # to the jobs process (simnet.jobhost), with Docker jobs
        self.world: World = build_world(
            setup.scenario,
            block_interval_ms=setup.block_interval_ms,
            image_digest=setup.image_digest,
        )
        self.shared = SharedChecks()
        self.genesis_state = genesis_state(self.world.genesis)
        self.lies: set[bytes] = set()
        self.peers: dict[int, LivePeer] = {}
        for index in setup.peers:
            spec = self.world.peers[index]
            policy = None
            if spec.policy is not None:
                rng = random.Random(f"policy/{setup.scenario.seed}/{index}")
                policy = make_policy(spec.policy, spec.identity, rng, self.lies)
            self.peers[index] = LivePeer(spec, policy, port=setup.ports[index])
        self.index_of = {p.identity.public: p.index for p in self.world.peers}
        # (peer index, incarnation, event or a maker of the event from `now_ms`, is a maker,
        # when it was queued)
        self.send, self.recv = trio.open_memory_channel[tuple[int, int, Any, bool, float]](
            EVENT_QUEUE_LEN
        )
        self.queue_wait_ms: list[int] = []  # a sample of how long events waited for the loop
        self.lag_ms: list[int] = []  # how late the loop woke a 100 ms sleeper
        # answered requests' round trips by protocol and whether a connection had to be dialled
        self.request_ms: collections.defaultdict[str, list[int]] = collections.defaultdict(list)
        self.request_timeouts: collections.Counter[str] = collections.Counter()
        self.timers: list[tuple[float, int, int, int, Hashable]] = []
        self.timer_seq = itertools.count()
        self.timer_wake = trio.Event()
        self.exec_slots = trio.Semaphore(EXECUTIONS_PER_WORKER_MAX)
        # by purpose: how long a job waited for an execution slot, and how long it then took
        self.exec_wait_ms: collections.defaultdict[str, list[int]] = collections.defaultdict(list)
        self.exec_ms: collections.defaultdict[str, list[int]] = collections.defaultdict(list)
        self.sandbox: Any = None
        self.nursery: trio.Nursery | None = None
        self.obs: list[tuple[Any, ...]] = []
        self.sent_heights: set[int] = set()
        self.side: dict[int, int] = {}
        self.slow: dict[int, float] = {}
        self.loss = 0.0
        self.rng = random.Random(f"worker/{setup.scenario.seed}/{setup.worker}")
        self.sample_rng = random.Random(setup.worker)
        self.book: dict[int, tuple[str, ...]] = {}
        self.stopping = trio.Event()
        self.profile: tuple[Any, str] | None = None
        self.reported = False
        self.verify_policy = VerifyPolicy(
            allowed_runtimes=frozenset({Runtime.FAKE})
            if setup.sandbox == "fake"
            else frozenset({Runtime.RUNC, Runtime.RUNSC})
        )

    def now_ms(self) -> int:
        return _now_ms(self.setup.epoch)

    # --- hosts and cores -------------------------------------------------------------------

    def address(self, index: int) -> str:
        """A peer's full multiaddr (ports are fixed before the run)."""
        identity = self.world.peers[index].identity.public
        return f"/ip4/127.0.0.1/tcp/{self.setup.ports[index]}/p2p/{peer_id_of(identity)}"

    def host_config(self, peer: LivePeer) -> HostConfig:
        d, d_lo, d_hi = GOSSIP_DEGREES
        # Validators keep each other as bootstrap peers: always redialled, so the block rounds
        # never depend on a connection the library pruned or a dial it cached as failed.
        bootstrap: tuple[str, ...] = ()
        if peer.spec.role is PeerRole.VALIDATOR:
            bootstrap = tuple(
                self.address(p.index)
                for p in self.world.peers
                if p.role is PeerRole.VALIDATOR and p.index != peer.spec.index
            )
        return HostConfig(
            identity=peer.spec.identity,
            listen_addrs=(f"/ip4/127.0.0.1/tcp/{peer.port}",),
            bootstrap=bootstrap,
            topics=tuple(
                TopicConfig(t.name, min(t.max_message_bytes, 4 * 1024 * 1024), 1024)
                for t in ev.TOPICS
            ),
            protocols=tuple(
                ProtocolConfig(p.protocol_id, p.max_request_bytes, p.max_response_bytes)
                for p in ev.PROTOCOLS
            ),
            gossip=GossipConfig(degree=d, degree_low=d_lo, degree_high=d_hi),
            connections=ConnectionConfig(
                target_connections=CONNECTIONS_TARGET,
                max_connections=(
                    max(CONNECTIONS_MAX, len(self.world.peers) + 16)
                    if peer.spec.role is PeerRole.VALIDATOR
                    else CONNECTIONS_MAX
                ),
                max_known_peers=max(1024, len(self.world.peers) + 16),
                max_dials_in_flight=2,
                maintain_interval_s=MAINTAIN_INTERVAL_S,
                pex_interval_s=60.0,
            ),
            request_timeout_s=max(p.timeout_ms for p in ev.PROTOCOLS) / 1000,
            max_inbound_requests=INBOUND_REQUESTS_MAX,
            close_timeout_s=2.0,
        )

    def make_core(self, peer: LivePeer) -> SimCore:
        spec = peer.spec
        config = CoreConfig(
            identity=spec.identity,
            vrf_key=spec.vrf_key,
            validator=spec.role is PeerRole.VALIDATOR,
            operator=spec.role is PeerRole.OPERATOR,
            block_interval_ms=self.setup.block_interval_ms,
            verify_policy=self.verify_policy,
            task_timing=task_timing(self.setup.block_interval_ms),
            open_tasks_max=self.setup.scenario.workload.open_tasks_max,
            poll_blocks=self.setup.scenario.workload.poll_blocks,
        )
        return SimCore(
            config,
            state=peer.last_state or self.genesis_state,
            shared=self.shared,
            tip_commit=peer.last_commit,
            policy=peer.policy,
        )

    async def open_peer(self, peer: LivePeer) -> None:
        """Open the peer's host (on its old port after a restart), subscribe, serve. The host
        lives in its own task (its context must be left by the task that entered it)."""
        assert self.nursery is not None
        await self.nursery.start(self.host_task, peer)

    async def host_task(self, peer: LivePeer, task_status: trio.TaskStatus[None]) -> None:
        stop = trio.Event()
        closed = trio.Event()
        peer.stop, peer.closed = stop, closed
        try:
            async with open_host(
                self.host_config(peer), rng=random.Random(f"host/{peer.spec.index}")
            ) as host:
                peer.host = host
                peer.core = self.make_core(peer)
                peer.incarnation += 1
                peer.inbound.clear()
                peer.connected = set()
                assert self.nursery is not None
                for spec in ev.TOPICS:
                    channel = await host.subscribe(
                        spec.name, functools.partial(self.validate, peer)
                    )
                    self.nursery.start_soon(
                        self.read_gossip, peer, peer.incarnation, spec.name, channel
                    )
                for proto in ev.PROTOCOLS:
                    host.set_handler(
                        proto.protocol_id, functools.partial(self.serve, peer, proto.protocol_id)
                    )
                self.add_book(peer)
                task_status.started()
                await stop.wait()
                peer.host = None
        finally:
            closed.set()

    def add_book(self, peer: LivePeer) -> None:
        """Tell the peer's host every other peer's address, in a per-peer random order (its
        maintenance dials the first few: a random graph). The host has no public call for this:
        the address book is set directly."""
        if peer.host is None or not self.book:
            return
        order = [i for i in self.book if i != peer.spec.index]
        random.Random(f"book/{peer.spec.index}").shuffle(order)
        book = peer.host._book
        for i in order:
            book.add(
                peer_id_of(self.world.peers[i].identity.public), self.book[i], PeerSource.EXCHANGE
            )

    async def close_peer(self, peer: LivePeer) -> None:
        """Close the peer's host (remotes see it leave at once) and wait until it is closed."""
        peer.core = None
        peer.incarnation += 1
        for done, _ in peer.inbound.values():
            done.set()
        peer.inbound.clear()
        if peer.stop is not None:
            peer.stop.set()
            await peer.closed.wait()
        peer.host = None

    # --- the event loop --------------------------------------------------------------------

    async def emit(self, peer: LivePeer, incarnation: int, event: Any) -> None:
        """Queue an event for the peer's core: an event, or a callable making it from the time
        the loop takes it (so its `now_ms` is the loop's clock)."""
        await self.send.send(
            (peer.spec.index, incarnation, event, callable(event), trio.current_time())
        )

    async def loop(self) -> None:
        """Hand queued events to their cores. Events are taken in slices of LOOP_SLICE_S: a
        checkpoint after every event would cost a pass over every runnable task of the libp2p
        stack per event, and the queue would grow behind it."""
        while True:
            self.handle_one(await self.recv.receive())
            sliced = time.perf_counter() + LOOP_SLICE_S
            while time.perf_counter() < sliced:
                try:
                    item = self.recv.receive_nowait()
                except trio.WouldBlock:
                    break
                self.handle_one(item)

    def handle_one(self, item: tuple[int, int, Any, bool, float]) -> None:
        index, incarnation, made, maker, queued = item
        waited = int((trio.current_time() - queued) * 1000)
        if len(self.queue_wait_ms) < SAMPLES_MAX:
            self.queue_wait_ms.append(waited)
        elif self.sample_rng.random() < SAMPLE_REPLACE_SHARE:  # keep a sample of the whole run
            self.queue_wait_ms[self.sample_rng.randrange(SAMPLES_MAX)] = waited
        peer = self.peers[index]
        if peer.core is None or peer.incarnation != incarnation:
            return
        last = peer.core.s.now_ms
        if maker:
            event = made(max(last, self.now_ms()))
        elif made.now_ms < last:
            event = dataclasses.replace(made, now_ms=last)
        else:
            event = made
        started = time.perf_counter_ns()
        actions = peer.core.handle(event)
        peer.busy_ns += time.perf_counter_ns() - started
        peer.handled += 1
        for action in actions:
            self.act(peer, action)

    def act(self, peer: LivePeer, action: Any) -> None:
        nursery = self.nursery
        assert nursery is not None
        inc = peer.incarnation
        if isinstance(action, ev.Publish):
            nursery.start_soon(self.publish, peer, action)
        elif isinstance(action, ev.Request):
            nursery.start_soon(self.request, peer, inc, action)
        elif isinstance(action, ev.Connect):
            target = self.index_of.get(action.peer, -1)
            same_side = self.side.get(target, 0) == self.side.get(peer.spec.index, 0)
            if peer.host is not None and same_side:
                peer.host.connect_soon(peer_id_of(action.peer))
        elif isinstance(action, ev.Respond):
            found = peer.inbound.pop(action.request_id, None)
            if found is not None:
                found[1].append(action)
                found[0].set()
        elif isinstance(action, ev.StartTimer):
            deadline = trio.current_time() + action.delay_ms / 1000
            heapq.heappush(
                self.timers, (deadline, next(self.timer_seq), peer.spec.index, inc, action.key)
            )
            self.timer_wake.set()
        elif isinstance(action, ev.Execute):
            nursery.start_soon(self.run_job, peer, inc, action)
        elif isinstance(action, ev.StoreBlock):
            self.store(peer, action)
        elif isinstance(action, ev.TaskEvent):
            self.obs.append(
                (
                    "task",
                    peer.spec.index,
                    action.task_id,
                    action.phase.value,
                    action.now_ms,
                    action.detail,
                )
            )
        elif isinstance(action, ev.TaskSubmitted):
            self.obs.append(("submitted", action.ref, action.task_id, self.now_ms()))
        elif isinstance(action, ev.ResultReady):
            self.obs.append(
                (
                    "result",
                    action.task_id,
                    action.output[:OUTPUT_SENT_BYTES_MAX],
                    action.report_digest,
                )
            )
        elif isinstance(action, ev.Log):
            if action.level >= ev.LogLevel.WARNING:
                self.obs.append(("log", f"{action.level.name.lower()} {action.what}"))
        elif isinstance(action, ev.Penalise):
            target = self.index_of.get(action.peer, -1)
            self.obs.append(("penalty", peer.spec.index, target, action.reason))
            if peer.host is not None:
                with contextlib.suppress(Exception):
                    peer.host._penalise(
                        peer_id_of(action.peer), action.penalty, f"core: {action.reason}"
                    )

    def store(self, peer: LivePeer, action: ev.StoreBlock) -> None:
        cb = action.block
        header = cb.block.header
        block_hash = header.hash()
        peer.last_state, peer.last_commit = action.state, cb.commit
        self.obs.append(
            ("stored", peer.spec.index, header.height, block_hash, self.now_ms(), action.via)
        )
        if header.height not in self.sent_heights:
            self.sent_heights.add(header.height)
            self.obs.append(("block", header.height, cb.encode()))

    # --- producers -------------------------------------------------------------------------

    def validate(self, peer: LivePeer, topic: str, sender_peer: str, data: bytes) -> Verdict:
        core = peer.core
        if core is None:
            return Ignore("down")
        try:
            sender = public_key_of(sender_peer)
        except NotAnIdentityPeerId:  # not one of ours
            return Reject("bad-peer-id", BAD_PEER_ID_PENALTY)
        other = self.index_of.get(sender, -1)
        if self.side.get(other, 0) != self.side.get(peer.spec.index, 0):
            return Ignore("partitioned")
        if self.loss and self.rng.random() < self.loss:
            return Ignore("lost")
        verdict = core.validate_gossip(topic, sender, data)
        if isinstance(verdict, ev.Accept):
            return ACCEPT
        if isinstance(verdict, ev.Reject):
            return Reject(verdict.reason, verdict.penalty, verdict.detail)
        return Ignore(verdict.reason)

    async def read_gossip(
        self, peer: LivePeer, incarnation: int, topic: str, channel: trio.MemoryReceiveChannel[Any]
    ) -> None:
        async for msg in channel:
            if peer.incarnation != incarnation:
                return
            try:
                origin = public_key_of(msg.origin)
            except NotAnIdentityPeerId:  # signed by a peer that is not a node: validated away
                origin = b""
            if not origin:
                continue
            delay = self.slow.get(peer.spec.index)
            if delay:
                await trio.sleep(SLOW_BASE_MS * delay / 1000)
            self.obs.append(("gossip", topic, len(msg.data)))
            await self.emit(
                peer, incarnation, ev.GossipReceived(self.now_ms(), topic, origin, msg.data, origin)
            )

    async def serve(self, peer: LivePeer, protocol: str, peer_id: str, data: bytes) -> bytes:
        incarnation = peer.incarnation
        try:
            caller = public_key_of(peer_id)
        except NotAnIdentityPeerId:
            raise RemoteProtocolError(peer_id, "bad-peer-id", BAD_PEER_ID_PENALTY) from None
        peer.next_inbound += 1
        rid = peer.next_inbound
        done = trio.Event()
        answer: list[ev.Respond] = []
        peer.inbound[rid] = (done, answer)
        await self.emit(
            peer, incarnation, ev.RequestReceived(self.now_ms(), rid, caller, protocol, data)
        )
        await done.wait()
        if not answer:
            raise RemoteProtocolError(peer_id, "restarting", 0)
        response = answer[0]
        self.obs.append(
            ("msg", f"response {protocol}", len(response.data) if response.error is None else 0)
        )
        if response.error is not None:
            raise RemoteProtocolError(peer_id, response.error, response.penalty)
        return response.data

    async def request(self, peer: LivePeer, incarnation: int, action: ev.Request) -> None:
        host = peer.host
        injected = action.request_id < 0
        target = self.index_of.get(action.peer, -1)
        me = peer.spec.index

        async def fail(kind: ev.FailureKind, reason: str) -> None:
            self.obs.append(("failed", action.protocol, f"{kind.value}: {_short(reason)}"))
            if not injected:
                await self.emit(
                    peer,
                    incarnation,
                    lambda now: ev.RequestFailed(now, action.request_id, kind, reason),
                )

        if host is None:
            return
        if self.side.get(target, 0) != self.side.get(me, 0):
            await trio.sleep(action.timeout_ms / 1000)
            await fail(ev.FailureKind.TIMEOUT, "partitioned")
            return
        if self.loss and self.rng.random() < self.loss:
            await trio.sleep(action.timeout_ms / 1000)
            await fail(ev.FailureKind.TIMEOUT, "lost")
            return
        slow = max(self.slow.get(me, 0.0), self.slow.get(target, 0.0))
        if slow:
            await trio.sleep(SLOW_BASE_MS * slow / 1000)
        self.obs.append(("msg", f"request {action.protocol}", len(action.data)))
        if action.protocol == ev.PROTO_COMMITTEE:
            self.obs.append(("round", kind_name(action.data)))
        target_id = peer_id_of(action.peer)
        async with peer.request_slots:
            connected = target_id in host.connected_peers()
            kind = f"{action.protocol} {'warm' if connected else 'dial'}"
            started = trio.current_time()
            try:
                data = await host.request(
                    target_id,
                    action.protocol,
                    action.data,
                    timeout_s=action.timeout_ms / 1000,
                )
                took = self.request_ms[kind]
                if len(took) < SAMPLES_MAX:
                    took.append(int((trio.current_time() - started) * 1000))
            except RequestTimeout as exc:
                self.request_timeouts[kind] += 1
                await fail(ev.FailureKind.TIMEOUT, str(exc))
                return
            except PeerUnreachable as exc:
                await fail(ev.FailureKind.UNREACHABLE, str(exc))
                return
            except RequestRejected as exc:
                await fail(ev.FailureKind.REJECTED, exc.reason)
                return
            except RemoteProtocolError as exc:
                await fail(ev.FailureKind.PROTOCOL_ERROR, str(exc))
                return
            except P2PError as exc:  # the host closed under us (a crash): unreachable
                await fail(ev.FailureKind.UNREACHABLE, str(exc))
                return
        if not injected:
            await self.emit(
                peer, incarnation, lambda now: ev.ResponseReceived(now, action.request_id, data)
            )

    async def publish(self, peer: LivePeer, action: ev.Publish) -> None:
        host = peer.host
        if host is None:
            return
        self.obs.append(("msg", f"publish {action.topic}", len(action.data)))
        with contextlib.suppress(P2PError):
            await host.publish(action.topic, action.data)

    async def run_job(self, peer: LivePeer, incarnation: int, action: ev.Execute) -> None:
        asked = trio.current_time()
        async with self.exec_slots:
            began = trio.current_time()
            done = await execute(
                action.task_id,
                action.job_spec,
                sandbox=self.sandbox,
                key=peer.spec.identity,
                software_measurement=SIM_SOFTWARE,
            )
        for samples, took in (
            (self.exec_wait_ms[action.purpose.value], began - asked),
            (self.exec_ms[action.purpose.value], trio.current_time() - began),
        ):
            if len(samples) < SAMPLES_MAX:
                samples.append(int(took * 1000))
        output = done.stdout
        self.obs.append(
            (
                "exec",
                peer.spec.index,
                action.purpose.value,
                action.job_spec,
                output[:OUTPUT_SENT_BYTES_MAX],
            )
        )
        report = done.report.encode()
        await self.emit(
            peer,
            incarnation,
            lambda now: ev.ExecutionFinished(
                now, action.task_id, action.attempt, action.purpose, report, output
            ),
        )

    async def run_timers(self) -> None:
        while True:
            self.timer_wake = trio.Event()
            if not self.timers:
                await self.timer_wake.wait()
                continue
            deadline = self.timers[0][0]
            if trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await self.timer_wake.wait()
                continue
            _, _, index, inc, key = heapq.heappop(self.timers)
            await self.send.send(
                (index, inc, functools.partial(ev.TimerFired, key=key), True, trio.current_time())
            )

    async def measure_lag(self) -> None:
        """How late the loop wakes a task that sleeps LAG_PROBE_S: the loop's scheduling delay,
        which every message handled in this process waits on top of its own work."""
        while len(self.lag_ms) < SAMPLES_MAX:
            asked = trio.current_time() + LAG_PROBE_S
            await trio.sleep_until(asked)
            self.lag_ms.append(int((trio.current_time() - asked) * 1000))
        await trio.sleep_forever()

    async def watch_connections(self) -> None:
        """Tell cores about connections (their sync partners), every WATCH_INTERVAL_S."""
        key_of = {peer_id_of(p.identity.public): p.identity.public for p in self.world.peers}
        while True:
            await trio.sleep(WATCH_INTERVAL_S)
            for peer in self.peers.values():
                host = peer.host
                if host is None:
                    continue
                now = {key_of[pid] for pid in host.connected_peers() if pid in key_of}
                for gone in sorted(peer.connected - now):
                    await self.emit(
                        peer, peer.incarnation, lambda t, g=gone: ev.PeerDisconnected(t, g)
                    )
                for new in sorted(now - peer.connected):
                    await self.emit(peer, peer.incarnation, lambda t, n=new: ev.PeerConnected(t, n))
                peer.connected = now

    async def flush(self) -> None:
        while True:
            await trio.sleep(FLUSH_INTERVAL_S)
            self.flush_now()

    def flush_now(self) -> None:
        """Send the observations gathered so far (nothing once the final figures went out: the
        coordinator stops reading then, and a blocked pipe would stall the shutdown)."""
        if self.obs and not self.reported:
            batch, self.obs = self.obs, []
            self.conn.send(("obs", self.setup.worker, batch))

    async def flood(self, peer: LivePeer) -> None:
        policy = peer.policy
        assert policy is not None
        while True:
            await trio.sleep(policy.flood_interval_ms / 1000)
            host = peer.host
            if host is None:
                continue
            junk = policy.rng.randbytes(512)
            self.obs.append(("flood",))
            with contextlib.suppress(P2PError):
                await host.publish(ev.TOPIC_TASKS, junk)
            target = policy.rng.choice(list(self.book)) if self.book else None
            if target is not None and target != peer.spec.index:
                with contextlib.suppress(P2PError):
                    await host.request(
                        peer_id_of(self.world.peers[target].identity.public),
                        ev.PROTO_TX,
                        junk,
                        timeout_s=2.0,
                    )

    # --- commands --------------------------------------------------------------------------

    async def commands(self) -> None:
        while True:
            message = await trio.to_thread.run_sync(self.conn.recv, abandon_on_cancel=True)
            kind = message[0]
            if kind == "submit":
                _, index, plan, job, fee, tau = message
                peer = self.peers.get(index)
                if peer is not None and peer.core is not None:
                    await self.emit(
                        peer,
                        peer.incarnation,
                        functools.partial(ev.SubmitTask, ref=plan, job_spec=job, fee=fee, tau=tau),
                    )
            elif kind == "crash":
                for index in message[1]:
                    peer = self.peers.get(index)
                    if peer is not None and peer.host is not None:
                        await self.close_peer(peer)
            elif kind == "restart":
                for index in message[1]:
                    peer = self.peers.get(index)
                    if peer is not None and peer.host is None:
                        await self.open_peer(peer)
                        await self.emit(peer, peer.incarnation, ev.Started)
            elif kind == "sides":
                self.side = dict(message[1])
            elif kind == "slow":
                self.slow = dict(message[1])
            elif kind == "loss":
                self.loss = float(message[1])
            elif kind == "stop":
                self.stopping.set()
                return

    # --- life ------------------------------------------------------------------------------

    async def main(self) -> None:
        remote = None
        if self.jobs_conn is not None:
            remote = self.sandbox = await RemoteSandbox.connect(self.jobs_conn)
        else:
            self.sandbox = FakeSandbox(jobs.fake_outcome)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            if remote is not None:
                nursery.start_soon(remote.read_answers)
            for peer in self.peers.values():
                await self.open_peer(peer)
            self.conn.send(
                (
                    "ready",
                    self.setup.worker,
                    {i: (f"/ip4/127.0.0.1/tcp/{p.port}",) for i, p in self.peers.items()},
                )
            )
            message = await trio.to_thread.run_sync(self.conn.recv, abandon_on_cancel=True)
            if message[0] != "book":
                raise SimnetError(f"worker expected the address book, got {message[0]!r}")
            self.book = dict(message[1])
            for peer in self.peers.values():
                self.add_book(peer)
            nursery.start_soon(self.loop)
            nursery.start_soon(self.run_timers)
            nursery.start_soon(self.watch_connections)
            nursery.start_soon(self.flush)
            nursery.start_soon(self.measure_lag)
            nursery.start_soon(self.commands)
            for peer in self.peers.values():
                await self.emit(peer, peer.incarnation, ev.Started)
                if peer.policy is not None and peer.policy.flood_interval_ms:
                    nursery.start_soon(self.flood, peer)
            await self.stopping.wait()
            # Let the executions in flight finish (a verifier still re-running the job when the
            # last task closed is counted, and its container is removed) before the figures.
            with trio.move_on_after(EXIT_WAIT_S):
                for _ in range(EXECUTIONS_PER_WORKER_MAX):
                    await self.exec_slots.acquire()
            self.flush_now()
            self.conn.send(("stats", self.setup.worker, self.stats()))
            self.reported = True
            if self.profile is not None:  # the run, not the shutdown
                self.profile[0].dump_stats(self.profile[1])
            # Nobody listens any more: leave without closing hundreds of hosts one by one
            # (minutes under load; the library fails when many close at once).
            self.conn.close()
            os._exit(0)

    def stats(self) -> dict[str, Any]:
        import psutil  # noqa: PLC0415

        proc = psutil.Process()
        cpu = proc.cpu_times()
        gossip_in: collections.Counter[str] = collections.Counter()
        gossip_in_bytes: collections.Counter[str] = collections.Counter()
        streams: collections.Counter[str] = collections.Counter()
        refused: collections.Counter[str] = collections.Counter()
        timeouts_at: collections.Counter[str] = collections.Counter()
        for peer in self.peers.values():
            if peer.host is not None:
                refused.update(_library_refusals(peer.host))
                metrics = peer.host.metrics
                timeouts_at.update(
                    {f"{p} {at}": n for (p, at), n in metrics.rpc_timeouts_at.items()}
                )
                gossip_in.update(metrics.gossip_in_messages)
                gossip_in_bytes.update(metrics.gossip_in_bytes)
                streams.update({f"{k} opened": v for k, v in metrics.rpc_streams_opened.items()})
                streams.update({f"{k} reused": v for k, v in metrics.rpc_streams_reused.items()})
                streams.update(
                    {f"{p} {why}": n for (p, why), n in metrics.rpc_stream_failures.items()}
                )
                streams.update({f"{k} late": v for k, v in metrics.rpc_late_answers.items()})
                streams.update({f"{k} joined": v for k, v in metrics.rpc_requests_joined.items()})
        return {
            "peers": len(self.peers),
            "cpu_s": round(cpu.user + cpu.system, 2),
            "rss_bytes": proc.memory_info().rss,
            "handled": {i: p.handled for i, p in self.peers.items()},
            "busy_us": {i: p.busy_ns // 1000 for i, p in self.peers.items()},
            "gossip_in": dict(gossip_in),
            "gossip_in_bytes": dict(gossip_in_bytes),
            "lies": sorted(self.lies),
            "loop_lag_ms": percentiles(self.lag_ms),
            "queue_wait_ms": percentiles(self.queue_wait_ms),
            "request_ms": {k: percentiles(v) for k, v in sorted(self.request_ms.items())},
            "request_timeouts": dict(sorted(self.request_timeouts.items())),
            "exec_wait_ms": {k: percentiles(v) for k, v in sorted(self.exec_wait_ms.items())},
            "exec_ms": {k: percentiles(v) for k, v in sorted(self.exec_ms.items())},
            "request_timeouts_at": dict(sorted(timeouts_at.items())),
            "request_streams": dict(sorted(streams.items())),
            "library_refusals": dict(sorted(refused.items())),
            "yamux_release_on_read": os.environ.get(YAMUX_RELEASE_ON_READ_ENV, ""),
            "mesh": {
                t.name: percentiles(
                    len(p.host.mesh_peers(t.name)) for p in self.peers.values() if p.host
                )
                for t in ev.TOPICS
            },
            "connections": percentiles(
                len(p.host.connected_peers()) for p in self.peers.values() if p.host
            ),
            "pubsub_peers": percentiles(
                len(p.host.pubsub_peers()) for p in self.peers.values() if p.host
            ),
            "topic_peers": {
                t.name: percentiles(
                    len(p.host.topic_peers(t.name)) for p in self.peers.values() if p.host
                )
                for t in ev.TOPICS
            },
        }


def _library_refusals(host: P2PHost) -> dict[str, int]:
    """What py-libp2p's resource manager refused on this host (connections, streams, memory past
    its limits or rate limiter), whether its circuit breaker is open, and connections in a state
    that stalls streams: refusals and stalls that never reach our code and show up only as failed
    or slow dials and streams. Empty if the library changed."""
    with contextlib.suppress(AttributeError, TypeError, KeyError):
        manager = host._lhost.get_network()._resource_manager
        if manager is None:
            return {}
        out: collections.Counter[str] = collections.Counter()
        if manager.metrics is not None:
            blocks = manager.metrics.get_summary()["blocks"]
            out.update({f"{kind} refused": int(n) for kind, n in blocks.items() if n})
        breaker = manager.circuit_breaker
        if breaker is not None and breaker.is_open():
            out["circuit breaker open"] = 1
        # The yamux muxer lets a connection hold 256 outbound streams; a connection with none left
        # makes every new stream to that peer wait. Inbound streams wait in a queue of 10 for the
        # connection's accept loop; a full queue stops the connection's reader (every stream on it).
        for conns in host._lhost.get_network().connections.values():
            for conn in conns:
                queue = getattr(conn.muxed_conn, "new_stream_send_channel", None)
                if queue is not None and queue.statistics().current_buffer_used > 0:
                    out["connections with inbound streams not accepted"] += 1
                if getattr(conn, "event_closed", None) is not None and conn.event_closed.is_set():
                    out["closed connections still listed"] += 1
                slots = getattr(conn.muxed_conn, "stream_backlog_semaphore", None)
                if slots is not None and slots.value == 0:
                    out["connections out of yamux stream slots"] += 1
                elif slots is not None and slots.value < 128:
                    out["connections with under half their yamux stream slots"] += 1
        return dict(out)
    return {}


def _worker_main(
    setup: WorkerSetup,
    conn: multiprocessing.connection.Connection,
    jobs_conn: multiprocessing.connection.Connection | None,
) -> None:
    import logging  # noqa: PLC0415

    # py-libp2p's yamux returns flow-control credit after every read by default (a window update
    # frame each); with this switch of the library it batches them as other yamux implementations
    # do. Hundreds of hosts per process pay that per frame: README, "300 peers". An explicit
    # setting in the environment wins.
    os.environ.setdefault(YAMUX_RELEASE_ON_READ_ENV, "0")

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    logging.getLogger("p2p").setLevel(logging.CRITICAL)
    worker = Worker(setup, conn, jobs_conn)
    profile_dir = os.environ.get("POSI_SIMNET_PROFILE")
    if not profile_dir:
        trio.run(worker.main)
        return
    # A profile of each worker (cProfile), to see where a real run spends its CPU.
    import cProfile  # noqa: PLC0415

    worker.profile = (cProfile.Profile(), os.path.join(profile_dir, f"worker-{setup.worker}.prof"))
    worker.profile[0].runcall(trio.run, worker.main)


# -------------------------------------------------------------------------------- coordinator


class Coordinator:
    """Starts the workers, posts the workload, injects faults, follows the chain, reports."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        workers: int,
        sandbox: str,
        block_interval_ms: int,
        progress: Callable[[str], None],
    ) -> None:
        image = jobs.FAKE_IMAGE_DIGEST
        if sandbox == "docker":
            image = busybox_image_digest()
        self.world = build_world(scenario, block_interval_ms=block_interval_ms, image_digest=image)
        self.scenario = scenario
        self.workers = max(1, min(workers, len(self.world.peers)))
        self.sandbox = sandbox
        self.block_interval_ms = block_interval_ms
        self.progress = progress
        self.rec = Recorder([p.policy is None for p in self.world.peers])
        self.state = genesis_state(self.world.genesis)
        self.pending_blocks: dict[int, bytes] = {}
        self.closed: set[bytes] = set()
        self.lies: set[bytes] = set()
        self.gossip_deliveries: collections.Counter[str] = collections.Counter()
        self.t0_ms = 0
        self.down: set[int] = set()
        self.flood = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.logs: collections.Counter[str] = collections.Counter()

    def owner(self, index: int) -> int:
        """The worker holding peer `index`: validators and posters share a process of their own
        (the last one); operators are dealt round-robin over the others."""
        if self.world.peers[index].role is not PeerRole.OPERATOR:
            return self.workers
        return index % self.workers

    def feed(self, batch: list[tuple[Any, ...]]) -> None:
        """Observations from a worker (times shifted to t0)."""
        t0 = self.t0_ms
        rec = self.rec
        for item in batch:
            kind = item[0]
            if kind == "task":
                _, peer, task_id, phase, now, detail = item
                event = ev.TaskEvent(task_id, ev.TaskPhase(phase), now - t0, detail)
                rec.task_event(peer, event)
                if self.world.peers[peer].role is PeerRole.POSTER and phase in (
                    "paid",
                    "failed",
                    "expired",
                ):
                    self.closed.add(task_id)
            elif kind == "stored":
                _, peer, height, block_hash, now, via = item
                rec.stored(peer, height, block_hash, now - t0, via)
            elif kind == "block":
                self.pending_blocks.setdefault(item[1], item[2])
                self.follow()
            elif kind == "submitted":
                _, plan, task_id, now = item
                rec.submitted(plan, task_id, now - t0)
            elif kind == "result":
                _, task_id, output, report_digest = item
                r = rec.by_id.get(task_id)
                if r is not None:
                    r.output, r.output_report = output, report_digest
            elif kind == "penalty":
                _, peer, target, reason = item
                honest = target >= 0 and self.world.peers[target].policy is None
                rec.penalised(peer, honest, ev.Penalise(b"", reason, 0))
            elif kind == "exec":
                _, peer, purpose, spec, output = item
                rec.executed(peer, purpose, spec, output)
            elif kind == "msg":
                rec.message(item[1], 1, item[2])
            elif kind == "gossip":
                rec.message(f"gossip {item[1]}", 1, item[2])
            elif kind == "round":
                rec.round_message(item[1])
            elif kind == "flood":
                self.flood += 1
            elif kind == "failed":
                key = f"{item[1]} {item[2]}"
                if key in self.failures or len(self.failures) < LOG_KINDS_MAX:
                    self.failures[key] += 1
            elif kind == "log" and (item[1] in self.logs or len(self.logs) < LOG_KINDS_MAX):
                self.logs[item[1]] += 1

    def milestones(self) -> str:
        """How many tasks reached each milestone, for the progress line."""
        counts = collections.Counter(phase for r in self.rec.tasks.values() for phase in r.phases)
        names = ("posted", "included", "roster", "executor-confirmed", "certified", "paid")
        return " ".join(f"{n} {counts.get(n, 0)}" for n in names) + (
            f" / {len(self.world.tasks)} tasks"
        )

    def follow(self) -> None:
        """Apply reported blocks in order to the coordinator's own view of the chain."""
        while True:
            data = self.pending_blocks.pop(self.state.height + 1, None)
            if data is None:
                return
            try:
                self.state = accept_block(self.state, CertifiedBlock.decode(data))
            except LedgerError as exc:
                raise SimnetError(f"a worker reported a block that does not apply: {exc}") from exc

    def run(self, timeout_s: float, reproduce: str) -> tuple[dict[str, Any], dict[str, Any]]:
        ctx = multiprocessing.get_context("spawn")
        ports = free_ports(len(self.world.peers))
        epoch = time.time()
        wall0 = time.perf_counter()
        conns = []
        procs = []
        for w in range(self.workers + 1):
            mine, theirs = ctx.Pipe()
            setup = WorkerSetup(
                w,
                self.scenario,
                tuple(i for i in range(len(self.world.peers)) if self.owner(i) == w),
                self.block_interval_ms,
                self.world.image_digest,
                self.sandbox,
                epoch,
                ports,
            )
            jobs_conn = None
            if self.sandbox == "docker":
                # The worker's Docker jobs run in a process of their own (simnet/jobhost.py).
                jobs_conn, jobs_theirs = ctx.Pipe()
                jobs_proc = ctx.Process(target=jobhost.serve, args=(jobs_theirs,), daemon=True)
                jobs_proc.start()
                jobs_theirs.close()  # the jobs process sees the pipe close when its worker exits
                procs.append(jobs_proc)
            proc = ctx.Process(target=_worker_main, args=(setup, theirs, jobs_conn), daemon=True)
            proc.start()
            if jobs_conn is not None:
                jobs_conn.close()
            conns.append(mine)
            procs.append(proc)
        try:
            return self._drive(
                conns=conns, epoch=epoch, wall0=wall0, timeout_s=timeout_s, reproduce=reproduce
            )
        finally:
            # Workers exit once they sent their figures and their executions finished.
            deadline = time.monotonic() + EXIT_WAIT_S + 30
            for c in conns:
                c.close()  # a worker still writing gets a broken pipe, not a wait
            for proc in procs:
                proc.join(timeout=max(1.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()

    def _recv_all(self, conns: list[Any], kind: str, timeout_s: float) -> dict[int, Any]:
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout_s
        while len(got) < len(conns):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimnetError(f"workers did not report {kind!r} within {timeout_s:.0f} s")
            waiting = [c for w, c in enumerate(conns) if w not in got]  # the others may exit
            for c in multiprocessing.connection.wait(waiting, timeout=left):
                message = _recv(c)
                if message[0] == kind:
                    got[message[1]] = message[2]
                elif message[0] == "obs":
                    self.feed(message[2])
        return got

    def _drive(
        self,
        *,
        conns: list[Any],
        epoch: float,
        wall0: float,
        timeout_s: float,
        reproduce: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        sc = self.scenario
        say = self.progress
        say(
            f"simnet real mode: {len(self.world.peers)} peers ({sc.validators} validators) in "
            f"{self.workers} processes for operators and one for validators and posters, "
            f"sandbox {self.sandbox}; opening hosts..."
        )
        ready = self._recv_all(conns, "ready", STARTUP_TIMEOUT_S)
        book = {i: addrs for part in ready.values() for i, addrs in part.items()}
        for c in conns:
            c.send(("book", book))
        self.t0_ms = _now_ms(epoch)
        say(f"  all {len(book)} peers listening after {time.perf_counter() - wall0:.1f} s")
        self._settle(conns, epoch)
        startup_s = time.perf_counter() - wall0
        say(f"  swarm formed after {startup_s:.1f} s (height {self.state.height}); workload starts")
        schedule: list[tuple[int, int, tuple[Any, ...]]] = []
        seq = itertools.count()
        wl = sc.workload
        for plan in self.world.tasks:
            schedule.append(
                (
                    plan.at_ms,
                    next(seq),
                    ("submit", plan.poster, plan.index, plan.job_spec, wl.fee, wl.tau),
                )
            )
        for i, rf in enumerate(self.world.faults):
            schedule.append((rf.fault.at_ms, next(seq), ("fault-start", i)))
            if rf.fault.until_ms is not None:
                schedule.append((rf.fault.until_ms, next(seq), ("fault-end", i)))
        heapq.heapify(schedule)
        side: dict[int, int] = {}
        slow: dict[int, float] = {}
        last_plan = max((t.at_ms for t in self.world.tasks), default=0)
        deadline_ms = max(last_plan, sc.faults_until_ms) + sc.phases.liveness_bound_ms
        next_note = time.perf_counter()
        finished_early = False
        tail_until: float | None = None
        while True:
            now = _now_ms(epoch) - self.t0_ms
            while schedule and schedule[0][0] <= now:
                _, _, item = heapq.heappop(schedule)
                if item[0] == "submit":
                    conns[self.owner(item[1])].send(item)
                else:
                    self._fault(item, conns, side, slow)
            self._pump(conns)
            if time.perf_counter() >= next_note:
                next_note = time.perf_counter() + PROGRESS_INTERVAL_S
                say(
                    f"  t={now / 1000:.0f}s height {self.state.height} {self.milestones()} "
                    f"messages {sum(self.rec.messages.values())}"
                )
            if (
                tail_until is None
                and now >= sc.faults_until_ms
                and self.world.tasks
                and len(self.closed) >= len(self.world.tasks)
            ):
                finished_early = True
                tail_until = time.perf_counter() + TAIL_BLOCKS * self.block_interval_ms / 1000
            if tail_until is not None and time.perf_counter() >= tail_until:
                break
            if now >= deadline_ms or time.perf_counter() - wall0 > timeout_s:
                say("  deadline reached: stopping")
                break
        end_ms = _now_ms(epoch) - self.t0_ms
        for c in conns:
            c.send(("stop",))
        stats = self._recv_all(conns, "stats", EXIT_WAIT_S + 60)
        wall = time.perf_counter() - wall0
        for s in stats.values():
            self.lies.update(s["lies"])
        return self._report(
            stats=stats,
            end_ms=end_ms,
            finished_early=finished_early,
            reproduce=reproduce,
            wall=wall,
            startup_s=startup_s,
        )

    def _pump(self, conns: list[Any]) -> None:
        """Feed the observations the workers sent, waiting up to 0.2 s for the first."""
        for c in multiprocessing.connection.wait(conns, timeout=0.2):
            message = _recv(c)
            if message[0] == "obs":
                self.feed(message[2])

    def _settle(self, conns: list[Any], epoch: float) -> None:
        """Wait until the swarm has formed: the validators finalised SETTLE_HEIGHT blocks and
        SETTLE_SHARE of the peers stored the first one (they are in the block mesh). Dialling a
        few hundred hosts at once costs a handshake each, and the workload would only measure that
        storm. Scenario times count from the end of this wait (`t0`); the blocks stored during it
        get times before 0."""
        deadline = time.perf_counter() + STARTUP_TIMEOUT_S
        next_note = time.perf_counter() + PROGRESS_INTERVAL_S
        peers = len(self.world.peers)
        while True:
            formed = sum(1 for h in self.rec.peer_height if h >= 1)
            if self.state.height >= SETTLE_HEIGHT and formed >= SETTLE_SHARE * peers:
                break
            if time.perf_counter() > deadline:
                raise SimnetError(
                    f"the swarm did not form within {STARTUP_TIMEOUT_S:.0f} s: height "
                    f"{self.state.height}, {formed}/{peers} peers stored a block; try fewer "
                    f"peers or a longer --block-interval"
                )
            self._pump(conns)
            if time.perf_counter() >= next_note:
                next_note = time.perf_counter() + PROGRESS_INTERVAL_S
                self.progress(
                    f"  forming: height {self.state.height}, {formed}/{peers} peers stored a block"
                )
        shift = _now_ms(epoch) - self.t0_ms
        self.t0_ms += shift
        for height in self.rec.height_time_ms:
            self.rec.height_time_ms[height] -= shift

    def _fault(
        self, item: tuple[Any, ...], conns: list[Any], side: dict[int, int], slow: dict[int, float]
    ) -> None:
        rf = self.world.faults[item[1]]
        start = item[0] == "fault-start"
        kind = rf.fault.kind
        self.progress(
            f"  fault: {rf.fault.kind} {'starts' if start else 'ends'} ({len(rf.peers)} peers)"
        )
        if kind == "crash":
            for w, c in enumerate(conns):
                mine = [i for i in rf.peers if self.owner(i) == w]
                if mine:
                    c.send(("crash" if start else "restart", mine))
            if start:
                self.down.update(rf.peers)
            else:
                self.down.difference_update(rf.peers)
            return
        if kind == "partition":
            side.clear()
            if start:
                side.update({i: 1 for i in rf.peers})
            message: tuple[Any, ...] = ("sides", dict(side))
        elif kind == "slow":
            for i in rf.peers:
                if start:
                    slow[i] = rf.fault.factor
                else:
                    slow.pop(i, None)
            message = ("slow", dict(slow))
        else:
            message = ("loss", rf.fault.loss if start else 0.0)
        for c in conns:
            c.send(message)

    def _report(
        self,
        *,
        stats: dict[int, Any],
        end_ms: int,
        finished_early: bool,
        reproduce: str,
        wall: float,
        startup_s: float,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        faulty = {p.identity.public for p in self.world.peers if p.policy is not None}
        crashed_for_good = {
            i
            for rf in self.world.faults
            if rf.fault.kind == "crash" and rf.fault.until_ms is None
            for i in rf.peers
        }
        faulty |= {self.world.peers[i].identity.public for i in crashed_for_good}
        findings = check(
            self.world,
            self.rec,
            self.state,
            faulty=faulty,
            lies=self.lies,
            end_ms=end_ms,
            finished_early=finished_early,
        )
        handled: dict[str, list[int]] = collections.defaultdict(list)
        busy: dict[str, list[int]] = collections.defaultdict(list)
        for s in stats.values():
            for i, n in s["handled"].items():
                handled[self.world.peers[i].role.value].append(n)
            for i, us in s["busy_us"].items():
                busy[self.world.peers[i].role.value].append(us)
        figures = {
            "events_handled": {r: percentiles(v) for r, v in sorted(handled.items())},
            "heights": percentiles(self.rec.peer_height),
            "down_at_end": sorted(self.down),
        }
        decided = [
            o.decided_ms
            for o in findings.outcomes
            if o.status == "completed" and o.decided_ms is not None
        ]
        posted = [r.submitted_ms for r in self.rec.tasks.values() if r.submitted_ms is not None]
        # Throughput over the busy window: from the first task posted to the last one completed.
        window_ms = max(decided, default=0) - min(posted, default=0)
        minutes = max(1e-9, window_ms / 60_000)
        report = build_report(
            self.world,
            self.rec,
            findings,
            mode="real",
            sandbox="fake (protocol only: no job ran)" if self.sandbox == "fake" else "docker",
            end_ms=end_ms,
            reproduce=reproduce,
            peers_figures=figures,
            extra={
                "throughput": {
                    "tasks_completed_per_minute": round(len(decided) / minutes, 2),
                    "window_ms": window_ms,
                    "offered_tasks_per_minute": round(self.scenario.workload.rate_per_s * 60, 2),
                },
                "message_counting": (
                    "real mode: requests and responses as sent by the shells; gossip as "
                    "deliveries accepted by cores (the mesh's duplicate copies are not visible)"
                ),
                "flood": {"junk_messages": self.flood},
                "request_failures": dict(sorted(self.failures.items())),
                "logs": dict(sorted(self.logs.items())),
                "lies_signed": len(self.lies),
                "fault_windows": [
                    {"kind": f.kind, "at_ms": f.at_ms, "until_ms": f.until_ms}
                    for f in self.scenario.faults
                ],
            },
        )
        cpu = sum(s["cpu_s"] for s in stats.values())
        perf = {
            "wall_s": round(wall, 1),
            "startup_s": round(startup_s, 1),
            "workers": {
                str(w): {k: v for k, v in s.items() if k not in _WORKER_STATS_NOT_IN_PERF}
                for w, s in sorted(stats.items())
            },
            "cpu_s": round(cpu, 1),
            "cpu_per_peer_s": round(cpu / max(1, len(self.world.peers)), 3),
            "rss_per_peer_bytes": sum(s["rss_bytes"] for s in stats.values())
            // max(1, len(self.world.peers)),
            "core_cpu_us_per_peer": {r: percentiles(v) for r, v in sorted(busy.items())},
            "run_ms": end_ms,
            "cores": os.cpu_count(),
        }
        return report, perf


def free_ports(count: int) -> tuple[int, ...]:
    """`count` distinct TCP ports free on 127.0.0.1 now (held open together while picked, so no
    two are the same; another program could still take one before a peer binds it)."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return tuple(sock.getsockname()[1] for sock in sockets)


def task_timing(block_interval_ms: int) -> Timing:
    """The core's task round timeouts, stretched by the block interval over the core's default
    (never shrunk): at the real mode's 4 s blocks they double (see CORE_BLOCK_INTERVAL_MS)."""
    base = Timing()
    factor = max(1.0, block_interval_ms / CORE_BLOCK_INTERVAL_MS)
    return dataclasses.replace(
        base,
        propose_ms=round(base.propose_ms * factor),
        prepare_ms=round(base.prepare_ms * factor),
        commit_ms=round(base.commit_ms * factor),
        view_change_retry_ms=round(base.view_change_retry_ms * factor),
    )


def _short(reason: str) -> str:
    """A failure reason without peer ids and addresses (so that reasons can be counted)."""
    words = [w for w in reason.replace(":", " ").split() if len(w) < 24 and "/" not in w]
    return " ".join(words[:REASON_WORDS_MAX])


def _recv(conn: multiprocessing.connection.Connection) -> Any:
    try:
        return conn.recv()
    except (EOFError, OSError):
        raise SimnetError("a worker process died (its traceback is above)") from None


def busybox_image_digest() -> str:
    """The busybox base image's ID, building it if needed. Raises SimnetError when the engine
    does not answer (start Docker or use --sandbox fake)."""
    from executor.engine import docker_client  # noqa: PLC0415
    from executor.errors import ExecutorError  # noqa: PLC0415
    from executor.images import build_base_images  # noqa: PLC0415

    try:
        built = build_base_images(docker_client())
    except ExecutorError as exc:
        raise SimnetError(f"--sandbox docker: {exc} (or run with --sandbox fake)") from None
    return built[0].image_id


def run(
    scenario: Scenario,
    *,
    workers: int = 2,
    sandbox: str = "docker",
    block_interval_ms: int | None = None,
    timeout_s: float = 1800.0,
    reproduce: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[int]]]:
    """Run a scenario on real peers; returns (report, perf, latency samples for the plots).

    Raises SimnetError when a worker dies (its traceback is printed above) or the workers do not
    start within STARTUP_TIMEOUT_S; `--sandbox docker` raises it when the engine does not answer
    (start Docker, or use the fake sandbox)."""
    interval = block_interval_ms or REAL_BLOCK_INTERVAL_MS
    coordinator = Coordinator(
        scenario, workers=workers, sandbox=sandbox, block_interval_ms=interval, progress=progress
    )
    report, perf = coordinator.run(timeout_s, reproduce)
    return report, perf, latency_samples(coordinator.rec)
