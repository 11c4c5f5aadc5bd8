"""What each backend must reject, and with which typed error."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.vrf._support import (
    LARGE_ORDER_SMALL_Y,
    OFF_CURVE,
    SMALL_ORDER_ALL,
    SUITE_ELL2,
    SUITE_IDS,
    SUITE_TAI,
    SUITES,
    P,
    Q,
    enc,
    vector_of,
)
from vrf.errors import InvalidKey, InvalidProof, UnsupportedSuite

# One TAI and one ELL2 vector with the same key (examples 17 and 20: alpha = 0x72).
BY_SUITE = {SUITE_TAI: vector_of(17), SUITE_ELL2: vector_of(20)}
GAMMA = slice(0, 32)
C = slice(32, 48)
S = slice(48, 80)

suites = pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)


def with_part(pi: bytes, part: slice, value: bytes) -> bytes:
    """pi with bytes `part` replaced by value (same length)."""
    assert len(value) == part.stop - part.start
    return pi[: part.start] + value + pi[part.stop :]


def flip(pi: bytes, bit: int) -> bytes:
    b = bytearray(pi)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def s_of(pi: bytes) -> int:
    return int.from_bytes(pi[S], "little")


# --- the sanity of the fixtures themselves ----------------------------------------------------


@suites
def test_base_proof_verifies(backend: ModuleType, suite: int) -> None:
    """The proofs the negative cases tamper with are valid to begin with."""
    vec = BY_SUITE[suite]
    assert backend.verify(suite, vec["pk"], vec["pi"], vec["alpha"]) == vec["beta"]


# --- tampered proofs ------------------------------------------------------------------------------


@suites
@pytest.mark.parametrize("bit", [0, 7, 100, 254, 255], ids=lambda b: f"bit{b}")
def test_tampered_gamma(backend: ModuleType, suite: int, bit: int) -> None:
    vec = BY_SUITE[suite]
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], flip(vec["pi"], bit), vec["alpha"])


@suites
@pytest.mark.parametrize("bit", [256, 300, 383], ids=lambda b: f"bit{b}")
def test_tampered_c(backend: ModuleType, suite: int, bit: int) -> None:
    vec = BY_SUITE[suite]
    tampered = flip(vec["pi"], bit)
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])
    # c does not enter beta: proof_to_hash alone cannot tell (that is why verify exists).
    assert backend.proof_to_hash(suite, tampered) == vec["beta"]


@suites
@pytest.mark.parametrize("bit", [384, 500, 630], ids=lambda b: f"bit{b}")
def test_tampered_s(backend: ModuleType, suite: int, bit: int) -> None:
    vec = BY_SUITE[suite]
    tampered = flip(vec["pi"], bit)
    assert s_of(tampered) < Q  # still decodes: the equation must be what fails
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])


@suites
def test_s_plus_q_is_rejected(backend: ModuleType, suite: int) -> None:
    """s + q satisfies the verification equation (B and H have order q): only the s < q check
    stops this malleability."""
    vec = BY_SUITE[suite]
    s_big = s_of(vec["pi"]) + Q
    assert s_big < 2**256
    tampered = with_part(vec["pi"], S, s_big.to_bytes(32, "little"))
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])
    with pytest.raises(InvalidProof):
        backend.proof_to_hash(suite, tampered)


@suites
@pytest.mark.parametrize(
    "s_value", [Q, Q + 1, 2**253, 2**256 - 1], ids=["q", "q+1", "2^253", "max"]
)
def test_s_not_reduced(backend: ModuleType, suite: int, s_value: int) -> None:
    vec = BY_SUITE[suite]
    tampered = with_part(vec["pi"], S, s_value.to_bytes(32, "little"))
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])
    with pytest.raises(InvalidProof):
        backend.proof_to_hash(suite, tampered)


@suites
def test_s_q_minus_one_decodes(backend: ModuleType, suite: int) -> None:
    """The boundary: s = q - 1 is reduced, so proof_to_hash accepts it (verify still fails)."""
    vec = BY_SUITE[suite]
    tampered = with_part(vec["pi"], S, (Q - 1).to_bytes(32, "little"))
    assert backend.proof_to_hash(suite, tampered) == vec["beta"]
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])


@suites
def test_wrong_alpha(backend: ModuleType, suite: int) -> None:
    vec = BY_SUITE[suite]
    for alpha in (b"", b"\x73", vec["alpha"] + b"\x00", vec["alpha"] * 2):
        with pytest.raises(InvalidProof):
            backend.verify(suite, vec["pk"], vec["pi"], alpha)


@suites
def test_wrong_public_key(backend: ModuleType, suite: int) -> None:
    vec = BY_SUITE[suite]
    other = vector_of(18)["pk"]
    assert other != vec["pk"]
    with pytest.raises(InvalidProof):
        backend.verify(suite, other, vec["pi"], vec["alpha"])


@pytest.mark.parametrize(
    ("made_for", "checked_as"), [(SUITE_TAI, SUITE_ELL2), (SUITE_ELL2, SUITE_TAI)], ids=SUITE_IDS
)
def test_wrong_suite(backend: ModuleType, made_for: int, checked_as: int) -> None:
    vec = BY_SUITE[made_for]
    with pytest.raises(InvalidProof):
        backend.verify(checked_as, vec["pk"], vec["pi"], vec["alpha"])


# --- Gamma encodings ---------------------------------------------------------------------------


@suites
@pytest.mark.parametrize("y", LARGE_ORDER_SMALL_Y[:3])
def test_non_canonical_gamma(backend: ModuleType, suite: int, y: int) -> None:
    """Gamma = y + p decodes only under a lax decoder; the canonical twin decodes (control)."""
    vec = BY_SUITE[suite]
    canonical = with_part(vec["pi"], GAMMA, enc(y))
    non_canonical = with_part(vec["pi"], GAMMA, enc(y + P))
    assert len(backend.proof_to_hash(suite, canonical)) == 64
    with pytest.raises(InvalidProof):
        backend.proof_to_hash(suite, non_canonical)
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], non_canonical, vec["alpha"])


@suites
@pytest.mark.parametrize(
    "gamma",
    [OFF_CURVE, enc(1, 1), enc(P - 1, 1), enc(P), enc(2**255 - 1)],
    ids=["off-curve", "x0-sign1-identity", "x0-sign1-order2", "y=p", "y=2^255-1"],
)
def test_undecodable_gamma(backend: ModuleType, suite: int, gamma: bytes) -> None:
    vec = BY_SUITE[suite]
    tampered = with_part(vec["pi"], GAMMA, gamma)
    with pytest.raises(InvalidProof):
        backend.proof_to_hash(suite, tampered)
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])


@suites
def test_identity_gamma(backend: ModuleType, suite: int) -> None:
    """Gamma = identity decodes (it is a point) but can never verify."""
    vec = BY_SUITE[suite]
    tampered = with_part(vec["pi"], GAMMA, enc(1))
    assert len(backend.proof_to_hash(suite, tampered)) == 64
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], tampered, vec["alpha"])


# --- proof lengths ------------------------------------------------------------------------------


@suites
@pytest.mark.parametrize("length", [0, 1, 32, 48, 79, 81, 96, 160])
def test_wrong_proof_length(backend: ModuleType, suite: int, length: int) -> None:
    vec = BY_SUITE[suite]
    pi = (vec["pi"] * 2)[:length]
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], pi, vec["alpha"])
    with pytest.raises(InvalidProof):
        backend.proof_to_hash(suite, pi)


@suites
def test_extended_proof_with_valid_prefix(backend: ModuleType, suite: int) -> None:
    """Trailing bytes after a valid proof are not ignored."""
    vec = BY_SUITE[suite]
    with pytest.raises(InvalidProof):
        backend.verify(suite, vec["pk"], vec["pi"] + b"\x00", vec["alpha"])


# --- public keys ----------------------------------------------------------------------------------


@suites
@pytest.mark.parametrize("pk", list(SMALL_ORDER_ALL.values()), ids=list(SMALL_ORDER_ALL))
def test_small_order_public_key(backend: ModuleType, suite: int, pk: bytes) -> None:
    vec = BY_SUITE[suite]
    with pytest.raises(InvalidKey):
        backend.validate_key(suite, pk)
    with pytest.raises(InvalidKey):
        backend.verify(suite, pk, vec["pi"], vec["alpha"])


@suites
@pytest.mark.parametrize("y", LARGE_ORDER_SMALL_Y)
def test_non_canonical_public_key(backend: ModuleType, suite: int, y: int) -> None:
    """y + p is rejected; the canonical encoding of the same point is a valid key (control:
    RFC 9381 rejects only small-order keys, not keys with a torsion component)."""
    assert backend.validate_key(suite, enc(y)) is None
    assert backend.validate_key(suite, enc(y, 1)) is None
    for sign in (0, 1):
        with pytest.raises(InvalidKey):
            backend.validate_key(suite, enc(y + P, sign))
    vec = BY_SUITE[suite]
    with pytest.raises(InvalidKey):
        backend.verify(suite, enc(y + P), vec["pi"], vec["alpha"])


@suites
@pytest.mark.parametrize("pk", [OFF_CURVE, enc(2**255 - 1), b"\xff" * 32], ids=["y=2", "max", "ff"])
def test_undecodable_public_key(backend: ModuleType, suite: int, pk: bytes) -> None:
    vec = BY_SUITE[suite]
    with pytest.raises(InvalidKey):
        backend.validate_key(suite, pk)
    with pytest.raises(InvalidKey):
        backend.verify(suite, pk, vec["pi"], vec["alpha"])


@suites
@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_public_key_wrong_length(backend: ModuleType, suite: int, length: int) -> None:
    vec = BY_SUITE[suite]
    pk = (vec["pk"] * 2)[:length]
    with pytest.raises(InvalidKey):
        backend.validate_key(suite, pk)
    with pytest.raises(InvalidKey):
        backend.verify(suite, pk, vec["pi"], vec["alpha"])


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_secret_key_wrong_length(backend: ModuleType, length: int) -> None:
    sk = bytes(range(length))
    with pytest.raises(InvalidKey):
        backend.public_key(sk)
    for suite in SUITES:
        with pytest.raises(InvalidKey):
            backend.prove(suite, sk, b"alpha")
        with pytest.raises(InvalidKey):
            backend.prove_trace(suite, sk, b"alpha")


# --- suites and types -----------------------------------------------------------------------------

UNSUPPORTED_SUITES = [0x00, 0x01, 0x02, 0x05, 0xFF, 0x103, -1]


@pytest.mark.parametrize("suite", UNSUPPORTED_SUITES)
def test_unsupported_suite(backend: ModuleType, suite: int) -> None:
    vec: dict[str, Any] = BY_SUITE[SUITE_TAI]
    with pytest.raises(UnsupportedSuite):
        backend.prove(suite, vec["sk"], vec["alpha"])
    with pytest.raises(UnsupportedSuite):
        backend.prove_trace(suite, vec["sk"], vec["alpha"])
    with pytest.raises(UnsupportedSuite):
        backend.verify(suite, vec["pk"], vec["pi"], vec["alpha"])
    with pytest.raises(UnsupportedSuite):
        backend.proof_to_hash(suite, vec["pi"])
    with pytest.raises(UnsupportedSuite):
        backend.validate_key(suite, vec["pk"])


NOT_BYTES = [None, "ab", 7, [1, 2], bytearray(32), memoryview(bytes(32))]
NOT_BYTES_IDS = ["None", "str", "int", "list", "bytearray", "memoryview"]


@pytest.mark.parametrize("bad", NOT_BYTES, ids=NOT_BYTES_IDS)
def test_wrong_types(backend: ModuleType, bad: object) -> None:
    vec = BY_SUITE[SUITE_TAI]
    suite, sk, pk, pi, alpha = SUITE_TAI, vec["sk"], vec["pk"], vec["pi"], vec["alpha"]
    calls = [
        lambda: backend.public_key(bad),
        lambda: backend.validate_key(suite, bad),
        lambda: backend.prove(suite, bad, alpha),
        lambda: backend.prove(suite, sk, bad),
        lambda: backend.prove_trace(suite, bad, alpha),
        lambda: backend.prove_trace(suite, sk, bad),
        lambda: backend.verify(suite, bad, pi, alpha),
        lambda: backend.verify(suite, pk, bad, alpha),
        lambda: backend.verify(suite, pk, pi, bad),
        lambda: backend.proof_to_hash(suite, bad),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()


@pytest.mark.parametrize(
    "bad_suite", ["3", 3.0, None, b"\x03"], ids=["str", "float", "None", "bytes"]
)
def test_suite_must_be_int(backend: ModuleType, bad_suite: object) -> None:
    vec = BY_SUITE[SUITE_TAI]
    with pytest.raises(TypeError):
        backend.prove(bad_suite, vec["sk"], vec["alpha"])
    with pytest.raises(TypeError):
        backend.verify(bad_suite, vec["pk"], vec["pi"], vec["alpha"])
    with pytest.raises(TypeError):
        backend.proof_to_hash(bad_suite, vec["pi"])
    with pytest.raises(TypeError):
        backend.validate_key(bad_suite, vec["pk"])
