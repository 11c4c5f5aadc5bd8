"""The state machine: `apply_block(state, block) -> state`, a pure fold.

Applying block h:

1. header checks (height, parent hash, time, proposer, size, the parent's commit certificate,
   transactions root);
2. the agenda of height h (work scheduled by earlier blocks: fix task seeds, close credential
   windows, expire tasks, release unbonded stake, open service measurements);
3. every transaction in order: signature (skipped when the `VerifiedTxCache` already checked
   it), nonce, then the kind's rules. The first invalid transaction makes the whole block invalid
   and raises its typed `TransactionError` with `.index` set;
4. the supply check over every entry the block changed, then the new trie root, which must equal
   the header's `state_root`.

The block builder (`build_block`) runs the same code but skips invalid transactions.

Every transaction runs against a private staging layer that is merged only if the transaction
succeeds, so a rejected transaction leaves no trace; the block's writes are merged into a copy of
the entries only at the end, so the input state is never modified.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Final

import vrf
from ledger.block import Block, BlockHeader, verify_commit_of
from ledger.certificates import (
    MEMBERS_MAX,
    CertificateError,
    Member,
    Membership,
    QuorumCertificate,
    VerifiedCertificate,
    VoteKind,
    block_round_id,
    result_round_id,
    service_round_id,
    task_round_id,
    verify_certificate,
    verify_evidence,
)
from ledger.domains import Domain, digest, digest_parts
from ledger.encoding import Record
from ledger.errors import (
    AlreadyRegistered,
    BadNonce,
    BadTime,
    DuplicateEvidence,
    EncodeError,
    FeeTooLow,
    ImageNotValid,
    InsufficientBalance,
    InsufficientStake,
    InvalidAmount,
    InvalidCapacity,
    InvalidCommit,
    InvalidCredential,
    InvalidInterval,
    InvalidRoundCertificate,
    InvalidSlashEvidence,
    InvalidStatusTransition,
    InvalidTau,
    InvalidVrfKey,
    InvariantViolation,
    NotAValidator,
    NotEligible,
    NothingToSlash,
    NotOnRoster,
    OperatorBusy,
    OutsideDisputeWindow,
    RosterFull,
    StakeBelowMinimum,
    StateRootMismatch,
    TooManyTransactions,
    TransactionError,
    TxRootMismatch,
    UnknownAccount,
    UnknownImage,
    UnknownOperator,
    UnknownRound,
    UnknownService,
    UnknownTask,
    WrongHeight,
    WrongParent,
    WrongPhase,
)
from ledger.genesis import BPS, CAPACITY_MAX, ChainParams
from ledger.merkle import merkle_root
from ledger.state import (
    AGENDA_CHUNK,
    GLOBALS_KEY,
    MEASUREMENT_CLOSED,
    TASK_CLOSED,
    Account,
    AgendaChunk,
    AgendaHead,
    Event,
    EventKind,
    Globals,
    Image,
    Measurement,
    MeasurementStatus,
    Offence,
    Operator,
    Service,
    ServiceStatus,
    State,
    Task,
    TaskStatus,
    account_key,
    agenda_chunk_key,
    agenda_head_key,
    image_key,
    measurement_id,
    measurement_key,
    measurement_seed,
    money,
    offence_key,
    operator_key,
    service_key,
    task_key,
    task_seed,
    value_digest,
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
    UpdateOperator,
    VerifiedTxCache,
    derived_id,
    verify_transaction,
)

_MISSING: Final[Any] = object()
_ZERO_HASH: Final = bytes(32)


class _Block:
    """The writes of one block over the parent state's entries."""

    __slots__ = ("base", "chain", "height", "params", "parent_hash", "state", "writes")

    def __init__(self, state: State, height: int) -> None:
        self.state = state
        self.base = state.entries
        self.writes: dict[bytes, Record | None] = {}
        self.height = height
        self.parent_hash = state.tip_hash
        self.params = state.params
        self.chain = state.genesis_hash


