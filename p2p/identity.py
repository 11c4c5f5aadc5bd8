"""The node's identity key is its libp2p peer id.

An Ed25519 public key of 32 bytes is short enough that libp2p inlines it in the peer id (identity
multihash), so the mapping is exact both ways: no lookup, no trust in a peerstore.
"""

from __future__ import annotations

from libp2p.crypto.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from ledger.signing import IDENTITY_PUBLIC_LEN, IdentityKey
from p2p.errors import P2PError


class NotAnIdentityPeerId(P2PError):
    """The peer id does not inline an Ed25519 public key (not a posi-peer node). Treat the peer as
    unknown: do not accept signed statements attributed to it."""


def keypair_of(identity: IdentityKey) -> KeyPair:
    """The libp2p key pair of `identity` (same Ed25519 key, so the same public key)."""
    private = Ed25519PrivateKey.new(identity.seed)
    return KeyPair(private, private.get_public_key())


def peer_id_of(public: bytes) -> str:
    """The base58 libp2p peer id of a 32-byte Ed25519 identity public key.

    Raises ValueError if `public` is not 32 bytes (local misuse)."""
    if len(public) != IDENTITY_PUBLIC_LEN:
        raise ValueError(f"an identity public key is {IDENTITY_PUBLIC_LEN} bytes")
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(public)).to_base58()


def public_key_of(peer_id: str) -> bytes:
    """The 32-byte Ed25519 identity public key inlined in `peer_id`.

    Raises NotAnIdentityPeerId if the peer id does not parse or holds no Ed25519 key."""
    try:
        key = ID.from_base58(peer_id).extract_public_key()
    except (ValueError, TypeError, KeyError) as exc:
        raise NotAnIdentityPeerId(f"{peer_id!r}: not a peer id ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise NotAnIdentityPeerId(f"{peer_id!r}: does not inline an Ed25519 key")
    return key.to_bytes()
