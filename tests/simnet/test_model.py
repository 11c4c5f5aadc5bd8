"""The deterministic machinery on its own: scheduler order, network model, scenario parsing."""

from __future__ import annotations

import random

import pytest

from committee.round import Timing
from ledger.genesis import ChainParams
from simnet.errors import ScenarioError, SimnetError
from simnet.network import Latency, Network, NetworkConfig, build_mesh
from simnet.realmode import CORE_BLOCK_INTERVAL_MS, task_timing
from simnet.scenario import Scenario, pick_byzantine, resolve_faults
from simnet.scheduler import Scheduler
from simnet.world import CREDENTIAL_WINDOW_MS_MIN, build_world, chain_params


def test_scheduler_runs_in_time_then_insertion_order() -> None:
    sched = Scheduler()
    seen: list[tuple[int, str]] = []
    for t, name in [(5, "c"), (1, "a"), (5, "d"), (1, "b"), (3, "x")]:
        sched.at(t, lambda n: seen.append((sched.now_ms, n)), name)
    sched.run_until(4)
    assert seen == [(1, "a"), (1, "b"), (3, "x")]
    assert sched.now_ms == 4
    sched.run_until(10)
    assert seen[3:] == [(5, "c"), (5, "d")]
    with pytest.raises(SimnetError):
        sched.at(2, print)


def test_scheduler_stop_predicate_leaves_the_rest() -> None:
    sched = Scheduler()
    out: list[int] = []
    for t in range(10):
        sched.at(t, out.append, t)
    sched.run_until(100, stop=lambda: len(out) == 3)
    assert out == [0, 1, 2]
    assert len(sched) == 7


@pytest.mark.parametrize(
    "text", ["fixed:10", "uniform:5:50", "normal:20:5", "lognormal:20:0.5", "pareto:5:1.5"]
)
def test_latency_samples_are_seeded_and_bounded(text: str) -> None:
    lat = Latency.parse(text)
    a = [lat.sample(random.Random(3)) for _ in range(200)]
    b = [lat.sample(random.Random(3)) for _ in range(200)]
    assert a == b
    assert all(1 <= x <= 30_000 for x in a)
    assert Latency.parse(lat.text()) == lat


@pytest.mark.parametrize("text", ["gauss:1", "fixed", "uniform:9:1", "fixed:x", "pareto:0:1"])
def test_latency_rejects_bad_forms(text: str) -> None:
    with pytest.raises(ScenarioError):
        Latency.parse(text)


def test_mesh_degrees_within_bounds() -> None:
    mesh = build_mesh(500, 6, 12, random.Random(1))
    degrees = [len(n) for n in mesh]
    assert min(degrees) >= 6 - 1  # the last peers may find every candidate full once or twice
    assert max(degrees) <= 12
    assert all(i in mesh[j] for i, ns in enumerate(mesh) for j in ns)  # undirected


def test_gossip_reaches_everyone_and_counts_mesh_copies() -> None:
    net = Network(NetworkConfig(latency=Latency.parse("fixed:10")), 300, random.Random(2))
    spread = net.disseminate(0, 1000, [True] * 300)
    assert sorted(p for p, _, _ in spread.arrivals) == list(range(1, 300))
    # every peer forwards to its mesh neighbours but the one it heard from
    mesh_links = sum(len(n) for n in net.mesh)
    assert spread.messages == mesh_links - 299
    assert max(t for _, t, _ in spread.arrivals) < 10 * 11 * 8  # a few hops of 11 ms, no stragglers


def test_gossip_respects_partition_and_crash() -> None:
    net = Network(NetworkConfig(latency=Latency.parse("fixed:10")), 100, random.Random(2))
    net.partition([range(0, 30), range(30, 100)])
    net.crash([5])
    spread = net.disseminate(0, 100, [True] * 100)
    reached = {p for p, _, _ in spread.arrivals}
    assert reached == set(range(1, 30)) - {5}
    net.heal()
    net.restart([5])
    assert {p for p, _, _ in net.disseminate(0, 100, [True] * 100).arrivals} == set(range(1, 100))


