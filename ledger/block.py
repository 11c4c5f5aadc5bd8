"""Blocks, headers and the commit certificate that finalises a block.

A block at height h extends the block at h-1 (`parent_hash`; the genesis hash for h = 1) and
carries the parent's commit certificate (`parent_commit`; None only at h = 1), so a chain of
headers is self-certifying except for its last block, whose certificate travels beside it
(`CertifiedBlock`). `state_root` is the root of the state *after* applying this block, so a
header plus its commit certificate proves any record of that state.

A commit certificate for height h is a `QuorumCertificate` of kind COMMIT over the round
`block_round_id(h)` whose value is the block hash, signed by more than two thirds of the
validator set's weight.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Final

from ledger.certificates import (
    CertificateError,
    Membership,
    QuorumCertificate,
    VerifiedCertificate,
    VoteKind,
    block_round_id,
    verify_certificate,
)
from ledger.domains import Domain, digest
from ledger.encoding import U64, Hash, MaxItems, PublicKeyBytes, Record
from ledger.errors import InvalidCommit
from ledger.genesis import BLOCK_BYTES_MAX, MAX_TXS_PER_BLOCK
from ledger.merkle import merkle_root
from ledger.tx import Transaction

# A header carries one certificate of at most MEMBERS_MAX signers (about 82 KB) plus 150 bytes.
HEADER_BYTES_MAX: Final = 96 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class BlockHeader(Record):
    """What a block commits to; its hash is the block hash. `chain` is the genesis hash, so a
    header (and a proof built on it) belongs to exactly one chain."""

    MAX_BYTES = HEADER_BYTES_MAX
    chain: Hash
    height: U64
    parent_hash: Hash
    time_ms: U64
    proposer: PublicKeyBytes
    tx_root: Hash
    state_root: Hash
    parent_commit: QuorumCertificate | None

    def hash(self) -> bytes:
        """`digest(Domain.BLOCK_HEADER, encoding)`."""
        return digest(Domain.BLOCK_HEADER, self.encode())


@dataclasses.dataclass(frozen=True, slots=True)
class Block(Record):
    """A header and its transactions."""

    MAX_BYTES = BLOCK_BYTES_MAX + HEADER_BYTES_MAX
    header: BlockHeader
    txs: Annotated[tuple[Transaction, ...], MaxItems(MAX_TXS_PER_BLOCK)]

    def hash(self) -> bytes:
        """The block hash (the header's hash)."""
        return self.header.hash()


@dataclasses.dataclass(frozen=True, slots=True)
class CertifiedBlock(Record):
    """A block with its own commit certificate: what the store keeps and sync sends."""

    MAX_BYTES = Block.MAX_BYTES + QuorumCertificate.MAX_BYTES
    block: Block
    commit: QuorumCertificate


def tx_root(tx_hashes: list[bytes] | tuple[bytes, ...]) -> bytes:
    """The transactions root: the Merkle root over the transactions' hashes in block order."""
    return merkle_root(tx_hashes)


def verify_commit(
    header: BlockHeader, commit: QuorumCertificate, validators: Membership
) -> VerifiedCertificate:
    """Check that `commit` finalises `header`: a COMMIT certificate for `block_round_id(height)`
    whose value is the header's hash, with a quorum of `validators`.

    Raises InvalidCommit: reject the block (and penalise the peer that sent it)."""
    return verify_commit_of(header.height, header.hash(), commit, validators)


def verify_commit_of(
    height: int, block_hash: bytes, commit: QuorumCertificate, validators: Membership
) -> VerifiedCertificate:
    """Check that `commit` finalises the block `block_hash` at `height` (see `verify_commit`).

    Raises InvalidCommit: reject the certificate and whatever carries it."""
    try:
        verified = verify_certificate(
            commit, validators, kind=VoteKind.COMMIT, context=block_round_id(height)
        )
    except CertificateError as exc:
        raise InvalidCommit(f"commit certificate of block {height}: {exc}") from None
    if verified.value != block_hash:
        raise InvalidCommit(f"commit certificate of block {height} is for another block")
    return verified
