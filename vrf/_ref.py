"""Pure-Python ECVRF-EDWARDS25519-SHA512-TAI (0x03) and -ELL2 (0x04), RFC 9381.

The reference backend: written to be read against RFC 9381 section 5, RFC 8032 (key derivation,
point encoding) and RFC 9380 (hash_to_curve for ELL2), and fast enough that sortition can fall
back to it (extended coordinates, a precomputed radix-16 table for the base point, wNAF windows
for the other points, Straus interleaving in verify).

It is NOT constant-time: Python integers leak timing through their size and every branch here
is taken on data. The secret scalar and the nonce go through `pow`, big-int multiplication and
table lookups whose timing depends on their value. Use the C backend when an attacker can time
this process (see vrf/README.md).

Backend contract (shared with vrf/_cbackend.py): every public function takes bytes and an int
suite, returns bytes, raises UnsupportedSuite for a suite other than 0x03/0x04, TypeError for a
non-bytes argument, InvalidKey for a bad key, InvalidProof for a bad proof.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import NamedTuple

from vrf._args import (
    BETA_LEN,
    C_LEN,
    KEY_LEN,
    PROOF_LEN,
    PT_LEN,
    Q_LEN,
    SUITE_ELL2,
    SUITE_TAI,
    check_bytes,
    check_secret,
    check_suite,
)
from vrf.errors import InvalidKey, InvalidProof, VRFError

__all__ = ["BETA_LEN", "KEY_LEN", "PROOF_LEN", "SUITE_ELL2", "SUITE_TAI"]

# --- field and group constants (RFC 8032 section 5.1) --------------------------------------------

P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, -1, P)) % P
_D2 = (2 * D) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
_COFACTOR_LOG2 = 3  # cofactor 8 = three doublings
_MASK_255 = (1 << 255) - 1

# Domain separators of RFC 9381 section 5.4 (front/back bytes around each hash input).
_E2C_FRONT = b"\x01"
_E2C_BACK = b"\x00"
_CHALLENGE_FRONT = b"\x02"
_CHALLENGE_BACK = b"\x00"
_P2H_FRONT = b"\x03"
_P2H_BACK = b"\x00"

# Try-and-increment counter is one byte (int_to_string(ctr, 1)); each try succeeds with
# probability ~1/2, so running out of 256 tries happens with probability ~2^-256.
_TAI_CTR_LIMIT = 256

# RFC 9380 suite edwards25519_XMD:SHA-512_ELL2_NU_ and RFC 9381 section 5.4.1.2:
# DST = "ECVRF_" || h2c_suite_ID_string || suite_string.
H2C_SUITE_ID = b"edwards25519_XMD:SHA-512_ELL2_NU_"
H2C_DST = b"ECVRF_" + H2C_SUITE_ID + bytes([SUITE_ELL2])
# hash_to_field with one element: L = ceil((ceil(log2(p)) + k) / 8) = ceil((255 + 128) / 8) = 48.
_H2C_L = 48
# expand_message_xmd over SHA-512: b_in_bytes = 64, s_in_bytes (block size) = 128.
_XMD_B_IN_BYTES = 64
_XMD_S_IN_BYTES = 128
# RFC 9380 section 5.3.1: ell = ceil(len_in_bytes / b_in_bytes) must be <= 255, len <= 65535.
_XMD_ELL_MAX = 255
_XMD_DST_MAX = 255

# Elligator 2 on curve25519 (RFC 9380 section 6.7.1 with Z = 2, J = 486662, K = 1).
_ELL2_Z = 2
_ELL2_J = 486662


def _sqrt_even(a: int) -> int:
    """The square root of a with sgn0 = 0 (even), a assumed square."""
    r = pow(a, (P + 3) // 8, P)
    if (r * r - a) % P:
        r = r * SQRT_M1 % P
    if (r * r - a) % P:
        raise AssertionError("not a square")  # only reached on a bug: a constant is square
    return P - r if r & 1 else r


# sqrt(-486664) with sgn0 = 0, for the rational map curve25519 -> edwards25519 (RFC 9380 6.8.2).
_ELL2_EDWARDS_C1 = _sqrt_even((-486664) % P)

# A point in extended homogeneous coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, x*y = T/Z.
Point = tuple[int, int, int, int]
# A point in "cached" form (Y+X, Y-X, 2Z, 2dT): one addition with it costs 8 multiplications.
_Cached = tuple[int, int, int, int]
# An affine point in "Niels" form (y+x, y-x, 2dxy): one addition with it costs 7 multiplications.
_Niels = tuple[int, int, int]

IDENTITY: Point = (0, 1, 1, 0)
_BY = 4 * pow(5, -1, P) % P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
BASE: Point = (_BX, _BY, 1, _BX * _BY % P)

# --- point arithmetic (RFC 8032 section 5.1.4 formulas, a = -1) ----------------------------------


def point_add(p1: Point, p2: Point) -> Point:
    """p1 + p2 (complete formula: valid for doubling and the identity too)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_double(p1: Point) -> Point:
    """2 * p1."""
    x1, y1, z1, _ = p1
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_neg(p1: Point) -> Point:
    """-p1."""
    x1, y1, z1, t1 = p1
    return (-x1 % P, y1, z1, -t1 % P)


