"""The ledger state: typed records under typed keys, committed by a Merkle trie.

Every piece of state is one record under one key; the first key byte says the record type
(`KEY_TYPES`), so a proof's key alone tells a verifier how to decode the value. The trie leaf of
an entry binds the key to `digest(Domain.STATE_VALUE, record encoding)`.

| key                                  | record       | holds money                  |
|--------------------------------------|--------------|------------------------------|
| 00                                   | Globals      | treasury                     |
| 01 identity                          | Account      | balance                      |
| 02 identity                          | Operator     | stake + unbonding            |
| 03 task id                           | Task         | escrow                       |
| 04 image digest                      | Image        |                              |
| 05 service id                        | Service      |                              |
| 06 measurement id                    | Measurement  |                              |
| 07 height                            | AgendaHead   |                              |
| 08 height chunk                      | AgendaChunk  |                              |
| 09 offence id                        | Offence      |                              |

Total supply (`Globals.supply`) = the sum of the money column over every entry; the fold checks
it after every block (on the entries the block changed) and `check_invariants` over everything.

A `State` is immutable: the fold returns a new one and the old one stays valid.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from typing import Annotated, Final

from ledger.certificates import MEMBERS_MAX, Member, Membership
from ledger.domains import Domain, digest, digest_parts
from ledger.encoding import U8, U32, U64, Hash, MaxItems, PublicKeyBytes, Record
from ledger.errors import InvariantViolation
from ledger.genesis import ChainParams, Genesis
from ledger.statetree import StateTree
from ledger.tx import OperatorStatus

# Events per agenda chunk: one chunk is rewritten per scheduled event, so chunks stay small; the
# number of chunks per height is unbounded (a height may carry any number of events).
AGENDA_CHUNK: Final = 64


class KeyKind(enum.IntEnum):
    """The first byte of a state key."""

    GLOBALS = 0x00
    ACCOUNT = 0x01
    OPERATOR = 0x02
    TASK = 0x03
    IMAGE = 0x04
    SERVICE = 0x05
    MEASUREMENT = 0x06
    AGENDA_HEAD = 0x07
    AGENDA_CHUNK = 0x08
    OFFENCE = 0x09


class TaskStatus(enum.IntEnum):
    """SEEDING: waiting for the block after the one that included it (its hash seeds the draw),
    or, after a credential window that closed empty or lighter than the minimum roster weight,
    for the block after that window (a redraw). DRAWING: credentials are accepted. ELECTING: the
    roster is fixed and runs the BFT round for an executor. EXECUTING: the executor runs the job
    and the roster verifies. COMPLETED, FAILED (no roster of the minimum weight and no time left
    to draw again, or every attempt rejected) and EXPIRED (timeout) are closed."""

    SEEDING = 1
    DRAWING = 2
    ELECTING = 3
    EXECUTING = 4
    COMPLETED = 5
    FAILED = 6
    EXPIRED = 7


TASK_CLOSED: Final = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.EXPIRED})


class ServiceStatus(enum.IntEnum):
    """RUNNING services are measured every interval; VIOLATED and STOPPED ones are not."""

    RUNNING = 1
    VIOLATED = 2
    STOPPED = 3


class MeasurementStatus(enum.IntEnum):
    """DRAWING: credentials accepted. MEASURING: roster fixed. OK, VIOLATION, EXPIRED: closed."""

    DRAWING = 1
    MEASURING = 2
    OK = 3
    VIOLATION = 4
    EXPIRED = 5


MEASUREMENT_CLOSED: Final = frozenset(
    {MeasurementStatus.OK, MeasurementStatus.VIOLATION, MeasurementStatus.EXPIRED}
)


class EventKind(enum.IntEnum):
    """Work the fold does at the start of a block, scheduled by earlier blocks."""

    SEED_TASK = 1  # fix a task's seed from the parent hash; open its credential window
    CLOSE_TASK_DRAW = 2  # fix the task's roster (or draw again, or fail, if it is too light)
    TASK_TIMEOUT = 3  # expire the task if it is still open; refund the escrow
    RELEASE_UNBOND = 4  # return `amount` of unbonding stake to the operator's balance
    OPEN_MEASUREMENT = 5  # start the service's next measurement round
    CLOSE_MEASUREMENT_DRAW = 6
    MEASUREMENT_TIMEOUT = 7


@dataclasses.dataclass(frozen=True, slots=True)
class Globals(Record):
    """Chain-wide totals."""

    supply: U64  # fixed at genesis: nothing mints or burns
    treasury: U64  # slashed stake not paid to reporters
    active_stake: U64  # the stake of ACTIVE operators (sortition's total)


@dataclasses.dataclass(frozen=True, slots=True)
class Account(Record):
    """A balance and the next nonce."""

    balance: U64
    nonce: U64


@dataclasses.dataclass(frozen=True, slots=True)
class Operator(Record):
    """A registered operator. `open_rounds` counts task and measurement rosters it is on that are
    not closed; `dispute_until` is the height until which evidence about its closed rounds may
    still arrive."""

    vrf_key: PublicKeyBytes
    stake: U64
    unbonding: U64
    capacity: U32
    status: OperatorStatus
    open_rounds: U32
    dispute_until: U64
    registered_height: U64
    stake_height: U64  # when the current stake amount took effect (sortition maturity)


@dataclasses.dataclass(frozen=True, slots=True)
class Task(Record):
    """A posted task and everything the ledger decided about it."""

    MAX_BYTES = 128 * MEMBERS_MAX + 512
    poster: PublicKeyBytes
    spec_digest: Hash  # digest(Domain.JOB_SPEC, job_spec); the spec itself is in the post tx
    post_tx: Hash
    fee: U64
    escrow: U64
    tau: U32
    posted_height: U64
    status: TaskStatus
    seed: Hash | None
    # credentials are accepted in blocks below this height (0 before the first draw; while a
    # redrawn task seeds again, the end of the empty window)
    draw_until: U64
    total_stake: U64  # active stake when the seed was fixed (sortition's denominator)
    roster: Annotated[tuple[Member, ...], MaxItems(MEMBERS_MAX)]  # sorted by identity
    attempt: U8
    executor: PublicKeyBytes | None
    report_digest: Hash | None
    closed_height: U64 | None

    def seed_height(self) -> int:
        """The height of the block whose hash seeds the next draw (meaningful while SEEDING): the
        block after the one that included the task, or after the empty or light window of a
        redraw."""
        return (self.draw_until or self.posted_height) + 1

    def roster_weight(self) -> int:
        """The summed weight of the roster's members (compare `ChainParams.min_roster_weight`)."""
        return sum(m.weight for m in self.roster)


