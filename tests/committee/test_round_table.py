"""Every (phase x event) pair of the round is either handled (a list of actions comes back) or
rejected with EventNotAllowed, exactly as `round.TRANSITIONS` says; peer input never raises."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import pytest

from committee.errors import EventNotAllowed
from committee.events import (
    Action,
    Broadcast,
    DecisionKind,
    Event,
    LocalCredential,
    LocalVerdict,
    MessageReceived,
    Misbehaviour,
    Phase,
    ReportMisbehaviour,
    Send,
    StartTimer,
    TimerFired,
)
from committee.messages import (
    CertificateMessage,
    NewView,
    Proposal,
    RejectReason,
    VoteMessage,
    decode_message,
    encode_message,
)
from committee.round import BACKOFF_VIEWS_MAX, TRANSITIONS
from ledger.certificates import (
    NO_VALUE,
    VoteKind,
    build_certificate,
    sign_vote,
    task_round_id,
)
from ledger.signing import IdentityKey
from tests.committee.cluster import TASK_ID, Cluster, Packet, report_value

ME = 1  # the member under test (not the proposer of view 0, which is m0)


def fresh() -> Cluster:
    return Cluster(4, kind="task")


def at_idle() -> Cluster:
    return fresh()


def at_propose() -> Cluster:
    c = fresh()
    c.start(only=(1, 2, 3))  # m0 (the proposer) has not started yet
    c.pending.clear()
    return c


def at_prepare() -> Cluster:
    c = fresh()
    c.start()
    c.deliver(lambda p: p.dst == ME and p.src == 0)  # m1 only sees the proposal
    assert c.rounds[ME].phase is Phase.PREPARE
    return c


def at_commit() -> Cluster:
    c = fresh()
    c.start()

    def keep(p: Packet) -> bool:
        _, m = decode_message(p.data)
        if isinstance(m, CertificateMessage):
            return p.dst == ME  # only m1 sees the prepare certificate
        return not (isinstance(m, VoteMessage) and m.vote.kind is VoteKind.COMMIT)

    c.deliver(keep)
    assert c.rounds[ME].phase is Phase.COMMIT
    return c


def at_view_change() -> Cluster:
    c = at_propose()
    c.fire(ME)
    assert c.rounds[ME].phase is Phase.VIEW_CHANGE
    return c


def at_result_propose() -> Cluster:
    """Executor decided (m0); m1 waits for m0's report proposal."""
    c = fresh()
    c.start()
    c.deliver()
    assert c.rounds[ME].instance == 1
    assert c.rounds[ME].phase is Phase.PROPOSE
    return c


def at_done() -> Cluster:
    c = fresh()
    c.start()
    c.deliver()
    c.handle(0, LocalVerdict(0, report_value(0), True))
    c.deliver()
    c.answer_needs()
    c.deliver()
    assert c.rounds[ME].phase is Phase.DONE
    return c


STATES: dict[str, Callable[[], Cluster]] = {
    "idle": at_idle,
    "propose": at_propose,
    "prepare": at_prepare,
    "commit": at_commit,
    "view-change": at_view_change,
    "result-propose": at_result_propose,
    "done": at_done,
}


def wire(c: Cluster, message: Proposal | VoteMessage | CertificateMessage | NewView) -> bytes:
    return encode_message(TASK_ID, message)


def vote(c: Cluster, who: int, kind: VoteKind, view: int, value: bytes) -> VoteMessage:
    ctx = task_round_id(TASK_ID, 0)
    return VoteMessage(
        sign_vote(c.keys[who], c.membership, kind=kind, context=ctx, view=view, value=value).record
    )


def qc(c: Cluster, kind: VoteKind, view: int, value: bytes) -> CertificateMessage:
    ctx = task_round_id(TASK_ID, 0)
    votes = [
        sign_vote(k, c.membership, kind=kind, context=ctx, view=view, value=value)
        for k in c.keys[:3]
    ]
    return CertificateMessage(build_certificate(votes, c.membership).certificate)


