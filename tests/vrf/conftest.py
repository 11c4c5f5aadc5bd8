"""Fixtures shared by the vrf tests: the two backends and the RFC 9381 vectors.

Every backend-facing test takes the `backend` fixture, so it runs once per backend. The "c" case
fails (never skips) when the extension is not built: build it with
`python setup.py build_ext --inplace` before running the suite.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

import vrf
from tests.vrf._support import VECTOR_IDS, VECTORS

BACKEND_NAMES = ["python", "c"]


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """Each backend module in turn; the C case fails if the extension is not built."""
    try:
        return vrf.backend_module(request.param)
    except vrf.BackendUnavailable as exc:
        pytest.fail(f"backend {request.param!r} is unavailable: {exc}")


@pytest.fixture(params=VECTORS, ids=VECTOR_IDS)
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each edwards25519 vector in turn."""
    return request.param
