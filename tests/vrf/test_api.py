"""The public API of `vrf` (typed objects, module functions, constants) on each backend, and
backend selection through POSI_VRF_BACKEND (in subprocesses, since it happens at import)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import vrf
from tests.vrf._support import (
    SMALL_ORDER_CANONICAL,
    SUITE_ELL2,
    SUITE_IDS,
    SUITE_TAI,
    SUITES,
    vector_of,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Importing vrf and proving once takes well under a second; the bound only stops a hung child.
SUBPROCESS_TIMEOUT_S = 60
BY_SUITE = {SUITE_TAI: vector_of(16), SUITE_ELL2: vector_of(19)}
suites = pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)


@pytest.fixture
def api(backend: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The `vrf` package with its backend switched to the one under test."""
    monkeypatch.setattr(vrf, "_backend", backend)
    return vrf


def test_constants() -> None:
    assert (vrf.SUITE_TAI, vrf.SUITE_ELL2, vrf.DEFAULT_SUITE) == (0x03, 0x04, 0x03)
    assert (vrf.PROOF_LEN, vrf.BETA_LEN, vrf.KEY_LEN) == (80, 64, 32)
    assert vrf.BACKEND in ("c", "python")


def test_backend_attribute_matches_module() -> None:
    assert vrf._backend is vrf.backend_module(vrf.BACKEND)


def test_backend_module_python_is_reference() -> None:
    from vrf import _ref

    assert vrf.backend_module("python") is _ref


@pytest.mark.parametrize("name", ["bogus", "", "C", "auto"])
def test_backend_module_unknown_name(name: str) -> None:
    with pytest.raises(vrf.BackendUnavailable, match="unknown VRF backend"):
        vrf.backend_module(name)


def test_errors_share_one_root() -> None:
    for err in (vrf.InvalidKey, vrf.InvalidProof, vrf.UnsupportedSuite, vrf.BackendUnavailable):
        assert issubclass(err, vrf.VRFError)


# --- typed objects ----------------------------------------------------------------------------


@suites
def test_secret_key_round_trip(api: ModuleType, suite: int) -> None:
    vec = BY_SUITE[suite]
    sk = api.SecretKey.from_seed(vec["sk"], suite)
    assert sk.suite == suite
    assert bytes(sk) == vec["sk"]
    assert bytes(sk.public_key) == vec["pk"]
    assert sk.public_key.suite == suite
    proof = sk.prove(vec["alpha"])
    assert isinstance(proof, api.Proof)
    assert bytes(proof) == vec["pi"]
    assert proof.suite == suite
    assert sk.public_key.verify(vec["alpha"], proof) == vec["beta"]
    assert sk.public_key.verify(vec["alpha"], vec["pi"]) == vec["beta"]
    assert proof.to_hash() == vec["beta"]


def test_default_suite_is_tai(api: ModuleType) -> None:
    vec = vector_of(16)
    sk = api.SecretKey.from_seed(vec["sk"])
    assert sk.suite == api.SUITE_TAI
    assert bytes(sk.prove(vec["alpha"])) == vec["pi"]


def test_secret_key_repr_hides_seed(api: ModuleType) -> None:
    vec = vector_of(16)
    sk = api.SecretKey.from_seed(vec["sk"])
    text = repr(sk)
    assert vec["sk"].hex() not in text
    assert repr(vec["sk"]) not in text


