"""Binary Merkle tree over an ordered list of 32-byte hashes (a block's transactions root).

Leaves are hashed under `Domain.MERKLE_LEAF` and inner nodes under `Domain.MERKLE_NODE`, so a leaf
can never pose as an inner node. A level with an odd count promotes its last node unchanged (no
duplication: duplicating the last leaf would let two different lists share a root). The root of
the empty list is 32 zero bytes. The leaf count is committed through the shape of the tree, and a
proof carries the leaf index and the count so the verifier rebuilds the same shape.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import blake3

from ledger.domains import DIGEST_LEN, Domain
from ledger.encoding import U32, Hash, MaxItems, Record
from ledger.errors import LedgerError

EMPTY_ROOT = bytes(DIGEST_LEN)
# A block holds at most 2^16 transactions (ledger.block.MAX_TXS_PER_BLOCK is lower), so a path has
# at most 16 siblings; 32 leaves room for any list a U32 count describes.
MERKLE_PATH_MAX = 32

_LEAF = Domain.MERKLE_LEAF.value
_NODE = Domain.MERKLE_NODE.value


class MerkleProofError(LedgerError):
    """A Merkle inclusion proof does not lead to the expected root. Reject the proof (and the
    object it claims to include)."""


def leaf_hash(item: bytes) -> bytes:
    """The leaf hash of one 32-byte item."""
    return blake3.blake3(_LEAF + item).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return blake3.blake3(_NODE + left + right).digest()


def merkle_root(items: list[bytes] | tuple[bytes, ...]) -> bytes:
    """The root over `items` (each already a 32-byte hash), in order."""
    if not items:
        return EMPTY_ROOT
    level = [leaf_hash(x) for x in items]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@dataclasses.dataclass(frozen=True, slots=True)
class MerkleProof(Record):
    """Inclusion of the item at `index` in a list of `count` items: the siblings from the leaf up
    (promoted levels contribute no sibling)."""

    MAX_BYTES = 2048
    index: U32
    count: U32
    siblings: Annotated[tuple[Hash, ...], MaxItems(MERKLE_PATH_MAX)]


def merkle_proof(items: list[bytes] | tuple[bytes, ...], index: int) -> MerkleProof:
    """The proof that `items[index]` is in `merkle_root(items)`. Raises IndexError for an index
    outside the list (local misuse)."""
    if not 0 <= index < len(items):
        raise IndexError(f"leaf index {index} outside a list of {len(items)}")
    level = [leaf_hash(x) for x in items]
    siblings: list[bytes] = []
    i = index
    while len(level) > 1:
        sib = i ^ 1
        if sib < len(level):
            siblings.append(level[sib])
        nxt = [_node(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        i //= 2
    return MerkleProof(index=index, count=len(items), siblings=tuple(siblings))


def verify_merkle_proof(root: bytes, item: bytes, proof: MerkleProof) -> None:
    """Check that `item` sits at `proof.index` of a `proof.count`-item list with this `root`.

    Raises MerkleProofError if it does not; the caller must reject the claimed inclusion."""
    if not 0 <= proof.index < proof.count:
        raise MerkleProofError(f"index {proof.index} outside a list of {proof.count}")
    h = leaf_hash(item)
    i, width = proof.index, proof.count
    sibs = iter(proof.siblings)
    used = 0
    while width > 1:
        sib = i ^ 1
        if sib < width:
            s = next(sibs, None)
            if s is None:
                raise MerkleProofError("proof has too few siblings")
            used += 1
            h = _node(s, h) if i & 1 else _node(h, s)
        i //= 2
        width = (width + 1) // 2
    if used != len(proof.siblings):
        raise MerkleProofError("proof has too many siblings")
    if h != root:
        raise MerkleProofError("proof does not lead to the root")
