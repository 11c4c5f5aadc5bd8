"""The libp2p host: TCP + Noise + mplex/yamux, GossipSub with validators and local peer scores,
bounded request/response, bootstrap, reconnection with backoff and peer exchange.

Theory of operation (see p2p/README.md for the why and the figures):

* `open_host(config)` builds a py-libp2p host whose key is the node's identity key (so the peer
  id is derived from it), starts it listening, starts Pubsub + GossipSub with the overrides the
  library needs, and runs one maintenance task (redials, peer exchange, bans). Leaving the
  `async with` closes every connection *inside* the library's `run()` (so remotes see us leave at
  once), then stops the services one after the other.
* Gossip: `subscribe(topic, validator)` returns a bounded trio receive channel. Every inbound
  message runs through the host's check (one topic, configured, size) and then the validator, a
  plain function returning `ACCEPT`, `Ignore(...)` or `Reject(reason, penalty)`. Only accepted
  messages are delivered and forwarded; a rejection is logged and costs the forwarding peer score,
  and a peer whose score falls below the ban threshold is disconnected and banned for a while.
  A full delivery channel drops the message for this node (it is still forwarded: the network did
  nothing wrong) and counts it in `metrics.gossip_dropped`.
* Request/response: one tagged, length-prefixed frame each way per request, both bounded by the
  protocol's configuration, on one stream per peer and protocol that carries many requests at
  once (p2p/channel.py) and stays open while it is used (STREAM_IDLE_S). Handlers are
  `async (peer, request) -> response`, run concurrently; raising `RemoteProtocolError` refuses the
  request with an error frame and penalises the caller.

Nothing here blocks the trio thread: every wait is a trio wait, and validators and handlers must
keep it that way (push CPU-heavy or blocking work to `trio.to_thread.run_sync`).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import logging
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import multiaddr
import trio
from google.protobuf.message import DecodeError as ProtobufDecodeError
from libp2p import new_host
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError, ValidationError
from libp2p.network.config import ConnectionConfig as Libp2pConnectionConfig
from libp2p.network.config import RetryConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub import gossipsub as _gossipsub_module
from libp2p.pubsub import pubsub as _pubsub_module
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.rcmgr import ResourceManager, new_resource_manager
from libp2p.rcmgr.connection_limits import ConnectionLimits
from libp2p.rcmgr.manager import ResourceLimits
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from ledger.domains import Domain, digest_parts
from ledger.errors import DecodeError
from p2p import framing
from p2p.channel import IN_FLIGHT_MAX, RequestChannel, end_stream
from p2p.config import PEX_PROTOCOL_ID, HostConfig, Muxer, ProtocolConfig, TopicConfig
from p2p.errors import (
    HostNotRunning,
    MessageTooLarge,
    P2PError,
    PeerUnreachable,
    RemoteProtocolError,
    RequestRejected,
    RequestTimeout,
    UnknownProtocol,
    UnknownTopic,
)
from p2p.identity import keypair_of, public_key_of
from p2p.metrics import HostMetrics
from p2p.peers import PeerBook, PeerScores, PeerSource, backoff_delay_s
from p2p.pex import PexAnswer, build_answer, parse_answer, usable_addr

logger = logging.getLogger(__name__)

# --- validator verdicts ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Accept:
    """Deliver the message to the node and forward it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Ignore:
    """Neither deliver nor forward, without blaming the sender (a duplicate in substance, a message
    for a height we are not at yet...). `reason` is a short code counted in the metrics."""

    reason: str = "ignored"


@dataclasses.dataclass(frozen=True, slots=True)
class Reject:
    """Neither deliver nor forward, and penalise the peer that sent it by `penalty` points.
    `reason` is a short code (counted per reason in the metrics: keep the vocabulary small);
    `detail` goes to the log only."""

    reason: str
    penalty: int
    detail: str = ""

    def __post_init__(self) -> None:
        if self.penalty < 0:
            raise ValueError("a penalty is a non-negative number of points")


ACCEPT = Accept()
Verdict = Accept | Ignore | Reject
# (topic, peer id of the peer that sent it to us, payload) -> verdict. Must not block or await.
Validator = Callable[[str, str, bytes], Verdict]
# (peer id of the caller, request payload) -> response payload.
Handler = Callable[[str, bytes], Awaitable[bytes]]


@dataclasses.dataclass(frozen=True, slots=True)
class GossipMessage:
    """An accepted gossip message. `origin` is the peer that published it (authenticated by the
    message signature when `gossip.strict_signing`); `message_id` is its content address."""

    topic: str
    data: bytes
    origin: str
    message_id: bytes


def gossip_message_id(msg: rpc_pb2.Message) -> bytes:
    """Content address of a pubsub message: BLAKE3 under Domain.GOSSIP_ID of its topics and data.

    Not the library default (origin + seqno): a node restarted with the same identity restarts its
    seqno counter at int(time.time()), so its new messages would collide with its old ones and be
    dropped as already seen."""
    return digest_parts(
        Domain.GOSSIP_ID,
        len(msg.topicIDs).to_bytes(4, "big"),
        *(t.encode() for t in msg.topicIDs),
        msg.data,
    )


# --- bounded seen cache (replaces the library's unbounded one, which also runs a thread) ---------


