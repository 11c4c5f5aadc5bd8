"""Sortition credentials: who was drawn into a committee, with which weight, provably.

For a round (a task, a block height, a service measurement) every node knows a public seed:
`committee_seed(role, subject, block_hash)`, domain-separated per role, so one VRF output never
serves two roles. An eligible operator proves the seed with its registered VRF key; the proof's
output beta gives its weight (`sortition.select_weight`) and its priority. The credential it
publishes carries (subject, role, identity key, VRF key, proof, claimed weight);
`UnverifiedCredential.verify(seed, stake_table, tau=...)` recomputes everything and returns the
trusted `Credential`.

A node that is not drawn can say why: `draw` returns `NotSelected(reason, detail)` instead of a
credential (not registered, wrong VRF key, inactive, no stake, stale stake, over capacity, or
weight 0).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterable, Mapping
from typing import Annotated, Final

import vrf
from committee import sortition
from committee.errors import (
    ConfigError,
    CredentialError,
    ForgedCredential,
    IneligibleOperator,
    LocalMisuse,
    WrongClaimedWeight,
)
from committee.sortition import TAU_MAX
from ledger.certificates import Member, Membership
from ledger.domains import Domain, digest_parts
from ledger.encoding import U32, Hash, Len, PublicKeyBytes, Record

# A claimed weight above this is refused before any arithmetic: the expected weight of the whole
# committee is tau (a few hundred), so a single operator's weight never comes near 2^20.
CLAIMED_WEIGHT_MAX: Final = 1 << 20


class Role(enum.IntEnum):
    """What a committee is drawn for. Each role has its own seed domain."""

    TASK_COMMITTEE = 1
    BLOCK_COMMITTEE = 2
    SERVICE_MEASUREMENT = 3


_SEED_DOMAINS: Final = {
    Role.TASK_COMMITTEE: Domain.SEED_TASK_COMMITTEE,
    Role.BLOCK_COMMITTEE: Domain.SEED_BLOCK_COMMITTEE,
    Role.SERVICE_MEASUREMENT: Domain.SEED_SERVICE_MEASUREMENT,
}


def committee_seed(role: Role, subject: bytes, block_hash: bytes) -> bytes:
    """The public sortition seed (the VRF input) of a round: for a task, subject = task id and
    block_hash = the hash of the block after the one that included the task."""
    if len(subject) != 32 or len(block_hash) != 32:
        raise LocalMisuse("subjects and block hashes are 32 bytes")
    return digest_parts(_SEED_DOMAINS[role], subject, block_hash)


def height_subject(height: int) -> bytes:
    """The 32-byte subject of a round that is identified by a block height."""
    return height.to_bytes(32, "big")


class NotSelectedReason(enum.Enum):
    """Why an operator is not in a committee."""

    NOT_REGISTERED = "not-registered"  # no operator with this identity in the stake table
    VRF_KEY_MISMATCH = "vrf-key-mismatch"  # the local VRF key is not the registered one
    INACTIVE = "inactive"  # status is leaving or inactive
    NO_STAKE = "no-stake"  # nothing bonded
    STALE_STAKE = "stale-stake"  # stake changed too recently to count at the table's height
    OVER_CAPACITY = "over-capacity"  # the operator already runs as many tasks as it declared
    WEIGHT_ZERO = "weight-zero"  # eligible, but sortition drew no sub-user


@dataclasses.dataclass(frozen=True, slots=True)
class NotSelected:
    """An explanation of non-selection, for operators and logs."""

    reason: NotSelectedReason
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class StakeEntry:
    """What sortition needs to know about one operator, read from the ledger state."""

    identity: bytes
    vrf_key: bytes
    stake: int
    active: bool
    stake_height: int  # height at which the current stake amount took effect
    capacity: int = 1  # concurrent tasks the operator declared
    load: int = 0  # tasks assigned to it and not yet finished


@dataclasses.dataclass(frozen=True)
class StakeTable:
    """A snapshot of operators' stake at ledger height `height`, for one seed.

    Stake counts only once it is `maturity_blocks` old at `height`, so an operator can not move
    stake in after it learns a seed. `total` is the eligible stake (what tau is a share of).
    Raises ConfigError for negative numbers or entries keyed by the wrong identity."""

    height: int
    entries: Mapping[bytes, StakeEntry]
    maturity_blocks: int = 0

    def __post_init__(self) -> None:
        if self.height < 0 or self.maturity_blocks < 0:
            raise ConfigError("StakeTable.height and maturity_blocks must be >= 0")
        for key, entry in self.entries.items():
            if key != entry.identity:
                raise ConfigError("StakeTable.entries must be keyed by identity")
            if entry.stake < 0 or entry.capacity < 0 or entry.load < 0:
                raise ConfigError(f"operator {key.hex()[:16]}: negative stake/capacity/load")

    @classmethod
    def of(cls, entries: Iterable[StakeEntry], height: int, maturity_blocks: int = 0) -> StakeTable:
        """A table from a list of entries."""
        return cls(height, {e.identity: e for e in entries}, maturity_blocks)

    def ineligibility(self, entry: StakeEntry) -> NotSelected | None:
        """Why `entry` can not be drawn at this height, or None if it is eligible."""
        if not entry.active:
            return NotSelected(NotSelectedReason.INACTIVE, "operator status is not active")
        if entry.stake == 0:
            return NotSelected(NotSelectedReason.NO_STAKE, "no stake is bonded")
        if entry.stake_height + self.maturity_blocks > self.height:
            return NotSelected(
                NotSelectedReason.STALE_STAKE,
                f"stake changed at height {entry.stake_height}; it counts from height "
                f"{entry.stake_height + self.maturity_blocks} (table is at {self.height})",
            )
        if entry.load >= entry.capacity:
            return NotSelected(
                NotSelectedReason.OVER_CAPACITY,
                f"running {entry.load} of {entry.capacity} declared concurrent tasks",
            )
        return None

    @functools.cached_property
    def total(self) -> int:
        """The total eligible stake."""
        return sum(e.stake for e in self.entries.values() if self.ineligibility(e) is None)


def _check_tau(tau: int) -> None:
    if not isinstance(tau, int) or not 1 <= tau <= TAU_MAX:
        raise LocalMisuse(f"tau must be an int in [1, {TAU_MAX}], got {tau!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class UnverifiedCredential(Record):
    """A credential as it arrives from a peer or the ledger. Call `verify` before trusting it."""

    MAX_BYTES = 256
    subject: Hash  # task id, height_subject(height) or measurement id
    role: Role
    operator: PublicKeyBytes  # identity key
    vrf_key: PublicKeyBytes
    proof: Annotated[bytes, Len(vrf.PROOF_LEN)]
    weight: U32  # claimed

    def digest(self, domain: Domain = Domain.CREDENTIAL) -> bytes:
        """The credential's digest (the `credential` field of its roster member)."""
        return Record.digest(self, domain)

    def verify(self, seed: bytes, stake_table: StakeTable, *, tau: int) -> Credential:
        """Check the credential for `seed` (the round's `committee_seed` for this role and subject)
        against the stake table and the round's expected committee size `tau`: the operator is
        registered with this VRF key and eligible, the proof verifies, and the claimed weight is
        the sortition weight (and is not zero). Returns the trusted `Credential`.

        Raises IneligibleOperator, ForgedCredential or WrongClaimedWeight (all CredentialError, a
        RemoteProtocolError): reject the credential and penalise the peer that sent it. Raises
        LocalMisuse if tau is out of range."""
        _check_tau(tau)
        entry = stake_table.entries.get(self.operator)
        if entry is None:
            raise IneligibleOperator(
                "operator is not registered",
                reason=NotSelectedReason.NOT_REGISTERED,
                peer=self.operator,
            )
        if entry.vrf_key != self.vrf_key:
            raise ForgedCredential(
                "the VRF key is not the operator's registered key", peer=self.operator
            )
        why = stake_table.ineligibility(entry)
        if why is not None:
            raise IneligibleOperator(why.detail, reason=why.reason, peer=self.operator)
        if not 1 <= self.weight <= CLAIMED_WEIGHT_MAX:
            raise WrongClaimedWeight(f"claimed weight {self.weight} is out of range")
        try:
            beta = vrf.PublicKey.from_bytes(self.vrf_key).verify(seed, self.proof)
        except (vrf.InvalidProof, vrf.InvalidKey) as exc:
            raise ForgedCredential(
                f"VRF proof does not verify: {exc}", peer=self.operator
            ) from None
        weight = sortition.select_weight(beta, entry.stake, tau, stake_table.total)
        if weight != self.weight:
            raise WrongClaimedWeight(
                f"claimed weight {self.weight}, sortition gives {weight}", peer=self.operator
            )
        return Credential(self, beta, sortition.priority(beta, weight))


