"""Property tests: every proof verifies, every single-bit flip of a proof fails, and the C and
Python backends agree byte for byte.

The pure-Python backend takes a few milliseconds per prove or verify, so the default tier keeps
example counts small; the `slow` tier repeats the same properties with many more examples.
"""

from __future__ import annotations

import random
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vrf
from tests.vrf._support import SUITE_IDS, SUITES, Q
from vrf.errors import InvalidKey, InvalidProof, VRFError

PROOF_BITS = 80 * 8
# Default tier: ~25 examples keeps each property under a second on the Python backend.
FAST_EXAMPLES = 25
# Slow tier: enough examples to hit rare paths (TAI counters > 1, non-square gx1, ...).
SLOW_EXAMPLES = 400
# alpha in sortition is a 32-byte seed; 96 bytes also crosses SHA-512 block boundaries.
ALPHA_MAX_BYTES = 96

fast = settings(max_examples=FAST_EXAMPLES, deadline=None)
slow = settings(max_examples=SLOW_EXAMPLES, deadline=None)

seeds = st.binary(min_size=32, max_size=32)
alphas = st.binary(max_size=ALPHA_MAX_BYTES)
suite_values = st.sampled_from(SUITES)
bits = st.integers(min_value=0, max_value=PROOF_BITS - 1)


def flip(pi: bytes, bit: int) -> bytes:
    b = bytearray(pi)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.fixture(scope="module")
def both() -> tuple[ModuleType, ModuleType]:
    """(python, c) backends; fails if the C extension is not built."""
    try:
        return vrf.backend_module("python"), vrf.backend_module("c")
    except vrf.BackendUnavailable as exc:
        pytest.fail(f"the differential tests need both backends: {exc}")


# --- completeness: honest proofs verify ---------------------------------------------------------


def check_proof_verifies(backend: ModuleType, seed: bytes, alpha: bytes, suite: int) -> None:
    pk = backend.public_key(seed)
    assert backend.validate_key(suite, pk) is None
    pi = backend.prove(suite, seed, alpha)
    assert len(pi) == 80
    beta = backend.verify(suite, pk, pi, alpha)
    assert len(beta) == 64
    assert beta == backend.proof_to_hash(suite, pi)


@fast
@given(seed=seeds, alpha=alphas, suite=suite_values)
def test_every_proof_verifies(backend: ModuleType, seed: bytes, alpha: bytes, suite: int) -> None:
    check_proof_verifies(backend, seed, alpha, suite)


@pytest.mark.slow
@slow
@given(seed=seeds, alpha=alphas, suite=suite_values)
def test_every_proof_verifies_slow(
    backend: ModuleType, seed: bytes, alpha: bytes, suite: int
) -> None:
    check_proof_verifies(backend, seed, alpha, suite)


# --- soundness: a flipped bit never verifies ------------------------------------------------------


def check_flip_fails(
    backend: ModuleType, seed: bytes, alpha: bytes, suite: int, bit_positions: list[int]
) -> None:
    pk = backend.public_key(seed)
    pi = backend.prove(suite, seed, alpha)
    for bit in bit_positions:
        with pytest.raises(InvalidProof):
            backend.verify(suite, pk, flip(pi, bit), alpha)


@fast
@given(seed=seeds, alpha=alphas, suite=suite_values, bit=bits)
def test_single_bit_flip_fails(
    backend: ModuleType, seed: bytes, alpha: bytes, suite: int, bit: int
) -> None:
    check_flip_fails(backend, seed, alpha, suite, [bit])


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_every_bit_flip_fails(backend: ModuleType, suite: int) -> None:
    """All 640 single-bit flips of one random proof per suite (seeded: reproducible)."""
    rng = random.Random(f"vrf-bitflip-{suite}")
    seed, alpha = rng.randbytes(32), rng.randbytes(rng.randrange(ALPHA_MAX_BYTES))
    check_flip_fails(backend, seed, alpha, suite, list(range(PROOF_BITS)))


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("proof_index", range(6))
def test_every_bit_flip_fails_slow(backend: ModuleType, suite: int, proof_index: int) -> None:
    rng = random.Random(f"vrf-bitflip-slow-{suite}-{proof_index}")
    seed, alpha = rng.randbytes(32), rng.randbytes(rng.randrange(ALPHA_MAX_BYTES))
    check_flip_fails(backend, seed, alpha, suite, list(range(PROOF_BITS)))


