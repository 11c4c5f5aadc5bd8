"""Connecting to the Docker Engine (blocking; call from a worker thread in async code)."""

from __future__ import annotations

import os
import socket

import docker
import docker.errors
import requests.exceptions

from executor.errors import EngineUnavailable

# Every API call except the container wait returns in well under a second on a healthy engine;
# 60 s tolerates a loaded one and still turns a hung engine into an error instead of a hang.
API_TIMEOUT_S = 60
_PROBE_TIMEOUT_S = 5  # connecting to a local socket is instant; a hung daemon is an error


def docker_client(timeout_s: int = API_TIMEOUT_S) -> docker.DockerClient:
    """A client for the engine named by DOCKER_HOST (default: the local socket), pinged once.

    Raises EngineUnavailable with the reason if nothing answers: start the daemon or fix
    DOCKER_HOST."""
    _check_unix_socket()
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(
            f"no Docker Engine answers ({exc}); start dockerd (or set DOCKER_HOST) and retry"
        ) from None
    return client


def _check_unix_socket() -> None:
    """Fail early, and without leaking a socket, when DOCKER_HOST names a unix socket nobody
    listens on (docker-py leaks the socket of a failed unix connect until garbage collection)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT_S)
        try:
            probe.connect(path)
        except OSError as exc:
            raise EngineUnavailable(
                f"no Docker Engine answers on {path} ({exc.strerror or exc}); start dockerd "
                "(or set DOCKER_HOST) and retry"
            ) from None


def engine_runtimes(client: docker.DockerClient) -> frozenset[str]:
    """Names of the OCI runtimes the engine has registered (e.g. {'runc', 'runsc'}).

    Raises EngineUnavailable if the engine stops answering."""
    try:
        info = client.info()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(f"docker info failed: {exc}") from None
    return frozenset(info.get("Runtimes") or {})