def _to_cached(p1: Point) -> _Cached:
    x1, y1, z1, t1 = p1
    return ((y1 + x1) % P, (y1 - x1) % P, 2 * z1 % P, t1 * _D2 % P)


def _add_cached(p1: Point, c2: _Cached) -> Point:
    x1, y1, z1, t1 = p1
    yp, ym, z2x2, t2d = c2
    a = (y1 - x1) * ym % P
    b = (y1 + x1) * yp % P
    c = t1 * t2d % P
    d = z1 * z2x2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _sub_cached(p1: Point, c2: _Cached) -> Point:
    x1, y1, z1, t1 = p1
    yp, ym, z2x2, t2d = c2
    a = (y1 - x1) * yp % P
    b = (y1 + x1) * ym % P
    c = t1 * t2d % P
    d = z1 * z2x2 % P
    e, f, g, h = b - a, d + c, d - c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _add_niels(p1: Point, n2: _Niels) -> Point:
    x1, y1, z1, t1 = p1
    yp, ym, xy2d = n2
    a = (y1 - x1) * ym % P
    b = (y1 + x1) * yp % P
    c = t1 * xy2d % P
    d = 2 * z1
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _sub_niels(p1: Point, n2: _Niels) -> Point:
    x1, y1, z1, t1 = p1
    yp, ym, xy2d = n2
    a = (y1 - x1) * yp % P
    b = (y1 + x1) * ym % P
    c = t1 * xy2d % P
    d = 2 * z1
    e, f, g, h = b - a, d + c, d - c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def is_identity(p1: Point) -> bool:
    """Whether p1 is the neutral element (0, 1)."""
    x1, y1, z1, _ = p1
    return x1 % P == 0 and (y1 - z1) % P == 0


def points_equal(p1: Point, p2: Point) -> bool:
    """Projective equality."""
    x1, y1, z1, _ = p1
    x2, y2, z2, _ = p2
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def mul_cofactor(p1: Point) -> Point:
    """8 * p1."""
    for _ in range(_COFACTOR_LOG2):
        p1 = point_double(p1)
    return p1


# --- encoding (RFC 8032 sections 5.1.2 and 5.1.3) ------------------------------------------------


