"""Internals of the pure-Python reference (vrf._ref) that the backend contract does not expose:
the vectors' extra intermediates (x, k_string, tai_ctr, the RFC 9380 steps of ELL2), the
RFC 9380 suite vectors, the group arithmetic, and the tables the negative tests rely on."""

from __future__ import annotations

import random
from typing import Any

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
from vrf import _ref

TAI_VECTORS = [v for v in VECTORS if v["suite_int"] == _ref.SUITE_TAI]
ELL2_VECTORS = [v for v in VECTORS if v["suite_int"] == _ref.SUITE_ELL2]


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [f"ex{v['example']}" for v in vectors]


# --- vector intermediates beyond the contract's trace ---------------------------------------


@pytest.mark.parametrize("vec", VECTORS, ids=ids(VECTORS))
def test_secret_scalar_and_nonce_string(vec: dict[str, Any]) -> None:
    assert _ref.secret_scalar(vec["sk"]) == vec["x"]
    assert _ref.nonce_k_string(vec["sk"], vec["h"]) == vec["k_string"]
    k = int.from_bytes(vec["k_string"], "little") % Q
    assert k.to_bytes(32, "little") == vec["k"]


@pytest.mark.parametrize("vec", TAI_VECTORS, ids=ids(TAI_VECTORS))
def test_tai_counter(vec: dict[str, Any]) -> None:
    h, ctr = _ref.tai_intermediates(vec["pk"], vec["alpha"])
    assert h == vec["h"]
    assert ctr == vec["tai_ctr"]


@pytest.mark.parametrize("vec", ELL2_VECTORS, ids=ids(ELL2_VECTORS))
def test_ell2_intermediates(vec: dict[str, Any]) -> None:
    got = _ref.ell2_intermediates(vec["pk"], vec["alpha"])
    assert got["h2c_uniform_bytes"] == vec["h2c_uniform_bytes"]
    assert got["h2c_u"] == vec["h2c_u"]
    assert got["h2c_gx1"] == vec["h2c_gx1"]
    assert got["h2c_gx1_is_square"] is vec["h2c_gx1_is_square"]
    assert got["h"] == vec["h"]


def test_ell2_vectors_cover_both_elligator_branches() -> None:
    assert {v["h2c_gx1_is_square"] for v in ELL2_VECTORS} == {True, False}


def test_h2c_dst() -> None:
    assert _ref.H2C_DST == b"ECVRF_edwards25519_XMD:SHA-512_ELL2_NU_\x04"


# RFC 9380 Appendix J.5.2 (edwards25519_XMD:SHA-512_ELL2_NU_): msg, u0, Q (map output), P.
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
    trace = _ref.h2c_encode_to_curve(msg, H2C_NU_DST)
    assert trace.u == int(u0, 16)
    assert _ref.affine(trace.q) == (int(qx, 16), int(qy, 16))
    assert _ref.affine(trace.p) == (int(px, 16), int(py, 16))


def test_elligator_constant_has_even_sign() -> None:
    c1 = _ref._ELL2_EDWARDS_C1
    assert c1 % 2 == 0
    assert c1 * c1 % P == (-486664) % P


def test_elligator_at_zero_is_identity() -> None:
    """u = 0: x1 = -J, g(x1) = -J is not square, so x = 0, y = 0 and the map gives (0, 1)."""
    point, _, is_square = _ref.map_to_curve_ell2(0)
    assert not is_square
    assert _ref.is_identity(point)


def on_curve(point: _ref.Point) -> bool:
    x, y = _ref.affine(point)
    return (-x * x + y * y - 1 - _ref.D * x * x * y * y) % P == 0


@settings(max_examples=50, deadline=None)
@given(u=st.integers(0, P - 1))
def test_elligator_lands_on_curve(u: int) -> None:
    point, _, _ = _ref.map_to_curve_ell2(u)
    assert on_curve(point)
    assert _ref.is_identity(_ref.scalar_mul(Q, _ref.mul_cofactor(point)))


def test_expand_message_xmd_bounds() -> None:
    assert len(_ref.expand_message_xmd(b"m", b"dst", 255 * 64)) == 255 * 64
    with pytest.raises(ValueError, match="too long"):
        _ref.expand_message_xmd(b"m", b"dst", 255 * 64 + 1)
    with pytest.raises(ValueError, match="too long"):
        _ref.expand_message_xmd(b"m", b"d" * 256, 48)


