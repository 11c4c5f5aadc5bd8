"""A deterministic development chain: known keys, a genesis, and a driver that extends the chain.

For devnets, the simulator, the benchmark and tests. Keys come from fixed labels (never use them
for anything of value). `DevChain.extend` builds a block from transactions, has every validator
sign its commit certificate and folds it; the roster helpers sign task and result certificates as
the members of a task's roster would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Final

import vrf
from ledger.block import BlockHeader, CertifiedBlock
from ledger.certificates import (
    Membership,
    QuorumCertificate,
    VoteKind,
    build_certificate,
    result_round_id,
    service_round_id,
    sign_vote,
    task_round_id,
)
from ledger.chain import accept_block, sign_commit
from ledger.encoding import Record
from ledger.errors import LedgerError
from ledger.fold import BuiltBlock, build_block
from ledger.genesis import ChainParams, Genesis, GenesisImage, GenesisOperator, build_genesis
from ledger.signing import IdentityKey
from ledger.state import State, genesis_state
from ledger.tx import (
    Credential,
    RoundKind,
    Transaction,
    VerifiedTxCache,
    sign_transaction,
)

DEV_BALANCE: Final = 10**12
DEV_STAKE: Final = 10**6
DEV_BLOCK_MS: Final = 1000  # one block per second of chain time


def dev_seed(label: str, index: int) -> bytes:
    """A fixed 32-byte seed for the `index`-th key of `label` (not secret: development only)."""
    raw = f"posi-dev/{label}/{index}".encode()
    if len(raw) > 32:
        raise ValueError("label too long for a development seed")
    return raw.ljust(32, b".")


def dev_identity(label: str, index: int) -> IdentityKey:
    """A development identity key."""
    return IdentityKey(dev_seed(label, index))


def dev_vrf_key(index: int) -> vrf.SecretKey:
    """A development VRF key for operator `index`."""
    return vrf.SecretKey.from_seed(dev_seed("vrf", index))


@dataclasses.dataclass(frozen=True, slots=True)
class DevOperator:
    """An operator's identity and VRF keys."""

    identity: IdentityKey
    vrf_key: vrf.SecretKey


@dataclasses.dataclass(frozen=True, slots=True)
class DevNet:
    """Keys and genesis of a development chain."""

    validators: tuple[IdentityKey, ...]
    operators: tuple[DevOperator, ...]
    users: tuple[IdentityKey, ...]
    genesis: Genesis

    @classmethod
    def create(
        cls,
        *,
        validators: int = 4,
        operators: int = 4,
        users: int = 4,
        params: ChainParams | None = None,
        images: Sequence[bytes] = (),
        chain_name: str = "devnet",
        operator_capacity: int = 64,
    ) -> DevNet:
        """A devnet with the given numbers of validators (weight 1 each), operators (stake
        DEV_STAKE, balance DEV_BALANCE) and users (balance DEV_BALANCE)."""
        vkeys = tuple(dev_identity("validator", i) for i in range(validators))
        ops = tuple(DevOperator(dev_identity("op", i), dev_vrf_key(i)) for i in range(operators))
        ukeys = tuple(dev_identity("user", i) for i in range(users))
        balances = {k.public: DEV_BALANCE for k in ukeys}
        balances.update({o.identity.public: DEV_BALANCE for o in ops})
        genesis = build_genesis(
            chain_name=chain_name,
            time_ms=0,
            validators=[(k.public, 1) for k in vkeys],
            accounts=balances,
            operators=[
                GenesisOperator(
                    o.identity.public, bytes(o.vrf_key.public_key), DEV_STAKE, operator_capacity
                )
                for o in ops
            ],
            images=[
                GenesisImage(d, ukeys[0].public if ukeys else vkeys[0].public, 0) for d in images
            ],
            params=params,
        )
        return cls(vkeys, ops, ukeys, genesis)

    @property
    def membership(self) -> Membership:
        """The validator set."""
        return self.genesis.validator_membership()