@dataclasses.dataclass(frozen=True, slots=True)
class Image(Record):
    """A registered container image."""

    owner: PublicKeyBytes
    valid_from_height: U64
    registered_height: U64


@dataclasses.dataclass(frozen=True, slots=True)
class Service(Record):
    """A deployed long-lived service and its measurement schedule."""

    developer: PublicKeyBytes
    image_digest: Hash
    config_digest: Hash
    operator: PublicKeyBytes
    interval_blocks: U32
    deployed_height: U64
    measurements: U32  # rounds opened so far (the next one's index)
    status: ServiceStatus


@dataclasses.dataclass(frozen=True, slots=True)
class Measurement(Record):
    """One integrity measurement round of a service, and its outcome (the integrity report)."""

    MAX_BYTES = 128 * MEMBERS_MAX + 512
    service_id: Hash
    index: U32
    opened_height: U64
    seed: Hash
    draw_until: U64
    total_stake: U64
    roster: Annotated[tuple[Member, ...], MaxItems(MEMBERS_MAX)]
    status: MeasurementStatus
    report_digest: Hash | None
    closed_height: U64 | None


@dataclasses.dataclass(frozen=True, slots=True)
class Event(Record):
    """One scheduled piece of work."""

    kind: EventKind
    subject: Hash
    amount: U64


@dataclasses.dataclass(frozen=True, slots=True)
class AgendaHead(Record):
    """How many events are scheduled at a height."""

    count: U32


@dataclasses.dataclass(frozen=True, slots=True)
class AgendaChunk(Record):
    """Up to AGENDA_CHUNK events scheduled at a height."""

    MAX_BYTES = 64 * AGENDA_CHUNK + 16
    events: Annotated[tuple[Event, ...], MaxItems(AGENDA_CHUNK)]


@dataclasses.dataclass(frozen=True, slots=True)
class Offence(Record):
    """An offence already punished (so the same evidence never slashes twice)."""

    offender: PublicKeyBytes
    height: U64
    amount: U64


