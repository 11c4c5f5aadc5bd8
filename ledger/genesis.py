"""Chain parameters and the genesis record: the one file every node of a chain must share.

The genesis file is JSON (operators edit it by hand); its identity is the hash of the canonical
msgpack of the *parsed* record, `digest(Domain.GENESIS, genesis.encode())`, so whitespace, key
order and the order of accounts, operators and images in the file do not change it (those lists
are sorted when parsed). The validator list keeps its order: it is the membership order that
commit certificates index into.

`build_genesis` is the pure constructor for tools (`posi-peer devnet init`, the simulator, tests).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final

import vrf
from ledger.certificates import MEMBERS_MAX, Membership
from ledger.domains import Domain, digest
from ledger.encoding import U8, U16, U32, U64, Hash, MaxItems, MaxLen, PublicKeyBytes, Record
from ledger.errors import EncodeError, GenesisError

GENESIS_FORMAT: Final = "posi-genesis/1"
BPS: Final = 10_000  # basis points in one whole
# Hard ceilings the parameters may not exceed, whatever a genesis file says.
# 8192 transactions of a few hundred bytes apply in well under a second on one core.
MAX_TXS_PER_BLOCK: Final = 8192
# 16 MiB keeps a block (and a sync batch of a few blocks) far below encoding.DECODE_BYTES_MAX.
BLOCK_BYTES_MAX: Final = 16 * 1024 * 1024
# Genesis lists: a large network's initial allocation fits; a bigger one belongs in transactions.
GENESIS_ACCOUNTS_MAX: Final = 100_000
GENESIS_IMAGES_MAX: Final = 4096
GENESIS_BYTES_MAX: Final = 16 * 1024 * 1024
CHAIN_NAME_MAX: Final = 64
# At most this many attempts (executor handovers after rejected results) per task: a U8.
ATTEMPTS_MAX: Final = 16
# Capacity is the number of rounds an operator serves at once; 4096 is far past any real host.
CAPACITY_MAX: Final = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class ChainParams(Record):
    """Every tunable rule of the state machine. Heights and windows are in blocks, shares in basis
    points, amounts in the chain's smallest unit."""

    MAX_BYTES = 512
    max_txs_per_block: U32 = 4096
    max_block_bytes: U32 = 8 * 1024 * 1024
    min_stake: U64 = 1_000
    min_task_fee: U64 = 1
    tau_max: U32 = 64
    # credentials for a round are accepted for this many blocks once its seed is known
    credential_window_blocks: U32 = 3
    # a task's roster must weigh at least this share of its tau (and at least 1) when its window
    # closes, or the task is drawn again (see `min_roster_weight`)
    min_roster_share_bps: U16 = 5_000
    task_timeout_blocks: U32 = 100
    max_attempts: U8 = 3
    dispute_window_blocks: U32 = 100
    unbonding_blocks: U32 = 250
    executor_share_bps: U16 = 5_000
    slash_equivocation_bps: U16 = 1_000
    slash_wrong_result_bps: U16 = 2_000
    slash_violation_bps: U16 = 2_000
    reporter_share_bps: U16 = 1_000
    min_measurement_interval_blocks: U32 = 10
    measurement_timeout_blocks: U32 = 20

    def min_roster_weight(self, tau: int) -> int:
        """The least roster weight a task of expected committee size `tau` runs with."""
        return min_roster_weight(tau, self.min_roster_share_bps)

    def check(self) -> None:
        """Raise GenesisError naming the first broken rule (the operator must fix the file)."""
        if not 1 <= self.max_txs_per_block <= MAX_TXS_PER_BLOCK:
            raise GenesisError(f"params.max_txs_per_block must be in [1, {MAX_TXS_PER_BLOCK}]")
        if not 64 * 1024 <= self.max_block_bytes <= BLOCK_BYTES_MAX:
            raise GenesisError(f"params.max_block_bytes must be in [65536, {BLOCK_BYTES_MAX}]")
        if self.min_stake < 1:
            raise GenesisError("params.min_stake must be at least 1")
        if not 1 <= self.tau_max <= MEMBERS_MAX:
            raise GenesisError(f"params.tau_max must be in [1, {MEMBERS_MAX}] (roster bound)")
        if self.credential_window_blocks < 1:
            raise GenesisError("params.credential_window_blocks must be at least 1")
        if self.task_timeout_blocks <= self.credential_window_blocks + 2:
            raise GenesisError(
                "params.task_timeout_blocks must exceed credential_window_blocks + 2 (a task needs "
                "its seed block and its credential window before it can run)"
            )
        if not 1 <= self.max_attempts <= ATTEMPTS_MAX:
            raise GenesisError(f"params.max_attempts must be in [1, {ATTEMPTS_MAX}]")
        if self.dispute_window_blocks < 1:
            raise GenesisError("params.dispute_window_blocks must be at least 1")
        longest_round = max(self.task_timeout_blocks, self.measurement_timeout_blocks)
        if self.unbonding_blocks < longest_round + self.dispute_window_blocks:
            raise GenesisError(
                "params.unbonding_blocks must be at least max(task_timeout_blocks, "
                "measurement_timeout_blocks) + dispute_window_blocks, so stake stays slashable "
                "until every dispute about the rounds it served has closed"
            )
        for name in (
            "min_roster_share_bps",
            "executor_share_bps",
            "slash_equivocation_bps",
            "slash_wrong_result_bps",
            "slash_violation_bps",
            "reporter_share_bps",
        ):
            if getattr(self, name) > BPS:
                raise GenesisError(f"params.{name} must be at most {BPS} (basis points)")
        if self.min_measurement_interval_blocks < 1:
            raise GenesisError("params.min_measurement_interval_blocks must be at least 1")
        if self.measurement_timeout_blocks <= self.credential_window_blocks + 1:
            raise GenesisError(
                "params.measurement_timeout_blocks must exceed credential_window_blocks + 1"
            )


