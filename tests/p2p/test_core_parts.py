"""The pure parts under `PeerCore`: the mempool and the outbox (nonces of the node's own
transactions)."""

from __future__ import annotations

from ledger.devnet import DevChain, DevNet
from ledger.tx import Bond, Transfer, sign_transaction, verify_transaction
from p2p.mempool import MEMPOOL_TTL_BLOCKS, NONCES_AHEAD_MAX, Mempool
from p2p.outbox import RESEND_BLOCKS, Outbox, Wanted

NET = DevNet.create(validators=1, operators=1, users=3)
ALICE, BOB, CAROL = NET.users


def _tx(key: object, nonce: int, amount: int = 1) -> object:
    return sign_transaction(key, NET.genesis.hash(), nonce, Transfer(CAROL.public, amount))  # type: ignore[arg-type]


def _v(tx: object) -> object:
    return verify_transaction(tx, NET.genesis.hash())  # type: ignore[arg-type]


def test_mempool_orders_nonces_per_signer_and_replaces_by_nonce() -> None:
    chain = DevChain(NET)
    pool = Mempool()
    a1, a0, b0 = _tx(ALICE, 1), _tx(ALICE, 0), _tx(BOB, 0)
    for tx in (a1, b0, a0):
        assert pool.add(_v(tx), chain.state) is None  # type: ignore[arg-type]
    # Alice arrived first (with nonce 1): her nonces come in order, then Bob's.
    assert list(pool.candidates(chain.state)) == [a0, a1, b0]
    replacement = _tx(ALICE, 1, amount=2)
    assert pool.add(_v(replacement), chain.state) is None  # type: ignore[arg-type]
    assert list(pool.candidates(chain.state)) == [a0, replacement, b0]
    assert len(pool) == 3
    # A gap stops a signer's sequence.
    pool.drop([a0])
    assert list(pool.candidates(chain.state)) == [b0]


def test_mempool_refuses_stale_far_and_excess_transactions() -> None:
    chain = DevChain(NET)
    chain.extend([chain.sign(ALICE, Transfer(CAROL.public, 1))])
    pool = Mempool(max_txs=2)
    assert pool.add(_v(_tx(ALICE, 0)), chain.state) == "stale-nonce"  # type: ignore[arg-type]
    far = _tx(ALICE, 1 + NONCES_AHEAD_MAX)
    assert pool.add(_v(far), chain.state) == "nonce-too-far"  # type: ignore[arg-type]
    stranger = sign_transaction(NET.validators[0], NET.genesis.hash(), 0, Transfer(BOB.public, 1))
    assert pool.add(verify_transaction(stranger, NET.genesis.hash()), chain.state) == (
        "unknown-account"
    )
    assert pool.add(_v(_tx(ALICE, 1)), chain.state) is None  # type: ignore[arg-type]
    assert pool.add(_v(_tx(BOB, 0)), chain.state) is None  # type: ignore[arg-type]
    assert pool.add(_v(_tx(ALICE, 2)), chain.state) == "busy"  # type: ignore[arg-type]


def test_mempool_forgets_consumed_and_expired_transactions() -> None:
    chain = DevChain(NET)
    pool = Mempool()
    a0, b0 = _tx(ALICE, 0), _tx(BOB, 0)
    pool.add(_v(a0), chain.state)  # type: ignore[arg-type]
    pool.add(_v(b0), chain.state)  # type: ignore[arg-type]
    chain.extend([a0])  # type: ignore[list-item]
    pool.after_block(chain.state)
    assert list(pool.candidates(chain.state)) == [b0]
    for _ in range(MEMPOOL_TTL_BLOCKS + 1):
        chain.extend()
    pool.after_block(chain.state)
    assert len(pool) == 0


def _wanted(key: str, state_flag: dict[str, bool], pinned_tx: object = None) -> Wanted:
    return Wanted(
        key,
        Transfer(CAROL.public, 1),
        needed=lambda st: state_flag.get(key + "-needed", True),
        ready=lambda st: state_flag.get(key + "-ready", True),
        pinned=pinned_tx is not None,
        tx=pinned_tx,  # type: ignore[arg-type]
    )


def test_outbox_gives_consecutive_nonces_and_re_signs_after_a_gap() -> None:
    chain = DevChain(NET)
    box = Outbox(ALICE, chain.chain)
    flags: dict[str, bool] = {"b-ready": False}
    box.add(_wanted("a", flags))
    box.add(_wanted("b", flags))
    box.add(_wanted("c", flags))
    send, lost = box.reconcile(chain.state)
    assert [t.nonce for t in send] == [0, 1]  # "b" is not ready: it holds no nonce
    assert lost == []
    # Nothing changed: nothing is sent again before RESEND_BLOCKS.
    assert box.reconcile(chain.state) == ([], [])
    # "a" becomes unnecessary and "b" ready: "b" takes nonce 0, "c" keeps nonce 1.
    flags["a-needed"] = False
    flags["b-ready"] = True
    send, _ = box.reconcile(chain.state)
    assert [t.nonce for t in send] == [0]
    assert len(box) == 2
    for _ in range(RESEND_BLOCKS):
        chain.extend()
    send, _ = box.reconcile(chain.state)
    assert sorted(t.nonce for t in send) == [0, 1]  # not included for a while: sent again
    (c_tx,) = [t for t in send if t.nonce == 1]
    # A block includes nonce 0: its entry is done.
    first = min(send, key=lambda t: t.nonce)
    chain.extend([first])
    box.drop_included([first.hash()])
    assert len(box) == 1
    # "c" already holds the account's next nonce: resent as it is, not re-signed.
    assert box.reconcile(chain.state) == ([c_tx], [])


def test_outbox_reports_a_pinned_transaction_whose_nonce_was_taken() -> None:
    chain = DevChain(NET)
    box = Outbox(ALICE, chain.chain)
    flags: dict[str, bool] = {}
    tx = box.sign_pinned(Bond(1), chain.state)
    assert tx.nonce == 0
    box.add(_wanted("post", flags, pinned_tx=tx))
    assert box.sign_pinned(Bond(2), chain.state).nonce == 1  # pinned entries queue up
    # Another transaction of the same account takes nonce 0.
    chain.extend([chain.sign(ALICE, Transfer(BOB.public, 5))])
    _, lost = box.reconcile(chain.state)
    assert [w.key for w in lost] == ["post"]
    assert len(box) == 0
