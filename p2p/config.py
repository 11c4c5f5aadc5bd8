"""Configuration of the libp2p host: frozen, validated once at construction.

Every part is a frozen dataclass whose `__post_init__` checks its invariants and raises one named
`ConfigError` subclass per broken rule (the message names the field, the value and the rule). A
`HostConfig` that exists is valid; `P2PHost` never re-checks it.

Units are in the names: `_s` seconds, `_bytes` bytes, `_per_s` per second.
"""

from __future__ import annotations

import dataclasses
import enum
import math

import multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from ledger.signing import IdentityKey
from p2p.errors import ConfigError
from p2p.identity import peer_id_of

# --- named errors, one per invariant -------------------------------------------------------------


class InvalidAddress(ConfigError):
    """A listen or bootstrap multiaddr does not parse, uses an unsupported transport, or (bootstrap)
    lacks its `/p2p/<peer id>` part or names this node itself."""


class DegreeOrderError(ConfigError):
    """GossipSub degrees must satisfy 1 <= degree_low <= degree <= degree_high."""


class BoundOutOfRange(ConfigError):
    """A size, count, interval or timeout is outside its allowed range."""


class DuplicateName(ConfigError):
    """A topic or protocol id is listed twice."""


class InvalidName(ConfigError):
    """A topic name or protocol id is empty, too long, or not in the expected form."""


class BackoffOrderError(ConfigError):
    """Reconnect backoff must satisfy 0 < base_s <= cap_s and 0 <= jitter < 1."""


class ConnectionLimitOrderError(ConfigError):
    """Connection limits must satisfy 1 <= target_connections <= max_connections."""


# --- bounds (each with why) ----------------------------------------------------------------------

# A gossiped message is a task or a block (DESIGN.md network budget). 4 MiB is far above any block
# the ledger produces and keeps one message's CPU (hashing, signature, protobuf) bounded.
GOSSIP_MESSAGE_BYTES_CEILING = 4 * 1024 * 1024
# Request/response payloads include sync batches of blocks: the ledger's decode ceiling.
RPC_MESSAGE_BYTES_CEILING = 64 * 1024 * 1024
# Names travel in every RPC; keep them short.
NAME_LEN_MAX = 128
# Delivery queues hold decoded messages waiting for the node; beyond this the node is not keeping up
# and dropping (counted) is better than growing memory.
DELIVERY_QUEUE_LEN_CEILING = 65536
# A timeout beyond an hour is a configuration mistake, not patience.
TIMEOUT_S_CEILING = 3600.0
# libp2p keeps per-connection state (buffers, yamux windows, pubsub queues): ~1 MB per connection.
MAX_CONNECTIONS_CEILING = 1024
# The seen cache costs ~100 bytes per id; 1 M ids = ~100 MB is the most a node should spend.
SEEN_ENTRIES_CEILING = 1 << 20
# Score table and peer book: ~200 bytes per entry.
PEER_TABLE_CEILING = 1 << 16

# One peer-exchange answer: enough to find the rest of a small swarm, small enough to be cheap.
PEX_SAMPLE_CEILING = 64
# The host's own peer-exchange protocol (reserved: not configurable).
PEX_PROTOCOL_ID = "/posi/pex/1"

# GossipSub protocol ids py-libp2p 0.8.1 implements.
KNOWN_MESHSUB_PROTOCOLS = (
    "/meshsub/2.0.0",
    "/meshsub/1.4.0",
    "/meshsub/1.3.0",
    "/meshsub/1.2.0",
    "/meshsub/1.1.0",
    "/meshsub/1.0.0",
)


class Muxer(enum.StrEnum):
    """Stream multiplexer offered first during connection upgrade (the other one stays offered as a
    fallback so nodes with different preferences still connect)."""

    YAMUX = "yamux"
    MPLEX = "mplex"


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise BoundOutOfRange(f"{name}={value!r}: expected a number in [{low:g}, {high:g}]")
    if not low <= value <= high:
        raise BoundOutOfRange(f"{name}={value!r}: must be in [{low:g}, {high:g}]")


def _check_positive_s(name: str, value: float) -> None:
    _check_range(name, value, 1e-3, TIMEOUT_S_CEILING)


def _check_name(kind: str, name: str, *, prefix: str = "") -> None:
    if not isinstance(name, str) or not name or len(name.encode()) > NAME_LEN_MAX:
        raise InvalidName(f"{kind} {name!r}: must be a non-empty string of <= {NAME_LEN_MAX} bytes")
    if prefix and not name.startswith(prefix):
        raise InvalidName(f"{kind} {name!r}: must start with {prefix!r}")
    if any(ch.isspace() for ch in name):
        raise InvalidName(f"{kind} {name!r}: must not contain whitespace")


