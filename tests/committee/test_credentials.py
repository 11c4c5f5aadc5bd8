"""Credentials: draw, verify, reject every kind of bad claim, explain non-selection."""

from __future__ import annotations

import dataclasses

import pytest

import vrf
from committee.credentials import (
    Credential,
    NotSelected,
    NotSelectedReason,
    Role,
    StakeEntry,
    StakeTable,
    UnverifiedCredential,
    committee_seed,
    draw,
    roster,
)
from committee.errors import (
    ConfigError,
    CredentialError,
    ForgedCredential,
    IneligibleOperator,
    LocalMisuse,
    WrongClaimedWeight,
)
from committee.sortition import select_weight
from ledger.errors import DecodeError
from ledger.signing import IdentityKey

TASK = b"T" * 32
BLOCK = b"B" * 32
TAU = 20


@dataclasses.dataclass
class Operator:
    key: IdentityKey
    vrf_key: vrf.SecretKey

    @property
    def identity(self) -> bytes:
        return self.key.public


def operators(n: int) -> list[Operator]:
    return [
        Operator(IdentityKey(bytes([i + 1]) * 32), vrf.SecretKey.from_seed(bytes([i + 101]) * 32))
        for i in range(n)
    ]


OPS = operators(6)


def table(**changes: dict[str, object]) -> StakeTable:
    entries = []
    for i, op in enumerate(OPS):
        entry = StakeEntry(op.identity, op.vrf_key.public_key.key, 10 * (i + 1), True, 0, 2, 0)
        entries.append(dataclasses.replace(entry, **changes.get(str(i), {})))
    return StakeTable.of(entries, height=100, maturity_blocks=10)


SEED = committee_seed(Role.TASK_COMMITTEE, TASK, BLOCK)


def draw_for(op: Operator, t: StakeTable, tau: int = TAU) -> Credential | NotSelected:
    return draw(
        op.vrf_key,
        op.identity,
        role=Role.TASK_COMMITTEE,
        subject=TASK,
        seed=SEED,
        stake_table=t,
        tau=tau,
    )


def selected(t: StakeTable, tau: int = TAU) -> list[Credential]:
    out = [draw_for(op, t, tau) for op in OPS]
    return [c for c in out if isinstance(c, Credential)]


def test_draw_and_verify_round_trip() -> None:
    t = table()
    creds = selected(t, tau=100)  # tau close to the total (210): most operators are drawn
    assert len(creds) >= 4
    for cred in creds:
        wire = UnverifiedCredential.decode(cred.record.encode())
        verified = wire.verify(SEED, t, tau=100)
        assert verified == cred
        entry = t.entries[cred.operator]
        beta = vrf.PublicKey.from_bytes(cred.record.vrf_key).verify(SEED, cred.record.proof)
        assert cred.weight == select_weight(beta, entry.stake, 100, t.total) > 0


def test_wrong_claims_are_rejected() -> None:
    t = table()
    cred = selected(t, tau=100)[0]
    record = cred.record
    with pytest.raises(WrongClaimedWeight):
        dataclasses.replace(record, weight=record.weight + 1).verify(SEED, t, tau=100)
    with pytest.raises(WrongClaimedWeight):
        record.verify(SEED, t, tau=50)  # verified against the round's real tau
    with pytest.raises(ForgedCredential):
        dataclasses.replace(record, proof=bytes(80)).verify(SEED, t, tau=100)
    other = next(op for op in OPS if op.identity != record.operator)
    with pytest.raises(ForgedCredential):  # somebody else's VRF key
        dataclasses.replace(record, vrf_key=other.vrf_key.public_key.key).verify(SEED, t, tau=100)
    with pytest.raises(CredentialError):  # another round's seed
        record.verify(committee_seed(Role.TASK_COMMITTEE, b"U" * 32, BLOCK), t, tau=100)
    with pytest.raises(WrongClaimedWeight):
        dataclasses.replace(record, weight=0).verify(SEED, t, tau=100)


def test_roles_are_separated() -> None:
    """A credential for the task committee does not verify as a service-measurement one."""
    t = table()
    cred = selected(t, tau=100)[0]
    service_seed = committee_seed(Role.SERVICE_MEASUREMENT, TASK, BLOCK)
    assert service_seed != SEED
    with pytest.raises(CredentialError):
        cred.record.verify(service_seed, t, tau=100)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"active": False}, NotSelectedReason.INACTIVE),
        ({"stake": 0}, NotSelectedReason.NO_STAKE),
        ({"stake_height": 95}, NotSelectedReason.STALE_STAKE),
        ({"load": 2}, NotSelectedReason.OVER_CAPACITY),
    ],
)
def test_ineligible_operators_explain_and_are_refused(
    change: dict[str, object], reason: NotSelectedReason
) -> None:
    good = selected(table(), tau=100)[0]
    index = next(i for i, op in enumerate(OPS) if op.identity == good.operator)
    t = table(**{str(index): change})
    result = draw_for(OPS[index], t, tau=100)
    assert isinstance(result, NotSelected)
    assert result.reason is reason
    with pytest.raises(IneligibleOperator) as info:
        good.record.verify(SEED, t, tau=100)
    assert info.value.reason is reason


def test_unregistered_and_wrong_key_explanations() -> None:
    stranger = operators(8)[7]
    result = draw_for(stranger, table())
    assert isinstance(result, NotSelected)
    assert result.reason is NotSelectedReason.NOT_REGISTERED
    wrong_key = Operator(OPS[0].key, vrf.SecretKey.from_seed(b"\x55" * 32))
    result = draw_for(wrong_key, table())
    assert isinstance(result, NotSelected)
    assert result.reason is NotSelectedReason.VRF_KEY_MISMATCH


def test_weight_zero_is_explained() -> None:
    results = [draw_for(op, table(), tau=1) for op in OPS]  # tau 1 of 210: most are not drawn
    zeros = [r for r in results if isinstance(r, NotSelected)]
    assert zeros
    assert all(r.reason is NotSelectedReason.WEIGHT_ZERO for r in zeros)


def test_eligible_total_excludes_ineligible_stake() -> None:
    assert table().total == sum(10 * (i + 1) for i in range(6))
    assert table(**{"0": {"active": False}}).total == sum(10 * (i + 1) for i in range(1, 6))


def test_roster_orders_members_by_identity_and_ranks_by_priority() -> None:
    creds = selected(table(), tau=100)
    membership, ranking = roster(creds)
    identities = [m.identity for m in membership.members]
    assert identities == sorted(identities)
    priorities = [next(c.priority for c in creds if c.operator == identities[i]) for i in ranking]
    assert priorities == sorted(priorities)
    for m in membership.members:
        cred = next(c for c in creds if c.operator == m.identity)
        assert m.weight == cred.weight
        assert m.credential == cred.record.digest()
    with pytest.raises(CredentialError):
        roster([creds[0], creds[0]])
    with pytest.raises(ConfigError):
        roster([])


def test_decode_rejects_a_short_proof_and_bad_tau_is_misuse() -> None:
    cred = selected(table(), tau=100)[0]
    data = bytearray(cred.record.encode())
    with pytest.raises(DecodeError):
        UnverifiedCredential.decode(bytes(data[:-3]))
    with pytest.raises(LocalMisuse):
        cred.record.verify(SEED, table(), tau=0)
    with pytest.raises(ConfigError):
        StakeTable(1, {b"x" * 32: dataclasses.replace(table().entries[OPS[0].identity])})
