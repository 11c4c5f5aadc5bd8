"""RFC 9381 Appendix B.3/B.4 vectors (examples 16-21), every intermediate, on each backend."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.vrf._support import VECTORS, vector_of

TRACE_KEYS = {"h", "k", "u", "v", "gamma", "c", "s", "pi", "beta"}


def test_every_edwards25519_example_is_present() -> None:
    assert sorted(v["example"] for v in VECTORS) == [16, 17, 18, 19, 20, 21]
    assert {v["suite_int"] for v in VECTORS} == {0x03, 0x04}


def test_public_key_derivation(backend: ModuleType, vector: dict[str, Any]) -> None:
    assert backend.public_key(vector["sk"]) == vector["pk"]


def test_prove_trace_matches_every_intermediate(
    backend: ModuleType, vector: dict[str, Any]
) -> None:
    trace = backend.prove_trace(vector["suite_int"], vector["sk"], vector["alpha"])
    assert set(trace) == TRACE_KEYS
    for key in sorted(TRACE_KEYS):
        assert trace[key] == vector[key], f"intermediate {key} differs"
    assert len(trace["k"]) == 32
    assert len(trace["c"]) == 16
    assert trace["pi"] == trace["gamma"] + trace["c"] + trace["s"]


def test_prove_returns_vector_pi(backend: ModuleType, vector: dict[str, Any]) -> None:
    assert backend.prove(vector["suite_int"], vector["sk"], vector["alpha"]) == vector["pi"]


def test_verify_returns_beta(backend: ModuleType, vector: dict[str, Any]) -> None:
    beta = backend.verify(vector["suite_int"], vector["pk"], vector["pi"], vector["alpha"])
    assert beta == vector["beta"]


def test_proof_to_hash_returns_beta(backend: ModuleType, vector: dict[str, Any]) -> None:
    assert backend.proof_to_hash(vector["suite_int"], vector["pi"]) == vector["beta"]


def test_validate_key_accepts_vector_key(backend: ModuleType, vector: dict[str, Any]) -> None:
    assert backend.validate_key(vector["suite_int"], vector["pk"]) is None


@pytest.mark.parametrize("example", [16, 19])
def test_prove_is_deterministic(backend: ModuleType, example: int) -> None:
    vec = vector_of(example)
    first = backend.prove(vec["suite_int"], vec["sk"], vec["alpha"])
    assert backend.prove(vec["suite_int"], vec["sk"], vec["alpha"]) == first == vec["pi"]
