"""The state machine, rule by rule: each transaction's effect and each typed rejection."""

from __future__ import annotations

import dataclasses

import pytest

from ledger import errors as E
from ledger.certificates import (
    Membership,
    QuorumCertificate,
    Signer,
    VoteKind,
    block_round_id,
    make_evidence,
    result_round_id,
    sign_vote,
    task_round_id,
)
from ledger.chain import round_seed
from ledger.devnet import DEV_BALANCE, DEV_STAKE, DevChain, DevNet
from ledger.domains import Domain, digest
from ledger.fold import apply_block
from ledger.genesis import BPS, ChainParams
from ledger.signing import IdentityKey
from ledger.state import (
    MeasurementStatus,
    ServiceStatus,
    TaskStatus,
    check_invariants,
    measurement_id,
    task_seed,
)
from ledger.tx import (
    Bond,
    Credential,
    DeployService,
    IntegrityReport,
    OperatorStatus,
    PostTask,
    RegisterImage,
    RegisterOperator,
    RoundKind,
    SetStatus,
    SlashEvidence,
    TaskCertificate,
    TaskResult,
    Transaction,
    Transfer,
    TxKind,
    Unbond,
    UnsignedTx,
    UpdateOperator,
    VerifiedTxCache,
    derived_id,
    sign_transaction,
    verify_transaction,
)
from tests.ledger.conftest import IMAGE, TEST_PARAMS, forced_block, rejects, run_until

REPORT = b"\x42" * 32


def post(ch: DevChain, fee: int = 1000, tau: int = 3, user: int = 0) -> bytes:
    tx = ch.sign(ch.net.users[user], PostTask(b"job-spec", fee, tau))
    ch.extend([tx])
    return derived_id(Domain.TASK_ID, tx, ch.chain)


def staff(ch: DevChain, tid: bytes, members: range | list[int] = range(3)) -> None:
    """Put the given operators on the task's roster and close the credential window."""
    run_until(ch, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    seed = round_seed(ch.state, RoundKind.TASK, tid)
    assert seed is not None
    ch.extend([ch.credential(ch.net.operators[i], RoundKind.TASK, tid, seed) for i in members])
    run_until(ch, lambda s: s.task(tid).status != TaskStatus.DRAWING)


def assign(ch: DevChain, tid: bytes, attempt: int = 0) -> bytes:
    task = ch.state.task(tid)
    executor = task.roster[0].identity
    cert = ch.executor_certificate(tid, executor, attempt)
    ch.extend([ch.sign(ch.net.users[1], TaskCertificate(tid, attempt, executor, cert))])
    return executor


def balance(ch: DevChain, identity: bytes) -> int:
    acct = ch.state.account(identity)
    return 0 if acct is None else acct.balance


# --- signatures, nonces, accounts ------------------------------------------------------------


def test_transfer_moves_funds_and_bumps_the_nonce(chain: DevChain) -> None:
    a, b = chain.net.users[0], chain.net.users[1]
    chain.extend([chain.sign(a, Transfer(b.public, 7))])
    assert balance(chain, a.public) == DEV_BALANCE - 7
    assert balance(chain, b.public) == DEV_BALANCE + 7
    assert chain.state.account(a.public).nonce == 1
    check_invariants(chain.state)


def test_replayed_transaction_is_rejected(chain: DevChain) -> None:
    tx = chain.sign(chain.net.users[0], Transfer(chain.net.users[1].public, 7))
    chain.extend([tx])
    rejects(chain, tx, E.BadNonce)


def test_nonce_from_the_future_is_rejected(chain: DevChain) -> None:
    u = chain.net.users[0]
    tx = sign_transaction(u, chain.chain, 5, Transfer(chain.net.users[1].public, 1))
    rejects(chain, tx, E.BadNonce)


def test_two_transactions_of_one_signer_in_one_block(chain: DevChain) -> None:
    u, v = chain.net.users[0], chain.net.users[1].public
    chain.extend([chain.sign(u, Transfer(v, 1)), chain.sign(u, Transfer(v, 2))])
    assert chain.state.account(u.public).nonce == 2


def test_signature_for_another_chain_is_rejected(chain: DevChain) -> None:
    tx = sign_transaction(chain.net.users[0], b"\x01" * 32, 0, Transfer(b"\x02" * 32, 1))
    rejects(chain, tx, E.BadSignature)


def test_tampered_transaction_is_rejected(chain: DevChain) -> None:
    tx = chain.sign(chain.net.users[0], Transfer(chain.net.users[1].public, 1))
    forged = dataclasses.replace(tx, payload=Transfer(chain.net.users[2].public, 1).encode())
    rejects(chain, forged, E.BadSignature)


def test_malformed_payload_is_rejected(chain: DevChain) -> None:
    u = chain.net.users[0]
    payload = b"\x93\x01\x02\x03"  # an array of 3 ints: not a Transfer
    unsigned = UnsignedTx(chain.chain, TxKind.TRANSFER, u.public, 0, payload)
    tx = Transaction(
        TxKind.TRANSFER, u.public, 0, payload, u.sign(Domain.TX_SIG, unsigned.encode())
    )
    rejects(chain, tx, E.MalformedPayload)


def test_signer_without_account_is_rejected(chain: DevChain) -> None:
    stranger = IdentityKey(b"s" * 32)
    tx = sign_transaction(stranger, chain.chain, 0, Transfer(chain.net.users[0].public, 1))
    rejects(chain, tx, E.UnknownAccount)


@pytest.mark.parametrize(
    ("amount", "to_self", "error"),
    [
        (DEV_BALANCE + 1, False, E.InsufficientBalance),
        (0, False, E.InvalidAmount),
        (1, True, E.InvalidAmount),
    ],
)
def test_bad_transfers(chain: DevChain, amount: int, to_self: bool, error: type) -> None:
    u = chain.net.users[0]
    to = u.public if to_self else chain.net.users[1].public
    rejects(chain, chain.sign(u, Transfer(to, amount)), error)


# --- operators, stake, status --------------------------------------------------------------------


def _vrf_public(net: DevNet) -> bytes:
    return bytes(net.operators[0].vrf_key.public_key)


def test_register_operator_bonds_stake(chain: DevChain) -> None:
    u = chain.net.users[2]
    before = chain.state.globals.active_stake
    chain.extend([chain.sign(u, RegisterOperator(_vrf_public(chain.net), 5_000, 2))])
    op = chain.state.operator(u.public)
    assert (op.stake, op.status, op.capacity) == (5_000, OperatorStatus.ACTIVE, 2)
    assert balance(chain, u.public) == DEV_BALANCE - 5_000
    assert chain.state.globals.active_stake == before + 5_000
    check_invariants(chain.state)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (RegisterOperator(b"\x00" * 32, 5_000, 2), E.InvalidVrfKey),
        (RegisterOperator(None, 999, 2), E.StakeBelowMinimum),  # type: ignore[arg-type]
        (RegisterOperator(None, 5_000, 0), E.InvalidCapacity),  # type: ignore[arg-type]
        (RegisterOperator(None, DEV_BALANCE + 1, 2), E.InsufficientBalance),  # type: ignore[arg-type]
    ],
)
def test_bad_registrations(chain: DevChain, body: RegisterOperator, error: type) -> None:
    if body.vrf_key is None:
        body = dataclasses.replace(body, vrf_key=_vrf_public(chain.net))
    rejects(chain, chain.sign(chain.net.users[2], body), error)


