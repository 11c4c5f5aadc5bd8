"""The node's rules that the ledger's fold leaves to it: sortition for task rounds, and the
`admit` check validators run on every transaction before proposing or voting for a block, and the
proposer's own choice of how many new tasks to start (`hold_back_tasks`).

The fold verifies a credential's VRF proof but takes the claimed weight on trust (the weight needs
the committee package, which the ledger does not import). `draw_task` (what an operator runs) and
`admit` (what a validator runs) share one rule, so an honest credential is always admitted:

* the round is open for credentials in the next block: `chain.round_seed(state, TASK, task)` gives
  the seed (the task is SEEDING right after its seed block, or DRAWING with the window open);
* the operator is ACTIVE, holds at least `min_stake`, is below its capacity, and its stake took
  effect no later than the block that included the task (`Operator.stake_height <=
  Task.posted_height`): stake moved in after the seed became computable does not count;
* its weight is `sortition.select_weight(beta, stake, task.tau, total)` where `total` is the
  active stake the ledger records as the round's denominator (`Task.total_stake`, or the current
  active stake while the task is still SEEDING: the fold copies exactly that value when it fixes
  the seed at the start of the next block).

The roster member's `credential` field on the ledger is the hash of its CREDENTIAL transaction;
the priority that ranks candidates is `sortition.priority(beta, weight)` with beta from that
transaction's VRF proof (`member_priority`). Committee's `UnverifiedCredential.digest()` is not
used by the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import vrf
from committee import sortition
from committee.credentials import NotSelected, NotSelectedReason
from executor.spec import JobSpec
from ledger.chain import round_seed
from ledger.errors import DecodeError, InvalidCredential, MalformedPayload
from ledger.state import TASK_CLOSED, KeyKind, State, Task, TaskStatus
from ledger.tx import Credential, OperatorStatus, PostTask, RoundKind, Transaction, TxKind


@dataclasses.dataclass(frozen=True, slots=True)
class Drawn:
    """This operator was drawn for a task round."""

    seed: bytes
    proof: bytes  # the 80-byte VRF proof on the seed
    beta: bytes
    weight: int
    priority: bytes


def _total(state: State, task: Task) -> int:
    return task.total_stake if task.status == TaskStatus.DRAWING else state.globals.active_stake


def ineligibility(state: State, identity: bytes, task: Task) -> NotSelected | None:
    """Why `identity` may not join `task`'s round in the next block, or None if it may."""
    op = state.operator(identity)
    if op is None:
        return NotSelected(NotSelectedReason.NOT_REGISTERED, "no operator with this identity")
    if op.status != OperatorStatus.ACTIVE:
        return NotSelected(NotSelectedReason.INACTIVE, f"operator status is {op.status.name}")
    if op.stake == 0 or op.stake < state.params.min_stake:
        return NotSelected(
            NotSelectedReason.NO_STAKE,
            f"stake {op.stake} is below min_stake {state.params.min_stake}",
        )
    if op.stake_height > task.posted_height:
        return NotSelected(
            NotSelectedReason.STALE_STAKE,
            f"stake changed at height {op.stake_height}, after the task was posted at "
            f"{task.posted_height}",
        )
    if op.open_rounds >= op.capacity:
        return NotSelected(
            NotSelectedReason.OVER_CAPACITY,
            f"serving {op.open_rounds} of {op.capacity} declared rounds",
        )
    if op.stake > _total(state, task):
        return NotSelected(NotSelectedReason.STALE_STAKE, "stake above the round's recorded total")
    return None


def draw_task(
    state: State, task_id: bytes, identity: bytes, vrf_key: vrf.SecretKey
) -> Drawn | NotSelected | None:
    """Sortition for this operator on `task_id`, for a credential in the next block.

    Returns None if the round takes no credential in the next block (window not open or closed),
    `NotSelected` with the reason if the operator is not drawn (no VRF work when it is not
    eligible), else `Drawn`."""
    task = state.task(task_id)
    seed = round_seed(state, RoundKind.TASK, task_id)
    if task is None or seed is None:
        return None
    why = ineligibility(state, identity, task)
    if why is not None:
        return why
    op = state.operator(identity)
    assert op is not None  # ineligibility checked it
    if op.vrf_key != vrf_key.public_key.key:
        return NotSelected(
            NotSelectedReason.VRF_KEY_MISMATCH,
            "the local VRF key is not the registered one: update the operator's VRF key",
        )
    total = _total(state, task)
    proof = vrf_key.prove(seed)
    beta = proof.to_hash()
    if sortition.is_weight_zero(beta, op.stake, task.tau, total):
        return NotSelected(
            NotSelectedReason.WEIGHT_ZERO,
            f"no sub-user drawn (stake {op.stake} of {total}, tau {task.tau})",
        )
    weight = sortition.select_weight(beta, op.stake, task.tau, total)
    return Drawn(seed, proof.pi, beta, weight, sortition.priority(beta, weight))


