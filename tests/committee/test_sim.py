"""Seeded simulation of the round under faults and byzantine members: safety and liveness checkers
over many seeds (a few hundred by default, 10,000 in the slow tier). A failure names the seed and
the command that replays it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from committee.events import Action, Decide, DecisionKind, Event, LocalCredential
from committee.round import Round, RoundKind
from committee.sim import POLICIES, Scenario, Simulation, describe, reproduce_command, run_seed
from ledger.certificates import QuorumCertificate, VoteKind

DEFAULT_SEEDS = 300
SLOW_SEEDS = 10_000


def check(seeds: range, **overrides: object) -> None:
    failures = []
    for seed in seeds:
        outcome = run_seed(seed, **overrides)  # type: ignore[arg-type]
        if not outcome.ok:
            failures.append(describe(outcome))
    assert not failures, (
        f"{len(failures)} of {len(seeds)} seeds failed; first:\n{failures[0]}\n"
        f"(each failure names its seed; replay with {reproduce_command(0).rsplit(' ', 1)[0]} N)"
    )


def test_default_seeds() -> None:
    check(range(DEFAULT_SEEDS))


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_each_byzantine_policy(policy: str) -> None:
    """Every policy, alone, against both kinds of round (seeds chosen apart from the default)."""
    for kind in RoundKind:
        check(range(10_000, 10_012), kind=kind, members=7, byzantine=[policy, policy])


def test_checkers_catch_a_broken_core() -> None:
    """The checkers are not vacuous: a core that decides its own value at once breaks safety."""
    scenario = Scenario.from_seed(5, kind=RoundKind.BLOCK, members=4, byzantine=[])
    sim = Simulation(scenario)
    for node in sim.nodes:
        node.round.handle = _decide_own_value(node.round)  # type: ignore[method-assign]
    outcome = sim.run()
    assert any(v.startswith("safety") for v in outcome.violations)
    assert "python -m committee.sim --seed 5" in describe(outcome)


def _decide_own_value(r: Round) -> Callable[[Event], list[Action]]:
    original = r.handle

    def handle(event: Event) -> list[Action]:
        actions = original(event)
        if isinstance(event, LocalCredential) and event.value is not None:
            cert = QuorumCertificate(VoteKind.COMMIT, bytes(32), 0, event.value, ())
            actions.append(Decide(DecisionKind.BLOCK, 0, event.value, cert))
        return actions

    return handle


def test_wrong_results_are_never_certified_and_hand_over() -> None:
    rejected = 0
    for seed in range(20_000, 20_040):
        outcome = run_seed(seed, kind=RoundKind.TASK, members=7, byzantine=["wrong-result"] * 2)
        assert outcome.ok, describe(outcome)
        for decisions in outcome.decisions.values():
            rejected += sum(d.kind is DecisionKind.REJECTED for d in decisions)
    assert rejected > 0  # some wrong-result member was picked, rejected, and replaced


@pytest.mark.slow
def test_slow_seeds() -> None:
    check(range(DEFAULT_SEEDS, DEFAULT_SEEDS + SLOW_SEEDS))