def from_(c: Cluster, who: int, data: bytes) -> MessageReceived:
    return MessageReceived(c.keys[who].public, data)


# Events, built against a cluster (so they carry real signatures for its members).
EVENTS: dict[str, Callable[[Cluster], Event]] = {
    "start": lambda c: LocalCredential(c.keys[ME].public),
    "garbage": lambda c: from_(c, 2, b"\x01" + TASK_ID + b"\xc1"),
    "outsider": lambda c: MessageReceived(IdentityKey(b"\x77" * 32).public, b"x"),
    "wrong-subject": lambda c: from_(
        c, 2, encode_message(b"\x00" * 32, vote(c, 2, VoteKind.PREPARE, 0, c.keys[0].public))
    ),
    "proposal": lambda c: from_(
        c,
        0,
        wire(
            c,
            Proposal(
                sign_vote(
                    c.keys[0],
                    c.membership,
                    kind=VoteKind.PROPOSE,
                    context=task_round_id(TASK_ID, 0),
                    view=0,
                    value=c.keys[0].public,
                ).record,
                None,
                None,
                None,
            ),
        ),
    ),
    "proposal-not-proposer": lambda c: from_(
        c,
        2,
        wire(
            c,
            Proposal(
                sign_vote(
                    c.keys[2],
                    c.membership,
                    kind=VoteKind.PROPOSE,
                    context=task_round_id(TASK_ID, 0),
                    view=0,
                    value=c.keys[2].public,
                ).record,
                None,
                None,
                None,
            ),
        ),
    ),
    "prepare-vote": lambda c: from_(
        c, 2, wire(c, vote(c, 2, VoteKind.PREPARE, 0, c.keys[0].public))
    ),
    "commit-vote": lambda c: from_(c, 2, wire(c, vote(c, 2, VoteKind.COMMIT, 0, c.keys[0].public))),
    "forged-vote": lambda c: from_(
        c,
        2,
        wire(
            c,
            VoteMessage(
                dataclasses.replace(
                    vote(c, 2, VoteKind.PREPARE, 0, c.keys[0].public).vote, signature=bytes(64)
                )
            ),
        ),
    ),
    "wrong-weight-vote": lambda c: from_(
        c,
        2,
        wire(
            c,
            VoteMessage(
                dataclasses.replace(
                    vote(c, 2, VoteKind.PREPARE, 0, c.keys[0].public).vote, weight=9
                )
            ),
        ),
    ),
    "prepare-qc": lambda c: from_(c, 2, wire(c, qc(c, VoteKind.PREPARE, 0, c.keys[0].public))),
    "commit-qc": lambda c: from_(c, 2, wire(c, qc(c, VoteKind.COMMIT, 0, c.keys[0].public))),
    "view-qc": lambda c: from_(c, 2, wire(c, qc(c, VoteKind.NEW_VIEW, 1, NO_VALUE))),
    "new-view": lambda c: from_(
        c,
        2,
        wire(
            c,
            NewView(vote(c, 2, VoteKind.NEW_VIEW, 1, NO_VALUE).vote, None, None, RejectReason.NONE),
        ),
    ),
    "timer-current": lambda c: TimerFired(
        c.rounds[ME].instance, c.rounds[ME].view, c.rounds[ME].phase
    ),
    "timer-stale": lambda c: TimerFired(c.rounds[ME].instance, c.rounds[ME].view + 7, Phase.COMMIT),
    "verdict-current": lambda c: LocalVerdict(0, report_value(0), True),
    "verdict-future": lambda c: LocalVerdict(3, report_value(3), True),
}


