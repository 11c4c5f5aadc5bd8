"""What a run observed, fed by either driver from the actions its cores return.

The recorder keeps, bounded by the run's size: each task's timeline (first time any peer reached
each phase) and the decisions honest peers announced, the block hash every height was stored with
(and by how many peers), executions and their outputs, penalties, and message counts by type. The
checkers (`simnet.checkers`) and the report read it; nothing here decides pass or fail.
"""

from __future__ import annotations

import array
import collections
import dataclasses
from typing import Final

from p2p.events import Penalise, ResultReady, TaskEvent, TaskPhase
from p2p.roles.poster import LIGHT_WINDOW

# Distinct values remembered per (task, attempt) decision: two already prove a violation, a few
# more help the reader; a byzantine flood of values must not grow the recorder.
DECISION_VALUES_MAX: Final = 8
# Penalty reasons kept by name (the rest are counted as "other").
PENALTY_REASONS_MAX: Final = 64

TIMELINE_PHASES: Final = (
    TaskPhase.POSTED,
    TaskPhase.INCLUDED,
    TaskPhase.SEED,
    TaskPhase.REDRAWN,
    TaskPhase.DRAWN,
    TaskPhase.ROSTER,
    TaskPhase.EXECUTOR_CONFIRMED,
    TaskPhase.STARTED,
    TaskPhase.FINISHED,
    TaskPhase.CERTIFIED,
    TaskPhase.PAID,
    TaskPhase.OUTPUT_FETCHED,
    TaskPhase.REJECTED,
    TaskPhase.FAILED,
    TaskPhase.EXPIRED,
)


@dataclasses.dataclass(slots=True)
class TaskRecord:
    """One task as the run saw it."""

    plan: int  # index in World.tasks
    task_id: bytes | None = None
    submitted_ms: int | None = None
    phases: dict[str, int] = dataclasses.field(default_factory=dict)
    executors: dict[int, set[str]] = dataclasses.field(default_factory=dict)  # attempt -> ids
    certified: set[str] = dataclasses.field(default_factory=set)  # report digests (hex)
    output: bytes | None = None  # what the poster fetched (ResultReady)
    output_report: bytes | None = None
    rejected: set[int] = dataclasses.field(default_factory=set)  # attempts rejected
    drawn: int = 0  # peers that were drawn and sent a credential (compare with the roster)
    redraws: int = 0  # credential windows that closed empty or light (its poster's REDRAWN events)
    light_windows: int = 0  # of those, windows whose roster the ledger dropped as too light
    max_view: int = 0  # the highest view an honest member's agreement of this task moved to


