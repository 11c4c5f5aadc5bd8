"""Wire messages of the committee round, exchanged only between the members of one round.

Every message is `tag (1 byte) || subject (32 bytes) || canonical record`. The subject (task id, or
`height_subject(height)`) lets the shell route the message to its round before decoding the body;
the votes inside carry the exact agreement they belong to (their context). Nothing here grows with
the size of the network: the largest message is a proposal carrying three certificates of at most
MEMBERS_MAX signatures each.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Final

from ledger.certificates import QuorumCertificate, UnverifiedVote
from ledger.encoding import Record
from ledger.errors import DecodeError

SUBJECT_LEN: Final = 32


class RejectReason(enum.IntEnum):
    """Why a member leaves a view without preparing (advisory: carried unsigned in NEW_VIEW; the
    signed evidence is the certificate that decides)."""

    NONE = 0  # plain timeout
    SILENT = 1  # no report from the executor by its deadline
    INVALID_REPORT = 2  # the report does not verify (signature, task, image, policy)
    WRONG_OUTPUT = 3  # re-execution gave another output
    CANNOT_EXECUTE = 4  # the executor itself could not run the job
    OTHER = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Proposal(Record):
    """The proposer of `vote.view` proposes `vote.value` (a PROPOSE vote).

    - justification: the PREPARE certificate of an earlier view for the same value, when the
      proposer re-proposes a locked value (needed to move members locked on older values).
    - view_certificate: the NEW_VIEW certificate of `vote.view` (views > 0), so members that missed
      the view change can join.
    - start_certificate: the certificate that opened this agreement (the executor decision for a
      result agreement; the rejection of the previous executor for a later executor agreement), so
      members that missed it can catch up."""

    MAX_BYTES = 3 * QuorumCertificate.MAX_BYTES + UnverifiedVote.MAX_BYTES + 16
    vote: UnverifiedVote
    justification: QuorumCertificate | None
    view_certificate: QuorumCertificate | None
    start_certificate: QuorumCertificate | None


@dataclasses.dataclass(frozen=True, slots=True)
class VoteMessage(Record):
    """A PREPARE or commit-class vote, sent to the proposer of its view."""

    MAX_BYTES = UnverifiedVote.MAX_BYTES + 8
    vote: UnverifiedVote


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateMessage(Record):
    """A certificate: a prepare certificate (members lock on it and commit), a decision, or a
    reply to a member that is behind."""

    MAX_BYTES = QuorumCertificate.MAX_BYTES + 8
    certificate: QuorumCertificate


@dataclasses.dataclass(frozen=True, slots=True)
class NewView(Record):
    """The sender left view `vote.view - 1` and asks for view `vote.view` (a NEW_VIEW vote). It
    carries its highest prepare certificate, so the next proposer learns every lock, and the view
    certificate of the last view it entered, so members still behind that view can catch up."""

    MAX_BYTES = 2 * QuorumCertificate.MAX_BYTES + UnverifiedVote.MAX_BYTES + 16
    vote: UnverifiedVote
    high_certificate: QuorumCertificate | None
    view_certificate: QuorumCertificate | None
    reason: RejectReason


Message = Proposal | VoteMessage | CertificateMessage | NewView


class MessageTag(enum.IntEnum):
    """The first byte of a message."""

    PROPOSAL = 1
    VOTE = 2
    CERTIFICATE = 3
    NEW_VIEW = 4


_TYPES: Final[dict[MessageTag, type[Record]]] = {
    MessageTag.PROPOSAL: Proposal,
    MessageTag.VOTE: VoteMessage,
    MessageTag.CERTIFICATE: CertificateMessage,
    MessageTag.NEW_VIEW: NewView,
}
_TAGS: Final = {cls: tag for tag, cls in _TYPES.items()}
MESSAGE_BYTES_MAX: Final = 1 + SUBJECT_LEN + max(cls.MAX_BYTES for cls in _TYPES.values())


def encode_message(subject: bytes, message: Message) -> bytes:
    """The wire bytes of `message` for round `subject`."""
    if len(subject) != SUBJECT_LEN:
        raise ValueError("a subject is 32 bytes")
    return bytes([_TAGS[type(message)]]) + subject + message.encode()


def peek_subject(data: bytes) -> bytes:
    """The subject of a message, for routing before decoding. Raises DecodeError if too short."""
    if len(data) < 1 + SUBJECT_LEN:
        raise DecodeError("message shorter than its header")
    return bytes(data[1 : 1 + SUBJECT_LEN])


def kind_name(data: bytes) -> str:
    """The kind of a message from its tag ("proposal", "vote", "certificate", "new-view"), or
    "unknown", without decoding it: for counting what crosses the network."""
    try:
        return MessageTag(data[0]).name.lower().replace("_", "-") if data else "unknown"
    except ValueError:
        return "unknown"


def decode_message(data: bytes) -> tuple[bytes, Message]:
    """(subject, message) from wire bytes. Raises DecodeError on anything else: drop the bytes and
    penalise the sender."""
    if len(data) > MESSAGE_BYTES_MAX:
        raise DecodeError(f"message of {len(data)} bytes exceeds {MESSAGE_BYTES_MAX}")
    subject = peek_subject(data)
    try:
        tag = MessageTag(data[0])
    except ValueError:
        raise DecodeError(f"unknown message tag {data[0]}") from None
    message = _TYPES[tag].decode(bytes(data[1 + SUBJECT_LEN :]))
    return subject, message  # type: ignore[return-value]
