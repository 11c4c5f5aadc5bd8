"""Ed25519 identity keys: every protocol message and transaction is signed over
`domain tag || canonical encoding`, so a signature for one purpose never verifies for another."""

from __future__ import annotations

import dataclasses
import os

import nacl.exceptions
import nacl.signing

from ledger.domains import Domain
from ledger.errors import SignatureError

IDENTITY_SEED_LEN = 32
IDENTITY_PUBLIC_LEN = 32
SIGNATURE_LEN = 64


@dataclasses.dataclass(frozen=True, slots=True)
class IdentityKey:
    """A node's Ed25519 signing key (also its libp2p peer identity)."""

    seed: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if type(self.seed) is not bytes or len(self.seed) != IDENTITY_SEED_LEN:
            raise ValueError(f"an identity seed is {IDENTITY_SEED_LEN} bytes")

    @classmethod
    def generate(cls) -> IdentityKey:
        """A fresh key from the OS's randomness (an edge operation: cores take keys as data)."""
        return cls(os.urandom(IDENTITY_SEED_LEN))

    @property
    def public(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return _signing_key(self.seed).verify_key.encode()

    def sign(self, domain: Domain, message: bytes) -> bytes:
        """Sign `domain || message`; returns the 64-byte signature."""
        return _signing_key(self.seed).sign(domain.value + message).signature


def verify_signature(public: bytes, domain: Domain, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature over `domain || message`.

    Raises SignatureError if the key or signature is malformed or the signature does not verify;
    the caller must then reject the signed object (and penalise the peer that sent it)."""
    if len(public) != IDENTITY_PUBLIC_LEN or len(signature) != SIGNATURE_LEN:
        raise SignatureError("malformed key or signature length")
    try:
        nacl.signing.VerifyKey(public).verify(domain.value + message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise SignatureError(f"signature does not verify under {domain.name}") from exc


_KEY_CACHE: dict[bytes, nacl.signing.SigningKey] = {}
_KEY_CACHE_MAX = 4096  # a simulator process holds at most a few thousand identities


def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    key = _KEY_CACHE.get(seed)
    if key is None:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[seed] = nacl.signing.SigningKey(seed)
    return key