def expected_rule(phase: Phase, event: Event) -> str:
    return TRANSITIONS[phase][type(event)]


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("event_name", sorted(EVENTS))
def test_every_phase_event_pair(state: str, event_name: str) -> None:
    c = STATES[state]()
    r = c.rounds[ME]
    phase = r.phase
    event = EVENTS[event_name](c)
    rule = expected_rule(phase, event)
    if event_name == "verdict-future" and phase is not Phase.DONE:
        rule = "reject"  # no attempt 3 is running
    if rule == "reject":
        with pytest.raises(EventNotAllowed):
            r.handle(event)
        return
    actions = r.handle(event)
    assert isinstance(actions, list)
    assert all(isinstance(a, Action.__args__) for a in actions)  # type: ignore[attr-defined]
    reports = {a.reason for a in actions if isinstance(a, ReportMisbehaviour)}
    if rule in ("buffer", "stale"):
        assert actions == []
        return
    # Peer faults are reported, not raised, in every phase that handles messages.
    live = phase is not Phase.DONE
    if event_name == "garbage":
        assert reports == {Misbehaviour.MALFORMED}
    if event_name == "outsider":
        assert reports == {Misbehaviour.NOT_A_MEMBER}
    if event_name == "wrong-subject":
        assert reports == {Misbehaviour.WRONG_SUBJECT}
    if event_name == "timer-stale":
        assert actions == []
    if r.instance == 0 and live:
        if event_name == "forged-vote":
            assert reports == {Misbehaviour.BAD_SIGNATURE}
        if event_name == "wrong-weight-vote":
            assert reports == {Misbehaviour.WRONG_WEIGHT}
        if event_name == "proposal-not-proposer":
            assert reports == {Misbehaviour.NOT_PROPOSER}
    if event_name == "timer-current" and phase in (Phase.PREPARE, Phase.COMMIT):
        # A live view gets one more, longer wait (and our vote goes to the proposer again)...
        assert r.phase is phase
        assert isinstance(event, TimerFired)
        (timer,) = [a for a in actions if isinstance(a, StartTimer)]
        assert (timer.instance, timer.view, timer.phase) == (event.instance, event.view, phase)
        base = r.config.timing.prepare_ms if phase is Phase.PREPARE else r.config.timing.commit_ms
        assert timer.duration_ms == r.config.timing.scaled(2 * base, event.view)
        assert not any(isinstance(a, Broadcast) for a in actions)
        if r.ag.proposer(r.view) != r.me:
            (again,) = [a for a in actions if isinstance(a, Send)]
            assert again.to == r.membership.members[r.ag.proposer(r.view)].identity
        actions = r.handle(event)  # ...and then the view changes
    if event_name == "timer-current" and phase in (Phase.PROPOSE, Phase.PREPARE, Phase.COMMIT):
        assert r.phase is Phase.VIEW_CHANGE
        # NEW_VIEW goes to the next view's proposer only; m1 is that proposer, so it keeps its own.
        assert r.ag.proposer(r.view) == r.me
        assert not [a for a in actions if isinstance(a, Send | Broadcast)]
        assert r.me in r.ag.new_views[r.view]
    if event_name == "commit-qc" and state in ("propose", "prepare", "commit", "view-change"):
        assert r.instance == 1  # the executor decision moved the member to the result agreement


def test_table_covers_every_phase_and_event_type() -> None:
    for phase in Phase:
        assert set(TRANSITIONS[phase]) == {
            LocalCredential,
            MessageReceived,
            TimerFired,
            LocalVerdict,
        }


def test_idle_buffers_messages_and_replays_them_on_start() -> None:
    c = fresh()
    c.start(only=(0,))
    proposal = c.pending.popleft()
    assert proposal.dst == 1
    r = c.rounds[1]
    assert r.handle(MessageReceived(c.keys[0].public, proposal.data)) == []
    actions = r.handle(LocalCredential(c.keys[1].public))
    assert r.phase is Phase.PREPARE  # the buffered proposal was processed at start
    assert any(isinstance(a, Action.__args__) for a in actions)  # type: ignore[attr-defined]


def test_unknown_event_type_is_rejected() -> None:
    c = fresh()
    with pytest.raises(EventNotAllowed):
        c.rounds[0].handle("not an event")  # type: ignore[arg-type]