@dataclasses.dataclass(frozen=True, slots=True)
class Credential:
    """A verified credential: the operator was drawn with `weight`, and ranks by `priority`
    (lower first). Only `UnverifiedCredential.verify` and `draw` make one."""

    record: UnverifiedCredential
    beta: bytes
    priority: bytes

    @property
    def operator(self) -> bytes:
        return self.record.operator

    @property
    def weight(self) -> int:
        return self.record.weight

    def member(self) -> Member:
        """The roster member this credential makes."""
        return Member(self.record.operator, self.record.weight, self.record.digest())


def draw(
    vrf_secret: vrf.SecretKey,
    identity: bytes,
    *,
    role: Role,
    subject: bytes,
    seed: bytes,
    stake_table: StakeTable,
    tau: int,
) -> Credential | NotSelected:
    """Run sortition for this node: a `Credential` if it is drawn, else why not. Ineligible
    operators return before any VRF work; the weight-0 test is one comparison. Raises LocalMisuse
    for a tau out of range."""
    _check_tau(tau)
    entry = stake_table.entries.get(identity)
    if entry is None:
        return NotSelected(NotSelectedReason.NOT_REGISTERED, "identity is not in the stake table")
    if entry.vrf_key != vrf_secret.public_key.key:
        return NotSelected(
            NotSelectedReason.VRF_KEY_MISMATCH,
            "the local VRF key is not the registered one: re-register the operator's VRF key",
        )
    why = stake_table.ineligibility(entry)
    if why is not None:
        return why
    proof = vrf_secret.prove(seed)
    beta = proof.to_hash()
    total = stake_table.total
    if sortition.is_weight_zero(beta, entry.stake, tau, total):
        return NotSelected(
            NotSelectedReason.WEIGHT_ZERO,
            f"no sub-user drawn (stake {entry.stake} of {total}, tau {tau})",
        )
    weight = sortition.select_weight(beta, entry.stake, tau, total)
    record = UnverifiedCredential(
        subject, role, identity, vrf_secret.public_key.key, proof.pi, weight
    )
    return Credential(record, beta, sortition.priority(beta, weight))


def roster(credentials: Iterable[Credential]) -> tuple[Membership, tuple[int, ...]]:
    """The membership (canonical order: by identity) and the candidate ranking (member indices by
    ascending priority) of a task's verified credentials. Raises CredentialError if two
    credentials name the same operator, ConfigError if there are none or too many."""
    creds = list(credentials)
    if len({c.operator for c in creds}) != len(creds):
        raise CredentialError("two credentials for one operator")
    try:
        membership = Membership.roster(c.member() for c in creds)
    except ValueError as exc:
        raise ConfigError(f"roster: {exc}") from None
    priority = {c.operator: c.priority for c in creds}
    ranking = sorted(range(len(membership)), key=lambda i: priority[membership.members[i].identity])
    return membership, tuple(ranking)
