"""Golden transcripts of the round: scripted runs compared line by line with
tests/committee/golden/*.txt. Regenerate after an intended change with
`POSI_REGENERATE_GOLDEN=1 python -m pytest tests/committee/test_golden.py` and review the diff."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from committee.events import Decide, DecisionKind, LocalVerdict, Phase
from committee.messages import VoteMessage, decode_message, encode_message
from ledger.certificates import VoteKind, sign_vote, verify_evidence
from tests.committee.cluster import HEIGHT, Cluster, Packet, block_value, report_value

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("POSI_REGENERATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    expected = path.read_text()
    if text != expected:
        got = text.splitlines()
        want = expected.splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        pytest.fail(
            f"{path.name} differs at line {first + 1}:\n"
            f"  expected: {want[first] if first < len(want) else '<end>'}\n"
            f"  got:      {got[first] if first < len(got) else '<end>'}\n"
            "If the change is intended, regenerate with POSI_REGENERATE_GOLDEN=1."
        )


def decided(c: Cluster, i: int) -> list[tuple[DecisionKind, int, str]]:
    return [(d.kind, d.attempt, c.name(d.value)) for d in c.decisions[i] if isinstance(d, Decide)]


def test_normal_task_round() -> None:
    c = Cluster(4, kind="task")
    c.note("normal case: 4 members of weight 1, ranking m0 m1 m2 m3; m0 executes")
    c.start()
    c.deliver()
    c.note("m0 ran the job and signed report R0")
    c.handle(0, LocalVerdict(0, report_value(0), True))
    c.deliver()
    c.note("the members fetched R0 and verified it")
    c.answer_needs()
    c.deliver()
    for i in range(4):
        assert decided(c, i) == [
            (DecisionKind.EXECUTOR, 0, "m0"),
            (DecisionKind.RESULT, 0, "R0"),
        ]
        assert c.rounds[i].phase is Phase.DONE
    assert not c.reports
    check_golden("normal_task_round", c.transcript())


def test_view_change_to_next_candidate() -> None:
    c = Cluster(4, kind="block")
    c.note(f"block {HEIGHT}: proposer of view 0 is m1, which crashed after starting")
    c.start()
    crashed = 1
    c.deliver(lambda p: p.src != crashed)
    c.note("the others time out waiting for a proposal")
    for i in (0, 2, 3):
        c.fire(i)
    c.deliver(lambda p: p.src != crashed)
    c.note("m2, proposer of view 1, heard three of four NEW_VIEWs; its collection window ends")
    c.fire(2)
    c.deliver(lambda p: p.src != crashed)
    for i in (0, 2, 3):
        assert decided(c, i) == [(DecisionKind.BLOCK, 0, "B2")]
        assert c.rounds[i].view == 1
    check_golden("view_change", c.transcript())


def test_lock_carried_across_views() -> None:
    c = Cluster(4, kind="block")
    c.note("view 0: m1 proposes B1 and forms a prepare certificate, which only m3 receives")
    c.start()

    def view0(p: Packet) -> bool:
        _, m = decode_message(p.data)
        if p.src == 1 and type(m).__name__ == "CertificateMessage":
            return p.dst == 3
        # Commit votes are lost: view 0 can not decide.
        return not (isinstance(m, VoteMessage) and m.vote.kind is VoteKind.COMMIT)

    c.deliver(view0)
    assert c.rounds[3].ag.high is not None
    assert c.rounds[2].ag.high is None
    c.note("everyone waits once more and sends its vote again (commit votes are lost again)")
    for i in range(4):
        c.fire(i)
    c.deliver(view0)
    c.note("m1 and m3 carry the lock on B1 in their NEW_VIEWs")
    for i in range(4):
        c.fire(i)
    c.deliver()
    for i in range(4):
        assert decided(c, i) == [(DecisionKind.BLOCK, 0, "B1")]  # not m2's own B2
    check_golden("lock_across_views", c.transcript())


def test_equivocating_member() -> None:
    c = Cluster(4, kind="block")
    c.note("m3 prepares the proposal B1 and, in the same view, another block B3")
    c.start()
    evil = c.keys[3]

    def tamper(p: Packet) -> bool:
        _, m = decode_message(p.data)
        if (
            p.src == 3
            and isinstance(m, VoteMessage)
            and m.vote.kind is VoteKind.PREPARE
            and m.vote.value != block_value(3)
        ):
            other = sign_vote(
                evil,
                c.membership,
                kind=VoteKind.PREPARE,
                context=m.vote.context,
                view=m.vote.view,
                value=block_value(3),
            )
            data = encode_message(c.rounds[3].config.subject, VoteMessage(other.record))
            c.pending.appendleft(dataclasses.replace(p, data=data))
        return True

    c.deliver(tamper)
    for i in range(4):
        assert decided(c, i) == [(DecisionKind.BLOCK, 0, "B1")]
    equivocations = [r for _, r in c.reports if r.evidence is not None]
    assert len(equivocations) == 1
    assert verify_evidence(equivocations[0].evidence, c.membership).voter == evil.public
    check_golden("equivocating_member", c.transcript())


def test_wrong_result_hands_over_to_next_candidate() -> None:
    c = Cluster(4, kind="task")
    c.note("m0 is chosen, proposes a wrong report; the members reject it and m1 takes over")
    c.start()
    c.deliver()
    c.handle(0, LocalVerdict(0, report_value(0, good=False), True))
    c.deliver()
    c.note("m1..m3 find R0bad wrong and leave view 0 at once, asking m1 for view 1")
    c.answer_needs(lambda r: r != report_value(0, good=False))
    c.deliver()
    c.note("m1's collection window for m0's NEW_VIEW ends; it proposes to reject m0")
    c.fire(1)
    c.deliver()
    c.note("attempt 1: m1 executes and reports R1")
    c.handle(1, LocalVerdict(1, report_value(1), True))
    c.deliver()
    c.answer_needs()
    c.deliver()
    for i in (1, 2, 3):
        assert decided(c, i) == [
            (DecisionKind.EXECUTOR, 0, "m0"),
            (DecisionKind.REJECTED, 0, "m0"),
            (DecisionKind.EXECUTOR, 1, "m1"),
            (DecisionKind.RESULT, 1, "R1"),
        ]
    check_golden("handover", c.transcript())