def test_start_checks_value_and_credential() -> None:
    c = fresh()
    with pytest.raises(EventNotAllowed):
        c.rounds[1].handle(LocalCredential(c.keys[2].public))  # proposes someone else
    with pytest.raises(EventNotAllowed):
        c.rounds[1].handle(LocalCredential(b"short"))


def test_conflicting_verdicts_are_local_misuse() -> None:
    c = at_result_propose()
    r = c.rounds[ME]
    r.handle(LocalVerdict(0, report_value(0), True))
    assert r.handle(LocalVerdict(0, report_value(0), True)) == []  # repeated: idempotent
    with pytest.raises(EventNotAllowed):
        r.handle(LocalVerdict(0, report_value(0), False, RejectReason.WRONG_OUTPUT))


def test_new_view_resends_go_to_every_member_and_wait_twice_as_long_each_time() -> None:
    c = at_view_change()  # m1 timed out in view 0 and asked for view 1
    r = c.rounds[ME]
    base = r.config.timing.view_change_retry_ms
    waits = []
    for _ in range(4):
        actions = c.handle(ME, TimerFired(r.instance, r.view, r.phase))
        (resend,) = [a for a in actions if isinstance(a, Broadcast)]
        assert r.ag.my_new_view == resend.data
        (timer,) = [a for a in actions if isinstance(a, StartTimer)]
        waits.append(timer.duration_ms)
    assert r.view == 1
    assert r.phase is Phase.VIEW_CHANGE
    assert waits == [base << 2, base << 3, base << 4, base << 5]  # view 1, then one more per resend
    # m2 times out too and its NEW_VIEW reaches m1: m1 still resends to every member, m2
    # included (holding m2's NEW_VIEW says nothing of whether m1's reached m2).
    c.pending.clear()
    c.fire(2)
    c.deliver(lambda p: p.src == 2 and p.dst == ME)
    assert r.phase is Phase.VIEW_CHANGE  # 2 of 4: no quorum yet
    actions = c.handle(ME, TimerFired(r.instance, r.view, r.phase))
    assert [a for a in actions if isinstance(a, Broadcast)]
    for _ in range(4):  # capped like every other timeout
        actions = c.handle(ME, TimerFired(r.instance, r.view, r.phase))
    (timer,) = [a for a in actions if isinstance(a, StartTimer)]
    assert timer.duration_ms == base << BACKOFF_VIEWS_MAX


def _result_view_one_with_verdicts_pending() -> Cluster:
    """m0 executed and proposed its report; the others are still verifying it (their verdicts
    are not in) when view 0 times out: every member moves to view 1, whose proposer is m1."""
    c = fresh()
    c.start()
    c.deliver()  # m0 is the executor
    c.handle(0, LocalVerdict(0, report_value(0), True))
    c.deliver()
    assert sorted(i for i, _ in c.needs) == [1, 2, 3]
    c.pending.clear()
    for i in (1, 2, 3):
        c.fire(i)
    c.fire(0)  # m0 prepared its own report: a live view waits once more...
    c.fire(0)  # ...then changes
    c.deliver(lambda p: not isinstance(decode_message(p.data)[1], Proposal))
    r = c.rounds[ME]
    assert (r.view, r.phase, r.ag.proposer(1)) == (1, Phase.PROPOSE, ME)
    return c


def _proposals(actions: list[Action]) -> list[bytes]:
    out = []
    for a in actions:
        if isinstance(a, Broadcast):
            _, m = decode_message(a.data)
            if isinstance(m, Proposal):
                out.append(m.vote.value)
    return out


