"""Suite constants and argument checks shared by both backends, so that the pure-Python reference
and the C bindings reject bad arguments with the same error and the same message."""

from __future__ import annotations

from typing import Final

from vrf.errors import InvalidKey, UnsupportedSuite

SUITE_TAI: Final = 0x03
SUITE_ELL2: Final = 0x04
SUITES: Final = frozenset((SUITE_TAI, SUITE_ELL2))

# Sizes of RFC 9381 section 5.5 for edwards25519: ptLen = qLen = 32, cLen = 16, SHA-512 output.
PT_LEN: Final = 32
C_LEN: Final = 16
Q_LEN: Final = 32
PROOF_LEN: Final = PT_LEN + C_LEN + Q_LEN
BETA_LEN: Final = 64
KEY_LEN: Final = 32


def check_suite(suite: int) -> int:
    """The suite, if it is one this package implements. TypeError / UnsupportedSuite otherwise."""
    if not isinstance(suite, int):
        raise TypeError(f"suite must be an int (0x03 or 0x04), got {type(suite).__name__}")
    if suite not in SUITES:
        raise UnsupportedSuite(
            f"suite {suite!r} is not supported: use 0x03 (ECVRF-EDWARDS25519-SHA512-TAI) "
            "or 0x04 (ECVRF-EDWARDS25519-SHA512-ELL2)"
        )
    return suite


def check_bytes(name: str, value: object) -> bytes:
    """`value` if it is bytes; TypeError naming the argument otherwise."""
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    return value


def check_secret(sk: object) -> bytes:
    """A 32-byte RFC 8032 seed; TypeError or InvalidKey otherwise."""
    sk = check_bytes("sk", sk)
    if len(sk) != KEY_LEN:
        raise InvalidKey(
            f"secret key must be the {KEY_LEN}-byte RFC 8032 seed, got {len(sk)} bytes"
        )
    return sk