def member_priority(proof: bytes, weight: int) -> bytes:
    """A roster member's candidate priority from its CREDENTIAL transaction's proof and weight
    (the fold already verified the proof). Raises ValueError if the proof does not decode (a
    ledger the node followed would never hold one: treat it as a local bug)."""
    try:
        beta = vrf.Proof.from_bytes(proof).to_hash()
    except vrf.VRFError as exc:
        raise ValueError(f"a credential on the ledger does not decode: {exc}") from None
    return sortition.priority(beta, weight)


def admit(state: State, tx: Transaction) -> None:
    """The validator's external check of `tx` against `state` (the parent of the block being
    built or checked): the claimed sortition weight of a task credential, and that a posted job
    spec is a valid `JobSpec`. Everything else is the fold's.

    Raises InvalidCredential or MalformedPayload (TransactionErrors): leave the transaction out of
    the block (builder) or vote against the block (checker)."""
    if tx.kind == TxKind.CREDENTIAL:
        body = tx.body()
        assert isinstance(body, Credential)
        if body.round == RoundKind.TASK:
            _admit_task_credential(state, tx.signer, body)
        # Measurement credentials: the ledger records no tau for a measurement round, so the
        # node has no weight rule to check yet (the fold bounds the weight by the stake).
    elif tx.kind == TxKind.POST_TASK:
        body = tx.body()
        assert isinstance(body, PostTask)
        try:
            JobSpec.decode(body.job_spec)
        except DecodeError as exc:
            raise MalformedPayload(f"the job spec is not a valid JobSpec: {exc}") from None


def _admit_task_credential(state: State, signer: bytes, body: Credential) -> None:
    task = state.task(body.subject)
    seed = round_seed(state, RoundKind.TASK, body.subject)
    if task is None or seed is None:
        return  # the fold rejects it (UnknownTask / WrongPhase) with the precise reason
    why = ineligibility(state, signer, task)
    if why is not None:
        raise InvalidCredential(f"the operator may not be drawn: {why.detail}")
    op = state.operator(signer)
    assert op is not None
    try:
        beta = vrf.Proof.from_bytes(body.vrf_proof).to_hash()
    except vrf.VRFError as exc:
        raise InvalidCredential(f"the VRF proof does not decode: {exc}") from None
    weight = sortition.select_weight(beta, op.stake, task.tau, _total(state, task))
    if weight != body.weight:
        raise InvalidCredential(f"claimed weight {body.weight}, sortition gives {weight}")


def open_tasks(state: State) -> int:
    """How many tasks on the ledger are not closed (SEEDING to EXECUTING)."""
    return sum(
        1
        for key, rec in state.entries.items()
        if key[0] == KeyKind.TASK and rec.status not in TASK_CLOSED  # type: ignore[attr-defined]
    )


def hold_back_tasks(
    txs: Sequence[Transaction], state: State, open_tasks_max: int
) -> list[Transaction]:
    """`txs` (a block builder's candidates, each signer's nonces in order) without the POST_TASKs
    that would take the ledger past `open_tasks_max` open tasks, nor any later transaction of
    their signers (a block takes a signer's nonces without gaps). What is held back stays in the
    mempool for a later block, when tasks have closed: an overloaded network queues new tasks
    instead of starting more rounds than its operators can run."""
    room = open_tasks_max - open_tasks(state)
    held: set[bytes] = set()
    kept: list[Transaction] = []
    for tx in txs:
        if tx.signer in held:
            continue
        if tx.kind == TxKind.POST_TASK:
            if room <= 0:
                held.add(tx.signer)
                continue
            room -= 1
        kept.append(tx)
    return kept
