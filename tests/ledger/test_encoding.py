"""Canonical encoding: round trips, strictness, malformed bytes only raise DecodeError."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from typing import Annotated

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import U8, U64, Bytes32, MaxItems, MaxLen, Record
from ledger.errors import DecodeError, EncodeError


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Inner(Record):
    tag: U8
    blob: Annotated[bytes, MaxLen(8)]


@dataclasses.dataclass(frozen=True, slots=True)
class Outer(Record):
    MAX_BYTES = 4096
    height: U64
    key: Bytes32
    name: Annotated[str, MaxLen(16)]
    color: Color
    flag: bool
    inner: Inner
    items: Annotated[tuple[Inner, ...], MaxItems(4)]
    table: Annotated[dict[Bytes32, U64], MaxItems(4)]
    maybe: U64 | None


def sample() -> Outer:
    return Outer(
        height=7,
        key=b"k" * 32,
        name="node-1",
        color=Color.BLUE,
        flag=True,
        inner=Inner(1, b"ab"),
        items=(Inner(2, b""), Inner(3, b"xyz")),
        table={b"b" * 32: 2, b"a" * 32: 1},
        maybe=None,
    )


def test_round_trip_and_sorted_maps() -> None:
    rec = sample()
    data = rec.encode()
    assert Outer.decode(data) == rec
    # dict insertion order does not change the encoding
    other = dataclasses.replace(rec, table={b"a" * 32: 1, b"b" * 32: 2})
    assert other.encode() == data


def wire() -> list[object]:
    return msgpack.unpackb(sample().encode(), use_list=True, raw=False, strict_map_key=False)


def repack(w: object) -> bytes:
    return msgpack.packb(w, use_bin_type=True)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda w: w.append(1), "unknown fields"),
        (lambda w: w.pop(), "missing fields"),
        (lambda w: w.__setitem__(0, 7.0), "expected an int"),
        (lambda w: w.__setitem__(0, True), "expected an int"),
        (lambda w: w[5].__setitem__(0, 300), "outside"),
        (lambda w: w.__setitem__(1, b"k" * 31), "exactly 32"),
        (lambda w: w.__setitem__(2, b"node"), "expected str"),
        (lambda w: w.__setitem__(2, "x" * 17), "exceeds"),
        (lambda w: w.__setitem__(3, 9), "not a valid Color"),
        (lambda w: w.__setitem__(4, 1), "expected bool"),
        (lambda w: w.__setitem__(6, [[1, b""]] * 5), "exceeds the maximum of 4"),
        (lambda w: w.__setitem__(7, [1]), "expected a map"),
    ],
)
def test_schema_violations_are_rejected_with_a_reason(mutate: object, reason: str) -> None:
    w = wire()
    mutate(w)  # type: ignore[operator]
    with pytest.raises(DecodeError, match=reason):
        Outer.decode(repack(w))


def test_trailing_bytes_rejected() -> None:
    with pytest.raises(DecodeError, match="not canonical msgpack"):
        Outer.decode(sample().encode() + b"\x00")


def test_duplicate_and_unsorted_keys_rejected() -> None:
    data = sample().encode()
    a, b = b"\xc4\x20" + b"a" * 32, b"\xc4\x20" + b"b" * 32
    swapped = data.replace(a + b"\x01", b"TMP").replace(b + b"\x02", a + b"\x01").replace(
        b"TMP", b + b"\x02"
    )
    assert swapped != data
    with pytest.raises(DecodeError, match="sorted"):
        Outer.decode(swapped)
    dup = data.replace(b + b"\x02", a + b"\x01")
    with pytest.raises(DecodeError, match="duplicate"):
        Outer.decode(dup)


def test_non_minimal_int_rejected() -> None:
    data = sample().encode()
    # height 7 is a positive fixint (0x07); the same value as uint64 is a non-canonical form
    assert data[1] == 0x07
    longer = data[:1] + b"\xcf" + (7).to_bytes(8, "big") + data[2:]
    with pytest.raises(DecodeError, match="non-canonical"):
        Outer.decode(longer)


def test_oversized_input_rejected_before_parsing() -> None:
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        Outer.decode(b"\x00" * 5000)


def test_encode_checks_bounds() -> None:
    with pytest.raises(EncodeError, match="height"):
        dataclasses.replace(sample(), height=-1).encode()


@given(st.binary(max_size=300))
def test_fuzzed_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Outer.decode(data)


@given(st.integers(0, 2**64 - 1), st.binary(min_size=0, max_size=8), st.text(max_size=4))
def test_every_record_round_trips_and_single_byte_changes_never_crash(
    height: int, blob: bytes, name: str
) -> None:
    rec = dataclasses.replace(sample(), height=height, name=name, inner=Inner(0, blob))
    data = rec.encode()
    assert Outer.decode(data) == rec
    for i in range(0, len(data), 7):
        mutated = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]
        with contextlib.suppress(DecodeError):
            assert Outer.decode(mutated) != rec
