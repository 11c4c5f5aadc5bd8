"""Turn a run's observations and findings into the report (`simnet.report` writes it out).

Both modes call `build_report`; everything in it comes from the world, the recorder and the
checkers, so the deterministic mode's report is a pure function of the seed.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

from simnet.checkers import FINDINGS_LISTED_MAX, Findings
from simnet.observe import Recorder
from simnet.report import REPORT_FORMAT, REPORT_TIMELINES_MAX, percentiles
from simnet.world import World

# Milestones of a task, in order: latency is reported from posting to each, and per phase from the
# previous milestone the task reached.
MILESTONES = (
    "posted",
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


def _count_by(values: Iterable[int]) -> dict[str, int]:
    """How many of `values` are each value, in increasing order (JSON keys)."""
    return {str(v): n for v, n in sorted(collections.Counter(values).items())}


def _listed(items: list[str]) -> list[str]:
    if len(items) <= FINDINGS_LISTED_MAX:
        return items
    return [*items[:FINDINGS_LISTED_MAX], f"... and {len(items) - FINDINGS_LISTED_MAX} more"]


def latency_samples(rec: Recorder) -> dict[str, list[int]]:
    """Milliseconds from posting to each milestone, over the tasks that reached it."""
    out: dict[str, list[int]] = {m: [] for m in MILESTONES[1:]}
    for r in rec.tasks.values():
        posted = r.phases.get("posted")
        if posted is None:
            continue
        for m in MILESTONES[1:]:
            if m in r.phases:
                out[m].append(r.phases[m] - posted)
    return out


def phase_samples(rec: Recorder) -> dict[str, list[int]]:
    """Milliseconds spent reaching each milestone from the previous one the task reached."""
    out: dict[str, list[int]] = {m: [] for m in MILESTONES[1:]}
    for r in rec.tasks.values():
        previous = r.phases.get("posted")
        if previous is None:
            continue
        for m in MILESTONES[1:]:
            if m in r.phases:
                out[m].append(max(0, r.phases[m] - previous))
                previous = r.phases[m]
    return out


def build_report(
    world: World,
    rec: Recorder,
    findings: Findings,
    *,
    mode: str,
    sandbox: str,
    end_ms: int,
    reproduce: str,
    peers_figures: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of one run (see `simnet.report` for the format's use)."""
    outcomes = findings.outcomes
    status = collections.Counter(o.status for o in outcomes)
    failed_why = collections.Counter(o.why or o.status for o in outcomes if o.status != "completed")
    posted = sum(1 for r in rec.tasks.values() if r.task_id is not None)
    total_msgs = sum(rec.messages.values())
    total_bytes = sum(rec.message_bytes.values())
    per = max(1, posted)
    by_type = {
        kind: {
            "messages": rec.messages[kind],
            "bytes": rec.message_bytes[kind],
            "messages_per_task": round(rec.messages[kind] / per, 1),
            "bytes_per_task": round(rec.message_bytes[kind] / per),
        }
        for kind in sorted(rec.messages)
    }
    gossip = sum(v for k, v in rec.messages.items() if k.startswith("gossip"))
    timelines = {
        str(i): dict(sorted(rec.tasks[i].phases.items(), key=lambda kv: (kv[1], kv[0])))
        for i in sorted(rec.tasks)[:REPORT_TIMELINES_MAX]
    }
    top = max(rec.heights, default=0)
    stalls = sum(1 for o in outcomes if o.roster_members and 3 * o.faulty_share >= 1)
    rostered = sum(1 for o in outcomes if o.roster_members)
    drawn = {i: r.drawn for i, r in rec.tasks.items()}
    members = sum(o.roster_members for o in outcomes if drawn.get(o.plan))
    sent = sum(drawn.values())
    ok = findings.ok
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "mode": mode,
        "sandbox": sandbox,
        "result": "ok" if ok else "failed",
        "reproduce": reproduce,
        "scenario": world.scenario.describe(),
        "world": world.describe(),
        "tasks": {
            "planned": len(world.tasks),
            "posted": posted,
            "completed": status.get("completed", 0),
            "failed": status.get("failed", 0),
            "expired": status.get("expired", 0),
            "undecided": status.get("open", 0) + status.get("not-included", 0),
            "not_posted": status.get("not-posted", 0),
            "why_not_completed": dict(sorted(failed_why.items())),
            "rejected_attempts": sum(len(r.rejected) for r in rec.tasks.values()),
            # credential windows that closed empty or light (a roster below the ledger's minimum
            # weight, dropped), and the tasks drawn again after one
            "redraws": sum(r.redraws for r in rec.tasks.values()),
            "light_windows": sum(r.light_windows for r in rec.tasks.values()),
            "redrawn": sum(1 for r in rec.tasks.values() if r.redraws),
            # tasks by the highest view any of their agreements moved to (0: no view change),
            # all of them and those that did not complete
            "max_view": _count_by(r.max_view for r in rec.tasks.values()),
            "max_view_not_completed": _count_by(
                rec.tasks[o.plan].max_view
                for o in outcomes
                if o.status != "completed" and o.plan in rec.tasks
            ),
        },
        "latency_ms": {k: percentiles(v) for k, v in latency_samples(rec).items()},
        "phase_ms": {k: percentiles(v) for k, v in phase_samples(rec).items()},
        "messages": {
            "total": total_msgs,
            "bytes": total_bytes,
            "per_task": round(total_msgs / per, 1),
            "bytes_per_task": round(total_bytes / per),
            "gossip_share": round(gossip / total_msgs, 4) if total_msgs else 0.0,
            "by_type": by_type,
            "committee_per_task": {
                kind: round(n / per, 1) for kind, n in sorted(rec.round_messages.items())
            },
        },
        "chain": {
            "height": top,
            "end_ms": end_ms,
            "blocks_per_minute": round(60_000 * top / end_ms, 2) if end_ms else 0.0,
            "propagation_ms": percentiles(rec.propagation_ms()),
            # the same by how the block came: gossip, sync, poll (a held sync request), round
            "propagation_ms_by_via": {
                via: percentiles(rec.propagation_ms(via)) for via in rec.store_ways()
            },
        },
        "checks": {
            "safety": {"ok": not findings.safety, "violations": _listed(findings.safety)},
            "liveness": {
                "ok": not findings.liveness,
                "violations": _listed(findings.liveness),
                "explained": _listed(findings.explained),
            },
        },
        "model": {
            "predicted": world.prediction(),
            "observed": {
                "tasks_with_roster": rostered,
                # credentials that made it onto a roster, of those the drawn peers sent: the rest
                # missed the window (the model assumes every drawn peer joins)
                "roster_members_of_drawn": round(members / sent, 4) if sent else None,
                "faulty_weight_at_least_a_third": stalls,
                "share": round(stalls / rostered, 4) if rostered else None,
            },
        },
        "penalties": dict(sorted(rec.penalties.items())),
        "penalties_between_honest_peers": dict(sorted(rec.penalised_honest.items())),
        "executions": dict(sorted(rec.executions.items())),
        "peers": dict(peers_figures),
        "timeline": timelines,
        "outcomes": {
            str(o.plan): {
                "status": o.status,
                "decided_ms": o.decided_ms,
                "drawn": drawn.get(o.plan, 0),
                "roster": o.roster_members,
                "faulty_share": o.faulty_share,
                "why": o.why,
            }
            for o in outcomes[:REPORT_TIMELINES_MAX]
        },
    }
    if extra:
        report.update(extra)
    return report
