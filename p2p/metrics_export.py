"""Prometheus metrics of a node: what the shell sees (every event in, every action out), the
per-task timeline, and the host's counters.

One `NodeMetrics` per node, on its own `CollectorRegistry` (several nodes may share a process in
tests and the simulator). `serve(host, port)` exposes it over HTTP (`--metrics HOST:PORT`) from
prometheus_client's server thread; the trio thread only increments counters, which never blocks.

Label values are bounded: message types and phases come from fixed vocabularies (the core's event
and action classes, the task phases), and rejection / penalty reasons are capped at
`REASONS_MAX` distinct values (the rest count as "other"), so a peer cannot grow the tables by
inventing reasons.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from p2p.metrics import HostMetrics

# Distinct reasons tracked by name (rejections, penalties, failures); validators and the core use
# a small fixed vocabulary, 64 is room for all of it.
REASONS_MAX: Final = 64
# Distinct message types: the core's event and action classes, topics and protocols (a few dozen).
TYPES_MAX: Final = 128
OTHER: Final = "other"

# Phase latencies (seconds since the task was posted) span one block (~1-2 s) to a task timeout
# (minutes); core handle times span microseconds to a block fold (~100 ms).
_PHASE_BUCKETS_S: Final = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)
_HANDLE_BUCKETS_S: Final = (
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
_EXEC_BUCKETS_S: Final = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 600)


class _Bounded:
    """A set of label values that stops growing at `limit` (later values map to OTHER)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def key(self, value: str) -> str:
        if value in self._known:
            return value
        with self._lock:
            if len(self._known) < self._limit:
                self._known.add(value)
                return value
        return OTHER


