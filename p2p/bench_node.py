"""Benchmarks of the node: task latency per phase on a 12-process devnet, CPU per delivered gossip
message of the node's stack vs plain py-libp2p, idle CPU and memory after an hour of blocks.

    python -m p2p.bench_node [--only latency,gossip,idle] [--tasks 20] [--sizes 10]

* **latency**: `posi-peer devnet init` (4 validators, 8 operators, 2 s blocks) started as 12
  `posi-peer run` processes; one poster node in this process submits `--tasks` trivial jobs
  (`/bin/echo`, busybox image) one after another. For every task, the time from "posted" to each
  phase of its timeline (the poster's own phases, plus the executor's "started"/"finished" from
  its JSON log; one machine, one clock). Prints p50/p95 per phase.
* **gossip**: N nodes in one process, each a full node shell (`run_node`: host, `PeerCore`
  validating every message: decode, signature, job spec), host i bootstrapped to 3 random
  earlier hosts; signed POST_TASK transactions of ~1 KiB at `--rate` per second from random nodes.
  CPU time of the process from the first publish to the last delivery, per delivery; against
  plain py-libp2p with the same degrees, heartbeat, topology, rate and payload size
  (`p2p.bench_host`).
* **idle**: a 1-validator devnet at 100 ms blocks (the fastest the core allows) until 1800 blocks
  (one hour of 2 s blocks) with one follower; the follower's RSS and CPU are sampled every 300
  blocks, then its idle CPU over 30 s at the end.

The last line is JSON with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import trio

from executor.engine import docker_client
from executor.images import BUSYBOX_IMAGE, build_base_images
from executor.spec import make_spec
from ledger.devnet import DevNet
from ledger.genesis import genesis_to_json
from ledger.tx import PostTask, sign_transaction
from p2p import events as ev
from p2p.bench_host import VARIANTS, _run_one
from p2p.config import BackoffConfig, ConnectionConfig
from p2p.metrics_export import NodeMetrics
from p2p.node import NodeAddresses, NodeDeps, NodeKeys, default_core_factory, run_node
from p2p.nodeconfig import NodeConfig, Role, load_node_config, write_key_file

REPO = Path(__file__).resolve().parents[1]
PHASES = (
    "included",
    "seed",
    "roster",
    "executor-confirmed",
    "started",
    "finished",
    "certified",
    "paid",
    "output-fetched",
)
# Deadlines: a task completes in ~20 s on an idle 2-core machine; the devnet starts in ~10 s.
TASK_DEADLINE_S = 180.0
START_DEADLINE_S = 120.0
IDLE_BLOCKS = 1800  # one hour of 2 s blocks
IDLE_SAMPLE_EVERY = 300
IDLE_MEASURE_S = 30.0
GOSSIP_PAYLOAD_BYTES = 1024
DIALS_PER_NODE = 3


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2p.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class _Proc:
    """A `posi-peer run` process whose JSON log lines are collected by a reader thread."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.records: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            _cli("run", "--data-dir", str(data_dir)),
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._log = log_path
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout, open(self._log, "wb") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    with self.cond:
                        self.records.append(record)
                        self.cond.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        index = 0
        with self.cond:
            while True:
                while index < len(self.records):
                    if predicate(self.records[index]):
                        return
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching record within {timeout_s} s ({self._log})")
                self.cond.wait(remaining)

    def height(self) -> int:
        with self.cond:
            return max(
                (int(r["height"]) for r in self.records if r.get("event") == "block"), default=0
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=10)


def _devnet(root: Path, *args: str) -> dict[str, Any]:
    subprocess.run(
        _cli("devnet", "init", str(root), "--log-format", "json", *args),
        cwd=REPO,
        env=_env(),
        check=True,
        capture_output=True,
    )
    manifest: dict[str, Any] = json.loads((root / "devnet.json").read_text())
    return manifest


def _start(root: Path, manifest: dict[str, Any]) -> dict[str, _Proc]:
    (root / "logs").mkdir(exist_ok=True)
    procs = {}
    for entry in manifest["nodes"]:
        if entry["role"] != "poster":
            procs[entry["name"]] = _Proc(
                root / entry["data_dir"], root / "logs" / f"{entry['name']}.log"
            )
    for proc in procs.values():
        proc.wait_for(lambda r: r.get("event") == "block" and r["height"] >= 2, START_DEADLINE_S)
    return procs


# --- latency ----------------------------------------------------------------------------------


