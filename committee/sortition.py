"""Stake-weighted sortition (Algorand style) with exact, deterministic arithmetic.

An operator with `stake` units out of `total` eligible units holds `stake` sub-users; each is drawn
with probability p = tau / total, so the operator's weight is j ~ Binomial(stake, p). The VRF output
beta (64 bytes) read as x = int(beta) / 2^512 picks j: the smallest j with x < CDF(j) where
CDF(j) = sum_{k<=j} C(stake, k) p^k (1-p)^(stake-k).

Arithmetic. Floats break at large stakes ((1-p)^stake underflows, sums lose bits), and exact
rationals cost O(stake) digits. So the walk runs in fixed point with `bits` fractional bits and
carries, for every term and every partial sum, a lower bound (rounded down) and an upper bound
(rounded up). All quantities are non-negative and every step is monotone, so the true CDF(j) lies
in [lo, hi] at every step. x is a dyadic rational with 512 bits, so it is represented exactly.
- x < lo(j): certainly x < CDF(j), the answer is j.
- x >= hi(j): certainly x >= CDF(j), walk on.
- otherwise the bounds are too wide to decide: redo the walk at twice the precision. With 128 guard
  bits this happens with probability about 2^-100 per call. Past `PRECISION_BITS_MAX` the walk falls
  back to exact rationals when the stake is small; beyond that (x equal to CDF(j) to 2^-32768, which
  a uniform x hits with probability below 2^-30000) it decides `x >= CDF(j)`. Every node runs this
  same function, so the weight is deterministic even in that case.
- when p > 1/2 (tiny networks where tau is most of the stake) the walk runs on the complement
  Binomial(stake, 1-p), so P(X=0) never underflows the precision ceiling.

Weight 0 is the common case (most operators are not drawn for a given task), so the bounds of
P(X=0) = (1-p)^stake are cached per (stake, tau, total): the weight-0 test is one big-integer
comparison.

Priority (for ranking executor candidates): the lowest digest H(PRIORITY, beta, i) over the
operator's sub-users i = 1..j; lower is better.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Final

from committee.errors import LocalMisuse
from ledger.domains import Domain, digest_parts

BETA_BITS: Final = 512  # the VRF output is SHA-512 sized
# Fixed-point precision of the first walk: 512 bits to hold x exactly plus 128 guard bits, so the
# accumulated rounding (a few ulps per step) almost never makes a call ambiguous.
PRECISION_BITS: Final = BETA_BITS + 128
# tau is a committee size; thousands would already make the BFT round's messages too heavy. It also
# bounds the precision a walk can need: P(X=0) >= 2^-(2.2 tau) when p <= 1/2, and the complement
# walk used when p > 1/2 has the same bound (its total is below 2 tau).
TAU_MAX: Final = 10_000
# Each ambiguous walk doubles the precision up to this: 2^15 bits covers P(X=0) down to
# 2^-(2.2 TAU_MAX) with room to spare, and is still cheap (microseconds per multiplication).
PRECISION_BITS_MAX: Final = 1 << 15
# Exact rational fallback is affordable while the denominators (total^stake) stay small.
EXACT_STAKE_MAX: Final = 4096
# Weight-0 bounds cached per (stake, tau, total, bits): a node evaluates sortition for every task,
# and stakes and totals change only per block.
_P0_CACHE_MAX: Final = 65536
# Sub-users are numbered in 4 bytes in the priority hash.
SUBUSERS_MAX: Final = (1 << 32) - 1


def beta_fraction(beta: bytes) -> Fraction:
    """x = int(beta) / 2^512, the VRF output as a number in [0, 1)."""
    if len(beta) != BETA_BITS // 8:
        raise LocalMisuse(f"beta is {BETA_BITS // 8} bytes, got {len(beta)}")
    return Fraction(int.from_bytes(beta, "big"), 1 << BETA_BITS)


def _check(stake: int, tau: int, total: int) -> None:
    if not (isinstance(stake, int) and isinstance(tau, int) and isinstance(total, int)):
        raise LocalMisuse("stake, tau and total are integers")
    if total <= 0 or not 1 <= tau <= TAU_MAX or not 0 <= stake <= total:
        raise LocalMisuse(
            f"sortition needs total > 0, 1 <= tau <= {TAU_MAX} and 0 <= stake <= total "
            f"(got stake={stake}, tau={tau}, total={total})"
        )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@functools.lru_cache(maxsize=_P0_CACHE_MAX)
def p0_bounds(stake: int, tau: int, total: int, bits: int = PRECISION_BITS) -> tuple[int, int]:
    """(lo, hi) with lo <= (1 - tau/total)^stake * 2^bits <= hi, by square-and-multiply with
    directed rounding. Requires 0 < tau < total."""
    one = 1 << bits
    q = total - tau
    base_lo = (q << bits) // total
    base_hi = _ceil_div(q << bits, total)
    r_lo = r_hi = one
    for bit in bin(stake)[2:]:
        r_lo = (r_lo * r_lo) >> bits
        r_hi = _ceil_div(r_hi * r_hi, one)
        if bit == "1":
            r_lo = (r_lo * base_lo) >> bits
            r_hi = _ceil_div(r_hi * base_hi, one)
    return r_lo, r_hi


def _walk(
    x_int: int, stake: int, tau: int, total: int, bits: int, *, strict: bool, tie: bool = False
) -> int | None:
    """The smallest j with x < CDF(j) (strict) or x <= CDF(j) (not strict), where x =
    x_int / 2^512 and CDF is that of Binomial(stake, tau/total); None if the bounds at this
    precision can not decide. With `tie`, an undecidable step counts as "not yet" (only used past
    the precision ceiling, where it is deterministic and practically unreachable)."""
    x = x_int << (bits - BETA_BITS)
    term_lo, term_hi = p0_bounds(stake, tau, total, bits)
    cdf_lo, cdf_hi = term_lo, term_hi
    q = total - tau
    j = 0
    while True:
        if x < cdf_lo or (not strict and x == cdf_lo):
            return j
        if (x < cdf_hi or (not strict and x == cdf_hi)) and not tie:
            return None
        if j == stake:  # CDF(stake) = 1 >= x: only reachable through rounding, decided above
            return stake
        # term(j+1) = term(j) * (stake - j) / (j + 1) * tau / (total - tau)
        num = (stake - j) * tau
        den = (j + 1) * q
        term_lo = term_lo * num // den
        term_hi = _ceil_div(term_hi * num, den)
        cdf_lo += term_lo
        cdf_hi += term_hi
        j += 1


def binomial_cdf_exact(j: int, stake: int, tau: int, total: int) -> Fraction:
    """CDF(j) of Binomial(stake, tau/total) as an exact fraction (reference; O(stake) digits)."""
    _check(stake, tau, total)
    p = Fraction(min(tau, total), total)
    return sum(
        (Fraction(math.comb(stake, k)) * p**k * (1 - p) ** (stake - k) for k in range(j + 1)),
        Fraction(0),
    )


def weight_exact(x: Fraction, stake: int, tau: int, total: int) -> int:
    """The weight by exact rational arithmetic (reference for tests; O(stake) digits per term)."""
    _check(stake, tau, total)
    if tau >= total:
        return stake
    p = Fraction(tau, total)
    term = (1 - p) ** stake
    cdf = term
    j = 0
    while x >= cdf and j < stake:
        term = term * (stake - j) / (j + 1) * p / (1 - p)
        cdf += term
        j += 1
    return j


def select_weight(
    beta: bytes, stake: int, tau: int, total: int, *, bits: int = PRECISION_BITS
) -> int:
    """The number of sub-users drawn for an operator with `stake` of `total` eligible stake, for an
    expected committee size `tau`, from the VRF output `beta` (64 bytes).

    If tau >= total every unit of stake is drawn (weight = stake). Raises LocalMisuse if beta is not
    64 bytes or the numbers are out of range (stake > total, tau not in [1, TAU_MAX], total not
    positive)."""
    _check(stake, tau, total)
    if len(beta) != BETA_BITS // 8:
        raise LocalMisuse(f"beta is {BETA_BITS // 8} bytes, got {len(beta)}")
    if stake == 0:
        return 0
    if tau >= total:
        return stake
    x_int = int.from_bytes(beta, "big")
    if 2 * tau <= total:

        def walk(bits: int, tie: bool = False) -> int | None:
            return _walk(x_int, stake, tau, total, bits, strict=True, tie=tie)

    else:
        # p > 1/2: walk the complement Y = stake - X ~ Binomial(stake, 1 - p), whose P(Y=0) does
        # not underflow: X's weight is j = stake - k for the smallest k with 1 - x <= CDF_Y(k).
        y_int = (1 << BETA_BITS) - x_int

        def walk(bits: int, tie: bool = False) -> int | None:
            k = _walk(y_int, stake, total - tau, total, bits, strict=False, tie=tie)
            return None if k is None else stake - k

    while bits <= PRECISION_BITS_MAX:
        j = walk(bits)
        if j is not None:
            return j
        bits *= 2
    # x equals CDF(j) to 2^-32768: exact rationals when the stake is small, else the
    # deterministic tie rule.
    if stake <= EXACT_STAKE_MAX:
        return weight_exact(Fraction(x_int, 1 << BETA_BITS), stake, tau, total)
    j = walk(PRECISION_BITS_MAX, tie=True)
    assert j is not None
    return j


def is_weight_zero(beta: bytes, stake: int, tau: int, total: int) -> bool:
    """True if the operator is not drawn at all: one comparison against cached bounds of
    P(X=0) in the common case. Same contract as `select_weight`."""
    _check(stake, tau, total)
    if stake == 0:
        return True
    if tau >= total:
        return False
    x = int.from_bytes(beta, "big") << (PRECISION_BITS - BETA_BITS)
    lo, hi = p0_bounds(stake, tau, total, PRECISION_BITS)
    if x < lo:
        return True
    if x >= hi:
        return False
    return select_weight(beta, stake, tau, total) == 0


def priority(beta: bytes, weight: int) -> bytes:
    """The operator's priority: the lowest H(PRIORITY, beta, i) over sub-users i = 1..weight
    (lower ranks first). Raises LocalMisuse for weight 0 (an operator that was not drawn has no
    priority) or a weight beyond SUBUSERS_MAX."""
    if not 1 <= weight <= SUBUSERS_MAX:
        raise LocalMisuse(f"priority needs 1 <= weight <= {SUBUSERS_MAX}, got {weight}")
    return min(
        digest_parts(Domain.PRIORITY, beta, i.to_bytes(4, "big")) for i in range(1, weight + 1)
    )
