"""Peer exchange: a connected peer answers with a bounded sample of the peers it knows.

Request: empty. Answer: a `PexAnswer` record (canonical msgpack, strictly decoded). Peers are named
by their Ed25519 identity key (the peer id is derived from it, so a forged entry can only point at
an address; the Noise handshake then fails unless the key's owner listens there).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Annotated

import multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from ledger.encoding import MaxItems, MaxLen, PublicKeyBytes, Record
from p2p.config import PEX_SAMPLE_CEILING
from p2p.identity import peer_id_of
from p2p.peers import ADDRS_PER_PEER_MAX

# A textual TCP multiaddr is < 64 characters (ip6 + port); 128 leaves room for dns names.
ADDR_TEXT_LEN_MAX = 128

AddrText = Annotated[str, MaxLen(ADDR_TEXT_LEN_MAX)]


@dataclasses.dataclass(frozen=True, slots=True)
class PexPeer(Record):
    """One known peer: identity key and listen addresses (without /p2p/)."""

    public_key: PublicKeyBytes
    addrs: Annotated[tuple[AddrText, ...], MaxItems(ADDRS_PER_PEER_MAX)]


@dataclasses.dataclass(frozen=True, slots=True)
class PexAnswer(Record):
    """A peer-exchange answer."""

    MAX_BYTES = PEX_SAMPLE_CEILING * (40 + ADDRS_PER_PEER_MAX * (ADDR_TEXT_LEN_MAX + 3)) + 16
    peers: Annotated[tuple[PexPeer, ...], MaxItems(PEX_SAMPLE_CEILING)]


def usable_addr(text: str) -> bool:
    """True for a TCP multiaddr we can dial (`/ip4|ip6|dns4|dns6/<host>/tcp/<port>`, no /p2p/)."""
    if len(text) > ADDR_TEXT_LEN_MAX:
        return False
    try:
        names = [p.name for p in multiaddr.Multiaddr(text).protocols()]
    except (MultiaddrError, ValueError, TypeError):
        return False
    return len(names) == 2 and names[0] in ("ip4", "ip6", "dns4", "dns6") and names[1] == "tcp"


def build_answer(
    candidates: list[tuple[bytes, tuple[str, ...]]], sample_size: int, rng: random.Random
) -> PexAnswer:
    """A random sample of at most `sample_size` candidates (public key, addresses), keeping only
    usable addresses and dropping peers left with none."""
    usable = [
        (key, tuple(a for a in addrs if usable_addr(a))[:ADDRS_PER_PEER_MAX])
        for key, addrs in candidates
    ]
    usable = [(key, addrs) for key, addrs in usable if addrs]
    chosen = rng.sample(usable, min(sample_size, len(usable), PEX_SAMPLE_CEILING))
    return PexAnswer(tuple(PexPeer(key, addrs) for key, addrs in chosen))


def parse_answer(answer: PexAnswer) -> list[tuple[str, tuple[str, ...]]]:
    """(peer id, usable addresses) for each entry of a decoded answer; unusable addresses and
    entries left without any are dropped (not an offence: the sender may know transports we
    don't)."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for peer in answer.peers:
        addrs = tuple(a for a in peer.addrs if usable_addr(a))
        if addrs:
            out.append((peer_id_of(peer.public_key), addrs))
    return out