def encode_point(p1: Point) -> bytes:
    """The 32-byte RFC 8032 encoding: y little-endian, the parity of x in bit 255."""
    x1, y1, z1, _ = p1
    zi = pow(z1, -1, P)
    x = x1 * zi % P
    y = y1 * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode_point(s: bytes) -> Point | None:
    """Strict RFC 8032 decoding; None unless s is the canonical encoding of a curve point.

    Rejects y >= p (non-canonical), points off the curve, and x = 0 with the sign bit set.
    """
    if len(s) != 32:
        return None
    n = int.from_bytes(s, "little")
    sign = n >> 255
    y = n & _MASK_255
    if y >= P:
        return None
    yy = y * y % P
    u = (yy - 1) % P
    v = (D * yy + 1) % P
    # x = (u/v)^((p+3)/8) computed as u v^3 (u v^7)^((p-5)/8): one exponentiation, no inversion.
    v3 = v * v % P * v % P
    x = u * v3 % P * pow(u * v3 % P * v3 % P * v % P, (P - 5) // 8, P) % P
    vxx = v * x % P * x % P
    if vxx != u:
        if vxx != (-u) % P:
            return None
        x = x * SQRT_M1 % P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _batch_to_niels(points: list[Point]) -> list[_Niels]:
    """Affine Niels forms of many points with one inversion (Montgomery's trick)."""
    prefix = []
    acc = 1
    for pt in points:
        prefix.append(acc)
        acc = acc * pt[2] % P
    inv = pow(acc, -1, P)
    out: list[_Niels] = [(0, 0, 0)] * len(points)
    for i in range(len(points) - 1, -1, -1):
        x1, y1, z1, _ = points[i]
        zi = inv * prefix[i] % P
        inv = inv * z1 % P
        x = x1 * zi % P
        y = y1 * zi % P
        out[i] = ((y + x) % P, (y - x) % P, x * y % P * _D2 % P)
    return out


# --- scalar multiplication -----------------------------------------------------------------------

# Fixed-base table: for each of the 64 radix-16 positions i, the multiples j * 16^i * B for
# j = 1..8 (signed digits in [-8, 8] reach every value). 512 affine points, built on first use.
_FIXED_BASE_WINDOWS = 64
_FIXED_BASE_DIGIT_MAX = 8


@cache
def _base_table() -> tuple[tuple[_Niels, ...], ...]:
    rows: list[Point] = []
    step = BASE
    for _ in range(_FIXED_BASE_WINDOWS):
        acc = step
        for _ in range(_FIXED_BASE_DIGIT_MAX):
            rows.append(acc)
            acc = point_add(acc, step)
        for _ in range(4):
            step = point_double(step)
    niels = _batch_to_niels(rows)
    n = _FIXED_BASE_DIGIT_MAX
    return tuple(tuple(niels[i * n : (i + 1) * n]) for i in range(_FIXED_BASE_WINDOWS))


def _radix16_signed(k: int) -> list[int]:
    """Digits e_i in [-8, 8) (the top one in [-8, 8]) with k = sum e_i 16^i; needs k < 2^255."""
    digits = [(k >> (4 * i)) & 15 for i in range(_FIXED_BASE_WINDOWS)]
    carry = 0
    for i in range(_FIXED_BASE_WINDOWS - 1):
        digits[i] += carry
        carry = (digits[i] + 8) >> 4
        digits[i] -= carry << 4
    digits[-1] += carry
    return digits


def base_mul(k: int) -> Point:
    """k * B for 0 <= k (reduced mod q first: B has order q)."""
    table = _base_table()
    acc = IDENTITY
    for i, e in enumerate(_radix16_signed(k % Q)):
        if e > 0:
            acc = _add_niels(acc, table[i][e - 1])
        elif e < 0:
            acc = _sub_niels(acc, table[i][-e - 1])
    return acc


# wNAF width for variable-base multiplication: width 5 means a table of 8 odd multiples and one
# addition per ~6 bits, the usual optimum for 128-256 bit scalars.
_WNAF_WIDTH = 5


def _wnaf(k: int, width: int = _WNAF_WIDTH) -> list[int]:
    """Width-w NAF digits of k >= 0, least significant first (odd digits in (-2^(w-1), 2^(w-1)))."""
    out: list[int] = []
    full = 1 << width
    half = 1 << (width - 1)
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        out.append(d)
        k >>= 1
    return out


def _odd_multiples(p1: Point, width: int = _WNAF_WIDTH) -> list[_Cached]:
    """Cached forms of P, 3P, 5P, ..., (2^(w-1) - 1) P."""
    twice = point_double(p1)
    acc = p1
    out = [_to_cached(acc)]
    for _ in range((1 << (width - 2)) - 1):
        acc = point_add(acc, twice)
        out.append(_to_cached(acc))
    return out


def _multi_mul(terms: list[tuple[int, list[_Cached]]]) -> Point:
    """sum k_i * P_i (Straus interleaving over wNAF digits; P_i given by odd-multiple tables)."""
    nafs = [(_wnaf(k), table) for k, table in terms]
    top = max((len(n) for n, _ in nafs), default=0)
    acc = IDENTITY
    for i in range(top - 1, -1, -1):
        acc = point_double(acc)
        for naf, table in nafs:
            if i < len(naf):
                d = naf[i]
                if d > 0:
                    acc = _add_cached(acc, table[d >> 1])
                elif d < 0:
                    acc = _sub_cached(acc, table[(-d) >> 1])
    return acc


def scalar_mul(k: int, p1: Point) -> Point:
    """k * p1 for any k >= 0 and any point (not reduced: p1 may have a small-order component)."""
    return _multi_mul([(k, _odd_multiples(p1))])


# --- hashing helpers -----------------------------------------------------------------------------


def _sha512(*parts: bytes) -> bytes:
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return h.digest()


def _suite_string(suite: int) -> bytes:
    return bytes([check_suite(suite)])


# --- keys (RFC 8032 section 5.1.5) ---------------------------------------------------------------


def _expand_secret(sk: bytes) -> tuple[int, bytes]:
    """(x, prefix): the clamped secret scalar and the second half of SHA-512(sk)."""
    h = _sha512(sk)
    x = int.from_bytes(h[:32], "little")
    x &= (1 << 254) - 8
    x |= 1 << 254
    return x, h[32:]


def secret_scalar(sk: bytes) -> bytes:
    """The secret scalar x of RFC 9381 (RFC 8032 clamped), 32 bytes little-endian."""
    x, _ = _expand_secret(check_secret(sk))
    return x.to_bytes(32, "little")


def public_key(sk: bytes) -> bytes:
    """The 32-byte public key Y = x*B of the 32-byte seed sk.

    Raises TypeError if sk is not bytes and InvalidKey if it is not 32 bytes long.
    """
    x, _ = _expand_secret(check_secret(sk))
    return encode_point(base_mul(x))


def _decode_public_key(pk: object) -> Point:
    """ECVRF_validate_key (RFC 9381 section 5.4.5) with strict decoding."""
    pk = check_bytes("pk", pk)
    if len(pk) != PT_LEN:
        raise InvalidKey(f"public key must be {PT_LEN} bytes, got {len(pk)}")
    y = decode_point(pk)
    if y is None:
        raise InvalidKey(
            f"public key is not the canonical encoding of an edwards25519 point: {pk.hex()}"
        )
    if is_identity(mul_cofactor(y)):
        raise InvalidKey(
            f"public key is a small-order point (rejected by RFC 9381 5.4.5): {pk.hex()}"
        )
    return y


def validate_key(suite: int, pk: bytes) -> None:
    """RFC 9381 ECVRF_validate_key: pk must decode canonically and not be of small order.

    Raises UnsupportedSuite for an unknown suite, TypeError if pk is not bytes, and InvalidKey
    otherwise; the caller must reject the key (never retry with it).
    """
    _suite_string(suite)
    _decode_public_key(pk)


# --- encode_to_curve (RFC 9381 section 5.4.1) ----------------------------------------------------


def encode_to_curve_tai(suite_string: bytes, salt: bytes, alpha: bytes) -> tuple[Point, int]:
    """ECVRF_encode_to_curve_try_and_increment: (H, ctr used)."""
    for ctr in range(_TAI_CTR_LIMIT):
        digest = _sha512(suite_string, _E2C_FRONT, salt, alpha, bytes([ctr]), _E2C_BACK)
        h = decode_point(digest[:32])
        if h is not None:
            h = mul_cofactor(h)
            if not is_identity(h):
                return h, ctr
    # Unreachable in practice (probability ~2^-256); RFC 9381 leaves the loop unbounded but its
    # counter is one byte, so the honest answer is to fail.
    raise VRFError("encode_to_curve try-and-increment exhausted its one-byte counter")


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 section 5.3.1 expand_message_xmd with SHA-512."""
    ell = -(-len_in_bytes // _XMD_B_IN_BYTES)
    if ell > _XMD_ELL_MAX or len(dst) > _XMD_DST_MAX:
        raise ValueError("expand_message_xmd: output too long or DST too long")
    dst_prime = dst + bytes([len(dst)])
    msg_prime = bytes(_XMD_S_IN_BYTES) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    b0 = _sha512(msg_prime)
    bi = _sha512(b0, b"\x01", dst_prime)
    out = [bi]
    for i in range(2, ell + 1):
        bi = _sha512(bytes(a ^ b for a, b in zip(b0, bi, strict=True)), bytes([i]), dst_prime)
        out.append(bi)
    return b"".join(out)[:len_in_bytes]


def _is_square(a: int) -> bool:
    return pow(a, (P - 1) // 2, P) in (0, 1)


def _sqrt_any(a: int) -> int:
    """A square root of a square a (either sign)."""
    r = pow(a, (P + 3) // 8, P)
    if (r * r - a) % P:
        r = r * SQRT_M1 % P
    return r


class H2CTrace(NamedTuple):
    """The steps of RFC 9380 encode_to_curve for edwards25519_XMD:SHA-512_ELL2_NU_."""

    uniform_bytes: bytes  # expand_message_xmd output, L = 48 bytes
    u: int  # hash_to_field output (one field element)
    gx1: int  # Elligator 2 candidate g(x1) on curve25519
    gx1_is_square: bool  # whether x1 (rather than x2) was used
    q: Point  # map_to_curve output on edwards25519 (before clearing the cofactor)
    p: Point  # 8 * q, the encode_to_curve output


def map_to_curve_ell2(u: int) -> tuple[Point, int, bool]:
    """RFC 9380 map_to_curve_elligator2_edwards25519 of a field element u.

    Returns (point, gx1, gx1_is_square): the point is on edwards25519, not yet cofactor-cleared.
    """
    # map_to_curve_elligator2 for curve25519 (RFC 9380 section 6.7.1).
    tv1 = _ELL2_Z * u * u % P
    if tv1 == P - 1:
        tv1 = 0
    x1 = (-_ELL2_J) * pow(1 + tv1, -1, P) % P
    gx1 = (x1 * x1 % P * x1 + _ELL2_J * x1 * x1 + x1) % P
    e2 = _is_square(gx1)
    if e2:
        x, y2 = x1, gx1
    else:
        x, y2 = (-x1 - _ELL2_J) % P, tv1 * gx1 % P
    y = _sqrt_any(y2)
    # Steps 12-13 (y = -y if e2 XOR sgn0(y)): sgn0(y) ends equal to e2, whichever root we got.
    if bool(y & 1) != e2:
        y = (-y) % P
    # Rational map curve25519 (s, t) -> edwards25519 (v, w) (RFC 9380 section 6.8.2):
    # v = c1 * s / t, w = (s - 1) / (s + 1), one inversion; (0, 1) when a denominator is 0.
    s, t = x, y
    den = t * (s + 1) % P
    if den == 0:
        v, w = 0, 1
    else:
        inv = pow(den, -1, P)
        v = _ELL2_EDWARDS_C1 * s % P * (s + 1) % P * inv % P
        w = (s - 1) * t % P * inv % P
    return (v, w, 1, v * w % P), gx1, e2


def h2c_encode_to_curve(msg: bytes, dst: bytes) -> H2CTrace:
    """RFC 9380 encode_to_curve (NU) for edwards25519 with SHA-512 and Elligator 2, any DST."""
    uniform = expand_message_xmd(msg, dst, _H2C_L)
    u = int.from_bytes(uniform, "big") % P  # hash_to_field: OS2IP (big-endian) mod p
    q_point, gx1, e2 = map_to_curve_ell2(u)
    return H2CTrace(uniform, u, gx1, e2, q_point, mul_cofactor(q_point))


def affine(p1: Point) -> tuple[int, int]:
    """(x, y) of a point."""
    x1, y1, z1, _ = p1
    zi = pow(z1, -1, P)
    return x1 * zi % P, y1 * zi % P


def encode_to_curve_ell2(salt: bytes, alpha: bytes) -> Point:
    """ECVRF_encode_to_curve_h2c_suite: RFC 9380 encode_to_curve on salt || alpha."""
    return h2c_encode_to_curve(salt + alpha, H2C_DST).p


def ell2_intermediates(pk: bytes, alpha: bytes) -> dict[str, bytes | bool]:
    """The RFC 9380 intermediates of the ELL2 encode_to_curve of (pk, alpha), for the vectors.

    Keys: "h2c_uniform_bytes" (48 bytes), "h2c_u" and "h2c_gx1" (32-byte little-endian field
    elements, the vectors' format), "h2c_gx1_is_square" (bool), "h" (32-byte point encoding).
    """
    trace = h2c_encode_to_curve(check_bytes("pk", pk) + check_bytes("alpha", alpha), H2C_DST)
    return {
        "h2c_uniform_bytes": trace.uniform_bytes,
        "h2c_u": trace.u.to_bytes(32, "little"),
        "h2c_gx1": trace.gx1.to_bytes(32, "little"),
        "h2c_gx1_is_square": trace.gx1_is_square,
        "h": encode_point(trace.p),
    }


def tai_intermediates(pk: bytes, alpha: bytes) -> tuple[bytes, int]:
    """(h, ctr) of the TAI encode_to_curve of (pk, alpha), for the vectors' tai_ctr."""
    check_bytes("pk", pk)
    check_bytes("alpha", alpha)
    point, ctr = encode_to_curve_tai(bytes([SUITE_TAI]), pk, alpha)
    return encode_point(point), ctr


def _encode_to_curve(suite_string: bytes, salt: bytes, alpha: bytes) -> Point:
    if suite_string[0] == SUITE_TAI:
        return encode_to_curve_tai(suite_string, salt, alpha)[0]
    return encode_to_curve_ell2(salt, alpha)


# --- nonce, challenge, proof_to_hash -------------------------------------------------------------


def nonce_k_string(sk: bytes, h_string: bytes) -> bytes:
    """RFC 9381 section 5.4.2.2 k_string = SHA-512(SHA-512(sk)[32:64] || h_string)."""
    _, prefix = _expand_secret(check_secret(sk))
    return _sha512(prefix, check_bytes("h_string", h_string))


def _challenge(suite_string: bytes, encoded_points: list[bytes]) -> bytes:
    """ECVRF_challenge_generation (RFC 9381 section 5.4.3): the first cLen bytes of the hash."""
    return _sha512(suite_string, _CHALLENGE_FRONT, *encoded_points, _CHALLENGE_BACK)[:C_LEN]


def _gamma_to_hash(suite_string: bytes, gamma: Point) -> bytes:
    """RFC 9381 section 5.2 proof_to_hash of a decoded Gamma."""
    return _sha512(suite_string, _P2H_FRONT, encode_point(mul_cofactor(gamma)), _P2H_BACK)


def _decode_proof(pi: object) -> tuple[Point, int, int]:
    """ECVRF_decode_proof (RFC 9381 section 5.4.4), strict: canonical Gamma, s < q."""
    pi = check_bytes("pi", pi)
    if len(pi) != PROOF_LEN:
        raise InvalidProof(f"proof must be {PROOF_LEN} bytes, got {len(pi)}")
    gamma = decode_point(pi[:PT_LEN])
    if gamma is None:
        raise InvalidProof("proof Gamma is not the canonical encoding of an edwards25519 point")
    c = int.from_bytes(pi[PT_LEN : PT_LEN + C_LEN], "little")
    s = int.from_bytes(pi[PT_LEN + C_LEN :], "little")
    if s >= Q:
        raise InvalidProof("proof scalar s is not reduced (s >= q)")
    return gamma, c, s


def proof_to_hash(suite: int, pi: bytes) -> bytes:
    """beta = ECVRF_proof_to_hash(pi), 64 bytes.

    Does not verify the proof: only use beta from a proof that `verify` accepted (verify returns
    the same beta). Raises UnsupportedSuite, TypeError, or InvalidProof if pi does not decode.
    """
    suite_string = _suite_string(suite)
    gamma, _, _ = _decode_proof(pi)
    return _gamma_to_hash(suite_string, gamma)


# --- prove and verify (RFC 9381 sections 5.1 and 5.3) --------------------------------------------


def prove_trace(suite: int, sk: bytes, alpha: bytes) -> dict[str, bytes]:
    """ECVRF_prove with its intermediates: h, k, u, v, gamma, c, s, pi, beta (see the contract).

    Raises UnsupportedSuite, TypeError, or InvalidKey (sk not 32 bytes).
    """
    suite_string = _suite_string(suite)
    sk = check_secret(sk)
    alpha = check_bytes("alpha", alpha)
    x, prefix = _expand_secret(sk)
    y_point = base_mul(x)
    pk = encode_point(y_point)
    h_point = _encode_to_curve(suite_string, pk, alpha)
    h_string = encode_point(h_point)
    h_table = _odd_multiples(h_point)
    # x and k act on H, which has order q after cofactor clearing: reduce them first.
    gamma = _multi_mul([(x % Q, h_table)])
    k = int.from_bytes(_sha512(prefix, h_string), "little") % Q
    u_point = base_mul(k)
    v_point = _multi_mul([(k, h_table)])
    gamma_string = encode_point(gamma)
    u_string = encode_point(u_point)
    v_string = encode_point(v_point)
    c_string = _challenge(suite_string, [pk, h_string, gamma_string, u_string, v_string])
    c = int.from_bytes(c_string, "little")
    s = (k + c * x) % Q
    s_string = s.to_bytes(Q_LEN, "little")
    pi = gamma_string + c_string + s_string
    return {
        "h": h_string,
        "k": k.to_bytes(32, "little"),
        "u": u_string,
        "v": v_string,
        "gamma": gamma_string,
        "c": c_string,
        "s": s_string,
        "pi": pi,
        "beta": _gamma_to_hash(suite_string, gamma),
    }


def prove(suite: int, sk: bytes, alpha: bytes) -> bytes:
    """The 80-byte proof pi = Gamma || c || s of alpha under the 32-byte seed sk.

    Raises UnsupportedSuite, TypeError, or InvalidKey (sk not 32 bytes). Deterministic: the
    same (suite, sk, alpha) always gives the same pi.
    """
    return prove_trace(suite, sk, alpha)["pi"]


def verify(suite: int, pk: bytes, pi: bytes, alpha: bytes) -> bytes:
    """ECVRF_verify with validate_key: returns the 64-byte beta if pi proves alpha under pk.

    Raises UnsupportedSuite or TypeError for caller errors; InvalidKey if pk is malformed,
    non-canonical or of small order (reject the key); InvalidProof if pi has the wrong length,
    a non-canonical Gamma, s >= q, or fails the equation (treat the output as absent and, if a
    peer sent it, penalise the peer).
    """
    suite_string = _suite_string(suite)
    y_point = _decode_public_key(pk)
    alpha = check_bytes("alpha", alpha)
    gamma, c, s = _decode_proof(pi)
    h_point = _encode_to_curve(suite_string, pk, alpha)
    # U = s*B - c*Y and V = s*H - c*Gamma; -c is folded into the negated points' tables.
    u_point = point_add(base_mul(s), _multi_mul([(c, _odd_multiples(point_neg(y_point)))]))
    v_point = _multi_mul([(s, _odd_multiples(h_point)), (c, _odd_multiples(point_neg(gamma)))])
    c_check = _challenge(
        suite_string,
        [pk, encode_point(h_point), pi[:PT_LEN], encode_point(u_point), encode_point(v_point)],
    )
    if c_check != pi[PT_LEN : PT_LEN + C_LEN]:
        raise InvalidProof("proof does not verify for this public key and alpha")
    return _gamma_to_hash(suite_string, gamma)
