"""Slow tier: large deterministic swarms, ten thousand seeds under byzantine stake, a real swarm
of a hundred peers. Run with `pytest -m slow tests/simnet`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from committee.params import DEFAULT_TAU
from simnet import bench, realmode
from simnet.deterministic import DeterministicRun
from simnet.scenario import Byzantine, Fault, Phases, Scenario, Workload

pytestmark = pytest.mark.slow

# POSI_SIMNET_SEEDS shortens the sweep (CI runs 3,000: .ci/run); the tier's target is 10,000.
SEEDS = int(os.environ.get("POSI_SIMNET_SEEDS", "10000"))


def test_two_thousand_peers_with_faults_and_byzantine_stake() -> None:
    sc = Scenario(
        seed=17,
        peers=2000,
        validators=4,
        workload=Workload(tasks=40, rate_per_s=2.0, tau=16, posters=4),
        byzantine=Byzantine(stake=0.2, validators=("censor",)),
        faults=(
            Fault("crash", 5000, 25000, count=50),
            Fault("partition", 8000, 20000, fraction=0.1),
            Fault("loss", 3000, 10000, loss=0.05),
        ),
        phases=Phases(faults_until_ms=25000, liveness_bound_ms=180_000),
    )
    report, _ = DeterministicRun(sc).run("x")
    assert report["checks"]["safety"]["ok"], report["checks"]
    assert report["checks"]["liveness"]["ok"], report["checks"]
    assert report["tasks"]["completed"] + report["tasks"]["failed"] >= 38


# The sweep took 31 to 59 minutes on the shared 2-core machine (0.18-0.35 s per seed on two
# processes): above the suite's 10-minute limit per test, so it has its own.
@pytest.mark.timeout(4800)
def test_ten_thousand_seeds_under_twenty_percent_byzantine_stake(tmp_path: Path) -> None:
    # the default parameters: committee size DEFAULT_TAU, the ledger's windows and timeouts
    figures = bench.seeds(SEEDS, 0, stake=0.2, tau=DEFAULT_TAU, out=tmp_path)
    assert figures["safety_violations"] == 0, figures["failures"]
    assert figures["liveness_violations"] == 0, figures["failures"]
    assert figures["completed"] + figures["failed"] + figures["expired"] == figures["tasks"]
    # stalls only where committee.params says they may happen: faulty weight >= 1/3
    assert figures["expired"] <= figures["rosters_faulty_at_least_a_third"]


def test_a_hundred_real_peers() -> None:
    sc = Scenario(
        seed=5,
        peers=100,
        validators=4,
        workload=Workload(tasks=10, rate_per_s=0.5, tau=16, posters=2),
        byzantine=Byzantine(stake=0.1, policies=("lie", "withhold")),
        phases=Phases(liveness_bound_ms=300_000),
    )
    report, _, _ = realmode.run(
        sc, workers=2, sandbox="fake", block_interval_ms=3000, timeout_s=1200.0
    )
    assert report["result"] == "ok", report["checks"]
    assert report["tasks"]["completed"] == 10