class BoundedSeenCache:
    """Message ids seen within `ttl_s`, at most `max_entries` (oldest evicted first).

    Same interface as the library's `LastSeenCache` (`add`, `has`, `length`, `stop`), without its
    background OS thread and with a hard size bound. `clock` returns seconds (trio's clock)."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: collections.OrderedDict[bytes, float] = collections.OrderedDict()

    def _expire(self, now: float) -> None:
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now and len(self._expiry) <= self._max_entries:
                break
            del self._expiry[key]

    def add(self, key: bytes) -> bool:
        """Remember `key`; True if it was new."""
        now = self._clock()
        self._expire(now)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self.ttl
        self._expire(now)
        return True

    def has(self, key: bytes) -> bool:
        """True if `key` was seen within the TTL."""
        expiry = self._expiry.get(key)
        return expiry is not None and expiry > self._clock()

    def length(self) -> int:
        """Number of remembered ids."""
        return len(self._expiry)

    def stop(self) -> None:
        """No thread to stop (interface compatibility)."""


# --- library patches: two costs py-libp2p pays per pubsub RPC ------------------------------------

# Every pubsub RPC carries its sender's signed peer record, and py-libp2p checks it (an Ed25519
# verification, twice for an RPC with control messages) on every RPC it reads, and rebuilds its own
# listen addresses (parsing multiaddrs) for every RPC it sends. At 300 peers on two cores these were
# about 8 % of an operator process's CPU in one sampled profile (p2p/README.md). A host of ours
# verifies a peer's record once while its bytes stay the same, and lists its addresses once it
# listens.
_RECORDS_PER_HOST = 1024
_RECORD_OWNERS: weakref.WeakKeyDictionary[Any, dict[ID, bytes]] = weakref.WeakKeyDictionary()
_consume_record = _pubsub_module.maybe_consume_signed_record


def _consume_record_once(msg: rpc_pb2.RPC, host: Any, peer_id: ID) -> bool:
    """The library's check of an RPC's signed peer record, skipped for a record this host
    already accepted from this peer (same bytes); the library's own for other hosts."""
    accepted = _RECORD_OWNERS.get(host)
    if accepted is None or not msg.HasField("senderRecord"):
        return _consume_record(msg, host, peer_id)
    record = msg.senderRecord
    if accepted.get(peer_id) == record:
        return True
    if not _consume_record(msg, host, peer_id):
        return False
    accepted.pop(peer_id, None)
    accepted[peer_id] = record
    if len(accepted) > _RECORDS_PER_HOST:
        del accepted[next(iter(accepted))]  # the least recently changed
    return True


_pubsub_module.maybe_consume_signed_record = _consume_record_once  # type: ignore[assignment]
_gossipsub_module.maybe_consume_signed_record = _consume_record_once  # type: ignore[assignment]


def _listed_once(
    get_addrs: Callable[[], list[multiaddr.Multiaddr]],
) -> Callable[[], list[multiaddr.Multiaddr]]:
    """`get_addrs` remembered from its first non-empty answer (the addresses a host listens
    on do not change while it runs)."""
    listed: list[multiaddr.Multiaddr] = []

    def cached() -> list[multiaddr.Multiaddr]:
        if not listed:
            listed.extend(get_addrs())
        return list(listed)

    return cached


# --- library subclasses: the smallest overrides that make it bounded and ours --------------------


class _Pubsub(Pubsub):
    """Pubsub whose validation and delivery go through the P2PHost, with a bounded seen cache."""

    def __init__(self, host: Any, router: GossipSub, owner: P2PHost, **kwargs: Any) -> None:
        super().__init__(host, router, **kwargs)
        # The library's cache runs a sweeping OS thread per Pubsub that nobody stops; stop it and
        # replace the cache.
        self.seen_messages.stop()
        gossip = owner.config.gossip
        self.seen_messages = BoundedSeenCache(  # type: ignore[assignment]
            gossip.seen_ttl_s, gossip.seen_max_entries, trio.current_time
        )
        self._owner = owner

    async def validate_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        # Replaces the library's boolean validators and its validation cache: the cache would
        # answer a re-sent invalid message from memory, so its sender would never pay for it.
        if not self._owner._check_gossip(msg_forwarder, msg):
            raise ValidationError("rejected by the host's validator")

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        self._owner._deliver(publish_message)

    async def stream_handler(self, stream: INetStream) -> None:
        # The library ends a peer's pubsub stream on read errors and oversized RPCs, but an RPC
        # that does not parse escapes its handler and stops the whole host (seen at 300 peers
        # under load). It comes from one peer: end that stream as the library does for the other
        # errors, and penalise the peer.
        try:
            await super().stream_handler(stream)
        except ProtobufDecodeError as exc:
            peer_id = stream.muxed_conn.peer_id
            self._owner.metrics.gossip_broken_streams += 1
            self._owner._penalise(
                peer_id.to_base58(),
                self._owner.config.score.protocol_violation_penalty,
                f"pubsub: {type(exc).__name__}: {exc}",
            )
            with suppress(BaseLibp2pError, OSError):
                await stream.reset()
            self._handle_dead_peer(peer_id)


class _GossipSub(GossipSub):
    """GossipSub whose adaptive-gossip bookkeeping lists stay bounded with adaptive gossip off, and
    which tells the host when its mesh may have changed (so `wait_until` re-checks)."""

    on_mesh_change: Callable[[], None] = staticmethod(lambda: None)

    def mesh_heartbeat(self) -> Any:
        result = super().mesh_heartbeat()
        self.on_mesh_change()
        return result

    async def handle_graft(self, graft_msg: rpc_pb2.ControlGraft, sender_peer_id: ID) -> None:
        await super().handle_graft(graft_msg, sender_peer_id)
        self.on_mesh_change()

    async def handle_prune(self, prune_msg: rpc_pb2.ControlPrune, sender_peer_id: ID) -> None:
        await super().handle_prune(prune_msg, sender_peer_id)
        self.on_mesh_change()

    def _periodic_security_cleanup(self) -> None:
        super()._periodic_security_cleanup()
        # With adaptive gossip off nothing prunes these: one float per forwarded message and per
        # connection event, forever.
        self.recent_message_deliveries.clear()
        self.recent_peer_connections.clear()
        self.recent_peer_disconnections.clear()


class _Notifee(INotifee):
    """Connection events -> P2PHost (kept cheap: the swarm awaits notifees inline)."""

    def __init__(self, owner: P2PHost) -> None:
        self._owner = owner

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._owner._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._owner._on_disconnected(conn.muxed_conn.peer_id)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


@dataclasses.dataclass(slots=True)
class _Subscription:
    config: TopicConfig
    validator: Validator
    send: trio.MemorySendChannel[GossipMessage]


@dataclasses.dataclass(slots=True)
class _Service:
    config: ProtocolConfig
    handler: Handler


# Overhead of one pubsub RPC frame beyond the message payload: protobuf fields, signature, key,
# the signed peer record attached to every RPC, and control messages.
_RPC_OVERHEAD_BYTES = 64 * 1024
# A connection that lasted this long was a working one: its loss resets the redial backoff. A
# shorter one counts as a failed dial (a peer that accepts and drops us must not be redialled in a
# tight loop).
_STABLE_CONNECTION_S = 10.0
# How long the library's peerstore keeps addresses we hand it for one dial.
_PEERSTORE_ADDR_TTL_S = 120
# Request streams are long-lived (p2p/channel.py): opening one costs a muxer round trip and a
# protocol selection, and under load that is where requests ran out of time. A server
# closes a stream that carried no request for STREAM_IDLE_S; a caller stops sending on a channel
# idle for half that time, so that the server's close does not race a new request.
STREAM_IDLE_S = 30.0
# Peer-exchange protocol bounds: an empty request; the answer's own encoding bound.
_PEX_PROTOCOL = ProtocolConfig(PEX_PROTOCOL_ID, 0, PexAnswer.MAX_BYTES)