def test_register_twice_and_update(chain: DevChain) -> None:
    op = chain.net.operators[0].identity
    rejects(
        chain,
        chain.sign(op, RegisterOperator(_vrf_public(chain.net), 5_000, 2)),
        E.AlreadyRegistered,
    )
    new_vrf = bytes(chain.net.operators[1].vrf_key.public_key)
    chain.extend([chain.sign(op, UpdateOperator(new_vrf, 9))])
    assert chain.state.operator(op.public).vrf_key == new_vrf
    assert chain.state.operator(op.public).capacity == 9
    rejects(chain, chain.sign(chain.net.users[0], UpdateOperator(new_vrf, 9)), E.UnknownOperator)


def test_bond_unbond_and_release_after_the_window(chain: DevChain) -> None:
    op = chain.net.operators[0].identity
    chain.extend([chain.sign(op, Bond(500))])
    assert chain.state.operator(op.public).stake == DEV_STAKE + 500
    chain.extend([chain.sign(op, Unbond(700))])
    unbonded_at = chain.state.height
    o = chain.state.operator(op.public)
    assert (o.stake, o.unbonding) == (DEV_STAKE - 200, 700)
    bal = balance(chain, op.public)
    run_until(chain, lambda s: s.height == unbonded_at + TEST_PARAMS.unbonding_blocks - 1)
    assert chain.state.operator(op.public).unbonding == 700  # not yet
    chain.extend([])
    assert chain.state.operator(op.public).unbonding == 0
    assert balance(chain, op.public) == bal + 700
    check_invariants(chain.state)


def test_unbond_limits(chain: DevChain) -> None:
    op = chain.net.operators[0].identity
    rejects(chain, chain.sign(op, Unbond(DEV_STAKE + 1)), E.InsufficientStake)
    rejects(chain, chain.sign(op, Unbond(DEV_STAKE - 999)), E.InsufficientStake)  # below min
    rejects(chain, chain.sign(op, Unbond(0)), E.InvalidAmount)
    rejects(chain, chain.sign(chain.net.users[0], Bond(5)), E.UnknownOperator)


def test_status_lifecycle_and_full_unbond(chain: DevChain) -> None:
    op = chain.net.operators[4].identity
    active = chain.state.globals.active_stake
    rejects(chain, chain.sign(op, SetStatus(OperatorStatus.INACTIVE)), E.InvalidStatusTransition)
    rejects(chain, chain.sign(op, SetStatus(OperatorStatus.ACTIVE)), E.InvalidStatusTransition)
    chain.extend([chain.sign(op, SetStatus(OperatorStatus.LEAVING))])
    assert chain.state.globals.active_stake == active - DEV_STAKE
    chain.extend([chain.sign(op, SetStatus(OperatorStatus.INACTIVE))])
    chain.extend([chain.sign(op, Unbond(DEV_STAKE))])  # inactive: everything may go
    assert chain.state.operator(op.public).stake == 0
    rejects(chain, chain.sign(op, SetStatus(OperatorStatus.ACTIVE)), E.StakeBelowMinimum)
    check_invariants(chain.state)