async def _post_tasks(poster_dir: Path, image_id: str, count: int) -> list[dict[str, int]]:
    """Run one poster node here; submit `count` jobs one after another; each task's phase times."""
    config = load_node_config(poster_dir, env={})
    config = dataclasses.replace(config, roles=frozenset({Role.POSTER}))
    send, recv = trio.open_memory_channel[ev.Event](4)
    timelines: dict[bytes, dict[str, int]] = {}
    by_ref: dict[int, bytes] = {}
    done: dict[bytes, trio.Event] = {}

    def observe(action: ev.Action, extra: object) -> None:
        if isinstance(action, ev.TaskSubmitted):
            by_ref[action.ref] = action.task_id
            done.setdefault(action.task_id, trio.Event())
        elif isinstance(action, ev.TaskEvent):
            timelines.setdefault(action.task_id, {}).setdefault(action.phase.value, action.now_ms)
            if action.phase in (ev.TaskPhase.FAILED, ev.TaskPhase.EXPIRED):
                done.setdefault(action.task_id, trio.Event()).set()
        elif isinstance(action, ev.ResultReady):
            done.setdefault(action.task_id, trio.Event()).set()

    results: list[dict[str, int]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(run_node, config, deps=NodeDeps(commands=recv, observe=observe))
        )
        for ref in range(1, count + 1):
            spec = make_spec(image_id, ["/bin/echo", f"task {ref}"], wall_time_ms=5000)
            await send.send(ev.SubmitTask(0, ref, spec.encode(), 1000, 8))
            with trio.fail_after(TASK_DEADLINE_S):
                while ref not in by_ref:
                    await trio.sleep(0.05)
                await done[by_ref[ref]].wait()
            task_id = by_ref[ref]
            timeline = dict(timelines.get(task_id, {}))
            timeline["_task"] = int.from_bytes(task_id[:8], "big")
            results.append({**timeline, "_id": task_id.hex()})  # type: ignore[dict-item]
            _out(
                f"  task {ref:>3}/{count} {task_id.hex()[:16]}: "
                + ", ".join(
                    f"{p} +{(timeline[p] - timeline['posted']) / 1000:.1f}s"
                    for p in PHASES
                    if p in timeline and "posted" in timeline
                )
            )
        nursery.cancel_scope.cancel()
    return results


def bench_latency(tasks: int) -> dict[str, Any]:
    client = docker_client()
    build_base_images(client)
    image_id = str(client.images.get(BUSYBOX_IMAGE).id)
    client.close()
    root = Path(tempfile.mkdtemp(prefix="posi-bench-latency-"))
    manifest = _devnet(root)
    procs = _start(root, manifest)
    try:
        _out(f"latency: devnet of {len(procs)} processes up in {root}; {tasks} tasks")
        timelines = trio.run(_post_tasks, root / "poster-0", image_id, tasks)
    finally:
        for proc in procs.values():
            proc.stop()
    # Executor phases from the operators' logs (started/finished of purpose execute).
    for proc in procs.values():
        for record in proc.records:
            if record.get("event") != "task" or record.get("phase") not in ("started", "finished"):
                continue
            detail = str(record.get("detail", ""))
            if record["phase"] == "started" and not detail.startswith("execute"):
                continue
            if record["phase"] == "finished" and not detail.startswith("execute"):
                continue
            for timeline in timelines:
                if timeline["_id"] == record["task"]:  # type: ignore[comparison-overlap]
                    timeline.setdefault(record["phase"], int(record["now_ms"]))
    figures: dict[str, Any] = {}
    _out(f"\nlatency from 'posted' (s) over {len(timelines)} tasks:")
    _out(f"{'phase':<20}{'n':>4}{'p50':>8}{'p95':>8}{'max':>8}")
    for phase in PHASES:
        values = [
            (t[phase] - t["posted"]) / 1000 for t in timelines if phase in t and "posted" in t
        ]
        if not values:
            continue
        row = {
            "n": len(values),
            "p50": _pct(values, 0.5),
            "p95": _pct(values, 0.95),
            "max": max(values),
        }
        figures[phase] = row
        _out(f"{phase:<20}{row['n']:>4}{row['p50']:>8.2f}{row['p95']:>8.2f}{row['max']:>8.2f}")
    shutil.rmtree(root, ignore_errors=True)
    return figures


# --- gossip CPU -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _PublishCommand:
    now_ms: int
    data: bytes


