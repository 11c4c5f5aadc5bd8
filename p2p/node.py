"""The trio shell of a node: `run_node(config, task_status=...)` owns the I/O around `PeerCore`.

Theory of operation. One nursery holds everything; one task (the *loop*) is the only caller of
`core.handle`. Everything else only produces events into one bounded channel:

    host gossip (validated by core.validate_gossip) --+
    inbound requests (a handler waits for Respond) ---+
    request results, timers, executions, commands ----+--> events --> loop: core.handle(event)
    connection changes ------------------------------+                     |
                                                                           v
                                                  actions, executed in order, one batch at a time

The loop executes each batch in order and never sends into its own channel (so it can never
deadlock on it): `StoreBlock` is awaited (SQLite in a worker thread, durable on return) before the
next action; `Publish` and `Respond` complete at once; `Request`, `Execute` and timers are started
as tasks whose results come back as events. Docker and SQLite never run on the trio thread
(py-libp2p's handshakes time out when the trio thread blocks).

Shutdown: cancel the scope `run_node` runs in (the CLI does on SIGINT/SIGTERM). The host closes
its connections inside the library's `run()` (remotes see us leave at once), a block being stored
finishes first (a worker thread is not abandoned), then the store, the sandbox and the metrics
endpoint close, and a final status file is written.

Restart: the store is reopened (every block re-checked), the core is built from its state and tip
commit, and the core catches up by sync from its peers.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import json
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, Final, Protocol

import trio

from committee.round import Timing
from executor.measure import software_measurement
from executor.policy import Runtime
from executor.report import UnverifiedReport
from executor.run import execute
from executor.sandbox import DockerSandbox, Sandbox
from ledger.genesis import Genesis
from ledger.proofs import make_proof
from ledger.signing import IdentityKey
from ledger.state import task_key
from ledger.store import Store
from ledger.tx import PostTask
from p2p import events as ev
from p2p import host as hostmod
from p2p.config import (
    GOSSIP_MESSAGE_BYTES_CEILING,
    BackoffConfig,
    ConnectionConfig,
    HostConfig,
    ProtocolConfig,
    TopicConfig,
)
from p2p.core import CoreConfig, PeerCore
from p2p.errors import (
    HostNotRunning,
    MessageTooLarge,
    P2PError,
    PeerUnreachable,
    RemoteProtocolError,
    RequestRejected,
    RequestTimeout,
)
from p2p.identity import NotAnIdentityPeerId, peer_id_of, public_key_of
from p2p.metrics_export import MetricsServer, NodeMetrics, serve
from p2p.nodeconfig import (
    NodeConfig,
    Role,
    load_genesis,
    load_identity,
    load_vrf_key,
)
from p2p.nodelog import log_event
from p2p.result import ResultCertificate

logger = logging.getLogger("posi.node")
core_logger = logging.getLogger("posi.core")

# Events waiting for the core. Producers (timers, request results, executions, gossip readers,
# inbound requests) wait when it is full: backpressure instead of memory growth. 4096 covers a
# burst of a few blocks' worth of committee traffic on a busy node.
EVENT_QUEUE_LEN: Final = 4096
# Timers the core may have pending at once (it never cancels them; stale ones expire). A committee
# round keeps a few per task, a validator a few per height: 100 000 is far beyond a sane core and
# stops a runaway one before it exhausts memory.
TIMERS_MAX: Final = 100_000
# Outbound requests in flight. Votes go to a roster (at most a few hundred members) and sync to a
# few peers; beyond this, requests wait for a slot.
REQUESTS_IN_FLIGHT_MAX: Final = 256
# Sandbox executions at once. The machines this runs on have 2 cores; an operator's declared
# capacity on the ledger bounds how many tasks it is drawn into, this bounds how many containers
# it runs at the same moment (the others wait their turn).
EXECUTIONS_IN_FLIGHT_MAX: Final = 2
# Task timelines kept for the status file (the most recent tasks).
RECENT_TASKS_MAX: Final = 64
# Per-protocol deadline the shell accepts from the core (a core asking for more gets this).
REQUEST_TIMEOUT_MS_MAX: Final = 120_000
# Gossip delivery queues: tasks arrive in bursts of a few hundred at most; a block every second
# or two leaves a node that falls 64 behind in need of sync anyway.
TASKS_QUEUE_LEN: Final = 1024
BLOCKS_QUEUE_LEN: Final = 64
# A host penalty for a peer id that does not inline an Ed25519 key (not a posi-peer node).
BAD_PEER_ID_PENALTY: Final = 20


class CoreLike(Protocol):
    """What the shell needs from a core (`p2p.core.PeerCore`; tests pass scripted cores)."""

    def handle(self, event: ev.Event) -> list[ev.Action]:
        """Events in, actions out."""
        ...

    def validate_gossip(self, topic: str, sender: bytes, data: bytes) -> ev.GossipVerdict:
        """The quick gossip validator."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class NodeKeys:
    """The node's keys and chain, as `run_node` loaded them (passed to the core factory)."""

    identity: IdentityKey
    vrf_key: Any  # vrf.SecretKey | None (operators need one)
    genesis: Genesis


