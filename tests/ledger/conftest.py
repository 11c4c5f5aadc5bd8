"""Shared fixtures of the ledger tests: a small devnet and helpers to drive it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from ledger.block import Block, BlockHeader
from ledger.devnet import DevChain, DevNet
from ledger.domains import Domain, digest
from ledger.fold import apply_block
from ledger.genesis import ChainParams
from ledger.merkle import merkle_root
from ledger.state import State
from ledger.tx import Transaction

# Short windows so lifecycle tests run in a few dozen blocks.
TEST_PARAMS = ChainParams(
    min_stake=1_000,
    tau_max=16,
    credential_window_blocks=2,
    # lifecycle tests land one or two credentials by hand whatever the task's tau; the minimum
    # roster weight has tests of its own (test_fold.py)
    min_roster_share_bps=0,
    task_timeout_blocks=12,
    max_attempts=2,
    dispute_window_blocks=5,
    unbonding_blocks=20,
    min_measurement_interval_blocks=3,
    measurement_timeout_blocks=6,
)
IMAGE = b"\x11" * 32


@pytest.fixture(scope="session")
def net() -> DevNet:
    return DevNet.create(validators=4, operators=5, users=4, params=TEST_PARAMS, images=[IMAGE])


@pytest.fixture
def chain(net: DevNet) -> DevChain:
    return DevChain(net)


def forced_block(ch: DevChain, txs: Iterable[Transaction], **header_changes: object) -> Block:
    """A block with the right header fields except the state root (zeros), holding `txs` even if
    they are invalid: to check that the fold rejects what the builder would have left out."""
    txs = tuple(txs)
    state = ch.state
    header = BlockHeader(
        chain=state.genesis_hash,
        height=state.height + 1,
        parent_hash=state.tip_hash,
        time_ms=state.tip_time_ms + 1000,
        proposer=ch.net.validators[0].public,
        tx_root=merkle_root([digest(Domain.TX, tx.encode()) for tx in txs]),
        state_root=bytes(32),
        parent_commit=ch.last_commit,
    )
    return Block(dataclasses.replace(header, **header_changes), txs)


def rejects(ch: DevChain, tx: Transaction, error: type[Exception]) -> Exception:
    """Assert that the builder leaves `tx` out with `error` and that a block holding it is
    rejected by the fold with the same error at its index."""
    built = ch.propose([tx])
    assert [type(e) for _, e in built.rejected] == [error], built.rejected
    assert built.block.txs == ()
    with pytest.raises(error) as info:
        apply_block(ch.state, forced_block(ch, [tx]))
    assert info.value.index == 0  # type: ignore[attr-defined]
    ch.forget_nonce(tx.signer)
    return info.value


def run_until(ch: DevChain, predicate: object, limit: int = 50) -> State:
    """Extend with empty blocks until `predicate(state)` holds."""
    for _ in range(limit):
        if predicate(ch.state):  # type: ignore[operator]
            return ch.state
        ch.extend([])
    raise AssertionError("the condition never held")
