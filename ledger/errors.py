"""Typed errors of the ledger package (encoding, hashing, signatures, blocks, state, store)."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger package raises."""


class DecodeError(LedgerError):
    """Bytes are not the canonical encoding of the expected record (bad msgpack, trailing bytes,
    wrong field count or type, out-of-bounds value, duplicate or unsorted keys, floats, or any
    non-canonical form). If the bytes came from a peer, drop them and penalise the peer."""


class EncodeError(LedgerError):
    """A record holds a value its schema does not allow (local misuse: fix the caller)."""


class SignatureError(LedgerError):
    """A signature does not verify under the claimed key and domain. Reject the signed object; if
    it came from a peer, penalise the peer."""
