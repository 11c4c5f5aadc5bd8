"""Hypothesis drives a 4-member task round through arbitrary interleavings of deliveries, drops,
duplicates, timer expiries and verdicts. Invariant: members never decide two values for one
agreement and no honest member is ever reported. At the end, a fair schedule (every message
delivered, every member's timer fired when it waits) must finish the round: safety under any
schedule, liveness once the network behaves."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from committee.events import Decide, DecisionKind, LocalVerdict, MessageReceived, Phase
from tests.committee.cluster import Cluster, report_value

# A fair schedule finishes a round in a handful of views; this many passes is generous.
FAIR_PASSES_MAX = 60


class RoundMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c = Cluster(4, kind="task")
        self.c.start()
        self.reported: set[tuple[int, int]] = set()

    @precondition(lambda self: bool(self.c.pending))
    @rule(data=st.data())
    def deliver_one(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.c.pending) - 1))
        packet = self.c.pending[index]
        del self.c.pending[index]
        self.c.handle(packet.dst, MessageReceived(self.c.keys[packet.src].public, packet.data))

    @precondition(lambda self: bool(self.c.pending))
    @rule(data=st.data())
    def drop_one(self, data: st.DataObject) -> None:
        del self.c.pending[data.draw(st.integers(0, len(self.c.pending) - 1))]

    @precondition(lambda self: bool(self.c.pending))
    @rule(data=st.data())
    def duplicate_one(self, data: st.DataObject) -> None:
        self.c.pending.append(self.c.pending[data.draw(st.integers(0, len(self.c.pending) - 1))])

    @rule(member=st.integers(0, 3))
    def fire_timer(self, member: int) -> None:
        r = self.c.rounds[member]
        if r.phase is not Phase.DONE:
            self.c.fire(member)

    @rule()
    def verdicts(self) -> None:
        self.c.answer_needs()
        self._executors_report()

    def _executors_report(self) -> None:
        for i, decisions in list(self.c.decisions.items()):
            for d in decisions:
                key = (i, getattr(d, "attempt", -1))
                if (
                    isinstance(d, Decide)
                    and d.kind is DecisionKind.EXECUTOR
                    and d.value == self.c.keys[i].public
                    and key not in self.reported
                ):
                    self.reported.add(key)
                    self.c.handle(i, LocalVerdict(d.attempt, report_value(d.attempt), True))

    @invariant()
    def safe(self) -> None:
        values: dict[tuple[str, int], set[bytes]] = {}
        for decisions in self.c.decisions.values():
            for d in decisions:
                if isinstance(d, Decide):
                    group = (
                        "result" if d.kind in (DecisionKind.RESULT, DecisionKind.REJECTED) else "x"
                    )
                    values.setdefault((group, d.attempt), set()).add(d.value)
        assert all(len(v) == 1 for v in values.values()), values
        assert not self.c.reports  # everyone is honest: nobody may be accused

    def teardown(self) -> None:
        for _ in range(FAIR_PASSES_MAX):
            self.c.deliver()
            self.c.answer_needs()
            self._executors_report()
            self.c.deliver()
            waiting = [i for i, r in enumerate(self.c.rounds) if r.phase is not Phase.DONE]
            if not waiting:
                break
            for i in waiting:
                self.c.fire(i)
        assert all(r.phase is Phase.DONE for r in self.c.rounds), [
            (r.instance, r.view, r.phase) for r in self.c.rounds
        ]
        self.safe()


RoundMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
TestRoundMachine = RoundMachine.TestCase
