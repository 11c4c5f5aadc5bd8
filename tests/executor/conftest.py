"""Fixtures for the executor tests.

Tests marked `docker` need a running Docker Engine: without one they FAIL (never skip) with a
message saying how to start it. The base images are built once per session (idempotent: an existing
identical image is only re-tagged). Tests that take a `runtime` argument are parametrised over the
OCI runtimes the engine reports (runc always; runsc when gVisor is registered); the summary at the
end of the run says which ran and prints the figures the hostile-job suite measured.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import docker
import pytest

from executor.engine import docker_client, engine_runtimes
from executor.errors import EngineUnavailable
from executor.images import BUSYBOX_IMAGE, build_base_images
from executor.policy import Runtime

_ENGINE_HINT = (
    "the executor tests run real containers and need a Docker Engine: start dockerd "
    "(or set DOCKER_HOST) and run the tests again"
)

FIGURES: list[str] = []
RUNTIMES_RAN: set[str] = set()


@functools.cache
def _engine_runtime_names() -> tuple[str, ...]:
    try:
        client = docker_client()
        names = engine_runtimes(client)
        client.close()
    except EngineUnavailable:
        return ("runc",)  # the tests then fail in the `docker_engine` fixture, loudly
    return tuple(r for r in ("runc", "runsc") if r in names)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "runtime" in metafunc.fixturenames:
        names = _engine_runtime_names()
        metafunc.parametrize("runtime", [Runtime[n.upper()] for n in names], ids=list(names))


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker_client()
    except EngineUnavailable as exc:
        pytest.fail(f"{_ENGINE_HINT} ({exc})", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_images(docker_engine: docker.DockerClient) -> dict[str, str]:
    """ref -> image id of every base image (built once per session)."""
    return {image.ref: image.image_id for image in build_base_images(docker_engine)}


@pytest.fixture(scope="session")
def busybox_id(base_images: dict[str, str]) -> str:
    return base_images[BUSYBOX_IMAGE]


@pytest.fixture(autouse=True)
def _docker_tests_need_the_engine(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("base_images")
    runtime = getattr(request.node, "callspec", None)
    if runtime is not None and "runtime" in runtime.params:
        RUNTIMES_RAN.add(runtime.params["runtime"].engine_name)


@pytest.fixture
def figures() -> list[str]:
    """Tests append one line of measured figures; the run's summary prints them."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RUNTIMES_RAN and not FIGURES:
        return
    terminalreporter.section("executor sandbox")
    available = _engine_runtime_names()
    terminalreporter.write_line(f"runtimes exercised: {', '.join(sorted(RUNTIMES_RAN)) or '-'}")
    if "runsc" not in available:
        terminalreporter.write_line(
            "runsc (gVisor) is not registered with this engine: only runc ran"
        )
    for line in FIGURES:
        terminalreporter.write_line(line)
