"""What `posi-peer simnet` does once its flags are parsed: run, write the report, print, exit."""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import pathlib
import sys
from collections.abc import Mapping
from typing import Any, Final

from simnet import report as rpt
from simnet.scenario import Scenario
from simnet.summary import MILESTONES, latency_samples

# Seeds of a sweep run in this many processes (the machine has two cores).
SWEEP_PROCESSES: Final = 2


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write_outputs(
    report: Mapping[str, Any],
    perf: Mapping[str, Any],
    out: pathlib.Path,
    *,
    plots: bool,
    samples: Mapping[str, list[int]] | None = None,
) -> list[pathlib.Path]:
    """Write report.json, perf.json and (with `plots`) the PNGs and report.html; returns the
    paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json", out / "perf.json"]
    rpt.write_json(written[0], report)
    rpt.write_json(written[1], perf)
    if not plots:
        return written
    simulated = report.get("mode") == "deterministic"
    clock = "simulated " if simulated else ""
    images = [out / "latency_cdf.png", out / "timeline.png"]
    if samples is None:
        samples = {}
    rpt.plot_latency_cdf(
        {
            k: v
            for k, v in samples.items()
            if k in ("included", "roster", "certified", "paid", "output-fetched")
        },
        images[0],
        f"time from posting to each phase ({clock}seconds)",
    )
    faults = [
        (f["at_ms"], f["until_ms"] or report["chain"]["end_ms"], f["kind"])
        for f in report.get("fault_windows", [])
    ]
    rpt.plot_timeline(
        report.get("timeline", {}),
        list(MILESTONES),
        images[1],
        f"task timelines ({clock}time; faults shaded)",
        faults,
    )
    html = out / "report.html"
    rpt.write_html(report, images, html)
    return [*written, *images, html]


def _one_seed(job: tuple[Scenario, str]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    from simnet import deterministic  # noqa: PLC0415

    scenario, reproduce = job
    report, perf = deterministic.run(scenario, reproduce=reproduce)
    return scenario.seed, report, perf


def deterministic(args: argparse.Namespace, scenario: Scenario, argv: list[str]) -> int:
    """`posi-peer simnet --deterministic`: one seed with its report, or a sweep of seeds."""
    from simnet.cli import reproduce_command  # noqa: PLC0415

    if args.seeds > 1:
        return sweep(scenario, args.seeds, argv, quiet=args.quiet)
    from simnet import deterministic as det  # noqa: PLC0415

    run = det.DeterministicRun(
        scenario,
        block_interval_ms=args.block_interval or 1000,
        progress=None if args.quiet else (lambda line: _say(f"  {line}")),
    )
    report, perf = run.run(reproduce_command(argv, scenario.seed))
    out = args.out or pathlib.Path("simnet-out") / f"deterministic-seed{scenario.seed}"
    paths = write_outputs(
        report, perf, out, plots=not args.no_plots, samples=latency_samples(run.rec)
    )
    for line in rpt.summary_lines(report):
        _say(line)
    _say(f"  wall {perf['wall_s']} s, cpu {perf['cpu_s']} s, rss {perf['rss_bytes'] >> 20} MiB")
    _say(f"  written: {', '.join(str(p) for p in paths)}")
    return 0 if report["result"] == "ok" else 1


def sweep(scenario: Scenario, seeds: int, argv: list[str], *, quiet: bool) -> int:
    """Run seeds scenario.seed .. + seeds - 1; print failures with their commands and a summary.
    Returns 1 if any seed failed."""
    from simnet.cli import reproduce_command  # noqa: PLC0415

    jobs = [
        (dataclasses.replace(scenario, seed=s), reproduce_command(argv, s))
        for s in range(scenario.seed, scenario.seed + seeds)
    ]
    failed: list[int] = []
    totals: dict[str, int] = {
        "completed": 0,
        "failed": 0,
        "expired": 0,
        "undecided": 0,
        "explained": 0,
        "tasks": 0,
    }
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(SWEEP_PROCESSES) as pool:
        for seed, report, _ in pool.imap(_one_seed, jobs, chunksize=4):
            tasks = report["tasks"]
            totals["tasks"] += tasks["planned"]
            for key in ("completed", "failed", "expired", "undecided"):
                totals[key] += tasks[key]
            totals["explained"] += len(report["checks"]["liveness"]["explained"])
            if report["result"] != "ok":
                failed.append(seed)
                _say(f"seed {seed}: FAILED")
                for name, check in report["checks"].items():
                    for v in check["violations"]:
                        _say(f"  {name}: {v}")
                _say(f"  reproduce: {report['reproduce']}")
            elif not quiet:
                _say(f"seed {seed}: ok ({tasks['completed']}/{tasks['planned']} completed)")
    _say(
        f"{seeds - len(failed)}/{seeds} seeds passed; tasks {totals['tasks']}: completed "
        f"{totals['completed']}, failed {totals['failed']}, expired {totals['expired']}, "
        f"undecided {totals['undecided']}; stalls explained by faulty weight >= 1/3: "
        f"{totals['explained']}"
    )
    return 1 if failed else 0


def real(args: argparse.Namespace, scenario: Scenario, argv: list[str]) -> int:
    """`posi-peer simnet` (real mode)."""
    from simnet import realmode  # noqa: PLC0415
    from simnet.cli import reproduce_command  # noqa: PLC0415

    report, perf, samples = realmode.run(
        scenario,
        workers=args.workers,
        sandbox=args.sandbox,
        block_interval_ms=args.block_interval,
        timeout_s=args.timeout,
        reproduce=reproduce_command(argv, scenario.seed),
        progress=_say,
    )
    out = args.out or pathlib.Path("simnet-out") / f"real-{scenario.peers}peers-seed{scenario.seed}"
    paths = write_outputs(report, perf, out, plots=not args.no_plots, samples=samples)
    for line in rpt.summary_lines(report):
        _say(line)
    _say(f"  wall {perf.get('wall_s')} s; written: {', '.join(str(p) for p in paths)}")
    return 0 if report["result"] == "ok" else 1