def test_a_later_proposer_still_verifying_waits_once_for_its_verdict_then_proposes_it() -> None:
    c = _result_view_one_with_verdicts_pending()
    r = c.rounds[ME]
    # Its collection window ends: no rejection of the executor while its own check runs.
    actions = c.handle(ME, TimerFired(r.instance, r.view, r.phase))
    assert _proposals(actions) == []
    (wait,) = [a for a in actions if isinstance(a, StartTimer)]
    timing = r.config.timing
    assert wait.duration_ms == timing.scaled((timing.propose_ms - timing.collect_ms) // 2, 1)
    # The verdict comes (the report checks out): m1 proposes the report, and it is certified.
    actions = c.handle(ME, LocalVerdict(0, report_value(0), True))
    assert _proposals(actions) == [report_value(0)]
    c.deliver()
    c.answer_needs()
    c.deliver()
    assert [d.value for d in c.decisions[ME]][-1] == report_value(0)


def test_a_later_proposer_whose_verdict_does_not_come_proposes_the_rejection() -> None:
    c = _result_view_one_with_verdicts_pending()
    r = c.rounds[ME]
    c.handle(ME, TimerFired(r.instance, r.view, r.phase))  # waits once...
    actions = c.handle(ME, TimerFired(r.instance, r.view, r.phase))  # ...and no more
    assert _proposals(actions) == [c.keys[0].public]  # reject the executor


def _new_views(packets: Iterable[Packet]) -> list[tuple[int, int, int, RejectReason]]:
    """(sender, receiver, view asked for, reason) of the NEW_VIEWs among `packets`."""
    out = []
    for p in packets:
        _, m = decode_message(p.data)
        if isinstance(m, NewView):
            out.append((p.src, p.dst, m.vote.view, m.reason))
    return out


def test_a_view_change_sends_new_views_only_to_the_next_proposer_whose_proposal_moves_all() -> None:
    c = at_propose()  # m0, the proposer of view 0, never starts: it is down
    for i in (1, 2, 3):
        c.fire(i)
    # m2 and m3 ask m1 (the proposer of view 1), and no one else; m1 keeps its own.
    assert sorted(_new_views(c.pending)) == [
        (2, ME, 1, RejectReason.NONE),
        (3, ME, 1, RejectReason.NONE),
    ]
    sent: list[Packet] = []

    def alive(p: Packet) -> bool:
        sent.append(p)
        return p.dst != 0

    c.deliver(alive)
    sent.clear()
    c.fire(ME)  # its collection window for m0's NEW_VIEW ends: it proposes with the certificate
    c.deliver(alive)
    assert [c.rounds[i].instance for i in (1, 2, 3)] == [1, 1, 1]  # the executor is decided
    for i in (1, 2, 3):
        assert [(d.kind, c.name(d.value)) for d in c.decisions[i]] == [
            (DecisionKind.EXECUTOR, "m1")
        ]
    assert _new_views(sent) == []  # the proposal carried the view certificate to m2 and m3


def test_a_proposer_that_cannot_execute_makes_the_members_leave_its_view_at_once() -> None:
    c = fresh()
    c.start(values={1: None}, only=(1, 2, 3))  # m0 is down; m1 cannot execute
    c.pending.clear()
    for i in (1, 2, 3):
        c.fire(i)
    c.deliver(lambda p: p.dst != 0)
    assert (c.rounds[ME].view, c.rounds[ME].phase) == (1, Phase.PROPOSE)
    c.fire(ME)  # m1's collection window ends with no value of its own
    c.deliver(lambda p: p.dst != 0)
    # m1 gave view 1 up to everyone, with its certificate; m2 and m3 entered view 1 from that
    # message and left it with no timeout, asking m2 (view 2's proposer).
    assert [(c.rounds[i].view, c.rounds[i].phase) for i in (1, 2, 3)] == [
        (2, Phase.VIEW_CHANGE),
        (2, Phase.PROPOSE),
        (2, Phase.VIEW_CHANGE),
    ]
    fired = [line for line in c.lines if "timer fired" in line]
    assert [line for line in fired if " v1 " in line] == ["m1 <- timer fired #0 v1 propose"]
    c.fire(2)  # its collection window for m0's NEW_VIEW ends
    c.deliver(lambda p: p.dst != 0)
    for i in (1, 2, 3):
        assert [(d.kind, c.name(d.value)) for d in c.decisions[i]] == [
            (DecisionKind.EXECUTOR, "m2")
        ]
