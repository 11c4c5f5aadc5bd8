"""The block store: SQLite holding finalised blocks, their transactions and the derived state.

Durability guarantee: `append` returns only after SQLite committed the block, its transactions,
its commit certificate and the state it leads to in ONE transaction, in WAL mode with
`synchronous=FULL` (the WAL is fsynced at every commit). So a block reported finalised after
`append` returned survives a kill of the process at any instant (and an OS crash or power loss,
as far as the disk honours fsync); a block whose `append` did not return is either entirely there
or entirely absent, and the state on disk always matches the last block on disk.

On open the store checks everything it holds before serving it: every header's hash, height,
chain and parent link, every commit certificate against the genesis validator set, every block's
transactions root, and the stored state against the tip's state root. If the state does not
match (or is missing) it is rebuilt by folding every block again from genesis. Bytes that do not
verify raise CorruptStore: the node must not serve them (restore a backup or resync from peers).
Reads re-check what they return (the header hash and the transactions root), so a block that
rots on disk after open is refused rather than served.

This is the ledger's only I/O module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from ledger.block import Block, BlockHeader, CertifiedBlock, tx_root, verify_commit
from ledger.certificates import QuorumCertificate
from ledger.chain import accept_block
from ledger.domains import Domain, digest
from ledger.encoding import Record
from ledger.errors import (
    CorruptStore,
    DecodeError,
    LedgerError,
    StoreError,
)
from ledger.fold import apply_block
from ledger.genesis import Genesis
from ledger.state import State, genesis_state, key_type, value_digest
from ledger.statetree import StateTree
from ledger.tx import Transaction, VerifiedTxCache

SCHEMA_VERSION: Final = 1
# SQLite waits this long for a lock held by another connection to the same file (a reader
# process) before failing; writers are single per node.
BUSY_TIMEOUT_MS: Final = 10_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    commit_cert BLOB NOT NULL,
    tx_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    tx BLOB NOT NULL,
    PRIMARY KEY (height, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txs_by_hash ON txs (hash);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""


class Store:
    """A chain's blocks and state in one SQLite file. Open with `Store.open`; one writer per file,
    and one call at a time (it is not thread-safe; it may move between threads).

    `state` is the state after the tip; `height` the tip's height (0: only genesis)."""

    def __init__(self, conn: sqlite3.Connection, genesis: Genesis, state: State) -> None:
        self._conn = conn
        self.genesis = genesis
        self.state = state
        self.tip_commit: QuorumCertificate | None = None

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        genesis: Genesis,
        *,
        cache: VerifiedTxCache | None = None,
    ) -> Store:
        """Open (or create) the store at `path` for the chain of `genesis`, check every block and
        the state, rebuild the state if it does not match.

        Raises StoreError if the file belongs to another chain or schema, or cannot be opened
        (fix the path or delete the file); CorruptStore if stored bytes do not verify (restore a
        backup or resync from peers); GenesisError if the genesis is invalid."""
        try:
            # Any one thread at a time may use the store (trio.to_thread picks a worker thread
            # per call); the caller serialises calls.
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from None
        try:
            return cls._open(conn, genesis, cache)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _open(
        cls, conn: sqlite3.Connection, genesis: Genesis, cache: VerifiedTxCache | None
    ) -> Store:
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"the store's file system does not support WAL (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.executescript(_SCHEMA)
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise CorruptStore(f"the store is not a readable SQLite database: {exc}") from None
        genesis.check()
        g_bytes = genesis.encode()
        if not meta:
            state = genesis_state(genesis)
            with _transaction(conn):
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                conn.execute("INSERT INTO meta VALUES ('genesis', ?)", (g_bytes,))
                conn.execute("INSERT INTO meta VALUES ('state_height', 0)")
                conn.executemany(
                    "INSERT INTO state VALUES (?, ?)",
                    ((k, v.encode()) for k, v in state.entries.items()),
                )
            return cls(conn, genesis, state)
        if meta.get("schema") != SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema {meta.get('schema')!r}, this node reads {SCHEMA_VERSION}: "
                "resync into a new file"
            )
        if meta.get("genesis") != g_bytes:
            raise StoreError(
                "the store belongs to another chain (its genesis differs from the one given): "
                "point the node at the right genesis file or a new store path"
            )
        store = cls(conn, genesis, genesis_state(genesis))
        store._verify_and_load(cache)
        return store

    def _verify_and_load(self, cache: VerifiedTxCache | None) -> None:
        base = genesis_state(self.genesis)
        validators = base.validators
        heights = [h for (h,) in self._conn.execute("SELECT height FROM blocks ORDER BY height")]
        if heights != list(range(1, len(heights) + 1)):
            raise CorruptStore("the stored heights are not contiguous from 1")
        parent = base.genesis_hash
        header: BlockHeader | None = None
        commit: QuorumCertificate | None = None
        for height in heights:
            cb = self._read_block(height)
            header, commit = cb.block.header, cb.commit
            if header.chain != base.genesis_hash or header.parent_hash != parent:
                raise CorruptStore(f"block {height} does not link to block {height - 1}")
            try:
                verify_commit(header, commit, validators)
            except LedgerError as exc:
                raise CorruptStore(f"block {height}: {exc}") from None
            parent = header.hash()
        tip = len(heights)
        state = self._load_state(base, tip, header)
        if state is None:
            state = self._rebuild(base, heights, cache)
        self.state = state
        self.tip_commit = commit

    def _load_state(self, base: State, tip: int, header: BlockHeader | None) -> State | None:
        """The stored state if it is the tip's (its root matches the tip header), else None."""
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'state_height'").fetchone()
        if row is None or row[0] != tip:
            return None
        entries: dict[bytes, Record] = {}
        try:
            for key, value in self._conn.execute("SELECT key, value FROM state"):
                entries[bytes(key)] = key_type(bytes(key)).decode(bytes(value))
        except (DecodeError, ValueError):
            return None
        tree = StateTree.from_items((k, value_digest(v)) for k, v in entries.items())
        expected = base.state_root if header is None else header.state_root
        if tree.root_hash != expected:
            return None
        if header is None:
            return base
        return State(
            genesis_hash=base.genesis_hash,
            params=base.params,
            validators=base.validators,
            height=tip,
            tip_hash=header.hash(),
            tip_time_ms=header.time_ms,
            entries=entries,
            tree=tree,
        )

    def _rebuild(self, base: State, heights: list[int], cache: VerifiedTxCache | None) -> State:
        """Fold every stored block again and rewrite the state table."""
        state = base
        for height in heights:
            try:
                state = apply_block(state, self._read_block(height).block, cache=cache)
            except LedgerError as exc:
                raise CorruptStore(f"block {height} does not apply: {exc}") from None
        with _transaction(self._conn):
            self._conn.execute("DELETE FROM state")
            self._conn.executemany(
                "INSERT INTO state VALUES (?, ?)",
                ((k, v.encode()) for k, v in state.entries.items()),
            )
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('state_height', ?)", (state.height,)
            )
        return state

    # --- reading ---------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """The tip's height (0 when only genesis is there)."""
        return self.state.height

    def _read_block(self, height: int) -> CertifiedBlock:
        row = self._conn.execute(
            "SELECT hash, header, commit_cert, tx_count FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        if row is None:
            raise KeyError(height)
        stored_hash, header_bytes, commit_bytes, tx_count = row
        try:
            header = BlockHeader.decode(bytes(header_bytes))
            commit = QuorumCertificate.decode(bytes(commit_bytes))
            raw = [
                bytes(t)
                for (t,) in self._conn.execute(
                    "SELECT tx FROM txs WHERE height = ? ORDER BY idx", (height,)
                )
            ]
            txs = tuple(Transaction.decode(t) for t in raw)
        except DecodeError as exc:
            raise CorruptStore(f"block {height} does not decode: {exc}") from None
        if header.height != height or header.hash() != bytes(stored_hash):
            raise CorruptStore(f"block {height}: the header does not match its hash")
        if len(txs) != tx_count or tx_root([digest(Domain.TX, t) for t in raw]) != header.tx_root:
            raise CorruptStore(f"block {height}: the transactions do not match the header")
        return CertifiedBlock(Block(header, txs), commit)

    def block(self, height: int) -> CertifiedBlock:
        """The finalised block at `height` with its commit certificate, re-checked.

        Raises KeyError if there is no such block; CorruptStore if its bytes no longer verify
        (stop serving: resync)."""
        return self._read_block(height)

    def blocks(self, first: int, last: int) -> Iterator[CertifiedBlock]:
        """Blocks first..last (inclusive, clipped to the tip), re-checked as `block` does."""
        for height in range(max(first, 1), min(last, self.height) + 1):
            yield self._read_block(height)

    def header(self, height: int) -> BlockHeader:
        """The header at `height`. Raises KeyError or CorruptStore as `block`."""
        row = self._conn.execute(
            "SELECT hash, header FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        if row is None:
            raise KeyError(height)
        try:
            header = BlockHeader.decode(bytes(row[1]))
        except DecodeError as exc:
            raise CorruptStore(f"header {height} does not decode: {exc}") from None
        if header.hash() != bytes(row[0]):
            raise CorruptStore(f"header {height} does not match its hash")
        return header

    def transaction(self, tx_hash: bytes) -> tuple[int, Transaction] | None:
        """(height, transaction) of a finalised transaction, or None."""
        row = self._conn.execute(
            "SELECT height, tx FROM txs WHERE hash = ? LIMIT 1", (tx_hash,)
        ).fetchone()
        if row is None:
            return None
        raw = bytes(row[1])
        if digest(Domain.TX, raw) != tx_hash:
            raise CorruptStore("a stored transaction does not match its hash")
        return row[0], Transaction.decode(raw)

    # --- writing ---------------------------------------------------------------------------------

    def append(self, certified: CertifiedBlock, new_state: State) -> None:
        """Persist the next block and the state it leads to (`chain.accept_block`'s result), in one
        durable SQLite transaction. When this returns the block is final on disk.

        Raises StoreError if the block is not the next one or does not lead to `new_state`
        (local misuse: accept the block first), or if SQLite fails (disk full, I/O error: the
        block is not stored; stop the node and fix the disk)."""
        header = certified.block.header
        if header.height != self.height + 1 or header.parent_hash != self.state.tip_hash:
            raise StoreError(f"block {header.height} is not the next block after {self.height}")
        block_hash = header.hash()
        if new_state.height != header.height or new_state.tip_hash != block_hash:
            raise StoreError("new_state is not the state after this block")
        txs = [(tx.encode()) for tx in certified.block.txs]
        try:
            with _transaction(self._conn):
                self._conn.execute(
                    "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
                    (
                        header.height,
                        block_hash,
                        header.encode(),
                        certified.commit.encode(),
                        len(txs),
                    ),
                )
                self._conn.executemany(
                    "INSERT INTO txs VALUES (?, ?, ?, ?)",
                    ((header.height, i, digest(Domain.TX, raw), raw) for i, raw in enumerate(txs)),
                )
                entries = new_state.entries
                gone = [(k,) for k in new_state.changed if k not in entries]
                kept = [(k, entries[k].encode()) for k in new_state.changed if k in entries]
                self._conn.executemany("DELETE FROM state WHERE key = ?", gone)
                self._conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", kept)
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'state_height'", (header.height,)
                )
        except sqlite3.Error as exc:
            raise StoreError(f"block {header.height} was not stored: {exc}") from None
        self.state = new_state
        self.tip_commit = certified.commit

    def accept(self, certified: CertifiedBlock, *, cache: VerifiedTxCache | None = None) -> State:
        """Check and fold the next block (`chain.accept_block`), then `append` it. Returns the new
        state. Raises what `accept_block` raises (the block is refused and nothing is written)
        or StoreError."""
        new_state = accept_block(self.state, certified, cache=cache)
        self.append(certified, new_state)
        return new_state

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL into the main file)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the body raises."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
