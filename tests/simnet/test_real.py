"""The real mode: real PeerCores on real py-libp2p hosts over loopback, in worker processes."""

from __future__ import annotations

import collections

import pytest

from simnet import realmode
from simnet.scenario import Byzantine, Fault, Phases, Scenario, Workload


def _run(scenario: Scenario, sandbox: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    lines: list[str] = []
    report, perf, samples = realmode.run(
        scenario,
        workers=2,
        sandbox=sandbox,
        block_interval_ms=500,
        timeout_s=300.0,
        reproduce="posi-peer simnet ...",
        progress=lines.append,
    )
    assert any("listening" in line for line in lines)  # progress while it runs
    # latency samples for the plots; on failure, show what the run did
    assert samples["paid"], (report["tasks"], report["checks"], lines[-6:])
    return report, perf


def test_small_real_swarm_with_a_byzantine_peer_and_a_crash() -> None:
    # Real mode's draws depend on block hashes, so on timing: the seed does not fix the rosters.
    # tau 16, not 8: at 8 about 1 task in 250 drew no live honest member (the liars and the
    # crashed peer alone certify a wrong result, outside the model, and the run rightly fails);
    # at 16 about 1 in 70,000.
    sc = Scenario(
        seed=2,
        peers=12,
        validators=4,
        workload=Workload(tasks=3, rate_per_s=2.0, tau=16, posters=2),
        byzantine=Byzantine(stake=0.15, policies=("lie",)),
        faults=(Fault("crash", 500, 4000, count=1),),
        phases=Phases(faults_until_ms=4000, liveness_bound_ms=120_000),
    )
    report, perf = _run(sc, "fake")
    assert report["mode"] == "real"
    assert report["sandbox"].startswith("fake")  # reported as protocol-only
    assert report["result"] == "ok", report["checks"]
    assert report["tasks"]["completed"] == 3
    assert report["chain"]["height"] >= 8
    # every peer stored the same blocks (the checker compared them) and most reached the tip
    assert report["peers"]["heights"]["p50"] >= report["chain"]["height"] - 3
    # real traffic: tasks and blocks gossiped, committee messages over direct streams
    by_type = report["messages"]["by_type"]
    assert by_type["gossip posi/blocks/1"]["messages"] > 0
    assert by_type["request /posi/committee/1"]["messages"] > 0
    assert report["messages"]["committee_per_task"]["vote"] > 0
    assert report["latency_ms"]["paid"]["p50"] > report["latency_ms"]["included"]["p50"]
    assert perf["cpu_s"] > 0
    assert set(perf["workers"]) == {"0", "1", "2"}  # two for operators, one for the rest
    streams = collections.Counter[str]()
    for w in perf["workers"].values():
        streams.update(w["request_streams"])
    assert streams["/posi/committee/1 reused"] > 0  # members keep their streams to each other
    # the library's yamux switch the workers run with is on record
    assert all(w["yamux_release_on_read"] for w in perf["workers"].values())


@pytest.mark.docker
def test_small_real_swarm_runs_real_docker_jobs() -> None:
    sc = Scenario(
        seed=3,
        peers=8,
        validators=4,
        workload=Workload(tasks=1, rate_per_s=2.0, tau=16, posters=1, jobs=("sha256",)),
    )
    report, perf = _run(sc, "docker")
    assert report["sandbox"] == "docker"
    assert report["result"] == "ok", report["checks"]
    assert report["tasks"]["completed"] == 1
    assert report["executions"]["execute"] >= 1
    # the workers' jobs ran through their jobs processes, timed by purpose
    timed = collections.Counter[str]()
    for w in perf["workers"].values():
        timed.update({purpose: v["n"] for purpose, v in w["exec_ms"].items()})
    assert timed["execute"] == report["executions"]["execute"]
    assert timed["reexecute"] == report["executions"]["reexecute"]
    assert report["executions"].get("reexecute", 0) >= 1  # verifiers re-ran the job