class _HostCollector(Collector):
    """Exports a HostMetrics (plain counters owned by the host) at scrape time."""

    def __init__(self, host_metrics: HostMetrics) -> None:
        self._m = host_metrics

    def collect(self) -> Iterator[CounterMetricFamily]:
        m = self._m
        # list(...) copies under the GIL: the trio thread may add keys while we scrape.
        by_topic = (
            ("posi_gossip_in_messages", "gossip messages accepted", m.gossip_in_messages),
            ("posi_gossip_in_bytes", "gossip bytes accepted", m.gossip_in_bytes),
            ("posi_gossip_out_messages", "gossip messages published", m.gossip_out_messages),
            ("posi_gossip_out_bytes", "gossip bytes published", m.gossip_out_bytes),
            ("posi_gossip_dropped", "accepted gossip dropped (node queue full)", m.gossip_dropped),
            ("posi_gossip_ignored", "gossip ignored by validators", m.gossip_ignored),
        )
        for name, doc, counter in by_topic:
            fam = CounterMetricFamily(name, doc, labels=["topic"])
            for topic, value in list(counter.items()):
                fam.add_metric([topic], value)
            yield fam
        fam = CounterMetricFamily(
            "posi_gossip_rejected", "gossip rejected by validators", labels=["topic", "reason"]
        )
        for (topic, reason), value in list(m.gossip_rejected.items()):
            fam.add_metric([topic, reason], value)
        yield fam
        by_protocol = (
            ("posi_rpc_out_requests", "requests sent", m.rpc_out_requests),
            ("posi_rpc_out_bytes", "request bytes sent", m.rpc_out_bytes),
            ("posi_rpc_in_requests", "requests served", m.rpc_in_requests),
            ("posi_rpc_in_bytes", "request bytes received", m.rpc_in_bytes),
            ("posi_rpc_streams_opened", "request streams opened", m.rpc_streams_opened),
            ("posi_rpc_streams_reused", "requests sent on an open stream", m.rpc_streams_reused),
            ("posi_rpc_late_answers", "answers after the caller gave up", m.rpc_late_answers),
            (
                "posi_rpc_requests_joined",
                "requests that waited for an identical one in flight",
                m.rpc_requests_joined,
            ),
        )
        for name, doc, counter in by_protocol:
            fam = CounterMetricFamily(name, doc, labels=["protocol"])
            for pid, value in list(counter.items()):
                fam.add_metric([pid], value)
            yield fam
        for name, doc, pairs in (
            ("posi_rpc_failures", "request failures", m.rpc_failures),
            ("posi_rpc_rejected", "requests refused by handlers", m.rpc_rejected),
            ("posi_rpc_timeouts_at", "timed-out requests by stage", m.rpc_timeouts_at),
            ("posi_rpc_stream_failures", "request streams not opened", m.rpc_stream_failures),
        ):
            fam = CounterMetricFamily(name, doc, labels=["protocol", "kind"])
            for (pid, kind), value in list(pairs.items()):
                fam.add_metric([pid, kind], value)
            yield fam
        for name, doc, value in (
            ("posi_dials", "outbound dials", m.dials),
            ("posi_dials_ahead", "dials to committee co-members before the round", m.dials_ahead),
            ("posi_dial_failures", "failed dials", m.dial_failures),
            ("posi_connections_opened", "connections opened", m.connections_opened),
            ("posi_connections_closed", "connections closed", m.connections_closed),
            ("posi_bans", "peers banned", m.bans),
            (
                "posi_gossip_broken_streams",
                "pubsub streams ended: the peer's RPC did not parse",
                m.gossip_broken_streams,
            ),
            (
                "posi_banned_connections_refused",
                "connections of banned peers closed",
                m.banned_connections_refused,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class NodeMetrics:
    """The node's Prometheus metrics. Only the shell writes them (from the trio thread)."""

    def __init__(self, host_metrics: HostMetrics | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.host = host_metrics if host_metrics is not None else HostMetrics()
        self._types = _Bounded(TYPES_MAX)
        self._reasons = _Bounded(REASONS_MAX)
        r = self.registry
        self.messages_in = Counter(
            "posi_messages_in", "events into the core, by type", ["type"], registry=r
        )
        self.messages_out = Counter(
            "posi_messages_out", "actions out of the core, by type", ["type"], registry=r
        )
        self.rejections = Counter(
            "posi_rejections", "inbound messages rejected, by reason", ["reason"], registry=r
        )
        self.penalties = Counter(
            "posi_penalties", "penalties the core gave peers, by reason", ["reason"], registry=r
        )
        self.task_phases = Counter(
            "posi_task_phases",
            "tasks that reached a phase (this node's view)",
            ["phase"],
            registry=r,
        )
        self.phase_latency = Histogram(
            "posi_phase_latency_seconds",
            "time from a task's first sighting (posted) to each phase",
            ["phase"],
            buckets=_PHASE_BUCKETS_S,
            registry=r,
        )
        self.handle_seconds = Histogram(
            "posi_core_handle_seconds",
            "CPU-bound time spent in one PeerCore.handle call",
            buckets=_HANDLE_BUCKETS_S,
            registry=r,
        )
        self.executions = Counter(
            "posi_executions",
            "jobs run in the sandbox, by purpose and outcome",
            ["purpose", "outcome"],
            registry=r,
        )
        self.execution_seconds = Histogram(
            "posi_execution_seconds",
            "wall time of one sandbox execution",
            buckets=_EXEC_BUCKETS_S,
            registry=r,
        )
        self.height = Gauge("posi_height", "height of the stored chain tip", registry=r)
        self.peers = Gauge("posi_peers", "connected peers", registry=r)
        self.blocks_stored = Counter(
            "posi_blocks_stored",
            "blocks appended to the store, by how they came (gossip, sync, poll: a held sync "
            "request, round: this validator's own)",
            ["via"],
            registry=r,
        )
        self.store_seconds = Histogram(
            "posi_store_seconds",
            "time to append one block durably",
            buckets=_HANDLE_BUCKETS_S,
            registry=r,
        )
        self.timers = Counter("posi_timers", "timers started by the core", registry=r)
        self.event_queue = Gauge("posi_event_queue", "events waiting for the core", registry=r)
        self.registry.register(_HostCollector(self.host))

    def message_in(self, kind: str) -> None:
        """Count one event of type `kind` into the core."""
        self.messages_in.labels(self._types.key(kind)).inc()

    def message_out(self, kind: str) -> None:
        """Count one action of type `kind` out of the core."""
        self.messages_out.labels(self._types.key(kind)).inc()

    def rejected(self, reason: str) -> None:
        """Count one rejected inbound message."""
        self.rejections.labels(self._reasons.key(reason)).inc()

    def penalised(self, reason: str) -> None:
        """Count one penalty."""
        self.penalties.labels(self._reasons.key(reason)).inc()

    def phase(self, phase: str, since_posted_s: float | None) -> None:
        """Count a task reaching `phase`, with the latency since it was posted when known."""
        key = self._types.key(phase)
        self.task_phases.labels(key).inc()
        if since_posted_s is not None and since_posted_s >= 0:
            self.phase_latency.labels(key).observe(since_posted_s)

    def executed(self, purpose: str, outcome: str, seconds: float) -> None:
        """Count one sandbox execution."""
        self.executions.labels(self._types.key(purpose), self._types.key(outcome)).inc()
        self.execution_seconds.observe(seconds)


class MetricsServer:
    """The HTTP endpoint of a NodeMetrics (prometheus_client's server thread)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the endpoint listens on (the real port when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop serving and join the thread (call from a worker thread: it blocks briefly)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(metrics: NodeMetrics, host: str, port: int) -> MetricsServer:
    """Serve `metrics` on http://HOST:PORT/metrics (port 0 picks a free one: read `.address`).

    Raises OSError if the address cannot be bound (pick another port, or `--metrics off`)."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)
