"""Events that enter the round core and actions that leave it (plain data, no behaviour).

The shell (the node in p2p, or the simulator) turns network input, timer expiries and local
results into events, calls `Round.handle(event)`, and executes the returned actions in order.
"""

from __future__ import annotations

import dataclasses
import enum

from committee.credentials import Credential
from committee.messages import RejectReason
from ledger.certificates import EquivocationEvidence, QuorumCertificate


class Phase(enum.Enum):
    """Phase of the round's current agreement (see README: the round)."""

    IDLE = "idle"  # constructed, not started
    PROPOSE = "propose"  # in a view, waiting for its proposal (its proposer: collecting NEW_VIEWs)
    PREPARE = "prepare"  # prepared the view's proposal, waiting for a prepare certificate
    COMMIT = "commit"  # locked and committed, waiting for the decision
    VIEW_CHANGE = "view-change"  # left the view, waiting for a NEW_VIEW certificate for the next
    DONE = "done"  # the round is over (decided, certified, or gave up)


# ----------------------------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True, slots=True)
class LocalCredential:
    """Start the round: this node holds its place in the membership.

    `value` is what this node proposes when it is a view's proposer and holds no lock: for a task,
    its own identity if it is live, has the image and has capacity (else None: it lets its views
    pass); for a block, the hash of the block it would propose. `credential` is, for a task, this
    node's own verified credential (checked against its roster entry); None for a validator set."""

    value: bytes | None
    credential: Credential | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MessageReceived:
    """Wire bytes from `sender` (an identity key the transport authenticated)."""

    sender: bytes
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core asked for (StartTimer) expired."""

    instance: int
    view: int
    phase: Phase


@dataclasses.dataclass(frozen=True, slots=True)
class LocalVerdict:
    """This node's verdict on report `report` (its digest) of task attempt `attempt`. The executor
    gives the verdict on its own report too (accept = it ran the job and signed the report;
    reject with CANNOT_EXECUTE = it could not)."""

    attempt: int
    report: bytes
    accept: bool
    reason: RejectReason = RejectReason.NONE


Event = LocalCredential | MessageReceived | TimerFired | LocalVerdict


# ---------------------------------------------------------------------------------------- actions


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Send `data` to member `to` (a direct stream between roster members)."""

    to: bytes
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Broadcast:
    """Send `data` to every other member of the round (never to the whole network)."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StartTimer:
    """Call back with TimerFired(instance, view, phase) after `duration_ms`. Timers are never
    cancelled: the core drops those that are no longer for its current (instance, view, phase)."""

    instance: int
    view: int
    phase: Phase
    duration_ms: int


class DecisionKind(enum.Enum):
    """What a decision decides."""

    BLOCK = "block"  # the block with hash `value` is final at this height
    EXECUTOR = "executor"  # member `value` (identity) executes attempt `attempt` of the task
    RESULT = "result"  # report `value` is certified: the result certificate is `certificate`
    REJECTED = "rejected"  # executor `value` is rejected; the task passes to the next candidate


@dataclasses.dataclass(frozen=True, slots=True)
class Decide:
    """An agreement of the round decided; `certificate` proves it offline."""

    kind: DecisionKind
    attempt: int
    value: bytes
    certificate: QuorumCertificate


@dataclasses.dataclass(frozen=True, slots=True)
class NeedVerdict:
    """The executor of `attempt` proposed report `report`: fetch it (from the executor or from any
    member) and verify it, then deliver LocalVerdict."""

    attempt: int
    report: bytes
    executor: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class GiveUp:
    """The round ends without a result (every candidate was tried, or the attempt bound was hit);
    the ledger's task expiry refunds the poster."""

    attempt: int
    reason: str


class Misbehaviour(enum.Enum):
    """Why a peer is reported."""

    MALFORMED = "malformed"  # bytes that do not decode
    NOT_A_MEMBER = "not-a-member"  # the sender or a voter is not in the membership
    WRONG_SUBJECT = "wrong-subject"  # the message is for another round
    BAD_SIGNATURE = "bad-signature"
    WRONG_WEIGHT = "wrong-weight"  # a vote claims a weight its voter does not have
    IMPERSONATION = "impersonation"  # a direct message signed by someone else than its sender
    NOT_PROPOSER = "not-proposer"  # a proposal from a member that is not the view's proposer
    INVALID_PROPOSAL = "invalid-proposal"  # a value the proposer may not propose
    BAD_CERTIFICATE = "bad-certificate"
    UNEXPECTED_VOTE = "unexpected-vote"  # a vote of a kind or value that can not be honest
    EQUIVOCATION = "equivocation"  # two conflicting signed votes (evidence attached)


@dataclasses.dataclass(frozen=True, slots=True)
class ReportMisbehaviour:
    """Penalise `peer` by `penalty` points; `evidence`, when present, is slashable on the ledger."""

    peer: bytes
    reason: Misbehaviour
    penalty: int
    evidence: EquivocationEvidence | None = None
    detail: str = ""


Action = Send | Broadcast | StartTimer | Decide | NeedVerdict | GiveUp | ReportMisbehaviour