# --- group arithmetic ---------------------------------------------------------------------------


def test_base_point_encoding_and_order() -> None:
    assert _ref.encode_point(_ref.BASE).hex() == "58" + "66" * 31
    assert on_curve(_ref.BASE)
    assert _ref.is_identity(_ref.scalar_mul(Q, _ref.BASE))
    assert not _ref.is_identity(_ref.scalar_mul(Q - 1, _ref.BASE))


@pytest.mark.parametrize("k", [0, 1, 2, 15, 16, 17, Q - 1, Q, Q + 1, 2**252, 2**255 - 1])
def test_base_mul_edges(k: int) -> None:
    expected = _ref.scalar_mul(k % Q, _ref.BASE)
    assert _ref.points_equal(_ref.base_mul(k), expected)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(0, 2**256 - 1))
def test_base_mul_matches_double_and_add(k: int) -> None:
    acc = _ref.IDENTITY
    for bit in bin(k % Q)[2:]:
        acc = _ref.point_double(acc)
        if bit == "1":
            acc = _ref.point_add(acc, _ref.BASE)
    assert _ref.points_equal(_ref.base_mul(k), acc)


@settings(max_examples=200, deadline=None)
@given(k=st.integers(0, 2**255 - 1))
def test_scalar_recodings_reconstruct(k: int) -> None:
    digits = _ref._radix16_signed(k)
    assert sum(d * 16**i for i, d in enumerate(digits)) == k
    assert all(-8 <= d <= 8 for d in digits)
    naf = _ref._wnaf(k)
    assert sum(d * 2**i for i, d in enumerate(naf)) == k
    assert all(d == 0 or (d % 2 == 1 and -16 < d < 16) for d in naf)


def test_multi_mul_matches_separate_products() -> None:
    rng = random.Random("multi-mul")
    h = _ref.base_mul(rng.randrange(Q))
    g = _ref.base_mul(rng.randrange(Q))
    a, b = rng.randrange(2**256), rng.randrange(2**128)
    joint = _ref._multi_mul([(a, _ref._odd_multiples(h)), (b, _ref._odd_multiples(g))])
    separate = _ref.point_add(_ref.scalar_mul(a, h), _ref.scalar_mul(b, g))
    assert _ref.points_equal(joint, separate)


# --- the hostile encodings used by the negative tests ---------------------------------------------


def test_small_order_points_are_the_whole_torsion_group() -> None:
    points = [_ref.decode_point(b) for b in SMALL_ORDER_CANONICAL.values()]
    decoded = [p for p in points if p is not None]
    assert len(decoded) == 8
    encodings = {_ref.encode_point(p) for p in decoded}
    assert encodings == set(SMALL_ORDER_CANONICAL.values())  # canonical and distinct
    for p in decoded:
        assert _ref.is_identity(_ref.mul_cofactor(p))
        for other in decoded:  # closed under addition: a subgroup of order 8
            assert _ref.encode_point(_ref.point_add(p, other)) in encodings


@pytest.mark.parametrize("name", list(SMALL_ORDER_NON_CANONICAL))
def test_non_canonical_small_order_encodings_do_not_decode(name: str) -> None:
    assert _ref.decode_point(SMALL_ORDER_NON_CANONICAL[name]) is None


def test_large_order_small_y_list_is_exact() -> None:
    """Every y < 2^255 - p = 19 whose point exists and is not of small order, no more."""
    found = []
    for y in range(19):
        point = _ref.decode_point(enc(y))
        if point is not None and not _ref.is_identity(_ref.mul_cofactor(point)):
            found.append(y)
        assert _ref.decode_point(enc(y + P)) is None
    assert found == LARGE_ORDER_SMALL_Y


def test_off_curve_does_not_decode() -> None:
    assert _ref.decode_point(OFF_CURVE) is None
    assert _ref.decode_point(enc(2, 1)) is None


@settings(max_examples=100, deadline=None)
@given(b=st.binary(min_size=32, max_size=32))
def test_decode_encode_round_trip(b: bytes) -> None:
    point = _ref.decode_point(b)
    if point is not None:
        assert on_curve(point)
        assert _ref.encode_point(point) == b  # strict decoding: only canonical strings decode
