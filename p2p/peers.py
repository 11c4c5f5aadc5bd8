"""Peer bookkeeping with no I/O: local scores and bans, the address book, redial backoff.

Time arrives as `now_s` (the host passes `trio.current_time()`), randomness as a `random.Random`.
Every table is bounded; what gets evicted when one is full is documented on the class.
"""

from __future__ import annotations

import dataclasses
import enum
import random

from p2p.config import BackoffConfig, ScoreConfig


def backoff_delay_s(attempt: int, config: BackoffConfig, rng: random.Random) -> float:
    """Delay before redial number `attempt` (0 = first retry after a failure or a loss):
    min(cap_s, base_s * 2**attempt) scaled by a uniform factor in [1 - jitter, 1]."""
    # 2**attempt overflows a float past ~1000; the cap is reached long before.
    exponent = min(max(attempt, 0), 64)
    raw = min(config.cap_s, config.base_s * (2.0**exponent))
    return raw * (1.0 - config.jitter * rng.random())


@dataclasses.dataclass(slots=True)
class _Score:
    points: float
    updated_s: float
    banned_until_s: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PenaltyOutcome:
    """What a penalty did: the peer's score after it, and whether it started a ban now."""

    score: float
    banned_now: bool


class PeerScores:
    """Local scores: 0 is neutral, penalties subtract, scores recover linearly towards 0.

    A peer whose score falls below `ban_threshold` is banned until `now_s + ban_duration_s`; when
    the ban expires it starts again from 0. Only peers with a non-zero score or a ban are stored.
    When the table is full, the stored peer with the mildest standing goes first: the highest score
    among non-banned peers, else the ban that expires first (so a flood of fresh identities can
    evict old penalties, but never faster than it earns its own)."""

    def __init__(self, config: ScoreConfig) -> None:
        self._config = config
        self._scores: dict[str, _Score] = {}

    def __len__(self) -> int:
        return len(self._scores)

    def _current(self, peer: str, now_s: float) -> _Score | None:
        entry = self._scores.get(peer)
        if entry is None:
            return None
        if entry.banned_until_s is not None:
            if now_s < entry.banned_until_s:
                return entry
            del self._scores[peer]  # ban served: back to neutral
            return None
        elapsed_s = max(0.0, now_s - entry.updated_s)
        entry.points = min(0.0, entry.points + elapsed_s * self._config.recovery_per_s)
        entry.updated_s = now_s
        if entry.points >= 0.0:
            del self._scores[peer]
            return None
        return entry

    def score(self, peer: str, now_s: float) -> float:
        """The peer's score now (0 for unknown peers)."""
        entry = self._current(peer, now_s)
        return 0.0 if entry is None else entry.points

    def is_banned(self, peer: str, now_s: float) -> bool:
        """True while the peer serves a ban."""
        entry = self._current(peer, now_s)
        return entry is not None and entry.banned_until_s is not None

    def banned_until_s(self, peer: str, now_s: float) -> float | None:
        """When the peer's ban ends, or None if it is not banned."""
        entry = self._current(peer, now_s)
        return None if entry is None else entry.banned_until_s

    def penalise(self, peer: str, penalty: int, now_s: float) -> PenaltyOutcome:
        """Subtract `penalty` (>= 0) points. A banned peer stays banned (no extension: a ban is a
        fixed sentence, which keeps a banned peer's traffic from mattering)."""
        if penalty < 0:
            raise ValueError("a penalty is a non-negative number of points")
        entry = self._current(peer, now_s)
        if entry is None:
            if penalty == 0:
                return PenaltyOutcome(0.0, banned_now=False)
            self._make_room()
            entry = self._scores[peer] = _Score(0.0, now_s)
        if entry.banned_until_s is not None:
            return PenaltyOutcome(entry.points, banned_now=False)
        entry.points -= penalty
        if entry.points < self._config.ban_threshold:
            entry.banned_until_s = now_s + self._config.ban_duration_s
            return PenaltyOutcome(entry.points, banned_now=True)
        return PenaltyOutcome(entry.points, banned_now=False)

    def _make_room(self) -> None:
        if len(self._scores) < self._config.max_peers:
            return
        unbanned = [(e.points, p) for p, e in self._scores.items() if e.banned_until_s is None]
        if unbanned:
            victim = max(unbanned)[1]
        else:
            victim = min((e.banned_until_s or 0.0, p) for p, e in self._scores.items())[1]
        del self._scores[victim]

    def banned(self, now_s: float) -> list[str]:
        """Peers serving a ban now."""
        return [p for p in list(self._scores) if self.is_banned(p, now_s)]


