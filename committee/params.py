"""`python -m committee.params --tau 64 --adversary 0.2`: failure probabilities of a task committee.

Model. N operators hold stakes s_i (a distribution you choose); every unit of stake is a sub-user
drawn with probability p = tau / S (S = total stake), so operator i's weight is Binomial(s_i, p),
independently. A sum of independent binomials with the same p is binomial, so whatever way the
adversary spreads its stake share `a` over operators, its roster weight is A ~ Binomial(aS, p) and
the honest weight is H ~ Binomial((1-a)S, p), independent; the roster weight is T = A + H.

- roster empty: P(T = 0) = (1-p)^S;
- roster light: P(T < w), w = the ledger's minimum roster weight (`min_roster_share_bps` of
  tau, at least 1): the ledger drops such a roster and draws the task again;
- adversary holds a third or more of a kept roster's weight: P(3A >= T >= w). It can then stall
  the task (no quorum without it) and, with control of the network, break safety;
- adversary holds more than two thirds: P(3A > 2T >= 2w), a quorum on its own (it decides
  alone);
- censored: if every honest credential is kept out of the window (honest members flooded, or
  validators that leave their credentials out), the roster is the adversary's alone and is kept
  when P(A >= w): what the minimum weight bounds (without it, P(A >= 1));
- expected roster size (members, not weight): sum_i 1 - (1-p)^{s_i}; this depends on the stake
  distribution and sets the message counts: a decision costs 5 (m - 1) messages per agreement
  (a task has two: executor and result), a view change about (m - 1)^2.

Every probability is computed exactly in the sense that matters: in integer fixed point with
directed rounding (the same interval technique as `sortition`), so the printed value comes with a
rigorous enclosure; the table prints the enclosure's width when it is not negligible.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Final

from committee.sortition import TAU_MAX, p0_bounds
from ledger.genesis import BPS, ChainParams, min_roster_weight

# The default expected committee size (see README: choosing tau).
DEFAULT_TAU: Final = 100
DEFAULT_ADVERSARY: Final = 0.2
DEFAULT_OPERATORS: Final = 1000
DEFAULT_MEAN_STAKE: Final = 10_000  # stake units per operator on average
DEFAULT_TAUS: Final = (16, 32, 64, 100, 128, 200, 256)
DEFAULT_MIN_ROSTER_SHARE: Final = ChainParams().min_roster_share_bps / BPS
# Terms of a pmf are walked up to mean + this many standard deviations (+ a margin for small
# means); the mass beyond is bounded and added to the enclosure.
TAIL_SIGMAS: Final = 40


@dataclasses.dataclass(frozen=True)
class Interval:
    """A probability known to lie in [lo, hi] (as fractions of 2^bits)."""

    lo: Fraction
    hi: Fraction

    @property
    def mid(self) -> Fraction:
        return (self.lo + self.hi) / 2


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def pmf_bounds(n: int, tau: int, total: int, upto: int, bits: int) -> tuple[list[int], list[int]]:
    """Lower and upper bounds (scaled by 2^bits) of P(X = k), k = 0..upto, X ~ Bin(n, tau/total)."""
    upto = min(upto, n)
    lo, hi = p0_bounds(n, tau, total, bits) if n > 0 else (1 << bits, 1 << bits)
    los, his = [lo], [hi]
    q = total - tau
    for k in range(upto):
        num = (n - k) * tau
        den = (k + 1) * q
        lo = lo * num // den
        hi = _ceil_div(hi * num, den)
        los.append(lo)
        his.append(hi)
    return los, his


def _cutoff(mean: float) -> int:
    return int(mean + TAIL_SIGMAS * math.sqrt(mean + 1) + 200)


def stake_distribution(kind: str, operators: int, mean_stake: int, zipf_s: float) -> list[int]:
    """Integer stakes (each at least 1) for `operators` operators averaging `mean_stake`."""
    if kind == "equal":
        return [mean_stake] * operators
    if kind == "uniform":  # quantiles of Uniform(0, 2 * mean)
        return [max(1, round(2 * mean_stake * (i + 0.5) / operators)) for i in range(operators)]
    if kind == "zipf":
        raw = [1 / (i + 1) ** zipf_s for i in range(operators)]
        scale = mean_stake * operators / sum(raw)
        return [max(1, round(r * scale)) for r in raw]
    raise ValueError(f"unknown stake distribution {kind!r}: use equal, uniform or zipf")


@dataclasses.dataclass(frozen=True)
class Analysis:
    tau: int
    adversary: float
    total_stake: int
    operators: int
    min_weight: int
    empty: Interval
    light: Interval
    stall: Interval
    alone: Interval
    censored: Interval
    expected_members: float
    messages_task: float
    messages_block: float
    messages_view_change: float


def analyse(tau: int, adversary: float, stakes: Sequence[int], min_weight: int = 1) -> Analysis:
    """The committee's failure probabilities for expected size `tau` when the adversary holds the
    share `adversary` of the total stake `sum(stakes)` and the ledger keeps rosters of weight
    `min_weight` or more (1: any non-empty roster). Raises ValueError naming the bad argument."""
    total = sum(stakes)
    if min_weight < 1:
        raise ValueError("the minimum roster weight must be at least 1")
    if not 1 <= tau <= min(TAU_MAX, total - 1):
        raise ValueError(f"tau must be in [1, min({TAU_MAX}, total stake - 1)]")
    if not 0 <= adversary < 1:
        raise ValueError("the adversary's stake share must be in [0, 1)")
    n_a = round(adversary * total)
    n_h = total - n_a
    # P(X=0) >= 2^-(2.2 tau) (see sortition): keep 256 bits beyond that.
    bits = 256 + 3 * tau
    one = 1 << bits
    p = tau / total
    k_a = min(n_a, _cutoff(n_a * p))
    k_h = min(n_h, max(2 * k_a, _cutoff(n_h * p)))
    a_lo, a_hi = pmf_bounds(n_a, tau, total, k_a, bits)
    h_lo, h_hi = pmf_bounds(n_h, tau, total, k_h, bits)
    # Mass beyond each cutoff, bounded above by 1 - (lower bound of the CDF).
    a_tail = max(0, one - sum(a_lo))
    h_tail = max(0, one - sum(h_lo))
    cdf_h_lo, cdf_h_hi = _prefix(h_lo), _prefix(h_hi)
    cdf_a_lo, cdf_a_hi = _prefix(a_lo), _prefix(a_hi)

    def lower(c: list[int], k: int, n: int) -> int:
        """A lower bound of P(X <= k): past the cutoff, the CDF is at least its last value."""
        if k < 0:
            return 0
        return one if k >= n else c[min(k, len(c) - 1)]

    def upper(c: list[int], k: int, n: int) -> int:
        if k < 0:
            return 0
        return one if k >= n or k >= len(c) else min(one, c[k])

    w = min_weight
    # Stall: the sum over a >= 1 of P(A=a) P(w - a <= H <= 2a); beyond A's cutoff, at most its
    # tail.
    stall_lo = sum(
        a_lo[a] * max(0, lower(cdf_h_lo, 2 * a, n_h) - upper(cdf_h_hi, w - a - 1, n_h))
        for a in range(1, len(a_lo))
    )
    stall_hi = sum(
        a_hi[a] * max(0, min(one, upper(cdf_h_hi, 2 * a, n_h) - lower(cdf_h_lo, w - a - 1, n_h)))
        for a in range(1, len(a_hi))
    )
    stall_hi += a_tail * one
    # Alone: the sum over h of P(H=h) P(A > max(2h, w - h - 1)); beyond H's cutoff, at most its
    # tail.
    alone_lo = sum(
        h_lo[h] * (one - upper(cdf_a_hi, max(2 * h, w - h - 1), n_a)) for h in range(len(h_lo))
    )
    alone_hi = sum(
        h_hi[h] * (one - lower(cdf_a_lo, max(2 * h, w - h - 1), n_a)) for h in range(len(h_hi))
    )
    alone_hi += h_tail * one
    scale = one * one
    empty_lo, empty_hi = p0_bounds(total, tau, total, bits)
    t_lo, t_hi = pmf_bounds(total, tau, total, w - 1, bits)
    censored_lo = one - upper(cdf_a_hi, w - 1, n_a)
    censored_hi = one - lower(cdf_a_lo, w - 1, n_a)
    members = sum(1 - (1 - p) ** s for s in stakes)
    return Analysis(
        tau=tau,
        adversary=adversary,
        total_stake=total,
        operators=len(stakes),
        min_weight=w,
        empty=Interval(Fraction(empty_lo, one), Fraction(empty_hi, one)),
        light=Interval(Fraction(sum(t_lo), one), Fraction(min(sum(t_hi), one), one)),
        stall=Interval(Fraction(stall_lo, scale), Fraction(min(stall_hi, scale), scale)),
        alone=Interval(Fraction(alone_lo, scale), Fraction(min(alone_hi, scale), scale)),
        censored=Interval(Fraction(censored_lo, one), Fraction(censored_hi, one)),
        expected_members=members,
        messages_task=10 * max(0.0, members - 1),
        messages_block=5 * max(0.0, members - 1),
        messages_view_change=max(0.0, members - 1) ** 2,
    )


def _prefix(values: list[int]) -> list[int]:
    out, acc = [], 0
    for v in values:
        acc += v
        out.append(acc)
    return out


def sci(x: Fraction) -> str:
    """A probability in scientific notation, for any magnitude (floats underflow below 1e-308)."""
    if x <= 0:
        return "0"
    exponent = len(str(x.numerator)) - len(str(x.denominator))
    mantissa = x / Fraction(10) ** exponent
    while mantissa < 1:
        mantissa *= 10
        exponent -= 1
    while mantissa >= 10:
        mantissa /= 10
        exponent += 1
    if round(float(mantissa), 2) >= 10:  # 9.995 and up print as 1.00 of the next power
        mantissa /= 10
        exponent += 1
    return f"{float(mantissa):.2f}e{exponent:+03d}"


def _show(i: Interval) -> str:
    width = i.hi - i.lo
    if i.hi > 0 and width > i.hi / 1000:
        return f"{sci(i.mid)} (+/- {sci(width / 2)})"
    return sci(i.mid)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the params tool (shared with `posi-peer committee-params`)."""
    parser.add_argument("--tau", type=int, default=DEFAULT_TAU, help="expected committee size")
    parser.add_argument(
        "--adversary",
        type=float,
        default=DEFAULT_ADVERSARY,
        help="adversary's share of the total stake, in [0, 1)",
    )
    parser.add_argument(
        "--min-roster-share",
        type=float,
        default=DEFAULT_MIN_ROSTER_SHARE,
        help="the ledger's minimum roster weight as a share of tau, in [0, 1] (genesis "
        "min_roster_share_bps / 10000; 0: any non-empty roster is kept)",
    )
    parser.add_argument("--operators", type=int, default=DEFAULT_OPERATORS)
    parser.add_argument("--stake-dist", choices=("uniform", "zipf", "equal"), default="uniform")
    parser.add_argument(
        "--mean-stake",
        type=int,
        default=DEFAULT_MEAN_STAKE,
        help="average stake per operator, in stake units",
    )
    parser.add_argument("--zipf-s", type=float, default=1.0, help="zipf exponent")
    parser.add_argument(
        "--taus",
        type=int,
        nargs="*",
        default=list(DEFAULT_TAUS),
        help="taus for the comparison table",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m committee.params [--tau T] [--adversary A] ...`."""
    parser = argparse.ArgumentParser(
        prog="python -m committee.params",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Print the analysis for args.tau and a table over args.taus; the last line is JSON."""
    stakes = stake_distribution(args.stake_dist, args.operators, args.mean_stake, args.zipf_s)
    if not 0 <= args.min_roster_share <= 1:
        raise SystemExit(f"--min-roster-share {args.min_roster_share} must be in [0, 1]")
    share_bps = round(args.min_roster_share * BPS)

    def analysis(tau: int) -> Analysis:
        return analyse(tau, args.adversary, stakes, min_roster_weight(tau, share_bps))

    chosen = analysis(args.tau)
    print(
        f"{args.operators} operators, {args.stake_dist} stake (mean {args.mean_stake}, total "
        f"{chosen.total_stake}), adversary holds {args.adversary:.0%} of the stake, rosters "
        f"kept from {share_bps / BPS:.0%} of tau\n"
        f"tau = {args.tau}, minimum roster weight {chosen.min_weight}:\n"
        f"  P(roster empty)                          {_show(chosen.empty)}\n"
        f"  P(roster light: drawn again)             {_show(chosen.light)}\n"
        f"  P(adversary >= 1/3 of roster weight)     {_show(chosen.stall)}   (can stall)\n"
        f"  P(adversary >  2/3 of roster weight)     {_show(chosen.alone)}   (decides alone)\n"
        f"  P(adversary alone reaches the minimum)   {_show(chosen.censored)}   (decides alone "
        f"if every honest credential is kept out)\n"
        f"  expected roster size                     {chosen.expected_members:.1f} members "
        f"(weight {args.tau})\n"
        f"  messages per task decision               {chosen.messages_task:.0f} "
        f"(2 agreements x 5 (m-1)); per block {chosen.messages_block:.0f}\n"
        f"  messages per view change                 ~{chosen.messages_view_change:.0f} "
        f"((m-1)^2 NEW_VIEWs)\n"
    )
    rows = [analysis(t) for t in args.taus if t < chosen.total_stake]
    print(
        f"{'tau':>5} {'members':>8} {'P(empty)':>10} {'P(light)':>10} {'P(>=1/3)':>10} "
        f"{'P(>2/3)':>10} {'P(censored)':>11} {'msgs/task':>10} {'msgs/view-change':>17}"
    )
    for r in rows:
        print(
            f"{r.tau:>5} {r.expected_members:>8.1f} {sci(r.empty.mid):>10} "
            f"{sci(r.light.mid):>10} {sci(r.stall.mid):>10} {sci(r.alone.mid):>10} "
            f"{sci(r.censored.mid):>11} {r.messages_task:>10.0f} "
            f"{r.messages_view_change:>17.0f}"
        )
    print(
        json.dumps(
            [
                {
                    "tau": r.tau,
                    "adversary": r.adversary,
                    "members": round(r.expected_members, 2),
                    "min_weight": r.min_weight,
                    "p_empty": sci(r.empty.mid),
                    "p_light": sci(r.light.mid),
                    "p_stall": sci(r.stall.mid),
                    "p_alone": sci(r.alone.mid),
                    "p_censored": sci(r.censored.mid),
                    "messages_task": round(r.messages_task),
                    "messages_view_change": round(r.messages_view_change),
                }
                for r in [chosen, *rows]
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
