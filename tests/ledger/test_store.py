"""The SQLite store: persistence, self-checks on open, state rebuild, refusing corrupt data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledger.devnet import DevChain, DevNet
from ledger.errors import CorruptStore, StoreError, WrongHeight
from ledger.genesis import ChainParams
from ledger.state import account_key
from ledger.store import Store
from ledger.tx import PostTask, Transfer


def grow(ch: DevChain, store: Store, blocks: int) -> None:
    u = ch.net.users
    for i in range(blocks):
        txs = [ch.sign(u[i % 4], Transfer(u[(i + 1) % 4].public, i + 1))]
        if i % 2:
            txs.append(ch.sign(u[(i + 2) % 4], PostTask(b"spec", 3, 2)))
        cb = ch.extend(txs)
        store.append(cb, ch.state)


@pytest.fixture
def filled(tmp_path: Path, net: DevNet) -> tuple[Path, DevChain]:
    path = tmp_path / "chain.db"
    ch = DevChain(net)
    with Store.open(path, net.genesis) as store:
        grow(ch, store, 8)
    return path, ch


def edit(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


def flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


def test_reopen_gives_back_blocks_and_state(filled: tuple[Path, DevChain], net: DevNet) -> None:
    path, ch = filled
    with Store.open(path, net.genesis) as store:
        assert store.height == 8
        assert store.state.state_root == ch.state.state_root
        assert store.state.entries == ch.state.entries
        assert store.tip_commit == ch.last_commit
        assert [cb for cb in store.blocks(1, 100)] == ch.blocks
        tx = ch.blocks[2].block.txs[0]
        assert store.transaction(tx.hash()) == (3, tx)
        assert store.transaction(b"\x00" * 32) is None
        grow(ch, store, 2)  # and it keeps appending after a reopen
    with Store.open(path, net.genesis) as store:
        assert store.height == 10


def test_a_store_of_another_chain_is_refused(filled: tuple[Path, DevChain]) -> None:
    path, _ = filled
    other = DevNet.create(validators=1, operators=0, users=1, params=ChainParams(min_stake=7))
    with pytest.raises(StoreError, match="another chain"):
        Store.open(path, other.genesis)


def test_missing_or_stale_state_is_rebuilt(filled: tuple[Path, DevChain], net: DevNet) -> None:
    path, ch = filled
    edit(path, "DELETE FROM state WHERE key = ?", account_key(net.users[0].public))
    with Store.open(path, net.genesis) as store:
        assert store.state.state_root == ch.state.state_root
    edit(path, "UPDATE meta SET value = 3 WHERE name = 'state_height'")
    with Store.open(path, net.genesis) as store:
        assert store.state.entries == ch.state.entries
    with Store.open(path, net.genesis) as store:  # the rebuild was written back
        assert store.state.entries == ch.state.entries


@pytest.mark.parametrize(
    ("table", "column", "where"),
    [
        ("blocks", "header", "height = 4"),
        ("blocks", "commit_cert", "height = 4"),
        ("txs", "tx", "height = 4 AND idx = 0"),
        ("blocks", "hash", "height = 8"),
    ],
)
def test_corrupt_bytes_are_refused_on_open(
    filled: tuple[Path, DevChain], net: DevNet, table: str, column: str, where: str
) -> None:
    path, _ = filled
    conn = sqlite3.connect(path)
    (blob,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
    conn.close()
    blob = bytes(blob)
    edit(path, f"UPDATE {table} SET {column} = ? WHERE {where}", flip(blob, len(blob) - 3))
    with pytest.raises(CorruptStore):
        Store.open(path, net.genesis)


def test_a_gap_in_heights_is_refused(filled: tuple[Path, DevChain], net: DevNet) -> None:
    path, _ = filled
    edit(path, "DELETE FROM blocks WHERE height = 5")
    with pytest.raises(CorruptStore, match="contiguous"):
        Store.open(path, net.genesis)


def test_blocks_that_rot_after_open_are_never_served(
    filled: tuple[Path, DevChain], net: DevNet
) -> None:
    path, _ = filled
    with Store.open(path, net.genesis) as store:
        conn = sqlite3.connect(path)
        (blob,) = conn.execute("SELECT tx FROM txs WHERE height = 6 AND idx = 0").fetchone()
        conn.close()
        edit(path, "UPDATE txs SET tx = ? WHERE height = 6 AND idx = 0", flip(bytes(blob), 10))
        with pytest.raises(CorruptStore):
            store.block(6)
        with pytest.raises(KeyError):
            store.block(99)


def test_invalid_or_misplaced_blocks_write_nothing(
    filled: tuple[Path, DevChain], net: DevNet
) -> None:
    path, ch = filled
    with Store.open(path, net.genesis) as store:
        old = ch.blocks[3]
        with pytest.raises(WrongHeight):
            store.accept(old)
        with pytest.raises(StoreError, match="not the next block"):
            store.append(old, ch.state)
        assert store.height == 8


def test_not_a_database(tmp_path: Path, net: DevNet) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptStore, match="not a readable SQLite"):
        Store.open(path, net.genesis)


def test_wal_and_full_sync_are_on(filled: tuple[Path, DevChain], net: DevNet) -> None:
    path, _ = filled
    with Store.open(path, net.genesis) as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
