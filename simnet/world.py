"""Everything a run decides before it starts, from the scenario and its seed, for both modes:
keys, stakes, the genesis, who is byzantine and how, the tasks (job, poster, time) and the faults.

Peer indices: validators first (0 .. V-1), then operators (V .. V+N-1), then posters. Posters are
followers with an account (the poster role runs in every core; these peers post the workload).
Explicit fault indices in a scenario are these global indices; counted and fractional faults pick
among operators.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Sequence
from typing import Final

import vrf
from committee import params as committee_params
from ledger.devnet import dev_identity, dev_vrf_key
from ledger.genesis import ChainParams, Genesis, GenesisOperator, build_genesis
from ledger.signing import IdentityKey
from simnet import jobs
from simnet.scenario import JOB_KINDS, ResolvedFault, Scenario, pick_byzantine, resolve_faults

# Operator stakes are min_stake times a factor drawn in [1, STAKE_FACTOR_MAX]: unequal enough that
# byzantine stake shares are not multiples of one operator's, small enough that every operator is
# drawn now and then.
STAKE_FACTOR_MAX: Final = 10
MIN_STAKE: Final = 1_000
# Every account starts rich enough to post thousands of tasks.
BALANCE: Final = 10**12
# The first task is posted after this many block intervals: the validators' first round and the
# peers' start-up sync are done by then.
WARMUP_BLOCKS: Final = 2
# Capacity of every operator (concurrent rounds): above any roster load of the workloads here.
OPERATOR_CAPACITY: Final = 256
# The credential window lasts at least this long, however short the block interval: a drawn
# operator needs the seed block, one VRF proof, a gossip hop and a block to land its credential,
# and on a loaded machine that took over a second. With the ledger's 3 blocks at 500 ms, rosters
# of one member (or none: the task fails) were common.
CREDENTIAL_WINDOW_MS_MIN: Final = 3_000


class PeerRole(enum.Enum):
    """What a simulated peer does."""

    VALIDATOR = "validator"
    OPERATOR = "operator"
    POSTER = "poster"


@dataclasses.dataclass(frozen=True, slots=True)
class PeerSpec:
    """One peer of the run: its keys, role, stake and byzantine policy (None: honest)."""

    index: int
    role: PeerRole
    identity: IdentityKey
    vrf_key: vrf.SecretKey | None
    stake: int
    policy: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPlan:
    """One task of the workload: posted by `poster` at `at_ms` (run time), running `job_spec`."""

    index: int
    poster: int
    at_ms: int
    kind: str
    job_spec: bytes
    expected_output: bytes


@dataclasses.dataclass(frozen=True)
class World:
    """The run's fixed facts (see the module docstring)."""

    scenario: Scenario
    genesis: Genesis
    peers: tuple[PeerSpec, ...]
    tasks: tuple[TaskPlan, ...]
    faults: tuple[ResolvedFault, ...]
    block_interval_ms: int
    image_digest: str

    @property
    def byzantine(self) -> dict[int, str]:
        """Peer index -> policy name, for every byzantine peer."""
        return {p.index: p.policy for p in self.peers if p.policy is not None}

    @property
    def operator_stakes(self) -> list[int]:
        """The operators' stakes in peer order."""
        return [p.stake for p in self.peers if p.role is PeerRole.OPERATOR]

    @property
    def byzantine_stake_share(self) -> float:
        """The byzantine operators' share of the total operator stake."""
        total = sum(self.operator_stakes)
        held = sum(p.stake for p in self.peers if p.role is PeerRole.OPERATOR and p.policy)
        return held / total if total else 0.0

    def prediction(self) -> dict[str, float | None]:
        """What `committee.params` predicts for one task's roster under this stake split and the
        chain's minimum roster weight: P(roster empty), P(roster light: drawn again),
        P(byzantine >= 1/3: may stall), P(byzantine > 2/3: decides alone)."""
        share = self.byzantine_stake_share
        stakes = self.operator_stakes
        tau = self.scenario.workload.tau
        if tau >= sum(stakes):
            return {"empty": None, "light": None, "stall": None, "alone": None}
        least = self.genesis.params.min_roster_weight(tau)
        analysis = committee_params.analyse(tau, share, stakes, least)
        return {
            "empty": float(analysis.empty.mid),
            "light": float(analysis.light.mid),
            "stall": float(analysis.stall.mid),
            "alone": float(analysis.alone.mid),
            "expected_members": round(analysis.expected_members, 2),
        }

    def describe(self) -> dict[str, object]:
        """JSON-able facts for the report."""
        counts: dict[str, int] = {}
        for p in self.peers:
            if p.policy is not None:
                key = f"{p.role.value}:{p.policy}"
                counts[key] = counts.get(key, 0) + 1
        return {
            "peers_total": len(self.peers),
            "operators": sum(1 for p in self.peers if p.role is PeerRole.OPERATOR),
            "posters": sum(1 for p in self.peers if p.role is PeerRole.POSTER),
            "byzantine": dict(sorted(counts.items())),
            "byzantine_stake_share": round(self.byzantine_stake_share, 4),
            "block_interval_ms": self.block_interval_ms,
            "credential_window_blocks": self.genesis.params.credential_window_blocks,
            "genesis": self.genesis.hash().hex(),
            "image": self.image_digest,
            "faults": [{"fault": f.fault.text(), "peers": list(f.peers)} for f in self.faults],
        }


