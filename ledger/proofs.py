"""Record proofs: show anyone, offline, that a record is in the finalised state of a chain.

A `RecordProof` carries the record (its state key and canonical encoding), the trie path from its
leaf to a state root, the header holding that root, and the header's commit certificate. Checking
it needs only the genesis (for the validator set and the chain's hash):

1. the header belongs to this chain (`header.chain == genesis hash`);
2. the commit certificate is a COMMIT quorum of the genesis validators for the header's height
   and hash (so the header is final);
3. the record decodes canonically as the type its key names;
4. the path leads from (key, digest of the record) to the header's state root.

Typical records: an operator's stake (`state.operator_key`), a task's result and report digest
(`state.task_key`), an integrity report (`state.measurement_key`), an account balance.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Final

from ledger.block import BlockHeader, verify_commit
from ledger.certificates import Membership, QuorumCertificate
from ledger.encoding import MaxLen, Record
from ledger.errors import DecodeError, LedgerError, ProofError
from ledger.genesis import Genesis
from ledger.state import State, Task, key_type, value_digest
from ledger.statetree import STATE_KEY_MAX, StatePath, StateProofError, compute_root

# The largest record is a Task or Measurement with a full roster (about 128 KiB).
RECORD_BYTES_MAX: Final = Task.MAX_BYTES
PROOF_BYTES_MAX: Final = (
    RECORD_BYTES_MAX + StatePath.MAX_BYTES + BlockHeader.MAX_BYTES + QuorumCertificate.MAX_BYTES
)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordProof(Record):
    """A record, its trie path, and the certified header whose state root the path leads to."""

    MAX_BYTES = PROOF_BYTES_MAX
    key: Annotated[bytes, MaxLen(STATE_KEY_MAX)]
    value: Annotated[bytes, MaxLen(RECORD_BYTES_MAX)]
    path: StatePath
    header: BlockHeader
    commit: QuorumCertificate


@dataclasses.dataclass(frozen=True, slots=True)
class ProvenRecord:
    """A record proven to be in the state after block `height` of the chain. Only
    `verify_proof` makes one."""

    key: bytes
    record: Record
    height: int
    block_hash: bytes
    time_ms: int


def make_proof(
    state: State, header: BlockHeader, commit: QuorumCertificate, key: bytes
) -> RecordProof:
    """A proof that `state` (the state after `header`'s block) holds the record under `key`.

    Raises KeyError if the state has no such record; LedgerError if `state` is not the state of
    `header` (local misuse: prove from the matching state)."""
    if state.state_root != header.state_root or state.height != header.height:
        raise LedgerError("the state is not the one this header commits to")
    record = state.entries[key]
    return RecordProof(key, record.encode(), state.tree.prove(key), header, commit)


@dataclasses.dataclass(frozen=True, slots=True)
class ChainAnchor:
    """What proof checking needs from a genesis, computed once (hashing a large genesis is not
    free): the chain's genesis hash and its validator set."""

    genesis_hash: bytes
    validators: Membership

    @classmethod
    def of(cls, genesis: Genesis) -> ChainAnchor:
        """The anchor of a genesis."""
        return cls(genesis.hash(), genesis.validator_membership())


def verify_proof(proof: RecordProof, chain: Genesis | ChainAnchor) -> ProvenRecord:
    """Check a proof offline against the genesis (see the module docstring for the steps). Pass
    a `ChainAnchor` when checking many proofs.

    Raises ProofError naming the failed step: the record is not proven; do not trust it."""
    anchor = chain if isinstance(chain, ChainAnchor) else ChainAnchor.of(chain)
    header = proof.header
    if header.chain != anchor.genesis_hash:
        raise ProofError("the header belongs to another chain (genesis hash differs)")
    try:
        verify_commit(header, proof.commit, anchor.validators)
    except LedgerError as exc:
        raise ProofError(f"the header is not final: {exc}") from None
    try:
        record = key_type(proof.key).decode(proof.value)
    except (ValueError, DecodeError) as exc:
        raise ProofError(f"the record does not decode: {exc}") from None
    try:
        root = compute_root(proof.key, value_digest(record), proof.path)
    except StateProofError as exc:
        raise ProofError(f"the state path is invalid: {exc}") from None
    if root != header.state_root:
        raise ProofError("the state path does not lead to the header's state root")
    return ProvenRecord(proof.key, record, header.height, header.hash(), header.time_ms)
