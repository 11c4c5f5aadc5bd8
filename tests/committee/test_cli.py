"""The committee's posi-peer subcommands parse and run (small sizes)."""

from __future__ import annotations

import argparse
import json

import pytest

from committee import cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posi-peer")
    cli.register(p.add_subparsers(dest="command"))
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


def test_params_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["committee-params", "--tau", "32", "--operators", "40", "--taus", "16"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["tau"] for r in rows] == [32, 16]


def test_sim_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["committee-sim", "--seed", "11", "--seeds", "2", "--quiet"]) == 0
    assert "2/2 seeds passed" in capsys.readouterr().out


def test_bench_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["committee-bench", "--sizes", "4"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])[0]
    assert result["members"] == 4
    assert result["task_messages"] == 2 * 5 * 3  # two agreements, 5 (n - 1) messages each
    assert result["block_messages"] == 5 * 3
    assert "VRF backend" in out
