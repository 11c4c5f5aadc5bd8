"""A validator's mempool: signature-checked transactions waiting for a block (pure, bounded).

Entries are keyed by (signer, nonce): a signer's later transaction with the same nonce replaces the
earlier one (nodes re-sign a transaction when an earlier one of theirs became unnecessary, see
`outbox.py`). Candidates for a block come signer by signer (in the order signers first arrived),
each signer's nonces ascending from its account's next nonce without gaps, so the builder never
sees a nonce out of order. Entries leave when a block consumes their nonce, when the builder
rejects them, or after `MEMPOOL_TTL_BLOCKS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Final

from ledger.state import State
from ledger.tx import Transaction, VerifiedTransaction

# Entries in all: several full blocks of a busy chain (max_txs_per_block defaults to 4096); past
# it new transactions are refused ("busy") until blocks drain the pool.
MEMPOOL_TXS_MAX: Final = 20_000
# Nonces a signer may queue ahead of its account: a node has at most a few credentials,
# certificates and results in flight at once; 64 leaves room without letting one signer fill
# the pool.
NONCES_AHEAD_MAX: Final = 64
# A transaction no block took for this many blocks is dropped (its sender resends what it still
# needs): long enough to outlive a few view changes, short enough that stale entries go.
MEMPOOL_TTL_BLOCKS: Final = 30


@dataclasses.dataclass(slots=True)
class _Entry:
    tx: Transaction
    hash: bytes
    added_height: int


class Mempool:
    """The pending transactions of one validator (see the module docstring)."""

    __slots__ = ("_by_signer", "_count", "_max", "version")

    def __init__(self, max_txs: int = MEMPOOL_TXS_MAX) -> None:
        self._by_signer: dict[bytes, dict[int, _Entry]] = {}
        self._count = 0
        self._max = max_txs
        self.version = 0  # bumped on every change (a proposer rebuilds a stale candidate)

    def __len__(self) -> int:
        return self._count

    def add(self, vtx: VerifiedTransaction, state: State) -> str | None:
        """Add a signature-checked transaction. Returns None if it was added (or was already
        there), else a short reason it was refused: "unknown-account", "stale-nonce" (a race, no
        blame), "nonce-too-far", "busy" (the pool is full)."""
        tx = vtx.tx
        account = state.account(tx.signer)
        if account is None:
            return "unknown-account"
        if tx.nonce < account.nonce:
            return "stale-nonce"
        if tx.nonce >= account.nonce + NONCES_AHEAD_MAX:
            return "nonce-too-far"
        entries = self._by_signer.get(tx.signer)
        if entries is not None:
            old = entries.get(tx.nonce)
            if old is not None:
                if old.hash != vtx.hash:  # a replacement keeps its place in the queue
                    entries[tx.nonce] = _Entry(tx, vtx.hash, state.height)
                    self.version += 1
                return None
        if self._count >= self._max:
            return "busy"
        if entries is None:
            entries = self._by_signer[tx.signer] = {}
        entries[tx.nonce] = _Entry(tx, vtx.hash, state.height)
        self._count += 1
        self.version += 1
        return None

    def candidates(self, state: State) -> Iterator[Transaction]:
        """Transactions for the next block on top of `state`, in a valid nonce order."""
        for signer, entries in self._by_signer.items():
            account = state.account(signer)
            if account is None:
                continue
            nonce = account.nonce
            while nonce in entries:
                yield entries[nonce].tx
                nonce += 1

    def drop(self, txs: Iterable[Transaction]) -> None:
        """Forget these transactions (the builder rejected them)."""
        for tx in txs:
            entries = self._by_signer.get(tx.signer)
            if entries is None:
                continue
            entry = entries.get(tx.nonce)
            if entry is not None and entry.tx == tx:
                del entries[tx.nonce]
                self._count -= 1
                self.version += 1
            if not entries:
                del self._by_signer[tx.signer]

    def after_block(self, state: State) -> None:
        """Drop what the new tip consumed (nonces below each account's next nonce) and what
        waited longer than MEMPOOL_TTL_BLOCKS."""
        oldest = state.height - MEMPOOL_TTL_BLOCKS
        for signer in list(self._by_signer):
            entries = self._by_signer[signer]
            account = state.account(signer)
            floor = account.nonce if account is not None else 0
            for nonce in [n for n, e in entries.items() if n < floor or e.added_height < oldest]:
                del entries[nonce]
                self._count -= 1
                self.version += 1
            if not entries:
                del self._by_signer[signer]
