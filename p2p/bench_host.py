"""Benchmark: CPU per delivered gossip message, N hosts in one process on 127.0.0.1.

    python -m p2p.bench_host [--sizes 10,30] [--msgs 30] [--rate 5] [--runs 2]

For each swarm size it runs, back to back and interleaved over `--runs` rounds:

* this package's host (`open_host`) with yamux, with mplex, and with yamux offering meshsub 1.2
  (IDONTWANT) first;
* plain py-libp2p (`new_host` + `GossipSub` + `Pubsub`, same degrees, heartbeat, adaptive gossip
  and spam protection off, same meshsub list, same muxer) with yamux and with mplex.

Same topology in every case: host i dials 3 random hosts among 0..i-1 (seeded). Messages are
1 KiB, unique, published from random hosts at `--rate` per second; the run ends when every other
host has received every message (or after a deadline). CPU is process CPU time from the first
publish to the last delivery, divided by the deliveries: it includes forwarding, heartbeats,
IHAVE/IWANT and every host's share, which is what one delivery costs the machine. Medians over
runs are printed per line; the last line is JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from ledger.signing import IdentityKey
from p2p.config import BackoffConfig, ConnectionConfig, GossipConfig, HostConfig, TopicConfig
from p2p.host import ACCEPT, P2PHost, Verdict, gossip_message_id, open_host
from p2p.identity import keypair_of

TOPIC = "bench"
PAYLOAD_BYTES = 1024
DIALS_PER_HOST = 3
# A run that has not delivered everything by then is reported incomplete.
RUN_DEADLINE_S = 120.0
MESH_DEADLINE_S = 30.0
MESH_SETTLE_S = 2.0

MESHSUB_11 = ("/meshsub/1.1.0", "/meshsub/1.0.0")
MESHSUB_12 = ("/meshsub/1.2.0", "/meshsub/1.1.0", "/meshsub/1.0.0")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    stack: str  # "posi" | "plain"
    muxer: str  # "yamux" | "mplex"
    meshsub: tuple[str, ...]


VARIANTS = (
    Variant("posi yamux", "posi", "yamux", MESHSUB_11),
    Variant("plain yamux", "plain", "yamux", MESHSUB_11),
    Variant("posi mplex", "posi", "mplex", MESHSUB_11),
    Variant("plain mplex", "plain", "mplex", MESHSUB_11),
    Variant("posi yamux meshsub1.2", "posi", "yamux", MESHSUB_12),
)


@dataclasses.dataclass
class RunResult:
    cpu_ms_per_delivery: float
    delivered: int
    expected: int
    wall_s: float


def _accept(topic: str, peer: str, data: bytes) -> Verdict:
    return ACCEPT


def _topology(n: int, rng: random.Random) -> list[list[int]]:
    return [rng.sample(range(i), min(DIALS_PER_HOST, i)) for i in range(n)]


@asynccontextmanager
async def _posi_swarm(
    n: int, variant: Variant, dials: list[list[int]], counter: list[int]
) -> AsyncIterator[Callable[[int, bytes], Any]]:
    async with AsyncExitStack() as stack:
        hosts: list[P2PHost] = []
        nursery = await stack.enter_async_context(trio.open_nursery())
        for i in range(n):
            cfg = HostConfig(
                identity=IdentityKey(i.to_bytes(4, "big") * 8),
                bootstrap=tuple(hosts[j].listen_addrs[0] for j in dials[i]),
                muxer=variant.muxer,  # type: ignore[arg-type]
                topics=(TopicConfig(TOPIC, 4 * PAYLOAD_BYTES, delivery_queue_len=4096),),
                gossip=GossipConfig(protocols=variant.meshsub),
                # Bootstrap peers only (target 1 < 3 dials): the same graph as the plain stack.
                connections=ConnectionConfig(target_connections=1, max_connections=64),
                reconnect=BackoffConfig(base_s=0.5, cap_s=5.0),
            )
            host = await stack.enter_async_context(open_host(cfg, rng=random.Random(i)))
            channel = await host.subscribe(TOPIC, _accept)
            hosts.append(host)
            nursery.start_soon(_drain_posi, channel, counter)
        await _wait(lambda: all(len(h.mesh_peers(TOPIC)) >= 1 for h in hosts[1:]))

        async def publish(i: int, data: bytes) -> None:
            await hosts[i].publish(TOPIC, data)

        try:
            yield publish
        finally:
            nursery.cancel_scope.cancel()


async def _drain_posi(channel: trio.MemoryReceiveChannel[Any], counter: list[int]) -> None:
    async for _ in channel:
        counter[0] += 1


@asynccontextmanager
async def _plain_swarm(
    n: int, variant: Variant, dials: list[list[int]], counter: list[int]
) -> AsyncIterator[Callable[[int, bytes], Any]]:
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        hosts: list[Any] = []
        pubsubs: list[Any] = []
        routers: list[Any] = []
        for i in range(n):
            host = new_host(
                key_pair=keypair_of(IdentityKey(i.to_bytes(4, "big") * 8)),
                muxer_preference=variant.muxer.upper(),  # type: ignore[arg-type]
            )
            router = GossipSub(
                [TProtocol(p) for p in variant.meshsub],
                6,
                4,
                12,
                heartbeat_interval=1,
                adaptive_gossip_enabled=False,
                spam_protection_enabled=False,
            )
            pubsub = Pubsub(host, router, msg_id_constructor=gossip_message_id)
            await stack.enter_async_context(host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]))
            stack.push_async_callback(host.close)  # runs before run() exits: see the notes
            await stack.enter_async_context(background_trio_service(pubsub))
            await stack.enter_async_context(background_trio_service(router))
            await pubsub.wait_until_ready()
            sub = await pubsub.subscribe(TOPIC)
            nursery.start_soon(_drain_plain, sub, counter)
            for j in dials[i]:
                await host.connect(info_from_p2p_addr(hosts[j].get_addrs()[0]))
            hosts.append(host)
            pubsubs.append(pubsub)
            routers.append(router)
        await _wait(lambda: all(len(r.mesh.get(TOPIC, ())) >= 1 for r in routers[1:]))

        async def publish(i: int, data: bytes) -> None:
            await pubsubs[i].publish(TOPIC, data)

        try:
            yield publish
        finally:
            nursery.cancel_scope.cancel()


async def _drain_plain(sub: Any, counter: list[int]) -> None:
    while True:
        await sub.get()
        counter[0] += 1


async def _wait(predicate: Callable[[], bool]) -> None:
    with trio.fail_after(MESH_DEADLINE_S):
        while not predicate():
            await trio.sleep(0.1)
    await trio.sleep(MESH_SETTLE_S)


async def _run_one(variant: Variant, n: int, msgs: int, rate: float, seed: int) -> RunResult:
    rng = random.Random(seed)
    dials = _topology(n, rng)
    counter = [0]
    make = _posi_swarm if variant.stack == "posi" else _plain_swarm
    async with make(n, variant, dials, counter) as publish:
        # The plain stack delivers a host's own messages back to it; ours does not.
        own = 1 if variant.stack == "plain" else 0
        expected = msgs * (n - 1 + own)
        counter[0] = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        for k in range(msgs):
            data = k.to_bytes(4, "big") + rng.randbytes(PAYLOAD_BYTES - 4)
            await publish(rng.randrange(n), data)
            await trio.sleep(1.0 / rate)
        with trio.move_on_after(RUN_DEADLINE_S):
            while counter[0] < expected:
                await trio.sleep(0.05)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        delivered = counter[0]
    # Own deliveries are local (no network work): count only the network ones.
    network = delivered - (msgs if own else 0)
    return RunResult(cpu * 1000.0 / max(network, 1), delivered, expected, wall)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m p2p.bench_host", description=__doc__)
    parser.add_argument("--sizes", default="10,30", help="swarm sizes, comma-separated")
    parser.add_argument("--msgs", type=int, default=30, help="messages per run")
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second")
    parser.add_argument("--runs", type=int, default=2, help="rounds (median taken)")
    parser.add_argument("--variants", default="", help="only variants whose name contains this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # shutdown races log ERRORs
    sizes = [int(s) for s in args.sizes.split(",") if s]
    variants = [v for v in VARIANTS if args.variants in v.name]
    results: dict[str, dict[int, list[RunResult]]] = {
        v.name: {n: [] for n in sizes} for v in variants
    }
    for rnd in range(args.runs):
        for n in sizes:
            for variant in variants:
                result = trio.run(_run_one, variant, n, args.msgs, args.rate, 1000 * rnd + n)
                results[variant.name][n].append(result)
                _out(
                    f"run {rnd} N={n:<3} {variant.name:<24} {result.cpu_ms_per_delivery:6.2f} ms"
                    f"/delivery  delivered {result.delivered}/{result.expected}"
                    f"  wall {result.wall_s:5.1f} s"
                )
    summary: dict[str, dict[str, float]] = {}
    _out("\nmedian CPU per delivered message (ms), whole process:")
    _out(f"{'variant':<26}" + "".join(f"{'N=' + str(n):>10}" for n in sizes))
    for variant in variants:
        row = {
            str(n): statistics.median(r.cpu_ms_per_delivery for r in results[variant.name][n])
            for n in sizes
        }
        summary[variant.name] = row
        incomplete = sum(r.delivered < r.expected for n in sizes for r in results[variant.name][n])
        note = f"  ({incomplete} incomplete runs)" if incomplete else ""
        _out(f"{variant.name:<26}" + "".join(f"{row[str(n)]:>10.2f}" for n in sizes) + note)
    _out(
        json.dumps(
            {"ms_per_delivery": summary, "msgs": args.msgs, "rate": args.rate, "runs": args.runs}
        )
    )
    return 0


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
