"""The deterministic mode's network model: latency, bandwidth, loss, duplication, reordering,
partitions and slow links; gossip as a mesh fan-out, requests as point-to-point messages.

Everything draws from one `random.Random` the driver owns, in the order the driver calls, so a seed
fixes every delay and every loss.

**Point to point** (`Network.transmit`): a message of `size` bytes from `src` to `dst` leaves when
`src`'s uplink is free (each peer has one uplink of `bandwidth_bytes_per_ms`: a burst queues behind
itself), takes `size / bandwidth` ms to serialise, then a one-way latency drawn from the latency
distribution (times the slow-link factor of either end). It is lost with probability `loss` (plus
the extra loss of an active fault), duplicated with `duplicate`, and with `reorder` delayed by up to
`reorder_ms` more (so it may overtake or be overtaken). Across a partition nothing arrives.

**Gossip** (`Network.disseminate`): every peer keeps `degree` .. `degree_high` mesh links per topic
(a random graph fixed by the seed, like GossipSub's mesh). A published message travels the mesh:
each peer that receives it for the first time validates it (`hop_ms`) and forwards it to every mesh
neighbour but the one it came from, so the network carries about N x degree copies, which is what
the figures count. Arrival times are shortest paths over per-hop delays drawn per message
(Dijkstra). Crashed peers and links cut by a partition or lost drop out of the walk; a live peer
the mesh walk misses (its mesh neighbours crashed or are across a partition) gets the message one
heartbeat later by GossipSub's lazy repair (IHAVE -> IWANT -> message, three messages), as long as
some peer on its side of any partition has it.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections.abc import Iterable, Sequence
from typing import Final

from simnet.errors import ScenarioError

# Gossip mesh degree bounds, as GossipSub's D / D_hi (p2p.config's defaults: 6 and 12).
MESH_DEGREE_DEFAULT: Final = 6
MESH_DEGREE_HIGH_DEFAULT: Final = 12
# GossipSub heartbeat: a peer the mesh walk missed gets the message by IHAVE/IWANT after one
# heartbeat (p2p.config uses 1 s).
HEARTBEAT_MS_DEFAULT: Final = 1000
# Control-message overhead added to every gossip copy and request (protobuf framing, topic,
# message id, signature: about what py-libp2p adds to a payload).
ENVELOPE_BYTES: Final = 160
# One-way latencies are clamped to this: a distribution with a heavy tail (pareto) must not stall
# the simulation for hours of simulated time on one message.
LATENCY_MS_MAX: Final = 30_000


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    """A one-way latency distribution in milliseconds.

    `fixed:A` (always A), `uniform:A:B`, `normal:MEAN:SD` (clamped at 1), `lognormal:MEDIAN:SIGMA`,
    `pareto:MIN:ALPHA` (heavy tail). Parse with `Latency.parse("lognormal:20:0.5")`."""

    kind: str
    a: float
    b: float = 0.0

    KINDS = ("fixed", "uniform", "normal", "lognormal", "pareto")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ScenarioError(f"latency kind {self.kind!r}: expected one of {self.KINDS}")
        if not (math.isfinite(self.a) and math.isfinite(self.b)) or self.a < 0 or self.b < 0:
            raise ScenarioError(f"latency {self}: parameters must be finite and >= 0")
        if self.kind == "uniform" and self.b < self.a:
            raise ScenarioError("latency uniform:A:B needs A <= B")
        if self.kind == "pareto" and (self.a <= 0 or self.b <= 0):
            raise ScenarioError("latency pareto:MIN:ALPHA needs MIN > 0 and ALPHA > 0")
        if self.kind == "lognormal" and self.a <= 0:
            raise ScenarioError("latency lognormal:MEDIAN:SIGMA needs MEDIAN > 0")

    @classmethod
    def parse(cls, text: str) -> Latency:
        """Parse `kind:a[:b]`. Raises ScenarioError naming the expected form."""
        parts = text.split(":")
        try:
            numbers = [float(p) for p in parts[1:]]
        except ValueError:
            raise ScenarioError(f"latency {text!r}: expected kind:number[:number]") from None
        if not 1 <= len(numbers) <= 2:
            raise ScenarioError(f"latency {text!r}: expected kind:number[:number]")
        return cls(parts[0], *numbers)

    def text(self) -> str:
        """The form `parse` reads."""
        if self.kind == "fixed":
            return f"fixed:{self.a:g}"
        return f"{self.kind}:{self.a:g}:{self.b:g}"

    def sample(self, rng: random.Random) -> int:
        """One latency in whole milliseconds, at least 1 and at most LATENCY_MS_MAX."""
        kind = self.kind
        if kind == "fixed":
            value = self.a
        elif kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif kind == "normal":
            value = rng.gauss(self.a, self.b)
        elif kind == "lognormal":
            value = self.a * math.exp(self.b * rng.gauss(0.0, 1.0))
        else:  # pareto
            value = self.a * rng.paretovariate(self.b)
        return min(LATENCY_MS_MAX, max(1, round(value)))


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkConfig:
    """The healthy network (faults change it for a while: see `NetworkState`)."""

    latency: Latency = Latency("lognormal", 20.0, 0.4)
    bandwidth_bytes_per_ms: int = 12_500  # 100 Mbit/s uplinks
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_ms: int = 50
    degree: int = MESH_DEGREE_DEFAULT
    degree_high: int = MESH_DEGREE_HIGH_DEFAULT
    hop_ms: int = 1  # validation before forwarding, per gossip hop
    heartbeat_ms: int = HEARTBEAT_MS_DEFAULT

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ScenarioError(f"network.{name} must be in [0, 1], got {value}")
        if self.bandwidth_bytes_per_ms < 0:
            raise ScenarioError("network.bandwidth must be >= 0 (0: unlimited)")
        if not 1 <= self.degree <= self.degree_high:
            raise ScenarioError("network.degree must be in [1, degree_high]")
        for name in ("reorder_ms", "hop_ms", "heartbeat_ms"):
            if getattr(self, name) < 0:
                raise ScenarioError(f"network.{name} must be >= 0")


@dataclasses.dataclass(slots=True)
class NetworkState:
    """What faults change: crashed peers, partition sides, slow links, extra loss."""

    down: set[int] = dataclasses.field(default_factory=set)
    side: dict[int, int] = dataclasses.field(default_factory=dict)  # peer -> partition side
    slow: dict[int, float] = dataclasses.field(default_factory=dict)  # peer -> latency factor
    extra_loss: float = 0.0

    def connected(self, a: int, b: int) -> bool:
        """Can a message go from a to b now (both up, same side of any partition)?"""
        if a in self.down or b in self.down:
            return False
        return self.side.get(a, 0) == self.side.get(b, 0)


def build_mesh(peers: int, degree: int, degree_high: int, rng: random.Random) -> list[list[int]]:
    """A random undirected graph where every peer has between `degree` and `degree_high`
    neighbours (fewer only when there are fewer peers): GossipSub's mesh for one topic."""
    want = min(degree, peers - 1)
    high = min(degree_high, peers - 1)
    adjacency: list[set[int]] = [set() for _ in range(peers)]
    order = list(range(peers))
    rng.shuffle(order)
    for i in order:
        tries = 0
        while len(adjacency[i]) < want and tries < 20 * degree_high:
            tries += 1
            j = rng.randrange(peers)
            if j == i or j in adjacency[i] or len(adjacency[j]) >= high:
                continue
            adjacency[i].add(j)
            adjacency[j].add(i)
    return [sorted(a) for a in adjacency]