class DevChain:
    """A chain driven locally: holds the state, the last commit certificate and nonces."""

    def __init__(self, net: DevNet, *, cache: VerifiedTxCache | None = None) -> None:
        self.net = net
        self.state: State = genesis_state(net.genesis)
        self.last_commit: QuorumCertificate | None = None
        self.blocks: list[CertifiedBlock] = []
        self.cache = cache
        self._nonces: dict[bytes, int] = {}

    @property
    def chain(self) -> bytes:
        """The genesis hash (transactions are signed for it)."""
        return self.state.genesis_hash

    def sign(self, key: IdentityKey, body: Record) -> Transaction:
        """Sign `body` with the key's next nonce (tracked locally, assuming every signed
        transaction gets included)."""
        nonce = self._nonces.get(key.public)
        if nonce is None:
            acct = self.state.account(key.public)
            nonce = 0 if acct is None else acct.nonce
        self._nonces[key.public] = nonce + 1
        return sign_transaction(key, self.chain, nonce, body)

    def forget_nonce(self, identity: bytes) -> None:
        """Re-read the identity's nonce from the state next time (after a transaction of it was
        dropped)."""
        self._nonces.pop(identity, None)

    def propose(self, txs: Iterable[Transaction], time_ms: int | None = None) -> BuiltBlock:
        """Build the next block (proposer: validators in turn) without applying it."""
        height = self.state.height + 1
        proposer = self.net.validators[height % len(self.net.validators)]
        return build_block(
            self.state,
            txs,
            proposer=proposer.public,
            time_ms=height * DEV_BLOCK_MS if time_ms is None else time_ms,
            parent_commit=self.last_commit,
            cache=self.cache,
        )

    def commit(self, header: BlockHeader) -> QuorumCertificate:
        """Every validator signs the commit certificate of `header`."""
        return sign_commit(header, self.net.validators, self.net.membership)

    def extend(self, txs: Iterable[Transaction] = (), *, strict: bool = True) -> CertifiedBlock:
        """Build, certify and apply the next block. With `strict`, raises the first rejected
        transaction's error instead of leaving it out."""
        built = self.propose(txs)
        if strict and built.rejected:
            raise built.rejected[0][1]
        certified = CertifiedBlock(built.block, self.commit(built.block.header))
        self.state = accept_block(self.state, certified, cache=self.cache)
        self.last_commit = certified.commit
        self.blocks.append(certified)
        return certified

    # rounds -------------------------------------------------------------------------------------

    def credential(
        self, op: DevOperator, kind: RoundKind, subject: bytes, seed: bytes, weight: int = 1
    ) -> Transaction:
        """A signed credential of `op` for a round whose seed is `seed`."""
        proof = bytes(op.vrf_key.prove(seed))
        return self.sign(op.identity, Credential(kind, subject, proof, weight))

    def roster_keys(self, membership: Membership) -> list[IdentityKey]:
        """The identity keys of a membership's members (they must be devnet operators)."""
        by_public = {o.identity.public: o.identity for o in self.net.operators}
        return [by_public[m.identity] for m in membership.members]

    def round_certificate(
        self,
        membership: Membership,
        *,
        kind: VoteKind,
        context: bytes,
        view: int,
        value: bytes,
        signers: Iterable[IdentityKey] | None = None,
    ) -> QuorumCertificate:
        """A certificate signed by `signers` (default: every member)."""
        keys = self.roster_keys(membership) if signers is None else list(signers)
        votes = [
            sign_vote(k, membership, kind=kind, context=context, view=view, value=value)
            for k in keys
        ]
        return build_certificate(votes, membership).certificate

    def task_membership(self, task_id: bytes) -> Membership:
        """The roster of a task (raises LedgerError if it has none yet)."""
        membership = self.state.task_membership(task_id)
        if membership is None:
            raise LedgerError("the task has no roster yet")
        return membership

    def executor_certificate(
        self, task_id: bytes, executor: bytes, attempt: int = 0, view: int = 0
    ) -> QuorumCertificate:
        """The roster's COMMIT certificate choosing `executor`."""
        return self.round_certificate(
            self.task_membership(task_id),
            kind=VoteKind.COMMIT,
            context=task_round_id(task_id, attempt),
            view=view,
            value=executor,
        )

    def result_certificate(
        self,
        task_id: bytes,
        report_digest: bytes,
        attempt: int = 0,
        *,
        accept: bool = True,
        view: int = 0,
    ) -> QuorumCertificate:
        """The roster's RESULT_ACCEPT certificate over the report digest, or RESULT_REJECT over
        the attempt's executor."""
        task = self.state.task(task_id)
        if task is None or task.executor is None:
            raise LedgerError("the task has no executor")
        value = report_digest if accept else task.executor
        return self.round_certificate(
            self.task_membership(task_id),
            kind=VoteKind.RESULT_ACCEPT if accept else VoteKind.RESULT_REJECT,
            context=result_round_id(task_id, attempt),
            view=view,
            value=value,
        )

    def measurement_certificate(
        self, mid: bytes, report_digest: bytes, *, accept: bool = True
    ) -> QuorumCertificate:
        """A measurement roster's certificate over the report digest."""
        meas = self.state.measurement(mid)
        if meas is None or not meas.roster:
            raise LedgerError("the measurement has no roster")
        return self.round_certificate(
            Membership.roster(meas.roster),
            kind=VoteKind.RESULT_ACCEPT if accept else VoteKind.RESULT_REJECT,
            context=service_round_id(mid),
            view=0,
            value=report_digest,
        )
