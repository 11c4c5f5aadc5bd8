"""Transactions: one signed envelope, one payload record per kind.

Wire form: `Transaction(kind, signer, nonce, payload, signature)` where `payload` is the canonical
encoding of the kind's record (`PAYLOAD_TYPES`). The signature is Ed25519 by `signer` over
`Domain.TX_SIG || UnsignedTx(chain, kind, signer, nonce, payload)`, where `chain` is the genesis
hash: a transaction signed for one chain never verifies on another. `nonce` is the signer's next
nonce (0, 1, 2...): a replayed or reordered transaction is rejected with BadNonce.

Ids derived from a transaction hash the unsigned body, so they exist before the signature and
never depend on it: task id = `digest(Domain.TASK_ID, unsigned)`, service id =
`digest(Domain.SERVICE_ID, unsigned)`. The transaction hash (the Merkle leaf of the block's
transactions root, and the key of the verified-transaction cache) is `digest(Domain.TX, wire)`.

Signature checks dominate the cost of applying a block (about 70 us each), so a node checks each
transaction once, when it enters the mempool (`verify_transaction`), and hands the fold a
`VerifiedTxCache`: the fold skips the check for any transaction hash in it. The cache memoises a
pure function of the bytes, so the fold's result never depends on it.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from typing import Annotated, Final

from ledger.certificates import EquivocationEvidence, QuorumCertificate
from ledger.domains import Domain, digest
from ledger.encoding import U8, U32, U64, Hash, Len, MaxLen, PublicKeyBytes, Record, SignatureBytes
from ledger.errors import BadSignature, DecodeError, MalformedPayload, SignatureError
from ledger.signing import IdentityKey, verify_signature

# A job spec is the canonical encoding of executor.spec.JobSpec; 64 KiB holds argv, env and a
# small inline input (large inputs travel by hash).
JOB_SPEC_MAX: Final = 64 * 1024
# The largest payload is a task result or task certificate carrying a certificate of MEMBERS_MAX
# signers (about 82 KB); a post-task payload is a 64 KiB job spec plus a few fields.
PAYLOAD_MAX: Final = 96 * 1024
TX_BYTES_MAX: Final = PAYLOAD_MAX + 160
VRF_PROOF_LEN: Final = 80
# Transactions remembered as signature-checked; a few blocks' worth of a busy mempool.
VERIFIED_CACHE_MAX: Final = 65_536


class TxKind(enum.IntEnum):
    """Every transaction type (see ledger/README.md for each one's rules)."""

    TRANSFER = 1
    REGISTER_OPERATOR = 2
    UPDATE_OPERATOR = 3
    BOND = 4
    UNBOND = 5
    SET_STATUS = 6
    POST_TASK = 7
    CREDENTIAL = 8
    TASK_CERTIFICATE = 9
    TASK_RESULT = 10
    SLASH_EVIDENCE = 11
    REGISTER_IMAGE = 12
    DEPLOY_SERVICE = 13
    INTEGRITY_REPORT = 14


class OperatorStatus(enum.IntEnum):
    """ACTIVE operators are drawn into rounds; LEAVING ones finish their open rounds but are not
    drawn; INACTIVE ones are neither (and may unbond everything)."""

    ACTIVE = 1
    LEAVING = 2
    INACTIVE = 3


class RoundKind(enum.IntEnum):
    """What a round decides: a block (validators), a task (its roster) or a service measurement."""

    BLOCK = 1
    TASK = 2
    MEASUREMENT = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Transfer(Record):
    """Move `amount` from the signer's balance to `to` (creating `to`'s account)."""

    to: PublicKeyBytes
    amount: U64


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterOperator(Record):
    """Become an active operator: bond `stake` from the balance, register the VRF key and the
    number of rounds served at once."""

    vrf_key: PublicKeyBytes
    stake: U64
    capacity: U32


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateOperator(Record):
    """Replace the VRF key (for rounds whose credentials come later) and the capacity."""

    vrf_key: PublicKeyBytes
    capacity: U32


@dataclasses.dataclass(frozen=True, slots=True)
class Bond(Record):
    """Move `amount` from the balance into bonded stake."""

    amount: U64


@dataclasses.dataclass(frozen=True, slots=True)
class Unbond(Record):
    """Move `amount` of stake into unbonding; it returns to the balance after the unbonding
    window (and stays slashable until then)."""

    amount: U64


@dataclasses.dataclass(frozen=True, slots=True)
class SetStatus(Record):
    """Change the operator's status (ACTIVE, LEAVING, INACTIVE; see ledger/README.md)."""

    status: OperatorStatus


@dataclasses.dataclass(frozen=True, slots=True)
class PostTask(Record):
    """A task: the job spec (opaque to the ledger), the fee held in escrow, the committee size."""

    MAX_BYTES = JOB_SPEC_MAX + 64
    job_spec: Annotated[bytes, MaxLen(JOB_SPEC_MAX)]
    fee: U64
    tau: U32


@dataclasses.dataclass(frozen=True, slots=True)
class Credential(Record):
    """A sortition credential: the signer's VRF proof on the round's seed and the weight it
    claims. `subject` is the task id or the measurement id."""

    round: RoundKind
    subject: Hash
    vrf_proof: Annotated[bytes, Len(VRF_PROOF_LEN)]
    weight: U64


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCertificate(Record):
    """The roster's executor agreement for attempt `attempt` of a task: a COMMIT certificate over
    `task_round_id(task_id, attempt)` whose value is `executor`."""

    MAX_BYTES = PAYLOAD_MAX
    task_id: Hash
    attempt: U8
    executor: PublicKeyBytes
    certificate: QuorumCertificate


@dataclasses.dataclass(frozen=True, slots=True)
class TaskResult(Record):
    """The roster's result agreement for attempt `attempt` (round `result_round_id`): RESULT_ACCEPT
    over the report digest, or RESULT_REJECT over the executor's identity (its report was wrong or
    missing; `report_digest` then names the rejected report, or is zeros)."""

    MAX_BYTES = PAYLOAD_MAX
    task_id: Hash
    attempt: U8
    report_digest: Hash
    certificate: QuorumCertificate


@dataclasses.dataclass(frozen=True, slots=True)
class SlashEvidence(Record):
    """Equivocation evidence in a round: `subject`/`number` name it (task id and attempt;
    measurement id and 0; zero hash and block height)."""

    MAX_BYTES = 1024
    round: RoundKind
    subject: Hash
    number: U64
    evidence: EquivocationEvidence


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterImage(Record):
    """Register a container image digest, valid from `valid_from_height` on."""

    image_digest: Hash
    valid_from_height: U64


@dataclasses.dataclass(frozen=True, slots=True)
class DeployService(Record):
    """Ask `operator` to run a registered image long-lived, measured every `interval_blocks`
    against the registered digest and `config_digest`."""

    image_digest: Hash
    config_digest: Hash
    operator: PublicKeyBytes
    interval_blocks: U32


@dataclasses.dataclass(frozen=True, slots=True)
class IntegrityReport(Record):
    """A measurement committee's certificate: RESULT_ACCEPT (the service matches) or RESULT_REJECT
    (a violation), both over the report digest."""

    MAX_BYTES = PAYLOAD_MAX
    measurement_id: Hash
    report_digest: Hash
    certificate: QuorumCertificate


PAYLOAD_TYPES: Final[dict[TxKind, type[Record]]] = {
    TxKind.TRANSFER: Transfer,
    TxKind.REGISTER_OPERATOR: RegisterOperator,
    TxKind.UPDATE_OPERATOR: UpdateOperator,
    TxKind.BOND: Bond,
    TxKind.UNBOND: Unbond,
    TxKind.SET_STATUS: SetStatus,
    TxKind.POST_TASK: PostTask,
    TxKind.CREDENTIAL: Credential,
    TxKind.TASK_CERTIFICATE: TaskCertificate,
    TxKind.TASK_RESULT: TaskResult,
    TxKind.SLASH_EVIDENCE: SlashEvidence,
    TxKind.REGISTER_IMAGE: RegisterImage,
    TxKind.DEPLOY_SERVICE: DeployService,
    TxKind.INTEGRITY_REPORT: IntegrityReport,
}
KIND_OF: Final[dict[type[Record], TxKind]] = {v: k for k, v in PAYLOAD_TYPES.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class UnsignedTx(Record):
    """What the signer signs (under Domain.TX_SIG) and what ids are derived from."""

    MAX_BYTES = TX_BYTES_MAX + 40
    chain: Hash
    kind: TxKind
    signer: PublicKeyBytes
    nonce: U64
    payload: Annotated[bytes, MaxLen(PAYLOAD_MAX)]


@dataclasses.dataclass(frozen=True, slots=True)
class Transaction(Record):
    """A signed transaction as it travels and as blocks hold it. Unverified: check it with
    `verify_transaction` (or let the fold do it)."""

    MAX_BYTES = TX_BYTES_MAX
    kind: TxKind
    signer: PublicKeyBytes
    nonce: U64
    payload: Annotated[bytes, MaxLen(PAYLOAD_MAX)]
    signature: SignatureBytes

    def unsigned(self, chain: bytes) -> UnsignedTx:
        """The signed body for the chain with genesis hash `chain`."""
        return UnsignedTx(chain, self.kind, self.signer, self.nonce, self.payload)

    def hash(self) -> bytes:
        """`digest(Domain.TX, wire encoding)`: the Merkle leaf and the cache key."""
        return digest(Domain.TX, self.encode())

    def body(self) -> Record:
        """The decoded payload. Raises MalformedPayload if it is not the canonical encoding of the
        kind's record: reject the transaction."""
        try:
            return PAYLOAD_TYPES[self.kind].decode(self.payload)
        except DecodeError as exc:
            raise MalformedPayload(f"{self.kind.name} payload: {exc}") from None


def sign_transaction(key: IdentityKey, chain: bytes, nonce: int, body: Record) -> Transaction:
    """Sign `body` as the holder of `key` for the chain with genesis hash `chain`. Raises
    EncodeError if the body is out of bounds, KeyError if it is not a payload type (local
    misuse)."""
    kind = KIND_OF[type(body)]
    payload = body.encode()
    unsigned = UnsignedTx(chain, kind, key.public, nonce, payload)
    signature = key.sign(Domain.TX_SIG, unsigned.encode())
    return Transaction(kind, key.public, nonce, payload, signature)


def derived_id(domain: Domain, tx: Transaction, chain: bytes) -> bytes:
    """An id derived from the unsigned body (task id: Domain.TASK_ID; service id:
    Domain.SERVICE_ID)."""
    return digest(domain, tx.unsigned(chain).encode())


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedTransaction:
    """A transaction whose payload decoded and whose signature verified for one chain. Only
    `verify_transaction` makes one."""

    tx: Transaction
    hash: bytes
    body: Record


def verify_transaction(tx: Transaction, chain: bytes) -> VerifiedTransaction:
    """Decode the payload and check the signature for the chain with genesis hash `chain`.

    Raises MalformedPayload or BadSignature (TransactionErrors): drop the transaction and
    penalise the peer that sent it. State checks (nonce, balance...) happen in the fold."""
    body = tx.body()
    try:
        verify_signature(tx.signer, Domain.TX_SIG, tx.unsigned(chain).encode(), tx.signature)
    except SignatureError as exc:
        raise BadSignature(f"{tx.kind.name} from {tx.signer.hex()[:16]}...: {exc}") from None
    return VerifiedTransaction(tx, tx.hash(), body)


class VerifiedTxCache:
    """Bounded memo of checked transactions by hash (oldest dropped first). Not thread-safe; one
    per chain (a signature is checked against one genesis hash)."""

    __slots__ = ("_items", "_max")

    def __init__(self, max_items: int = VERIFIED_CACHE_MAX) -> None:
        self._items: collections.OrderedDict[bytes, Record] = collections.OrderedDict()
        self._max = max_items

    def add(self, vtx: VerifiedTransaction) -> None:
        """Remember a verified transaction."""
        self._items[vtx.hash] = vtx.body
        if len(self._items) > self._max:
            self._items.popitem(last=False)

    def body(self, tx_hash: bytes) -> Record | None:
        """The decoded body of a verified transaction, or None if it was never verified here."""
        return self._items.get(tx_hash)

    def __len__(self) -> int:
        return len(self._items)