class Recorder:
    """Observations of one run (see the module docstring). `honest[i]` says whether peer i is
    honest: only honest peers' announcements count as decisions."""

    def __init__(self, honest: list[bool]) -> None:
        self.honest = honest
        self.tasks: dict[int, TaskRecord] = {}
        self.by_id: dict[bytes, TaskRecord] = {}
        self.heights: dict[int, dict[bytes, int]] = collections.defaultdict(dict)
        self.height_time_ms: dict[int, int] = {}
        # When each peer stored each height (the spread is the block propagation delay).
        self.store_times_ms: dict[int, array.array[int]] = collections.defaultdict(
            lambda: array.array("q")
        )
        # ...and how each came (StoreBlock.via), in the same order
        self.store_vias: dict[int, list[str]] = collections.defaultdict(list)
        self.peer_height: list[int] = [0] * len(honest)
        self.messages: collections.Counter[str] = collections.Counter()
        self.message_bytes: collections.Counter[str] = collections.Counter()
        # committee requests by message kind (proposal, vote, certificate, new-view)
        self.round_messages: collections.Counter[str] = collections.Counter()
        self.penalties: collections.Counter[str] = collections.Counter()
        self.penalised_honest: collections.Counter[str] = collections.Counter()
        self.executions: collections.Counter[str] = collections.Counter()
        self.honest_outputs: dict[bytes, set[bytes]] = collections.defaultdict(set)
        self.events = 0
        self.flood_sent = 0

    # --- feeding ---------------------------------------------------------------------------

    def plan(self, index: int) -> TaskRecord:
        """The record of planned task `index` (created on first use)."""
        rec = self.tasks.get(index)
        if rec is None:
            rec = self.tasks[index] = TaskRecord(index)
        return rec

    def submitted(self, index: int, task_id: bytes, now_ms: int) -> None:
        """A poster signed planned task `index`."""
        rec = self.plan(index)
        rec.task_id = task_id
        rec.submitted_ms = now_ms
        self.by_id[task_id] = rec

    def task_event(self, peer: int, event: TaskEvent) -> None:
        """A point of a task's timeline; decisions are taken from honest peers only."""
        rec = self.by_id.get(event.task_id)
        if rec is None:
            return  # a task this run did not plan (a byzantine flood's junk never gets here)
        phase = event.phase.value
        if phase not in rec.phases or event.now_ms < rec.phases[phase]:
            rec.phases[phase] = event.now_ms
        if event.phase is TaskPhase.DRAWN:
            rec.drawn += 1
        elif event.phase is TaskPhase.REDRAWN:
            rec.redraws += 1
            rec.light_windows += event.detail.startswith(LIGHT_WINDOW)
        if not self.honest[peer]:
            return
        if event.phase is TaskPhase.EXECUTOR_CONFIRMED and event.detail.startswith("attempt "):
            attempt_text, _, executor = event.detail[len("attempt ") :].partition(": ")
            values = rec.executors.setdefault(int(attempt_text), set())
            if len(values) < DECISION_VALUES_MAX:
                values.add(executor)
        elif event.phase is TaskPhase.CERTIFIED and event.detail:
            if len(rec.certified) < DECISION_VALUES_MAX:
                rec.certified.add(event.detail)
        elif event.phase is TaskPhase.VIEW_CHANGED:
            view = event.detail.rpartition("view ")[2]
            if view.isdigit():
                rec.max_view = max(rec.max_view, int(view))
        elif event.phase is TaskPhase.REJECTED and event.detail.startswith("attempt "):
            attempt_text = event.detail[len("attempt ") :].partition(":")[0]
            if attempt_text.isdigit() and len(rec.rejected) < DECISION_VALUES_MAX:
                rec.rejected.add(int(attempt_text))

    def stored(self, peer: int, height: int, block_hash: bytes, now_ms: int, via: str) -> None:
        """Peer `peer` stored block `height` with hash `block_hash`, which came `via` gossip,
        sync, poll or its own round (StoreBlock.via)."""
        seen = self.heights[height]
        seen[block_hash] = seen.get(block_hash, 0) + 1
        if height not in self.height_time_ms or now_ms < self.height_time_ms[height]:
            self.height_time_ms[height] = now_ms
        self.store_times_ms[height].append(now_ms)
        self.store_vias[height].append(via)
        self.peer_height[peer] = max(self.peer_height[peer], height)

    def propagation_ms(self, via: str | None = None) -> list[int]:
        """How long after the first peer each peer stored a block (that came `via`, or any way),
        for the heights first stored during the run (time 0 on: not while the swarm formed)."""
        delays: list[int] = []
        for height, times in self.store_times_ms.items():
            if self.height_time_ms.get(height, -1) >= 0:
                first = min(times)
                vias = self.store_vias[height]
                delays.extend(
                    t - first for t, v in zip(times, vias, strict=True) if via in (None, v)
                )
        return delays

    def store_ways(self) -> list[str]:
        """The ways blocks came (StoreBlock.via) in this run, sorted."""
        return sorted({via for vias in self.store_vias.values() for via in vias})

    def result_ready(self, event: ResultReady) -> None:
        """A poster fetched and checked a task's output."""
        rec = self.by_id.get(event.task_id)
        if rec is not None:
            rec.output = event.output
            rec.output_report = event.report_digest

    def penalised(self, peer: int, target_honest: bool, event: Penalise) -> None:
        """A peer penalised another (honest targets are listed separately: they should be rare
        and explained, e.g. by a crash or a partition)."""
        key = event.reason if len(self.penalties) < PENALTY_REASONS_MAX else "other"
        self.penalties[key] += 1
        if target_honest and self.honest[peer]:
            self.penalised_honest[key] += 1

    def executed(self, peer: int, purpose: str, spec: bytes, output: bytes) -> None:
        """A sandbox ran `spec` for `peer` (before any policy touched the result)."""
        self.executions[purpose] += 1
        if self.honest[peer]:
            outputs = self.honest_outputs[spec]
            if len(outputs) < DECISION_VALUES_MAX:
                outputs.add(output)

    def message(self, kind: str, count: int, size: int) -> None:
        """`count` messages of `kind` carrying `size` bytes in all crossed the network."""
        self.messages[kind] += count
        self.message_bytes[kind] += size

    def round_message(self, kind: str) -> None:
        """A committee request of `kind` (`committee.messages.kind_name`) was sent."""
        self.round_messages[kind] += 1
