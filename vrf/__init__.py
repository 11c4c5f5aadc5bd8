"""ECVRF over edwards25519 (RFC 9381 suites 0x03 TAI and 0x04 ELL2): keys, proofs, outputs.

Two backends implement the same functions: the compiled extension `vrf._ecvrf_c` (through
`vrf._cbackend`) and the pure-Python reference `vrf._ref`. `POSI_VRF_BACKEND` picks one when
this package is first imported:

- `auto` (default): C when the extension imports, else Python with one warning on logger "vrf";
- `c`: C or BackendUnavailable at import (never a silent fallback);
- `python`: the reference.

`vrf.BACKEND` says which one runs. Both give identical bytes for every input (the test suite
checks the RFC vectors on each and a differential property test across them).

Typical use::

    sk = vrf.SecretKey.from_seed(seed32)            # or SecretKey.generate()
    proof = sk.prove(alpha)                          # Proof, 80 bytes
    beta = sk.public_key.verify(alpha, proof)        # 64 bytes, or InvalidProof

A received key must go through `PublicKey.from_bytes` (it runs RFC 9381 ECVRF_validate_key);
a received proof through `Proof.from_bytes` and then `PublicKey.verify`.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Final

from vrf._args import BETA_LEN, KEY_LEN, PROOF_LEN, SUITE_ELL2, SUITE_TAI, SUITES
from vrf.errors import BackendUnavailable, InvalidKey, InvalidProof, UnsupportedSuite, VRFError

__all__ = [
    "BACKEND",
    "BACKEND_ENV",
    "BETA_LEN",
    "DEFAULT_SUITE",
    "KEY_LEN",
    "PROOF_LEN",
    "SUITE_ELL2",
    "SUITE_TAI",
    "BackendUnavailable",
    "InvalidKey",
    "InvalidProof",
    "Proof",
    "PublicKey",
    "SecretKey",
    "UnsupportedSuite",
    "VRFError",
    "backend_module",
    "proof_to_hash",
    "prove",
    "public_key",
    "validate_key",
    "verify",
]

DEFAULT_SUITE: Final = SUITE_TAI  # ECVRF-EDWARDS25519-SHA512-TAI; SUITE_ELL2 is Elligator2

BACKEND_ENV: Final = "POSI_VRF_BACKEND"
_BACKEND_CHOICES: Final = ("auto", "c", "python")
# Backend name -> module implementing the backend contract.
_BACKEND_MODULES: Final = {"c": "vrf._cbackend", "python": "vrf._ref"}

_log = logging.getLogger("vrf")


def backend_module(name: str) -> ModuleType:
    """The backend module `name` ("c" or "python"), for tests and benchmarks.

    Raises BackendUnavailable if the name is unknown or the C extension is not built; the
    caller must pick another backend or rebuild (`pip install .` with a C compiler, or
    `python setup.py build_ext --inplace` in a checkout).
    """
    module_name = _BACKEND_MODULES.get(name)
    if module_name is None:
        raise BackendUnavailable(
            f"unknown VRF backend {name!r}: choose one of {', '.join(sorted(_BACKEND_MODULES))}"
        )
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the C VRF backend is not available ({exc}); build the extension "
            "(`pip install .` with a C compiler, or `python setup.py build_ext --inplace` in a "
            f"checkout) or set {BACKEND_ENV}=python"
        ) from exc


def _select_backend() -> tuple[str, ModuleType]:
    choice = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice not in _BACKEND_CHOICES:
        raise BackendUnavailable(
            f"{BACKEND_ENV}={os.environ.get(BACKEND_ENV)!r} is not a VRF backend: "
            f"set it to one of {', '.join(_BACKEND_CHOICES)} (or unset it for auto)"
        )
    if choice != "auto":
        return choice, backend_module(choice)
    try:
        return "c", backend_module("c")
    except BackendUnavailable as exc:
        _log.warning(
            "VRF: C backend unavailable, using the pure-Python reference (slower, and not "
            "constant-time). Cause: %s. Fix: build the extension, or set %s=python to "
            "choose the reference explicitly and silence this warning.",
            exc.__cause__ or exc,
            BACKEND_ENV,
        )
        return "python", backend_module("python")


BACKEND: str
BACKEND, _backend = _select_backend()


def _check_suite(suite: int) -> int:
    if not isinstance(suite, int):
        raise TypeError(f"suite must be an int, got {type(suite).__name__}")
    if suite not in SUITES:
        raise UnsupportedSuite(
            f"suite {suite!r} is not supported: use SUITE_TAI (0x03) or SUITE_ELL2 (0x04)"
        )
    return suite


# --- module functions (bytes in, bytes out) ------------------------------------------------------


def public_key(sk: bytes) -> bytes:
    """The 32-byte public key of the 32-byte seed sk (the same for every suite).

    InvalidKey if sk is not 32 bytes; TypeError if it is not bytes.
    """
    return _backend.public_key(sk)


def validate_key(pk: bytes, *, suite: int = DEFAULT_SUITE) -> None:
    """RFC 9381 ECVRF_validate_key. InvalidKey if pk is malformed, non-canonical or of small
    order: the caller must reject the key (a peer that registers one is misbehaving)."""
    _backend.validate_key(suite, pk)


def prove(sk: bytes, alpha: bytes, *, suite: int = DEFAULT_SUITE) -> bytes:
    """The 80-byte proof of alpha under the 32-byte seed sk (deterministic).

    InvalidKey if sk is not 32 bytes; UnsupportedSuite for an unknown suite; TypeError for
    non-bytes arguments. All are local misuse: fix the call.
    """
    return _backend.prove(suite, sk, alpha)


def verify(pk: bytes, pi: bytes, alpha: bytes, *, suite: int = DEFAULT_SUITE) -> bytes:
    """Verify pi for alpha under pk (with ECVRF_validate_key) and return the 64-byte beta.

    InvalidKey: pk is bad, reject the key. InvalidProof: the proof is malformed or wrong; treat
    the output as absent and penalise the peer that sent it. UnsupportedSuite / TypeError:
    local misuse.
    """
    return _backend.verify(suite, pk, pi, alpha)


def proof_to_hash(pi: bytes, *, suite: int = DEFAULT_SUITE) -> bytes:
    """beta of pi WITHOUT verifying it (InvalidProof if pi does not decode).

    Only meaningful for a proof that `verify` accepted (which returns the same beta); never
    act on the beta of an unverified proof.
    """
    return _backend.proof_to_hash(suite, pi)


# --- typed objects -------------------------------------------------------------------------------


def _require_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Proof:
    """An 80-byte ECVRF proof (Gamma || c || s) for one suite; not yet verified.

    Only its length is checked here; `PublicKey.verify` decides whether it is valid.
    """

    pi: bytes
    suite: int = DEFAULT_SUITE

    def __post_init__(self) -> None:
        _check_suite(self.suite)
        pi = _require_bytes("proof", self.pi)
        if len(pi) != PROOF_LEN:
            raise InvalidProof(f"proof must be {PROOF_LEN} bytes, got {len(pi)}")

    @classmethod
    def from_bytes(cls, b: bytes, suite: int = DEFAULT_SUITE) -> Proof:
        """Wrap b. InvalidProof if it is not 80 bytes (penalise the sender); UnsupportedSuite /
        TypeError for local misuse. Gamma and s are decoded by verify."""
        return cls(b, suite)

    def to_hash(self) -> bytes:
        """beta (64 bytes) WITHOUT verification; InvalidProof if Gamma does not decode or
        s >= q. Use `PublicKey.verify` (which returns beta) for anything that matters."""
        return _backend.proof_to_hash(self.suite, self.pi)

    def __bytes__(self) -> bytes:
        return self.pi


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A VRF public key that passed RFC 9381 ECVRF_validate_key, for one suite.

    Every instance is validated (the constructor runs the check), so holding a PublicKey means
    the key decodes canonically and is not of small order.
    """

    key: bytes
    suite: int = DEFAULT_SUITE

    def __post_init__(self) -> None:
        _check_suite(self.suite)
        _backend.validate_key(self.suite, _require_bytes("public key", self.key))

    @classmethod
    def from_bytes(cls, b: bytes, suite: int = DEFAULT_SUITE) -> PublicKey:
        """Decode and validate b. InvalidKey if malformed, non-canonical or of small order:
        reject the key (and the registration or message that carried it)."""
        return cls(b, suite)

    def verify(self, alpha: bytes, proof: Proof | bytes) -> bytes:
        """The 64-byte beta if proof proves alpha under this key.

        InvalidProof if it does not (or if a Proof object is for another suite): treat the
        output as absent and penalise the sender. TypeError if alpha is not bytes.
        """
        if isinstance(proof, Proof):
            if proof.suite != self.suite:
                raise InvalidProof(
                    f"proof is for suite {proof.suite:#04x}, key is for suite {self.suite:#04x}"
                )
            pi = proof.pi
        else:
            pi = proof
        return _backend.verify(self.suite, self.key, pi, alpha)

    def __bytes__(self) -> bytes:
        return self.key


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A VRF secret key: the 32-byte RFC 8032 seed and its suite.

    repr() never shows the seed; `bytes(sk)` returns it (store it as carefully as any key).
    """

    seed: bytes = field(repr=False)
    suite: int = DEFAULT_SUITE
    _public_key: PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_suite(self.suite)
        seed = _require_bytes("seed", self.seed)
        # The backend raises InvalidKey for a wrong length.
        object.__setattr__(self, "_public_key", PublicKey(_backend.public_key(seed), self.suite))

    @classmethod
    def from_seed(cls, seed: bytes, suite: int = DEFAULT_SUITE) -> SecretKey:
        """The key of a 32-byte seed. InvalidKey if the seed is not 32 bytes (fix the caller);
        UnsupportedSuite / TypeError for other misuse."""
        return cls(seed, suite)

    @classmethod
    def generate(cls, suite: int = DEFAULT_SUITE) -> SecretKey:
        """A fresh key from os.urandom (the operating system's CSPRNG)."""
        return cls(os.urandom(KEY_LEN), suite)

    @property
    def public_key(self) -> PublicKey:
        """The matching public key (derived once, at construction)."""
        return self._public_key

    def prove(self, alpha: bytes) -> Proof:
        """The proof of alpha (deterministic: same key and alpha, same proof). TypeError if
        alpha is not bytes."""
        return Proof(_backend.prove(self.suite, self.seed, alpha), self.suite)

    def __bytes__(self) -> bytes:
        return self.seed
