"""The state commitment: a persistent, compressed binary Merkle trie over (key, value digest).

Why this structure (and not a sorted-leaf Merkle tree recomputed per block): a block changes a
few thousand keys out of a state that grows with every task, so the root must cost O(changed keys
x log n), not O(n). A binary trie keyed by `H(STATE_PATH, key)` gives that, plus short proofs
(about log2(n) + 1 sibling hashes). Two rules keep it small and canonical:

- a subtree holding exactly one leaf *is* that leaf (no chain of single-child nodes down to bit
  256), so depth is about log2(n) for uniformly spread paths;
- an empty subtree hashes to 32 zero bytes.

With those rules the root depends only on the set of (key, value digest) pairs, never on the order
of updates (a property test checks it). Leaves hash under `Domain.STATE_LEAF` and inner nodes
under `Domain.STATE_NODE`, so one can never pose as the other.

The trie is persistent: `update` returns a new tree that shares every untouched node with the old
one, so the ledger's fold stays a pure function (the old state keeps its tree) without copying.
Updates are applied in a batch (one per block): each touched node is rebuilt and hashed once.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import blake3

from ledger.domains import DIGEST_LEN, Domain, digest
from ledger.encoding import Hash, MaxItems, MaxLen, Record
from ledger.errors import LedgerError

PATH_BITS = 256  # paths are BLAKE3-256 digests
EMPTY_HASH = bytes(DIGEST_LEN)
# Longest state key: a one-byte kind and up to two 32-byte ids plus a counter (see ledger.state).
STATE_KEY_MAX = 96

_LEAF = Domain.STATE_LEAF.value
_NODE = Domain.STATE_NODE.value
_TOP = PATH_BITS - 1

# Nodes are plain tuples (fast to build and to tell apart):
#   leaf:   (hash, path, key, value_digest)
#   branch: (hash, left, right)         children are nodes or None (empty)
_Node = tuple[Any, ...]


class StateProofError(LedgerError):
    """A state proof does not lead to the claimed state root (or is malformed). Reject it: the
    record it claims is not proven."""


def state_path(key: bytes) -> int:
    """The 256-bit trie path of a state key."""
    return int.from_bytes(digest(Domain.STATE_PATH, key), "big")


def state_leaf_hash(key: bytes, value_digest: bytes) -> bytes:
    """The hash of the leaf binding `key` to `value_digest` (both length-prefixed)."""
    return blake3.blake3(
        _LEAF
        + len(key).to_bytes(4, "big")
        + key
        + len(value_digest).to_bytes(4, "big")
        + value_digest
    ).digest()


def _node_hash(left: _Node | None, right: _Node | None) -> bytes:
    lh = EMPTY_HASH if left is None else left[0]
    rh = EMPTY_HASH if right is None else right[0]
    return blake3.blake3(_NODE + lh + rh).digest()


def _branch(left: _Node | None, right: _Node | None) -> _Node | None:
    """Join two subtrees under one node, collapsing the forms the canonical shape forbids."""
    if left is None:
        if right is None or len(right) == 4:
            return right  # empty, or a lone leaf moves up
    elif right is None and len(left) == 4:
        return left
    return (_node_hash(left, right), left, right)


def _bit(path: int, depth: int) -> int:
    return (path >> (_TOP - depth)) & 1


def _build(depth: int, leaves: list[_Node]) -> _Node | None:
    """A subtree of the given leaves (sorted by path, all sharing the first `depth` bits)."""
    if not leaves:
        return None
    return _build_range(depth, leaves, [leaf[1] for leaf in leaves], 0, len(leaves))


def _build_range(
    depth: int, leaves: list[_Node], paths: list[int], lo: int, hi: int
) -> _Node | None:
    if hi - lo <= 1:
        return leaves[lo] if hi > lo else None
    prefix = paths[lo] >> (PATH_BITS - depth) if depth else 0
    mid = bisect.bisect_left(paths, ((prefix << 1) | 1) << (_TOP - depth), lo, hi)
    return _branch(
        _build_range(depth + 1, leaves, paths, lo, mid),
        _build_range(depth + 1, leaves, paths, mid, hi),
    )


def _merge(  # noqa: PLR0917 (recursive hot path: positional on purpose)
    node: _Node | None,
    depth: int,
    paths: list[int],
    news: list[_Node | None],
    lo: int,
    hi: int,
) -> _Node | None:
    """Apply the sorted updates `paths[lo:hi]` (new leaf, or None to delete) below `node`."""
    if node is None:
        return _build(depth, [n for n in news[lo:hi] if n is not None])
    if len(node) == 4:
        if hi - lo == 1 and paths[lo] == node[1]:  # the common case: one leaf rewritten
            return news[lo]
        leaves = [n for n in news[lo:hi] if n is not None]
        i = bisect.bisect_left(paths, node[1], lo, hi)
        if i == hi or paths[i] != node[1]:  # the existing leaf is not overridden: keep it
            j = bisect.bisect_left([leaf[1] for leaf in leaves], node[1])
            leaves.insert(j, node)
        return _build(depth, leaves)
    prefix = paths[lo] >> (PATH_BITS - depth) if depth else 0
    split_at = ((prefix << 1) | 1) << (_TOP - depth)
    mid = bisect.bisect_left(paths, split_at, lo, hi)
    left = _merge(node[1], depth + 1, paths, news, lo, mid) if mid > lo else node[1]
    right = _merge(node[2], depth + 1, paths, news, mid, hi) if hi > mid else node[2]
    if left is node[1] and right is node[2]:
        return node
    return _branch(left, right)


@dataclasses.dataclass(frozen=True, slots=True)
class StatePath(Record):
    """The trie path of one leaf: sibling hashes from the root down to the leaf's depth (empty
    subtrees are 32 zero bytes)."""

    MAX_BYTES = 16 * 1024
    key: Annotated[bytes, MaxLen(STATE_KEY_MAX)]
    siblings: Annotated[tuple[Hash, ...], MaxItems(PATH_BITS)]


def compute_root(key: bytes, value_digest: bytes, path: StatePath) -> bytes:
    """The root that `path` leads to from the leaf (key, value_digest).

    Raises StateProofError if the path is malformed (wrong key, or a shape the canonical trie
    never has); the caller must reject the proof."""
    if path.key != key:
        raise StateProofError("the path is for another key")
    if path.siblings and path.siblings[-1] == EMPTY_HASH:
        # A leaf whose sibling subtree is empty would have moved up: no canonical trie has it.
        raise StateProofError("non-canonical path: the deepest sibling is empty")
    p = state_path(key)
    h = state_leaf_hash(key, value_digest)
    for depth in range(len(path.siblings) - 1, -1, -1):
        sib = path.siblings[depth]
        h = blake3.blake3(_NODE + sib + h if _bit(p, depth) else _NODE + h + sib).digest()
    return h


class StateTree:
    """An immutable Merkle trie; `update` returns a new tree sharing unchanged nodes."""

    __slots__ = ("_root",)

    def __init__(self, root: _Node | None = None) -> None:
        self._root = root

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, bytes]]) -> StateTree:
        """A tree holding the given (key, value digest) pairs."""
        return cls().update(dict(items))

    @property
    def root_hash(self) -> bytes:
        """The 32-byte commitment to every (key, value digest) pair in the tree."""
        return EMPTY_HASH if self._root is None else self._root[0]

    def update(self, changes: Mapping[bytes, bytes | None]) -> StateTree:
        """A new tree with each key set to its value digest (None deletes the key; deleting an
        absent key is a no-op)."""
        if not changes:
            return self
        rows = sorted((state_path(k), k, v) for k, v in changes.items())
        paths = [r[0] for r in rows]
        news: list[_Node | None] = [
            None if v is None else (state_leaf_hash(k, v), p, k, v) for p, k, v in rows
        ]
        if len(set(paths)) != len(paths):  # two keys on one 256-bit path: BLAKE3 is broken
            raise LedgerError("two state keys share a trie path")
        return StateTree(_merge(self._root, 0, paths, news, 0, len(rows)))

    def _lookup(self, path: int, key: bytes) -> _Node | None:
        node, depth = self._root, 0
        while node is not None and len(node) == 3:
            node = node[2] if _bit(path, depth) else node[1]
            depth += 1
        if node is not None and node[2] == key:
            return node
        return None

    def value_digest(self, key: bytes) -> bytes | None:
        """The value digest stored under `key`, or None."""
        leaf = self._lookup(state_path(key), key)
        return None if leaf is None else leaf[3]

    def prove(self, key: bytes) -> StatePath:
        """The path of `key`'s leaf. Raises KeyError if the key is absent (local misuse: prove
        only what the state holds)."""
        path = state_path(key)
        node, depth = self._root, 0
        siblings: list[bytes] = []
        while node is not None and len(node) == 3:
            bit = _bit(path, depth)
            other = node[1] if bit else node[2]
            siblings.append(EMPTY_HASH if other is None else other[0])
            node = node[2] if bit else node[1]
            depth += 1
        if node is None or node[2] != key:
            raise KeyError(key)
        return StatePath(key=key, siblings=tuple(siblings))
