"""Merkle trees: the transactions root and the state trie (against a naive reference)."""

from __future__ import annotations

import random

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domains import Domain
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleProof,
    MerkleProofError,
    merkle_proof,
    merkle_root,
    verify_merkle_proof,
)
from ledger.statetree import (
    EMPTY_HASH,
    StatePath,
    StateProofError,
    StateTree,
    compute_root,
    state_leaf_hash,
    state_path,
)


def _items(n: int, seed: int = 0) -> list[bytes]:
    r = random.Random(seed)
    return [r.randbytes(32) for _ in range(n)]


# --- transactions root -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [*range(0, 18), 31, 32, 33, 100])
def test_every_leaf_of_every_size_proves(n: int) -> None:
    items = _items(n, n)
    root = merkle_root(items)
    assert (root == EMPTY_ROOT) == (n == 0)
    for i in range(n):
        proof = merkle_proof(items, i)
        verify_merkle_proof(root, items[i], proof)
        assert MerkleProof.decode(proof.encode()) == proof
        with pytest.raises(MerkleProofError):
            verify_merkle_proof(root, b"\x00" * 32, proof)
        if proof.siblings:
            bent = (b"\x00" * 32, *proof.siblings[1:])
            with pytest.raises(MerkleProofError):
                verify_merkle_proof(root, items[i], MerkleProof(i, n, bent))
            with pytest.raises(MerkleProofError):
                verify_merkle_proof(root, items[i], MerkleProof(i, n, proof.siblings[:-1]))
        with pytest.raises(MerkleProofError):
            verify_merkle_proof(root, items[i], MerkleProof(i, n, (*proof.siblings, root)))


def test_list_shape_is_committed() -> None:
    items = _items(5)
    roots = {merkle_root(items[:k]) for k in range(6)}
    assert len(roots) == 6
    # no duplication of the odd leaf: [a, b, c] and [a, b, c, c] differ
    assert merkle_root(items[:3]) != merkle_root([*items[:3], items[2]])
    assert merkle_root(items[:2]) != merkle_root(list(reversed(items[:2])))
    with pytest.raises(MerkleProofError):
        verify_merkle_proof(merkle_root(items), items[0], MerkleProof(9, 5, ()))


# --- state trie -----------------------------------------------------------------------------------


def reference_root(pairs: dict[bytes, bytes]) -> bytes:
    """The trie root written from the definition: recursive split on path bits, a lone leaf is
    its own subtree, an empty subtree hashes to zeros."""
    leaves = sorted((state_path(k), state_leaf_hash(k, v)) for k, v in pairs.items())

    def sub(items: list[tuple[int, bytes]], depth: int) -> bytes:
        if not items:
            return EMPTY_HASH
        if len(items) == 1:
            return items[0][1]
        left = [x for x in items if not (x[0] >> (255 - depth)) & 1]
        right = [x for x in items if (x[0] >> (255 - depth)) & 1]
        return blake3.blake3(
            Domain.STATE_NODE.value + sub(left, depth + 1) + sub(right, depth + 1)
        ).digest()

    return sub(leaves, 0)


KEYS = st.binary(min_size=1, max_size=40)
VALUES = st.binary(min_size=32, max_size=32)
UPDATES = st.lists(st.tuples(KEYS, st.one_of(st.none(), VALUES)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(UPDATES, min_size=1, max_size=5))
def test_trie_matches_the_reference_after_any_update_sequence(
    batches: list[list[tuple[bytes, bytes | None]]],
) -> None:
    tree = StateTree()
    model: dict[bytes, bytes] = {}
    for batch in batches:
        changes = dict(batch)
        before = tree.root_hash
        new = tree.update(changes)
        assert tree.root_hash == before  # persistent: the old tree is untouched
        tree = new
        for k, v in changes.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        assert tree.root_hash == reference_root(model)
        assert tree.root_hash == StateTree.from_items(model.items()).root_hash
    for k, v in model.items():
        path = tree.prove(k)
        assert compute_root(k, v, path) == tree.root_hash
        assert tree.value_digest(k) == v
        assert StatePath.decode(path.encode()) == path


def test_deleting_restores_the_previous_root_and_missing_keys_do_not_prove() -> None:
    base = {bytes([i]) * 3: bytes([i]) * 32 for i in range(40)}
    tree = StateTree.from_items(base.items())
    more = tree.update({b"new": b"\x01" * 32})
    assert more.root_hash != tree.root_hash
    assert more.update({b"new": None}).root_hash == tree.root_hash
    assert tree.update({b"absent": None}).root_hash == tree.root_hash
    with pytest.raises(KeyError):
        tree.prove(b"absent")
    assert StateTree().root_hash == EMPTY_HASH


def test_forged_state_paths_fail() -> None:
    pairs = {f"k{i}".encode(): bytes([i]) * 32 for i in range(50)}
    tree = StateTree.from_items(pairs.items())
    path = tree.prove(b"k7")
    root = tree.root_hash
    assert compute_root(b"k7", pairs[b"k7"], path) == root
    assert compute_root(b"k7", pairs[b"k8"], path) != root  # another value
    with pytest.raises(StateProofError):
        compute_root(b"k8", pairs[b"k7"], path)  # the path names another key
    lifted = StatePath(b"k7", path.siblings[:-1])  # claim the leaf sits higher
    assert compute_root(b"k7", pairs[b"k7"], lifted) != root
    sunk = StatePath(b"k7", (*path.siblings, EMPTY_HASH))  # or lower, under an empty sibling
    with pytest.raises(StateProofError):
        compute_root(b"k7", pairs[b"k7"], sunk)