@dataclasses.dataclass(frozen=True, slots=True)
class GossipSpread:
    """Where one gossip message arrived (peer, delay from publish, the peer it came from) and
    what it cost."""

    arrivals: list[tuple[int, int, int]]
    messages: int
    bytes: int


class Network:
    """Delays, losses and counts for one run (see the module docstring)."""

    def __init__(self, config: NetworkConfig, peers: int, rng: random.Random) -> None:
        self.config = config
        self.peers = peers
        self.rng = rng
        self.state = NetworkState()
        self.mesh = build_mesh(peers, config.degree, config.degree_high, rng)
        self._uplink_free_ms = [0] * peers

    # --- point to point

    def _latency(self, a: int, b: int) -> int:
        value = self.config.latency.sample(self.rng)
        slow = self.state.slow
        if slow:
            factor = max(slow.get(a, 1.0), slow.get(b, 1.0))
            value = min(LATENCY_MS_MAX, round(value * factor))
        return value

    def transmit(self, src: int, dst: int, size: int, now_ms: int) -> list[int]:
        """Delays (ms from now) at which copies of a message from src arrive at dst: [] if lost
        or cut off, two entries if duplicated."""
        state = self.state
        if not state.connected(src, dst):
            return []
        cfg = self.config
        rng = self.rng
        loss = cfg.loss + state.extra_loss
        if loss > 0.0 and rng.random() < loss:
            return []
        wire = size + ENVELOPE_BYTES
        start = max(now_ms, self._uplink_free_ms[src])
        if cfg.bandwidth_bytes_per_ms:
            done = start + -(-wire // cfg.bandwidth_bytes_per_ms)
            self._uplink_free_ms[src] = done
        else:
            done = start
        delays = [done - now_ms + self._latency(src, dst)]
        if cfg.duplicate > 0.0 and rng.random() < cfg.duplicate:
            delays.append(delays[0] + self._latency(src, dst))
        if cfg.reorder > 0.0:
            delays = [
                d + rng.randint(0, cfg.reorder_ms) if rng.random() < cfg.reorder else d
                for d in delays
            ]
        return delays

    # --- gossip

    def disseminate(self, origin: int, size: int, subscribers: Sequence[bool]) -> GossipSpread:
        """Spread one message published by `origin` over the mesh; returns arrival delays at every
        live subscriber it reaches (not the origin) and the copies sent."""
        cfg = self.config
        state = self.state
        rng = self.rng
        wire = size + ENVELOPE_BYTES
        serialise = -(-wire // cfg.bandwidth_bytes_per_ms) if cfg.bandwidth_bytes_per_ms else 0
        loss = cfg.loss + state.extra_loss
        down = state.down
        side = state.side
        slow = state.slow
        latency = cfg.latency
        best: dict[int, int] = {origin: 0}
        parent: dict[int, int] = {origin: origin}
        done: set[int] = set()
        heap: list[tuple[int, int, int]] = [(0, origin, -1)]
        copies = 0
        while heap:
            t, peer, came_from = heapq.heappop(heap)
            if peer in done:
                continue
            done.add(peer)
            here = side.get(peer, 0) if side else 0
            for neighbour in self.mesh[peer]:
                if neighbour == came_from:
                    continue
                copies += 1
                if neighbour in down or neighbour in done:
                    continue
                if side and side.get(neighbour, 0) != here:
                    continue
                if loss > 0.0 and rng.random() < loss:
                    continue
                hop = latency.sample(rng)
                if slow:
                    hop = min(
                        LATENCY_MS_MAX,
                        round(hop * max(slow.get(peer, 1.0), slow.get(neighbour, 1.0))),
                    )
                arrive = t + serialise + hop + cfg.hop_ms
                if arrive < best.get(neighbour, 1 << 62):
                    best[neighbour] = arrive
                    parent[neighbour] = peer
                    heapq.heappush(heap, (arrive, neighbour, peer))
        # Lazy repair: live subscribers the walk missed, on a side that has the message.
        reached_sides = {side.get(p, 0) for p in done} if side else {0}
        for peer in range(self.peers):
            if peer in done or peer in down or not subscribers[peer]:
                continue
            if (side.get(peer, 0) if side else 0) not in reached_sides:
                continue
            copies += 3
            best[peer] = cfg.heartbeat_ms + 2 * latency.sample(rng) + serialise
            parent[peer] = origin
        arrivals = sorted(
            (p, t, parent[p])
            for p, t in best.items()
            if p != origin and subscribers[p] and p not in down
        )
        return GossipSpread(arrivals, copies, copies * wire)

    # --- faults

    def crash(self, peers: Iterable[int]) -> None:
        """Peers stop: they neither send nor receive."""
        self.state.down.update(peers)

    def restart(self, peers: Iterable[int]) -> None:
        """Peers come back (with empty uplink queues)."""
        for p in peers:
            self.state.down.discard(p)
            self._uplink_free_ms[p] = 0

    def partition(self, sides: Sequence[Iterable[int]]) -> None:
        """Cut the network into sides; peers in no listed side are on side 0."""
        self.state.side = {p: i for i, group in enumerate(sides) for p in group}

    def heal(self) -> None:
        """Remove any partition."""
        self.state.side = {}

    def set_slow(self, peers: Iterable[int], factor: float) -> None:
        """Multiply the latency of every link touching these peers by `factor` (1.0 restores)."""
        for p in peers:
            if factor == 1.0:
                self.state.slow.pop(p, None)
            else:
                self.state.slow[p] = factor

    def set_extra_loss(self, loss: float) -> None:
        """Lose this extra share of every message (0.0 restores)."""
        self.state.extra_loss = loss
