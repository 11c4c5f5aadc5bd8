"""Crash safety: a writer process appends blocks and reports each finalised height; we SIGKILL it
at random points (after the N-th report, N from a seeded RNG, so the kill lands anywhere in the
next append), reopen the store, let it verify itself, and check that every reported block is
there, the chain is intact and the state matches its tip."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.fold import apply_block
from ledger.state import genesis_state
from ledger.store import Store
from tests.ledger.crash_writer import crash_net

REPO = Path(__file__).resolve().parents[2]


def crash_cycles(db: Path, cycles: int, seed: int) -> int:
    rng = random.Random(seed)
    net = crash_net()
    reported: set[int] = set()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for cycle in range(cycles):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ledger.crash_writer", str(db)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("open "), (first, proc.stderr.read() if proc.stderr else "")
            opened_at = int(first.split()[1])
            assert opened_at >= max(reported, default=0), "a reported block was lost"
            kill_after = rng.randint(0, 6)
            for _ in range(kill_after):
                line = proc.stdout.readline()
                assert line, proc.stderr.read() if proc.stderr else ""
                reported.add(int(line))
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if proc.stderr is not None:
                proc.stderr.close()
        with Store.open(db, net.genesis) as store:  # verifies hashes, certificates, state root
            assert store.height >= max(reported, default=0), f"cycle {cycle}: lost a block"
            for h in reported:
                assert store.block(h).block.header.height == h
    # the chain as a whole folds from genesis to exactly the stored state
    with Store.open(db, net.genesis) as store:
        state = genesis_state(net.genesis)
        for cb in store.blocks(1, store.height):
            state = apply_block(state, cb.block)
        assert state.state_root == store.state.state_root
        assert state.tip_hash == store.state.tip_hash
        return store.height


def test_killed_writer_loses_no_reported_block(tmp_path: Path) -> None:
    height = crash_cycles(tmp_path / "chain.db", cycles=6, seed=1)
    assert height > 0


@pytest.mark.slow
def test_killed_writer_loses_no_reported_block_many_times(tmp_path: Path) -> None:
    height = crash_cycles(tmp_path / "chain.db", cycles=120, seed=2)
    assert height > 100
