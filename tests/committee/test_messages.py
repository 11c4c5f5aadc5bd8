"""Wire messages: round trips, and arbitrary bytes only ever raise DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from committee.messages import (
    MESSAGE_BYTES_MAX,
    CertificateMessage,
    NewView,
    Proposal,
    RejectReason,
    VoteMessage,
    decode_message,
    encode_message,
    peek_subject,
)
from ledger.certificates import (
    NO_VALUE,
    Membership,
    VoteKind,
    build_certificate,
    sign_vote,
    task_round_id,
)
from ledger.errors import DecodeError
from tests.committee.cluster import TASK_ID, keys

KEYS = keys(4)
MEMBERSHIP = Membership.from_weights((k.public, 1) for k in KEYS)
CTX = task_round_id(TASK_ID, 0)


def samples() -> list[Proposal | VoteMessage | CertificateMessage | NewView]:
    votes = [
        sign_vote(k, MEMBERSHIP, kind=VoteKind.PREPARE, context=CTX, view=0, value=b"v" * 32)
        for k in KEYS[:3]
    ]
    cert = build_certificate(votes, MEMBERSHIP).certificate
    propose = sign_vote(
        KEYS[0], MEMBERSHIP, kind=VoteKind.PROPOSE, context=CTX, view=1, value=b"v" * 32
    )
    new_view = sign_vote(
        KEYS[1], MEMBERSHIP, kind=VoteKind.NEW_VIEW, context=CTX, view=1, value=NO_VALUE
    )
    return [
        Proposal(propose.record, cert, None, None),
        VoteMessage(votes[0].record),
        CertificateMessage(cert),
        NewView(new_view.record, cert, None, RejectReason.SILENT),
    ]


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_round_trip(message: Proposal | VoteMessage | CertificateMessage | NewView) -> None:
    data = encode_message(TASK_ID, message)
    assert peek_subject(data) == TASK_ID
    assert decode_message(data) == (TASK_ID, message)
    assert len(data) <= MESSAGE_BYTES_MAX
    with pytest.raises(DecodeError):
        decode_message(data + b"\x00")  # trailing bytes
    with pytest.raises(DecodeError):
        decode_message(bytes([9]) + data[1:])  # unknown tag


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        subject, message = decode_message(data)
    except DecodeError:
        return
    assert encode_message(subject, message) == data  # whatever decodes is canonical


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_messages_only_raise_decode_error(data: st.DataObject) -> None:
    wire = bytearray(encode_message(TASK_ID, data.draw(st.sampled_from(samples()))))
    position = data.draw(st.integers(0, len(wire) - 1))
    wire[position] = data.draw(st.integers(0, 255))
    try:
        subject, message = decode_message(bytes(wire))
    except DecodeError:
        return
    assert encode_message(subject, message) == bytes(wire)
