"""Helpers for network tests: configurations and hosts on 127.0.0.1 with port 0."""

from __future__ import annotations

import dataclasses
import os
import random
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from ledger.signing import IdentityKey
from p2p.config import (
    BackoffConfig,
    ConnectionConfig,
    HostConfig,
    ProtocolConfig,
    ScoreConfig,
    TopicConfig,
)
from p2p.host import P2PHost, open_host

TOPIC = "posi/test"
ECHO = "/posi/echo/1"
UNSERVED = "/posi/unserved/1"  # configured everywhere, no host serves it

# Network tests wait on events, never on the clock; this bounds how long one may take before the
# test fails (libp2p connects in ~250 ms, meshes form on the 1 s heartbeat).
DEADLINE_S = 15.0


def identity(i: int) -> IdentityKey:
    return IdentityKey(bytes([i + 1]) * 32)


def config(
    i: int,
    *,
    bootstrap: tuple[str, ...] = (),
    port: int = 0,
    topic_max_bytes: int = 1024,
    delivery_queue_len: int = 64,
    max_request_bytes: int = 1024,
    max_response_bytes: int = 1024,
    target_connections: int = 8,
    **overrides: object,
) -> HostConfig:
    base = HostConfig(
        identity=identity(i),
        listen_addrs=(f"/ip4/127.0.0.1/tcp/{port}",),
        bootstrap=bootstrap,
        topics=(TopicConfig(TOPIC, topic_max_bytes, delivery_queue_len),),
        protocols=(
            ProtocolConfig(ECHO, max_request_bytes, max_response_bytes),
            ProtocolConfig(UNSERVED, 64, 64),
        ),
        # Fast redials and peer exchange so tests converge in about a second.
        reconnect=BackoffConfig(base_s=0.2, cap_s=2.0, jitter=0.5),
        connections=ConnectionConfig(
            target_connections=target_connections,
            max_connections=max(16, target_connections),
            maintain_interval_s=0.2,
            pex_interval_s=0.5,
        ),
        score=ScoreConfig(ban_threshold=-100, ban_duration_s=600.0),
        request_timeout_s=5.0,
        # POSI_TEST_MUXER=mplex runs the network tests over the other muxer.
        muxer=os.environ.get("POSI_TEST_MUXER", "yamux"),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def free_port() -> int:
    """A port that was free a moment ago (for a host that must come back on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def hosts(*configs: HostConfig) -> AsyncIterator[list[P2PHost]]:
    """Open hosts in order and close them one after another (the library fails when many hosts
    of one process are torn down at once)."""
    async with AsyncExitStack() as stack:
        opened = []
        for i, cfg in enumerate(configs):
            opened.append(await stack.enter_async_context(open_host(cfg, rng=random.Random(i))))
        yield opened
