"""The deterministic mode end to end: real PeerCores, seeded network, checkers, report."""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simnet.deterministic import DeterministicRun
from simnet.report import dumps
from simnet.scenario import Byzantine, Fault, Phases, Scenario, Workload

ROOT = Path(__file__).resolve().parents[2]


def small(seed: int = 3, **changes: object) -> Scenario:
    base = Scenario(
        seed=seed,
        peers=24,
        validators=4,
        workload=Workload(tasks=3, rate_per_s=2.0, tau=8, jobs=("echo", "sha256", "wc")),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_few_hundred_peers_decide_every_task() -> None:
    sc = Scenario(
        seed=7,
        peers=300,
        validators=4,
        workload=Workload(tasks=5, rate_per_s=2.0, tau=16, posters=2),
    )
    run = DeterministicRun(sc)
    report, perf = run.run("reproduce-me")
    assert report["result"] == "ok", report["checks"]
    tasks = report["tasks"]
    assert tasks["completed"] == 5
    assert tasks["posted"] == 5
    # every peer followed the chain to (nearly) the same height
    heights = report["peers"]["heights"]
    assert heights["n"] == 306
    assert heights["p50"] >= report["chain"]["height"] - 2
    # milestones come in order for the median task
    lat = report["latency_ms"]
    assert 0 < lat["included"]["p50"] <= lat["roster"]["p50"] <= lat["certified"]["p50"]
    assert lat["certified"]["p50"] <= lat["paid"]["p50"] <= lat["output-fetched"]["p50"]
    # only tasks and blocks are gossiped; committee traffic is direct and does not scale with N
    by_type = report["messages"]["by_type"]
    assert set(k.split()[1] for k in by_type if k.startswith("gossip")) == {
        "posi/tasks/1",
        "posi/blocks/1",
    }
    assert by_type["request /posi/committee/1"]["messages_per_task"] < 400
    # ... and splits by kind: each task needs proposals, votes and certificates
    kinds = report["messages"]["committee_per_task"]
    assert set(kinds) <= {"proposal", "vote", "certificate", "new-view"}
    assert min(kinds["proposal"], kinds["vote"], kinds["certificate"]) > 0
    total = by_type["request /posi/committee/1"]["messages_per_task"]
    assert abs(sum(kinds.values()) - total) < 0.1 * len(kinds)  # each figure rounded
    assert report["reproduce"] == "reproduce-me"
    assert report["executions"]["execute"] >= 5
    assert perf["shared_state_hits"] > 0
    # the poster fetched the right output for every task (the checker compared it)
    assert all(r.output is not None for r in run.rec.tasks.values())


def test_validators_queue_tasks_past_the_open_tasks_max_and_still_decide_them_all() -> None:
    jobs = ("echo", "sha256", "wc")
    wl = Workload(tasks=4, rate_per_s=10.0, tau=8, jobs=jobs, open_tasks_max=1)
    run = DeterministicRun(small(seed=5, workload=wl))
    report, _ = run.run("x")
    assert report["result"] == "ok", report["checks"]
    assert report["tasks"]["completed"] == 4
    # One open task at a time: each was included only once the one before it was paid.
    spans = sorted((r.phases["included"], r.phases["paid"]) for r in run.rec.tasks.values())
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    assert report["scenario"]["workload"]["open_tasks_max"] == 1


def test_tasks_whose_window_closes_empty_are_drawn_again_and_complete() -> None:
    # tau 1: about a third of the draws find nobody (e^-1), so some windows close empty.
    wl = Workload(tasks=6, rate_per_s=2.0, tau=1, jobs=("echo",))
    run = DeterministicRun(small(seed=1, workload=wl))
    report, _ = run.run("x")
    assert report["result"] == "ok", report["checks"]
    tasks = report["tasks"]
    assert tasks["redrawn"] > 0
    assert tasks["redraws"] >= tasks["redrawn"]
    assert tasks["completed"] == 6
    # A redrawn task got a second seed: it reached its roster after its REDRAWN event.
    redrawn = [r for r in run.rec.tasks.values() if r.redraws]
    assert all(r.phases["redrawn"] < r.phases["roster"] for r in redrawn)


def test_light_rosters_are_drawn_again_and_every_task_runs_on_one_of_the_minimum_weight() -> None:
    # tau 3: the ledger keeps rosters of weight 2 or more (half, rounded up); this seed lands a
    # single weight-1 credential in some windows
    wl = Workload(tasks=6, rate_per_s=2.0, tau=3, jobs=("echo",))
    run = DeterministicRun(small(seed=3, workload=wl))
    report, _ = run.run("x")
    assert report["result"] == "ok", report["checks"]
    tasks = report["tasks"]
    assert tasks["light_windows"] > 0
    assert tasks["redraws"] >= tasks["light_windows"]
    assert tasks["completed"] == 6
    state = run.final_state()
    least = state.params.min_roster_weight(3)
    assert least == 2
    for rec in run.rec.tasks.values():
        task = state.task(rec.task_id)
        assert task.roster_weight() >= least


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, _ = DeterministicRun(small(seed=11)).run("x")
    b, _ = DeterministicRun(small(seed=11)).run("x")
    c, _ = DeterministicRun(small(seed=12)).run("x")
    assert dumps(a) == dumps(b)
    assert dumps(a) != dumps(c)


_ONE_RUN = """
import hashlib, sys
from simnet.deterministic import DeterministicRun
from simnet.report import dumps
from simnet.scenario import Byzantine, Scenario, Workload
sc = Scenario(seed=21, peers=30, validators=4, workload=Workload(tasks=3, rate_per_s=2.0, tau=8),
              byzantine=Byzantine(stake=0.2))
report, _ = DeterministicRun(sc).run("x")
sys.stdout.write(hashlib.sha256(dumps(report).encode()).hexdigest())
"""


def test_same_bytes_across_processes_and_hash_seeds() -> None:
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", _ONE_RUN],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
            timeout=300,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_sharing_pure_checks_changes_nothing() -> None:
    sc = small(seed=5, byzantine=Byzantine(stake=0.2))
    shared, perf = DeterministicRun(sc, shared=True).run("x")
    alone, _ = DeterministicRun(sc, shared=False).run("x")
    assert perf["shared_state_hits"] > 0
    assert dumps(shared) == dumps(alone)


def test_faults_and_byzantine_peers_within_the_model_pass() -> None:
    sc = Scenario(
        seed=8,
        peers=40,
        validators=4,
        workload=Workload(tasks=6, rate_per_s=1.0, tau=16),
        byzantine=Byzantine(stake=0.2, validators=("censor",)),
        faults=(
            Fault("crash", 3000, 15000, count=3),
            Fault("partition", 5000, 12000, fraction=0.2),
            Fault("loss", 2000, 8000, loss=0.1),
            Fault("slow", 1000, 10000, count=4, factor=5.0),
        ),
        phases=Phases(faults_until_ms=15000, liveness_bound_ms=120_000),
    )
    run = DeterministicRun(sc)
    report, _ = run.run("x")
    assert report["result"] == "ok", report["checks"]
    assert report["tasks"]["completed"] + report["tasks"]["failed"] == 6
    # every task is counted by the highest view it reached; faulty members forced view changes
    views = report["tasks"]["max_view"]
    assert sum(views.values()) == 6
    assert max(int(v) for v in views) > 0
    assert sum(report["world"]["byzantine"].values()) >= 5
    assert report["flood"]["junk_messages"] > 0
    assert report["penalties"]  # junk and equivocation cost their senders
    assert not report["penalties_between_honest_peers"].get("equivocation")
    # the crashed peers came back and caught up with the chain
    crashed = report["world"]["faults"][0]["peers"]
    assert len(crashed) == 3
    top = report["chain"]["height"]
    assert all(run.peers[i].up for i in crashed)
    assert all(run.peers[i].core.height >= top - 2 for i in crashed)


def test_colluding_majority_is_flagged_with_the_command_that_reproduces_it() -> None:
    sc = small(seed=1, byzantine=Byzantine(stake=0.9, policies=("collude",)))
    report, _ = DeterministicRun(sc).run("posi-peer simnet --deterministic --seed 1 ...")
    assert report["result"] == "failed"
    violations = report["checks"]["safety"]["violations"]
    assert any("wrong result was certified" in v for v in violations)
    assert any("outside the model" in v for v in violations)
    assert report["lies_signed"] >= 1
    assert report["reproduce"].startswith("posi-peer simnet --deterministic --seed 1")


def test_liveness_bound_is_enforced() -> None:
    sc = small(seed=2, phases=Phases(faults_until_ms=0, liveness_bound_ms=500))
    report, _ = DeterministicRun(sc).run("x")
    assert report["checks"]["safety"]["ok"]
    assert not report["checks"]["liveness"]["ok"]
    violations = report["checks"]["liveness"]["violations"]
    assert len(violations) == 3
    assert all("deadline" in v and "bound 500 ms" in v for v in violations)


@pytest.mark.parametrize("policy", ["withhold", "silent", "lie", "equivocate", "forge"])
def test_each_policy_alone_keeps_safety_and_liveness(policy: str) -> None:
    sc = Scenario(
        seed=4,
        peers=30,
        validators=4,
        workload=Workload(tasks=3, rate_per_s=1.0, tau=12),
        byzantine=Byzantine(stake=0.25, policies=(policy,)),
    )
    report, _ = DeterministicRun(sc).run("x")
    assert report["checks"]["safety"]["ok"], report["checks"]
    liveness = report["checks"]["liveness"]
    assert liveness["ok"], liveness
    assert report["world"]["byzantine"].get(f"operator:{policy}", 0) >= 1
