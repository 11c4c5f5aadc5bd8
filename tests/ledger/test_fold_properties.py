"""Property tests of the fold: random sequences of valid and invalid transactions, checked
against a small independent model of balances, nonces, stake and escrow refunds.

For every generated block: the builder keeps exactly the transactions the model says are valid
and rejects the others with the error type the model predicts; a block forced to hold an invalid
transaction after the valid prefix is rejected by the fold with that error at that index; after
the block, every invariant holds (`check_invariants`) and the state agrees with the model.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import errors as E
from ledger.block import CertifiedBlock
from ledger.chain import accept_block
from ledger.devnet import DEV_BALANCE, DEV_STAKE, DevChain, DevNet
from ledger.fold import apply_block
from ledger.state import check_invariants
from ledger.tx import (
    Bond,
    OperatorStatus,
    PostTask,
    RegisterOperator,
    SetStatus,
    Transaction,
    Transfer,
    Unbond,
    sign_transaction,
)
from tests.ledger.conftest import TEST_PARAMS, forced_block

P = TEST_PARAMS
AMOUNTS = st.sampled_from([0, 1, 700, 5_000, DEV_STAKE - 500, DEV_BALANCE // 2, DEV_BALANCE * 2])
# 0..3 users, 4..5 operators, 6 a key without an account (rarely)
PARTY = st.integers(0, 12).map(lambda i: 6 if i == 12 else i % 6)
OPERATOR = st.sampled_from([4, 4, 5, 5, 0, 6])
STATUSES = st.sampled_from(list(OperatorStatus))
ACTION = st.one_of(
    st.tuples(st.just("transfer"), PARTY, PARTY, AMOUNTS),
    st.tuples(st.just("bond"), OPERATOR, AMOUNTS),
    st.tuples(st.just("unbond"), OPERATOR, AMOUNTS),
    st.tuples(st.just("status"), OPERATOR, STATUSES),
    st.tuples(
        st.just("post"), PARTY, st.sampled_from([0, 1, 999, DEV_BALANCE * 2]), st.integers(0, 20)
    ),
    st.tuples(st.just("register"), PARTY, AMOUNTS),
    st.tuples(st.just("replay"), st.integers(0, 1000)),
    st.tuples(st.just("forge"), PARTY),
)
BLOCKS = st.lists(st.lists(ACTION, min_size=0, max_size=6), min_size=1, max_size=8)


@dataclasses.dataclass
class Op:
    stake: int
    unbonding: int
    status: OperatorStatus


class Model:
    """What the ledger should do, written independently of ledger.fold."""

    def __init__(self, net: DevNet) -> None:
        self.keys = [*net.users, net.operators[0].identity, net.operators[1].identity]
        self.stranger = net.validators[0]  # a key with no account
        self.balance: dict[bytes, int] = {k.public: DEV_BALANCE for k in self.keys}
        self.nonce: dict[bytes, int] = defaultdict(int)
        self.ops = {
            o.identity.public: Op(DEV_STAKE, 0, OperatorStatus.ACTIVE) for o in net.operators
        }
        self.refunds: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
        self.releases: dict[int, list[tuple[bytes, int]]] = defaultdict(list)

    def key(self, party: int):  # noqa: ANN201
        return self.stranger if party == 6 else self.keys[party]

    def start_block(self, height: int) -> None:
        for who, amount in self.refunds.pop(height, []):
            self.balance[who] += amount
        for who, amount in self.releases.pop(height, []):
            self.ops[who].unbonding -= amount
            self.balance[who] += amount

    def predict(self, action: tuple, height: int) -> type[Exception] | None:
        kind, who = action[0], self.key(action[1]).public if action[0] != "replay" else None
        if kind in ("replay",):
            return E.BadNonce
        if who not in self.balance:
            return E.BadSignature if kind == "forge" else E.UnknownAccount
        if kind == "forge":
            return E.BadSignature
        bal = self.balance[who]
        op = self.ops.get(who)
        if kind == "transfer":
            to, amount = self.key(action[2]).public, action[3]
            if amount == 0 or to == who:
                return E.InvalidAmount
            if bal < amount:
                return E.InsufficientBalance
            self.balance[who] -= amount
            self.balance[to] = self.balance.get(to, 0) + amount
        elif kind == "bond":
            amount = action[2]
            if amount == 0:
                return E.InvalidAmount
            if op is None:
                return E.UnknownOperator
            if bal < amount:
                return E.InsufficientBalance
            self.balance[who] -= amount
            op.stake += amount
        elif kind == "unbond":
            amount = action[2]
            if amount == 0:
                return E.InvalidAmount
            if op is None:
                return E.UnknownOperator
            if amount > op.stake:
                return E.InsufficientStake
            if op.status != OperatorStatus.INACTIVE and op.stake - amount < P.min_stake:
                return E.InsufficientStake
            op.stake -= amount
            op.unbonding += amount
            self.releases[height + P.unbonding_blocks].append((who, amount))
        elif kind == "status":
            new = action[2]
            if op is None:
                return E.UnknownOperator
            old = op.status
            if new == OperatorStatus.ACTIVE and old != OperatorStatus.ACTIVE:
                if op.stake < P.min_stake:
                    return E.StakeBelowMinimum
            elif not (
                (new == OperatorStatus.LEAVING and old == OperatorStatus.ACTIVE)
                or (new == OperatorStatus.INACTIVE and old == OperatorStatus.LEAVING)
            ):
                return E.InvalidStatusTransition
            op.status = new
        elif kind == "post":
            fee, tau = action[2], action[3]
            if fee < P.min_task_fee:
                return E.FeeTooLow
            if not 1 <= tau <= P.tau_max:
                return E.InvalidTau
            if bal < fee:
                return E.InsufficientBalance
            self.balance[who] -= fee
            # nobody sends credentials: the task fails when its window closes, fee refunded
            self.refunds[height + 2 + P.credential_window_blocks].append((who, fee))
        elif kind == "register":
            stake = action[2]
            if op is not None:
                return E.AlreadyRegistered
            if stake < P.min_stake:
                return E.StakeBelowMinimum
            if bal < stake:
                return E.InsufficientBalance
            self.balance[who] -= stake
            self.ops[who] = Op(stake, 0, OperatorStatus.ACTIVE)
        self.nonce[who] += 1
        return None


def make_tx(model: Model, ch: DevChain, action: tuple, history: list[Transaction]) -> Transaction:
    kind = action[0]
    if kind == "replay":
        if history:
            return history[action[1] % len(history)]
        action = ("forge", 0)
        kind = "forge"
    key = model.key(action[1])
    body = {
        "transfer": lambda: Transfer(model.key(action[2]).public, action[3]),
        "bond": lambda: Bond(action[2]),
        "unbond": lambda: Unbond(action[2]),
        "status": lambda: SetStatus(action[2]),
        "post": lambda: PostTask(b"spec", action[2], action[3]),
        "register": lambda: RegisterOperator(
            bytes(ch.net.operators[0].vrf_key.public_key), action[2], 4
        ),
        "forge": lambda: Transfer(model.key(0).public, 1),
    }[kind]()
    chain = b"\x07" * 32 if kind == "forge" else ch.chain
    return sign_transaction(key, chain, model.nonce[key.public], body)


@pytest.fixture(scope="module")
def prop_net() -> DevNet:
    return DevNet.create(validators=4, operators=2, users=4, params=TEST_PARAMS)


_FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=100, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(blocks=BLOCKS)
def test_random_transaction_sequences_match_the_model(prop_net: DevNet, blocks: list) -> None:
    check_sequence(prop_net, blocks)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(blocks=st.lists(st.lists(ACTION, max_size=12), min_size=1, max_size=30))
def test_long_random_transaction_sequences_match_the_model(prop_net: DevNet, blocks: list) -> None:
    check_sequence(prop_net, blocks)


def check_sequence(prop_net: DevNet, blocks: list) -> None:
    ch = DevChain(prop_net)
    model = Model(prop_net)
    history: list[Transaction] = []
    for actions in blocks:
        height = ch.state.height + 1
        model.start_block(height)
        txs, expected = [], []
        for action in actions:
            if action[0] == "replay" and not history:
                action = ("forge", 0)  # noqa: PLW2901
            tx = make_tx(model, ch, action, history)
            txs.append(tx)
            expected.append(model.predict(action, height))
        built = ch.propose(txs)
        valid = [tx for tx, err in zip(txs, expected, strict=True) if err is None]
        assert list(built.block.txs) == valid
        assert [type(e) for _, e in built.rejected] == [e for e in expected if e is not None]
        for i, (tx, err) in enumerate(zip(txs, expected, strict=True)):
            if err is not None:
                prefix = [t for t, e in zip(txs[:i], expected[:i], strict=True) if e is None]
                with pytest.raises(err) as info:
                    apply_block(
                        ch.state,
                        forced_block(ch, [*prefix, tx], time_ms=built.block.header.time_ms),
                    )
                assert info.value.index == len(prefix)
        certified = CertifiedBlock(built.block, ch.commit(built.block.header))
        ch.state = accept_block(ch.state, certified)
        ch.last_commit = certified.commit
        history.extend(valid)
        check_invariants(ch.state)
        for who, bal in model.balance.items():
            acct = ch.state.account(who)
            assert acct is not None
            assert acct.balance == bal
            assert acct.nonce == model.nonce[who]
        for who, op in model.ops.items():
            rec = ch.state.operator(who)
            assert (rec.stake, rec.unbonding, rec.status) == (op.stake, op.unbonding, op.status)