def test_objects_are_frozen(api: ModuleType) -> None:
    vec = vector_of(16)
    sk = api.SecretKey.from_seed(vec["sk"])
    proof = sk.prove(vec["alpha"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        sk.seed = bytes(32)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sk.public_key.key = bytes(32)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        proof.pi = bytes(80)  # type: ignore[misc]


def test_objects_compare_by_value(api: ModuleType) -> None:
    vec = vector_of(16)
    a = api.SecretKey.from_seed(vec["sk"])
    b = api.SecretKey.from_seed(vec["sk"])
    assert a == b
    assert a.public_key == api.PublicKey.from_bytes(vec["pk"])
    assert a.prove(b"x") == b.prove(b"x")
    assert api.SecretKey.from_seed(vec["sk"], api.SUITE_ELL2) != a


def test_generate_gives_distinct_working_keys(api: ModuleType) -> None:
    keys = [api.SecretKey.generate() for _ in range(3)]
    assert len({bytes(k) for k in keys}) == 3
    for key in keys:
        assert len(bytes(key)) == api.KEY_LEN
        proof = key.prove(b"seed")
        assert len(key.public_key.verify(b"seed", proof)) == api.BETA_LEN
    ell2 = api.SecretKey.generate(api.SUITE_ELL2)
    assert ell2.suite == api.SUITE_ELL2
    assert len(ell2.public_key.verify(b"s", ell2.prove(b"s"))) == api.BETA_LEN


@pytest.mark.parametrize("name", list(SMALL_ORDER_CANONICAL))
def test_public_key_from_bytes_rejects_small_order(api: ModuleType, name: str) -> None:
    with pytest.raises(api.InvalidKey):
        api.PublicKey.from_bytes(SMALL_ORDER_CANONICAL[name])
    with pytest.raises(api.InvalidKey):
        api.PublicKey(SMALL_ORDER_CANONICAL[name])  # the constructor validates too


def test_secret_key_wrong_length(api: ModuleType) -> None:
    with pytest.raises(api.InvalidKey):
        api.SecretKey.from_seed(bytes(31))
    with pytest.raises(TypeError):
        api.SecretKey.from_seed("00" * 32)


@pytest.mark.parametrize("length", [0, 79, 81])
def test_proof_from_bytes_checks_length(api: ModuleType, length: int) -> None:
    with pytest.raises(api.InvalidProof):
        api.Proof.from_bytes(bytes(length))
    with pytest.raises(api.InvalidProof):
        api.Proof(bytes(length))


def test_proof_from_bytes_keeps_suite(api: ModuleType) -> None:
    vec = vector_of(19)
    proof = api.Proof.from_bytes(vec["pi"], api.SUITE_ELL2)
    assert proof.suite == api.SUITE_ELL2
    assert proof.to_hash() == vec["beta"]
    assert (
        api.PublicKey.from_bytes(vec["pk"], api.SUITE_ELL2).verify(vec["alpha"], proof)
        == (vec["beta"])
    )


def test_verify_rejects_proof_of_other_suite(api: ModuleType) -> None:
    vec = vector_of(19)
    proof = api.Proof.from_bytes(vec["pi"], api.SUITE_ELL2)
    with pytest.raises(api.InvalidProof, match="suite"):
        api.PublicKey.from_bytes(vec["pk"], api.SUITE_TAI).verify(vec["alpha"], proof)


def test_verify_rejects_tampered_proof(api: ModuleType) -> None:
    vec = vector_of(16)
    pk = api.PublicKey.from_bytes(vec["pk"])
    tampered = bytearray(vec["pi"])
    tampered[40] ^= 1
    with pytest.raises(api.InvalidProof):
        pk.verify(vec["alpha"], api.Proof.from_bytes(bytes(tampered)))
    with pytest.raises(api.InvalidProof):
        pk.verify(b"other alpha", api.Proof.from_bytes(vec["pi"]))


@pytest.mark.parametrize("suite", [0, 5, 0xFF])
def test_objects_reject_unsupported_suite(api: ModuleType, suite: int) -> None:
    vec = vector_of(16)
    with pytest.raises(api.UnsupportedSuite):
        api.SecretKey.from_seed(vec["sk"], suite)
    with pytest.raises(api.UnsupportedSuite):
        api.PublicKey.from_bytes(vec["pk"], suite)
    with pytest.raises(api.UnsupportedSuite):
        api.Proof.from_bytes(vec["pi"], suite)


# --- module functions ---------------------------------------------------------------------------


@suites
def test_module_functions(api: ModuleType, suite: int) -> None:
    vec = BY_SUITE[suite]
    assert api.public_key(vec["sk"]) == vec["pk"]
    assert api.validate_key(vec["pk"], suite=suite) is None
    assert api.prove(vec["sk"], vec["alpha"], suite=suite) == vec["pi"]
    assert api.verify(vec["pk"], vec["pi"], vec["alpha"], suite=suite) == vec["beta"]
    assert api.proof_to_hash(vec["pi"], suite=suite) == vec["beta"]


def test_module_functions_errors(api: ModuleType) -> None:
    vec = vector_of(16)
    with pytest.raises(api.InvalidKey):
        api.validate_key(SMALL_ORDER_CANONICAL["identity (order 1)"])
    with pytest.raises(api.InvalidProof):
        api.verify(vec["pk"], vec["pi"], b"not alpha")
    with pytest.raises(api.InvalidProof):
        api.proof_to_hash(vec["pi"][:79])
    with pytest.raises(api.UnsupportedSuite):
        api.prove(vec["sk"], vec["alpha"], suite=0x01)


# --- backend selection (POSI_VRF_BACKEND), in fresh interpreters --------------------------------

# Makes `vrf._ecvrf_c` unimportable in the child, to act out "the extension is not built"
# whatever the state of this checkout (a None entry in sys.modules makes import raise).
HIDE_EXTENSION = "import sys; sys.modules['vrf._ecvrf_c'] = None; "
PRINT_BACKEND = (
    "import vrf; "
    "sk = vrf.SecretKey.from_seed(bytes(32)); "
    "assert sk.public_key.verify(b'a', sk.prove(b'a')); "
    "print(vrf.BACKEND)"
)


def run_child(env_value: str | None, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != vrf.BACKEND_ENV}
    if env_value is not None:
        env[vrf.BACKEND_ENV] = env_value
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def test_env_python_selects_reference() -> None:
    child = run_child("python", PRINT_BACKEND)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "python"
    assert "C backend unavailable" not in child.stderr  # an explicit choice is not warned about


def test_env_c_selects_extension() -> None:
    child = run_child("c", PRINT_BACKEND)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "c"


def test_env_c_without_extension_raises_backend_unavailable() -> None:
    child = run_child("c", HIDE_EXTENSION + PRINT_BACKEND)
    assert child.returncode != 0
    assert "vrf.errors.BackendUnavailable" in child.stderr
    assert "POSI_VRF_BACKEND=python" in child.stderr  # the message says how to fix it
    assert child.stdout == ""


@pytest.mark.parametrize(
    "env_value", [None, "auto", "AUTO", ""], ids=["unset", "auto", "AUTO", "empty"]
)
def test_env_auto_prefers_extension(env_value: str | None) -> None:
    child = run_child(env_value, PRINT_BACKEND)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "c"
    assert "C backend unavailable" not in child.stderr


def test_env_auto_falls_back_with_one_warning() -> None:
    child = run_child("auto", HIDE_EXTENSION + PRINT_BACKEND)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "python"
    assert child.stderr.count("C backend unavailable") == 1
    assert "POSI_VRF_BACKEND" in child.stderr


def test_env_auto_warning_goes_to_vrf_logger() -> None:
    code = (
        HIDE_EXTENSION + "import logging; "
        "logging.basicConfig(format='%(name)s|%(levelname)s|%(message)s'); " + PRINT_BACKEND
    )
    child = run_child("auto", code)
    assert child.returncode == 0, child.stderr
    assert child.stderr.startswith("vrf|WARNING|VRF: C backend unavailable")


@pytest.mark.parametrize("env_value", ["bogus", "C-ext", "pure"])
def test_env_bogus_is_a_clear_error(env_value: str) -> None:
    child = run_child(env_value, PRINT_BACKEND)
    assert child.returncode != 0
    assert "vrf.errors.BackendUnavailable" in child.stderr
    assert f"POSI_VRF_BACKEND='{env_value}' is not a VRF backend" in child.stderr
    assert "auto, c, python" in child.stderr
    assert child.stdout == ""