def test_leaving_completes_only_after_rounds_and_dispute_window_close(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid, [0, 1, 2])
    op = chain.net.operators[0].identity
    chain.extend([chain.sign(op, SetStatus(OperatorStatus.LEAVING))])
    rejects(chain, chain.sign(op, SetStatus(OperatorStatus.INACTIVE)), E.OperatorBusy)
    assign(chain, tid)
    cert = chain.result_certificate(tid, REPORT)
    chain.extend([chain.sign(chain.net.users[1], TaskResult(tid, 0, REPORT, cert))])
    o = chain.state.operator(op.public)
    assert o.open_rounds == 0
    assert o.dispute_until == chain.state.height + TEST_PARAMS.dispute_window_blocks
    rejects(chain, chain.sign(op, SetStatus(OperatorStatus.INACTIVE)), E.OperatorBusy)
    run_until(chain, lambda s: s.height + 1 >= o.dispute_until)
    chain.extend([chain.sign(op, SetStatus(OperatorStatus.INACTIVE))])
    assert chain.state.operator(op.public).status == OperatorStatus.INACTIVE


# --- tasks ----------------------------------------------------------------------------------------


def test_post_task_escrows_the_fee_and_the_seed_is_the_next_block_hash(chain: DevChain) -> None:
    tid = post(chain, fee=1234)
    posted = chain.state.height
    assert balance(chain, chain.net.users[0].public) == DEV_BALANCE - 1234
    task = chain.state.task(tid)
    assert (task.status, task.escrow, task.spec_digest) == (
        TaskStatus.SEEDING,
        1234,
        digest(Domain.JOB_SPEC, b"job-spec"),
    )
    chain.extend([])
    next_hash = chain.state.tip_hash  # the block after the one that included the task
    chain.extend([])
    task = chain.state.task(tid)
    assert task.status == TaskStatus.DRAWING
    assert task.seed == task_seed(tid, next_hash)
    assert chain.state.height == posted + 2
    check_invariants(chain.state)


@pytest.mark.parametrize(
    ("fee", "tau", "error"),
    [
        (0, 3, E.FeeTooLow),
        (10, 0, E.InvalidTau),
        (10, 17, E.InvalidTau),
        (DEV_BALANCE + 1, 3, E.InsufficientBalance),
    ],
)
def test_bad_task_posts(chain: DevChain, fee: int, tau: int, error: type) -> None:
    rejects(chain, chain.sign(chain.net.users[0], PostTask(b"x", fee, tau)), error)


