"""The C backend: thin bindings over the compiled `vrf._ecvrf_c` (sources in vrf/_c/).

Same contract as `vrf._ref`: every function takes bytes and an int suite and returns bytes;
UnsupportedSuite for a suite other than 0x03/0x04, TypeError for a non-bytes argument,
InvalidKey for a bad key, InvalidProof for a bad proof. This module checks types and lengths,
calls C (which drops the GIL around the curve arithmetic) and turns the status code C returns
into the typed error; the C layer decides nothing beyond the math.

Importing this module raises ImportError when the extension is not built; `vrf` turns that
into BackendUnavailable or a logged fallback, depending on POSI_VRF_BACKEND.
"""

from __future__ import annotations

from typing import Final

from vrf import _ecvrf_c as _c
from vrf._args import (
    BETA_LEN,
    KEY_LEN,
    PROOF_LEN,
    PT_LEN,
    SUITE_ELL2,
    SUITE_TAI,
    check_bytes,
    check_secret,
    check_suite,
)
from vrf.errors import InvalidKey, InvalidProof, VRFError

__all__ = ["BETA_LEN", "KEY_LEN", "PROOF_LEN", "SUITE_ELL2", "SUITE_TAI"]

# The keys of prove_trace in the backend contract (the extension reports more intermediates).
_TRACE_KEYS: Final = ("h", "k", "u", "v", "gamma", "c", "s", "pi", "beta")

# What each failure status of the extension means to a caller.
_KEY_ERRORS: Final = {
    _c.STATUS_ERR_KEY_ENCODING: "public key is not the canonical encoding of an edwards25519 point",
    _c.STATUS_ERR_KEY_SMALL_ORDER: "public key is a small-order point (rejected by RFC 9381 5.4.5)",
}
_PROOF_ERRORS: Final = {
    _c.STATUS_ERR_PROOF_GAMMA: "proof Gamma is not the canonical encoding of an edwards25519 point",
    _c.STATUS_ERR_PROOF_S: "proof scalar s is not reduced (s >= q)",
    _c.STATUS_ERR_VERIFY: "proof does not verify for this public key and alpha",
}


def _check_public_key(pk: object) -> bytes:
    pk = check_bytes("pk", pk)
    if len(pk) != PT_LEN:
        raise InvalidKey(f"public key must be {PT_LEN} bytes, got {len(pk)}")
    return pk


def _check_proof(pi: object) -> bytes:
    pi = check_bytes("pi", pi)
    if len(pi) != PROOF_LEN:
        raise InvalidProof(f"proof must be {PROOF_LEN} bytes, got {len(pi)}")
    return pi


def _fail(status: int, pk: bytes | None = None) -> VRFError:
    """The typed error for a failure status of the extension."""
    if status in _KEY_ERRORS:
        detail = f": {pk.hex()}" if pk is not None else ""
        return InvalidKey(_KEY_ERRORS[status] + detail)
    if status in _PROOF_ERRORS:
        return InvalidProof(_PROOF_ERRORS[status])
    if status == _c.STATUS_ERR_ENCODE:
        return VRFError("encode_to_curve try-and-increment exhausted its one-byte counter")
    # ERR_SUITE cannot happen (checked above) and ERR_INIT means the import half failed:
    # either is a bug in this package, not in the caller's data.
    return VRFError(f"vrf._ecvrf_c returned unexpected status {status}")


def public_key(sk: bytes) -> bytes:
    """The 32-byte public key Y = x*B of the 32-byte seed sk.

    Raises TypeError if sk is not bytes and InvalidKey if it is not 32 bytes long.
    """
    status, pk = _c.public_key(check_secret(sk))
    if status != _c.STATUS_OK:
        raise _fail(status)
    return pk


def validate_key(suite: int, pk: bytes) -> None:
    """RFC 9381 ECVRF_validate_key: pk must decode canonically and not be of small order.

    Raises UnsupportedSuite for an unknown suite, TypeError if pk is not bytes, and InvalidKey
    otherwise; the caller must reject the key (never retry with it).
    """
    suite = check_suite(suite)
    pk = _check_public_key(pk)
    status = _c.validate_key(suite, pk)
    if status != _c.STATUS_OK:
        raise _fail(status, pk)


def prove(suite: int, sk: bytes, alpha: bytes) -> bytes:
    """The 80-byte proof pi = Gamma || c || s of alpha under the 32-byte seed sk.

    Raises UnsupportedSuite, TypeError, or InvalidKey (sk not 32 bytes); fix the call.
    Deterministic: the same (suite, sk, alpha) always gives the same pi.
    """
    suite = check_suite(suite)
    sk = check_secret(sk)
    alpha = check_bytes("alpha", alpha)
    status, pi = _c.prove(suite, sk, alpha)
    if status != _c.STATUS_OK:
        raise _fail(status)
    return pi


def prove_trace(suite: int, sk: bytes, alpha: bytes) -> dict[str, bytes]:
    """ECVRF_prove with its intermediates h, k, u, v, gamma, c, s, pi, beta (for the RFC
    vectors). Same errors as `prove`. The result holds the nonce k: never log or send it."""
    suite = check_suite(suite)
    sk = check_secret(sk)
    alpha = check_bytes("alpha", alpha)
    status, trace = _c.prove_trace(suite, sk, alpha)
    if status != _c.STATUS_OK:
        raise _fail(status)
    return {key: trace[key] for key in _TRACE_KEYS}


def verify(suite: int, pk: bytes, pi: bytes, alpha: bytes) -> bytes:
    """ECVRF_verify with validate_key: returns the 64-byte beta if pi proves alpha under pk.

    Raises UnsupportedSuite or TypeError for caller errors; InvalidKey if pk is malformed,
    non-canonical or of small order (reject the key); InvalidProof if pi has the wrong length,
    a non-canonical Gamma, s >= q, or fails the equation (treat the output as absent and, if a
    peer sent it, penalise the peer).
    """
    suite = check_suite(suite)
    pk = _check_public_key(pk)
    alpha = check_bytes("alpha", alpha)
    pi = _check_proof(pi)
    status, beta = _c.verify(suite, pk, pi, alpha)
    if status != _c.STATUS_OK:
        raise _fail(status, pk)
    return beta


def proof_to_hash(suite: int, pi: bytes) -> bytes:
    """beta = ECVRF_proof_to_hash(pi), 64 bytes, WITHOUT verifying the proof.

    Only use beta from a proof that `verify` accepted (verify returns the same beta). Raises
    UnsupportedSuite, TypeError, or InvalidProof if pi does not decode.
    """
    suite = check_suite(suite)
    pi = _check_proof(pi)
    status, beta = _c.proof_to_hash(suite, pi)
    if status != _c.STATUS_OK:
        raise _fail(status)
    return beta
