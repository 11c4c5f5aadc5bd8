"""Following the chain: accept a block with its commit certificate, and the helpers around it.

The BFT round that produces a commit certificate runs among validators (wiring in p2p/, with the
committee's round core). The ledger only checks the outcome: `accept_block` verifies the block's
commit certificate against the validator set (`certificates.verify_certificate` through
`block.verify_commit`) and folds the block (`fold.apply_block`). Both are pure.

A proposing validator calls `fold.build_block` with candidates from its mempool; before voting for
someone else's proposal it calls `check_proposal`, which runs the node's external checks (a
credential's sortition weight, a job spec's validity...) and the fold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ledger.block import Block, BlockHeader, CertifiedBlock, verify_commit
from ledger.certificates import (
    Membership,
    QuorumCertificate,
    VoteKind,
    block_round_id,
    build_certificate,
    sign_vote,
)
from ledger.errors import TransactionError
from ledger.fold import apply_block
from ledger.signing import IdentityKey
from ledger.state import State, Task, TaskStatus, task_key, task_seed
from ledger.tx import RoundKind, Transaction, VerifiedTxCache

Admission = Callable[[State, Transaction], None]


def accept_block(
    state: State, certified: CertifiedBlock, *, cache: VerifiedTxCache | None = None
) -> State:
    """Check the block's commit certificate against the validator set, then fold the block.

    Raises InvalidCommit (or any error of `apply_block`): the block is not final or not valid;
    drop it and penalise the peer that sent it."""
    verify_commit(certified.block.header, certified.commit, state.validators)
    return apply_block(state, certified.block, cache=cache)


def check_proposal(
    state: State,
    block: Block,
    *,
    admit: Admission | None = None,
    cache: VerifiedTxCache | None = None,
) -> State:
    """What a validator runs before voting for `block`: the node's external checks on every
    transaction, then the fold. Returns the state the block leads to.

    Raises TransactionError (from `admit` or the fold) or BlockError: vote against the block."""
    if admit is not None:
        for index, tx in enumerate(block.txs):
            try:
                admit(state, tx)
            except TransactionError as exc:
                exc.index = index
                raise
    return apply_block(state, block, cache=cache)


def sign_commit(
    header: BlockHeader, keys: Iterable[IdentityKey], validators: Membership, view: int = 0
) -> QuorumCertificate:
    """A COMMIT certificate for `header` signed by `keys` (devnets, the simulator and tests; a
    real network gets it from the validators' BFT round).

    Raises NotAMember if a key is not a validator, NoQuorum if the keys hold no quorum."""
    votes = [
        sign_vote(
            key,
            validators,
            kind=VoteKind.COMMIT,
            context=block_round_id(header.height),
            view=view,
            value=header.hash(),
        )
        for key in keys
    ]
    return build_certificate(votes, validators).certificate


def round_seed(state: State, kind: RoundKind, subject: bytes) -> bytes | None:
    """The seed that credentials for the round must prove on in the *next* block, or None if
    the round takes no credentials then. A task's seed is fixed at the start of the block two
    after the one that included it (or, drawn again, two after its empty window closed at
    `draw_until`); from `state` (the parent) it is already computable one block earlier. For
    external checks before proposing or voting."""
    if kind == RoundKind.TASK:
        task: Task | None = state.get(task_key(subject))  # type: ignore[assignment]
        if task is None:
            return None
        if task.status == TaskStatus.SEEDING and task.seed_height() == state.height:
            return task_seed(subject, state.tip_hash)
        if task.status == TaskStatus.DRAWING and state.height + 1 < task.draw_until:
            return task.seed
        return None
    if kind == RoundKind.MEASUREMENT:
        meas = state.measurement(subject)
        if meas is not None and state.height + 1 < meas.draw_until:
            return meas.seed
    return None
