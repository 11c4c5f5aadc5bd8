"""Safety and liveness checks over what a run observed (`simnet.observe.Recorder`).

**Safety** (a finding fails the run):
- one decision per agreement: honest peers never announce two executors for one attempt of a task,
  or two certified reports for one task;
- one block per height: every peer that stored height h stored the same block (so ledgers agree on
  every common height);
- no wrong result: a certified report is never one a byzantine executor lied in (the policies
  record every lie they sign), and an output a poster fetched and checked against the certificate
  equals what honest executions of the job printed. A wrong result is always a finding; the report
  adds whether the roster's faulty weight was above two thirds (outside the model: the protocol
  promises nothing then, and the run still fails, so a broken model is never silent).

**Liveness** (after the faults stop): every task is decided (completed, or failed by the ledger
after its attempts) within `phases.liveness_bound_ms` of the later of its posting and the end of
the faults. A task that is not decided in time is *explained* (not a finding) when faulty members
(byzantine or crashed) held at least a third of its roster's weight: `committee.params` predicts
how often that happens, and the report puts the observed rate next to the prediction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Final

from executor.sandbox import output_hash
from ledger.state import State, Task, TaskStatus
from simnet.observe import Recorder
from simnet.world import World

# Findings listed in full in a report (the rest are counted).
FINDINGS_LISTED_MAX: Final = 50


@dataclasses.dataclass
class TaskOutcome:
    """How one planned task ended."""

    plan: int
    status: str  # completed | failed | expired | open | not-included | not-posted
    decided_ms: int | None
    roster_members: int
    faulty_share: float  # byzantine + crashed weight / roster weight (0 without a roster)
    why: str = ""


@dataclasses.dataclass
class Findings:
    """What the checkers found."""

    safety: list[str] = dataclasses.field(default_factory=list)
    liveness: list[str] = dataclasses.field(default_factory=list)
    explained: list[str] = dataclasses.field(default_factory=list)
    outcomes: list[TaskOutcome] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No safety or liveness finding."""
        return not self.safety and not self.liveness


def check(
    world: World,
    rec: Recorder,
    final: State,
    *,
    faulty: Collection[bytes],
    lies: Collection[bytes],
    end_ms: int,
    finished_early: bool,
) -> Findings:
    """Run every checker. `final` is the most advanced honest peer's state; `faulty` the identity
    keys of byzantine and crashed peers; `lies` the report digests byzantine executors signed for
    wrong outputs; `end_ms` when the run stopped (before the liveness deadline only if every task
    was already decided: `finished_early`)."""
    out = Findings()
    _check_blocks(rec, out)
    _check_decisions(world, rec, final, faulty=faulty, lies=lies, out=out)
    _check_liveness(
        world, rec, final, faulty=faulty, end_ms=end_ms, finished_early=finished_early, out=out
    )
    return out


def _check_blocks(rec: Recorder, out: Findings) -> None:
    for height in sorted(rec.heights):
        seen = rec.heights[height]
        if len(seen) > 1:
            described = ", ".join(f"{h.hex()[:12]} ({n} peers)" for h, n in sorted(seen.items()))
            out.safety.append(f"height {height}: {len(seen)} different blocks stored: {described}")


def _roster_faulty_share(
    final: State, task_id: bytes, faulty: Collection[bytes]
) -> tuple[int, float]:
    task = final.task(task_id)
    if task is None or not task.roster:
        return 0, 0.0
    total = task.roster_weight()
    bad = sum(m.weight for m in task.roster if m.identity in faulty)
    return len(task.roster), bad / total if total else 0.0