KEY_TYPES: Final[dict[KeyKind, type[Record]]] = {
    KeyKind.GLOBALS: Globals,
    KeyKind.ACCOUNT: Account,
    KeyKind.OPERATOR: Operator,
    KeyKind.TASK: Task,
    KeyKind.IMAGE: Image,
    KeyKind.SERVICE: Service,
    KeyKind.MEASUREMENT: Measurement,
    KeyKind.AGENDA_HEAD: AgendaHead,
    KeyKind.AGENDA_CHUNK: AgendaChunk,
    KeyKind.OFFENCE: Offence,
}
KEY_LENGTHS: Final[dict[KeyKind, int]] = {
    KeyKind.GLOBALS: 1,
    KeyKind.ACCOUNT: 33,
    KeyKind.OPERATOR: 33,
    KeyKind.TASK: 33,
    KeyKind.IMAGE: 33,
    KeyKind.SERVICE: 33,
    KeyKind.MEASUREMENT: 33,
    KeyKind.AGENDA_HEAD: 9,
    KeyKind.AGENDA_CHUNK: 13,
    KeyKind.OFFENCE: 33,
}

GLOBALS_KEY: Final = bytes([KeyKind.GLOBALS])
_A = bytes([KeyKind.ACCOUNT])
_O = bytes([KeyKind.OPERATOR])
_T = bytes([KeyKind.TASK])
_I = bytes([KeyKind.IMAGE])
_S = bytes([KeyKind.SERVICE])
_M = bytes([KeyKind.MEASUREMENT])
_H = bytes([KeyKind.AGENDA_HEAD])
_C = bytes([KeyKind.AGENDA_CHUNK])
_X = bytes([KeyKind.OFFENCE])


def account_key(identity: bytes) -> bytes:
    """The key of an identity's Account."""
    return _A + identity


def operator_key(identity: bytes) -> bytes:
    """The key of an identity's Operator record (its stake)."""
    return _O + identity


def task_key(task_id: bytes) -> bytes:
    """The key of a Task (its result and report digest)."""
    return _T + task_id


def image_key(image_digest: bytes) -> bytes:
    """The key of an Image."""
    return _I + image_digest


def service_key(service_id: bytes) -> bytes:
    """The key of a Service."""
    return _S + service_id


def measurement_key(measurement_id: bytes) -> bytes:
    """The key of a Measurement (an integrity report)."""
    return _M + measurement_id


def agenda_head_key(height: int) -> bytes:
    """The key of the event count at a height."""
    return _H + height.to_bytes(8, "big")


def agenda_chunk_key(height: int, chunk: int) -> bytes:
    """The key of one chunk of events at a height."""
    return _C + height.to_bytes(8, "big") + chunk.to_bytes(4, "big")


def offence_key(offence_id: bytes) -> bytes:
    """The key marking an offence as punished."""
    return _X + offence_id


def key_type(key: bytes) -> type[Record]:
    """The record type stored under `key`. Raises ValueError for a key no state entry can have."""
    try:
        kind = KeyKind(key[0])
    except (IndexError, ValueError):
        raise ValueError(f"not a state key: {key.hex()}") from None
    if len(key) != KEY_LENGTHS[kind]:
        raise ValueError(f"a {kind.name} key is {KEY_LENGTHS[kind]} bytes, got {len(key)}")
    return KEY_TYPES[kind]


def value_digest(record: Record) -> bytes:
    """The digest a trie leaf binds to the key: `digest(Domain.STATE_VALUE, encoding)`."""
    return digest(Domain.STATE_VALUE, record.encode())


def measurement_id(service_id: bytes, index: int) -> bytes:
    """The id of a service's `index`-th measurement round."""
    return digest_parts(Domain.MEASUREMENT_ID, service_id, index.to_bytes(4, "big"))


def task_seed(task_id: bytes, next_block_hash: bytes) -> bytes:
    """A task's sortition seed: H(SEED_TASK_COMMITTEE, task id, hash of the block after the one
    that included the task). The poster cannot grind it: that block did not exist when it signed."""
    return digest_parts(Domain.SEED_TASK_COMMITTEE, task_id, next_block_hash)


def measurement_seed(mid: bytes, parent_hash: bytes) -> bytes:
    """A measurement round's seed: H(SEED_SERVICE_MEASUREMENT, measurement id, hash of the block
    before the one that opened it)."""
    return digest_parts(Domain.SEED_SERVICE_MEASUREMENT, mid, parent_hash)


def money(record: Record | None) -> int:
    """The units a record holds (see the module table)."""
    t = type(record)
    if t is Account:
        return record.balance  # type: ignore[union-attr]
    if t is Operator:
        return record.stake + record.unbonding  # type: ignore[union-attr]
    if t is Task:
        return record.escrow  # type: ignore[union-attr]
    if t is Globals:
        return record.treasury  # type: ignore[union-attr]
    return 0