@dataclasses.dataclass(frozen=True, slots=True)
class TopicConfig:
    """One gossip topic: its name, the largest message it carries, and how many delivered messages
    may wait for the node before new ones are dropped (counted in `HostMetrics.gossip_dropped`)."""

    name: str
    max_message_bytes: int
    delivery_queue_len: int = 256

    def __post_init__(self) -> None:
        _check_name("topic", self.name)
        _check_range(
            f"topic {self.name}: max_message_bytes",
            self.max_message_bytes,
            1,
            GOSSIP_MESSAGE_BYTES_CEILING,
        )
        _check_range(
            f"topic {self.name}: delivery_queue_len",
            self.delivery_queue_len,
            1,
            DELIVERY_QUEUE_LEN_CEILING,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """One request/response protocol: its id (`/posi/...`) and the bounds of one request and one
    response. Both sides use the same bounds: they are part of the protocol."""

    protocol_id: str
    max_request_bytes: int
    max_response_bytes: int

    def __post_init__(self) -> None:
        _check_name("protocol id", self.protocol_id, prefix="/posi/")
        for field in ("max_request_bytes", "max_response_bytes"):
            _check_range(
                f"protocol {self.protocol_id}: {field}",
                getattr(self, field),
                0,
                RPC_MESSAGE_BYTES_CEILING,
            )


@dataclasses.dataclass(frozen=True, slots=True)
class GossipConfig:
    """GossipSub parameters. The py-libp2p defaults that break a network are not exposed: adaptive
    gossip is always off (it stretches the heartbeat to 30-60 s) and message ids are always
    content-addressed (restarted peers reuse sequence numbers)."""

    # Mesh degrees as in the GossipSub spec (D, D_lo, D_hi).
    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    # The library's default is 120 s, which leaves meshes unrepaired for minutes. An int: the
    # library sleeps on it directly.
    heartbeat_interval_s: int = 1
    # Offered meshsub versions, preferred first. See p2p/README.md for the measurement behind it.
    protocols: tuple[str, ...] = ("/meshsub/1.1.0", "/meshsub/1.0.0")
    # How long a message id is remembered (duplicates inside it are dropped unseen); the GossipSub
    # spec's default. Payloads must therefore be unique within this window.
    seen_ttl_s: int = 120
    # Hard cap on remembered ids; the oldest go first. 120 s at 60 msg/s is 7 200 ids.
    seen_max_entries: int = 16384
    # None = library spam protection off. Its limit applies per forwarder per topic, including
    # ourselves, and silently stops forwarding beyond it, so a number must be far above any
    # legitimate rate.
    spam_limit_per_s: float | None = None
    # Sign every message with the origin's identity key and verify on receipt (origin
    # authentication for the `origin` field of delivered messages).
    strict_signing: bool = True

    def __post_init__(self) -> None:
        for field in ("degree", "degree_low", "degree_high"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DegreeOrderError(f"gossip.{field}={value!r}: must be an int")
        if not 1 <= self.degree_low <= self.degree <= self.degree_high <= 64:
            raise DegreeOrderError(
                f"gossip degrees low={self.degree_low} degree={self.degree} "
                f"high={self.degree_high}: need 1 <= low <= degree <= high <= 64"
            )
        if isinstance(self.heartbeat_interval_s, bool) or not isinstance(
            self.heartbeat_interval_s, int
        ):
            raise BoundOutOfRange(
                f"gossip.heartbeat_interval_s={self.heartbeat_interval_s!r}: must be an int"
            )
        _check_range("gossip.heartbeat_interval_s", self.heartbeat_interval_s, 1, 60)
        if not self.protocols:
            raise InvalidName("gossip.protocols: offer at least one meshsub version")
        for proto in self.protocols:
            if proto not in KNOWN_MESHSUB_PROTOCOLS:
                raise InvalidName(
                    f"gossip.protocols: {proto!r} is not one of {KNOWN_MESHSUB_PROTOCOLS}"
                )
        if len(set(self.protocols)) != len(self.protocols):
            raise DuplicateName(f"gossip.protocols lists a version twice: {self.protocols}")
        _check_range("gossip.seen_ttl_s", self.seen_ttl_s, 1, TIMEOUT_S_CEILING)
        _check_range("gossip.seen_max_entries", self.seen_max_entries, 16, SEEN_ENTRIES_CEILING)
        if self.spam_limit_per_s is not None:
            _check_range("gossip.spam_limit_per_s", self.spam_limit_per_s, 100.0, 1e6)


@dataclasses.dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Redial delays: attempt k waits min(cap_s, base_s * 2**k), scaled by a uniform factor in
    [1 - jitter, 1] drawn from the host's injected `random.Random` (so a swarm that lost the same
    peer does not redial it in lockstep)."""

    base_s: float = 0.5
    cap_s: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for field in ("base_s", "cap_s"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BackoffOrderError(f"reconnect.{field}={value!r}: must be a number")
        if not 0 < self.base_s <= self.cap_s <= TIMEOUT_S_CEILING:
            raise BackoffOrderError(
                f"reconnect base_s={self.base_s} cap_s={self.cap_s}: "
                f"need 0 < base_s <= cap_s <= {TIMEOUT_S_CEILING:g}"
            )
        if isinstance(self.jitter, bool) or not 0 <= self.jitter < 1:
            raise BackoffOrderError(f"reconnect.jitter={self.jitter!r}: need 0 <= jitter < 1")


@dataclasses.dataclass(frozen=True, slots=True)
class ScoreConfig:
    """Local peer scores (ours, independent of the library's GossipSub scorer).

    A peer starts at 0; each rejected message or request costs its penalty; the score recovers
    towards 0 by `recovery_per_s` points per second. Below `ban_threshold` the peer is disconnected
    and banned for `ban_duration_s` (its connections are closed on arrival, its messages dropped),
    after which it starts again from 0."""

    ban_threshold: int = -100
    recovery_per_s: float = 1.0
    ban_duration_s: float = 600.0
    max_peers: int = 4096
    # Penalty for protocol violations the host detects itself (oversized or malformed frames,
    # messages on an unknown topic).
    protocol_violation_penalty: int = 20

    def __post_init__(self) -> None:
        _check_range("score.ban_threshold", self.ban_threshold, -1e9, -1)
        _check_range("score.recovery_per_s", self.recovery_per_s, 0, 1e6)
        _check_positive_s("score.ban_duration_s", self.ban_duration_s)
        _check_range("score.max_peers", self.max_peers, 16, PEER_TABLE_CEILING)
        _check_range("score.protocol_violation_penalty", self.protocol_violation_penalty, 0, 1e9)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """Connection targets, limits and discovery.

    The host keeps at least `target_connections` peers connected when it knows enough peers:
    bootstrap peers are always redialled (with backoff) while not connected; other known peers are
    dialled while below the target; peer exchange asks connected peers for samples of the peers
    they know while below the target. `max_connections` is passed to the library's connection
    manager, which prunes above it."""

    target_connections: int = 8
    max_connections: int = 64
    max_known_peers: int = 1024
    max_dials_in_flight: int = 8
    dial_timeout_s: float = 10.0
    maintain_interval_s: float = 1.0
    pex_interval_s: float = 5.0
    pex_sample_size: int = 16
    # A non-bootstrap peer that failed this many dials in a row is forgotten.
    max_dial_failures: int = 8

    def __post_init__(self) -> None:
        for field in ("target_connections", "max_connections"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConnectionLimitOrderError(f"connections.{field}={value!r}: must be an int")
        if not 1 <= self.target_connections <= self.max_connections <= MAX_CONNECTIONS_CEILING:
            raise ConnectionLimitOrderError(
                f"connections target={self.target_connections} max={self.max_connections}: "
                f"need 1 <= target <= max <= {MAX_CONNECTIONS_CEILING}"
            )
        _check_range("connections.max_known_peers", self.max_known_peers, 1, PEER_TABLE_CEILING)
        _check_range("connections.max_dials_in_flight", self.max_dials_in_flight, 1, 256)
        _check_positive_s("connections.dial_timeout_s", self.dial_timeout_s)
        _check_positive_s("connections.maintain_interval_s", self.maintain_interval_s)
        _check_positive_s("connections.pex_interval_s", self.pex_interval_s)
        _check_range("connections.pex_sample_size", self.pex_sample_size, 1, PEX_SAMPLE_CEILING)
        _check_range("connections.max_dial_failures", self.max_dial_failures, 1, 1_000_000)


def _parse_multiaddr(kind: str, text: str) -> multiaddr.Multiaddr:
    if not isinstance(text, str):
        raise InvalidAddress(f"{kind} {text!r}: must be a multiaddr string")
    try:
        addr = multiaddr.Multiaddr(text)
    except (MultiaddrError, ValueError, TypeError) as exc:
        raise InvalidAddress(f"{kind} {text!r}: not a multiaddr ({exc})") from None
    protocols = [p.name for p in addr.protocols()]
    if (
        len(protocols) < 2
        or protocols[0] not in ("ip4", "ip6", "dns4", "dns6")
        or (protocols[1] != "tcp")
    ):
        raise InvalidAddress(f"{kind} {text!r}: only /ip4|ip6|dns4|dns6/<host>/tcp/<port> is used")
    return addr


@dataclasses.dataclass(frozen=True, slots=True)
class HostConfig:
    """Everything `open_host` needs. Build it once at start-up; it is immutable and valid."""

    identity: IdentityKey = dataclasses.field(repr=False)
    listen_addrs: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    bootstrap: tuple[str, ...] = ()
    # yamux: see p2p/README.md (mplex breaks Noise sessions under load in py-libp2p 0.8.1).
    muxer: Muxer = Muxer.YAMUX
    topics: tuple[TopicConfig, ...] = ()
    protocols: tuple[ProtocolConfig, ...] = ()
    gossip: GossipConfig = GossipConfig()
    reconnect: BackoffConfig = BackoffConfig()
    score: ScoreConfig = ScoreConfig()
    connections: ConnectionConfig = ConnectionConfig()
    # Default deadline of `request()`; also the deadline for a caller to send its whole request.
    request_timeout_s: float = 10.0
    # Inbound requests handled at once; more are answered "busy" at once (never queued).
    max_inbound_requests: int = 64
    # Bound on the clean shutdown (closing every connection); after it, sockets are dropped.
    close_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.identity, IdentityKey):
            raise ConfigError(
                f"identity: expected ledger.signing.IdentityKey, got {type(self.identity).__name__}"
            )
        if not isinstance(self.muxer, Muxer):
            try:
                object.__setattr__(self, "muxer", Muxer(self.muxer))
            except ValueError:
                raise ConfigError(
                    f"muxer={self.muxer!r}: must be one of {[m.value for m in Muxer]}"
                ) from None
        if not self.listen_addrs:
            raise InvalidAddress("listen_addrs: listen on at least one address")
        for text in self.listen_addrs:
            addr = _parse_multiaddr("listen address", text)
            if "p2p" in [p.name for p in addr.protocols()]:
                raise InvalidAddress(f"listen address {text!r}: must not contain /p2p/")
        own = peer_id_of(self.identity.public)
        seen_bootstrap: set[str] = set()
        for text in self.bootstrap:
            addr = _parse_multiaddr("bootstrap address", text)
            try:
                peer = addr.get_peer_id()
            except (MultiaddrError, ValueError):
                peer = None
            if not peer:
                raise InvalidAddress(f"bootstrap address {text!r}: must end in /p2p/<peer id>")
            if peer == own:
                raise InvalidAddress(f"bootstrap address {text!r}: names this node itself")
            if text in seen_bootstrap:
                raise DuplicateName(f"bootstrap address {text!r} is listed twice")
            seen_bootstrap.add(text)
        names = [t.name for t in self.topics]
        if len(set(names)) != len(names):
            raise DuplicateName(f"topics: a topic is listed twice: {names}")
        pids = [p.protocol_id for p in self.protocols]
        if len(set(pids)) != len(pids):
            raise DuplicateName(f"protocols: a protocol id is listed twice: {pids}")
        if PEX_PROTOCOL_ID in pids:
            raise DuplicateName(f"protocols: {PEX_PROTOCOL_ID} is the host's own peer exchange")
        _check_positive_s("request_timeout_s", self.request_timeout_s)
        _check_range("max_inbound_requests", self.max_inbound_requests, 1, 65536)
        _check_positive_s("close_timeout_s", self.close_timeout_s)

    @property
    def peer_id(self) -> str:
        """This node's libp2p peer id (derived from the identity key)."""
        return peer_id_of(self.identity.public)

    def topic(self, name: str) -> TopicConfig | None:
        """The topic's configuration, or None if it is not configured."""
        for topic in self.topics:
            if topic.name == name:
                return topic
        return None

    def protocol(self, protocol_id: str) -> ProtocolConfig | None:
        """The protocol's configuration, or None if it is not configured."""
        for proto in self.protocols:
            if proto.protocol_id == protocol_id:
                return proto
        return None