# (config, keys, store) -> core. The default builds a `p2p.core.PeerCore` from the store.
CoreFactory = Callable[[NodeConfig, NodeKeys, Store], CoreLike]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(slots=True)
class NodeDeps:
    """Dependencies of `run_node`; every field has a production default.

    `commands` feeds local commands (`SubmitTask`, `FollowTask`) into the core; `observe` sees
    every action after the shell executed it (with a `ResultCertificate` for `ResultReady`, built
    from the store). `host_connections` / `host_reconnect` tune the host (tests use fast redials).
    """

    core_factory: CoreFactory | None = None
    sandbox: Sandbox | None = None
    software_measurement: bytes | None = None
    clock_ms: Callable[[], int] = _wall_clock_ms
    rng: random.Random | None = None
    metrics: NodeMetrics | None = None
    commands: trio.MemoryReceiveChannel[ev.Event] | None = None
    observe: Callable[[ev.Action, ResultCertificate | None], None] | None = None
    host_connections: ConnectionConfig | None = None
    host_reconnect: BackoffConfig | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NodeAddresses:
    """What `run_node` reports through `task_status.started`."""

    peer_id: str
    identity: bytes
    listen: tuple[str, ...]
    metrics: tuple[str, int] | None


class NodeStartError(P2PError):
    """The node cannot start (keys, genesis, store, Docker, a port). The message says what to
    fix."""


def default_core_factory(config: NodeConfig, keys: NodeKeys, store: Store) -> CoreLike:
    """Build the production `PeerCore` for `config`'s roles from the reopened store (its state
    and tip commit; it also serves old blocks and credentials). Raises CoreConfigError if the
    roles do not fit the keys or the chain."""
    core_config = CoreConfig(
        identity=keys.identity,
        vrf_key=keys.vrf_key,
        validator=Role.VALIDATOR in config.roles,
        operator=Role.OPERATOR in config.roles,
        block_interval_ms=config.block_interval_ms,
        task_timing=dataclasses.replace(Timing(), execute_ms=config.execute_timeout_ms),
        open_tasks_max=config.open_tasks_max,
    )
    return PeerCore(core_config, state=store.state, tip_commit=store.tip_commit, archive=store)