def roster_membership(roster: tuple[Member, ...]) -> Membership:
    """The certificate membership of a roster. Raises MembershipError if the roster is empty."""
    return Membership.roster(roster)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class State:
    """The ledger state after block `height` (0: genesis). Treat `entries` as read-only."""

    genesis_hash: bytes
    params: ChainParams
    validators: Membership
    height: int
    tip_hash: bytes  # hash of block `height` (the genesis hash at height 0)
    tip_time_ms: int
    entries: Mapping[bytes, Record]
    tree: StateTree
    # keys the last block wrote (all keys at genesis): what a store must persist for it
    changed: frozenset[bytes] = frozenset()

    @property
    def state_root(self) -> bytes:
        """The trie root over every entry."""
        return self.tree.root_hash

    def get(self, key: bytes) -> Record | None:
        """The record under `key`, or None."""
        return self.entries.get(key)

    def account(self, identity: bytes) -> Account | None:
        """The identity's account, or None."""
        return self.entries.get(account_key(identity))  # type: ignore[return-value]

    def operator(self, identity: bytes) -> Operator | None:
        """The identity's operator record, or None."""
        return self.entries.get(operator_key(identity))  # type: ignore[return-value]

    def task(self, task_id: bytes) -> Task | None:
        """The task, or None."""
        return self.entries.get(task_key(task_id))  # type: ignore[return-value]

    def image(self, image_digest: bytes) -> Image | None:
        """The image, or None."""
        return self.entries.get(image_key(image_digest))  # type: ignore[return-value]

    def service(self, service_id: bytes) -> Service | None:
        """The service, or None."""
        return self.entries.get(service_key(service_id))  # type: ignore[return-value]

    def measurement(self, mid: bytes) -> Measurement | None:
        """The measurement round (integrity report), or None."""
        return self.entries.get(measurement_key(mid))  # type: ignore[return-value]

    @property
    def globals(self) -> Globals:
        """Chain-wide totals."""
        return self.entries[GLOBALS_KEY]  # type: ignore[return-value]

    def task_membership(self, task_id: bytes) -> Membership | None:
        """The membership a task's certificates are checked against (None until someone joined)."""
        task = self.task(task_id)
        return roster_membership(task.roster) if task is not None and task.roster else None

    def operators(self) -> Iterator[tuple[bytes, Operator]]:
        """Every (identity, operator) pair, in no particular order."""
        for key, rec in self.entries.items():
            if key[0] == KeyKind.OPERATOR:
                yield key[1:], rec  # type: ignore[misc]


def genesis_state(genesis: Genesis) -> State:
    """The state at height 0. Raises GenesisError if the genesis is invalid."""
    genesis.check()
    entries: dict[bytes, Record] = {}
    for a in genesis.accounts:
        entries[account_key(a.identity)] = Account(a.balance, 0)
    active = 0
    for o in genesis.operators:
        entries.setdefault(account_key(o.identity), Account(0, 0))
        entries[operator_key(o.identity)] = Operator(
            vrf_key=o.vrf_key,
            stake=o.stake,
            unbonding=0,
            capacity=o.capacity,
            status=OperatorStatus.ACTIVE,
            open_rounds=0,
            dispute_until=0,
            registered_height=0,
            stake_height=0,
        )
        active += o.stake
    for m in genesis.images:
        entries[image_key(m.image_digest)] = Image(m.owner, m.valid_from_height, 0)
    supply = sum(a.balance for a in genesis.accounts) + active
    entries[GLOBALS_KEY] = Globals(supply=supply, treasury=0, active_stake=active)
    tree = StateTree.from_items((k, value_digest(v)) for k, v in entries.items())
    return State(
        genesis_hash=genesis.hash(),
        params=genesis.params,
        validators=genesis.validator_membership(),
        height=0,
        tip_hash=genesis.hash(),
        tip_time_ms=genesis.time_ms,
        entries=entries,
        tree=tree,
        changed=frozenset(entries),
    )


def check_invariants(state: State) -> None:
    """Full (O(n)) check: total supply conserved, active stake consistent, every key typed, the
    trie matches the entries. Raises InvariantViolation (a state machine bug)."""
    g = state.globals
    total = sum(money(r) for r in state.entries.values())
    if total != g.supply:
        raise InvariantViolation(f"money held {total} != supply {g.supply}")
    active = sum(o.stake for _, o in state.operators() if o.status == OperatorStatus.ACTIVE)
    if active != g.active_stake:
        raise InvariantViolation(f"active stake {active} != recorded {g.active_stake}")
    for key, rec in state.entries.items():
        if type(rec) is not key_type(key):
            raise InvariantViolation(f"key {key.hex()} holds a {type(rec).__name__}")
    tree = StateTree.from_items((k, value_digest(v)) for k, v in state.entries.items())
    if tree.root_hash != state.state_root:
        raise InvariantViolation("the trie root does not match the entries")