class _PublishingCore:
    """A real PeerCore that also publishes what the benchmark hands it (as a poster would)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def handle(self, event: Any) -> list[Any]:
        if isinstance(event, _PublishCommand):
            return [ev.Publish(ev.TOPIC_TASKS, event.data)]
        result: list[Any] = self.inner.handle(event)
        return result

    def validate_gossip(self, topic: str, sender: bytes, data: bytes) -> ev.GossipVerdict:
        verdict: ev.GossipVerdict = self.inner.validate_gossip(topic, sender, data)
        return verdict


async def _node_swarm_run(n: int, msgs: int, rate: float, seed: int) -> tuple[float, int, int]:
    rng = random.Random(seed)
    net = DevNet.create(validators=1, operators=0, users=1)
    poster = net.users[0]
    root = Path(tempfile.mkdtemp(prefix="posi-bench-gossip-"))
    (root / "genesis.json").write_text(genesis_to_json(net.genesis))
    spec = make_spec("sha256:" + "ab" * 32, ["/bin/cat"], input=b"x" * 700)
    txs = [
        sign_transaction(
            poster, net.genesis.hash(), nonce, PostTask(spec.encode(), 1000, 8)
        ).encode()
        for nonce in range(msgs)
    ]
    dials = [rng.sample(range(i), min(DIALS_PER_NODE, i)) for i in range(n)]
    metrics = [NodeMetrics() for _ in range(n)]
    commands = [trio.open_memory_channel[Any](msgs + 1) for _ in range(n)]
    addrs: list[NodeAddresses] = []
    scopes: list[trio.CancelScope] = []

    def factory(config: NodeConfig, keys: NodeKeys, store: Any) -> Any:
        return _PublishingCore(default_core_factory(config, keys, store))

    async with trio.open_nursery() as nursery:
        for i in range(n):
            data = root / f"n{i}"
            data.mkdir()
            write_key_file(data / "identity.key", (i + 1).to_bytes(4, "big") * 8)
            config = NodeConfig(
                data_dir=data,
                genesis=root / "genesis.json",
                listen=("/ip4/127.0.0.1/tcp/0",),
                bootstrap=tuple(addrs[j].listen[0] for j in dials[i]),
                status_interval_s=60.0,
            )
            deps = NodeDeps(
                core_factory=factory,
                metrics=metrics[i],
                commands=commands[i][1],
                # Bootstrap peers only: the same graph as the plain stack.
                host_connections=ConnectionConfig(target_connections=1, max_connections=64),
                host_reconnect=BackoffConfig(base_s=0.5, cap_s=5.0),
            )
            scope = trio.CancelScope()
            scopes.append(scope)

            async def one(
                config: NodeConfig = config,
                deps: NodeDeps = deps,
                scope: trio.CancelScope = scope,
                task_status: trio.TaskStatus[NodeAddresses] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                with scope:
                    await run_node(config, deps=deps, task_status=task_status)

            addrs.append(await nursery.start(one))
        # Meshes form on the 1 s heartbeat; give them a few.
        await trio.sleep(5.0)
        delivered = lambda: sum(m.host.gossip_in_messages[ev.TOPIC_TASKS] for m in metrics)  # noqa: E731
        base = delivered()
        cpu0 = time.process_time()
        for k in range(msgs):
            await commands[rng.randrange(n)][0].send(_PublishCommand(0, txs[k]))
            await trio.sleep(1.0 / rate)
        expected = msgs * (n - 1)
        with trio.move_on_after(120.0):
            while delivered() - base < expected:
                await trio.sleep(0.05)
        cpu = time.process_time() - cpu0
        got = delivered() - base
        for scope in reversed(scopes):  # one after another: the library fails on mass teardown
            scope.cancel()
            await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    shutil.rmtree(root, ignore_errors=True)
    return cpu * 1000 / max(got, 1), got, expected


def bench_gossip(sizes: list[int], msgs: int, rate: float, runs: int) -> dict[str, Any]:
    plain = next(v for v in VARIANTS if v.name == "plain yamux")
    host = next(v for v in VARIANTS if v.name == "posi yamux")
    rows: dict[str, dict[str, list[float]]] = {"node": {}, "host": {}, "plain": {}}
    for rnd in range(runs):
        for n in sizes:
            seed = 1000 * rnd + n
            node_ms, got, expected = trio.run(_node_swarm_run, n, msgs, rate, seed)
            _out(f"gossip run {rnd} N={n}: node stack {node_ms:.2f} ms/delivery ({got}/{expected})")
            rows["node"].setdefault(str(n), []).append(node_ms)
            for name, variant in (("host", host), ("plain", plain)):
                res = trio.run(_run_one, variant, n, msgs, rate, seed)
                _out(
                    f"gossip run {rnd} N={n}: {variant.name} {res.cpu_ms_per_delivery:.2f} "
                    f"ms/delivery ({res.delivered}/{res.expected})"
                )
                rows[name].setdefault(str(n), []).append(res.cpu_ms_per_delivery)
    figures = {
        name: {n: statistics.median(v) for n, v in by_n.items()} for name, by_n in rows.items()
    }
    _out("\nmedian CPU per delivered gossip message (ms), whole process:")
    for name, label in (
        ("node", "node stack (host + PeerCore validation + shell)"),
        ("host", "host layer only (p2p.host)"),
        ("plain", "plain py-libp2p"),
    ):
        _out(f"  {label:<48}" + "".join(f"  N={n}: {v:6.2f}" for n, v in figures[name].items()))
    return figures


# --- idle CPU and memory ---------------------------------------------------------------------


def bench_idle() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="posi-bench-idle-"))
    manifest = _devnet(
        root,
        "--validators",
        "1",
        "--operators",
        "1",
        "--posters",
        "0",
        "--block-interval-ms",
        "100",
    )
    procs = _start(root, manifest)
    follower = procs["operator-0"]
    ps = psutil.Process(follower.proc.pid)
    samples: list[dict[str, float]] = []
    try:
        cpu_prev = sum(ps.cpu_times()[:2])
        wall_prev = time.monotonic()
        for target in range(IDLE_SAMPLE_EVERY, IDLE_BLOCKS + 1, IDLE_SAMPLE_EVERY):
            follower.wait_for(
                lambda r, t=target: r.get("event") == "block" and r["height"] >= t, 1800.0
            )
            cpu_now = sum(ps.cpu_times()[:2])
            wall_now = time.monotonic()
            sample = {
                "height": float(target),
                "rss_mb": ps.memory_info().rss / 2**20,
                "cpu_ms_per_block": (cpu_now - cpu_prev) * 1000 / IDLE_SAMPLE_EVERY,
                "blocks_per_s": IDLE_SAMPLE_EVERY / (wall_now - wall_prev),
            }
            cpu_prev, wall_prev = cpu_now, wall_now
            samples.append(sample)
            _out(
                f"idle: height {target:>5}  RSS {sample['rss_mb']:7.1f} MB  "
                f"{sample['cpu_ms_per_block']:6.2f} ms CPU/block  "
                f"{sample['blocks_per_s']:5.1f} blocks/s"
            )
        # The network goes quiet: stop the validator and measure the follower at rest.
        procs["validator-0"].stop()
        time.sleep(3.0)
        cpu0 = sum(ps.cpu_times()[:2])
        time.sleep(IDLE_MEASURE_S)
        idle_pct = (sum(ps.cpu_times()[:2]) - cpu0) * 100 / IDLE_MEASURE_S
        rss_end = ps.memory_info().rss / 2**20
    finally:
        for proc in procs.values():
            proc.stop()
    store_mb = (root / "operator-0" / "chain.sqlite").stat().st_size / 2**20
    first, last = samples[0], samples[-1]
    growth = (last["rss_mb"] - first["rss_mb"]) / ((last["height"] - first["height"]) / 1000)
    _out(
        f"\nidle: RSS {first['rss_mb']:.1f} MB at {first['height']:.0f} blocks -> "
        f"{last['rss_mb']:.1f} MB at {last['height']:.0f} ({growth:+.2f} MB per 1000 blocks); "
        f"at rest {idle_pct:.2f} % of a core, RSS {rss_end:.1f} MB; store {store_mb:.1f} MB"
    )
    shutil.rmtree(root, ignore_errors=True)
    return {
        "samples": samples,
        "rss_growth_mb_per_1000_blocks": growth,
        "idle_cpu_pct": idle_pct,
        "rss_end_mb": rss_end,
        "store_mb": store_mb,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and print their figures; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m p2p.bench_node", description=__doc__)
    parser.add_argument("--only", default="latency,gossip,idle")
    parser.add_argument("--tasks", type=int, default=20, help="latency: tasks (at least 20)")
    parser.add_argument("--sizes", default="10", help="gossip: swarm sizes, comma-separated")
    parser.add_argument("--msgs", type=int, default=30, help="gossip: messages per run")
    parser.add_argument("--rate", type=float, default=5.0, help="gossip: messages per second")
    parser.add_argument("--runs", type=int, default=2, help="gossip: rounds (median taken)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    only = set(args.only.split(","))
    figures: dict[str, Any] = {}
    if "latency" in only:
        figures["latency_s"] = bench_latency(args.tasks)
    if "gossip" in only:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        figures["gossip_ms_per_delivery"] = bench_gossip(sizes, args.msgs, args.rate, args.runs)
    if "idle" in only:
        figures["idle"] = bench_idle()
    _out(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