@pytest.mark.slow
@slow
@given(seed=seeds, alpha=alphas, suite=suite_values, bit=bits)
def test_single_bit_flip_fails_slow(
    backend: ModuleType, seed: bytes, alpha: bytes, suite: int, bit: int
) -> None:
    check_flip_fails(backend, seed, alpha, suite, [bit])


# --- differential: C and Python agree ------------------------------------------------------------


def check_backends_agree(
    both: tuple[ModuleType, ModuleType], seed: bytes, alpha: bytes, suite: int
) -> None:
    py, c = both
    pk = py.public_key(seed)
    assert c.public_key(seed) == pk
    trace = py.prove_trace(suite, seed, alpha)
    assert c.prove_trace(suite, seed, alpha) == trace
    assert c.prove(suite, seed, alpha) == trace["pi"]
    assert c.verify(suite, pk, trace["pi"], alpha) == trace["beta"]
    assert py.verify(suite, pk, trace["pi"], alpha) == trace["beta"]
    assert c.proof_to_hash(suite, trace["pi"]) == trace["beta"]


@fast
@given(seed=seeds, alpha=alphas, suite=suite_values)
def test_backends_agree(
    both: tuple[ModuleType, ModuleType], seed: bytes, alpha: bytes, suite: int
) -> None:
    check_backends_agree(both, seed, alpha, suite)


@pytest.mark.slow
@slow
@given(seed=seeds, alpha=alphas, suite=suite_values)
def test_backends_agree_slow(
    both: tuple[ModuleType, ModuleType], seed: bytes, alpha: bytes, suite: int
) -> None:
    check_backends_agree(both, seed, alpha, suite)


def outcome(call: object, *args: object) -> bytes | type[BaseException] | None:
    """What a backend call returned, or the VRFError subclass it raised."""
    assert callable(call)
    try:
        return call(*args)
    except VRFError as exc:
        return type(exc)


@fast
@given(pk=st.binary(min_size=32, max_size=32), suite=suite_values)
def test_backends_agree_on_arbitrary_keys(
    both: tuple[ModuleType, ModuleType], pk: bytes, suite: int
) -> None:
    """About half of all 32-byte strings decode; both backends must draw the same line."""
    py, c = both
    result = outcome(py.validate_key, suite, pk)
    assert result in (None, InvalidKey)
    assert outcome(c.validate_key, suite, pk) == result


@fast
@given(
    gamma=st.binary(min_size=32, max_size=32),
    c_bytes=st.binary(min_size=16, max_size=16),
    s=st.one_of(st.integers(0, Q - 1), st.integers(Q, 2**256 - 1)),
    suite=suite_values,
)
def test_backends_agree_on_arbitrary_proofs(
    both: tuple[ModuleType, ModuleType], gamma: bytes, c_bytes: bytes, s: int, suite: int
) -> None:
    py, c = both
    pi = gamma + c_bytes + s.to_bytes(32, "little")
    result = outcome(py.proof_to_hash, suite, pi)
    assert (result == InvalidProof) or (isinstance(result, bytes) and len(result) == 64)
    assert outcome(c.proof_to_hash, suite, pi) == result


@fast
@given(seed=seeds, alpha=alphas, suite=suite_values, bit=bits)
def test_backends_agree_on_flipped_proofs(
    both: tuple[ModuleType, ModuleType], seed: bytes, alpha: bytes, suite: int, bit: int
) -> None:
    py, c = both
    pk = c.public_key(seed)
    pi = flip(c.prove(suite, seed, alpha), bit)
    assert outcome(py.verify, suite, pk, pi, alpha) == InvalidProof
    assert outcome(c.verify, suite, pk, pi, alpha) == InvalidProof
    assert outcome(c.proof_to_hash, suite, pi) == outcome(py.proof_to_hash, suite, pi)
