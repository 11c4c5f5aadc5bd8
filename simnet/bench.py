"""Simulator benchmarks: `posi-peer simnet-bench WHAT` or `python -m simnet.bench WHAT`.

- `scaling`: deterministic runs of 100 .. 5,000 peers with the same workload; messages (and bytes)
  per task by type against the swarm size, and `messages_vs_peers.png`.
- `deterministic`: 5,000 peers, 200 tasks; wall time (target: under 10 minutes), verdict, phases.
- `seeds`: a sweep of small deterministic swarms under 20 % byzantine stake; safety violations
  (target: none), liveness, rosters with faulty weight >= 1/3 observed vs `committee.params`.
- `liveness`: the sweep for several committee sizes (tau), observed next to predicted.
- `real`: 300 real peers + 4 validators, 50 tasks; verdict, phase latencies, CPU and memory
  per peer.
- `ceiling`: real peers under an offered load above what they take: tasks completed per minute.

Every figure is also written as JSON under `--out` (default `simnet-out/bench`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import pathlib
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, Final

from committee.params import DEFAULT_TAU
from ledger.genesis import ChainParams
from p2p.nodeconfig import DEFAULT_BLOCK_INTERVAL_MS
from p2p.roles.base import OPEN_TASKS_MAX
from simnet import report as rpt
from simnet.scenario import Byzantine, Phases, Scenario, Workload

DEFAULT_SIZES: Final = (100, 300, 1000, 3000, 5000)
# The sweep's swarm: small enough for thousands of seeds on two cores, big enough that rosters
# are drawn from many operators.
SWEEP_PEERS: Final = 16
SWEEP_TASKS: Final = 2
# The sweep runs the node's defaults: blocks every 2 s, so a task lives task_timeout_blocks x 2 s
# (200 s), as on a network of default nodes. At the simulator's 1 s blocks a task lives 100 s,
# and an executor that never answers (60 s deadline) followed by two faulty proposers used it up
# with a fifth of the roster's weight faulty (seed 9100 of the tau-100 sweep).
SWEEP_BLOCK_INTERVAL_MS: Final = DEFAULT_BLOCK_INTERVAL_MS
# Liveness is judged over the whole life of a task, plus a few blocks for the ledger to close it.
SWEEP_LIVENESS_BOUND_MS: Final = (ChainParams().task_timeout_blocks + 10) * SWEEP_BLOCK_INTERVAL_MS
SWEEP_PROCESSES: Final = 2
# The real-mode benchmarks' expected committee weight (the workload's default).
REAL_TAU: Final = Workload().tau


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _replay(sc: Scenario, block_interval_ms: int = 1000) -> str:
    """The command that replays a benchmark's deterministic scenario (default policy mix)."""
    wl = sc.workload
    return (
        f"posi-peer simnet --deterministic --seed {sc.seed} --peers {sc.peers} "
        f"--validators {sc.validators} --tasks {wl.tasks} --rate {wl.rate_per_s} "
        f"--posters {wl.posters} --tau {wl.tau} --byzantine-stake {sc.byzantine.stake} "
        f"--liveness-bound {sc.phases.liveness_bound_ms} --block-interval {block_interval_ms}"
    )


def _det(
    scenario: Scenario, block_interval_ms: int = 1000
) -> tuple[dict[str, Any], dict[str, Any]]:
    from simnet import deterministic  # noqa: PLC0415

    return deterministic.run(
        scenario,
        reproduce=_replay(scenario, block_interval_ms),
        block_interval_ms=block_interval_ms,
    )


