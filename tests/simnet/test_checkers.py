"""The checkers on hand-made observations: each safety rule fires on its own violation."""

from __future__ import annotations

import dataclasses

from ledger.certificates import Member
from ledger.state import State, Task, TaskStatus, genesis_state, task_key
from p2p.events import TaskEvent, TaskPhase
from simnet.checkers import Findings, check
from simnet.observe import Recorder
from simnet.scenario import Phases, Scenario, Workload
from simnet.world import World, build_world


def _world() -> World:
    sc = Scenario(
        seed=1,
        peers=6,
        validators=4,
        workload=Workload(tasks=1, tau=4, posters=1),
        phases=Phases(liveness_bound_ms=1000),
    )
    return build_world(sc)


def _safety(
    world: World,
    rec: Recorder,
    lies: frozenset[bytes] | set[bytes] = frozenset(),
    final: State | None = None,
) -> Findings:
    """The checkers' findings on `rec` against the ledger state `final` (default: genesis),
    judged at time 0 (no liveness deadline has passed)."""
    return check(
        world,
        rec,
        genesis_state(world.genesis) if final is None else final,
        faulty=set(),
        lies=set(lies),
        end_ms=0,
        finished_early=False,
    )


def _one_task(task_id: bytes, at_ms: int = 5) -> tuple[World, Recorder]:
    """The test world and a recorder (every peer honest) in which peer 0 posted `task_id`."""
    world = _world()
    rec = Recorder([True] * len(world.peers))
    rec.submitted(0, task_id, at_ms)
    return world, rec


def _closed_task(
    status: TaskStatus, report_digest: bytes | None = None, roster: tuple[Member, ...] = ()
) -> Task:
    """A task of tau 4 that the ledger closed with `status` after three attempts."""
    return Task(
        poster=b"\x01" * 32,
        spec_digest=b"\x02" * 32,
        post_tx=b"\x03" * 32,
        fee=10,
        escrow=0,
        tau=4,
        posted_height=1,
        status=status,
        seed=None,
        draw_until=0,
        total_stake=0,
        roster=roster,
        attempt=2,
        executor=None,
        report_digest=report_digest,
        closed_height=9,
    )


def _holding(state: State, task_id: bytes, task: Task) -> State:
    return dataclasses.replace(state, entries={**state.entries, task_key(task_id): task})


def test_two_blocks_at_one_height_is_a_safety_violation() -> None:
    world = _world()
    rec = Recorder([True] * len(world.peers))
    rec.stored(0, 1, b"\x01" * 32, 10, "round")
    rec.stored(1, 1, b"\x01" * 32, 11, "gossip")
    rec.stored(2, 1, b"\x02" * 32, 12, "sync")
    found = _safety(world, rec)
    assert len(found.safety) == 1
    assert "height 1: 2 different blocks" in found.safety[0]
    assert "(2 peers)" in found.safety[0]


def test_two_executors_or_two_results_from_honest_peers_are_violations() -> None:
    world = _world()
    honest = [True] * len(world.peers)
    honest[5] = False
    rec = Recorder(honest)
    task = b"\x07" * 32
    rec.submitted(0, task, 5)
    rec.task_event(4, TaskEvent(task, TaskPhase.EXECUTOR_CONFIRMED, 10, "attempt 0: aaaa"))
    rec.task_event(6, TaskEvent(task, TaskPhase.EXECUTOR_CONFIRMED, 11, "attempt 0: bbbb"))
    # a byzantine peer's announcements are not decisions
    rec.task_event(5, TaskEvent(task, TaskPhase.CERTIFIED, 12, "cc" * 32))
    found = _safety(world, rec)
    assert any("2 different executors" in v for v in found.safety)
    assert not any("certified reports" in v for v in found.safety)
    rec.task_event(4, TaskEvent(task, TaskPhase.CERTIFIED, 13, "dd" * 32))
    rec.task_event(6, TaskEvent(task, TaskPhase.CERTIFIED, 14, "ee" * 32))
    found = _safety(world, rec)
    assert any("2 different certified reports" in v for v in found.safety)


def test_a_certified_lie_and_a_wrong_output_are_violations() -> None:
    task = b"\x09" * 32
    world, rec = _one_task(task)
    lie = b"\x33" * 32
    rec.task_event(4, TaskEvent(task, TaskPhase.CERTIFIED, 13, lie.hex()))
    rec.by_id[task].output = b"not the output"
    found = _safety(world, rec, lies={lie})
    assert any("wrong result was certified" in v for v in found.safety)
    assert any("wrong output" in v for v in found.safety)
    # the right output is not a finding
    rec.by_id[task].output = world.tasks[0].expected_output
    found = _safety(world, rec)
    assert found.safety == []


def test_a_lie_recorded_by_a_rejection_is_not_a_certified_lie() -> None:
    # The ledger keeps the report of the attempt it rejected (here the lie itself): only a
    # completed task's report digest is a certified result (seed 4840 of the sweep flagged it).
    task_id = b"\x0a" * 32
    world, rec = _one_task(task_id)
    lie = b"\x33" * 32
    state = genesis_state(world.genesis)

    def final(status: TaskStatus) -> Findings:
        return _safety(world, rec, {lie}, _holding(state, task_id, _closed_task(status, lie)))

    assert final(TaskStatus.FAILED).safety == []
    assert any("wrong result was certified" in v for v in final(TaskStatus.COMPLETED).safety)


def test_a_failed_task_says_whether_its_roster_was_missing_light_or_rejected() -> None:
    task_id = b"\x0b" * 32
    world, rec = _one_task(task_id)
    state = genesis_state(world.genesis)
    assert state.params.min_roster_weight(4) == 2

    def why(*weights: int) -> str:
        roster = tuple(Member(bytes([i]) * 32, w, b"\x04" * 32) for i, w in enumerate(weights))
        final = _holding(state, task_id, _closed_task(TaskStatus.FAILED, roster=roster))
        (outcome,) = _safety(world, rec, final=final).outcomes
        return outcome.why

    assert why() == "no roster"
    assert why(1) == "roster below the minimum weight"
    assert why(1, 1) == "3 attempts rejected"


def test_an_undecided_task_fails_liveness_only_after_its_deadline() -> None:
    world, rec = _one_task(b"\x05" * 32, at_ms=100)
    state = genesis_state(world.genesis)
    early = check(world, rec, state, faulty=set(), lies=set(), end_ms=500, finished_early=False)
    assert early.liveness == []  # stopped before the deadline (100 + 1000 ms): not judged
    late = check(world, rec, state, faulty=set(), lies=set(), end_ms=5000, finished_early=False)
    assert len(late.liveness) == 1
    assert "not decided (not-included)" in late.liveness[0]
