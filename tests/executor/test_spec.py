"""Job spec: every bound is enforced at construction and at decoding; decoding only raises
DecodeError; the canonical encoding round-trips."""

from __future__ import annotations

import contextlib
import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor import spec as S
from executor.errors import SpecError
from executor.spec import InputMode, JobSpec, Limits, NetworkPolicy, make_spec
from ledger.errors import DecodeError

DIGEST = "sha256:" + "ab" * 32


def good() -> JobSpec:
    return make_spec(DIGEST, ["sh", "-c", "echo hi"], env={"A": "1"}, input=b"in")


def test_round_trip_and_hashes() -> None:
    spec = good()
    data = spec.encode()
    assert JobSpec.decode(data) == spec
    assert S.spec_hash_of(data) == spec.spec_hash()
    assert spec.input_hash() != make_spec(DIGEST, ["sh"], input=b"other").input_hash()


LIMIT_CASES = [
    ("wall_time_ms", S.WALL_TIME_MS_MIN - 1),
    ("wall_time_ms", S.WALL_TIME_MS_MAX + 1),
    ("cpu_millicores", S.CPU_MILLICORES_MIN - 1),
    ("cpu_millicores", S.CPU_MILLICORES_MAX + 1),
    ("memory_bytes", S.MEMORY_BYTES_MIN - 1),
    ("memory_bytes", S.MEMORY_BYTES_MAX + 1),
    ("pids_max", S.PIDS_MAX_MIN - 1),
    ("pids_max", S.PIDS_MAX_MAX + 1),
    ("output_bytes_max", S.OUTPUT_BYTES_MAX_MAX + 1),
]


@pytest.mark.parametrize(("field", "value"), LIMIT_CASES)
def test_limits_out_of_bounds_are_rejected(field: str, value: int) -> None:
    with pytest.raises(SpecError, match=field):
        make_spec(DIGEST, ["true"], **{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("wall_time_ms", S.WALL_TIME_MS_MAX), ("memory_bytes", S.MEMORY_BYTES_MIN), ("pids_max", 4)],
)
def test_limits_at_bounds_are_accepted(field: str, value: int) -> None:
    assert getattr(make_spec(DIGEST, ["true"], **{field: value}).limits, field) == value


BAD_FIELDS = [
    ("version", 2, "version"),
    ("image_digest", "sha256:" + "AB" * 32, "image_digest"),
    ("image_digest", "posi/busybox:1", "image_digest"),
    ("image_ref", "Bad Ref", "image_ref"),
    ("argv", (), "argv"),
    ("argv", ("",), "argv"),
    ("argv", ("a\x00b",), "argv"),
    ("env", {"1X": "v"}, "env"),
    ("env", {"X": "a\x00"}, "env"),
    ("input", b"x" * (S.INPUT_BYTES_MAX + 1), "input"),
    ("network", NetworkPolicy.BRIDGE, "network"),  # deterministic jobs may not use the network
    ("argv", tuple("a" * 4000 for _ in range(20)), "bytes"),  # total above JOB_SPEC_BYTES_MAX
]


@pytest.mark.parametrize(("field", "value", "match"), BAD_FIELDS)
def test_bad_fields_are_rejected_by_name(field: str, value: object, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        dataclasses.replace(good(), **{field: value})


def test_non_deterministic_job_may_ask_for_network() -> None:
    spec = make_spec(DIGEST, ["true"], deterministic=False, network=NetworkPolicy.BRIDGE)
    assert spec.network is NetworkPolicy.BRIDGE


@pytest.mark.parametrize(("field", "value"), LIMIT_CASES)
def test_decoding_enforces_the_same_bounds(field: str, value: int) -> None:
    wire = list(msgpack.unpackb(good().encode()))
    limits = dict(zip([f.name for f in dataclasses.fields(Limits)], wire[7], strict=True))
    limits[field] = value
    wire[7] = list(limits.values())
    with pytest.raises(DecodeError, match=field):
        JobSpec.decode(msgpack.packb(wire))


def test_decoding_rejects_unknown_input_mode_and_trailing_bytes() -> None:
    wire = list(msgpack.unpackb(good().encode()))
    wire[6] = 7
    with pytest.raises(DecodeError, match="InputMode"):
        JobSpec.decode(msgpack.packb(wire))
    with pytest.raises(DecodeError):
        JobSpec.decode(good().encode() + b"\x00")
    assert InputMode(1) is InputMode.FILE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_of_random_bytes_only_raises_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        JobSpec.decode(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_decode_of_mutated_spec_only_raises_decode_error(pos: int, byte: int) -> None:
    data = bytearray(good().encode())
    data[pos % len(data)] = byte
    with contextlib.suppress(DecodeError):
        JobSpec.decode(bytes(data))
