"""Golden blocks: a scripted devnet chain whose every byte is pinned.

Keys, VRF proofs (RFC 9381 is deterministic), Ed25519 signatures and the encoding are all
deterministic, so the script below yields the same genesis, blocks and state roots on every
machine. `golden/chain.json` holds them; the test rebuilds the chain and compares, and also folds
the pinned block bytes directly (so the fold, not only the builder, agrees). After an intended
format change, regenerate with `python -m tests.ledger.test_golden` and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ledger.block import CertifiedBlock
from ledger.chain import accept_block, round_seed
from ledger.devnet import DevChain, DevNet
from ledger.domains import Domain
from ledger.genesis import genesis_to_json
from ledger.state import genesis_state
from ledger.tx import (
    PostTask,
    RegisterImage,
    RegisterOperator,
    RoundKind,
    TaskCertificate,
    TaskResult,
    Transfer,
    Unbond,
    derived_id,
)
from tests.ledger.conftest import IMAGE, TEST_PARAMS

GOLDEN = Path(__file__).parent / "golden" / "chain.json"
REPORT = b"\x42" * 32


def golden_chain() -> DevChain:
    net = DevNet.create(validators=4, operators=4, users=3, params=TEST_PARAMS, images=[IMAGE])
    ch = DevChain(net)
    u, ops = net.users, net.operators
    ch.extend(
        [
            ch.sign(u[0], Transfer(u[1].public, 1_000)),
            ch.sign(u[2], RegisterOperator(bytes(ops[0].vrf_key.public_key), 2_000, 3)),
        ]
    )
    post = ch.sign(u[1], PostTask(b'{"image": "golden"}', 600, 3))
    ch.extend([post, ch.sign(u[0], RegisterImage(b"\x55" * 32, 9))])
    tid = derived_id(Domain.TASK_ID, post, ch.chain)
    ch.extend([ch.sign(ops[3].identity, Unbond(10))])
    seed = round_seed(ch.state, RoundKind.TASK, tid)
    assert seed is not None
    ch.extend([ch.credential(ops[i], RoundKind.TASK, tid, seed, weight=i + 1) for i in range(3)])
    ch.extend([])
    ch.extend([])
    executor = ch.state.task(tid).roster[0].identity
    ch.extend(
        [ch.sign(u[0], TaskCertificate(tid, 0, executor, ch.executor_certificate(tid, executor)))]
    )
    ch.extend([ch.sign(u[0], TaskResult(tid, 0, REPORT, ch.result_certificate(tid, REPORT)))])
    return ch


def record(ch: DevChain) -> dict[str, object]:
    return {
        "genesis_json": genesis_to_json(ch.net.genesis),
        "genesis_hash": ch.net.genesis.hash().hex(),
        "blocks": [
            {
                "height": cb.block.header.height,
                "hash": cb.block.hash().hex(),
                "state_root": cb.block.header.state_root.hex(),
                "tx_root": cb.block.header.tx_root.hex(),
                "certified_block": cb.encode().hex(),
            }
            for cb in ch.blocks
        ],
    }


def test_golden_chain_is_reproduced_byte_for_byte() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert record(golden_chain()) == golden


def test_golden_block_bytes_fold_to_the_pinned_roots() -> None:
    golden = json.loads(GOLDEN.read_text())
    from ledger.genesis import genesis_from_json

    genesis = genesis_from_json(golden["genesis_json"])
    assert genesis.hash().hex() == golden["genesis_hash"]
    state = genesis_state(genesis)
    for entry in golden["blocks"]:
        cb = CertifiedBlock.decode(bytes.fromhex(entry["certified_block"]))
        state = accept_block(state, cb)
        assert state.state_root.hex() == entry["state_root"]
        assert state.tip_hash.hex() == entry["hash"]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(record(golden_chain()), indent=1) + "\n")
    sys.exit(0)