def scaling(sizes: Sequence[int], tasks: int, seed: int, out: pathlib.Path) -> dict[str, Any]:
    """Messages per task against the number of peers (same workload at every size)."""
    points = []
    _say(
        f"{'peers':>6} {'msgs/task':>10} {'gossip/task':>12} {'direct/task':>12} "
        f"{'KiB/task':>9} {'wall s':>7} verdict"
    )
    for n in sizes:
        sc = Scenario(
            seed=seed,
            peers=n,
            validators=4,
            workload=Workload(tasks=tasks, rate_per_s=2.0, tau=16, posters=2),
        )
        report, perf = _det(sc)
        msgs = report["messages"]
        by_type = {k: v["messages_per_task"] for k, v in msgs["by_type"].items()}
        gossip = sum(v for k, v in by_type.items() if k.startswith("gossip"))
        point = {
            "peers": n,
            "messages_per_task": msgs["per_task"],
            "bytes_per_task": msgs["bytes_per_task"],
            "gossip_per_task": round(gossip, 1),
            "direct_per_task": round(msgs["per_task"] - gossip, 1),
            "by_type": by_type,
            "wall_s": perf["wall_s"],
            "result": report["result"],
        }
        points.append(point)
        _say(
            f"{n:>6} {point['messages_per_task']:>10} {point['gossip_per_task']:>12} "
            f"{point['direct_per_task']:>12} {point['bytes_per_task'] // 1024:>9} "
            f"{perf['wall_s']:>7} {report['result']}"
        )
    out.mkdir(parents=True, exist_ok=True)
    rpt.write_json(out / "scaling.json", {"points": points})
    rpt.plot_scaling(
        points,
        out / "messages_vs_peers.png",
        f"messages per task vs peers ({tasks} tasks, deterministic)",
    )
    _say(f"written {out / 'scaling.json'}, {out / 'messages_vs_peers.png'}")
    return {"points": points}


def deterministic_target(peers: int, tasks: int, seed: int, out: pathlib.Path) -> dict[str, Any]:
    """The deterministic target: `peers` peers and `tasks` tasks in under 10 minutes."""
    sc = Scenario(
        seed=seed,
        peers=peers,
        validators=4,
        workload=Workload(tasks=tasks, rate_per_s=2.0, tau=16, posters=4),
    )
    started = time.perf_counter()
    report, perf = _det(sc)
    wall = time.perf_counter() - started
    figures = {
        "peers": peers,
        "tasks": tasks,
        "wall_s": round(wall, 1),
        "target_s": 600,
        "result": report["result"],
        "completed": report["tasks"]["completed"],
        "latency_ms": report["latency_ms"],
        "messages_per_task": report["messages"]["per_task"],
        "rss_bytes": perf["rss_bytes"],
        "core_cpu_us_per_peer": perf["core_cpu_us_per_peer"],
    }
    out.mkdir(parents=True, exist_ok=True)
    rpt.write_json(out / "deterministic.json", figures)
    for line in rpt.summary_lines(report):
        _say(line)
    _say(
        f"deterministic {peers} peers, {tasks} tasks: {wall:.0f} s wall "
        f"({'under' if wall < 600 else 'OVER'} the 10-minute target), rss "
        f"{perf['rss_bytes'] >> 20} MiB"
    )
    return figures


def _sweep_one(sc: Scenario) -> dict[str, Any]:
    """One seed of a sweep. An exception is returned as the seed's result (with its traceback and
    the command that replays it), so that one broken seed does not end the sweep."""
    try:
        report, _ = _det(sc, SWEEP_BLOCK_INTERVAL_MS)
    except Exception:  # noqa: BLE001 - reported with its traceback, counted as an error
        return {
            "seed": sc.seed,
            "result": "error",
            "error": traceback.format_exc(limit=-8),
            "reproduce": _replay(sc, SWEEP_BLOCK_INTERVAL_MS),
        }
    return {
        "seed": sc.seed,
        "result": report["result"],
        "safety": report["checks"]["safety"]["violations"],
        "liveness": report["checks"]["liveness"]["violations"],
        "explained": len(report["checks"]["liveness"]["explained"]),
        "tasks": report["tasks"],
        "observed": report["model"]["observed"],
        "predicted": report["model"]["predicted"],
        "reproduce": report["reproduce"],
    }