def test_credential_rules(chain: DevChain) -> None:
    tid = post(chain)
    ops = chain.net.operators
    early = chain.credential(ops[0], RoundKind.TASK, tid, b"\x00" * 32)
    rejects(chain, early, E.WrongPhase)  # the seed is not known yet
    run_until(chain, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    seed = round_seed(chain.state, RoundKind.TASK, tid)
    rejects(
        chain, chain.credential(ops[0], RoundKind.TASK, tid, b"\x01" * 32), E.InvalidCredential
    )  # a proof on another seed
    rejects(
        chain, chain.credential(ops[0], RoundKind.TASK, tid, seed, weight=0), E.InvalidCredential
    )
    rejects(
        chain,
        chain.credential(ops[0], RoundKind.TASK, tid, seed, weight=DEV_STAKE + 1),
        E.InvalidCredential,
    )
    rejects(chain, chain.credential(ops[0], RoundKind.TASK, b"\x09" * 32, seed), E.UnknownTask)
    rejects(chain, chain.credential(ops[0], RoundKind.BLOCK, tid, seed), E.UnknownRound)
    chain.extend([chain.credential(ops[0], RoundKind.TASK, tid, seed, weight=3)])
    rejects(chain, chain.credential(ops[0], RoundKind.TASK, tid, seed), E.NotEligible)
    assert chain.state.operator(ops[0].identity.public).open_rounds == 1
    run_until(chain, lambda s: s.task(tid).status != TaskStatus.DRAWING)
    rejects(chain, chain.credential(ops[1], RoundKind.TASK, tid, seed), E.WrongPhase)
    task = chain.state.task(tid)
    assert task.status == TaskStatus.ELECTING
    assert [(m.identity, m.weight) for m in task.roster] == [(ops[0].identity.public, 3)]


def test_operator_at_capacity_is_not_eligible(chain: DevChain) -> None:
    op = chain.net.operators[0]
    chain.extend([chain.sign(op.identity, UpdateOperator(bytes(op.vrf_key.public_key), 1))])
    t1, t2 = post(chain), post(chain)
    run_until(chain, lambda s: round_seed(s, RoundKind.TASK, t2) is not None)
    s1 = round_seed(chain.state, RoundKind.TASK, t1)
    s2 = round_seed(chain.state, RoundKind.TASK, t2)
    chain.extend([chain.credential(op, RoundKind.TASK, t1, s1)])
    rejects(chain, chain.credential(op, RoundKind.TASK, t2, s2), E.NotEligible)


def test_task_without_roster_fails_and_refunds(chain: DevChain) -> None:
    tid = post(chain, fee=500)
    run_until(chain, lambda s: s.task(tid).status not in (TaskStatus.SEEDING, TaskStatus.DRAWING))
    task = chain.state.task(tid)
    assert (task.status, task.escrow) == (TaskStatus.FAILED, 0)
    assert balance(chain, chain.net.users[0].public) == DEV_BALANCE


def test_an_empty_window_draws_again_on_a_new_seed_until_half_the_task_life() -> None:
    # window 2, life 24: windows may close by posted + 12
    params = dataclasses.replace(TEST_PARAMS, task_timeout_blocks=24, unbonding_blocks=30)
    ch = DevChain(DevNet.create(validators=4, operators=5, users=4, params=params))
    tid = post(ch, fee=500)
    posted = ch.state.height
    windows = []  # (height the seed was computable at, seed, window end)
    while ch.state.task(tid).status in (TaskStatus.SEEDING, TaskStatus.DRAWING):
        seed = round_seed(ch.state, RoundKind.TASK, tid)
        if ch.state.task(tid).status == TaskStatus.SEEDING and seed is not None:
            at, block_hash = ch.state.height, ch.state.tip_hash
            ch.extend([])
            task = ch.state.task(tid)
            assert task.seed == seed == task_seed(tid, block_hash)
            windows.append((at - posted, task.draw_until - posted))
        else:
            ch.extend([])
    assert windows == [(1, 4), (5, 8), (9, 12)]  # each seed from the block after the last window
    task = ch.state.task(tid)
    assert (task.status, task.escrow, ch.state.height - posted) == (TaskStatus.FAILED, 0, 12)
    assert balance(ch, ch.net.users[0].public) == DEV_BALANCE


def test_a_redrawn_task_takes_credentials_on_its_new_seed_only() -> None:
    params = dataclasses.replace(TEST_PARAMS, task_timeout_blocks=24, unbonding_blocks=30)
    ch = DevChain(DevNet.create(validators=4, operators=5, users=4, params=params))
    tid = post(ch)
    run_until(ch, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    old = round_seed(ch.state, RoundKind.TASK, tid)
    run_until(ch, lambda s: s.task(tid).draw_until and s.task(tid).status == TaskStatus.SEEDING)
    run_until(ch, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    new = round_seed(ch.state, RoundKind.TASK, tid)
    assert new is not None
    assert new != old
    ops = ch.net.operators
    ch.extend([])
    rejects(ch, ch.credential(ops[0], RoundKind.TASK, tid, old), E.InvalidCredential)
    ch.extend([ch.credential(ops[1], RoundKind.TASK, tid, new, weight=2)])
    run_until(ch, lambda s: s.task(tid).status != TaskStatus.DRAWING)
    task = ch.state.task(tid)
    assert task.status == TaskStatus.ELECTING
    assert [(m.identity, m.weight) for m in task.roster] == [(ops[1].identity.public, 2)]
    check_invariants(ch.state)


def test_a_roster_below_the_minimum_weight_is_dropped_and_the_task_drawn_again() -> None:
    # tau 8 at half: the roster must weigh 4; weights 1 + 2 are dropped, 4 is kept
    params = dataclasses.replace(
        TEST_PARAMS, min_roster_share_bps=5_000, task_timeout_blocks=24, unbonding_blocks=30
    )
    ch = DevChain(DevNet.create(validators=4, operators=5, users=4, params=params))
    ops = ch.net.operators
    tid = post(ch, tau=8)
    run_until(ch, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    seed = round_seed(ch.state, RoundKind.TASK, tid)
    ch.extend([ch.credential(ops[0], RoundKind.TASK, tid, seed, weight=1)])
    ch.extend([ch.credential(ops[1], RoundKind.TASK, tid, seed, weight=2)])
    assert len(ch.state.task(tid).roster) == 2
    assert ch.state.operator(ops[0].identity.public).open_rounds == 1
    run_until(ch, lambda s: s.task(tid).status != TaskStatus.DRAWING)
    task = ch.state.task(tid)
    assert (task.status, task.roster, task.seed) == (TaskStatus.SEEDING, (), None)
    assert ch.state.operator(ops[0].identity.public).open_rounds == 0  # released
    run_until(ch, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    new = round_seed(ch.state, RoundKind.TASK, tid)
    ch.extend([ch.credential(ops[0], RoundKind.TASK, tid, new, weight=4)])  # lands again
    run_until(ch, lambda s: s.task(tid).status != TaskStatus.DRAWING)
    task = ch.state.task(tid)
    assert task.status == TaskStatus.ELECTING
    assert [(m.identity, m.weight) for m in task.roster] == [(ops[0].identity.public, 4)]
    check_invariants(ch.state)


def test_a_roster_below_the_minimum_weight_at_the_redraw_deadline_fails_the_task() -> None:
    params = dataclasses.replace(TEST_PARAMS, min_roster_share_bps=10_000)
    ch = DevChain(DevNet.create(validators=4, operators=5, users=4, params=params))
    op = ch.net.operators[0]
    tid = post(ch, fee=500, tau=3)
    run_until(ch, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    seed = round_seed(ch.state, RoundKind.TASK, tid)
    ch.extend([ch.credential(op, RoundKind.TASK, tid, seed, weight=2)])
    run_until(ch, lambda s: s.task(tid).status != TaskStatus.DRAWING)
    task = ch.state.task(tid)  # life 12: no room for a second window
    assert (task.status, task.escrow, len(task.roster)) == (TaskStatus.FAILED, 0, 1)
    assert balance(ch, ch.net.users[0].public) == DEV_BALANCE
    assert ch.state.operator(op.identity.public).open_rounds == 0
    check_invariants(ch.state)


@pytest.mark.parametrize(
    ("share_bps", "tau", "least"), [(0, 16, 1), (5_000, 16, 8), (5_000, 3, 2), (10_000, 7, 7)]
)
def test_the_minimum_roster_weight_is_a_share_of_tau_rounded_up(
    share_bps: int, tau: int, least: int
) -> None:
    assert ChainParams(min_roster_share_bps=share_bps).min_roster_weight(tau) == least


def test_accepted_result_pays_by_the_escrow_rule(chain: DevChain) -> None:
    ops = chain.net.operators
    tid = post(chain, fee=1001)
    run_until(chain, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    seed = round_seed(chain.state, RoundKind.TASK, tid)
    weights = {0: 1, 1: 2, 2: 4}
    chain.extend(
        [chain.credential(ops[i], RoundKind.TASK, tid, seed, weight=w) for i, w in weights.items()]
    )
    run_until(chain, lambda s: s.task(tid).status == TaskStatus.ELECTING)
    executor = assign(chain, tid)
    assert chain.state.task(tid).status == TaskStatus.EXECUTING
    before = {o.identity.public: balance(chain, o.identity.public) for o in ops}
    cert = chain.result_certificate(tid, REPORT)
    chain.extend([chain.sign(chain.net.users[1], TaskResult(tid, 0, REPORT, cert))])
    task = chain.state.task(tid)
    assert (task.status, task.escrow, task.report_digest) == (TaskStatus.COMPLETED, 0, REPORT)
    roster_weight = {m.identity: m.weight for m in task.roster}
    verifiers = {k: w for k, w in roster_weight.items() if k != executor}
    pool = 1001 - 1001 * TEST_PARAMS.executor_share_bps // BPS
    expected = {k: pool * w // sum(verifiers.values()) for k, w in verifiers.items()}
    expected[executor] = 1001 - sum(expected.values())
    paid = {k: balance(chain, k) - before[k] for k in roster_weight}
    assert paid == expected
    assert all(chain.state.operator(k).open_rounds == 0 for k in roster_weight)
    check_invariants(chain.state)


def test_task_certificate_rules(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid)
    task = chain.state.task(tid)
    member = task.roster[0].identity
    outsider = chain.net.operators[4].identity.public
    u = chain.net.users[1]
    good = chain.executor_certificate(tid, member)
    rejects(chain, chain.sign(u, TaskCertificate(tid, 0, outsider, good)), E.NotOnRoster)
    other = task.roster[1].identity
    rejects(chain, chain.sign(u, TaskCertificate(tid, 0, other, good)), E.InvalidRoundCertificate)
    rejects(chain, chain.sign(u, TaskCertificate(tid, 1, member, good)), E.WrongPhase)
    weak = QuorumCertificate(good.kind, good.context, good.view, good.value, good.signers[:1])
    rejects(chain, chain.sign(u, TaskCertificate(tid, 0, member, weak)), E.InvalidRoundCertificate)
    forged = dataclasses.replace(good, signers=(Signer(0, b"\x00" * 64), *good.signers[1:]))
    rejects(
        chain, chain.sign(u, TaskCertificate(tid, 0, member, forged)), E.InvalidRoundCertificate
    )
    rejects(chain, chain.sign(u, TaskResult(tid, 0, REPORT, good)), E.WrongPhase)
    chain.extend([chain.sign(u, TaskCertificate(tid, 0, member, good))])
    wrong_kind = chain.sign(u, TaskResult(tid, 0, REPORT, good))
    rejects(chain, wrong_kind, E.InvalidRoundCertificate)
    other_report = chain.result_certificate(tid, b"\x43" * 32)
    rejects(
        chain, chain.sign(u, TaskResult(tid, 0, REPORT, other_report)), E.InvalidRoundCertificate
    )


def test_rejected_results_slash_the_executor_then_fail_the_task(chain: DevChain) -> None:
    tid = post(chain, fee=800)
    staff(chain, tid)
    reporter = chain.net.users[2]
    for attempt in range(TEST_PARAMS.max_attempts):
        executor = assign(chain, tid, attempt)
        before = chain.state.operator(executor)
        rep_before = balance(chain, reporter.public)
        treasury = chain.state.globals.treasury
        cert = chain.result_certificate(tid, REPORT, attempt, accept=False)
        chain.extend([chain.sign(reporter, TaskResult(tid, attempt, REPORT, cert))])
        taken = (before.stake + before.unbonding) * TEST_PARAMS.slash_wrong_result_bps // BPS
        assert chain.state.operator(executor).stake == before.stake - taken
        cut = taken * TEST_PARAMS.reporter_share_bps // BPS
        assert balance(chain, reporter.public) == rep_before + cut
        assert chain.state.globals.treasury == treasury + taken - cut
    task = chain.state.task(tid)
    assert (task.status, task.escrow) == (TaskStatus.FAILED, 0)
    assert balance(chain, chain.net.users[0].public) == DEV_BALANCE  # refunded
    check_invariants(chain.state)


def test_timeout_expires_and_refunds(chain: DevChain) -> None:
    tid = post(chain, fee=900)
    staff(chain, tid)
    assign(chain, tid)
    run_until(chain, lambda s: s.task(tid).status == TaskStatus.EXPIRED)
    assert chain.state.task(tid).closed_height == chain.state.task(tid).posted_height + 12
    assert balance(chain, chain.net.users[0].public) == DEV_BALANCE
    assert all(
        chain.state.operator(m.identity).open_rounds == 0 for m in chain.state.task(tid).roster
    )


# --- slashing evidence ------------------------------------------------------------------------


def _equivocation(ch: DevChain, tid: bytes, member: int = 0) -> SlashEvidence:
    membership = ch.task_membership(tid)
    key = ch.roster_keys(membership)[member]
    ctx = task_round_id(tid, 0)
    a, b = (
        sign_vote(key, membership, kind=VoteKind.PREPARE, context=ctx, view=0, value=v).record
        for v in (b"\x01" * 32, b"\x02" * 32)
    )
    return SlashEvidence(RoundKind.TASK, tid, 0, make_evidence(a, b))


def test_equivocation_is_slashed_once_inside_the_window(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid)
    ev = _equivocation(chain, tid)
    offender = ev.evidence.first.voter
    before = chain.state.operator(offender).stake
    reporter = chain.net.users[3]
    chain.extend([chain.sign(reporter, ev)])
    taken = before * TEST_PARAMS.slash_equivocation_bps // BPS
    assert chain.state.operator(offender).stake == before - taken
    rejects(chain, chain.sign(reporter, ev), E.DuplicateEvidence)
    check_invariants(chain.state)


def test_slashing_reaches_unbonding_stake_and_the_release_pays_what_is_left(
    chain: DevChain,
) -> None:
    tid = post(chain)
    staff(chain, tid)
    ev = _equivocation(chain, tid)
    offender = ev.evidence.first.voter
    key = next(o.identity for o in chain.net.operators if o.identity.public == offender)
    chain.extend([chain.sign(key, Unbond(DEV_STAKE - 1_000))])
    unbonded_at = chain.state.height
    chain.extend([chain.sign(chain.net.users[3], ev)])
    taken = DEV_STAKE * TEST_PARAMS.slash_equivocation_bps // BPS
    op = chain.state.operator(offender)
    assert (op.stake, op.unbonding) == (0, DEV_STAKE - taken)  # stake first, then unbonding
    bal = balance(chain, offender)
    run_until(chain, lambda s: s.height == unbonded_at + TEST_PARAMS.unbonding_blocks)
    assert chain.state.operator(offender).unbonding == 0
    assert balance(chain, offender) - bal == DEV_STAKE - taken
    check_invariants(chain.state)


def test_evidence_after_the_dispute_window_is_refused(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid)
    ev = _equivocation(chain, tid)
    run_until(chain, lambda s: s.task(tid).status == TaskStatus.EXPIRED)
    closed = chain.state.task(tid).closed_height
    run_until(chain, lambda s: s.height == closed + TEST_PARAMS.dispute_window_blocks)
    rejects(chain, chain.sign(chain.net.users[3], ev), E.OutsideDisputeWindow)


def test_bad_evidence(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid)
    ev = _equivocation(chain, tid)
    u = chain.net.users[3]
    rejects(chain, chain.sign(u, dataclasses.replace(ev, number=1)), E.UnknownRound)
    other = post(chain)
    staff(chain, other)
    moved = dataclasses.replace(ev, subject=other)  # votes from another round
    rejects(chain, chain.sign(u, moved), E.InvalidSlashEvidence)
    same = make_evidence(
        ev.evidence.first,
        dataclasses.replace(ev.evidence.first, signature=ev.evidence.second.signature),
    )
    rejects(chain, chain.sign(u, dataclasses.replace(ev, evidence=same)), E.InvalidSlashEvidence)


def test_validator_equivocation_without_stake_is_nothing_to_slash(chain: DevChain) -> None:
    chain.extend([])
    key = chain.net.validators[0]
    m = chain.net.membership
    ctx = block_round_id(1)
    a, b = (
        sign_vote(key, m, kind=VoteKind.COMMIT, context=ctx, view=0, value=v).record
        for v in (b"\x01" * 32, b"\x02" * 32)
    )
    ev = SlashEvidence(RoundKind.BLOCK, bytes(32), 1, make_evidence(a, b))
    rejects(chain, chain.sign(chain.net.users[0], ev), E.NothingToSlash)
    rejects(
        chain, chain.sign(chain.net.users[0], dataclasses.replace(ev, number=5)), E.UnknownRound
    )


# --- images, services, integrity ------------------------------------------------------------


def test_images(chain: DevChain) -> None:
    u = chain.net.users[1]
    rejects(chain, chain.sign(u, RegisterImage(IMAGE, 5)), E.AlreadyRegistered)
    rejects(chain, chain.sign(u, RegisterImage(b"\x22" * 32, 0)), E.ImageNotValid)
    chain.extend([chain.sign(u, RegisterImage(b"\x22" * 32, 10))])
    assert chain.state.image(b"\x22" * 32).owner == u.public
    op = chain.net.operators[0].identity.public
    rejects(chain, chain.sign(u, DeployService(b"\x22" * 32, REPORT, op, 3)), E.ImageNotValid)
    rejects(chain, chain.sign(u, DeployService(b"\x33" * 32, REPORT, op, 3)), E.UnknownImage)
    rejects(chain, chain.sign(u, DeployService(IMAGE, REPORT, op, 2)), E.InvalidInterval)
    rejects(chain, chain.sign(u, DeployService(IMAGE, REPORT, u.public, 3)), E.UnknownOperator)


def _deploy(ch: DevChain) -> bytes:
    op = ch.net.operators[4].identity.public
    tx = ch.sign(ch.net.users[1], DeployService(IMAGE, REPORT, op, 3))
    ch.extend([tx])
    return derived_id(Domain.SERVICE_ID, tx, ch.chain)


def test_measurement_rounds_and_integrity_reports(chain: DevChain) -> None:
    sid = _deploy(chain)
    mid = measurement_id(sid, 0)
    run_until(chain, lambda s: s.measurement(mid) is not None)
    meas = chain.state.measurement(mid)
    assert meas.status == MeasurementStatus.DRAWING
    seed = round_seed(chain.state, RoundKind.MEASUREMENT, mid)
    assert seed == meas.seed
    chain.extend(
        [
            chain.credential(chain.net.operators[i], RoundKind.MEASUREMENT, mid, seed)
            for i in range(3)
        ]
    )
    run_until(chain, lambda s: s.measurement(mid).status == MeasurementStatus.MEASURING)
    u = chain.net.users[2]
    cert = chain.measurement_certificate(mid, REPORT)
    rejects(
        chain, chain.sign(u, IntegrityReport(mid, b"\x01" * 32, cert)), E.InvalidRoundCertificate
    )
    chain.extend([chain.sign(u, IntegrityReport(mid, REPORT, cert))])
    meas = chain.state.measurement(mid)
    assert (meas.status, meas.report_digest) == (MeasurementStatus.OK, REPORT)
    rejects(chain, chain.sign(u, IntegrityReport(mid, REPORT, cert)), E.WrongPhase)
    # the next rounds keep opening; one nobody joins expires
    mid1 = measurement_id(sid, 1)
    run_until(
        chain,
        lambda s: (
            s.measurement(mid1) is not None
            and s.measurement(mid1).status == MeasurementStatus.EXPIRED
        ),
    )
    check_invariants(chain.state)


def test_integrity_violation_slashes_the_service_operator(chain: DevChain) -> None:
    sid = _deploy(chain)
    mid = measurement_id(sid, 0)
    run_until(chain, lambda s: s.measurement(mid) is not None)
    seed = chain.state.measurement(mid).seed
    chain.extend(
        [
            chain.credential(chain.net.operators[i], RoundKind.MEASUREMENT, mid, seed)
            for i in range(3)
        ]
    )
    run_until(chain, lambda s: s.measurement(mid).status == MeasurementStatus.MEASURING)
    op = chain.net.operators[4].identity.public
    before = chain.state.operator(op).stake
    cert = chain.measurement_certificate(mid, REPORT, accept=False)
    chain.extend([chain.sign(chain.net.users[2], IntegrityReport(mid, REPORT, cert))])
    assert chain.state.measurement(mid).status == MeasurementStatus.VIOLATION
    assert chain.state.service(sid).status == ServiceStatus.VIOLATED
    taken = before * TEST_PARAMS.slash_violation_bps // BPS
    assert chain.state.operator(op).stake == before - taken
    check_invariants(chain.state)


# --- blocks -------------------------------------------------------------------------------------


def test_block_header_checks(chain: DevChain) -> None:
    chain.extend([])
    s = chain.state
    with pytest.raises(E.WrongHeight):
        apply_block(s, forced_block(chain, [], height=s.height + 2))
    with pytest.raises(E.WrongParent):
        apply_block(s, forced_block(chain, [], parent_hash=b"\x01" * 32))
    with pytest.raises(E.WrongParent):
        apply_block(s, forced_block(chain, [], chain=b"\x01" * 32))
    with pytest.raises(E.BadTime):
        apply_block(s, forced_block(chain, [], time_ms=s.tip_time_ms - 1))
    with pytest.raises(E.NotAValidator):
        apply_block(s, forced_block(chain, [], proposer=chain.net.users[0].public))
    with pytest.raises(E.TxRootMismatch):
        apply_block(s, forced_block(chain, [], tx_root=b"\x01" * 32))
    with pytest.raises(E.StateRootMismatch):
        apply_block(s, forced_block(chain, []))
    with pytest.raises(E.InvalidCommit):
        apply_block(s, forced_block(chain, [], parent_commit=None))
    bad = dataclasses.replace(chain.last_commit, value=b"\x01" * 32)
    with pytest.raises(E.InvalidCommit):
        apply_block(s, forced_block(chain, [], parent_commit=bad))


def test_too_many_transactions(net: DevNet) -> None:
    small = DevNet.create(
        validators=1,
        operators=0,
        users=2,
        params=dataclasses.replace(TEST_PARAMS, max_txs_per_block=2),
    )
    ch = DevChain(small)
    txs = [ch.sign(small.users[0], Transfer(small.users[1].public, 1)) for _ in range(3)]
    built = ch.propose(txs)
    assert len(built.block.txs) == 2
    with pytest.raises(E.TooManyTransactions):
        apply_block(ch.state, forced_block(ch, txs, proposer=small.validators[0].public))


def test_the_fold_is_pure_and_the_cache_changes_nothing(chain: DevChain) -> None:
    u = chain.net.users
    txs = [chain.sign(u[i % 4], Transfer(u[(i + 1) % 4].public, i + 1)) for i in range(12)]
    built = chain.propose(txs)
    state = chain.state
    snapshot = dict(state.entries)
    root = state.state_root
    plain = apply_block(state, built.block)
    cache = VerifiedTxCache()
    for tx in txs:
        cache.add(verify_transaction(tx, chain.chain))
    cached = apply_block(state, built.block, cache=cache)
    assert plain.state_root == cached.state_root == built.state.state_root
    assert dict(state.entries) == snapshot
    assert state.state_root == root
    assert plain.entries == cached.entries


def test_rejected_transaction_leaves_no_trace_in_a_proposal(chain: DevChain) -> None:
    u = chain.net.users[0]
    ok = chain.sign(u, Transfer(chain.net.users[1].public, 5))
    bad = sign_transaction(chain.net.users[1], chain.chain, 0, PostTask(b"x", DEV_BALANCE * 3, 3))
    built = chain.propose([bad, ok])
    assert built.block.txs == (ok,)
    assert [type(e) for _, e in built.rejected] == [E.InsufficientBalance]
    assert built.state.account(chain.net.users[1].public).nonce == 0


def test_non_operators_cannot_join_and_the_roster_is_sorted(chain: DevChain) -> None:
    tid = post(chain)
    run_until(chain, lambda s: round_seed(s, RoundKind.TASK, tid) is not None)
    seed = round_seed(chain.state, RoundKind.TASK, tid)
    cred = Credential(RoundKind.TASK, tid, b"\x00" * 80, 1)
    rejects(chain, chain.sign(chain.net.users[0], cred), E.UnknownOperator)
    ops = chain.net.operators
    chain.extend([chain.credential(ops[i], RoundKind.TASK, tid, seed) for i in (3, 1, 0)])
    roster = chain.state.task(tid).roster
    assert [m.identity for m in roster] == sorted(m.identity for m in roster)
    assert chain.state.task_membership(tid) == Membership.roster(roster)
    credential_txs = {tx.hash() for tx in chain.blocks[-1].block.txs}
    assert {m.credential for m in roster} == credential_txs


def test_a_minting_bug_is_caught_by_the_supply_check(
    chain: DevChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger import fold

    def mint(c: fold._Ctx, tx: Transaction, body: Transfer) -> None:
        c.credit(body.to, body.amount)  # forgets to debit the sender

    monkeypatch.setitem(fold._HANDLERS, TxKind.TRANSFER, mint)
    with pytest.raises(E.InvariantViolation, match="money supply"):
        chain.propose([chain.sign(chain.net.users[0], Transfer(chain.net.users[1].public, 5))])


def test_result_certificates_follow_the_committee_rounds(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid)
    executor = assign(chain, tid)
    m = chain.task_membership(tid)
    u = chain.net.users[1]
    # the executor agreement's context is not the result agreement's
    wrong_round = chain.round_certificate(
        m, kind=VoteKind.RESULT_ACCEPT, context=task_round_id(tid, 0), view=0, value=REPORT
    )
    rejects(
        chain, chain.sign(u, TaskResult(tid, 0, REPORT, wrong_round)), E.InvalidRoundCertificate
    )
    other = next(x.identity for x in chain.state.task(tid).roster if x.identity != executor)
    wrong_executor = chain.round_certificate(
        m, kind=VoteKind.RESULT_REJECT, context=result_round_id(tid, 0), view=0, value=other
    )
    rejects(
        chain, chain.sign(u, TaskResult(tid, 0, REPORT, wrong_executor)), E.InvalidRoundCertificate
    )
    late = chain.result_certificate(tid, REPORT, view=3)  # decided after three view changes
    chain.extend([chain.sign(u, TaskResult(tid, 0, REPORT, late))])
    assert chain.state.task(tid).status == TaskStatus.COMPLETED


def test_equivocation_in_a_result_agreement_is_slashable(chain: DevChain) -> None:
    tid = post(chain)
    staff(chain, tid)
    m = chain.task_membership(tid)
    key = chain.roster_keys(m)[1]
    ctx = result_round_id(tid, 0)
    a = sign_vote(key, m, kind=VoteKind.RESULT_ACCEPT, context=ctx, view=0, value=REPORT).record
    b = sign_vote(key, m, kind=VoteKind.RESULT_REJECT, context=ctx, view=0, value=b"\x07" * 32)
    ev = SlashEvidence(RoundKind.TASK, tid, 0, make_evidence(a, b.record))
    before = chain.state.operator(key.public).stake
    chain.extend([chain.sign(chain.net.users[3], ev)])
    assert chain.state.operator(key.public).stake < before
    assert chain.state.operator(key.public).stake_height == chain.state.height


def test_stake_height_tracks_stake_changes(chain: DevChain) -> None:
    op = chain.net.operators[2].identity
    assert chain.state.operator(op.public).stake_height == 0
    chain.extend([])
    chain.extend([chain.sign(op, Bond(5))])
    assert chain.state.operator(op.public).stake_height == 2
    chain.extend([chain.sign(op, UpdateOperator(_vrf_public(chain.net), 3))])
    assert chain.state.operator(op.public).stake_height == 2
