"""Parameter analysis: the interval computation encloses the exact rational answer."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from committee.params import DEFAULT_TAU, analyse, main, sci, stake_distribution


def exact(tau: int, adversary: float, total: int, w: int) -> dict[str, Fraction]:
    """The analysis's five probabilities by brute force over both binomials, for rosters kept
    from weight w: P(T = 0), P(T < w), P(3A >= T >= w), P(3A > 2T >= 2w), P(A >= w)."""
    n_a = round(adversary * total)
    n_h = total - n_a
    p = Fraction(tau, total)

    def pmf(n: int) -> list[Fraction]:
        return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]

    pa, ph = pmf(n_a), pmf(n_h)
    pairs = [(a, h, pa[a] * ph[h]) for a in range(n_a + 1) for h in range(n_h + 1)]
    return {
        "empty": (1 - p) ** total,
        "light": sum(q for a, h, q in pairs if a + h < w),
        "stall": sum(q for a, h, q in pairs if a + h >= w and 3 * a >= a + h),
        "alone": sum(q for a, h, q in pairs if a + h >= w and 3 * a > 2 * (a + h)),
        "censored": sum(pa[w:]),
    }


@pytest.mark.parametrize(
    ("tau", "adversary", "stakes"),
    [
        (5, 0.2, [10] * 6),
        (12, 0.3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        (20, 0.1, [30, 30, 10, 5]),
    ],
)
@pytest.mark.parametrize("min_weight", [1, 3, 10])
def test_intervals_enclose_the_exact_values(
    tau: int, adversary: float, stakes: list[int], min_weight: int
) -> None:
    result = analyse(tau, adversary, stakes, min_weight)
    for name, value in exact(tau, adversary, sum(stakes), min_weight).items():
        interval = getattr(result, name)
        assert interval.lo <= value <= interval.hi, name
        assert interval.hi - interval.lo <= max(value, Fraction(1)) * Fraction(1, 10**30)


def test_bigger_committees_fail_less() -> None:
    stakes = stake_distribution("uniform", 200, 1000, 1.0)
    rows = [analyse(t, 0.2, stakes) for t in (16, 64, DEFAULT_TAU, 200)]
    for smaller, bigger in itertools.pairwise(rows):
        assert bigger.stall.hi < smaller.stall.lo
        assert bigger.alone.hi < smaller.alone.lo
        assert bigger.expected_members > smaller.expected_members


def test_a_minimum_roster_weight_trades_redraws_for_a_censored_roster_that_cannot_decide() -> None:
    stakes = stake_distribution("uniform", 200, 1000, 1.0)
    anything, half = analyse(16, 0.2, stakes, 1), analyse(16, 0.2, stakes, 8)
    assert anything.light == anything.empty  # weight 1: only an empty roster is drawn again
    assert half.light.lo > 100 * anything.light.hi
    assert half.censored.hi * 50 < anything.censored.lo
    assert half.alone.hi < anything.alone.lo
    with pytest.raises(ValueError, match="minimum roster weight"):
        analyse(16, 0.2, stakes, 0)


def test_the_default_tau_meets_its_targets() -> None:
    """README: at a 20% adversary, deciding alone below 1e-12 and stalling near 1e-3."""
    r = analyse(DEFAULT_TAU, 0.2, stake_distribution("uniform", 1000, 10_000, 1.0))
    assert r.alone.hi < Fraction(1, 10**12)
    assert r.stall.hi < Fraction(2, 1000)


def test_distributions_and_formatting() -> None:
    for kind in ("equal", "uniform", "zipf"):
        stakes = stake_distribution(kind, 100, 500, 1.0)
        assert len(stakes) == 100
        assert min(stakes) >= 1
        assert abs(sum(stakes) - 50_000) <= 100
    with pytest.raises(ValueError, match="unknown"):
        stake_distribution("pareto", 10, 10, 1.0)
    assert sci(Fraction(1, 10**400)) == "1.00e-400"
    assert sci(Fraction(3, 4)) == "7.50e-01"
    assert sci(Fraction(99999, 10**7)) == "1.00e-02"  # rounds up to the next power of ten


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--tau", "64", "--adversary", "0.2", "--operators", "50", "--taus", "16", "64"]) == 0
    )
    out = capsys.readouterr().out
    assert "P(adversary >= 1/3 of roster weight)" in out
    assert "minimum roster weight 32" in out  # half of 64 by default
    with pytest.raises(SystemExit, match=r"--min-roster-share 1\.5"):
        main(["--min-roster-share", "1.5"])
    assert out.strip().splitlines()[-1].startswith("[{")