def min_roster_weight(tau: int, share_bps: int) -> int:
    """`share_bps` of `tau`, rounded up, and at least 1 (a share of 0 accepts any non-empty
    roster): the least weight a task's roster must have when its credential window closes."""
    return max(1, -(-tau * share_bps // BPS))


@dataclasses.dataclass(frozen=True, slots=True)
class GenesisValidator(Record):
    """A member of the fixed validator set that finalises blocks."""

    identity: PublicKeyBytes
    weight: U64


@dataclasses.dataclass(frozen=True, slots=True)
class GenesisAccount(Record):
    """An initial balance."""

    identity: PublicKeyBytes
    balance: U64


@dataclasses.dataclass(frozen=True, slots=True)
class GenesisOperator(Record):
    """An operator registered (and active) from the first block, with bonded stake."""

    identity: PublicKeyBytes
    vrf_key: PublicKeyBytes
    stake: U64
    capacity: U32


@dataclasses.dataclass(frozen=True, slots=True)
class GenesisImage(Record):
    """A container image registered from the first block."""

    image_digest: Hash
    owner: PublicKeyBytes
    valid_from_height: U64


@dataclasses.dataclass(frozen=True, slots=True)
class Genesis(Record):
    """The parsed genesis file."""

    MAX_BYTES = GENESIS_BYTES_MAX
    chain_name: Annotated[str, MaxLen(CHAIN_NAME_MAX)]
    time_ms: U64
    params: ChainParams
    validators: Annotated[tuple[GenesisValidator, ...], MaxItems(MEMBERS_MAX)]
    accounts: Annotated[tuple[GenesisAccount, ...], MaxItems(GENESIS_ACCOUNTS_MAX)]
    operators: Annotated[tuple[GenesisOperator, ...], MaxItems(GENESIS_ACCOUNTS_MAX)]
    images: Annotated[tuple[GenesisImage, ...], MaxItems(GENESIS_IMAGES_MAX)]

    def hash(self) -> bytes:
        """The chain's identity: `digest(Domain.GENESIS, canonical encoding)`."""
        return digest(Domain.GENESIS, self.encode())

    def validator_membership(self) -> Membership:
        """The validator set as a certificate membership (genesis order)."""
        return Membership.from_weights((v.identity, v.weight) for v in self.validators)

    def check(self) -> None:
        """Raise GenesisError naming the first broken rule (the operator must fix the file)."""
        self.params.check()
        if not self.validators:
            raise GenesisError("validators: at least one validator is needed")
        if len({v.identity for v in self.validators}) != len(self.validators):
            raise GenesisError("validators: an identity appears twice")
        if any(v.weight < 1 for v in self.validators):
            raise GenesisError("validators: every weight must be at least 1")
        if sum(v.weight for v in self.validators) >= 1 << 64:
            raise GenesisError("validators: the total weight must fit 64 bits")
        for name, items, key in (
            ("accounts", self.accounts, "identity"),
            ("operators", self.operators, "identity"),
            ("images", self.images, "image_digest"),
        ):
            keys = [getattr(x, key) for x in items]
            if keys != sorted(set(keys)):
                raise GenesisError(
                    f"{name}: must be unique and sorted by {key} (use build_genesis)"
                )
        for op in self.operators:
            if op.stake < self.params.min_stake:
                raise GenesisError(
                    f"operators: {op.identity.hex()} stakes {op.stake}, below params.min_stake="
                    f"{self.params.min_stake}"
                )
            if not 1 <= op.capacity <= CAPACITY_MAX:
                raise GenesisError(f"operators: capacity must be in [1, {CAPACITY_MAX}]")
            _check_vrf_key(op.vrf_key, f"operators: {op.identity.hex()} vrf_key")
        supply = sum(a.balance for a in self.accounts) + sum(o.stake for o in self.operators)
        if supply >= 1 << 64:
            raise GenesisError("the total supply (balances + stakes) must fit 64 bits")


def _check_vrf_key(key: bytes, what: str) -> None:
    try:
        vrf.PublicKey.from_bytes(key)
    except vrf.VRFError as exc:
        raise GenesisError(f"{what} is not a valid ECVRF key: {exc}") from None


def build_genesis(
    *,
    chain_name: str,
    time_ms: int,
    validators: Iterable[tuple[bytes, int]],
    accounts: Mapping[bytes, int] | None = None,
    operators: Iterable[GenesisOperator] = (),
    images: Iterable[GenesisImage] = (),
    params: ChainParams | None = None,
) -> Genesis:
    """A checked genesis from parameters (validator (identity, weight) pairs in membership order,
    initial balances, operators with stake, images). Raises GenesisError on invalid input; the
    caller must fix the inputs."""
    genesis = Genesis(
        chain_name=chain_name,
        time_ms=time_ms,
        params=params if params is not None else ChainParams(),
        validators=tuple(GenesisValidator(k, w) for k, w in validators),
        accounts=tuple(GenesisAccount(k, b) for k, b in sorted((accounts or {}).items())),
        operators=tuple(sorted(operators, key=lambda o: o.identity)),
        images=tuple(sorted(images, key=lambda i: i.image_digest)),
    )
    try:
        genesis.encode()
    except EncodeError as exc:  # a field out of bounds
        raise GenesisError(f"genesis: {exc}") from None
    genesis.check()
    return genesis


# --- JSON ---------------------------------------------------------------------------------------


def _hex(value: Any, what: str, length: int = 32) -> bytes:
    if not isinstance(value, str):
        raise GenesisError(f"{what}: expected a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise GenesisError(f"{what}: {value!r} is not hex") from None
    if len(raw) != length:
        raise GenesisError(f"{what}: expected {length} bytes ({2 * length} hex digits)")
    return raw


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise GenesisError(f"{what}: expected a non-negative integer, got {value!r}")
    return value


def _obj(value: Any, what: str, keys: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GenesisError(f"{what}: expected an object")
    unknown = set(value) - keys - optional
    if unknown:
        raise GenesisError(f"{what}: unknown field(s) {sorted(unknown)}")
    missing = keys - set(value)
    if missing:
        raise GenesisError(f"{what}: missing field(s) {sorted(missing)}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise GenesisError(f"{what}: expected a list")
    return value


def genesis_from_json(text: str | bytes) -> Genesis:
    """Parse and check a genesis file. Raises GenesisError naming the field to fix."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GenesisError(f"genesis is not JSON: {exc}") from None
    top = _obj(
        doc,
        "genesis",
        {"format", "chain_name", "time_ms", "validators"},
        {"params", "accounts", "operators", "images"},
    )
    if top["format"] != GENESIS_FORMAT:
        raise GenesisError(f"format: expected {GENESIS_FORMAT!r}, got {top['format']!r}")
    if not isinstance(top["chain_name"], str):
        raise GenesisError("chain_name: expected a string")
    fields = {f.name for f in dataclasses.fields(ChainParams)}
    raw_params = _obj(top.get("params", {}), "params", set(), fields)
    params = ChainParams(**{k: _int(v, f"params.{k}") for k, v in raw_params.items()})
    validators = [
        (
            _hex(v["identity"], f"validators[{i}].identity"),
            _int(v["weight"], f"validators[{i}].weight"),
        )
        for i, v in enumerate(_list(top["validators"], "validators"))
        if _obj(v, f"validators[{i}]", {"identity", "weight"})
    ]
    accounts: dict[bytes, int] = {}
    for i, a in enumerate(_list(top.get("accounts", []), "accounts")):
        _obj(a, f"accounts[{i}]", {"identity", "balance"})
        key = _hex(a["identity"], f"accounts[{i}].identity")
        if key in accounts:
            raise GenesisError(f"accounts[{i}]: identity {key.hex()} appears twice")
        accounts[key] = _int(a["balance"], f"accounts[{i}].balance")
    operators = []
    for i, o in enumerate(_list(top.get("operators", []), "operators")):
        _obj(o, f"operators[{i}]", {"identity", "vrf_key", "stake", "capacity"})
        operators.append(
            GenesisOperator(
                _hex(o["identity"], f"operators[{i}].identity"),
                _hex(o["vrf_key"], f"operators[{i}].vrf_key"),
                _int(o["stake"], f"operators[{i}].stake"),
                _int(o["capacity"], f"operators[{i}].capacity"),
            )
        )
    if len({o.identity for o in operators}) != len(operators):
        raise GenesisError("operators: an identity appears twice")
    images = []
    for i, m in enumerate(_list(top.get("images", []), "images")):
        _obj(m, f"images[{i}]", {"image_digest", "owner", "valid_from_height"})
        images.append(
            GenesisImage(
                _hex(m["image_digest"], f"images[{i}].image_digest"),
                _hex(m["owner"], f"images[{i}].owner"),
                _int(m["valid_from_height"], f"images[{i}].valid_from_height"),
            )
        )
    if len({m.image_digest for m in images}) != len(images):
        raise GenesisError("images: a digest appears twice")
    return build_genesis(
        chain_name=top["chain_name"],
        time_ms=_int(top["time_ms"], "time_ms"),
        validators=validators,
        accounts=accounts,
        operators=operators,
        images=images,
        params=params,
    )


def genesis_to_json(genesis: Genesis) -> str:
    """The JSON text of a genesis (parses back to an equal record with the same hash)."""
    doc = {
        "format": GENESIS_FORMAT,
        "chain_name": genesis.chain_name,
        "time_ms": genesis.time_ms,
        "params": {
            f.name: getattr(genesis.params, f.name) for f in dataclasses.fields(ChainParams)
        },
        "validators": [
            {"identity": v.identity.hex(), "weight": v.weight} for v in genesis.validators
        ],
        "accounts": [
            {"identity": a.identity.hex(), "balance": a.balance} for a in genesis.accounts
        ],
        "operators": [
            {
                "identity": o.identity.hex(),
                "vrf_key": o.vrf_key.hex(),
                "stake": o.stake,
                "capacity": o.capacity,
            }
            for o in genesis.operators
        ],
        "images": [
            {
                "image_digest": m.image_digest.hex(),
                "owner": m.owner.hex(),
                "valid_from_height": m.valid_from_height,
            }
            for m in genesis.images
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def decode_genesis(data: bytes) -> Genesis:
    """Decode canonical genesis bytes (as stored) and check them. Raises DecodeError or
    GenesisError; the caller must refuse to start with this genesis."""
    genesis = Genesis.decode(data)
    genesis.check()
    return genesis