class _Ctx:
    """One transaction's (or the agenda's) staged writes on top of the block's."""

    __slots__ = ("blk", "height", "params", "signer", "tx_hash", "writes")

    def __init__(
        self, blk: _Block, signer: bytes = _ZERO_HASH, tx_hash: bytes = _ZERO_HASH
    ) -> None:
        self.blk = blk
        self.writes: dict[bytes, Record | None] = {}
        self.height = blk.height
        self.params = blk.params
        self.signer = signer
        self.tx_hash = tx_hash

    def get(self, key: bytes) -> Any:
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            value = self.blk.writes.get(key, _MISSING)
            if value is _MISSING:
                return self.blk.base.get(key)
        return value

    def put(self, key: bytes, record: Record | None) -> None:
        self.writes[key] = record

    def commit(self) -> None:
        self.blk.writes.update(self.writes)

    # typed access ---------------------------------------------------------------------------

    def account(self, identity: bytes) -> Account | None:
        return self.get(account_key(identity))  # type: ignore[no-any-return]

    def operator(self, identity: bytes) -> Operator:
        op = self.get(operator_key(identity))
        if op is None:
            raise UnknownOperator(f"{identity.hex()[:16]}... is not a registered operator")
        return op  # type: ignore[no-any-return]

    def globals(self) -> Globals:
        return self.get(GLOBALS_KEY)  # type: ignore[no-any-return]

    def credit(self, identity: bytes, amount: int) -> None:
        if amount:
            acct = self.account(identity) or Account(0, 0)
            self.put(account_key(identity), Account(acct.balance + amount, acct.nonce))

    def debit(self, identity: bytes, amount: int) -> None:
        acct = self.account(identity)
        if acct is None or acct.balance < amount:
            have = 0 if acct is None else acct.balance
            raise InsufficientBalance(f"balance {have} is below {amount}")
        self.put(account_key(identity), Account(acct.balance - amount, acct.nonce))

    def add_active(self, delta: int) -> None:
        g = self.globals()
        self.put(GLOBALS_KEY, dataclasses.replace(g, active_stake=g.active_stake + delta))

    def schedule(self, height: int, kind: EventKind, subject: bytes, amount: int = 0) -> None:
        if height <= self.height:
            raise InvariantViolation(f"{kind.name} scheduled at {height}, not after {self.height}")
        head_key = agenda_head_key(height)
        head = self.get(head_key)
        n = 0 if head is None else head.count
        chunk_key = agenda_chunk_key(height, n // AGENDA_CHUNK)
        chunk = self.get(chunk_key)
        events = () if chunk is None else chunk.events
        self.put(chunk_key, AgendaChunk((*events, Event(kind, subject, amount))))
        self.put(head_key, AgendaHead(n + 1))

    def release_roster(self, roster: Iterable[Member]) -> None:
        """A round closed: its members serve one round less and stay slashable for the dispute
        window."""
        until = self.height + self.params.dispute_window_blocks
        for m in roster:
            key = operator_key(m.identity)
            op: Operator = self.get(key)
            self.put(
                key,
                dataclasses.replace(
                    op,
                    open_rounds=op.open_rounds - 1,
                    dispute_until=max(op.dispute_until, until),
                ),
            )

    def slash(self, offender: bytes, bps: int, reporter: bytes) -> int:
        """Take `bps` of the offender's stake and unbonding stake (stake first): the reporter gets
        `reporter_share_bps` of it, the treasury the rest. Returns the amount taken."""
        key = operator_key(offender)
        op: Operator | None = self.get(key)
        if op is None:
            return 0
        amount = (op.stake + op.unbonding) * bps // BPS
        from_stake = min(amount, op.stake)
        self.put(
            key,
            dataclasses.replace(
                op,
                stake=op.stake - from_stake,
                unbonding=op.unbonding - (amount - from_stake),
                stake_height=self.height if from_stake else op.stake_height,
            ),
        )
        if op.status == OperatorStatus.ACTIVE:
            self.add_active(-from_stake)
        cut = amount * self.params.reporter_share_bps // BPS
        self.credit(reporter, cut)
        g = self.globals()
        self.put(GLOBALS_KEY, dataclasses.replace(g, treasury=g.treasury + amount - cut))
        return amount


# --- transactions -------------------------------------------------------------------------------


def _positive(amount: int) -> None:
    if amount == 0:
        raise InvalidAmount("the amount must be positive")


def _check_vrf_key(key: bytes) -> None:
    try:
        vrf.PublicKey.from_bytes(key)
    except vrf.VRFError as exc:
        raise InvalidVrfKey(f"VRF key {key.hex()[:16]}...: {exc}") from None


def _check_capacity(capacity: int) -> None:
    if not 1 <= capacity <= CAPACITY_MAX:
        raise InvalidCapacity(f"capacity {capacity} is outside [1, {CAPACITY_MAX}]")


def _tx_transfer(c: _Ctx, tx: Transaction, body: Transfer) -> None:
    _positive(body.amount)
    if body.to == c.signer:
        raise InvalidAmount("a transfer to oneself")
    c.debit(c.signer, body.amount)
    c.credit(body.to, body.amount)


def _tx_register_operator(c: _Ctx, tx: Transaction, body: RegisterOperator) -> None:
    if c.get(operator_key(c.signer)) is not None:
        raise AlreadyRegistered("the signer is already an operator")
    if body.stake < c.params.min_stake:
        raise StakeBelowMinimum(f"stake {body.stake} is below min_stake {c.params.min_stake}")
    _check_capacity(body.capacity)
    _check_vrf_key(body.vrf_key)
    c.debit(c.signer, body.stake)
    c.put(
        operator_key(c.signer),
        Operator(
            vrf_key=body.vrf_key,
            stake=body.stake,
            unbonding=0,
            capacity=body.capacity,
            status=OperatorStatus.ACTIVE,
            open_rounds=0,
            dispute_until=0,
            registered_height=c.height,
            stake_height=c.height,
        ),
    )
    c.add_active(body.stake)


def _tx_update_operator(c: _Ctx, tx: Transaction, body: UpdateOperator) -> None:
    op = c.operator(c.signer)
    _check_capacity(body.capacity)
    _check_vrf_key(body.vrf_key)
    c.put(
        operator_key(c.signer),
        dataclasses.replace(op, vrf_key=body.vrf_key, capacity=body.capacity),
    )


def _tx_bond(c: _Ctx, tx: Transaction, body: Bond) -> None:
    _positive(body.amount)
    op = c.operator(c.signer)
    c.debit(c.signer, body.amount)
    c.put(
        operator_key(c.signer),
        dataclasses.replace(op, stake=op.stake + body.amount, stake_height=c.height),
    )
    if op.status == OperatorStatus.ACTIVE:
        c.add_active(body.amount)


def _tx_unbond(c: _Ctx, tx: Transaction, body: Unbond) -> None:
    _positive(body.amount)
    op = c.operator(c.signer)
    if body.amount > op.stake:
        raise InsufficientStake(f"unbonding {body.amount} of a stake of {op.stake}")
    left = op.stake - body.amount
    if op.status != OperatorStatus.INACTIVE and left < c.params.min_stake:
        raise InsufficientStake(
            f"an {op.status.name} operator keeps at least min_stake {c.params.min_stake}; "
            "set status LEAVING, wait for INACTIVE, then unbond the rest"
        )
    c.put(
        operator_key(c.signer),
        dataclasses.replace(
            op, stake=left, unbonding=op.unbonding + body.amount, stake_height=c.height
        ),
    )
    if op.status == OperatorStatus.ACTIVE:
        c.add_active(-body.amount)
    c.schedule(
        c.height + c.params.unbonding_blocks, EventKind.RELEASE_UNBOND, c.signer, body.amount
    )


def _tx_set_status(c: _Ctx, tx: Transaction, body: SetStatus) -> None:
    op = c.operator(c.signer)
    old, new = op.status, body.status
    A, L, I = OperatorStatus.ACTIVE, OperatorStatus.LEAVING, OperatorStatus.INACTIVE  # noqa: E741
    if new == A and old in (L, I):
        if op.stake < c.params.min_stake:
            raise StakeBelowMinimum(f"stake {op.stake} is below min_stake {c.params.min_stake}")
        c.add_active(op.stake)
    elif new == L and old == A:
        c.add_active(-op.stake)
    elif new == I and old == L:
        if op.open_rounds or c.height < op.dispute_until:
            raise OperatorBusy(
                f"{op.open_rounds} open round(s); dispute window open until {op.dispute_until}"
            )
    else:
        raise InvalidStatusTransition(f"{old.name} -> {new.name} is not allowed")
    c.put(operator_key(c.signer), dataclasses.replace(op, status=new))


def _tx_post_task(c: _Ctx, tx: Transaction, body: PostTask) -> None:
    p = c.params
    if body.fee < p.min_task_fee:
        raise FeeTooLow(f"fee {body.fee} is below min_task_fee {p.min_task_fee}")
    if not 1 <= body.tau <= p.tau_max:
        raise InvalidTau(f"tau {body.tau} is outside [1, {p.tau_max}]")
    c.debit(c.signer, body.fee)
    task_id = derived_id(Domain.TASK_ID, tx, c.blk.chain)
    c.put(
        task_key(task_id),
        Task(
            poster=c.signer,
            spec_digest=digest(Domain.JOB_SPEC, body.job_spec),
            post_tx=c.tx_hash,
            fee=body.fee,
            escrow=body.fee,
            tau=body.tau,
            posted_height=c.height,
            status=TaskStatus.SEEDING,
            seed=None,
            draw_until=0,
            total_stake=0,
            roster=(),
            attempt=0,
            executor=None,
            report_digest=None,
            closed_height=None,
        ),
    )
    # The seed is the hash of block h+1, known when block h+2 starts.
    c.schedule(c.height + 2, EventKind.SEED_TASK, task_id)
    c.schedule(c.height + p.task_timeout_blocks, EventKind.TASK_TIMEOUT, task_id)


def _tx_credential(c: _Ctx, tx: Transaction, body: Credential) -> None:
    if body.round == RoundKind.TASK:
        key = task_key(body.subject)
        rnd: Task | Measurement | None = c.get(key)
        if rnd is None:
            raise UnknownTask(f"no task {body.subject.hex()[:16]}...")
        drawing = rnd.status == TaskStatus.DRAWING
    elif body.round == RoundKind.MEASUREMENT:
        key = measurement_key(body.subject)
        rnd = c.get(key)
        if rnd is None:
            raise UnknownService(f"no measurement {body.subject.hex()[:16]}...")
        drawing = rnd.status == MeasurementStatus.DRAWING
    else:
        raise UnknownRound("credentials are for task and measurement rounds only")
    if not drawing or c.height >= rnd.draw_until or rnd.seed is None:
        raise WrongPhase("the round's credential window is not open")
    op = c.operator(c.signer)
    if op.status != OperatorStatus.ACTIVE:
        raise NotEligible(f"the operator is {op.status.name}, not ACTIVE")
    if op.stake < c.params.min_stake:
        raise NotEligible(f"stake {op.stake} is below min_stake {c.params.min_stake}")
    if op.open_rounds >= op.capacity:
        raise NotEligible(f"the operator is at capacity ({op.capacity} open rounds)")
    identities = [m.identity for m in rnd.roster]
    at = bisect.bisect_left(identities, c.signer)
    if at < len(identities) and identities[at] == c.signer:
        raise NotEligible("the operator is already on the roster")
    if len(identities) >= MEMBERS_MAX:
        raise RosterFull(f"the roster holds {MEMBERS_MAX} members")
    if not 1 <= body.weight <= op.stake:
        raise InvalidCredential(f"weight {body.weight} is outside [1, stake {op.stake}]")
    try:
        vrf.PublicKey.from_bytes(op.vrf_key).verify(rnd.seed, body.vrf_proof)
    except vrf.VRFError as exc:
        raise InvalidCredential(f"the VRF proof does not verify on the seed: {exc}") from None
    roster = (*rnd.roster[:at], Member(c.signer, body.weight, c.tx_hash), *rnd.roster[at:])
    c.put(key, dataclasses.replace(rnd, roster=roster))
    c.put(operator_key(c.signer), dataclasses.replace(op, open_rounds=op.open_rounds + 1))


def _check_round_cert(
    cert: QuorumCertificate, roster: tuple[Member, ...], context: bytes
) -> VerifiedCertificate:
    """Any view: an agreement may decide in a later view after timeouts."""
    try:
        return verify_certificate(cert, Membership.roster(roster), context=context)
    except CertificateError as exc:
        raise InvalidRoundCertificate(str(exc)) from None


def _open_task(c: _Ctx, task_id: bytes, phase: TaskStatus, attempt: int) -> Task:
    task: Task | None = c.get(task_key(task_id))
    if task is None:
        raise UnknownTask(f"no task {task_id.hex()[:16]}...")
    if task.status != phase:
        raise WrongPhase(f"the task is {task.status.name}, not {phase.name}")
    if attempt != task.attempt:
        raise WrongPhase(f"the task is at attempt {task.attempt}, not {attempt}")
    return task


def _tx_task_certificate(c: _Ctx, tx: Transaction, body: TaskCertificate) -> None:
    task = _open_task(c, body.task_id, TaskStatus.ELECTING, body.attempt)
    if all(m.identity != body.executor for m in task.roster):
        raise NotOnRoster("the executor is not on the task's roster")
    cert = _check_round_cert(
        body.certificate, task.roster, task_round_id(body.task_id, body.attempt)
    )
    if cert.kind != VoteKind.COMMIT:
        raise InvalidRoundCertificate(f"a {cert.kind.name} certificate cannot choose an executor")
    if cert.value != body.executor:  # an executor agreement decides the executor's identity
        raise InvalidRoundCertificate("the certificate chose another executor")
    c.put(
        task_key(body.task_id),
        dataclasses.replace(task, status=TaskStatus.EXECUTING, executor=body.executor),
    )


def _close_task(c: _Ctx, task_id: bytes, task: Task, status: TaskStatus, **changes: Any) -> None:
    """Close a task: refund what is left in escrow, release the roster."""
    c.credit(task.poster, task.escrow)
    c.release_roster(task.roster)
    c.put(
        task_key(task_id),
        dataclasses.replace(task, status=status, escrow=0, closed_height=c.height, **changes),
    )


def _tx_task_result(c: _Ctx, tx: Transaction, body: TaskResult) -> None:
    task = _open_task(c, body.task_id, TaskStatus.EXECUTING, body.attempt)
    executor = task.executor
    if executor is None:  # EXECUTING always has an executor
        raise InvariantViolation("an executing task without an executor")
    cert = _check_round_cert(
        body.certificate, task.roster, result_round_id(body.task_id, body.attempt)
    )
    if cert.kind == VoteKind.RESULT_ACCEPT:
        if cert.value != body.report_digest:
            raise InvalidRoundCertificate("the certificate accepts another report")
        _pay(c, task, executor, cert)
        _close_task(
            c,
            body.task_id,
            dataclasses.replace(task, escrow=0),
            TaskStatus.COMPLETED,
            report_digest=body.report_digest,
        )
    elif cert.kind == VoteKind.RESULT_REJECT:
        if cert.value != executor:  # a rejection names the rejected executor
            raise InvalidRoundCertificate("the certificate rejects another executor")
        c.slash(executor, c.params.slash_wrong_result_bps, c.signer)
        nxt = body.attempt + 1
        if nxt >= c.params.max_attempts:
            _close_task(c, body.task_id, task, TaskStatus.FAILED, report_digest=body.report_digest)
        else:
            c.put(
                task_key(body.task_id),
                dataclasses.replace(
                    task,
                    status=TaskStatus.ELECTING,
                    attempt=nxt,
                    executor=None,
                    report_digest=body.report_digest,
                ),
            )
    else:
        raise InvalidRoundCertificate(f"a {cert.kind.name} certificate is not a result")


def _pay(c: _Ctx, task: Task, executor: bytes, cert: VerifiedCertificate) -> None:
    """The escrow rule (ledger/README.md): the executor gets executor_share_bps of the fee; the
    rest is split among the other signers of the accept certificate in proportion to their
    weight; rounding dust goes to the executor."""
    escrow = task.escrow
    verifiers = [task.roster[i] for i in cert.signers if task.roster[i].identity != executor]
    pool = escrow - escrow * c.params.executor_share_bps // BPS if verifiers else 0
    weight = sum(m.weight for m in verifiers)
    paid = 0
    for m in verifiers:
        share = pool * m.weight // weight
        c.credit(m.identity, share)
        paid += share
    c.credit(executor, escrow - paid)


def _tx_slash_evidence(c: _Ctx, tx: Transaction, body: SlashEvidence) -> None:
    window = c.params.dispute_window_blocks
    if body.round == RoundKind.BLOCK:
        if body.subject != _ZERO_HASH or not 1 <= body.number <= c.height:
            raise UnknownRound("block evidence names a height in [1, current] and a zero subject")
        if c.height - body.number > window:
            raise OutsideDisputeWindow(f"block {body.number} is past the dispute window")
        membership = c.blk.state.validators
        contexts = (block_round_id(body.number),)
    elif body.round == RoundKind.TASK:
        task: Task | None = c.get(task_key(body.subject))
        if task is None or body.number > task.attempt or not task.roster:
            raise UnknownRound("no such task attempt with a roster")
        if task.closed_height is not None and c.height > task.closed_height + window:
            raise OutsideDisputeWindow("the task's dispute window has closed")
        membership = Membership.roster(task.roster)
        contexts = (
            task_round_id(body.subject, body.number),
            result_round_id(body.subject, body.number),
        )
    else:
        meas: Measurement | None = c.get(measurement_key(body.subject))
        if meas is None or body.number != 0 or not meas.roster:
            raise UnknownRound("no such measurement round with a roster")
        if meas.closed_height is not None and c.height > meas.closed_height + window:
            raise OutsideDisputeWindow("the measurement's dispute window has closed")
        membership = Membership.roster(meas.roster)
        contexts = (service_round_id(body.subject),)
    try:
        proven = verify_evidence(body.evidence, membership)
    except CertificateError as exc:
        raise InvalidSlashEvidence(str(exc)) from None
    if proven.context not in contexts:
        raise InvalidSlashEvidence("the votes are from another round")
    oid = digest_parts(Domain.EVIDENCE, proven.voter, proven.context)
    if c.get(offence_key(oid)) is not None:
        raise DuplicateEvidence("this member was already slashed for this round")
    op: Operator | None = c.get(operator_key(proven.voter))
    if op is None or op.stake + op.unbonding == 0:
        raise NothingToSlash("the offender holds no stake")
    amount = c.slash(proven.voter, c.params.slash_equivocation_bps, c.signer)
    c.put(offence_key(oid), Offence(proven.voter, c.height, amount))


def _tx_register_image(c: _Ctx, tx: Transaction, body: RegisterImage) -> None:
    if c.get(image_key(body.image_digest)) is not None:
        raise AlreadyRegistered("the image digest is already registered")
    if body.valid_from_height < c.height:
        raise ImageNotValid(f"valid_from_height {body.valid_from_height} is in the past")
    c.put(image_key(body.image_digest), Image(c.signer, body.valid_from_height, c.height))


def _tx_deploy_service(c: _Ctx, tx: Transaction, body: DeployService) -> None:
    image: Image | None = c.get(image_key(body.image_digest))
    if image is None:
        raise UnknownImage("the image digest is not registered")
    if image.valid_from_height > c.height:
        raise ImageNotValid(f"the image is valid from height {image.valid_from_height}")
    op = c.operator(body.operator)
    if op.status != OperatorStatus.ACTIVE:
        raise NotEligible(f"the operator is {op.status.name}, not ACTIVE")
    if body.interval_blocks < c.params.min_measurement_interval_blocks:
        raise InvalidInterval(
            f"interval {body.interval_blocks} is below {c.params.min_measurement_interval_blocks}"
        )
    service_id = derived_id(Domain.SERVICE_ID, tx, c.blk.chain)
    c.put(
        service_key(service_id),
        Service(
            developer=c.signer,
            image_digest=body.image_digest,
            config_digest=body.config_digest,
            operator=body.operator,
            interval_blocks=body.interval_blocks,
            deployed_height=c.height,
            measurements=0,
            status=ServiceStatus.RUNNING,
        ),
    )
    c.schedule(c.height + body.interval_blocks, EventKind.OPEN_MEASUREMENT, service_id)


def _tx_integrity_report(c: _Ctx, tx: Transaction, body: IntegrityReport) -> None:
    key = measurement_key(body.measurement_id)
    meas: Measurement | None = c.get(key)
    if meas is None:
        raise UnknownService(f"no measurement {body.measurement_id.hex()[:16]}...")
    if meas.status != MeasurementStatus.MEASURING:
        raise WrongPhase(f"the measurement is {meas.status.name}, not MEASURING")
    context = service_round_id(body.measurement_id)
    cert = _check_round_cert(body.certificate, meas.roster, context)
    if cert.value != body.report_digest:
        raise InvalidRoundCertificate("the certificate is about another report")
    if cert.kind == VoteKind.RESULT_ACCEPT:
        status = MeasurementStatus.OK
    elif cert.kind == VoteKind.RESULT_REJECT:
        status = MeasurementStatus.VIOLATION
        skey = service_key(meas.service_id)
        service: Service = c.get(skey)
        c.slash(service.operator, c.params.slash_violation_bps, c.signer)
        c.put(skey, dataclasses.replace(service, status=ServiceStatus.VIOLATED))
    else:
        raise InvalidRoundCertificate(f"a {cert.kind.name} certificate is not a measurement")
    c.release_roster(meas.roster)
    c.put(
        key,
        dataclasses.replace(
            meas, status=status, report_digest=body.report_digest, closed_height=c.height
        ),
    )


_Handler = Callable[[_Ctx, Transaction, Any], None]
_HANDLERS: Final[dict[TxKind, _Handler]] = {
    TxKind.TRANSFER: _tx_transfer,
    TxKind.REGISTER_OPERATOR: _tx_register_operator,
    TxKind.UPDATE_OPERATOR: _tx_update_operator,
    TxKind.BOND: _tx_bond,
    TxKind.UNBOND: _tx_unbond,
    TxKind.SET_STATUS: _tx_set_status,
    TxKind.POST_TASK: _tx_post_task,
    TxKind.CREDENTIAL: _tx_credential,
    TxKind.TASK_CERTIFICATE: _tx_task_certificate,
    TxKind.TASK_RESULT: _tx_task_result,
    TxKind.SLASH_EVIDENCE: _tx_slash_evidence,
    TxKind.REGISTER_IMAGE: _tx_register_image,
    TxKind.DEPLOY_SERVICE: _tx_deploy_service,
    TxKind.INTEGRITY_REPORT: _tx_integrity_report,
}


def _apply_tx(blk: _Block, tx: Transaction, tx_hash: bytes, cache: VerifiedTxCache | None) -> None:
    body = cache.body(tx_hash) if cache is not None else None
    if body is None:
        vtx = verify_transaction(tx, blk.chain)
        body = vtx.body
        if cache is not None:
            cache.add(vtx)
    c = _Ctx(blk, tx.signer, tx_hash)
    key = account_key(tx.signer)
    acct: Account | None = c.get(key)
    if acct is None:
        raise UnknownAccount(f"{tx.signer.hex()[:16]}... has no account")
    if tx.nonce != acct.nonce:
        raise BadNonce(f"nonce {tx.nonce}, expected {acct.nonce}")
    c.put(key, Account(acct.balance, acct.nonce + 1))
    _HANDLERS[tx.kind](c, tx, body)
    c.commit()


# --- the agenda ---------------------------------------------------------------------------------


def _event_seed_task(c: _Ctx, task_id: bytes) -> None:
    task: Task = c.get(task_key(task_id))
    if task.status != TaskStatus.SEEDING:
        return
    until = c.height + c.params.credential_window_blocks
    c.put(
        task_key(task_id),
        dataclasses.replace(
            task,
            status=TaskStatus.DRAWING,
            seed=task_seed(task_id, c.blk.parent_hash),
            draw_until=until,
            total_stake=c.globals().active_stake,
        ),
    )
    c.schedule(until, EventKind.CLOSE_TASK_DRAW, task_id)


def _event_close_task_draw(c: _Ctx, task_id: bytes) -> None:
    task: Task = c.get(task_key(task_id))
    if task.status != TaskStatus.DRAWING:
        return
    if task.roster_weight() >= c.params.min_roster_weight(task.tau):
        c.put(task_key(task_id), dataclasses.replace(task, status=TaskStatus.ELECTING))
    elif c.height + 2 + c.params.credential_window_blocks <= _redraw_deadline(c.params, task):
        # Too little weight landed (often none): the roster is dropped, since the sortition's
        # failure bounds hold for a committee near tau, not for the few credentials that made
        # the window, and the task is drawn again on a new seed, the hash of the next block
        # (fixed two blocks on, as at posting). `draw_until` keeps this window's end while the
        # task seeds again: the new seed is computable once that block's successor is known
        # (`chain.round_seed`).
        c.release_roster(task.roster)
        c.put(
            task_key(task_id),
            dataclasses.replace(task, status=TaskStatus.SEEDING, seed=None, roster=()),
        )
        c.schedule(c.height + 2, EventKind.SEED_TASK, task_id)
    else:
        _close_task(c, task_id, task, TaskStatus.FAILED)


def _redraw_deadline(p: ChainParams, task: Task) -> int:
    """The height by which a redrawn task's credential window must close: half its life, so the
    round that follows has the other half."""
    return task.posted_height + p.task_timeout_blocks // 2


def _event_task_timeout(c: _Ctx, task_id: bytes) -> None:
    task: Task = c.get(task_key(task_id))
    if task.status not in TASK_CLOSED:
        _close_task(c, task_id, task, TaskStatus.EXPIRED)


def _event_release_unbond(c: _Ctx, identity: bytes, amount: int) -> None:
    key = operator_key(identity)
    op: Operator = c.get(key)
    released = min(amount, op.unbonding)  # slashing may have taken part of it
    c.put(key, dataclasses.replace(op, unbonding=op.unbonding - released))
    c.credit(identity, released)


def _event_open_measurement(c: _Ctx, service_id: bytes) -> None:
    skey = service_key(service_id)
    service: Service = c.get(skey)
    if service.status != ServiceStatus.RUNNING:
        return
    op: Operator = c.get(operator_key(service.operator))
    if op.status == OperatorStatus.INACTIVE:
        c.put(skey, dataclasses.replace(service, status=ServiceStatus.STOPPED))
        return
    mid = measurement_id(service_id, service.measurements)
    until = c.height + c.params.credential_window_blocks
    c.put(
        measurement_key(mid),
        Measurement(
            service_id=service_id,
            index=service.measurements,
            opened_height=c.height,
            seed=measurement_seed(mid, c.blk.parent_hash),
            draw_until=until,
            total_stake=c.globals().active_stake,
            roster=(),
            status=MeasurementStatus.DRAWING,
            report_digest=None,
            closed_height=None,
        ),
    )
    c.put(skey, dataclasses.replace(service, measurements=service.measurements + 1))
    c.schedule(until, EventKind.CLOSE_MEASUREMENT_DRAW, mid)
    c.schedule(c.height + c.params.measurement_timeout_blocks, EventKind.MEASUREMENT_TIMEOUT, mid)
    c.schedule(c.height + service.interval_blocks, EventKind.OPEN_MEASUREMENT, service_id)


def _close_measurement(c: _Ctx, mid: bytes, meas: Measurement) -> None:
    c.release_roster(meas.roster)
    c.put(
        measurement_key(mid),
        dataclasses.replace(meas, status=MeasurementStatus.EXPIRED, closed_height=c.height),
    )


def _event_close_measurement_draw(c: _Ctx, mid: bytes) -> None:
    meas: Measurement = c.get(measurement_key(mid))
    if meas.status != MeasurementStatus.DRAWING:
        return
    if not meas.roster:
        _close_measurement(c, mid, meas)
    else:
        c.put(measurement_key(mid), dataclasses.replace(meas, status=MeasurementStatus.MEASURING))


def _event_measurement_timeout(c: _Ctx, mid: bytes) -> None:
    meas: Measurement = c.get(measurement_key(mid))
    if meas.status not in MEASUREMENT_CLOSED:
        _close_measurement(c, mid, meas)


def _run_agenda(blk: _Block) -> None:
    c = _Ctx(blk)
    h = blk.height
    head: AgendaHead | None = c.get(agenda_head_key(h))
    if head is None:
        return
    events: list[Event] = []
    for i in range((head.count + AGENDA_CHUNK - 1) // AGENDA_CHUNK):
        key = agenda_chunk_key(h, i)
        events.extend(c.get(key).events)
        c.put(key, None)
    c.put(agenda_head_key(h), None)
    for ev in events:
        k = ev.kind
        if k == EventKind.SEED_TASK:
            _event_seed_task(c, ev.subject)
        elif k == EventKind.CLOSE_TASK_DRAW:
            _event_close_task_draw(c, ev.subject)
        elif k == EventKind.TASK_TIMEOUT:
            _event_task_timeout(c, ev.subject)
        elif k == EventKind.RELEASE_UNBOND:
            _event_release_unbond(c, ev.subject, ev.amount)
        elif k == EventKind.OPEN_MEASUREMENT:
            _event_open_measurement(c, ev.subject)
        elif k == EventKind.CLOSE_MEASUREMENT_DRAW:
            _event_close_measurement_draw(c, ev.subject)
        else:
            _event_measurement_timeout(c, ev.subject)
    c.commit()


# --- blocks -------------------------------------------------------------------------------------


def _finish(blk: _Block, header: BlockHeader | None) -> tuple[State, bytes]:
    """Check the supply, build the new entries and trie. Returns (state without tip, root)."""
    base = blk.base
    delta = 0
    digests: dict[bytes, bytes | None] = {}
    try:
        for key, rec in blk.writes.items():
            delta += money(rec) - money(base.get(key))
            digests[key] = None if rec is None else value_digest(rec)
    except EncodeError as exc:  # a negative or overflowing field: a state machine bug
        raise InvariantViolation(f"a state record is out of bounds: {exc}") from None
    if delta:
        raise InvariantViolation(f"block {blk.height} changes the money supply by {delta}")
    entries = dict(base)
    for key, rec in blk.writes.items():
        if rec is None:
            entries.pop(key, None)
        else:
            entries[key] = rec
    tree = blk.state.tree.update(digests)
    time_ms = blk.state.tip_time_ms if header is None else header.time_ms
    new = dataclasses.replace(
        blk.state,
        height=blk.height,
        tip_hash=b"" if header is None else header.hash(),
        tip_time_ms=time_ms,
        entries=entries,
        tree=tree,
        changed=frozenset(blk.writes),
    )
    return new, tree.root_hash


def _check_header(state: State, header: BlockHeader) -> None:
    if header.chain != state.genesis_hash:
        raise WrongParent("the block belongs to another chain (genesis hash differs)")
    if header.height != state.height + 1:
        raise WrongHeight(f"block height {header.height}, expected {state.height + 1}")
    if header.parent_hash != state.tip_hash:
        raise WrongParent(f"block {header.height} does not extend the current tip")
    if header.time_ms < state.tip_time_ms:
        raise BadTime(f"block time {header.time_ms} is before its parent's {state.tip_time_ms}")
    if header.proposer not in state.validators:
        raise NotAValidator("the proposer is not a validator")
    if header.height == 1:
        if header.parent_commit is not None:
            raise InvalidCommit("block 1 has no parent commit certificate (genesis is not voted)")
    elif header.parent_commit is None:
        raise InvalidCommit(f"block {header.height} lacks its parent's commit certificate")
    else:
        verify_commit_of(state.height, state.tip_hash, header.parent_commit, state.validators)


def apply_block(state: State, block: Block, *, cache: VerifiedTxCache | None = None) -> State:
    """The state after `block`. `cache` (optional) skips signature checks of transactions it
    already verified and remembers the ones checked here.

    Raises a BlockError (WrongHeight, WrongParent, BadTime, NotAValidator, InvalidCommit,
    TooManyTransactions, TxRootMismatch, StateRootMismatch) or the first invalid transaction's
    TransactionError (with `.index`): the block is invalid; do not vote for it or store it, and
    penalise its sender. InvariantViolation means a bug in this module: stop."""
    header = block.header
    _check_header(state, header)
    p = state.params
    if len(block.txs) > p.max_txs_per_block:
        raise TooManyTransactions(f"{len(block.txs)} transactions, limit {p.max_txs_per_block}")
    hashes = []
    size = 0
    for tx in block.txs:
        enc = tx.encode()
        size += len(enc)
        hashes.append(digest(Domain.TX, enc))
    if size > p.max_block_bytes:
        raise TooManyTransactions(f"{size} bytes of transactions, limit {p.max_block_bytes}")
    if merkle_root(hashes) != header.tx_root:
        raise TxRootMismatch(f"block {header.height}: transactions root mismatch")
    blk = _Block(state, header.height)
    _run_agenda(blk)
    for index, (tx, tx_hash) in enumerate(zip(block.txs, hashes, strict=True)):
        try:
            _apply_tx(blk, tx, tx_hash, cache)
        except TransactionError as exc:
            exc.index = index
            raise
    new, root = _finish(blk, header)
    if root != header.state_root:
        raise StateRootMismatch(f"block {header.height}: state root mismatch")
    return new


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltBlock:
    """A block proposal, the state it leads to, and the candidates it left out (with why)."""

    block: Block
    state: State
    rejected: tuple[tuple[Transaction, TransactionError], ...]


def build_block(
    state: State,
    candidates: Iterable[Transaction],
    *,
    proposer: bytes,
    time_ms: int,
    parent_commit: QuorumCertificate | None,
    cache: VerifiedTxCache | None = None,
    admit: Callable[[State, Transaction], None] | None = None,
) -> BuiltBlock:
    """A deterministic proposal on top of `state`: the candidates in the given order, each kept if
    it applies (and `admit`, the node's external checks, accepts it), until the block is full.
    `time_ms` is clamped to be at least the parent's time.

    Raises BlockError only for a bad `proposer` or `parent_commit` (local misuse); invalid
    candidates are returned in `rejected` (drop them from the mempool)."""
    height = state.height + 1
    time_ms = max(time_ms, state.tip_time_ms)
    probe = BlockHeader(
        state.genesis_hash,
        height,
        state.tip_hash,
        time_ms,
        proposer,
        _ZERO_HASH,
        _ZERO_HASH,
        parent_commit,
    )
    _check_header(state, probe)
    p = state.params
    blk = _Block(state, height)
    _run_agenda(blk)
    kept: list[Transaction] = []
    hashes: list[bytes] = []
    rejected: list[tuple[Transaction, TransactionError]] = []
    size = 0
    for tx in candidates:
        if len(kept) >= p.max_txs_per_block:
            break
        enc = tx.encode()
        if size + len(enc) > p.max_block_bytes:
            continue
        tx_hash = digest(Domain.TX, enc)
        try:
            if admit is not None:
                admit(state, tx)
            _apply_tx(blk, tx, tx_hash, cache)
        except TransactionError as exc:
            rejected.append((tx, exc))
            continue
        kept.append(tx)
        hashes.append(tx_hash)
        size += len(enc)
    new, root = _finish(blk, None)
    header = dataclasses.replace(probe, tx_root=merkle_root(hashes), state_root=root)
    new = dataclasses.replace(new, tip_hash=header.hash(), tip_time_ms=time_ms)
    return BuiltBlock(Block(header, tuple(kept)), new, tuple(rejected))
