"""Pinned bytes of the canonical encoding and the hash domains: a change to either is a change
of every id, signature and block on every chain, so it must show up as a failing test."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.domains import Domain, digest, digest_parts
from ledger.encoding import U64, Bytes32, Record
from ledger.state import Account, Event, EventKind
from ledger.tx import OperatorStatus, SetStatus, Transaction, Transfer, TxKind


def test_record_encodings_are_pinned() -> None:
    assert Account(5, 0).encode().hex() == "920500"
    assert Account(2**64 - 1, 300).encode().hex() == "92cfffffffffffffffffcd012c"
    assert SetStatus(OperatorStatus.LEAVING).encode().hex() == "9102"
    assert Transfer(b"\x01" * 32, 70_000).encode().hex() == "92c420" + "01" * 32 + "ce00011170"
    assert Event(EventKind.TASK_TIMEOUT, b"\x00" * 32, 0).encode().hex() == (
        "9303c420" + "00" * 32 + "00"
    )
    tx = Transaction(TxKind.BOND, b"\x02" * 32, 1, b"\x91\x07", b"\x03" * 64)
    assert tx.encode().hex() == ("9504c420" + "02" * 32 + "01c4029107c440" + "03" * 64)


def test_domain_digests_are_pinned() -> None:
    # BLAKE3-256 of b"posi/tx\x00"
    assert digest(Domain.TX, b"").hex() == (
        "1009c19f41400ad8c9546cb9c452c096be303dd3f76fea642c451be357f09292"
    )
    parts = digest_parts(Domain.TASK_ID, b"a", b"bc")
    assert parts == digest(Domain.TASK_ID, b"\x00\x00\x00\x01a\x00\x00\x00\x02bc")


def test_a_field_named_like_a_record_method_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Bad(Record):
        key: Bytes32
        digest: U64  # would silently default to Record.digest

    with pytest.raises(TypeError, match="shadow Record methods"):
        Bad(b"\x00" * 32, 1).encode()  # type: ignore[arg-type]
