"""Internals of the C extension (vrf._ecvrf_c) that the backend contract does not expose.

Each building block is checked against an independent oracle: SHA-512 against hashlib, field
and scalar arithmetic against Python integers, group operations against libsodium (through
PyNaCl) and a strict RFC 8032 decoder written here, hash-to-curve against the RFC 9380
appendix J.5.2 vectors, and the VRF against every intermediate of the RFC 9381 vectors. The
hooks (`_sha512`, `_fe`, `_sc`, `_ge`, ...) exist only for these tests.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vrf._support import (
    LARGE_ORDER_SMALL_Y,
    OFF_CURVE,
    SMALL_ORDER_CANONICAL,
    SMALL_ORDER_NON_CANONICAL,
    VECTORS,
    P,
    Q,
    enc,
)
from vrf import _cbackend
from vrf import _ecvrf_c as C

IDS = [f"ex{v['example']}" for v in VECTORS]
TAI_VECTORS = [v for v in VECTORS if v["suite_int"] == C.SUITE_TAI]
ELL2_VECTORS = [v for v in VECTORS if v["suite_int"] == C.SUITE_ELL2]

D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = enc(1)
BASE = enc(4 * pow(5, -1, P) % P)

# Field inputs: anything below 2^255 (values in [p, 2^255) are non-canonical residues the
# field code must still reduce), with the values where carries and reductions change.
FE_EDGES = [
    0,
    1,
    2,
    18,
    19,
    20,
    P - 2,
    P - 1,
    P,
    P + 1,
    P + 18,
    2**255 - 1,
    2**51 - 1,
    2**51,
    2**102 - 1,
    2**204,
    2**254,
    SQRT_M1,
]
fe_ints = st.one_of(st.integers(0, 2**255 - 1), st.sampled_from(FE_EDGES))
# Scalars below 2^255: the precondition of every scalar multiplication in ge25519.h.
SC_EDGES = [
    0,
    1,
    2,
    7,
    8,
    15,
    16,
    17,
    Q - 1,
    Q,
    Q + 1,
    2 * Q,
    7 * Q + 3,
    2**128 - 1,
    2**128,
    2**252,
    2**254,
    2**255 - 1,
    int("88" * 32, 16) >> 1,
    int("77" * 32, 16) >> 1,
]
scalars = st.one_of(st.integers(0, 2**255 - 1), st.sampled_from(SC_EDGES))


def le(n: int, length: int = 32) -> bytes:
    return n.to_bytes(length, "little")


def from_le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def fe_op(op: str, *args: int) -> Any:
    return C._fe(op, *(le(a) for a in args))


# --- an independent strict decoder (RFC 8032 section 5.1.3) ---------------------------------


def py_decode(s: bytes) -> tuple[int, int] | None:
    """(x, y) of a strict RFC 8032 decoding, or None."""
    v = from_le(s)
    sign, y = v >> 255, v & (2**255 - 1)
    if y >= P:
        return None
    u, w = (y * y - 1) % P, (D * y * y + 1) % P
    x2 = u * pow(w, P - 2, P) % P
    if x2 == 0:
        return None if sign else (0, y)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y


def encode_xy(x: int, y: int) -> bytes:
    return le(y | ((x & 1) << 255))


def sodium_base(k: int) -> bytes:
    """k*B by libsodium (which refuses to return the identity, so that case is spelled out)."""
    if k % Q == 0:
        return IDENTITY
    return sodium.crypto_scalarmult_ed25519_base_noclamp(le(k))


def sodium_mul(k: int, point: bytes) -> bytes:
    """k*point by libsodium, for a point of the prime-order subgroup."""
    if k % Q == 0:
        return IDENTITY
    return sodium.crypto_scalarmult_ed25519_noclamp(le(k), point)


def sodium_add(a: bytes, b: bytes) -> bytes:
    return sodium.crypto_core_ed25519_add(a, b)


# Points of the prime-order subgroup, as libsodium computes them.
subgroup_points = st.integers(1, Q - 1).map(sodium_base)


# --- SHA-512 -----------------------------------------------------------------------------------


@given(data=st.binary(max_size=1200), chunk=st.integers(0, 200))
def test_sha512_matches_hashlib(data: bytes, chunk: int) -> None:
    assert C._sha512(data, chunk) == hashlib.sha512(data).digest()


@pytest.mark.parametrize("length", [0, 1, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 257])
def test_sha512_padding_boundaries(length: int) -> None:
    data = bytes(range(256)) * 2
    assert C._sha512(data[:length]) == hashlib.sha512(data[:length]).digest()
    assert C._sha512(data[:length], 1) == hashlib.sha512(data[:length]).digest()


# --- field arithmetic mod 2^255 - 19 ------------------------------------------------------------


@given(a=fe_ints, b=fe_ints)
def test_field_binary_operations(a: int, b: int) -> None:
    assert from_le(fe_op("add", a, b)) == (a + b) % P
    assert from_le(fe_op("sub", a, b)) == (a - b) % P
    assert from_le(fe_op("mul", a, b)) == a * b % P
    assert fe_op("equal", a, b) is (a % P == b % P)


@given(a=fe_ints)
def test_field_unary_operations(a: int) -> None:
    r = a % P
    assert from_le(fe_op("canon", a)) == r
    assert from_le(fe_op("neg", a)) == -r % P
    assert from_le(fe_op("sq", a)) == r * r % P
    assert from_le(fe_op("sq2", a)) == 2 * r * r % P
    assert from_le(fe_op("invert", a)) == pow(r, P - 2, P)
    assert from_le(fe_op("pow22523", a)) == pow(r, (P - 5) // 8, P)
    assert fe_op("iszero", a) is (r == 0)
    assert fe_op("isnegative", a) is (r % 2 == 1)
    legendre = pow(r, (P - 1) // 2, P)
    assert fe_op("legendre", a) == {0: 0, 1: 1, P - 1: -1}[legendre]
    root = fe_op("sqrt", a)
    if legendre == P - 1:
        assert root is None
    else:
        assert root is not None
        x = from_le(root)
        assert x * x % P == r
        assert x % 2 == 0  # the root with sgn0 = 0


@given(a=fe_ints, b=fe_ints, k=st.integers(1, 7))
def test_field_mul_accepts_uncarried_limbs(a: int, b: int, k: int) -> None:
    """fe_mul on k-fold sums (limbs up to 7 * 2^51 < 2^54, the bound fe25519.h promises)."""
    assert from_le(C._fe_mul_loose(le(a), le(b), k)) == k * a * b % P


@pytest.mark.parametrize("a", [2**51 - 1, 2**255 - 1, P - 1, P, 2**52 - 1])
def test_field_mul_at_limb_limits(a: int) -> None:
    """All-ones limbs summed seven times: the worst case of the carry chain."""
    assert from_le(C._fe_mul_loose(le(a), le(a), 7)) == 7 * a * a % P


@given(data=st.binary(max_size=64))
def test_field_reduce_wide(data: bytes) -> None:
    assert from_le(C._fe_from_wide(data)) == from_le(data) % P


@pytest.mark.parametrize("y", [0, 1, 18, P - 1, P, P + 1, P + 18, 2**255 - 1])
def test_field_canonical_bytes(y: int) -> None:
    for sign in (0, 1):
        assert C._fe("canonical_bytes", enc(y, sign)) is (y < P)


# --- scalars mod q -------------------------------------------------------------------------------


@given(
    n=st.one_of(
        st.integers(0, 2**512 - 1),
        st.sampled_from([0, Q - 1, Q, Q + 1, 2**512 - 1, Q * (2**259), Q * Q]),
    )
)
def test_scalar_reduce64(n: int) -> None:
    assert from_le(C._sc("reduce64", le(n, 64))) == n % Q


@given(a=scalars, b=scalars, c=st.integers(0, 2**256 - 1))
def test_scalar_muladd(a: int, b: int, c: int) -> None:
    assert from_le(C._sc("muladd", le(a), le(b), le(c))) == (a * b + c) % Q


@given(s=st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, Q - 1, Q, Q + 1, 2**256 - 1])))
def test_scalar_canonical(s: int) -> None:
    assert C._sc("canonical", le(s)) is (s < Q)


# --- the group -----------------------------------------------------------------------------------


@given(
    s=st.one_of(
        st.binary(min_size=32, max_size=32),
        st.sampled_from(
            [enc(y, sign) for y in (0, 1, 2, 3, P - 1, P, P + 1, 2**255 - 1) for sign in (0, 1)]
        ),
    )
)
def test_decode_matches_strict_rfc8032(s: bytes) -> None:
    expected = py_decode(s)
    got = C._ge("decode", s)
    if expected is None:
        assert got is None
    else:
        assert got == encode_xy(*expected) == s


def test_base_point() -> None:
    assert C._ge("base", le(1)) == BASE == sodium_base(1)
    assert C._ge("base", le(0)) == IDENTITY
    assert C._ge("base", le(Q)) == IDENTITY
    assert C._ge("base", le(Q + 1)) == BASE


@given(k=scalars)
def test_fixed_base_mult_matches_libsodium(k: int) -> None:
    assert C._ge("base", le(k)) == sodium_base(k)


@given(k=scalars, point=subgroup_points)
def test_variable_base_mult_matches_libsodium(k: int, point: bytes) -> None:
    assert C._ge("mul", le(k), point) == sodium_mul(k, point)


@given(a=scalars, b=scalars, point=subgroup_points)
def test_double_scalar_mult_base_matches_libsodium(a: int, b: int, point: bytes) -> None:
    expected = sodium_add(sodium_base(a), sodium_mul(b, point)) if (a % Q and b % Q) else None
    got = C._ge("dsm_base", le(a), le(b), point)
    if expected is not None:
        assert got == expected
    # Whatever libsodium refuses (identity terms), the two C algorithms must agree.
    assert got == C._ge("add", C._ge("base", le(a)), C._ge("mul", le(b), point))


@given(a=scalars, b=scalars, p1=subgroup_points, p2=subgroup_points)
def test_double_scalar_mult_matches_libsodium(a: int, b: int, p1: bytes, p2: bytes) -> None:
    got = C._ge("dsm", le(a), p1, le(b), p2)
    assert got == C._ge("add", C._ge("mul", le(a), p1), C._ge("mul", le(b), p2))
    if a % Q and b % Q:
        assert got == sodium_add(sodium_mul(a, p1), sodium_mul(b, p2))


@given(p1=subgroup_points, p2=subgroup_points)
def test_add_and_double_match_libsodium(p1: bytes, p2: bytes) -> None:
    assert C._ge("add", p1, p2) == sodium_add(p1, p2)
    assert C._ge("dbl", p1) == sodium_add(p1, p1)
    assert C._ge("add", p1, C._ge("neg", p1)) == IDENTITY
    assert C._ge("add", p1, IDENTITY) == p1


@pytest.mark.parametrize(
    "torsion", list(SMALL_ORDER_CANONICAL.values()), ids=list(SMALL_ORDER_CANONICAL)
)
def test_small_order_points(torsion: bytes) -> None:
    assert C._ge("small_order", torsion) is True
    assert C._ge("cofactor", torsion) == IDENTITY
    # Adding it to a large-order point gives a point that is not of small order, and the
    # constant-time and variable-time multiplications agree on it (torsion component included).
    mixed = C._ge("add", BASE, torsion)
    assert C._ge("small_order", mixed) is False
    for k in (1, 3, 8, 2**254 + 5, Q - 1):
        assert C._ge("mul", le(k), mixed) == C._ge("dsm", le(k), mixed, le(0), BASE)


@pytest.mark.parametrize(
    "bad", list(SMALL_ORDER_NON_CANONICAL.values()), ids=list(SMALL_ORDER_NON_CANONICAL)
)
def test_non_canonical_encodings_do_not_decode(bad: bytes) -> None:
    assert C._ge("decode", bad) is None


@pytest.mark.parametrize("y", LARGE_ORDER_SMALL_Y)
def test_large_order_points_with_small_y(y: int) -> None:
    assert C._ge("decode", enc(y)) == enc(y)
    assert C._ge("small_order", enc(y)) is False
    assert C._ge("decode", enc(y + P)) is None
    assert C._ge("decode", OFF_CURVE) is None


@given(points=st.lists(subgroup_points, min_size=1, max_size=5))
def test_batch_encoding_matches_single(points: list[bytes]) -> None:
    # dbl gives a point with Z != 1, so the batch inversion has real work to do.
    doubled = [C._ge("dbl", p) for p in points]
    assert list(C._ge("batch", *doubled)) == [C._ge("dbl", p) for p in points]


@pytest.mark.parametrize("k", SC_EDGES)
def test_scalar_edge_values_agree_across_algorithms(k: int) -> None:
    point = sodium_base(12345)
    assert (
        C._ge("base", le(k)) == C._ge("mul", le(k), BASE) == C._ge("dsm_base", le(k), le(0), BASE)
    )
    assert C._ge("mul", le(k), point) == C._ge("dsm", le(k), point, le(0), BASE)
    assert C._ge("dsm_base", le(0), le(k), point) == C._ge("mul", le(k), point)


# --- hash to curve -------------------------------------------------------------------------------

# RFC 9380 appendix J.5.2, edwards25519_XMD:SHA-512_ELL2_NU_: msg, u0, Q (map output), P.
H2C_NU_DST = b"QUUX-V01-CS02-with-edwards25519_XMD:SHA-512_ELL2_NU_"
H2C_NU_VECTORS = [
    (
        b"",
        "7f3e7fb9428103ad7f52db32f9df32505d7b427d894c5093f7a0f0374a30641d",
        "42836f691d05211ebc65ef8fcf01e0fb6328ec9c4737c26050471e50803022eb",
        "22cb4aaa555e23bd460262d2130d6a3c9207aa8bbb85060928beb263d6d42a95",
        "1ff2b70ecf862799e11b7ae744e3489aa058ce805dd323a936375a84695e76da",
        "222e314d04a4d5725e9f2aff9fb2a6b69ef375a1214eb19021ceab2d687f0f9b",
    ),
    (
        b"abc",
        "09cfa30ad79bd59456594a0f5d3a76f6b71c6787b04de98be5cd201a556e253b",
        "333e41b61c6dd43af220c1ac34a3663e1cf537f996bab50ab66e33c4bd8e4e19",
        "51b6f178eb08c4a782c820e306b82c6e273ab22e258d972cd0c511787b2a3443",
        "5f13cc69c891d86927eb37bd4afc6672360007c63f68a33ab423a3aa040fd2a8",
        "67732d50f9a26f73111dd1ed5dba225614e538599db58ba30aaea1f5c827fa42",
    ),
    (
        b"abcdef0123456789",
        "475ccff99225ef90d78cc9338e9f6a6bb7b17607c0c4428937de75d33edba941",
        "55186c242c78e7d0ec5b6c9553f04c6aeef64e69ec2e824472394da32647cfc6",
        "5b9ea3c265ee42256a8f724f616307ef38496ef7eba391c08f99f3bea6fa88f0",
        "1dd2fefce934ecfd7aae6ec998de088d7dd03316aa1847198aecf699ba6613f1",
        "2f8a6c24dd1adde73909cada6a4a137577b0f179d336685c4a955a0a8e1a86fb",
    ),
]


@pytest.mark.parametrize("case", H2C_NU_VECTORS, ids=["empty", "abc", "abcdef"])
def test_rfc9380_edwards25519_nu_vectors(case: tuple[bytes, str, str, str, str, str]) -> None:
    msg, u0, qx, qy, px, py = case
    u, q_point, p_point = C._h2c_nu(msg, H2C_NU_DST)
    assert from_le(u) == int(u0, 16)
    assert q_point == encode_xy(int(qx, 16), int(qy, 16))
    assert p_point == encode_xy(int(px, 16), int(py, 16))


def test_elligator_exceptional_input_maps_to_identity() -> None:
    # u = 0: g(x1) = -J is not square, x = 0 and the rational map's denominator vanishes.
    assert C._ell2_map(le(0)) == IDENTITY


@settings(max_examples=50)
@given(u=st.integers(0, P - 1))
def test_elligator_lands_on_curve(u: int) -> None:
    point = C._ell2_map(le(u))
    assert C._ge("decode", point) == point
    assert C._ell2_map(le(P - u if u else 0)) == point  # the map is even in u


@settings(max_examples=50)
@given(pk=subgroup_points, alpha=st.binary(max_size=64))
def test_ell2_square_branch_agrees_with_legendre(pk: bytes, alpha: bytes) -> None:
    status, trace = C.encode_to_curve_trace(C.SUITE_ELL2, pk, alpha)
    assert status == C.STATUS_OK
    gx1 = from_le(trace["h2c_gx1"])
    u = from_le(trace["h2c_u"])
    x1 = -486662 * pow(1 + 2 * u * u, -1, P) % P
    assert gx1 == (x1**3 + 486662 * x1 * x1 + x1) % P
    is_square = pow(gx1, (P - 1) // 2, P) == 1
    assert trace["h2c_gx1_is_square"] is is_square
    assert trace["h2c_gx1_legendre"] == (1 if is_square else -1)


# --- the VRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", VECTORS, ids=IDS)
def test_every_vector_intermediate(vec: dict[str, Any]) -> None:
    status, trace = C.prove_trace(vec["suite_int"], vec["sk"], vec["alpha"])
    assert status == C.STATUS_OK
    for key in ("x", "pk", "h", "k_string", "k", "u", "v", "gamma", "c", "s", "pi", "beta"):
        assert trace[key] == vec[key], key
    if vec["suite_int"] == C.SUITE_TAI:
        assert trace["tai_ctr"] == vec["tai_ctr"]
    else:
        assert trace["tai_ctr"] == -1
        for key in ("h2c_uniform_bytes", "h2c_u", "h2c_gx1"):
            assert trace[key] == vec[key], key
        assert trace["h2c_gx1_is_square"] is vec["h2c_gx1_is_square"]
        assert trace["h2c_gx1_legendre"] == (1 if vec["h2c_gx1_is_square"] else -1)


@pytest.mark.parametrize("vec", VECTORS, ids=IDS)
def test_vector_operations(vec: dict[str, Any]) -> None:
    suite = vec["suite_int"]
    assert C.public_key(vec["sk"]) == (C.STATUS_OK, vec["pk"])
    assert C.prove(suite, vec["sk"], vec["alpha"]) == (C.STATUS_OK, vec["pi"])
    assert C.verify(suite, vec["pk"], vec["pi"], vec["alpha"]) == (C.STATUS_OK, vec["beta"])
    assert C.proof_to_hash(suite, vec["pi"]) == (C.STATUS_OK, vec["beta"])
    assert C.validate_key(suite, vec["pk"]) == C.STATUS_OK
    status, trace = C.encode_to_curve_trace(suite, vec["pk"], vec["alpha"])
    assert status == C.STATUS_OK
    assert trace["h"] == vec["h"]


def test_status_codes() -> None:
    vec = TAI_VECTORS[0]
    suite, pk, pi, alpha = vec["suite_int"], vec["pk"], vec["pi"], vec["alpha"]
    small = SMALL_ORDER_CANONICAL["order 8, y=0x05fc.. sign 0"]
    assert C.validate_key(suite, OFF_CURVE) == C.STATUS_ERR_KEY_ENCODING
    assert C.validate_key(suite, small) == C.STATUS_ERR_KEY_SMALL_ORDER
    assert C.validate_key(0x05, pk) == C.STATUS_ERR_SUITE
    assert C.verify(suite, OFF_CURVE, pi, alpha) == (C.STATUS_ERR_KEY_ENCODING, None)
    assert C.verify(suite, small, pi, alpha) == (C.STATUS_ERR_KEY_SMALL_ORDER, None)
    bad_gamma = OFF_CURVE + pi[32:]
    assert C.verify(suite, pk, bad_gamma, alpha) == (C.STATUS_ERR_PROOF_GAMMA, None)
    assert C.proof_to_hash(suite, bad_gamma) == (C.STATUS_ERR_PROOF_GAMMA, None)
    bad_s = pi[:48] + le(Q)
    assert C.verify(suite, pk, bad_s, alpha) == (C.STATUS_ERR_PROOF_S, None)
    assert C.proof_to_hash(suite, bad_s) == (C.STATUS_ERR_PROOF_S, None)
    bad_c = pi[:32] + bytes([pi[32] ^ 1]) + pi[33:]
    assert C.verify(suite, pk, bad_c, alpha) == (C.STATUS_ERR_VERIFY, None)
    assert C.prove(0x02, vec["sk"], alpha) == (C.STATUS_ERR_SUITE, None)
    assert C.proof_to_hash(0x05, pi) == (C.STATUS_ERR_SUITE, None)


def test_module_guards_buffer_lengths() -> None:
    """The bindings check lengths first; the module still refuses to read past a buffer."""
    vec = TAI_VECTORS[0]
    with pytest.raises(ValueError, match="sk must be 32 bytes"):
        C.public_key(bytes(31))
    with pytest.raises(ValueError, match="pk must be 32 bytes"):
        C.verify(3, vec["pk"][:31], vec["pi"], b"")
    with pytest.raises(ValueError, match="pi must be 80 bytes"):
        C.proof_to_hash(3, vec["pi"] + b"\x00")
    with pytest.raises(TypeError):
        C.prove(3, "0" * 32, b"")


def test_bindings_return_exactly_the_contract_trace() -> None:
    vec = ELL2_VECTORS[0]
    trace = _cbackend.prove_trace(vec["suite_int"], vec["sk"], vec["alpha"])
    assert set(trace) == {"h", "k", "u", "v", "gamma", "c", "s", "pi", "beta"}
    assert all(trace[key] == vec[key] for key in trace)


def test_concurrent_calls_agree() -> None:
    """prove/verify drop the GIL: threads running them at once must each get the right bytes."""
    results: list[bool] = []
    lock = threading.Lock()

    def worker(vec: dict[str, Any]) -> None:
        ok = True
        for _ in range(30):
            ok &= C.prove(vec["suite_int"], vec["sk"], vec["alpha"]) == (C.STATUS_OK, vec["pi"])
            ok &= C.verify(vec["suite_int"], vec["pk"], vec["pi"], vec["alpha"]) == (
                C.STATUS_OK,
                vec["beta"],
            )
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=worker, args=(vec,)) for vec in VECTORS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * len(VECTORS)
