"""Votes, memberships, quorum certificates and equivocation evidence (ledger/certificates.py)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.certificates import (
    NO_VALUE,
    EquivocationEvidence,
    InvalidEvidence,
    InvalidVoteSignature,
    MalformedCertificate,
    Member,
    Membership,
    MembershipError,
    NoQuorum,
    NotAMember,
    QuorumCertificate,
    Signer,
    UnverifiedVote,
    Vote,
    VoteKind,
    WrongWeight,
    block_round_id,
    build_certificate,
    conflicting,
    make_evidence,
    result_round_id,
    sign_vote,
    task_round_id,
    verify_certificate,
    verify_evidence,
)
from ledger.errors import DecodeError, SignatureError
from ledger.signing import IdentityKey

KEYS = [IdentityKey(bytes([i + 1]) * 32) for i in range(8)]
CTX = task_round_id(b"t" * 32)
VALUE_A = b"a" * 32
VALUE_B = b"b" * 32


def commits(m: Membership, keys: list[IdentityKey], view: int = 2) -> list[Vote]:
    return [
        sign_vote(k, m, kind=VoteKind.COMMIT, context=CTX, view=view, value=VALUE_A) for k in keys
    ]


def membership(weights: list[int]) -> Membership:
    return Membership.from_weights((k.public, w) for k, w in zip(KEYS, weights, strict=False))


def test_quorum_is_more_than_two_thirds_in_integers() -> None:
    m = membership([1, 1, 1])
    assert not m.is_quorum(2)  # 2/3 exactly is not more than two thirds
    assert m.is_quorum(3)
    m = membership([3, 3, 3, 1])  # total 10: quorum needs 7
    assert not m.is_quorum(6)
    assert m.is_quorum(7)
    assert m.is_blocking(4)
    assert not m.is_blocking(3)


def test_membership_invariants() -> None:
    with pytest.raises(MembershipError):
        Membership(())
    with pytest.raises(MembershipError):
        Membership((Member(KEYS[0].public, 0),))
    with pytest.raises(MembershipError):
        Membership((Member(KEYS[0].public, 1), Member(KEYS[0].public, 2)))
    with pytest.raises(MembershipError):
        Membership((Member(KEYS[0].public, 1 << 63), Member(KEYS[1].public, 1 << 63)))


def test_membership_round_trip_and_decode_rejects_invalid() -> None:
    m = Membership(
        (Member(KEYS[0].public, 2, b"c" * 32), Member(KEYS[1].public, 5)),
    )
    assert Membership.decode(m.encode()) == m
    assert m.index_of(KEYS[1].public) == 1
    assert KEYS[1].public in m
    assert KEYS[2].public not in m
    with pytest.raises(NotAMember):
        m.index_of(KEYS[2].public)
    bad = dataclasses.replace(m.members[1], weight=0)
    # Build the wire form of an invalid membership by hand: decode must refuse it.
    import msgpack

    wire = msgpack.packb([[list(m.members[0]._to_wire("x")), bad._to_wire("y")]])
    with pytest.raises(DecodeError):
        Membership.decode(wire)


def test_vote_round_trip_and_verify() -> None:
    m = membership([1, 2, 3])
    vote = sign_vote(KEYS[1], m, kind=VoteKind.PREPARE, context=CTX, view=4, value=VALUE_A)
    assert vote.member == 1
    assert vote.weight == 2
    wire = UnverifiedVote.decode(vote.record.encode())
    verified = wire.verify(m)
    assert verified == vote


def test_vote_rejections() -> None:
    m = membership([1, 2, 3])
    vote = sign_vote(KEYS[1], m, kind=VoteKind.PREPARE, context=CTX, view=4, value=VALUE_A).record
    with pytest.raises(WrongWeight):
        dataclasses.replace(vote, weight=5).verify(m)
    with pytest.raises(InvalidVoteSignature):
        dataclasses.replace(vote, value=VALUE_B).verify(m)
    with pytest.raises(InvalidVoteSignature):
        dataclasses.replace(vote, view=5).verify(m)
    with pytest.raises(NotAMember):
        vote.verify(membership([1]))  # KEYS[1] is not in a one-member set
    with pytest.raises(NotAMember):
        sign_vote(KEYS[7], m, kind=VoteKind.PREPARE, context=CTX, view=0, value=VALUE_A)
    # A signature error is also a SignatureError, for callers that catch the ledger-wide type.
    assert issubclass(InvalidVoteSignature, SignatureError)


def test_round_ids_are_distinct() -> None:
    ids = {
        task_round_id(b"t" * 32, 0),
        task_round_id(b"t" * 32, 1),
        task_round_id(b"u" * 32, 0),
        block_round_id(0),
        block_round_id(1),
    }
    assert len(ids) == 5
    with pytest.raises(ValueError, match="32 bytes"):
        task_round_id(b"short")


def test_certificate_build_verify_round_trip() -> None:
    m = membership([1, 1, 1, 1])
    votes = commits(m, KEYS[:3])
    cert = build_certificate(reversed(votes), m)
    assert cert.signers == (0, 1, 2)
    assert cert.weight == 3
    decoded = QuorumCertificate.decode(cert.certificate.encode())
    again = verify_certificate(decoded, m, kind=VoteKind.COMMIT, context=CTX)
    assert again == cert
    with pytest.raises(MalformedCertificate):
        verify_certificate(decoded, m, kind=VoteKind.PREPARE)
    with pytest.raises(MalformedCertificate):
        verify_certificate(decoded, m, context=block_round_id(3))


def test_certificate_needs_a_quorum() -> None:
    m = membership([1, 1, 1, 1])
    votes = commits(m, KEYS[:2])
    with pytest.raises(NoQuorum):
        build_certificate(votes, m)
    cert = QuorumCertificate(
        VoteKind.COMMIT, CTX, 2, VALUE_A, tuple(Signer(v.member, v.record.signature) for v in votes)
    )
    with pytest.raises(NoQuorum):
        verify_certificate(cert, m)


def test_certificate_rejects_tampering() -> None:
    m = membership([1, 1, 1, 1])
    votes = commits(m, KEYS[:4])
    cert = build_certificate(votes, m).certificate
    with pytest.raises(InvalidVoteSignature):
        verify_certificate(dataclasses.replace(cert, value=VALUE_B), m)
    with pytest.raises(InvalidVoteSignature):
        verify_certificate(dataclasses.replace(cert, view=3), m)
    swapped = (cert.signers[1], cert.signers[0], *cert.signers[2:])
    with pytest.raises(MalformedCertificate):
        verify_certificate(dataclasses.replace(cert, signers=swapped), m)
    repeated = (cert.signers[0], cert.signers[0], cert.signers[1])
    with pytest.raises(MalformedCertificate):
        verify_certificate(dataclasses.replace(cert, signers=repeated), m)
    out_of_range = (*cert.signers[:3], Signer(9, cert.signers[3].signature))
    with pytest.raises(MalformedCertificate):
        verify_certificate(dataclasses.replace(cert, signers=out_of_range), m)
    # A signature moved to another member's slot does not verify for that member.
    moved = (cert.signers[0], cert.signers[1], Signer(2, cert.signers[3].signature))
    with pytest.raises(InvalidVoteSignature):
        verify_certificate(dataclasses.replace(cert, signers=moved), m)
    # Against a membership with different weights the same signatures do not verify.
    with pytest.raises(InvalidVoteSignature):
        verify_certificate(cert, membership([2, 1, 1, 1]))


def test_build_refuses_mixed_votes() -> None:
    m = membership([1, 1, 1])
    a = sign_vote(KEYS[0], m, kind=VoteKind.COMMIT, context=CTX, view=2, value=VALUE_A)
    b = sign_vote(KEYS[1], m, kind=VoteKind.COMMIT, context=CTX, view=2, value=VALUE_B)
    with pytest.raises(MalformedCertificate):
        build_certificate([a, b], m)
    with pytest.raises(MalformedCertificate):
        build_certificate([], m)


@settings(max_examples=30, deadline=None)
@given(
    weights=st.lists(st.integers(1, 50), min_size=1, max_size=8),
    chosen=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_certificate_valid_iff_quorum(weights: list[int], chosen: list[bool]) -> None:
    m = membership(weights)
    signers = [i for i in range(len(weights)) if chosen[i]]
    votes = [
        sign_vote(KEYS[i], m, kind=VoteKind.PREPARE, context=CTX, view=0, value=VALUE_A)
        for i in signers
    ]
    weight = sum(weights[i] for i in signers)
    sigs = tuple(Signer(v.member, v.record.signature) for v in votes)
    cert = QuorumCertificate(VoteKind.PREPARE, CTX, 0, VALUE_A, sigs)
    if 3 * weight > 2 * sum(weights):
        assert verify_certificate(cert, m).weight == weight
    else:
        with pytest.raises(NoQuorum):
            verify_certificate(cert, m)


def test_equivocation_evidence() -> None:
    m = membership([1, 1, 1])
    a = sign_vote(KEYS[0], m, kind=VoteKind.PREPARE, context=CTX, view=1, value=VALUE_A).record
    b = sign_vote(KEYS[0], m, kind=VoteKind.PREPARE, context=CTX, view=1, value=VALUE_B).record
    assert conflicting(a, b)
    ev = make_evidence(b, a)
    assert make_evidence(a, b) == ev
    decoded = EquivocationEvidence.decode(ev.encode())
    checked = verify_evidence(decoded, m)
    assert checked.voter == KEYS[0].public
    assert checked.view == 1
    with pytest.raises(NotAMember):
        verify_evidence(decoded, membership([1]).__class__.from_weights([(KEYS[5].public, 1)]))


def test_non_evidence_is_rejected() -> None:
    m = membership([1, 1, 1])

    def vote(key: IdentityKey, kind: VoteKind, view: int, value: bytes) -> UnverifiedVote:
        return sign_vote(key, m, kind=kind, context=CTX, view=view, value=value).record

    a = vote(KEYS[0], VoteKind.PREPARE, 1, VALUE_A)
    not_conflicts = [
        vote(KEYS[1], VoteKind.PREPARE, 1, VALUE_B),  # another voter
        vote(KEYS[0], VoteKind.PREPARE, 2, VALUE_B),  # another view
        vote(KEYS[0], VoteKind.COMMIT, 1, VALUE_B),  # another kind
    ]
    for b in not_conflicts:
        assert not conflicting(a, b)
        with pytest.raises(InvalidEvidence):
            verify_evidence(make_evidence(a, b))
    nv1 = vote(KEYS[0], VoteKind.NEW_VIEW, 3, NO_VALUE)
    nv2 = vote(KEYS[0], VoteKind.NEW_VIEW, 3, VALUE_A)
    assert not conflicting(nv1, nv2)  # NEW_VIEW is not slashable
    forged = vote(KEYS[0], VoteKind.PREPARE, 1, VALUE_B)
    forged = dataclasses.replace(forged, signature=b"\x01" * 64)
    with pytest.raises(InvalidEvidence):
        verify_evidence(make_evidence(a, forged))
    with pytest.raises(ValueError, match="canonical order"):
        EquivocationEvidence(a, a)


def test_commit_class_kinds_conflict_with_each_other() -> None:
    m = membership([1, 1, 1])
    ctx = result_round_id(b"t" * 32, 0)
    accept = sign_vote(
        KEYS[0], m, kind=VoteKind.RESULT_ACCEPT, context=ctx, view=0, value=VALUE_A
    ).record
    reject = sign_vote(
        KEYS[0], m, kind=VoteKind.RESULT_REJECT, context=ctx, view=0, value=VALUE_B
    ).record
    later = sign_vote(
        KEYS[0], m, kind=VoteKind.RESULT_REJECT, context=ctx, view=1, value=VALUE_B
    ).record
    assert conflicting(accept, reject)
    assert verify_evidence(make_evidence(accept, reject)).view == 0
    assert not conflicting(accept, later)  # another view: a lock may move a member on


def test_signature_cache_skips_only_known_votes() -> None:
    m = membership([1, 1, 1, 1])
    cache: set[UnverifiedVote] = set()
    votes = commits(m, KEYS[:3])
    cert = build_certificate(votes, m).certificate
    verify_certificate(cert, m, cache=cache)
    assert len(cache) == 3
    verify_certificate(cert, m, cache=cache)  # served from the cache
    forged = dataclasses.replace(votes[0].record, value=VALUE_B)
    with pytest.raises(InvalidVoteSignature):
        forged.verify(m, cache=cache)
    assert forged not in cache
