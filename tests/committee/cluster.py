"""A scripted cluster of round cores for tests: explicit delivery and timers, readable
transcripts."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable

from committee.events import (
    Action,
    Broadcast,
    Decide,
    Event,
    GiveUp,
    LocalCredential,
    LocalVerdict,
    MessageReceived,
    NeedVerdict,
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
)
from committee.round import Round, RoundConfig, Timing
from ledger.certificates import (
    NO_VALUE,
    Membership,
    QuorumCertificate,
    UnverifiedVote,
    block_round_id,
    result_round_id,
    task_round_id,
)
from ledger.domains import Domain, digest_parts
from ledger.signing import IdentityKey

TASK_ID = digest_parts(Domain.TASK_ID, b"test task")
HEIGHT = 5
TIMING = Timing()


def keys(n: int) -> list[IdentityKey]:
    return [IdentityKey(bytes([i + 1]) * 32) for i in range(n)]


def block_value(i: int) -> bytes:
    return digest_parts(Domain.BLOCK_HEADER, b"block", bytes([i]))


def report_value(attempt: int, good: bool = True) -> bytes:
    return digest_parts(Domain.REPORT, b"good" if good else b"bad", bytes([attempt]))


@dataclasses.dataclass
class Packet:
    src: int
    dst: int
    data: bytes


class Cluster:
    """n members (member i has key keys(n)[i]; membership order = index order)."""

    def __init__(
        self, n: int = 4, *, kind: str = "task", weights: Iterable[int] | None = None
    ) -> None:
        self.keys = keys(n)
        self.kind = kind
        weights = list(weights) if weights is not None else [1] * n
        self.membership = Membership.from_weights(
            (k.public, w) for k, w in zip(self.keys, weights, strict=True)
        )
        ranking = tuple(range(n))
        if kind == "task":
            configs = [
                RoundConfig.for_task(TASK_ID, self.membership, ranking, k, timing=TIMING)
                for k in self.keys
            ]
        else:
            configs = [
                RoundConfig.for_block(HEIGHT, self.membership, k, timing=TIMING) for k in self.keys
            ]
        self.rounds = [Round(c) for c in configs]
        self.index = {k.public: i for i, k in enumerate(self.keys)}
        self.pending: collections.deque[Packet] = collections.deque()
        self.timers: list[tuple[int, TimerFired]] = []
        self.decisions: dict[int, list[Decide | GiveUp]] = collections.defaultdict(list)
        self.needs: list[tuple[int, NeedVerdict]] = []
        self.reports: list[tuple[int, ReportMisbehaviour]] = []
        self.lines: list[str] = []

    # --- naming, for transcripts

    def name(self, value: bytes) -> str:
        if value in self.index:
            return f"m{self.index[value]}"
        if value == NO_VALUE:
            return "-"
        for i in range(len(self.keys)):
            if value == block_value(i):
                return f"B{i}"
        for attempt in range(4):
            if value == report_value(attempt):
                return f"R{attempt}"
            if value == report_value(attempt, good=False):
                return f"R{attempt}bad"
        if value == TASK_ID:
            return "task"
        return value.hex()[:8]

    def context_name(self, context: bytes) -> str:
        for a in range(4):
            if context == task_round_id(TASK_ID, a):
                return f"executor#{a}"
            if context == result_round_id(TASK_ID, a):
                return f"result#{a}"
        if context == block_round_id(HEIGHT):
            return "block"
        return context.hex()[:8]

    def vote_text(self, v: UnverifiedVote) -> str:
        return (
            f"{v.kind.name} {self.context_name(v.context)} v{v.view} "
            f"{self.name(v.value)} by {self.name(v.voter)}"
        )

    def cert_text(self, c: QuorumCertificate | None) -> str:
        if c is None:
            return "none"
        signers = ",".join(f"m{s.member}" for s in c.signers)
        return (
            f"{c.kind.name}-QC {self.context_name(c.context)} v{c.view} {self.name(c.value)} "
            f"[{signers}]"
        )

    def message_text(self, data: bytes) -> str:
        _, m = decode_message(data)
        match m:
            case Proposal():
                extra = []
                if m.justification is not None:
                    extra.append(f"justified by {self.cert_text(m.justification)}")
                if m.view_certificate is not None:
                    extra.append(f"view cert {self.cert_text(m.view_certificate)}")
                if m.start_certificate is not None:
                    extra.append(f"started by {self.cert_text(m.start_certificate)}")
                tail = f" ({'; '.join(extra)})" if extra else ""
                return f"Proposal[{self.vote_text(m.vote)}]{tail}"
            case VoteMessage():
                return f"Vote[{self.vote_text(m.vote)}]"
            case CertificateMessage():
                return f"Certificate[{self.cert_text(m.certificate)}]"
            case NewView():
                return (
                    f"NewView[{self.vote_text(m.vote)}; high {self.cert_text(m.high_certificate)}; "
                    f"entered {self.cert_text(m.view_certificate)}; {m.reason.name}]"
                )
        raise AssertionError(m)

    def action_text(self, action: Action) -> str:
        match action:
            case Send(to=to, data=data):
                return f"send to {self.name(to)}: {self.message_text(data)}"
            case Broadcast(data=data):
                return f"broadcast: {self.message_text(data)}"
            case StartTimer():
                return (
                    f"timer #{action.instance} v{action.view} {action.phase.value} "
                    f"{action.duration_ms}ms"
                )
            case Decide():
                return (
                    f"DECIDE {action.kind.value} attempt {action.attempt} "
                    f"{self.name(action.value)} by {self.cert_text(action.certificate)}"
                )
            case NeedVerdict():
                return f"need verdict on {self.name(action.report)} (attempt {action.attempt})"
            case GiveUp():
                return f"GIVE UP attempt {action.attempt}: {action.reason}"
            case ReportMisbehaviour():
                evidence = ""
                if action.evidence is not None:
                    evidence = (
                        f" evidence [{self.vote_text(action.evidence.first)}] vs "
                        f"[{self.vote_text(action.evidence.second)}]"
                    )
                return (
                    f"REPORT {self.name(action.peer)} {action.reason.value} "
                    f"-{action.penalty}{evidence}"
                )
        raise AssertionError(action)

    def event_text(self, event: Event) -> str:
        match event:
            case LocalCredential(value=value):
                return f"start (own value {self.name(value) if value else 'none'})"
            case MessageReceived(sender=sender, data=data):
                return f"from {self.name(sender)}: {self.message_text(data)}"
            case TimerFired():
                return f"timer fired #{event.instance} v{event.view} {event.phase.value}"
            case LocalVerdict():
                verdict = "accept" if event.accept else f"reject ({event.reason.name})"
                return f"verdict {verdict} {self.name(event.report)} (attempt {event.attempt})"
        raise AssertionError(event)

    # --- driving

    def note(self, text: str) -> None:
        self.lines.append(f"# {text}")

    def handle(self, i: int, event: Event) -> list[Action]:
        actions = self.rounds[i].handle(event)
        self.lines.append(f"m{i} <- {self.event_text(event)}")
        self.lines += [f"    m{i} {self.action_text(a)}" for a in actions]
        for action in actions:
            match action:
                case Send(to=to, data=data):
                    self.pending.append(Packet(i, self.index[to], data))
                case Broadcast(data=data):
                    for j in range(len(self.rounds)):
                        if j != i:
                            self.pending.append(Packet(i, j, data))
                case StartTimer():
                    self.timers.append((i, TimerFired(action.instance, action.view, action.phase)))
                case Decide() | GiveUp():
                    self.decisions[i].append(action)
                case NeedVerdict():
                    self.needs.append((i, action))
                case ReportMisbehaviour():
                    self.reports.append((i, action))
        return actions

    def start(
        self, values: dict[int, bytes | None] | None = None, only: Iterable[int] | None = None
    ) -> None:
        for i in range(len(self.rounds)) if only is None else only:
            if values is not None and i in values:
                value = values[i]
            elif self.kind == "task":
                value = self.keys[i].public
            else:
                value = block_value(i)
            self.handle(i, LocalCredential(value))

    def deliver(self, keep: Callable[[Packet], bool] = lambda p: True, limit: int = 10_000) -> int:
        """Deliver pending packets FIFO (including those they cause); drop those `keep` refuses."""
        count = 0
        while self.pending and count < limit:
            packet = self.pending.popleft()
            if not keep(packet):
                self.lines.append(
                    f"   (dropped m{packet.src} -> m{packet.dst}: {self.message_text(packet.data)})"
                )
                continue
            count += 1
            self.handle(packet.dst, MessageReceived(self.keys[packet.src].public, packet.data))
        return count

    def fire(self, i: int) -> None:
        """Fire member i's current timer (the one for its current instance, view and phase)."""
        r = self.rounds[i]
        current = TimerFired(r.instance, r.view, r.phase)
        assert (i, current) in self.timers, f"m{i} has no timer for {current}"
        self.handle(i, current)

    def answer_needs(self, good: Callable[[bytes], bool] = lambda r: True) -> None:
        needs, self.needs = self.needs, []
        for i, need in needs:
            ok = good(need.report)
            reason = RejectReason.NONE if ok else RejectReason.WRONG_OUTPUT
            self.handle(i, LocalVerdict(need.attempt, need.report, ok, reason))

    def transcript(self) -> str:
        return "\n".join(self.lines) + "\n"