def host_config(
    config: NodeConfig,
    identity: IdentityKey,
    *,
    connections: ConnectionConfig | None = None,
    reconnect: BackoffConfig | None = None,
) -> HostConfig:
    """The host's configuration: the node's addresses, the topics and protocols of `p2p.events`
    with their bounds."""
    queue = {ev.TOPIC_TASKS: TASKS_QUEUE_LEN, ev.TOPIC_BLOCKS: BLOCKS_QUEUE_LEN}
    # The host refuses gossip above its own ceiling (4 MiB: one message's CPU must stay bounded);
    # a larger block is not gossiped but still reaches every node through sync.
    topics = tuple(
        TopicConfig(
            t.name,
            min(t.max_message_bytes, GOSSIP_MESSAGE_BYTES_CEILING),
            queue.get(t.name, 256),
        )
        for t in ev.TOPICS
    )
    protocols = tuple(
        ProtocolConfig(p.protocol_id, p.max_request_bytes, p.max_response_bytes)
        for p in ev.PROTOCOLS
    )
    # The host's own deadline also bounds a whole inbound exchange: the slowest protocol's.
    timeout_s = max(p.timeout_ms for p in ev.PROTOCOLS) / 1000
    kwargs: dict[str, Any] = {}
    if connections is not None:
        kwargs["connections"] = connections
    if reconnect is not None:
        kwargs["reconnect"] = reconnect
    return HostConfig(
        identity=identity,
        listen_addrs=config.listen,
        bootstrap=config.bootstrap,
        topics=topics,
        protocols=protocols,
        request_timeout_s=timeout_s,
        **kwargs,
    )


@functools.lru_cache(maxsize=4096)
def _identity_of(peer_id: str) -> bytes:
    return public_key_of(peer_id)


@functools.lru_cache(maxsize=4096)
def _peer_of(identity: bytes) -> str:
    return peer_id_of(identity)


class _Timers:
    """A heap of (deadline, seq, key); one task sleeps until the earliest and fires it."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._wake = trio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, deadline: float, key: Hashable) -> None:
        if len(self._heap) >= TIMERS_MAX:
            raise NodeStartError(
                f"the core has {TIMERS_MAX} timers pending: a runaway core (bug); stopping"
            )
        first = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if first is None or deadline < first:
            self._wake.set()

    async def run(self, fire: Callable[[Hashable], Awaitable[None]]) -> None:
        while True:
            self._wake = trio.Event()
            if not self._heap:
                await self._wake.wait()
                continue
            deadline = self._heap[0][0]
            if trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await self._wake.wait()
                continue
            _, _, key = heapq.heappop(self._heap)
            await fire(key)


@dataclasses.dataclass(slots=True)
class _Pending:
    """An inbound request waiting for the core's `Respond`."""

    done: trio.Event
    response: ev.Respond | None = None