def seeds(
    count: int,
    first: int,
    *,
    stake: float,
    tau: int,
    out: pathlib.Path,
    processes: int = SWEEP_PROCESSES,
) -> dict[str, Any]:
    """`count` seeds of a small swarm with `stake` byzantine stake (default policy mix)."""
    scenarios = [
        Scenario(
            seed=s,
            peers=SWEEP_PEERS,
            validators=4,
            workload=Workload(tasks=SWEEP_TASKS, rate_per_s=1.0, tau=tau, posters=1),
            byzantine=Byzantine(stake=stake),
            phases=Phases(liveness_bound_ms=SWEEP_LIVENESS_BOUND_MS),
        )
        for s in range(first, first + count)
    ]
    started = time.perf_counter()
    safety = liveness = explained = tasks = completed = failed = expired = errors = 0
    rostered = faulty_third = 0
    predicted: dict[str, Any] = {}
    failures: list[str] = []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        for i, r in enumerate(pool.imap_unordered(_sweep_one, scenarios, chunksize=8)):
            if r["result"] == "error":
                errors += 1
                failures.append(
                    f"seed {r['seed']}: raised\n{r['error']}reproduce: {r['reproduce']}"
                )
                continue
            safety += len(r["safety"])
            liveness += len(r["liveness"])
            explained += r["explained"]
            tasks += r["tasks"]["planned"]
            completed += r["tasks"]["completed"]
            failed += r["tasks"]["failed"]
            expired += r["tasks"]["expired"]
            rostered += r["observed"]["tasks_with_roster"]
            faulty_third += r["observed"]["faulty_weight_at_least_a_third"]
            predicted = r["predicted"]
            if r["result"] != "ok":
                failures.append(
                    f"seed {r['seed']}: {(r['safety'] + r['liveness'])[:2]}; "
                    f"reproduce: {r['reproduce']}"
                )
            if (i + 1) % 500 == 0:
                _say(f"  {i + 1}/{count} seeds, {time.perf_counter() - started:.0f} s")
    figures = {
        "seeds": count,
        "byzantine_stake": stake,
        "tau": tau,
        "block_interval_ms": SWEEP_BLOCK_INTERVAL_MS,
        "liveness_bound_ms": SWEEP_LIVENESS_BOUND_MS,
        "peers": SWEEP_PEERS,
        "tasks": tasks,
        "completed": completed,
        "failed": failed,
        "expired": expired,
        "safety_violations": safety,
        "liveness_violations": liveness,
        "errors": errors,
        "stalls_explained": explained,
        "rosters": rostered,
        "rosters_faulty_at_least_a_third": faulty_third,
        "observed_share": round(faulty_third / rostered, 5) if rostered else None,
        "predicted": predicted,
        "failures": failures[:20],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    rpt.write_json(out / f"seeds-tau{tau}-stake{stake}.json", figures)
    _say(
        f"{count} seeds at {stake:.0%} byzantine stake, tau {tau}, blocks every "
        f"{SWEEP_BLOCK_INTERVAL_MS} ms: errors {errors}, "
        f"safety violations {safety}, "
        f"liveness violations {liveness} (stalls explained by faulty weight >= 1/3: "
        f"{explained}); tasks {tasks}: completed {completed}, failed {failed}, expired "
        f"{expired}; rosters with faulty weight >= 1/3: {faulty_third}/{rostered} "
        f"(predicted stall probability {predicted.get('stall')}); {figures['wall_s']} s"
    )
    for line in failures[:20]:
        _say(f"  {line}")
    return figures


def liveness_vs_tau(
    taus: Sequence[int], count: int, stake: float, out: pathlib.Path
) -> dict[str, Any]:
    """Observed vs predicted stalls for several committee sizes."""
    rows = [seeds(count, 0, stake=stake, tau=tau, out=out) for tau in taus]
    _say(
        f"{'tau':>4} {'rosters':>8} {'faulty>=1/3':>12} {'observed':>9} {'predicted':>10} "
        f"{'expired':>8} {'liveness viol.':>14}"
    )
    for r in rows:
        _say(
            f"{r['tau']:>4} {r['rosters']:>8} {r['rosters_faulty_at_least_a_third']:>12} "
            f"{r['observed_share']!s:>9} {r['predicted'].get('stall', 0):>10.4f} "
            f"{r['expired']:>8} {r['liveness_violations']:>14}"
        )
    rpt.write_json(out / "liveness_vs_tau.json", {"rows": rows})
    return {"rows": rows}


def real(
    peers: int,
    tasks: int,
    *,
    rate: float,
    sandbox: str,
    workers: int,
    out: pathlib.Path,
    open_tasks: int,
    poll_blocks: bool = False,
    tau: int = REAL_TAU,
    name: str = "real",
) -> dict[str, Any]:
    """Real py-libp2p peers: the 300-peer target, or (high rate) the throughput ceiling."""
    from simnet import realmode, runner  # noqa: PLC0415

    sc = Scenario(
        seed=1,
        peers=peers,
        validators=4,
        workload=Workload(
            tasks=tasks,
            rate_per_s=rate,
            tau=tau,
            posters=4,
            open_tasks_max=open_tasks,
            poll_blocks=poll_blocks,
        ),
        phases=Phases(liveness_bound_ms=600_000),
    )
    command = (
        f"posi-peer simnet-bench {name} --peers {peers} --tasks {tasks} --rate {rate:g} "
        f"--sandbox {sandbox} --workers {workers} --open-tasks {open_tasks} --tau {tau}"
        + (" --poll-blocks" if poll_blocks else "")
    )
    report, perf, samples = realmode.run(
        sc,
        workers=workers,
        sandbox=sandbox,
        timeout_s=7200.0,
        reproduce=command,
        progress=_say,
    )
    paths = runner.write_outputs(report, perf, out / name, plots=True, samples=samples)
    for line in rpt.summary_lines(report):
        _say(line)
    _say(
        f"  throughput {report['throughput']}; cpu {perf['cpu_s']} s over {perf['wall_s']} s "
        f"wall; {perf['cpu_per_peer_s']} s cpu and {perf['rss_per_peer_bytes'] >> 20} MiB "
        f"per peer"
    )
    _say(f"  written: {', '.join(str(p) for p in paths)}")
    return {"report": report["tasks"], "throughput": report["throughput"], "perf": perf}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `simnet-bench` flags."""
    p.add_argument(
        "what", choices=("scaling", "deterministic", "seeds", "liveness", "real", "ceiling")
    )
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("simnet-out/bench"))
    p.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    p.add_argument("--peers", type=int, default=None)
    p.add_argument("--tasks", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", type=int, default=10_000)
    p.add_argument("--byzantine-stake", type=float, default=0.2)
    p.add_argument(
        "--tau",
        type=int,
        default=None,
        help=f"seeds: expected committee weight (default {DEFAULT_TAU}, the network's default); "
        f"real, ceiling: the workload's (default {REAL_TAU})",
    )
    p.add_argument("--taus", default="8,16,32")
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--sandbox", choices=("fake", "docker"), default="docker")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--open-tasks",
        type=int,
        default=OPEN_TASKS_MAX,
        help="real, ceiling: validators start no task while this many are open "
        f"(default {OPEN_TASKS_MAX}, the node's)",
    )
    p.add_argument(
        "--poll-blocks",
        action="store_true",
        help="real, ceiling: peers the block gossip misses follow the chain by long poll",
    )
    p.add_argument("--processes", type=int, default=SWEEP_PROCESSES)


def main_args(args: argparse.Namespace) -> int:
    """Run one benchmark; returns 0, or 1 when its target was missed."""
    out = args.out
    if args.what == "scaling":
        sizes = [int(s) for s in args.sizes.split(",")]
        figures = scaling(sizes, args.tasks or 20, args.seed, out)
        return 0 if all(p["result"] == "ok" for p in figures["points"]) else 1
    if args.what == "deterministic":
        figures = deterministic_target(args.peers or 5000, args.tasks or 200, args.seed, out)
        return 0 if figures["result"] == "ok" and figures["wall_s"] < 600 else 1
    if args.what == "seeds":
        figures = seeds(
            args.seeds,
            0,
            stake=args.byzantine_stake,
            tau=args.tau or DEFAULT_TAU,
            out=out,
            processes=args.processes,
        )
        return 0 if figures["safety_violations"] == figures["errors"] == 0 else 1
    if args.what == "liveness":
        taus = [int(t) for t in args.taus.split(",")]
        liveness_vs_tau(taus, min(args.seeds, 1000), args.byzantine_stake, out)
        return 0
    if args.what == "real":
        figures = real(
            args.peers or 300,
            args.tasks or 50,
            rate=args.rate or 0.25,
            sandbox=args.sandbox,
            workers=args.workers,
            out=out,
            open_tasks=args.open_tasks,
            poll_blocks=args.poll_blocks,
            tau=args.tau or REAL_TAU,
        )
        return 0 if figures["report"]["completed"] == figures["report"]["planned"] else 1
    figures = real(
        args.peers or 300,
        args.tasks or 60,
        rate=args.rate or 2.0,
        sandbox=args.sandbox,
        workers=args.workers,
        out=out,
        open_tasks=args.open_tasks,
        poll_blocks=args.poll_blocks,
        tau=args.tau or REAL_TAU,
        name="ceiling",
    )
    _say(f"ceiling: {figures['throughput']['tasks_completed_per_minute']} tasks per minute")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m simnet.bench WHAT [flags]`."""
    parser = argparse.ArgumentParser(
        prog="python -m simnet.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return main_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