def chain_params(scenario: Scenario, block_interval_ms: int) -> ChainParams:
    """The chain's parameters for a run: the ledger's defaults, with room for the workload's
    committee size and a credential window of at least CREDENTIAL_WINDOW_MS_MIN."""
    default = ChainParams()
    window = max(
        default.credential_window_blocks, -(-CREDENTIAL_WINDOW_MS_MIN // block_interval_ms)
    )
    return ChainParams(
        min_stake=MIN_STAKE,
        tau_max=max(64, scenario.workload.tau),
        credential_window_blocks=window,
    )


def build_world(
    scenario: Scenario,
    *,
    block_interval_ms: int = 1000,
    image_digest: str = jobs.FAKE_IMAGE_DIGEST,
) -> World:
    """Decide everything the seed decides (see the module docstring). Pure and deterministic."""
    rng = random.Random(scenario.seed)
    v, n, p = scenario.validators, scenario.peers, scenario.workload.posters
    stakes = [MIN_STAKE * rng.randint(1, STAKE_FACTOR_MAX) for _ in range(n)]
    byz_ops = pick_byzantine(
        stakes, scenario.byzantine.stake, scenario.byzantine.policies or ("withhold",), rng
    )
    byz_vals: dict[int, str] = {}
    if scenario.byzantine.validators:
        chosen = rng.sample(range(v), len(scenario.byzantine.validators))
        byz_vals = dict(zip(chosen, scenario.byzantine.validators, strict=True))
    peers: list[PeerSpec] = []
    for i in range(v):
        peers.append(
            PeerSpec(i, PeerRole.VALIDATOR, dev_identity("validator", i), None, 0, byz_vals.get(i))
        )
    for j in range(n):
        peers.append(
            PeerSpec(
                v + j,
                PeerRole.OPERATOR,
                dev_identity("op", j),
                dev_vrf_key(j),
                stakes[j],
                byz_ops.get(j),
            )
        )
    for k in range(p):
        peers.append(PeerSpec(v + n + k, PeerRole.POSTER, dev_identity("user", k), None, 0, None))
    genesis = build_genesis(
        chain_name=f"simnet-{scenario.seed}",
        time_ms=0,
        validators=[(peer.identity.public, 1) for peer in peers[:v]],
        accounts={peer.identity.public: BALANCE for peer in peers[v:]},
        operators=[
            GenesisOperator(
                peer.identity.public,
                bytes(peer.vrf_key.public_key),  # type: ignore[union-attr]
                peer.stake,
                OPERATOR_CAPACITY,
            )
            for peer in peers[v : v + n]
        ],
        params=chain_params(scenario, block_interval_ms),
    )
    tasks = _plan_tasks(
        scenario, rng, [peer.index for peer in peers[v + n :]], block_interval_ms, image_digest
    )
    faults = resolve_faults(scenario, rng, [peer.index for peer in peers[v : v + n]])
    return World(
        scenario=scenario,
        genesis=genesis,
        peers=tuple(peers),
        tasks=tuple(tasks),
        faults=tuple(faults),
        block_interval_ms=block_interval_ms,
        image_digest=image_digest,
    )


def _plan_tasks(
    scenario: Scenario,
    rng: random.Random,
    posters: Sequence[int],
    block_interval_ms: int,
    image_digest: str,
) -> list[TaskPlan]:
    from executor.spec import JobSpec  # noqa: PLC0415 - keeps the module's import list short

    wl = scenario.workload
    at = WARMUP_BLOCKS * block_interval_ms
    out: list[TaskPlan] = []
    for i in range(wl.tasks):
        at += max(1, round(rng.expovariate(wl.rate_per_s) * 1000))
        name = rng.choice(wl.jobs)
        spec = jobs.make_job(JOB_KINDS[name], i, rng, image_digest)
        encoded = spec.encode()
        assert JobSpec.decode(encoded) == spec
        out.append(
            TaskPlan(i, posters[i % len(posters)], at, name, encoded, jobs.expected_output(spec))
        )
    return out