def _muxer_options(preferred: Muxer) -> dict[TProtocol, Any]:
    yamux = (TProtocol(YAMUX_PROTOCOL_ID), Yamux)
    mplex = (TProtocol(MPLEX_PROTOCOL_ID), Mplex)
    order = (mplex, yamux) if preferred is Muxer.MPLEX else (yamux, mplex)
    return dict(order)


def _failure_kind(exc: BaseException) -> str:
    """A bounded name for why a stream did not open: the exception's class and its cause's."""
    cause = exc.__cause__
    kind = type(exc).__name__
    return kind if cause is None else f"{kind} <- {type(cause).__name__}"


# Connections to one peer: two hosts dialling each other at once open two.
_CONNECTIONS_PER_PEER = 2


def _resource_manager(max_connections: int) -> ResourceManager:
    """py-libp2p's resource manager with its connection caps derived from ours.

    The library's default caps are fixed (256 established inbound, 64 handshakes pending) whatever
    the host's `max_connections`: a validator of a 300-peer network refused every dial past the
    256th, and those refusals reach neither our code nor the library's counters, only the dialler
    as a failed stream. The hard caps sit a margin above `max_connections`, so that the library's
    connection manager prunes at `max_connections` first, as configured."""
    hard_cap = max_connections + max(16, max_connections // 4)
    limits = ConnectionLimits(
        max_pending_inbound=max(64, max_connections // 2),
        max_pending_outbound=max(64, max_connections // 2),
        max_established_inbound=hard_cap,
        max_established_outbound=hard_cap,
        max_established_per_peer=_CONNECTIONS_PER_PEER,
        max_established_total=hard_cap,
    )
    # The manager's own connection count includes connections still being upgraded.
    return new_resource_manager(
        limits=ResourceLimits(max_connections=2 * hard_cap), connection_limits=limits
    )


def _peer_text(peer: ID) -> str:
    return peer.to_base58()


class P2PHost:
    """A running libp2p host. Create it with `open_host(config)`; use it only inside that block."""

    def __init__(
        self,
        config: HostConfig,
        *,
        rng: random.Random | None = None,
        metrics: HostMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else HostMetrics()
        self._rng = rng if rng is not None else random.Random()
        self._scores = PeerScores(config.score)
        self._book = PeerBook(config.connections.max_known_peers)
        self._subs: dict[str, _Subscription] = {}
        self._services: dict[str, _Service] = {}
        self._dialing: set[str] = set()
        self._connected_since: dict[str, float] = {}
        self._changed = trio.Event()
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._running = False
        self._closing = False  # set once we close the library's host (see _library_run)
        self._next_pex_s = 0.0
        self._inbound = trio.Semaphore(config.max_inbound_requests)
        # Request channels by (peer, protocol), and the openings in progress.
        self._channels: dict[tuple[str, str], RequestChannel] = {}
        self._openings: dict[tuple[str, str], _Opening] = {}

        keypair = keypair_of(config.identity)
        # Noise only: the library also offers TLS, secio and *plaintext* by default; a dialer could
        # pick plaintext, whose handshake proves nothing about the claimed peer id.
        security = {
            NOISE_PROTOCOL_ID: NoiseTransport(
                keypair, noise_privkey=create_x25519_key_pair().private_key
            )
        }
        conns = config.connections
        self._lhost = new_host(
            key_pair=keypair,
            sec_opt=security,
            muxer_opt=_muxer_options(config.muxer),
            listen_addrs=[multiaddr.Multiaddr(a) for a in config.listen_addrs],
            connection_config=Libp2pConnectionConfig(
                max_connections=conns.max_connections,
                high_watermark=conns.max_connections,
                # The library's auto-connector dials peerstore entries while below low_watermark;
                # connection upkeep is ours (maintenance loop), so it stays idle.
                low_watermark=0,
                min_connections=0,
                max_connections_per_peer=_CONNECTIONS_PER_PEER,
                dial_timeout=conns.dial_timeout_s,
            ),
            resource_manager=_resource_manager(conns.max_connections),
        )
        _RECORD_OWNERS[self._lhost] = {}
        self._lhost.get_addrs = _listed_once(self._lhost.get_addrs)  # type: ignore[method-assign]
        network = self._lhost.get_network()
        # Redials are ours (one backoff schedule per peer, with jitter from the injected rng):
        # the swarm's own retries (3 per dial) and its 60 s negative cache would stack on top of
        # it and hide a peer that came back. See _dial.
        network.retry_config = RetryConfig(max_retries=0)  # type: ignore[attr-defined]
        self.peer_id = _peer_text(self._lhost.get_id())
        self._my_id = self._lhost.get_id()
        gossip = config.gossip
        self._gossipsub = _GossipSub(
            [TProtocol(p) for p in gossip.protocols],
            gossip.degree,
            gossip.degree_low,
            gossip.degree_high,
            heartbeat_interval=gossip.heartbeat_interval_s,
            adaptive_gossip_enabled=False,
            spam_protection_enabled=gossip.spam_limit_per_s is not None,
            max_messages_per_topic_per_second=gossip.spam_limit_per_s or 10.0,
        )
        self._gossipsub.on_mesh_change = self._notify_change  # type: ignore[method-assign]
        self._pubsub = _Pubsub(
            self._lhost,
            self._gossipsub,
            self,
            seen_ttl=gossip.seen_ttl_s,
            strict_signing=gossip.strict_signing,
            msg_id_constructor=gossip_message_id,
            max_inbound_rpc_size=max((t.max_message_bytes for t in config.topics), default=0)
            + _RPC_OVERHEAD_BYTES,
            allowed_topics=frozenset(t.name for t in config.topics),
        )
        self._lhost.get_network().register_notifee(_Notifee(self))
        self._set_stream_handler(_PEX_PROTOCOL, self._serve_pex)

    # --- observation ----------------------------------------------------------------------------

    @property
    def listen_addrs(self) -> list[str]:
        """Dialable addresses of this host, each ending in /p2p/<peer id> (empty before start)."""
        return [str(a) for a in self._lhost.get_addrs()]

    def connected_peers(self) -> set[str]:
        """Peers with an open connection now."""
        return {_peer_text(p) for p in self._lhost.get_connected_peers()}

    def connect_soon(self, peer: str) -> bool:
        """Dial `peer` in the background because requests to it will follow (a co-member of a
        committee); nothing to do for the caller on failure (the requests dial again). Each pair
        dials once: only the side whose peer id sorts first dials, the other waits for it (two
        dials at once would cost two handshakes and two connections). Returns True if a dial
        started; False if not needed or not ours (connected, dialling, banned, the other side
        dials, no known address)."""
        self._require_running()
        if peer <= self.peer_id or peer in self._dialing:
            return False
        entry = self._book.get(peer)
        if entry is None or not entry.addrs or self._scores.is_banned(peer, trio.current_time()):
            return False
        if ID.from_base58(peer) in self._lhost.get_network().connections:
            return False
        self.metrics.dials_ahead += 1
        self._dialing.add(peer)
        assert self._nursery is not None
        self._nursery.start_soon(self._dial, peer, entry.addrs)
        return True

    def known_peers(self) -> set[str]:
        """Peers in the address book (bootstrap, once connected, or learnt by peer exchange)."""
        return {e.peer_id for e in self._book.peers()}

    def score(self, peer: str) -> float:
        """The peer's local score now (0 = neutral)."""
        return self._scores.score(peer, trio.current_time())

    def is_banned(self, peer: str) -> bool:
        """True while the peer serves a ban."""
        return self._scores.is_banned(peer, trio.current_time())

    def mesh_peers(self, topic: str) -> set[str]:
        """Peers in this host's GossipSub mesh for `topic`."""
        return {_peer_text(p) for p in self._gossipsub.mesh.get(topic, set())}

    def pubsub_peers(self) -> set[str]:
        """Connected peers the library holds a pubsub stream to (candidates for any mesh)."""
        return {_peer_text(p) for p in self._pubsub.peers}

    def topic_peers(self, topic: str) -> set[str]:
        """Peers that told this host they subscribe to `topic` (candidates for its mesh)."""
        return {_peer_text(p) for p in self._pubsub.peer_topics.get(topic, set())}

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` is true; it is re-checked after every connection, ban,
        delivery or rejection event. Bound it with `trio.fail_after`."""
        while not predicate():
            await self._changed.wait()

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- gossip ---------------------------------------------------------------------------------

    async def subscribe(
        self, topic: str, validator: Validator
    ) -> trio.MemoryReceiveChannel[GossipMessage]:
        """Join `topic`; accepted messages arrive on the returned channel (bounded by the topic's
        `delivery_queue_len`; when full, new messages are dropped for this node and counted).

        Raises UnknownTopic if the topic is not configured, P2PError if already subscribed,
        HostNotRunning outside `open_host`."""
        self._require_running()
        config = self.config.topic(topic)
        if config is None:
            raise UnknownTopic(f"topic {topic!r} is not in HostConfig.topics")
        if topic in self._subs:
            raise P2PError(f"already subscribed to {topic!r}")
        send, receive = trio.open_memory_channel[GossipMessage](config.delivery_queue_len)
        self._subs[topic] = _Subscription(config, validator, send)
        await self._pubsub.subscribe(topic)
        return receive

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish `data` on `topic` (it is not delivered back to this node).

        Payloads must be unique within `gossip.seen_ttl_s`: message ids are content addresses, so
        the same bytes again are a duplicate. Raises UnknownTopic, MessageTooLarge (above the
        topic's `max_message_bytes`), HostNotRunning."""
        self._require_running()
        config = self.config.topic(topic)
        if config is None:
            raise UnknownTopic(f"topic {topic!r} is not in HostConfig.topics")
        if len(data) > config.max_message_bytes:
            raise MessageTooLarge(f"gossip on {topic}", len(data), config.max_message_bytes)
        await self._pubsub.publish(topic, data)
        self.metrics.gossip_out_messages[topic] += 1
        self.metrics.gossip_out_bytes[topic] += len(data)

    def _check_gossip(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """The library's validation step (sync, on the trio thread). True = deliver and forward."""
        if forwarder == self._my_id:
            return True  # our own publish, already checked by publish()
        peer = _peer_text(forwarder)
        now = trio.current_time()
        if self._scores.is_banned(peer, now):
            return False
        topics = list(msg.topicIDs)
        topic = topics[0] if len(topics) == 1 else "?"
        sub = self._subs.get(topic)
        if sub is None:
            self._reject(
                peer, topic, Reject("bad-topic", self.config.score.protocol_violation_penalty)
            )
            return False
        if len(msg.data) > sub.config.max_message_bytes:
            self._reject(
                peer,
                topic,
                Reject(
                    "too-large",
                    self.config.score.protocol_violation_penalty,
                    f"{len(msg.data)} > {sub.config.max_message_bytes} bytes",
                ),
            )
            return False
        try:
            verdict = sub.validator(topic, peer, bytes(msg.data))
        except Exception:  # a validator bug is ours, not the peer's: ignore, loudly
            logger.exception("gossip validator for %s raised; message ignored", topic)
            verdict = Ignore("validator-error")
        if isinstance(verdict, Accept):
            self.metrics.gossip_in_messages[topic] += 1
            self.metrics.gossip_in_bytes[topic] += len(msg.data)
            return True
        if isinstance(verdict, Reject):
            self._reject(peer, topic, verdict)
        else:
            self.metrics.gossip_ignored[topic] += 1
        return False

    def _reject(self, peer: str, topic: str, verdict: Reject) -> None:
        self.metrics.gossip_rejected[(topic, self.metrics.reason_key(verdict.reason))] += 1
        outcome = self._scores.penalise(peer, verdict.penalty, trio.current_time())
        logger.warning(
            "rejected gossip on %s from %s: %s%s (penalty %d, score now %.0f)",
            topic,
            peer,
            verdict.reason,
            f" [{verdict.detail}]" if verdict.detail else "",
            verdict.penalty,
            outcome.score,
        )
        if outcome.banned_now:
            self._start_ban(peer)
        self._notify_change()

    def _deliver(self, msg: rpc_pb2.Message) -> None:
        origin = _peer_text(ID(msg.from_id))
        if origin == self.peer_id:
            return
        for topic in msg.topicIDs:
            sub = self._subs.get(topic)
            if sub is None:
                continue
            item = GossipMessage(topic, bytes(msg.data), origin, gossip_message_id(msg))
            try:
                sub.send.send_nowait(item)
            except trio.WouldBlock:
                self.metrics.gossip_dropped[topic] += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # the node closed its receive side: it no longer wants them
        self._notify_change()

    # --- request / response ---------------------------------------------------------------------

    def set_handler(
        self,
        protocol_id: str,
        handler: Handler,
        max_request_bytes: int | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        """Serve `protocol_id` with `handler(peer, request) -> response`.

        The bounds default to the protocol's configuration and may only tighten it. The handler
        raises RemoteProtocolError to refuse a request (error frame to the caller, which loses
        `penalty` points); any other exception is logged and answered "internal-error" without
        penalty. Raises UnknownProtocol if the protocol is not configured, P2PError if it is
        already served or a bound is above the configured one."""
        config = self.config.protocol(protocol_id)
        if config is None:
            raise UnknownProtocol(f"protocol {protocol_id!r} is not in HostConfig.protocols")
        if protocol_id in self._services:
            raise P2PError(f"protocol {protocol_id!r} already has a handler")
        req = config.max_request_bytes if max_request_bytes is None else max_request_bytes
        resp = config.max_response_bytes if max_response_bytes is None else max_response_bytes
        if not (0 <= req <= config.max_request_bytes and 0 <= resp <= config.max_response_bytes):
            raise P2PError(
                f"{protocol_id}: handler bounds ({req}, {resp}) must be within the configured "
                f"({config.max_request_bytes}, {config.max_response_bytes})"
            )
        self._set_stream_handler(ProtocolConfig(protocol_id, req, resp), handler)

    def _set_stream_handler(self, config: ProtocolConfig, handler: Handler) -> None:
        self._services[config.protocol_id] = _Service(config, handler)

        async def on_stream(stream: INetStream) -> None:
            await self._serve(stream, config, handler)

        self._lhost.set_stream_handler(TProtocol(config.protocol_id), on_stream)

    async def _serve(self, stream: INetStream, config: ProtocolConfig, handler: Handler) -> None:
        """Answer the requests of one inbound stream, each in its own task, until the caller
        closes the stream or leaves it idle for STREAM_IDLE_S; then close it cleanly once every
        request read has been answered (the caller counts on that: see p2p/channel.py)."""
        peer = _peer_text(stream.muxed_conn.peer_id)
        write_lock = trio.Lock()
        clean = False

        async def write(frame: bytes) -> None:
            async with write_lock:
                await stream.write(frame)

        try:
            async with trio.open_nursery() as answers:
                clean = await self._read_requests(
                    stream, peer, config, handler, answers=answers, write=write
                )
        finally:
            await end_stream(stream, clean=clean)

    async def _read_requests(
        self,
        stream: INetStream,
        peer: str,
        config: ProtocolConfig,
        handler: Handler,
        *,
        answers: trio.Nursery,
        write: Callable[[bytes], Awaitable[None]],
    ) -> bool:
        """Read requests and start a task answering each. True: stop cleanly (close the stream
        once the answers are out); False: reset it (broken, late first request, or banned)."""
        pid = config.protocol_id
        first = True
        try:
            while self._running and not self._scores.is_banned(peer, trio.current_time()):
                wait_s = self.config.request_timeout_s if first else STREAM_IDLE_S
                frame: tuple[int, bytes] | None = None
                with trio.move_on_after(wait_s) as waiting:
                    try:
                        frame = await framing.read_frame_or_eof(stream, config.max_request_bytes)
                    except framing.FrameTooLarge as exc:
                        self.metrics.rpc_failures[(pid, "too-large")] += 1
                        self._penalise(
                            peer, self.config.score.protocol_violation_penalty, f"{pid}: {exc}"
                        )
                        # The body was not read: the stream cannot carry another request.
                        error = "request-too-large"
                        await write(framing.encode_response_error(exc.request_id, error))
                        return True
                    except framing.FrameTruncated:
                        return False  # the caller went away mid-request (cancelled): no fault
                if waiting.cancelled_caught:
                    # A late first request: reset. Later, no request for STREAM_IDLE_S (or one
                    # stalled mid-frame): close cleanly once the answers in flight are out; a
                    # request not read to the end is not answered, and the caller sends it again.
                    return not first
                if frame is None:
                    return True  # the caller is done with the stream
                first = False
                request_id, request = frame
                self.metrics.rpc_in_requests[pid] += 1
                self.metrics.rpc_in_bytes[pid] += len(request)
                if len(answers.child_tasks) >= IN_FLIGHT_MAX or not self._take_inbound_slot():
                    self.metrics.rpc_failures[(pid, "busy")] += 1
                    await write(framing.encode_response_error(request_id, "busy"))
                    continue
                answers.start_soon(
                    functools.partial(
                        self._serve_request, peer, config, handler, frame, write=write
                    )
                )
            return False
        except (BaseLibp2pError, OSError) as exc:
            logger.debug("%s stream from %s failed: %r", pid, peer, exc)
            answers.cancel_scope.cancel()
            return False

    def _take_inbound_slot(self) -> bool:
        try:
            self._inbound.acquire_nowait()
        except trio.WouldBlock:
            return False
        return True

    async def _serve_request(
        self,
        peer: str,
        config: ProtocolConfig,
        handler: Handler,
        request: tuple[int, bytes],
        *,
        write: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Answer one request (the inbound slot is already taken; this releases it)."""
        pid = config.protocol_id
        request_id, body = request
        frame: bytes | None = None
        try:
            with trio.move_on_after(self.config.request_timeout_s):
                frame = await self._answer(peer, config, handler, request_id, body)
            if frame is None:
                # The handler took too long: the caller gave up already, but every request read
                # gets an answer before the stream closes.
                self.metrics.rpc_failures[(pid, "handler-timeout")] += 1
                frame = framing.encode_response_error(request_id, "timeout")
            await write(frame)
        except (BaseLibp2pError, OSError) as exc:
            logger.debug("%s answer to %s failed: %r", pid, peer, exc)
        finally:
            self._inbound.release()

    async def _answer(
        self, peer: str, config: ProtocolConfig, handler: Handler, request_id: int, request: bytes
    ) -> bytes:
        """The response frame for one request: the handler's answer, or an error frame."""
        pid = config.protocol_id
        try:
            response = await handler(peer, request)
        except RemoteProtocolError as exc:
            self.metrics.rpc_rejected[(pid, self.metrics.reason_key(exc.reason))] += 1
            self._penalise(peer, exc.penalty, f"{pid}: {exc.reason}")
            return framing.encode_response_error(request_id, exc.reason)
        except Exception:  # a handler bug is ours, not the caller's
            logger.exception("%s handler raised", pid)
            self.metrics.rpc_failures[(pid, "handler-error")] += 1
            return framing.encode_response_error(request_id, "internal-error")
        if len(response) > config.max_response_bytes:
            logger.error(
                "%s handler answered %d bytes, above max_response_bytes=%d",
                pid,
                len(response),
                config.max_response_bytes,
            )
            self.metrics.rpc_failures[(pid, "handler-error")] += 1
            return framing.encode_response_error(request_id, "internal-error")
        return framing.encode_response_ok(request_id, response)

    async def request(
        self, peer: str, protocol_id: str, data: bytes, timeout_s: float | None = None
    ) -> bytes:
        """Send one request to `peer` and return its response payload.

        Raises (caller's action in brackets): UnknownProtocol [configure it]; MessageTooLarge [the
        request is above the protocol's max_request_bytes: shrink it]; PeerUnreachable [no stream:
        try another peer]; RequestTimeout [no full answer in time: retry later or elsewhere];
        RequestRejected [the peer refused: fix the request or ask another peer];
        RemoteProtocolError [the answer broke the protocol; the peer is already penalised: drop
        it]; HostNotRunning."""
        self._require_running()
        pconf = (
            _PEX_PROTOCOL if protocol_id == PEX_PROTOCOL_ID else self.config.protocol(protocol_id)
        )
        if pconf is None:
            raise UnknownProtocol(f"protocol {protocol_id!r} is not in HostConfig.protocols")
        if len(data) > pconf.max_request_bytes:
            raise MessageTooLarge(f"{protocol_id} request", len(data), pconf.max_request_bytes)
        if self._scores.is_banned(peer, trio.current_time()):
            raise PeerUnreachable(peer, "banned")
        try:
            peer_id = ID.from_base58(peer)
        except (ValueError, TypeError, KeyError):
            raise PeerUnreachable(peer, "not a peer id") from None
        timeout_s = self.config.request_timeout_s if timeout_s is None else timeout_s
        self.metrics.rpc_out_requests[protocol_id] += 1
        self.metrics.rpc_out_bytes[protocol_id] += len(data)
        try:
            body = await self._exchange(peer_id, peer, pconf, data, timeout_s)
        except P2PError as exc:
            kind = {
                RequestTimeout: "timeout",
                PeerUnreachable: "unreachable",
                RemoteProtocolError: "remote-error",
            }.get(type(exc), "other")
            self.metrics.rpc_failures[(protocol_id, kind)] += 1
            raise
        try:
            status, payload = framing.decode_response(body)
        except framing.FrameError as exc:
            self.metrics.rpc_failures[(protocol_id, "remote-error")] += 1
            raise self._remote_error(peer, f"{protocol_id}: {exc}") from None
        if status is framing.Status.ERROR:
            assert isinstance(payload, str)
            self.metrics.rpc_failures[(protocol_id, "rejected")] += 1
            raise RequestRejected(peer, protocol_id, payload)
        assert isinstance(payload, bytes)
        return payload

    async def _exchange(
        self, peer_id: ID, peer: str, config: ProtocolConfig, data: bytes, timeout_s: float
    ) -> bytes:
        """The response body of one request, sent on the channel to (peer, protocol)."""
        pid = config.protocol_id
        stage = ["stream"]  # where the time went, if it runs out (metrics.rpc_timeouts_at)
        try:
            with trio.fail_after(timeout_s):
                # A channel that ends before the server read the request (the server closed it
                # as idle, or after refusing another request) is replaced once.
                for _ in range(2):
                    stage[0] = "stream"
                    channel = await self._channel(peer_id, peer, config)
                    body = await channel.request(data, stage)
                    if body is not None:
                        return body
                raise PeerUnreachable(peer, f"{pid}: the stream ended twice before the request")
        except trio.TooSlowError:
            self.metrics.rpc_timeouts_at[(pid, stage[0])] += 1
            raise RequestTimeout(peer, pid, timeout_s) from None

    async def _channel(self, peer_id: ID, peer: str, config: ProtocolConfig) -> RequestChannel:
        """The open channel to (peer, protocol), or the one being opened, or a new one. Raises
        PeerUnreachable if the opening fails."""
        key = (peer, config.protocol_id)
        channel = self._channels.get(key)
        if channel is not None:
            if channel.usable(trio.current_time(), STREAM_IDLE_S / 2):
                self.metrics.rpc_streams_reused[config.protocol_id] += 1
                return channel
            self._retire(key)
        opening = self._openings.get(key)
        if opening is None:
            opening = self._openings[key] = _Opening()
            assert self._nursery is not None
            # In the host's nursery: a caller that times out does not cancel the opening, and
            # the callers that follow (resends above all) wait for it instead of starting another.
            self._nursery.start_soon(self._open_channel, peer_id, peer, config, opening)
        await opening.done.wait()
        if opening.channel is None:
            raise PeerUnreachable(peer, opening.failure)
        return opening.channel

    async def _open_channel(
        self, peer_id: ID, peer: str, config: ProtocolConfig, opening: _Opening
    ) -> None:
        key = (peer, config.protocol_id)
        try:
            if peer_id not in self._lhost.get_network().connections:
                # Not connected: the swarm dials. A request is worth a dial even if the last one
                # failed (callers pace their retries; one failed dial in a loaded moment must not
                # shut a committee member out for the library's 60 s), and the swarm dials the
                # addresses we know (its peerstore forgets them after a TTL; the book does not).
                self._unblock(peer_id)
                entry = self._book.get(peer)
                if entry is not None:
                    self._lhost.get_peerstore().add_addrs(
                        peer_id,
                        [multiaddr.Multiaddr(a) for a in entry.addrs],
                        _PEERSTORE_ADDR_TTL_S,
                    )
            # The library bounds the dial itself; this bounds it with the muxer's stream opening.
            # The channel selects the protocol on the stream without waiting (p2p/channel.py).
            open_timeout_s = 2 * self.config.connections.dial_timeout_s
            with trio.fail_after(open_timeout_s):
                stream = await self._lhost.get_network().new_stream(peer_id)
                stream.set_protocol(TProtocol(config.protocol_id))
        except trio.TooSlowError:
            opening.failure = f"no stream within {open_timeout_s:g} s"
            self.metrics.rpc_stream_failures[(config.protocol_id, "timeout")] += 1
        except (BaseLibp2pError, OSError, ValueError) as exc:
            text = f"no stream: {exc!r}"
            if exc.__cause__ is not None:
                text = f"{text} (cause: {exc.__cause__!r})"
            opening.failure = text
            self.metrics.rpc_stream_failures[(config.protocol_id, _failure_kind(exc))] += 1
        else:
            channel = RequestChannel(
                stream, peer, config, lambda reason: self._remote_error(peer, reason), self.metrics
            )
            self._channels[key] = opening.channel = channel
            self.metrics.rpc_streams_opened[config.protocol_id] += 1
            assert self._nursery is not None
            self._nursery.start_soon(self._run_channel, key, channel)
        finally:
            del self._openings[key]
            opening.done.set()

    async def _run_channel(self, key: tuple[str, str], channel: RequestChannel) -> None:
        try:
            await channel.run()
        finally:
            if self._channels.get(key) is channel:
                del self._channels[key]

    def _retire(self, key: tuple[str, str]) -> None:
        channel = self._channels.pop(key, None)
        if channel is not None:
            channel.retire()

    def _sweep_idle(self, now: float) -> None:
        """Retire the channels idle too long to be used (part of the maintenance pass)."""
        for key, channel in list(self._channels.items()):
            if not channel.usable(now, STREAM_IDLE_S / 2):
                self._retire(key)

    def _remote_error(self, peer: str, reason: str) -> RemoteProtocolError:
        penalty = self.config.score.protocol_violation_penalty
        self._penalise(peer, penalty, reason)
        return RemoteProtocolError(peer, reason, penalty)

    def _penalise(self, peer: str, penalty: int, reason: str) -> None:
        outcome = self._scores.penalise(peer, penalty, trio.current_time())
        logger.warning(
            "penalised %s: %s (penalty %d, score now %.0f)", peer, reason, penalty, outcome.score
        )
        if outcome.banned_now:
            self._start_ban(peer)
        self._notify_change()

    # --- bans, connections, discovery -----------------------------------------------------------

    def _start_ban(self, peer: str) -> None:
        self.metrics.bans += 1
        until = self._scores.banned_until_s(peer, trio.current_time())
        logger.warning("banned %s until t=%.0f s: score below threshold", peer, until or 0.0)
        self._disconnect_soon(peer)

    def _disconnect_soon(self, peer: str) -> None:
        if self._nursery is not None and self._running:
            self._nursery.start_soon(self._disconnect, peer)

    async def _disconnect(self, peer: str) -> None:
        try:
            await self._lhost.disconnect(ID.from_base58(peer))
        except (BaseLibp2pError, OSError) as exc:
            logger.debug("disconnecting %s failed: %r", peer, exc)

    def _on_connected(self, peer_id: ID) -> None:
        peer = _peer_text(peer_id)
        self.metrics.connections_opened += 1
        if self._scores.is_banned(peer, trio.current_time()):
            self.metrics.banned_connections_refused += 1
            self._disconnect_soon(peer)
            return
        self._connected_since.setdefault(peer, trio.current_time())
        self._notify_change()

    def _on_disconnected(self, peer_id: ID) -> None:
        peer = _peer_text(peer_id)
        self.metrics.connections_closed += 1
        if peer_id in self._lhost.get_network().connections:
            return  # another connection to the same peer is still open
        for key in [key for key in self._channels if key[0] == peer]:
            self._channels.pop(key).abort()  # their streams went with the connection
        now = trio.current_time()
        lived_s = now - self._connected_since.pop(peer, now)
        if self._running and not self._scores.is_banned(peer, now):
            # Remember where it listened (learnt by identify) so it can be redialled.
            addrs = self._listen_addrs_of(peer_id)
            if addrs:
                self._book.add(peer, addrs, PeerSource.CONNECTED)
            if lived_s >= _STABLE_CONNECTION_S:
                # A connection that held: redial after base_s (jittered), not at once, since the
                # peer may be restarting.
                self._book.record_success(peer)
                self._book.defer(peer, now + backoff_delay_s(0, self.config.reconnect, self._rng))
            else:
                # Dropped right after it opened (the peer refuses us, e.g. it banned us): back
                # off further each time.
                self._book.record_failure(
                    peer,
                    now,
                    self.config.reconnect,
                    self._rng,
                    self.config.connections.max_dial_failures,
                )
        self._wake.set()
        self._notify_change()

    def _listen_addrs_of(self, peer_id: ID) -> tuple[str, ...]:
        try:
            addrs = self._lhost.get_peerstore().addrs(peer_id)
        except (BaseLibp2pError, KeyError):
            return ()
        # The peerstore's addresses end in /p2p/<id>; the book and peer exchange keep bare ones.
        bare = (str(a).split("/p2p/", 1)[0] for a in addrs)
        return tuple(dict.fromkeys(t for t in bare if usable_addr(t)))

    async def _serve_pex(self, peer: str, request: bytes) -> bytes:
        candidates: list[tuple[bytes, tuple[str, ...]]] = []
        for other in list(self._connected_since):
            if other == peer:
                continue
            entry = self._book.get(other)
            addrs = entry.addrs if entry is not None else ()
            if not addrs:
                addrs = self._listen_addrs_of(ID.from_base58(other))
            try:
                candidates.append((public_key_of(other), addrs))
            except P2PError:
                continue
        answer = build_answer(candidates, self.config.connections.pex_sample_size, self._rng)
        return answer.encode()

    async def _exchange_peers(self, peer: str) -> None:
        try:
            raw = await self.request(peer, PEX_PROTOCOL_ID, b"")
        except P2PError as exc:
            logger.debug("peer exchange with %s failed: %s", peer, exc)
            return
        try:
            answer = PexAnswer.decode(raw)
        except DecodeError as exc:
            self._penalise(peer, self.config.score.protocol_violation_penalty, f"pex: {exc}")
            return
        now = trio.current_time()
        for other, addrs in parse_answer(answer):
            if other != self.peer_id and not self._scores.is_banned(other, now):
                self._book.add(other, addrs, PeerSource.EXCHANGE)
        self._wake.set()

    async def _dial(self, peer: str, addrs: tuple[str, ...]) -> None:
        self.metrics.dials += 1
        self._unblock(ID.from_base58(peer))  # our backoff decided this dial is due
        try:
            with trio.fail_after(self.config.connections.dial_timeout_s):
                await self._lhost.connect(
                    PeerInfo(ID.from_base58(peer), [multiaddr.Multiaddr(a) for a in addrs])
                )
        except (BaseLibp2pError, OSError, ValueError, trio.TooSlowError) as exc:
            self.metrics.dial_failures += 1
            logger.debug("dial %s failed: %r", peer, exc)
            self._book.record_failure(
                peer,
                trio.current_time(),
                self.config.reconnect,
                self._rng,
                self.config.connections.max_dial_failures,
            )
        finally:
            self._dialing.discard(peer)
            self._notify_change()

    def _unblock(self, peer_id: ID) -> None:
        """Lift the library's negative dial cache for `peer_id` (after a failed dial the swarm
        refuses every dial to that peer for 60 s, "recently failed"): we pace dials ourselves."""
        unblock = getattr(self._lhost.get_network(), "unblock_peer", None)
        if unblock is not None:
            unblock(peer_id)

    def _maintain_once(self, nursery: trio.Nursery) -> None:
        """One pass: expire nothing explicitly (scores expire lazily), redial, exchange peers."""
        now = trio.current_time()
        conns = self.config.connections
        connected = self.connected_peers()
        self._sweep_idle(now)
        for peer in connected:
            if self._scores.is_banned(peer, now):
                self._disconnect_soon(peer)
        banned = set(self._scores.banned(now))
        due = self._book.due(now, exclude=connected | self._dialing | banned)
        room = conns.target_connections - len(connected) - len(self._dialing)
        for entry in due:
            if len(self._dialing) >= conns.max_dials_in_flight:
                break
            if entry.source is not PeerSource.BOOTSTRAP:
                if room <= 0:
                    continue
                room -= 1
            self._dialing.add(entry.peer_id)
            nursery.start_soon(self._dial, entry.peer_id, entry.addrs)
        if len(connected) < conns.target_connections and connected and now >= self._next_pex_s:
            self._next_pex_s = now + conns.pex_interval_s
            nursery.start_soon(self._exchange_peers, self._rng.choice(sorted(connected)))

    async def _maintain_loop(self, nursery: trio.Nursery) -> None:
        while True:
            self._wake = trio.Event()
            self._maintain_once(nursery)
            with trio.move_on_after(self.config.connections.maintain_interval_s):
                await self._wake.wait()

    # --- lifecycle ------------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self._running:
            raise HostNotRunning("the host is not running: use it inside `async with open_host()`")

    @asynccontextmanager
    async def _library_run(self, listen: list[multiaddr.Multiaddr]) -> AsyncIterator[None]:
        """The library's run(), minus one shutdown race: its identify handler reads the listening
        socket's address, and close() can close that socket under a handler still running; the
        EBADF then escapes the library's nursery. Once we are closing it means nothing; any other
        error, or this one before closing, goes on."""
        try:
            async with self._lhost.run(listen):
                yield
        except* OSError as group:
            rest = group.subgroup(
                lambda e: (
                    not isinstance(e, BaseExceptionGroup)
                    and getattr(e, "errno", None) != errno.EBADF
                )
            )
            if not self._closing or rest is not None:
                raise

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[P2PHost]:
        for text in self.config.bootstrap:
            addr = multiaddr.Multiaddr(text)
            peer = addr.get_peer_id()
            assert peer is not None  # HostConfig checked it
            bare = str(addr.decapsulate(multiaddr.Multiaddr(f"/p2p/{peer}")))
            self._book.add(peer, (bare,), PeerSource.BOOTSTRAP)
        listen = [multiaddr.Multiaddr(a) for a in self.config.listen_addrs]
        async with (
            self._library_run(listen),
            background_trio_service(self._pubsub),
            background_trio_service(self._gossipsub),
        ):
            await self._pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._running = True
                nursery.start_soon(self._maintain_loop, nursery)
                try:
                    yield self
                finally:
                    self._running = False
                    nursery.cancel_scope.cancel()
            # Close every connection while the library's run() is still active: leaving run()
            # first leaves sockets open and remotes believing we are still there.
            self._closing = True
            with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_timeout_s):
                await self._lhost.close()
            for sub in self._subs.values():
                sub.send.close()


@dataclasses.dataclass(slots=True, eq=False)
class _Opening:
    """A request channel being opened; callers for the same (peer, protocol) wait for it."""

    done: trio.Event = dataclasses.field(default_factory=trio.Event)
    channel: RequestChannel | None = None
    failure: str = ""  # why it failed, if it did


@asynccontextmanager
async def open_host(
    config: HostConfig,
    *,
    rng: random.Random | None = None,
    metrics: HostMetrics | None = None,
) -> AsyncIterator[P2PHost]:
    """Start a host, yield it once listening, close it cleanly on exit.

    `rng` drives backoff jitter and peer sampling (pass a seeded one for reproducible tests);
    `metrics` lets the caller own the counters. Raises OSError if a listen address cannot be bound
    (pick another port). On exit every connection is closed (remotes see the disconnect) within
    `config.close_timeout_s`. Exit hosts of one process one after another, not all at once: the
    library fails when many are torn down concurrently."""
    attach_libp2p_logging()
    host = P2PHost(config, rng=rng, metrics=metrics)
    async with host._run():
        yield host


def attach_libp2p_logging(handler: logging.Handler | None = None) -> None:
    """Make the library's log records reach the application's logging.

    `import libp2p` gives its logger no handler and turns propagation off, so its warnings reach
    stderr through Python's last-resort handler, unformatted. With `handler`, attach it to the
    `libp2p` logger; without, turn propagation back on so the root logger's handlers (the node's
    JSON or human format) format them. Level stays WARNING: the library is chatty below."""
    lib = logging.getLogger("libp2p")
    if handler is not None:
        if handler not in lib.handlers:
            lib.addHandler(handler)
        return
    lib.propagate = True
    if lib.level == logging.NOTSET or lib.level < logging.WARNING:
        lib.setLevel(logging.WARNING)
    # Some library modules pin their own logger below WARNING at import (the auto-connector logs
    # at INFO on every tick); bring them back in line.
    for name, child in list(logging.root.manager.loggerDict.items()):
        if (
            name.startswith("libp2p.")
            and isinstance(child, logging.Logger)
            and logging.NOTSET < child.level < logging.WARNING
        ):
            child.setLevel(logging.WARNING)
