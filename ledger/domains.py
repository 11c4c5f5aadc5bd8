"""The one registry of hash and signature domains.

Every hash and every signature in posi-peer is taken over `tag || payload` where `tag` comes from
`Domain`. Tags are ASCII names ending in NUL; no name contains NUL, so no tag is a prefix of another
(tests/ledger/test_domains.py proves it for the whole registry). A value hashed or signed under one
domain can therefore never be replayed as a value of another.

Add new domains here, never ad hoc elsewhere.
"""

from __future__ import annotations

import enum

import blake3

DIGEST_LEN = 32  # BLAKE3 default output; 128-bit collision resistance


class Domain(bytes, enum.Enum):
    """Domain tags. The value is the exact tag prefixed to the hashed or signed bytes."""

    # ledger
    BLOCK_HEADER = b"posi/block-header\x00"
    TX = b"posi/tx\x00"
    TX_SIG = b"posi/tx-sig\x00"
    MERKLE_LEAF = b"posi/merkle-leaf\x00"
    MERKLE_NODE = b"posi/merkle-node\x00"
    STATE_LEAF = b"posi/state-leaf\x00"
    GENESIS = b"posi/genesis\x00"
    TASK_ID = b"posi/task-id\x00"
    SYNC = b"posi/sync\x00"
    # committee / sortition
    SEED_TASK_COMMITTEE = b"posi/seed/task-committee\x00"
    SEED_BLOCK_COMMITTEE = b"posi/seed/block-committee\x00"
    SEED_SERVICE_MEASUREMENT = b"posi/seed/service-measurement\x00"
    PRIORITY = b"posi/priority\x00"
    VOTE = b"posi/vote\x00"
    CERTIFICATE = b"posi/certificate\x00"
    VERDICT = b"posi/verdict\x00"
    EVIDENCE = b"posi/evidence\x00"
    # executor
    JOB_SPEC = b"posi/job-spec\x00"
    SANDBOX_POLICY = b"posi/sandbox-policy\x00"
    INPUT = b"posi/input\x00"
    OUTPUT = b"posi/output\x00"
    REPORT = b"posi/report\x00"
    SOFTWARE = b"posi/software\x00"
    # p2p
    PEER_MESSAGE = b"posi/peer-message\x00"
    GOSSIP_ID = b"posi/gossip-id\x00"
    # executor (appended)
    REPORT_SIG = b"posi/report-sig\x00"
    TEE_REPORT_DATA = b"posi/tee-report-data\x00"
    # ledger: state commitment, services, proofs
    STATE_NODE = b"posi/state-node\x00"
    STATE_PATH = b"posi/state-path\x00"
    STATE_VALUE = b"posi/state-value\x00"
    SERVICE_ID = b"posi/service-id\x00"
    MEASUREMENT_ID = b"posi/measurement-id\x00"
    # committee (appended)
    ROUND_ID = b"posi/round-id\x00"
    CREDENTIAL = b"posi/credential\x00"


def digest(domain: Domain, data: bytes) -> bytes:
    """BLAKE3-256 of `domain || data`. `data` must already be unambiguous (a canonical encoding or
    a fixed-length value); use `digest_parts` to hash several variable-length values."""
    return blake3.blake3(domain.value + data).digest()


def digest_parts(domain: Domain, *parts: bytes) -> bytes:
    """BLAKE3-256 of `domain` followed by each part prefixed with its 4-byte big-endian length,
    so that (b"ab", b"c") and (b"a", b"bc") never collide."""
    h = blake3.blake3(domain.value)
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def hasher(domain: Domain) -> blake3.blake3:
    """An incremental BLAKE3 hasher already fed the domain tag, for large streamed payloads
    (job outputs, input files)."""
    return blake3.blake3(domain.value)
