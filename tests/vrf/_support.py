"""Data shared by the vrf tests: the RFC 9381 vectors and the hostile encodings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_PATH = Path(__file__).with_name("ecvrf_rfc9381.json")
SUITE_TAI = 0x03
SUITE_ELL2 = 0x04
SUITES = [SUITE_TAI, SUITE_ELL2]
SUITE_IDS = ["tai", "ell2"]

P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493


def load_vectors() -> list[dict[str, Any]]:
    """The edwards25519 examples (16-21) of RFC 9381 Appendix B, hex decoded."""
    raw = json.loads(VECTORS_PATH.read_text())
    out = []
    for entry in raw:
        if not entry["suite"].startswith("ECVRF-EDWARDS25519"):
            continue
        vec: dict[str, Any] = {}
        for key, value in entry.items():
            if key in ("suite", "source", "example", "tai_ctr", "h2c_gx1_is_square"):
                vec[key] = value
            else:
                vec[key] = bytes.fromhex(value)
        vec["suite_int"] = vec["suite_string"][0]
        out.append(vec)
    return out


VECTORS = load_vectors()
VECTOR_IDS = [f"ex{v['example']}" for v in VECTORS]


def vector_of(example: int) -> dict[str, Any]:
    """The vector of one RFC example number."""
    return next(v for v in VECTORS if v["example"] == example)


def enc(y: int, sign: int = 0) -> bytes:
    """A 32-byte point encoding with y (any value < 2^255) and the x sign bit."""
    return (y | (sign << 255)).to_bytes(32, "little")


# The 8 points of small order on edwards25519 (the torsion subgroup), canonical encodings.
SMALL_ORDER_CANONICAL = {
    "identity (order 1)": enc(1),
    "(0, -1) (order 2)": enc(P - 1),
    "(+sqrt(-1), 0) (order 4)": enc(0),
    "(-sqrt(-1), 0) (order 4)": enc(0, 1),
    "order 8, y=0x05fc.. sign 0": bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
    ),
    "order 8, y=0x05fc.. sign 1": bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"
    ),
    "order 8, y=0x7a03.. sign 0": bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
    ),
    "order 8, y=0x7a03.. sign 1": bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
    ),
}

# Non-canonical encodings of small-order points: y + p for y in {0, 1} (the only small-order y
# values below 2^255 - p = 19), and the sign bit set on a point whose x is 0.
SMALL_ORDER_NON_CANONICAL = {
    "identity with sign bit": enc(1, 1),
    "(0, -1) with sign bit": enc(P - 1, 1),
    "y = p (order 4), sign 0": enc(P),
    "y = p (order 4), sign 1": enc(P, 1),
    "y = p + 1 (identity), sign 0": enc(P + 1),
    "y = p + 1 (identity), sign 1": enc(P + 1, 1),
}

SMALL_ORDER_ALL = {**SMALL_ORDER_CANONICAL, **SMALL_ORDER_NON_CANONICAL}

# y values below 19 whose points are on the curve and NOT of small order: their y + p encodings
# are non-canonical encodings of otherwise acceptable keys, the case a lax decoder gets wrong.
LARGE_ORDER_SMALL_Y = [3, 4, 5, 6, 9, 10, 14, 15, 16, 18]

# y = 2 is not on the curve ((y^2 - 1) / (d y^2 + 1) is not a square).
OFF_CURVE = enc(2)