def test_transmit_loss_bandwidth_and_partition() -> None:
    cfg = NetworkConfig(latency=Latency.parse("fixed:10"), bandwidth_bytes_per_ms=1000)
    net = Network(cfg, 4, random.Random(0))
    first = net.transmit(0, 1, 9_840, now_ms=0)  # 10,000 wire bytes: 10 ms on the uplink
    second = net.transmit(0, 2, 9_840, now_ms=0)  # queues behind the first
    assert first == [20]
    assert second == [30]
    net.partition([[0, 1], [2, 3]])
    assert net.transmit(0, 2, 10, now_ms=100) == []
    lossy = Network(NetworkConfig(loss=1.0), 2, random.Random(0))
    assert lossy.transmit(0, 1, 10, now_ms=0) == []


SCENARIO = """
seed = 11
peers = 40
validators = 4

[network]
latency = "uniform:5:30"
loss = 0.01

[workload]
tasks = 6
rate_per_s = 3.0
jobs = ["echo", "echo", "sleep"]

[byzantine]
stake = 0.2
policies = ["lie", "withhold"]
validators = ["censor"]

[[faults]]
kind = "crash"
at_ms = 1000
until_ms = 5000
count = 3

[[faults]]
kind = "partition"
at_ms = 2000
until_ms = 4000
fraction = 0.25
"""


def test_scenario_file_round_trip() -> None:
    sc = Scenario.from_toml(SCENARIO)
    assert sc.seed == 11
    assert sc.peers == 40
    assert sc.network.latency == Latency("uniform", 5, 30)
    assert sc.workload.jobs == ("echo", "echo", "sleep")
    assert sc.byzantine.validators == ("censor",)
    assert sc.faults_until_ms == 5000  # the last fault's end when [phases] does not say
    faults = resolve_faults(sc, random.Random(1), range(40))
    assert len(faults[0].peers) == 3
    assert len(faults[1].peers) == 10
    desc = sc.describe()
    assert desc["faults"][0].startswith("crash 3 peers")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("peers = 1", "peers"),
        ("[workload]\njobs = ['nope']", "workload.jobs"),
        ("[byzantine]\npolicies = ['evil']", "byzantine.policies"),
        ("[byzantine]\nvalidators = ['censor', 'censor']", "byzantine.validators"),
        ("[[faults]]\nkind = 'meteor'\nat_ms = 1", "kind"),
        ("[network]\nloss = 2.0", "network.loss"),
        ("colour = 'red'", "unknown key"),
        (
            "[phases]\nfaults_until_ms = 10\n[[faults]]\nkind = 'loss'\nat_ms = 5\nuntil_ms = 50",
            "faults_until_ms",
        ),
    ],
)
def test_scenario_errors_name_the_field(patch: str, field: str) -> None:
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        Scenario.from_toml(patch)


def test_pick_byzantine_stays_under_the_stake_share() -> None:
    rng = random.Random(5)
    stakes = [rng.randint(1, 100) for _ in range(200)]
    chosen = pick_byzantine(stakes, 0.2, ["lie", "withhold"], random.Random(9))
    held = sum(stakes[i] for i in chosen)
    assert 0.15 * sum(stakes) < held <= 0.2 * sum(stakes)
    assert set(chosen.values()) == {"lie", "withhold"}


def test_credential_window_lasts_long_enough_at_short_block_intervals() -> None:
    sc = Scenario(seed=1, peers=4, validators=1)
    default = ChainParams().credential_window_blocks
    assert chain_params(sc, 1000).credential_window_blocks == default  # the ledger's own
    assert chain_params(sc, 4000).credential_window_blocks == default
    short = chain_params(sc, 500)
    assert short.credential_window_blocks * 500 >= CREDENTIAL_WINDOW_MS_MIN
    short.check()  # still a valid genesis
    world = build_world(sc, block_interval_ms=250)
    assert world.genesis.params.credential_window_blocks * 250 >= CREDENTIAL_WINDOW_MS_MIN


def test_the_real_mode_stretches_the_round_timeouts_with_the_block_interval() -> None:
    # Round timeouts stretch with the block interval over the core's default, never shrink.
    assert task_timing(CORE_BLOCK_INTERVAL_MS) == Timing()
    assert task_timing(CORE_BLOCK_INTERVAL_MS // 4) == Timing()
    doubled = task_timing(2 * CORE_BLOCK_INTERVAL_MS)
    assert (doubled.propose_ms, doubled.prepare_ms, doubled.commit_ms) == (
        2 * Timing().propose_ms,
        2 * Timing().prepare_ms,
        2 * Timing().commit_ms,
    )
    assert doubled.execute_ms == Timing().execute_ms  # the job's deadline is the job's
