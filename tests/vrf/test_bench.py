"""The benchmark runs end to end and its last line is the JSON it promises (no timing asserts:
figures are for people, targets are printed as PASS/MISS, not tested)."""

from __future__ import annotations

import json

import pytest

from vrf import bench


def test_bench_prints_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(rounds=1, ops=3) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["rounds"] == 1
    assert set(summary["available"]) | set(summary["missing"]) == {"c", "python"}
    expected = {"ed25519.sign", "ed25519.verify"}
    for name in summary["available"]:
        for suite in ("tai", "ell2"):
            expected |= {f"{name}.{suite}.prove", f"{name}.{suite}.verify"}
    assert set(summary["median_us"]) == expected
    assert all(value > 0 for value in summary["median_us"].values())
    for key, verdict in summary["verdicts"].items():
        assert key.startswith("c.")
        assert verdict in ("PASS", "MISS")
        assert (verdict == "PASS") == (
            summary["ratios"][key] <= summary["targets"][key.split("/")[0].rsplit(".", 1)[1]]
        )


@pytest.mark.parametrize(("rounds", "ops"), [(0, 10), (3, 0), (-1, -1)])
def test_bench_rejects_bad_arguments(
    capsys: pytest.CaptureFixture[str], rounds: int, ops: int
) -> None:
    assert bench.main(rounds=rounds, ops=ops) == 2
    assert "must be >= 1" in capsys.readouterr().out
