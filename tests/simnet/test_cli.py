"""`posi-peer simnet` flags, scenario files, outputs and exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from simnet import bench, cli
from simnet.errors import ScenarioError
from simnet.scenario import Byzantine, Phases, Scenario, Workload


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="posi-peer")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args, argv[1:]) if argv[0] == "simnet" else args.func(args)
    return code


def test_deterministic_run_writes_report_plots_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run_cli(
        [
            "simnet",
            "--deterministic",
            "--seed",
            "4",
            "--peers",
            "20",
            "--tasks",
            "2",
            "--rate",
            "2",
            "--tau",
            "8",
            "--crash",
            "2@2000+3000",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert report["result"] == "ok"
    assert report["scenario"]["faults"] == ["crash 2 peers at 2000 ms until 5000 ms"]
    assert report["reproduce"] == (
        "posi-peer simnet --deterministic --peers 20 --tasks 2 --rate 2 --tau 8 --crash "
        "2@2000+3000 --quiet --seed 4"
    )
    for name in ("latency_cdf.png", "timeline.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "tasks: posted 2, completed 2" in printed
    perf = json.loads((out / "perf.json").read_text())
    assert perf["wall_s"] > 0


def test_scenario_file_and_flags_combine(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        "seed = 9\npeers = 30\n[workload]\ntasks = 2\ntau = 8\n"
        '[[faults]]\nkind = "partition"\nat_ms = 1000\nuntil_ms = 4000\nfraction = 0.3\n'
    )
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--scenario", str(scenario), "--peers", "25", "--loss", "0.01"])
    sc = cli.scenario_from_args(args)
    assert (sc.seed, sc.peers, sc.workload.tasks) == (9, 25, 2)
    assert sc.network.loss == 0.01
    assert sc.faults[0].kind == "partition"
    assert sc.faults_until_ms == 4000


def test_failing_run_exits_1_and_prints_the_reproducing_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        [
            "simnet",
            "--deterministic",
            "--seed",
            "1",
            "--peers",
            "20",
            "--tasks",
            "2",
            "--tau",
            "8",
            "--byzantine-stake",
            "0.9",
            "--policies",
            "collude",
            "--no-plots",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "check safety: FAILED" in printed
    assert "reproduce: posi-peer simnet --deterministic --seed" not in printed  # flags kept
    assert "reproduce: posi-peer simnet --deterministic --peers 20" in printed
    assert not (tmp_path / "report.html").exists()


def test_seed_sweep_reports_each_failure(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(
        [
            "simnet",
            "--deterministic",
            "--seed",
            "0",
            "--seeds",
            "2",
            "--peers",
            "12",
            "--tasks",
            "1",
            "--tau",
            "6",
            "--byzantine-stake",
            "0.9",
            "--policies",
            "collude",
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "0/2 seeds passed" in printed or "1/2 seeds passed" in printed
    assert printed.count("reproduce: posi-peer simnet") >= 1


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--crash", "x@1"), ("--partition", "0.5"), ("--slow", "2@1+2x0.5"), ("--latency", "bad:1")],
)
def test_bad_flags_exit_2(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["simnet", "--deterministic", flag, value])
    assert code == 2
    assert "posi-peer simnet:" in capsys.readouterr().err


def test_parse_fault_forms() -> None:
    crash = cli.parse_fault("crash", "3@2s+5s")
    assert (crash.count, crash.at_ms, crash.until_ms) == (3, 2000, 7000)
    slow = cli.parse_fault("slow", "4@100+900x3")
    assert (slow.count, slow.factor, slow.until_ms) == (4, 3.0, 1000)
    assert cli.parse_fault("crash", "1@50").until_ms is None
    with pytest.raises(ScenarioError, match="WHO@AT"):
        cli.parse_fault("loss", "lots")


@pytest.mark.parametrize("name", ["faults", "byzantine", "collusion"])
def test_shipped_scenarios_parse(name: str) -> None:
    from simnet.scenario import Scenario

    path = Path(cli.__file__).parent / "scenarios" / f"{name}.toml"
    sc = Scenario.from_toml(path.read_text())
    assert sc.peers >= 30
    if name == "faults":
        assert {f.kind for f in sc.faults} == {"crash", "partition", "slow", "loss"}
        assert sc.faults_until_ms == 40000


def test_a_benchmark_seed_replays_with_its_printed_command(tmp_path: Path) -> None:
    sc = Scenario(
        seed=5,
        peers=16,
        validators=4,
        workload=Workload(tasks=2, rate_per_s=1.0, tau=16, posters=1),
        byzantine=Byzantine(stake=0.2),
        phases=Phases(liveness_bound_ms=120_000),
    )
    report, _ = bench._det(sc, bench.SWEEP_BLOCK_INTERVAL_MS)
    command = report["reproduce"].split()
    assert f"--block-interval {bench.SWEEP_BLOCK_INTERVAL_MS}" in report["reproduce"]
    assert command[:2] == ["posi-peer", "simnet"]
    assert run_cli([*command[1:], "--out", str(tmp_path), "--no-plots", "--quiet"]) == 0
    replayed = json.loads((tmp_path / "report.json").read_text())
    for part in ("tasks", "messages", "checks", "latency_ms", "chain", "penalties"):
        assert replayed[part] == report[part], part


def test_a_sweep_seed_that_raises_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise IndexError("pop from an empty deque")

    monkeypatch.setattr(bench, "_det", broken)
    result = bench._sweep_one(Scenario(seed=9, peers=16, validators=4))
    assert result["result"] == "error"
    assert "IndexError: pop from an empty deque" in result["error"]
    assert result["reproduce"].startswith("posi-peer simnet --deterministic --seed 9 ")