class PeerSource(enum.IntEnum):
    """How a peer entered the address book (lower = more trusted, kept longer)."""

    BOOTSTRAP = 0
    CONNECTED = 1  # we were connected to it (inbound or outbound)
    EXCHANGE = 2  # learnt from another peer's peer-exchange answer


# Addresses kept per peer: a node listens on a few addresses at most (ip4, ip6, maybe a public one).
ADDRS_PER_PEER_MAX = 4


@dataclasses.dataclass(slots=True)
class KnownPeer:
    """One address-book entry."""

    peer_id: str
    addrs: tuple[str, ...]
    source: PeerSource
    failures: int = 0
    next_dial_s: float = 0.0


class PeerBook:
    """Known peers and their addresses, bounded by `max_peers`.

    Bootstrap peers are pinned (never evicted, never forgotten after failures). When the book is
    full, a new peer evicts an entry of a less trusted source (exchange before connected), the one
    with the most dial failures first; if none is less trusted, the new peer is dropped."""

    def __init__(self, max_peers: int) -> None:
        self._max_peers = max_peers
        self._peers: dict[str, KnownPeer] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    def get(self, peer_id: str) -> KnownPeer | None:
        """The entry of `peer_id`, or None."""
        return self._peers.get(peer_id)

    def peers(self) -> list[KnownPeer]:
        """All entries (a copy of the list; entries are live)."""
        return list(self._peers.values())

    def add(self, peer_id: str, addrs: tuple[str, ...], source: PeerSource) -> bool:
        """Add or refresh a peer. A more trusted source upgrades the entry; new addresses replace
        old ones (a peer that restarted on another port is found again). Returns False if the book
        is full of more trusted peers and the entry was dropped."""
        addrs = tuple(dict.fromkeys(addrs))[:ADDRS_PER_PEER_MAX]
        entry = self._peers.get(peer_id)
        if entry is not None:
            if addrs and (source <= entry.source or not entry.addrs):
                entry.addrs = addrs
            entry.source = min(entry.source, source)
            return True
        if not addrs:
            return False
        if len(self._peers) >= self._max_peers and not self._evict_for(source):
            return False
        self._peers[peer_id] = KnownPeer(peer_id, addrs, source)
        return True

    def _evict_for(self, source: PeerSource) -> bool:
        candidates = [
            (e.source, e.failures, e.peer_id)
            for e in self._peers.values()
            if e.source is not PeerSource.BOOTSTRAP and e.source >= source
        ]
        if not candidates:
            return False
        worst = max(candidates)
        del self._peers[worst[2]]
        return True

    def record_success(self, peer_id: str) -> None:
        """A dial or an inbound connection worked: reset the backoff."""
        entry = self._peers.get(peer_id)
        if entry is not None:
            entry.failures = 0
            entry.next_dial_s = 0.0

    def record_failure(
        self,
        peer_id: str,
        now_s: float,
        backoff: BackoffConfig,
        rng: random.Random,
        max_failures: int,
    ) -> None:
        """A dial failed (or the connection was lost): schedule the next attempt with backoff.
        Non-bootstrap peers are forgotten after `max_failures` failures in a row."""
        entry = self._peers.get(peer_id)
        if entry is None:
            return
        entry.next_dial_s = now_s + backoff_delay_s(entry.failures, backoff, rng)
        entry.failures += 1
        if entry.source is not PeerSource.BOOTSTRAP and entry.failures >= max_failures:
            del self._peers[peer_id]

    def defer(self, peer_id: str, until_s: float) -> None:
        """Do not dial `peer_id` before `until_s` (a lost connection: let the peer come back)."""
        entry = self._peers.get(peer_id)
        if entry is not None:
            entry.next_dial_s = max(entry.next_dial_s, until_s)

    def remove(self, peer_id: str) -> None:
        """Forget a peer (bootstrap peers included: used for banned peers)."""
        self._peers.pop(peer_id, None)

    def due(self, now_s: float, exclude: set[str]) -> list[KnownPeer]:
        """Entries whose next dial time has come, not in `exclude`: bootstrap first, then by
        fewest failures."""
        ready = [
            e for e in self._peers.values() if e.next_dial_s <= now_s and e.peer_id not in exclude
        ]
        ready.sort(key=lambda e: (e.source, e.failures))
        return ready
