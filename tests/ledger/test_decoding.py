"""Fuzzed decoding of every wire record the ledger accepts from peers or files: malformed bytes
never raise anything but DecodeError, and valid bytes round-trip."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.block import Block, BlockHeader, CertifiedBlock
from ledger.certificates import QuorumCertificate
from ledger.devnet import DevChain
from ledger.encoding import Record
from ledger.errors import DecodeError, MalformedPayload
from ledger.genesis import Genesis
from ledger.proofs import RecordProof, make_proof
from ledger.state import KEY_TYPES, operator_key
from ledger.sync import SYNC_WAIT_MS_MAX, SyncRequest, SyncResponse
from ledger.tx import PAYLOAD_TYPES, PostTask, Transaction, Transfer, TxKind

TYPES: list[type[Record]] = [
    Transaction,
    Block,
    BlockHeader,
    CertifiedBlock,
    QuorumCertificate,
    RecordProof,
    SyncRequest,
    SyncResponse,
    Genesis,
    *PAYLOAD_TYPES.values(),
    *KEY_TYPES.values(),
]


@pytest.fixture(scope="module")
def samples(net: object) -> dict[type[Record], bytes]:
    ch = DevChain(net)  # type: ignore[arg-type]
    u = ch.net.users
    ch.extend([ch.sign(u[0], Transfer(u[1].public, 3)), ch.sign(u[1], PostTask(b"s", 9, 2))])
    cb = ch.extend([ch.sign(u[2], Transfer(u[3].public, 4))])
    key = operator_key(ch.net.operators[0].identity.public)
    proof = make_proof(ch.state, cb.block.header, cb.commit, key)
    out = {
        Transaction: cb.block.txs[0].encode(),
        Block: cb.block.encode(),
        BlockHeader: cb.block.header.encode(),
        CertifiedBlock: cb.encode(),
        QuorumCertificate: cb.commit.encode(),
        RecordProof: proof.encode(),
        SyncRequest: SyncRequest(1, 2).encode(),
        SyncResponse: SyncResponse(2, (cb,)).encode(),
        Genesis: ch.net.genesis.encode(),
    }
    for rec in ch.state.entries.values():
        out.setdefault(type(rec), rec.encode())
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), which=st.integers(0, len(TYPES) - 1))
def test_random_bytes_only_raise_decode_error(data: bytes, which: int) -> None:
    with contextlib.suppress(DecodeError):
        TYPES[which].decode(data)


def test_mutated_valid_bytes_only_raise_decode_error(samples: dict[type[Record], bytes]) -> None:
    r = random.Random(5)
    for tp, data in samples.items():
        assert tp.decode(data).encode() == data
        for _ in range(150):
            b = bytearray(data)
            for _ in range(r.randint(1, 3)):
                op = r.random() if b else 1.0
                i = r.randrange(len(b)) if b else 0
                if op < 0.6:
                    b[i] = r.randrange(256)
                elif op < 0.8:
                    del b[i]
                else:
                    b.insert(i, r.randrange(256))
            with contextlib.suppress(DecodeError):
                tp.decode(bytes(b))
        for cut in range(0, len(data), max(1, len(data) // 40)):
            with pytest.raises(DecodeError):
                tp.decode(data[:cut])
        with pytest.raises(DecodeError):
            tp.decode(data + b"\x00")


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(TxKind)), payload=st.binary(max_size=200))
def test_payload_decoding_raises_only_malformed_payload(kind: TxKind, payload: bytes) -> None:
    tx = Transaction(kind, b"\x01" * 32, 0, payload, b"\x00" * 64)
    with contextlib.suppress(MalformedPayload):
        tx.body()


def test_sync_request_bounds() -> None:
    with pytest.raises(ValueError, match="sync request"):
        SyncRequest(1, 0)
    with pytest.raises(DecodeError):
        SyncRequest.decode(b"\x93\x00\x01\x00")  # height 0
    with pytest.raises(DecodeError):
        SyncRequest.decode(b"\x93\x01\xcc\xff\x00")  # 255 blocks
    with pytest.raises(DecodeError, match="waits at most"):
        SyncRequest.decode(b"\x93\x01\x01\xcd\x13\x89")  # 5001 ms
    assert SyncRequest.decode(b"\x93\x01\x01\xcd\x13\x88") == SyncRequest(1, 1, SYNC_WAIT_MS_MAX)
