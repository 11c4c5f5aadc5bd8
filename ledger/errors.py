"""Typed errors of the ledger package (encoding, hashing, signatures, blocks, state, store)."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger package raises."""


class DecodeError(LedgerError):
    """Bytes are not the canonical encoding of the expected record (bad msgpack, trailing bytes,
    wrong field count or type, out-of-bounds value, duplicate or unsorted keys, floats, or any
    non-canonical form). If the bytes came from a peer, drop them and penalise the peer."""


class EncodeError(LedgerError):
    """A record holds a value its schema does not allow (local misuse: fix the caller)."""


class SignatureError(LedgerError):
    """A signature does not verify under the claimed key and domain. Reject the signed object; if
    it came from a peer, penalise the peer."""


class InvariantViolation(LedgerError):
    """A ledger invariant (total supply, non-negative balances) broke while applying a block. This
    is a bug in the state machine, never a peer's fault: stop the node and report it."""


# --- parameters and genesis ---------------------------------------------------------------------


class GenesisError(LedgerError):
    """A genesis file or its parameters are invalid. The message names the field and the fix; the
    operator must correct the file (every node must use the same one)."""


# --- transactions -------------------------------------------------------------------------------


class TransactionError(LedgerError):
    """A transaction is invalid against the current state. `index` is its position in the block
    (None outside a block). A block holding one is invalid: do not vote for it; a mempool drops it
    (and penalises the peer that relayed it if the error is not a state race such as BadNonce)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class BadSignature(TransactionError):
    """The transaction's signature does not verify under its signer for this chain."""


class MalformedPayload(TransactionError):
    """The payload is not the canonical encoding of the record its kind requires."""


class BadNonce(TransactionError):
    """The nonce is not the signer's next nonce (a replay, or a transaction sent out of order)."""


class UnknownAccount(TransactionError):
    """The signer has no account (it never received funds): nothing can pay for or order its
    transactions."""


class InsufficientBalance(TransactionError):
    """The signer's balance is below what the transaction moves (stake, fee, transfer)."""


class InsufficientStake(TransactionError):
    """The operator's bonded stake is below what the transaction unbonds, or would fall below the
    minimum stake while the operator is active or leaving."""


class StakeBelowMinimum(TransactionError):
    """The stake offered is below the chain's minimum stake for an operator."""


class AlreadyRegistered(TransactionError):
    """An operator, image or service with this identity or digest already exists."""


class UnknownOperator(TransactionError):
    """The transaction names an identity that is not a registered operator."""


class InvalidVrfKey(TransactionError):
    """The VRF public key is not a valid ECVRF-EDWARDS25519 key."""


class InvalidStatusTransition(TransactionError):
    """The operator status change is not allowed from the current status."""


class OperatorBusy(TransactionError):
    """A leaving operator still has open task or measurement rounds, or its dispute window is
    still open: it may become inactive (or unbond everything) only afterwards."""


class FeeTooLow(TransactionError):
    """The task fee is below the chain's minimum task fee."""


class InvalidTau(TransactionError):
    """The task's committee size tau is zero or above the chain's maximum."""


class UnknownTask(TransactionError):
    """No task with this id exists."""


class UnknownRound(TransactionError):
    """No task, measurement or block round matches the reference."""


class WrongPhase(TransactionError):
    """The task or measurement is not in the phase this transaction needs (for example a result for
    a task whose executor is not chosen yet, or a credential after the window closed)."""


class NotEligible(TransactionError):
    """The operator may not join this round: not active, below the minimum stake, at capacity, or
    already on the roster."""


class InvalidCredential(TransactionError):
    """The sortition credential's VRF proof does not verify on the round's seed under the
    operator's VRF key, or its weight is impossible (zero, or above the operator's stake)."""


class RosterFull(TransactionError):
    """The round's roster already holds the maximum number of members."""


class InvalidRoundCertificate(TransactionError):
    """A task, result or integrity certificate does not verify against the round's roster, or it
    certifies another round, attempt, kind or value."""


class NotOnRoster(TransactionError):
    """The executor named by a task certificate is not on the task's roster."""


class InvalidSlashEvidence(TransactionError):
    """Slash evidence does not prove equivocation in the round it names."""


class OutsideDisputeWindow(TransactionError):
    """Slash evidence arrived after the round's dispute window closed (or for a future block)."""


class DuplicateEvidence(TransactionError):
    """This offence (offender, round, view, kind) was already slashed."""


class NothingToSlash(TransactionError):
    """The offender is not an operator with stake: there is nothing to take."""


class UnknownImage(TransactionError):
    """The service names an image digest that is not registered."""


class ImageNotValid(TransactionError):
    """The image is registered but not valid yet at this height, or valid_from is in the past."""


class UnknownService(TransactionError):
    """No service or measurement with this id exists."""


class InvalidInterval(TransactionError):
    """The service's measurement interval is below the chain's minimum."""


class InvalidAmount(TransactionError):
    """A zero amount, or a transfer to oneself (no-ops that would only burn a nonce)."""


class InvalidCapacity(TransactionError):
    """An operator capacity of zero or above genesis.CAPACITY_MAX."""


# --- blocks -------------------------------------------------------------------------------------


class BlockError(LedgerError):
    """A block (or its header or commit certificate) is invalid for the chain it claims to extend.
    Do not vote for it, do not store it; if a peer sent it, penalise the peer."""


class WrongHeight(BlockError):
    """The block's height is not the next height."""


class WrongParent(BlockError):
    """The block's parent hash is not the hash of the current tip."""


class BadTime(BlockError):
    """The block's time is before its parent's time."""


class NotAValidator(BlockError):
    """The block's proposer is not in the validator set."""


class TooManyTransactions(BlockError):
    """The block holds more transactions or bytes than the chain allows."""


class TxRootMismatch(BlockError):
    """The header's transactions root is not the Merkle root of the block's transactions."""


class StateRootMismatch(BlockError):
    """The header's state root is not the root of the state after applying the block."""


class InvalidCommit(BlockError):
    """A commit certificate does not verify against the validator set for this block (wrong round,
    value, kind, signatures or no quorum), or the header's parent commit is missing or invalid."""


# --- store and sync -----------------------------------------------------------------------------


class StoreError(LedgerError):
    """The block store cannot be opened or is inconsistent. The message says what to do (restore
    from peers, delete the file, or fix permissions)."""


class CorruptStore(StoreError):
    """The store holds bytes that do not verify (a hash, certificate or state root mismatch). The
    node must not serve them: rebuild from a backup or resync from peers."""


class SyncError(LedgerError):
    """A sync response does not answer the request (wrong heights, too many blocks, blocks that do
    not chain). Discard it before it touches the store and penalise the peer."""


class ProofError(LedgerError):
    """A record proof does not verify against the genesis (bad certificate, header, state path or
    record). The record is not proven: do not trust it."""
