"""Votes, memberships, quorum certificates and equivocation evidence.

These are ledger records: the ledger defines and verifies them (a block's commit certificate, a
task's executor and result certificates, slash evidence); the committee package produces them.

- A `Membership` is an ordered list of members (identity key, weight, and for a task roster the
  digest of the credential that put the member there). It is fixed when a round starts. Quorum is
  more than two thirds of its total weight, computed in integers: `3 * w > 2 * total`.
- A vote is signed over `Domain.VOTE || encoding of VoteBody(kind, context, view, value, voter,
  weight)`. `context` is the 32-byte round id (`task_round_id`, `block_round_id`), so a vote for one
  task or height can never count for another. Decoding gives an `UnverifiedVote`; only
  `UnverifiedVote.verify(membership)` gives a `Vote`, and only `Vote`s may be counted.
- A `QuorumCertificate` names what was decided (kind, context, view, value) and lists its signers
  compactly as (index in the membership, signature), in increasing index order. The verifier
  rebuilds each signer's vote body from the membership (identity and weight) and checks every
  signature, so a certificate is checkable offline by anyone who holds the membership.
- `EquivocationEvidence` is two signed votes of one member for the same round, view and kind with
  different values; anyone can check it with `verify_evidence`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterable, Mapping
from typing import Annotated, Final

from ledger.domains import Domain, digest_parts
from ledger.encoding import U16, U32, U64, Hash, MaxItems, PublicKeyBytes, Record, SignatureBytes
from ledger.errors import LedgerError, SignatureError
from ledger.signing import IdentityKey, verify_signature

# A task roster's expected size is tau (the committee size, at most a few hundred) and its member
# count never exceeds its weight; a validator set is smaller still. 1024 leaves ample headroom and
# keeps a full certificate under 80 KiB. Indices fit a U16.
MEMBERS_MAX: Final = 1024
# Views are counted from 0 in each round; a U32 is never exhausted by timeouts of seconds.
VIEW_MAX: Final = (1 << 32) - 1
# Total weight must stay within a U64 so weights and sums have one canonical width everywhere.
WEIGHT_TOTAL_MAX: Final = (1 << 64) - 1
# The value of votes that do not choose a value (NEW_VIEW): all zeros, never a digest in practice.
NO_VALUE: Final = bytes(32)


class VoteKind(enum.IntEnum):
    """What a vote says. Every agreement (a block, a task's executor, a task's result) runs views
    of PROPOSE, PREPARE, then a commit-class vote; NEW_VIEW asks to leave a view. In a result
    agreement (context `result_round_id`) the commit-class vote is RESULT_ACCEPT (value: the report
    digest) or RESULT_REJECT (value: the rejected executor's identity); elsewhere it is COMMIT."""

    PROPOSE = 1  # the view's proposer proposes `value` (signed: proposer equivocation is provable)
    PREPARE = 2  # the voter accepts the view's proposal
    COMMIT = 3  # the voter saw a prepare certificate for `value` in this view and locked on it
    NEW_VIEW = 4  # the voter timed out and asks to move to `view`; value is NO_VALUE
    RESULT_ACCEPT = 5  # commit-class vote of a result agreement: accept the report `value`
    RESULT_REJECT = 6  # commit-class vote of a result agreement: reject executor `value`


# Two votes of one member in one round and view, in one class, with different values are provable
# misbehaviour: an honest member proposes, prepares and commits at most one value per view. The
# three commit-class kinds form one class (accepting a report and rejecting its executor in one view
# conflicts). NEW_VIEW carries no value and is never slashable.
CONFLICT_CLASS: Final = {
    VoteKind.PROPOSE: 1,
    VoteKind.PREPARE: 2,
    VoteKind.COMMIT: 3,
    VoteKind.RESULT_ACCEPT: 3,
    VoteKind.RESULT_REJECT: 3,
}


# Votes whose signature is known to verify (the caller owns and bounds the set).
SignatureCache = set["UnverifiedVote"]


class CertificateError(LedgerError):
    """Root of the errors of this module: a vote, certificate or piece of evidence is invalid.
    Reject the object; if a peer sent it, penalise that peer."""


class NotAMember(CertificateError):
    """The voter (or signer) is not in the membership the object is checked against."""


class WrongWeight(CertificateError):
    """A vote claims a weight other than the membership gives its voter."""


class InvalidVoteSignature(CertificateError, SignatureError):
    """A vote's (or a certificate signer's) signature does not verify."""


class MalformedCertificate(CertificateError):
    """Signer indices are out of range, repeated or not in increasing order, or the certificate is
    not of the kind, round or view the caller asked for."""


class NoQuorum(CertificateError):
    """The signers' weight is not more than two thirds of the membership's total weight."""


class InvalidEvidence(CertificateError):
    """Two votes do not prove equivocation (different voter, round, view or kind; same value; a kind
    that is not slashable; or a bad signature)."""


class MembershipError(LedgerError, ValueError):
    """A membership breaks an invariant (empty, too large, zero weight, duplicate identity, total
    weight beyond a U64). Local misuse or a corrupt roster: fix what built it."""


def task_round_id(task_id: bytes, attempt: int = 0) -> bytes:
    """The 32-byte round id (vote context) of a task's attempt `attempt` (0 first; each handover to
    the next-ranked candidate starts a new attempt)."""
    if len(task_id) != 32 or not 0 <= attempt <= VIEW_MAX:
        raise ValueError("task ids are 32 bytes and attempts fit a U32")
    return digest_parts(Domain.ROUND_ID, b"task", task_id, attempt.to_bytes(4, "big"))


def result_round_id(task_id: bytes, attempt: int = 0) -> bytes:
    """The 32-byte round id of the result agreement of a task's attempt (its executor's report is
    accepted, or the executor rejected): the context of the task's result certificate."""
    if len(task_id) != 32 or not 0 <= attempt <= VIEW_MAX:
        raise ValueError("task ids are 32 bytes and attempts fit a U32")
    return digest_parts(Domain.ROUND_ID, b"result", task_id, attempt.to_bytes(4, "big"))


def block_round_id(height: int) -> bytes:
    """The 32-byte round id (vote context) of the block at `height`."""
    if not 0 <= height < 1 << 64:
        raise ValueError("heights fit a U64")
    return digest_parts(Domain.ROUND_ID, b"block", height.to_bytes(8, "big"))


def service_round_id(measurement_id: bytes) -> bytes:
    """The 32-byte round id (vote context) of one service-integrity measurement."""
    if len(measurement_id) != 32:
        raise ValueError("measurement ids are 32 bytes")
    return digest_parts(Domain.ROUND_ID, b"service", measurement_id)


@dataclasses.dataclass(frozen=True, slots=True)
class Member(Record):
    """One member of a membership. `credential` is the digest of the sortition credential that put
    the member on a task roster (None for a validator set)."""

    MAX_BYTES = 128
    identity: PublicKeyBytes
    weight: U64
    credential: Hash | None = None


@dataclasses.dataclass(frozen=True)
class Membership(Record):
    """An ordered, fixed set of members. Votes and certificates are checked against it.

    Raises MembershipError (a ValueError, so `Membership.decode` turns it into DecodeError) if it is
    empty, has more than MEMBERS_MAX members, a zero weight, a repeated identity, or a total weight
    beyond a U64."""

    MAX_BYTES = 128 * MEMBERS_MAX + 16
    members: Annotated[tuple[Member, ...], MaxItems(MEMBERS_MAX)]

    def __post_init__(self) -> None:
        if not self.members:
            raise MembershipError("a membership needs at least one member")
        if len(self.members) > MEMBERS_MAX:
            raise MembershipError(f"{len(self.members)} members exceeds MEMBERS_MAX={MEMBERS_MAX}")
        if any(type(m) is not Member or m.weight <= 0 for m in self.members):
            raise MembershipError("every member is a Member with a positive weight")
        if len({m.identity for m in self.members}) != len(self.members):
            raise MembershipError("an identity appears twice in the membership")
        if sum(m.weight for m in self.members) > WEIGHT_TOTAL_MAX:
            raise MembershipError("the total weight does not fit a U64")

    @classmethod
    def from_weights(cls, weights: Mapping[bytes, int] | Iterable[tuple[bytes, int]]) -> Membership:
        """A membership (no credentials) from (identity, weight) pairs, in the order given."""
        pairs = weights.items() if isinstance(weights, Mapping) else weights
        return cls(tuple(Member(identity, weight) for identity, weight in pairs))

    @classmethod
    def roster(cls, members: Iterable[Member]) -> Membership:
        """A task roster's membership in its canonical order: members sorted by identity key. The
        ledger (from the credentials it included) and the committee build it the same way, so
        signer indices in a task's certificates mean the same member everywhere."""
        return cls(tuple(sorted(members, key=lambda m: m.identity)))

    def __len__(self) -> int:
        return len(self.members)

    @functools.cached_property
    def total_weight(self) -> int:
        """The sum of all members' weights."""
        return sum(m.weight for m in self.members)

    @functools.cached_property
    def _index(self) -> dict[bytes, int]:
        return {m.identity: i for i, m in enumerate(self.members)}

    def index_of(self, identity: bytes) -> int:
        """The member index of `identity`. Raises NotAMember if it is not a member."""
        index = self._index.get(identity)
        if index is None:
            raise NotAMember(f"{identity.hex()[:16]}... is not a member")
        return index

    def __contains__(self, identity: object) -> bool:
        return identity in self._index

    def is_quorum(self, weight: int) -> bool:
        """True if `weight` is more than two thirds of the total weight."""
        return 3 * weight > 2 * self.total_weight

    def is_blocking(self, weight: int) -> bool:
        """True if `weight` is more than one third of the total weight: such a set contains at least
        one honest member when byzantine weight is below a third, and it can block any quorum."""
        return 3 * weight > self.total_weight


@dataclasses.dataclass(frozen=True, slots=True)
class VoteBody(Record):
    """What a voter signs (under Domain.VOTE)."""

    MAX_BYTES = 160
    kind: VoteKind
    context: Hash
    view: U32
    value: Hash
    voter: PublicKeyBytes
    weight: U64


@dataclasses.dataclass(frozen=True, slots=True)
class UnverifiedVote(Record):
    """A signed vote as it arrives from the wire. Never count it: call `verify` first."""

    MAX_BYTES = 240
    kind: VoteKind
    context: Hash
    view: U32
    value: Hash
    voter: PublicKeyBytes
    weight: U64
    signature: SignatureBytes

    def body(self) -> VoteBody:
        """The signed part of the vote."""
        return VoteBody(self.kind, self.context, self.view, self.value, self.voter, self.weight)

    def check_signature(self, cache: SignatureCache | None = None) -> None:
        """Check the signature under the voter's key alone. Raises InvalidVoteSignature.

        `cache`, if given, holds votes already checked (it is a set the caller owns and bounds);
        a vote found there is not checked again and a vote that verifies is added."""
        if cache is not None and self in cache:
            return
        try:
            verify_signature(self.voter, Domain.VOTE, self.body().encode(), self.signature)
        except SignatureError as exc:
            raise InvalidVoteSignature(f"{self.kind.name} vote: {exc}") from None
        if cache is not None:
            cache.add(self)

    def verify(self, membership: Membership, *, cache: SignatureCache | None = None) -> Vote:
        """Check the vote against `membership`: the voter is a member, the weight is the member's,
        the signature verifies. Returns the verified `Vote`. `cache` as in `check_signature`.

        Raises NotAMember, WrongWeight or InvalidVoteSignature (all CertificateError): drop the vote
        and penalise the peer that sent it."""
        index = membership.index_of(self.voter)
        expected = membership.members[index].weight
        if self.weight != expected:
            raise WrongWeight(f"vote claims weight {self.weight}, the membership gives {expected}")
        self.check_signature(cache)
        return Vote(self, index)


@dataclasses.dataclass(frozen=True, slots=True)
class Vote:
    """A vote whose voter, weight and signature were checked against a membership. Only
    `UnverifiedVote.verify` and `sign_vote` make one."""

    record: UnverifiedVote
    member: int  # index in the membership it was verified against

    @property
    def kind(self) -> VoteKind:
        return self.record.kind

    @property
    def context(self) -> bytes:
        return self.record.context

    @property
    def view(self) -> int:
        return self.record.view

    @property
    def value(self) -> bytes:
        return self.record.value

    @property
    def voter(self) -> bytes:
        return self.record.voter

    @property
    def weight(self) -> int:
        return self.record.weight


def sign_vote(
    key: IdentityKey,
    membership: Membership,
    *,
    kind: VoteKind,
    context: bytes,
    view: int,
    value: bytes,
) -> Vote:
    """Sign a vote as the member holding `key`. Raises NotAMember if the key is not in the
    membership (local misuse: this node is not in the round)."""
    identity = key.public
    index = membership.index_of(identity)
    weight = membership.members[index].weight
    body = VoteBody(kind, context, view, value, identity, weight)
    signature = key.sign(Domain.VOTE, body.encode())
    return Vote(UnverifiedVote(kind, context, view, value, identity, weight, signature), index)


@dataclasses.dataclass(frozen=True, slots=True)
class Signer(Record):
    """One signature in a certificate: the member's index in the membership and its signature."""

    MAX_BYTES = 80
    member: U16
    signature: SignatureBytes


@dataclasses.dataclass(frozen=True, slots=True)
class QuorumCertificate(Record):
    """Signatures of more than two thirds of a membership's weight on one (kind, context, view,
    value). Check it with `verify_certificate`."""

    MAX_BYTES = 80 * MEMBERS_MAX + 128
    kind: VoteKind
    context: Hash
    view: U32
    value: Hash
    signers: Annotated[tuple[Signer, ...], MaxItems(MEMBERS_MAX)]

    def vote_of(self, signer: Signer, membership: Membership) -> UnverifiedVote:
        """The vote a signer cast, rebuilt from the membership (to re-check or to use as evidence).
        Raises MalformedCertificate if the signer's index is out of range."""
        if signer.member >= len(membership):
            raise MalformedCertificate(f"signer index {signer.member} is out of range")
        member = membership.members[signer.member]
        return UnverifiedVote(
            self.kind,
            self.context,
            self.view,
            self.value,
            member.identity,
            member.weight,
            signer.signature,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedCertificate:
    """A certificate whose every signature was checked against `membership` and whose signers hold a
    quorum. Only `verify_certificate` and `build_certificate` make one."""

    certificate: QuorumCertificate
    weight: int  # the signers' total weight
    signers: tuple[int, ...]  # member indices

    @property
    def kind(self) -> VoteKind:
        return self.certificate.kind

    @property
    def context(self) -> bytes:
        return self.certificate.context

    @property
    def view(self) -> int:
        return self.certificate.view

    @property
    def value(self) -> bytes:
        return self.certificate.value


def build_certificate(votes: Iterable[Vote], membership: Membership) -> VerifiedCertificate:
    """Assemble a certificate from verified votes that all agree on (kind, context, view, value);
    repeated votes of one member count once.

    Raises MalformedCertificate if the votes disagree or there are none, NoQuorum if their weight is
    not a quorum (local misuse: count before you build)."""
    by_member: dict[int, Vote] = {}
    head: tuple[VoteKind, bytes, int, bytes] | None = None
    for vote in votes:
        key = (vote.kind, vote.context, vote.view, vote.value)
        if head is None:
            head = key
        elif key != head:
            raise MalformedCertificate("a certificate's votes must agree on kind/round/view/value")
        if not (
            vote.member < len(membership) and membership.members[vote.member].identity == vote.voter
        ):
            raise NotAMember("a vote was verified against another membership")
        by_member[vote.member] = vote
    if head is None:
        raise MalformedCertificate("a certificate needs at least one vote")
    weight = sum(v.weight for v in by_member.values())
    if not membership.is_quorum(weight):
        raise NoQuorum(f"weight {weight} of {membership.total_weight} is not a quorum")
    indices = tuple(sorted(by_member))
    signers = tuple(Signer(i, by_member[i].record.signature) for i in indices)
    cert = QuorumCertificate(*head, signers=signers)
    return VerifiedCertificate(cert, weight, indices)


def verify_certificate(
    cert: QuorumCertificate,
    membership: Membership,
    *,
    kind: VoteKind | None = None,
    context: bytes | None = None,
    cache: SignatureCache | None = None,
) -> VerifiedCertificate:
    """Check a certificate offline against the membership it claims: signer indices strictly
    increasing and in range, every signature valid for the signer's identity and weight, and the
    signers' weight a quorum. If `kind` or `context` is given, the certificate must match it.
    `cache` (optional) skips signatures already checked, as in `UnverifiedVote.check_signature`.

    Raises MalformedCertificate, InvalidVoteSignature or NoQuorum (all CertificateError): reject the
    certificate (and whatever carries it); if a peer sent it, penalise the peer."""
    if kind is not None and cert.kind != kind:
        raise MalformedCertificate(f"expected a {kind.name} certificate, got {cert.kind.name}")
    if context is not None and cert.context != context:
        raise MalformedCertificate("the certificate is for another round")
    previous = -1
    weight = 0
    for signer in cert.signers:
        if signer.member <= previous:
            raise MalformedCertificate("signer indices must be strictly increasing")
        previous = signer.member
        vote = cert.vote_of(signer, membership)
        vote.check_signature(cache)
        weight += vote.weight
    if not membership.is_quorum(weight):
        raise NoQuorum(f"signers hold {weight} of {membership.total_weight}: not a quorum")
    return VerifiedCertificate(cert, weight, tuple(s.member for s in cert.signers))


@dataclasses.dataclass(frozen=True, slots=True)
class EquivocationEvidence(Record):
    """Two signed votes of one member in one round, view and conflict class, with different
    values. `first` encodes below `second`, so one pair of votes has one encoding
    (`make_evidence` orders them)."""

    MAX_BYTES = 512
    first: UnverifiedVote
    second: UnverifiedVote

    def __post_init__(self) -> None:
        if self.first.encode() >= self.second.encode():
            raise ValueError("evidence votes must be distinct and in canonical order")


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedEquivocation:
    """Evidence that `voter` signed two conflicting votes (kind, context, view)."""

    evidence: EquivocationEvidence
    voter: bytes
    kind: VoteKind
    context: bytes
    view: int


def make_evidence(a: UnverifiedVote, b: UnverifiedVote) -> EquivocationEvidence:
    """Pack two votes into evidence in canonical order (does not check them: `verify_evidence`)."""
    first, second = sorted((a, b), key=lambda v: v.encode())
    return EquivocationEvidence(first, second)


def conflicting(a: UnverifiedVote, b: UnverifiedVote) -> bool:
    """True if the two votes, once their signatures verify, prove equivocation: one voter, one
    round and view, one conflict class (`CONFLICT_CLASS`), two values."""
    cls = CONFLICT_CLASS.get(a.kind)
    return (
        cls is not None
        and cls == CONFLICT_CLASS.get(b.kind)
        and a.voter == b.voter
        and a.context == b.context
        and a.view == b.view
        and a.value != b.value
    )


def verify_evidence(
    evidence: EquivocationEvidence, membership: Membership | None = None
) -> VerifiedEquivocation:
    """Check equivocation evidence: the two votes conflict (`conflicting`) and both signatures
    verify under the voter's key. If `membership` is given, the voter must be one of its members.

    Raises InvalidEvidence (or NotAMember): reject the evidence; if a peer submitted it, penalise
    the peer (false evidence is itself misbehaviour)."""
    a, b = evidence.first, evidence.second
    if not conflicting(a, b):
        raise InvalidEvidence("the votes do not conflict (voter, round, view, kind or value)")
    if membership is not None:
        membership.index_of(a.voter)
    try:
        a.check_signature()
        b.check_signature()
    except InvalidVoteSignature as exc:
        raise InvalidEvidence(f"an evidence vote does not verify: {exc}") from None
    return VerifiedEquivocation(evidence, a.voter, a.kind, a.context, a.view)