class _Shell:
    """The running node (one per `run_node` call)."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        keys: NodeKeys,
        store: Store,
        core: CoreLike,
        host: hostmod.P2PHost,
        metrics: NodeMetrics,
        deps: NodeDeps,
        sandbox: Sandbox | None,
        software_measurement: bytes,
    ) -> None:
        self.config = config
        self.keys = keys
        self.store = store
        self.core = core
        self.host = host
        self.metrics = metrics
        self.deps = deps
        self.sandbox = sandbox
        self.software_measurement = software_measurement
        self.send, self.recv = trio.open_memory_channel[ev.Event](EVENT_QUEUE_LEN)
        self.timers = _Timers()
        self.pending: dict[int, _Pending] = {}
        self.request_ids = itertools.count(1)
        self.request_slots = trio.Semaphore(REQUESTS_IN_FLIGHT_MAX)
        self.execution_slots = trio.Semaphore(EXECUTIONS_IN_FLIGHT_MAX)
        self.nursery: trio.Nursery | None = None
        self.last_ms = 0
        self.height = store.height
        self.tip_hash = store.state.tip_hash
        self.tasks: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self.metrics_addr: tuple[str, int] | None = None
        self.started_ms = self.now_ms()
        metrics.height.set(self.height)

    # --- clock ----------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The driver's clock: wall-clock milliseconds, never decreasing (the core's contract;
        validators compare block times with it, so it must be the wall clock)."""
        now = self.deps.clock_ms()
        now = max(now, self.last_ms)
        self.last_ms = now
        return now

    # --- the loop -------------------------------------------------------------------------------

    async def loop(self) -> None:
        async for event in self.recv:
            self.metrics.event_queue.set(self.recv.statistics().current_buffer_used)
            await self.handle(event)

    async def handle(self, event: ev.Event) -> None:
        self.metrics.message_in(_event_type(event))
        started = time.perf_counter()
        actions = self.core.handle(event)
        self.metrics.handle_seconds.observe(time.perf_counter() - started)
        for action in actions:
            await self.execute(action)

    async def execute(self, action: ev.Action) -> None:
        self.metrics.message_out(_action_type(action))
        extra: ResultCertificate | None = None
        match action:
            case ev.StoreBlock():
                await self._store_block(action)
            case ev.Publish():
                await self._publish(action)
            case ev.Respond():
                self._respond(action)
            case ev.Request():
                self._spawn(self._request, action)
            case ev.Connect():
                self.host.connect_soon(_peer_of(action.peer))
            case ev.StartTimer():
                self.metrics.timers.inc()
                self.timers.add(trio.current_time() + max(0, action.delay_ms) / 1000, action.key)
            case ev.Execute():
                self._spawn(self._execute, action)
            case ev.TaskEvent():
                self._task_event(action)
            case ev.Penalise():
                self._penalise(action)
            case ev.TaskSubmitted():
                log_event(
                    logger,
                    "submitted",
                    "task submitted",
                    task=action.task_id.hex(),
                    ref=action.ref,
                )
            case ev.ResultReady():
                extra = await self._result_certificate(action)
            case ev.Log():
                core_logger.log(
                    int(action.level),
                    "%s%s",
                    action.what,
                    f": {action.detail}" if action.detail else "",
                    extra={"fields": {"event": "core", "what": action.what}},
                )
            case _:
                raise ev.CoreMisuse(f"unknown action {action!r}")
        if self.deps.observe is not None:
            self.deps.observe(action, extra)

    def _spawn(self, fn: Callable[[Any], Awaitable[None]], arg: Any) -> None:
        assert self.nursery is not None
        self.nursery.start_soon(fn, arg)

    async def emit(self, event: ev.Event) -> None:
        """Queue an event for the core (waits while the queue is full)."""
        await self.send.send(event)

    # --- actions --------------------------------------------------------------------------------

    async def _store_block(self, action: ev.StoreBlock) -> None:
        started = time.perf_counter()
        # Not abandoned on cancellation: a block the core acted on is stored before we stop.
        await trio.to_thread.run_sync(self.store.append, action.block, action.state)
        self.metrics.store_seconds.observe(time.perf_counter() - started)
        self.metrics.blocks_stored.labels(via=action.via).inc()
        header = action.block.block.header
        self.height = header.height
        self.tip_hash = header.hash()
        self.metrics.height.set(self.height)
        log_event(
            logger,
            "block",
            "block stored",
            height=header.height,
            hash=self.tip_hash.hex(),
            txs=len(action.block.block.txs),
        )

    async def _publish(self, action: ev.Publish) -> None:
        try:
            await self.host.publish(action.topic, action.data)
        except MessageTooLarge as exc:  # a core bug: the core sized a message past its topic
            logger.error("publish on %s refused: %s", action.topic, exc)
        except HostNotRunning:
            pass  # shutting down

    def _respond(self, action: ev.Respond) -> None:
        pending = self.pending.get(action.request_id)
        if pending is None:
            return  # the caller gave up (timeout) or went away: nothing to answer
        pending.response = action
        pending.done.set()

    async def _request(self, action: ev.Request) -> None:
        timeout_s = min(max(action.timeout_ms, 1), REQUEST_TIMEOUT_MS_MAX) / 1000
        result: ev.Event
        async with self.request_slots:
            try:
                data = await self.host.request(
                    _peer_of(action.peer), action.protocol, action.data, timeout_s=timeout_s
                )
            except RequestTimeout as exc:
                result = self._failed(action, ev.FailureKind.TIMEOUT, exc)
            except PeerUnreachable as exc:
                result = self._failed(action, ev.FailureKind.UNREACHABLE, exc)
            except RequestRejected as exc:
                result = self._failed(action, ev.FailureKind.REJECTED, exc, exc.reason)
            except RemoteProtocolError as exc:
                result = self._failed(action, ev.FailureKind.PROTOCOL_ERROR, exc, exc.reason)
            except MessageTooLarge as exc:
                result = self._failed(action, ev.FailureKind.TOO_LARGE, exc)
            except HostNotRunning:
                return  # shutting down: nobody will handle the answer
            except P2PError as exc:
                result = self._failed(action, ev.FailureKind.UNREACHABLE, exc)
            else:
                result = ev.ResponseReceived(self.now_ms(), action.request_id, data)
        await self.emit(result)

    def _failed(
        self, action: ev.Request, kind: ev.FailureKind, exc: Exception, reason: str = ""
    ) -> ev.RequestFailed:
        return ev.RequestFailed(self.now_ms(), action.request_id, kind, reason or str(exc))

    async def _execute(self, action: ev.Execute) -> None:
        if self.sandbox is None:
            raise ev.CoreMisuse(
                "the core asked for an execution on a node without the operator role"
            )
        async with self.execution_slots:
            log_event(
                logger,
                "execution-start",
                "execution started",
                task=action.task_id.hex(),
                attempt=action.attempt,
                purpose=action.purpose.value,
            )
            started = time.perf_counter()
            done = await execute(
                action.task_id,
                action.job_spec,
                sandbox=self.sandbox,
                key=self.keys.identity,
                software_measurement=self.software_measurement,
            )
            seconds = time.perf_counter() - started
        report: UnverifiedReport = done.report
        outcome = report.body.outcome.name.lower()
        self.metrics.executed(action.purpose.value, outcome, seconds)
        log_event(
            logger,
            "execution",
            "execution finished",
            task=action.task_id.hex(),
            attempt=action.attempt,
            purpose=action.purpose.value,
            outcome=outcome,
            exit_code=report.body.exit_code,
            ms=round(seconds * 1000),
        )
        await self.emit(
            ev.ExecutionFinished(
                self.now_ms(),
                action.task_id,
                action.attempt,
                action.purpose,
                report.encode(),
                done.stdout,
            )
        )

    def _task_event(self, action: ev.TaskEvent) -> None:
        task_hex = action.task_id.hex()
        timeline = self.tasks.get(action.task_id)
        if timeline is None:
            timeline = {"task": task_hex, "first_ms": action.now_ms, "phases": {}}
            self.tasks[action.task_id] = timeline
            while len(self.tasks) > RECENT_TASKS_MAX:
                self.tasks.popitem(last=False)
        else:
            self.tasks.move_to_end(action.task_id)
        phase = action.phase.value
        timeline["phases"].setdefault(phase, action.now_ms)
        timeline["last"] = phase
        if action.detail:
            timeline["detail"] = action.detail[:200]
        since_ms = action.now_ms - timeline["first_ms"]
        self.metrics.phase(phase, since_ms / 1000)
        log_event(
            logger,
            "task",
            f"task {task_hex[:16]} {phase}",
            task=task_hex,
            phase=phase,
            detail=action.detail,
            now_ms=action.now_ms,
            since_first_ms=since_ms,
        )

    def _penalise(self, action: ev.Penalise) -> None:
        self.metrics.penalised(action.reason)
        peer = _peer_of(action.peer)
        log_event(
            logger,
            "penalty",
            "peer penalised",
            peer=peer,
            reason=action.reason,
            penalty=action.penalty,
            detail=action.detail,
        )
        # The host's score table is the single place peers are scored and banned.
        self.host._penalise(peer, action.penalty, f"core: {action.reason}")

    async def _result_certificate(self, action: ev.ResultReady) -> ResultCertificate | None:
        """Bundle a `ResultReady` with a state proof of the task record from the store."""

        def build() -> ResultCertificate | None:
            state = self.store.state
            found = self.store.transaction(_post_tx_hash(state, action.task_id))
            if found is None:
                return None
            body = found[1].body()
            if not isinstance(body, PostTask):
                return None
            header = self.store.header(state.height)
            commit = self.store.tip_commit
            if commit is None:
                return None
            proof = make_proof(state, header, commit, task_key(action.task_id))
            return ResultCertificate(
                task_id=action.task_id,
                attempt=action.attempt,
                job_spec=body.job_spec,
                report=action.report,
                output=action.output,
                certificate=action.certificate,
                proof=proof,
            )

        try:
            return await trio.to_thread.run_sync(build)
        except Exception:  # the certificate is a convenience for the poster, never fatal
            logger.exception("could not build the result certificate of %s", action.task_id.hex())
            return None

    # --- producers ------------------------------------------------------------------------------

    def validator(self, topic: str, sender_peer: str, data: bytes) -> hostmod.Verdict:
        try:
            sender = _identity_of(sender_peer)
        except NotAnIdentityPeerId:
            self.metrics.rejected("bad-peer-id")
            return hostmod.Reject("bad-peer-id", BAD_PEER_ID_PENALTY)
        verdict = self.core.validate_gossip(topic, sender, data)
        if isinstance(verdict, ev.Accept):
            return hostmod.ACCEPT
        if isinstance(verdict, ev.Reject):
            self.metrics.rejected(verdict.reason)
            return hostmod.Reject(verdict.reason, verdict.penalty, verdict.detail)
        return hostmod.Ignore(verdict.reason)

    async def read_gossip(self, topic: str, channel: trio.MemoryReceiveChannel[Any]) -> None:
        async for msg in channel:
            try:
                origin = _identity_of(msg.origin)
            except NotAnIdentityPeerId:
                continue  # signed by a non-Ed25519 id: not a node of ours (validated already)
            # The host does not report which peer forwarded a delivered message; the origin is
            # authenticated by the message signature, so it stands in for the sender.
            await self.emit(ev.GossipReceived(self.now_ms(), topic, origin, msg.data, origin))

    async def serve(self, protocol: str, peer_id: str, data: bytes) -> bytes:
        """The host's handler for every core protocol: hand the request to the core, wait for
        its Respond."""
        try:
            peer = _identity_of(peer_id)
        except NotAnIdentityPeerId:
            raise RemoteProtocolError(peer_id, "bad-peer-id", BAD_PEER_ID_PENALTY) from None
        request_id = next(self.request_ids)
        pending = _Pending(trio.Event())
        self.pending[request_id] = pending
        try:
            await self.emit(ev.RequestReceived(self.now_ms(), request_id, peer, protocol, data))
            await pending.done.wait()  # bounded by the host's request_timeout_s
        finally:
            del self.pending[request_id]
        response = pending.response
        assert response is not None
        if response.error is not None:
            self.metrics.rejected(response.error)
            raise RemoteProtocolError(peer_id, response.error, response.penalty)
        return response.data

    async def watch_peers(self) -> None:
        known: set[str] = set()
        while True:
            now = self.host.connected_peers()
            for peer in sorted(now - known):
                with _suppress_bad_id():
                    await self.emit(ev.PeerConnected(self.now_ms(), _identity_of(peer)))
            for peer in sorted(known - now):
                with _suppress_bad_id():
                    await self.emit(ev.PeerDisconnected(self.now_ms(), _identity_of(peer)))
            known = now
            self.metrics.peers.set(len(known))
            await self.host.wait_until(functools.partial(self._peers_changed, known))

    def _peers_changed(self, known: set[str]) -> bool:
        return self.host.connected_peers() != known

    async def fire_timer(self, key: Hashable) -> None:
        await self.emit(ev.TimerFired(self.now_ms(), key))

    async def forward_commands(self, commands: trio.MemoryReceiveChannel[ev.Event]) -> None:
        async for command in commands:
            # Commands are stamped with the shell's clock (the caller has none of its own).
            stamped = command
            if hasattr(command, "now_ms"):
                stamped = dataclasses.replace(command, now_ms=self.now_ms())  # type: ignore[type-var]
            await self.emit(stamped)

    async def run(self, task_status: trio.TaskStatus[NodeAddresses]) -> None:
        """Subscribe, serve, start the loop and the producers; report the addresses."""
        host = self.host
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            for spec in ev.TOPICS:
                channel = await host.subscribe(spec.name, self.validator)
                nursery.start_soon(self.read_gossip, spec.name, channel)
            for proto in ev.PROTOCOLS:
                host.set_handler(
                    proto.protocol_id, functools.partial(self.serve, proto.protocol_id)
                )
            nursery.start_soon(self.loop)
            nursery.start_soon(self.timers.run, self.fire_timer)
            nursery.start_soon(self.watch_peers)
            if self.deps.commands is not None:
                nursery.start_soon(self.forward_commands, self.deps.commands)
            await self.emit(ev.Started(self.now_ms()))
            addresses = NodeAddresses(
                peer_id=host.peer_id,
                identity=self.keys.identity.public,
                listen=tuple(host.listen_addrs),
                metrics=self.metrics_addr,
            )
            await write_status(self.config.status_path, self.status())
            log_event(
                logger,
                "listening",
                "node listening",
                peer_id=host.peer_id,
                addrs=list(addresses.listen),
                metrics=self.status()["metrics"],
                roles=sorted(r.value for r in self.config.roles),
                height=self.height,
            )
            nursery.start_soon(self.write_status_forever)
            task_status.started(addresses)

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status document (also written to DATA/status.json)."""
        return {
            "format": "posi-status/1",
            "pid": os.getpid(),
            "updated_ms": self.now_ms(),
            "started_ms": self.started_ms,
            "peer_id": self.host.peer_id,
            "identity": self.keys.identity.public.hex(),
            "roles": sorted(r.value for r in self.config.roles),
            "listen": self.host.listen_addrs,
            "metrics": None
            if self.metrics_addr is None
            else f"{self.metrics_addr[0]}:{self.metrics_addr[1]}",
            "height": self.height,
            "tip_hash": self.tip_hash.hex(),
            "chain": self.keys.genesis.chain_name,
            "peers": sorted(self.host.connected_peers()),
            "timers": len(self.timers),
            "event_queue": self.recv.statistics().current_buffer_used,
            "recent_tasks": list(self.tasks.values())[::-1],
        }

    async def write_status_forever(self) -> None:
        while True:
            await write_status(self.config.status_path, self.status())
            await trio.sleep(self.config.status_interval_s)


class _suppress_bad_id:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, NotAnIdentityPeerId)


def _post_tx_hash(state: Any, task_id: bytes) -> bytes:
    task = state.task(task_id)
    if task is None:
        raise KeyError(task_id)
    post_tx: bytes = task.post_tx
    return post_tx


def _event_type(event: ev.Event) -> str:
    name = type(event).__name__
    if isinstance(event, ev.GossipReceived):
        return f"{name}:{event.topic}"
    if isinstance(event, ev.RequestReceived):
        return f"{name}:{event.protocol}"
    return name


def _action_type(action: ev.Action) -> str:
    name = type(action).__name__
    if isinstance(action, ev.Publish):
        return f"{name}:{action.topic}"
    if isinstance(action, ev.Request):
        return f"{name}:{action.protocol}"
    return name


async def write_status(path: Path, doc: dict[str, Any]) -> None:
    """Write the status document atomically (a reader never sees half a file)."""

    def write() -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, path)

    await trio.to_thread.run_sync(write)


def _load_keys(config: NodeConfig) -> NodeKeys:
    identity = load_identity(config.identity_path)
    vrf_key = load_vrf_key(config.vrf_path) if config.vrf_path.exists() else None
    if Role.OPERATOR in config.roles and vrf_key is None:
        raise NodeStartError(
            f"the operator role needs a VRF key: {config.vrf_path} is missing "
            f"(run `posi-peer init --data-dir {config.data_dir}`)"
        )
    genesis = load_genesis(config.genesis)
    if Role.VALIDATOR in config.roles and identity.public not in {
        v.identity for v in genesis.validators
    }:
        raise NodeStartError(
            f"the validator role needs this node's identity {identity.public.hex()} in the "
            f"genesis validator list of {config.genesis}: drop the role or use the right genesis"
        )
    return NodeKeys(identity, vrf_key, genesis)


async def run_node(
    config: NodeConfig,
    *,
    deps: NodeDeps | None = None,
    task_status: trio.TaskStatus[NodeAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a node until cancelled. Calls `task_status.started(NodeAddresses)` once it listens.

    Raises NodeStartError, NodeConfigError (keys, genesis), ledger StoreError / CorruptStore (the
    store: fix the path, restore or resync), executor EngineUnavailable / RuntimeUnavailable
    (operators need Docker), OSError (a listen or metrics address cannot be bound: pick another)."""
    deps = deps if deps is not None else NodeDeps()
    keys = _load_keys(config)
    metrics = deps.metrics if deps.metrics is not None else NodeMetrics()
    store = await trio.to_thread.run_sync(Store.open, config.store_path, keys.genesis)
    sandbox = deps.sandbox
    owns_sandbox = False
    metrics_server: MetricsServer | None = None
    try:
        measurement = deps.software_measurement
        if Role.OPERATOR in config.roles:
            if measurement is None:
                measurement = await trio.to_thread.run_sync(software_measurement)
            if sandbox is None:
                sandbox = await DockerSandbox.connect(
                    runtime=Runtime[config.runtime.upper()], owner=peer_id_of(keys.identity.public)
                )
                owns_sandbox = True
        factory = deps.core_factory if deps.core_factory is not None else default_core_factory
        core = factory(config, keys, store)
        hconf = host_config(
            config,
            keys.identity,
            connections=deps.host_connections,
            reconnect=deps.host_reconnect,
        )
        if config.metrics is not None:
            metrics_server = await trio.to_thread.run_sync(
                serve, metrics, config.metrics[0], config.metrics[1]
            )
        metrics_addr = None if metrics_server is None else metrics_server.address

        async def hosted(
            work: trio.CancelScope, task_status: trio.TaskStatus[NodeAddresses]
        ) -> None:
            # Shielded: the host must leave the library's run() normally, never by a
            # cancellation from outside (a cancelled host leaks sockets and stops its services
            # abruptly). `work` is what stopping cancels: the shell's tasks, inside the host.
            stopped = False
            with trio.CancelScope(shield=True):
                try:
                    async with hostmod.open_host(hconf, rng=deps.rng, metrics=metrics.host) as host:
                        shell = _Shell(
                            config=config,
                            keys=keys,
                            store=store,
                            core=core,
                            host=host,
                            metrics=metrics,
                            deps=deps,
                            sandbox=sandbox,
                            software_measurement=measurement or b"\0" * 32,
                        )
                        shell.metrics_addr = metrics_addr
                        try:
                            with work:
                                await shell.run(task_status)
                            stopped = work.cancelled_caught
                        finally:
                            # The last word in status.json: the tip this node stopped at.
                            await write_status(config.status_path, shell.status())
                except Exception as exc:
                    if not stopped:
                        raise
                    # py-libp2p 0.8.1's services race the closing swarm (GossipSub's heartbeat
                    # reads the closed listener's address: EBADF). The node had already stopped
                    # cleanly; an error of the library's teardown must not fail the process.
                    logger.warning("the libp2p library failed while shutting down: %r", exc)

        work = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(hosted, work)
            task_status.started(addresses)
            try:
                await trio.sleep_forever()
            finally:
                work.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if metrics_server is not None:
                await trio.to_thread.run_sync(metrics_server.close)
            if owns_sandbox and sandbox is not None:
                closer = getattr(sandbox, "close", None)
                if closer is not None:
                    await trio.to_thread.run_sync(closer)
            height = store.height
            await trio.to_thread.run_sync(store.close)
            log_event(logger, "stopped", "node stopped", height=height)
