"""The run report: JSON a program reads, plots and an HTML page a person looks at.

`report.json` holds only what the simulated run decided (simulated times, counts, checker findings):
the deterministic mode writes it byte for byte the same for the same seed. What a machine measures
about itself (CPU seconds, memory, wall time) goes in `perf.json` next to it, never in the report.

Plots (matplotlib, PNG) and `report.html` (one self-contained page: the PNGs inlined, the tables):
- `latency_cdf.png`: CDF of the time from posting to each phase, one curve per phase;
- `timeline.png`: the phases of a few tasks on one time axis (a Gantt chart), faults shaded;
- `messages_vs_peers.png` (from `simnet.bench`): messages per task against the swarm size.
"""

from __future__ import annotations

import base64
import html
import json
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

REPORT_FORMAT: Final = "posi-simnet-report/1"
# Tasks drawn in the timeline plot: more is unreadable.
TIMELINE_TASKS_MAX: Final = 12
# The report keeps the per-task timeline of at most this many tasks (the rest are counted only),
# so a 100,000-task report stays a few MiB.
REPORT_TIMELINES_MAX: Final = 2_000


def percentiles(values: Iterable[int]) -> dict[str, int]:
    """p50/p95/p99/max and the count of integer samples (nearest rank: exact, no float noise)."""
    data = sorted(values)
    if not data:
        return {"n": 0}
    n = len(data)

    def rank(q: int) -> int:
        return data[max(0, -(-q * n // 100) - 1)]

    return {"n": n, "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": data[-1]}


def dumps(report: Mapping[str, Any]) -> str:
    """The canonical text of a report: sorted keys, fixed indentation, a final newline."""
    return json.dumps(report, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def write_json(path: pathlib.Path, report: Mapping[str, Any]) -> None:
    """Write a report (or perf figures) in canonical form."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(report))


# ------------------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - heavy import, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(fig: Any, path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})


def plot_latency_cdf(samples: Mapping[str, Sequence[int]], path: pathlib.Path, title: str) -> None:
    """One CDF curve per phase: time from posting to reaching that phase."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for phase, values in samples.items():
        data = sorted(values)
        if not data:
            continue
        ys = [(i + 1) / len(data) for i in range(len(data))]
        ax.step([v / 1000 for v in data], ys, where="post", label=f"{phase} (n={len(data)})")
    ax.set_xlabel("seconds since the task was posted")
    ax.set_ylabel("share of tasks")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def plot_timeline(
    timelines: Mapping[str, Mapping[str, int]],
    phases: Sequence[str],
    path: pathlib.Path,
    title: str,
    shaded: Sequence[tuple[int, int, str]] = (),
) -> None:
    """A Gantt chart: one row per task, one coloured segment per phase (from the time it was
    reached to the next phase), faults shaded behind."""
    plt = _pyplot()
    tasks = list(timelines.items())[:TIMELINE_TASKS_MAX]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(3, len(tasks)) + 1.2))
    colours = plt.get_cmap("tab10")
    for start, end, label in shaded:
        ax.axvspan(start / 1000, end / 1000, color="red", alpha=0.08)
        ax.text(start / 1000, len(tasks) - 0.4, label, fontsize=7, color="darkred")
    seen: set[str] = set()
    for row, (name, timeline) in enumerate(tasks):
        reached = [(timeline[p], p) for p in phases if p in timeline]
        reached.sort()
        for i, (t, phase) in enumerate(reached):
            end = reached[i + 1][0] if i + 1 < len(reached) else t + 1
            colour = colours(phases.index(phase) % 10)
            ax.barh(
                row,
                max(end - t, 1) / 1000,
                left=t / 1000,
                color=colour,
                label=phase if phase not in seen else None,
                height=0.6,
            )
            seen.add(phase)
        ax.text(0, row, f"{name} ", ha="right", va="center", fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("simulated seconds" if "simulated" in title else "seconds")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def plot_scaling(points: Sequence[Mapping[str, Any]], path: pathlib.Path, title: str) -> None:
    """Messages per task (total, and by type) against the number of peers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [p["peers"] for p in points]
    ax.plot(xs, [p["messages_per_task"] for p in points], "o-", label="all messages")
    types = sorted({t for p in points for t in p.get("by_type", {})})
    for t in types:
        ax.plot(xs, [p.get("by_type", {}).get(t, 0) for p in points], ".--", label=t, alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("peers")
    ax.set_ylabel("messages per task")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


# -------------------------------------------------------------------------------------- HTML


def _views(counts: Mapping[str, int]) -> str:
    """`{"0": 40, "2": 3}` as `view 0: 40, view 2: 3`."""
    return ", ".join(f"view {v}: {n}" for v, n in counts.items())


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(
    report: Mapping[str, Any], images: Sequence[pathlib.Path], path: pathlib.Path
) -> None:
    """One self-contained page: verdict, tasks, latencies, messages, checker findings, plots."""
    checks = report.get("checks", {})
    parts = [
        "<!doctype html><meta charset='utf-8'><title>posi-peer simnet report</title>",
        "<style>body{font:14px sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#eee}.ok{color:green}.bad{color:#b00}</style>",
        "<h1>posi-peer simnet</h1>",
        f"<p>mode <b>{html.escape(str(report.get('mode')))}</b>, sandbox "
        f"<b>{html.escape(str(report.get('sandbox')))}</b>, "
        f"verdict <b class='{'ok' if report.get('result') == 'ok' else 'bad'}'>"
        f"{html.escape(str(report.get('result')))}</b></p>",
        f"<p>reproduce: <code>{html.escape(str(report.get('reproduce')))}</code></p>",
    ]
    tasks = report.get("tasks", {})
    parts.append("<h2>Tasks</h2>")
    parts.append(_table([[k, json.dumps(v)] for k, v in sorted(tasks.items())], ["", "value"]))
    lat = report.get("latency_ms", {})
    parts.append("<h2>Latency from posting (ms)</h2>")
    parts.append(
        _table(
            [
                [ph, v.get("n"), v.get("p50"), v.get("p95"), v.get("p99"), v.get("max")]
                for ph, v in lat.items()
            ],
            ["phase", "n", "p50", "p95", "p99", "max"],
        )
    )
    msgs = report.get("messages", {})
    parts.append("<h2>Messages</h2>")
    parts.append(
        _table(
            [
                [t, v.get("messages"), v.get("bytes"), v.get("messages_per_task")]
                for t, v in sorted(msgs.get("by_type", {}).items())
            ],
            ["type", "messages", "bytes", "messages per task"],
        )
    )
    parts.append("<h2>Checks</h2>")
    for name, check in checks.items():
        ok = check.get("ok")
        parts.append(
            f"<h3 class='{'ok' if ok else 'bad'}'>{html.escape(name)}: "
            f"{'ok' if ok else 'FAILED'}</h3>"
        )
        findings = check.get("violations", [])
        if findings:
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(str(v))}</li>" for v in findings) + "</ul>"
            )
    for image in images:
        if image.exists():
            data = base64.b64encode(image.read_bytes()).decode()
            parts.append(
                f"<h2>{html.escape(image.stem)}</h2><img src='data:image/png;base64,"
                f"{data}' style='max-width:100%'>"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A few lines for the terminal."""
    tasks = report.get("tasks", {})
    lines = [
        f"simnet {report.get('mode')} (sandbox {report.get('sandbox')}): "
        f"{report.get('scenario', {}).get('peers')} peers, "
        f"{report.get('scenario', {}).get('validators')} validators",
        f"  tasks: posted {tasks.get('posted')}, completed {tasks.get('completed')}, "
        f"failed {tasks.get('failed')}, expired {tasks.get('expired')}, "
        f"undecided {tasks.get('undecided')}; drawn again after an empty or light window: "
        f"{tasks.get('redrawn', 0)} ({tasks.get('redraws', 0)} windows, "
        f"{tasks.get('light_windows', 0)} light)",
    ]
    if tasks.get("max_view"):
        lines.append(
            "  tasks by highest view reached: "
            + _views(tasks["max_view"])
            + "; of those not completed: "
            + (_views(tasks.get("max_view_not_completed", {})) or "none")
        )
    for phase, v in report.get("latency_ms", {}).items():
        if v.get("n"):
            lines.append(
                f"  {phase:<20} p50 {v['p50']:>7} ms  p95 {v['p95']:>7} ms  "
                f"p99 {v['p99']:>7} ms  (n={v['n']})"
            )
    spread = report.get("chain", {}).get("propagation_ms", {})
    if spread.get("n"):
        lines.append(
            f"  blocks stored after the first peer: p50 {spread['p50']} ms, p95 "
            f"{spread['p95']} ms, p99 {spread['p99']} ms"
        )
        ways = report["chain"].get("propagation_ms_by_via", {})
        if ways:
            parts = ", ".join(
                f"{via} {v['n']} (p50 {v['p50']} ms, p95 {v['p95']} ms)"
                for via, v in ways.items()
                if v.get("n")
            )
            lines.append(f"  blocks stored by way: {parts}")
    msgs = report.get("messages", {})
    if msgs:
        lines.append(
            f"  messages: {msgs.get('total')} ({msgs.get('bytes')} bytes), "
            f"{msgs.get('per_task')} per task"
        )
        rounds = msgs.get("committee_per_task", {})
        if rounds:
            kinds = ", ".join(f"{kind} {n}" for kind, n in rounds.items())
            lines.append(f"  committee requests per task: {kinds}")
    for name, check in report.get("checks", {}).items():
        verdict = "ok" if check.get("ok") else "FAILED"
        lines.append(f"  check {name}: {verdict}")
        lines += [f"    - {v}" for v in check.get("violations", [])[:20]]
    if report.get("result") != "ok":
        lines.append(f"  reproduce: {report.get('reproduce')}")
    return lines