def _check_decisions(
    world: World,
    rec: Recorder,
    final: State,
    *,
    faulty: Collection[bytes],
    lies: Collection[bytes],
    out: Findings,
) -> None:
    for index in sorted(rec.tasks):
        r = rec.tasks[index]
        name = f"task {index}" + (f" ({r.task_id.hex()[:12]})" if r.task_id else "")
        for attempt, executors in sorted(r.executors.items()):
            if len(executors) > 1:
                out.safety.append(
                    f"{name} attempt {attempt}: honest peers confirmed {len(executors)} "
                    f"different executors {sorted(executors)}"
                )
        if len(r.certified) > 1:
            out.safety.append(
                f"{name}: honest peers saw {len(r.certified)} different certified reports "
                f"{sorted(d[:12] for d in r.certified)}"
            )
        if r.task_id is None:
            continue
        _, share = _roster_faulty_share(final, r.task_id, faulty)
        model = (
            f"faulty roster weight {share:.0%}: outside the model (> 2/3)"
            if 3 * share > 2
            else f"faulty roster weight {share:.0%}: within the model"
        )
        task = final.task(r.task_id)
        certified = {bytes.fromhex(d) for d in r.certified}
        if (
            task is not None
            and task.status is TaskStatus.COMPLETED
            and task.report_digest is not None
        ):
            # Only a completed task's report was certified: a rejection also records the
            # rejected attempt's report (the lie it caught, often), and so does a failed task.
            certified.add(task.report_digest)
        wrong = certified & set(lies)
        if wrong:
            out.safety.append(
                f"{name}: a wrong result was certified (report {next(iter(wrong)).hex()[:12]}, "
                f"signed by a lying executor); {model}"
            )
        expected = world.tasks[index].expected_output
        honest = rec.honest_outputs.get(world.tasks[index].job_spec)
        if r.output is not None:
            right = {expected} | (honest or set())
            if r.output not in right:
                out.safety.append(
                    f"{name}: the poster received a wrong output ({len(r.output)} bytes, hash "
                    f"{output_hash(r.output).hex()[:12]}) backed by a result certificate; {model}"
                )


def _why_failed(final: State, task: Task) -> str:
    """Why the ledger failed a task: its last credential window closed empty or lighter than the
    minimum roster weight, or every attempt was rejected."""
    if not task.roster:
        return "no roster"
    if task.roster_weight() < final.params.min_roster_weight(task.tau):
        return "roster below the minimum weight"
    return f"{task.attempt + 1} attempts rejected"


def _check_liveness(
    world: World,
    rec: Recorder,
    final: State,
    *,
    faulty: Collection[bytes],
    end_ms: int,
    finished_early: bool,
    out: Findings,
) -> None:
    sc = world.scenario
    faults_until = sc.faults_until_ms
    bound = sc.phases.liveness_bound_ms
    for plan in world.tasks:
        r = rec.tasks.get(plan.index)
        name = f"task {plan.index}"
        if r is None or r.task_id is None:
            out.outcomes.append(TaskOutcome(plan.index, "not-posted", None, 0, 0.0))
            out.liveness.append(f"{name}: never posted (its poster was down?)")
            continue
        task = final.task(r.task_id)
        members, share = _roster_faulty_share(final, r.task_id, faulty)
        posted = r.submitted_ms if r.submitted_ms is not None else plan.at_ms
        deadline = max(posted, faults_until) + bound
        decided_ms = min(
            (
                r.phases[p]
                for p in ("paid", "failed")
                if p in r.phases
                and task is not None
                and task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
            ),
            default=None,
        )
        if task is None:
            status = "not-included"
        else:
            status = {
                TaskStatus.COMPLETED: "completed",
                TaskStatus.FAILED: "failed",
                TaskStatus.EXPIRED: "expired",
            }.get(task.status, "open")
        why = ""
        if status == "failed":
            why = _why_failed(final, task)  # type: ignore[arg-type]
        outcome = TaskOutcome(plan.index, status, decided_ms, members, round(share, 4), why)
        out.outcomes.append(outcome)
        decided = status in ("completed", "failed") and decided_ms is not None
        if decided and decided_ms <= deadline:  # type: ignore[operator]
            continue
        if not decided and not finished_early and end_ms < deadline:
            continue  # the run stopped before this task's deadline (a capped run): not judged
        late = "decided late" if decided else f"not decided ({status})"
        detail = (
            f"{name}: {late}, deadline {deadline} ms (posted {posted} ms, faults until "
            f"{faults_until} ms, bound {bound} ms); roster {members} members, faulty weight "
            f"{share:.0%}"
        )
        if 3 * share >= 1:
            outcome.why = outcome.why or "faulty roster weight >= 1/3"
            out.explained.append(detail + ": faulty weight >= 1/3, the model allows a stall")
        else:
            out.liveness.append(detail)
