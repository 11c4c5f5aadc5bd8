"""Sortition: the interval walk equals the exact rational reference, on random and on adversarial
(boundary) VRF outputs, at normal and at deliberately starved precision."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from committee.errors import LocalMisuse
from committee.sortition import (
    BETA_BITS,
    beta_fraction,
    binomial_cdf_exact,
    is_weight_zero,
    p0_bounds,
    priority,
    select_weight,
    weight_exact,
)


def beta_of(x: Fraction, *, above: bool) -> bytes:
    """The 64-byte beta just at or just below the real number x in [0, 1]."""
    scaled = x * (1 << BETA_BITS)
    n = math.ceil(scaled) if above else math.ceil(scaled) - 1
    n = min(max(n, 0), (1 << BETA_BITS) - 1)
    return n.to_bytes(BETA_BITS // 8, "big")


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1, 400),
    stake_share=st.floats(0, 1),
    tau=st.integers(1, 120),
    beta=st.binary(min_size=64, max_size=64),
)
def test_walk_equals_exact_reference(total: int, stake_share: float, tau: int, beta: bytes) -> None:
    stake = round(stake_share * total)
    exact = weight_exact(beta_fraction(beta), stake, tau, total)
    assert select_weight(beta, stake, tau, total) == exact
    assert is_weight_zero(beta, stake, tau, total) == (exact == 0)


@pytest.mark.parametrize(("stake", "tau", "total"), [(7, 3, 20), (50, 10, 60), (120, 40, 300)])
def test_boundaries_are_exact(stake: int, tau: int, total: int) -> None:
    """At each CDF step, the beta right at CDF(j) gives j+1 and the one just below gives j."""
    for j in range(min(stake, 12)):
        cdf = binomial_cdf_exact(j, stake, tau, total)
        if cdf >= 1:
            break
        at = beta_of(cdf, above=True)
        below = beta_of(cdf, above=False)
        assert select_weight(at, stake, tau, total) == weight_exact(
            beta_fraction(at), stake, tau, total
        )
        assert select_weight(below, stake, tau, total) == j
        # Starved precision (8 guard bits) forces ambiguous walks; the retry at higher precision
        # still lands on the exact answer.
        assert select_weight(at, stake, tau, total, bits=BETA_BITS + 8) == weight_exact(
            beta_fraction(at), stake, tau, total
        )
        assert select_weight(below, stake, tau, total, bits=BETA_BITS + 8) == j


def test_bounds_enclose_the_exact_probability() -> None:
    for stake, tau, total in [(1, 1, 2), (1000, 64, 10_000), (12345, 200, 10**6)]:
        lo, hi = p0_bounds(stake, tau, total)
        exact = Fraction(total - tau, total) ** stake
        bits = 512 + 128
        assert Fraction(lo, 1 << bits) <= exact <= Fraction(hi, 1 << bits)
        assert hi - lo < 1 << 32  # a handful of ulps, far below 2^-512 of slack


def test_large_stakes_have_the_binomial_mean() -> None:
    """A whale's weight is Binomial(stake, tau/total): check its mean over many outputs."""
    rng = random.Random(7)
    stake, tau, total = 10**12, 64, 4 * 10**12  # expected weight 16
    draws = [select_weight(rng.randbytes(64), stake, tau, total) for _ in range(2000)]
    mean = sum(draws) / len(draws)
    assert 15.0 < mean < 17.0  # 2000 samples: standard error of the mean is 0.09


def test_p_above_one_half_walks_the_complement() -> None:
    assert select_weight(b"\x00" * 64, 500, 500, 500) == 500  # tau = total: all stake drawn
    rng = random.Random(3)
    for _ in range(50):
        beta = rng.randbytes(64)
        assert select_weight(beta, 300, 250, 300) == weight_exact(
            beta_fraction(beta), 300, 250, 300
        )
    # P(X=0) = (1/10001)^10001 ~ 2^-133000, beyond any fixed-point ceiling; the complement walk
    # needs a few steps. The median weight is stake - 1 (the complement is about Poisson(1)).
    assert select_weight(b"\x80" + bytes(63), 10_001, 10_000, 10_001) == 10_000


def test_zero_stake_and_argument_errors() -> None:
    assert select_weight(b"\xff" * 64, 0, 10, 100) == 0
    assert is_weight_zero(b"\xff" * 64, 0, 10, 100)
    with pytest.raises(LocalMisuse):
        select_weight(b"\x00" * 63, 1, 1, 1)
    with pytest.raises(LocalMisuse):
        select_weight(b"\x00" * 64, 5, 1, 4)  # stake above total
    with pytest.raises(LocalMisuse):
        select_weight(b"\x00" * 64, 1, 0, 4)


def test_priority_is_the_minimum_over_sub_users() -> None:
    beta = bytes(range(64))
    assert priority(beta, 3) <= priority(beta, 2) <= priority(beta, 1)
    assert priority(beta, 1) != priority(bytes(64), 1)
    with pytest.raises(LocalMisuse):
        priority(beta, 0)
