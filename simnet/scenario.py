"""What a run does: the swarm, the network, the workload, the faults and the byzantine peers.

A scenario comes from a TOML file (`Scenario.from_toml`), from command-line flags, or both (flags
override the file). It is plain frozen data, validated once: every broken field raises
`ScenarioError` naming it. The seed decides everything the scenario leaves open (which peers crash,
which are byzantine, the job of each task): `resolve` turns counts and fractions into peer indices.

File format (every table and key optional; the defaults are those of the dataclasses below):

    seed = 7
    peers = 300                  # operators (every peer is an operator; validators come on top)
    validators = 4

    [network]                    # deterministic mode only
    latency = "lognormal:20:0.4" # fixed:A uniform:A:B normal:M:SD lognormal:MED:SIGMA pareto:MIN:A
    bandwidth_mbit_s = 100       # per-peer uplink (0: unlimited)
    loss = 0.0
    duplicate = 0.0
    reorder = 0.0

    [workload]
    tasks = 50
    rate_per_s = 1.0             # tasks posted per second, over all posters
    posters = 4
    tau = 16                     # expected committee weight of each task
    open_tasks_max = 256         # validators start no task while this many are open (they queue)
    poll_blocks = false          # peers the block gossip misses follow the chain by long poll
    jobs = ["echo", "sha256", "sleep"]   # the mix, drawn per task (repeat a name to weight it)

    [byzantine]
    stake = 0.2                  # share of the operators' stake held by byzantine operators
    policies = ["equivocate", "withhold", "lie", "silent", "forge", "flood"]
    validators = ["censor"]      # policies of byzantine validators (fewer than a third of them)

    [phases]
    faults_until_ms = 60000      # safety phase: faults and byzantine peers act until then
    liveness_bound_ms = 120000   # liveness phase: every task decided within this after faults stop

    [[faults]]
    kind = "crash"               # crash | partition | slow | loss
    at_ms = 5000
    until_ms = 25000             # crash: restart then (omit: never); others: heal then
    count = 10                   # or peers = [1, 2, 3] (indices), or fraction = 0.1
    # partition: fraction = size of the minority side; slow: factor = 10.0; loss: loss = 0.2
"""

from __future__ import annotations

import dataclasses
import math
import random
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from p2p.roles.base import OPEN_TASKS_MAX
from simnet.errors import ScenarioError
from simnet.network import Latency, NetworkConfig

# Swarm bounds: the deterministic mode was measured up to 5,000 peers; 20,000 is where memory (a
# PeerCore and its chain view per peer) runs out on a machine of this class.
PEERS_MAX: Final = 20_000
# The validator set is a genesis list bounded by the ledger's membership bound.
VALIDATORS_MAX: Final = 256
# A run posts at most this many tasks: a report keeps a timeline per task.
TASKS_MAX: Final = 100_000
FAULTS_MAX: Final = 1_000
FAULT_KINDS: Final = ("crash", "partition", "slow", "loss")

# The catalogue (simnet.policies). `collude` breaks safety once colluders hold more than two thirds
# of a roster: it exists to show the checkers catch that, and is never in the default mix.
OPERATOR_POLICIES: Final = ("equivocate", "withhold", "lie", "silent", "forge", "flood", "collude")
DEFAULT_OPERATOR_POLICIES: Final = ("equivocate", "withhold", "lie", "silent", "forge", "flood")
VALIDATOR_POLICIES: Final = ("censor", "equivocate", "withhold")


@dataclasses.dataclass(frozen=True, slots=True)
class JobKind:
    """One kind of job in the workload mix. `argv` runs in the busybox base image; `run_ms` is how
    long the fake sandbox says it ran (the deterministic mode's execution time)."""

    name: str
    argv: tuple[str, ...]
    input_bytes: int
    run_ms: int
    deterministic: bool = True
    wall_time_ms: int = 10_000


JOB_KINDS: Final[dict[str, JobKind]] = {
    k.name: k
    for k in (
        JobKind("echo", ("cat",), 256, 5),
        JobKind("sha256", ("sha256sum",), 4096, 20),
        JobKind("sleep", ("sleep", "1"), 0, 1000, wall_time_ms=5_000),
        JobKind("wc", ("wc", "-c"), 16_384, 10),
    )
}


@dataclasses.dataclass(frozen=True, slots=True)
class Workload:
    """Tasks to post: how many, how fast, with which jobs and committee size."""

    tasks: int = 20
    rate_per_s: float = 2.0
    posters: int = 2
    tau: int = 16
    jobs: tuple[str, ...] = ("echo", "sha256")
    fee: int = 1_000
    open_tasks_max: int = OPEN_TASKS_MAX  # validators start no task past this many open ones
    poll_blocks: bool = False  # peers follow the chain by long poll (p2p/roles/chain.py)

    def __post_init__(self) -> None:
        if not 0 <= self.tasks <= TASKS_MAX:
            raise ScenarioError(f"workload.tasks must be in [0, {TASKS_MAX}]")
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ScenarioError("workload.rate_per_s must be > 0")
        if not 1 <= self.posters <= 1024:
            raise ScenarioError("workload.posters must be in [1, 1024]")
        if not 1 <= self.tau <= 256:
            raise ScenarioError("workload.tau must be in [1, 256] (the roster bound)")
        if not self.jobs:
            raise ScenarioError("workload.jobs must name at least one job")
        for name in self.jobs:
            if name not in JOB_KINDS:
                raise ScenarioError(
                    f"workload.jobs: unknown job {name!r}; known: {sorted(JOB_KINDS)}"
                )
        if self.fee < 1:
            raise ScenarioError("workload.fee must be at least 1")
        if not 1 <= self.open_tasks_max <= TASKS_MAX:
            raise ScenarioError(f"workload.open_tasks_max must be in [1, {TASKS_MAX}]")


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """One fault: from `at_ms` until `until_ms` (None: for the rest of the safety phase, and for
    a crash: never restarted) on `peers`, or `count` / `fraction` peers the seed picks."""

    kind: str
    at_ms: int
    until_ms: int | None = None
    peers: tuple[int, ...] = ()
    count: int = 0
    fraction: float = 0.0
    factor: float = 10.0  # slow: latency multiplier
    loss: float = 0.2  # loss: extra loss share

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ScenarioError(f"faults: kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.at_ms < 0 or (self.until_ms is not None and self.until_ms <= self.at_ms):
            raise ScenarioError(f"faults ({self.kind}): need 0 <= at_ms < until_ms")
        if not 0.0 <= self.fraction <= 1.0 or self.count < 0:
            raise ScenarioError(f"faults ({self.kind}): fraction in [0, 1], count >= 0")
        if self.kind == "slow" and not (math.isfinite(self.factor) and self.factor >= 1.0):
            raise ScenarioError("faults (slow): factor must be >= 1")
        if self.kind == "loss" and not 0.0 <= self.loss <= 1.0:
            raise ScenarioError("faults (loss): loss must be in [0, 1]")

    def text(self) -> str:
        """A short description for reports."""
        who = (
            f"peers {list(self.peers)}"
            if self.peers
            else f"{self.count} peers"
            if self.count
            else f"{self.fraction:.0%} of peers"
            if self.fraction
            else "all links"
        )
        end = "" if self.until_ms is None else f" until {self.until_ms} ms"
        extra = {"slow": f" x{self.factor:g}", "loss": f" loss {self.loss:g}"}.get(self.kind, "")
        return f"{self.kind} {who}{extra} at {self.at_ms} ms{end}"


@dataclasses.dataclass(frozen=True, slots=True)
class Byzantine:
    """Byzantine operators (a share of the stake, with policies drawn from the list in turn) and
    byzantine validators (one per listed policy)."""

    stake: float = 0.0
    policies: tuple[str, ...] = DEFAULT_OPERATOR_POLICIES
    validators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.stake < 1.0:
            raise ScenarioError("byzantine.stake must be in [0, 1)")
        for name in self.policies:
            if name not in OPERATOR_POLICIES:
                raise ScenarioError(
                    f"byzantine.policies: unknown {name!r}; known: {list(OPERATOR_POLICIES)}"
                )
        if self.stake > 0 and not self.policies:
            raise ScenarioError("byzantine.policies must not be empty when byzantine.stake > 0")
        for name in self.validators:
            if name not in VALIDATOR_POLICIES:
                raise ScenarioError(
                    f"byzantine.validators: unknown {name!r}; known: {list(VALIDATOR_POLICIES)}"
                )


@dataclasses.dataclass(frozen=True, slots=True)
class Phases:
    """Safety phase (faults on) until `faults_until_ms`; then every task must be decided within
    `liveness_bound_ms`."""

    faults_until_ms: int = 0
    liveness_bound_ms: int = 120_000

    def __post_init__(self) -> None:
        if self.faults_until_ms < 0 or self.liveness_bound_ms <= 0:
            raise ScenarioError("phases: faults_until_ms >= 0 and liveness_bound_ms > 0")


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A whole run (see the module docstring)."""

    seed: int = 0
    peers: int = 50
    validators: int = 4
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    workload: Workload = dataclasses.field(default_factory=Workload)
    byzantine: Byzantine = dataclasses.field(default_factory=Byzantine)
    phases: Phases = dataclasses.field(default_factory=Phases)
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 1 << 63:
            raise ScenarioError("seed must be in [0, 2^63)")
        if not 2 <= self.peers <= PEERS_MAX:
            raise ScenarioError(f"peers must be in [2, {PEERS_MAX}]")
        if not 1 <= self.validators <= VALIDATORS_MAX:
            raise ScenarioError(f"validators must be in [1, {VALIDATORS_MAX}]")
        if 3 * len(self.byzantine.validators) >= self.validators:
            raise ScenarioError(
                f"byzantine.validators: {len(self.byzantine.validators)} of {self.validators} "
                "validators is a third or more; the chain assumes fewer (add validators)"
            )
        if self.workload.posters > self.peers:
            raise ScenarioError("workload.posters must not exceed peers")
        if len(self.faults) > FAULTS_MAX:
            raise ScenarioError(f"at most {FAULTS_MAX} faults")
        for fault in self.faults:
            if any(not 0 <= p < self.peers for p in fault.peers):
                raise ScenarioError(f"faults ({fault.kind}): peer index out of [0, {self.peers})")
            if fault.at_ms >= self.faults_until_ms and self.faults_until_ms:
                pass  # a fault may start in the liveness phase only if it ends before: below
        last = max(
            [f.until_ms if f.until_ms is not None else f.at_ms for f in self.faults], default=0
        )
        if last > self.faults_until_ms:
            raise ScenarioError(
                f"phases.faults_until_ms ({self.faults_until_ms}) must cover every fault "
                f"(the last ends at {last} ms): liveness is measured once faults stop"
            )

    @property
    def faults_until_ms(self) -> int:
        """End of the safety phase."""
        return self.phases.faults_until_ms

    def with_overrides(self, **changes: Any) -> Scenario:
        """A copy with top-level fields replaced (flags override a file)."""
        return dataclasses.replace(self, **changes)

    # --- TOML

    @classmethod
    def from_toml(cls, text: str) -> Scenario:
        """Parse a scenario file. Raises ScenarioError naming the field to fix."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"scenario is not TOML: {exc}") from None
        return cls.from_mapping(doc)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> Scenario:
        """Build from a parsed TOML document (see the module docstring for the keys)."""
        _keys(
            doc,
            "scenario",
            {"seed", "peers", "validators", "network", "workload", "byzantine", "phases", "faults"},
        )
        net = _table(doc, "network")
        _keys(
            net,
            "network",
            {
                "latency",
                "bandwidth_mbit_s",
                "loss",
                "duplicate",
                "reorder",
                "reorder_ms",
                "degree",
                "degree_high",
                "hop_ms",
                "heartbeat_ms",
            },
        )
        base = NetworkConfig()
        network = NetworkConfig(
            latency=Latency.parse(_get(net, "latency", str, base.latency.text(), "network")),
            bandwidth_bytes_per_ms=round(
                _num(net, "bandwidth_mbit_s", base.bandwidth_bytes_per_ms * 8 / 1000, "network")
                * 1000
                / 8
            ),
            loss=_num(net, "loss", base.loss, "network"),
            duplicate=_num(net, "duplicate", base.duplicate, "network"),
            reorder=_num(net, "reorder", base.reorder, "network"),
            reorder_ms=_get(net, "reorder_ms", int, base.reorder_ms, "network"),
            degree=_get(net, "degree", int, base.degree, "network"),
            degree_high=_get(net, "degree_high", int, base.degree_high, "network"),
            hop_ms=_get(net, "hop_ms", int, base.hop_ms, "network"),
            heartbeat_ms=_get(net, "heartbeat_ms", int, base.heartbeat_ms, "network"),
        )
        wl = _table(doc, "workload")
        _keys(
            wl,
            "workload",
            {
                "tasks",
                "rate_per_s",
                "posters",
                "tau",
                "jobs",
                "fee",
                "open_tasks_max",
                "poll_blocks",
            },
        )
        w0 = Workload()
        workload = Workload(
            tasks=_get(wl, "tasks", int, w0.tasks, "workload"),
            rate_per_s=_num(wl, "rate_per_s", w0.rate_per_s, "workload"),
            posters=_get(wl, "posters", int, w0.posters, "workload"),
            tau=_get(wl, "tau", int, w0.tau, "workload"),
            jobs=tuple(_strings(wl, "jobs", w0.jobs, "workload")),
            fee=_get(wl, "fee", int, w0.fee, "workload"),
            open_tasks_max=_get(wl, "open_tasks_max", int, w0.open_tasks_max, "workload"),
            poll_blocks=_get(wl, "poll_blocks", bool, w0.poll_blocks, "workload"),
        )
        bz = _table(doc, "byzantine")
        _keys(bz, "byzantine", {"stake", "policies", "validators"})
        b0 = Byzantine()
        byzantine = Byzantine(
            stake=_num(bz, "stake", b0.stake, "byzantine"),
            policies=tuple(_strings(bz, "policies", b0.policies, "byzantine")),
            validators=tuple(_strings(bz, "validators", b0.validators, "byzantine")),
        )
        ph = _table(doc, "phases")
        _keys(ph, "phases", {"faults_until_ms", "liveness_bound_ms"})
        p0 = Phases()
        faults_raw = doc.get("faults", [])
        if not isinstance(faults_raw, list):
            raise ScenarioError("faults must be an array of tables ([[faults]])")
        faults = tuple(_fault(f, i) for i, f in enumerate(faults_raw))
        last = max([f.until_ms or f.at_ms for f in faults], default=0)
        phases = Phases(
            faults_until_ms=_get(ph, "faults_until_ms", int, last, "phases"),
            liveness_bound_ms=_get(ph, "liveness_bound_ms", int, p0.liveness_bound_ms, "phases"),
        )
        s0 = cls()
        return cls(
            seed=_get(doc, "seed", int, s0.seed, "scenario"),
            peers=_get(doc, "peers", int, s0.peers, "scenario"),
            validators=_get(doc, "validators", int, s0.validators, "scenario"),
            network=network,
            workload=workload,
            byzantine=byzantine,
            phases=phases,
            faults=faults,
        )

    def describe(self) -> dict[str, Any]:
        """The scenario as plain JSON-able data (for the report)."""
        n = self.network
        return {
            "seed": self.seed,
            "peers": self.peers,
            "validators": self.validators,
            "network": {
                "latency": n.latency.text(),
                "bandwidth_mbit_s": n.bandwidth_bytes_per_ms * 8 / 1000,
                "loss": n.loss,
                "duplicate": n.duplicate,
                "reorder": n.reorder,
                "mesh_degree": [n.degree, n.degree_high],
            },
            "workload": dataclasses.asdict(self.workload),
            "byzantine": dataclasses.asdict(self.byzantine),
            "phases": dataclasses.asdict(self.phases),
            "faults": [f.text() for f in self.faults],
        }


# ---------------------------------------------------------------------------------- resolution


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedFault:
    """A fault with its peers chosen."""

    fault: Fault
    peers: tuple[int, ...]


def resolve_faults(
    scenario: Scenario, rng: random.Random, candidates: Sequence[int]
) -> list[ResolvedFault]:
    """Pick the peers of every fault among `candidates` (explicit indices are kept as given)."""
    out = []
    for fault in scenario.faults:
        if fault.peers:
            chosen = tuple(fault.peers)
        elif fault.count or fault.fraction:
            k = fault.count or max(1, round(fault.fraction * len(candidates)))
            chosen = tuple(sorted(rng.sample(list(candidates), min(k, len(candidates)))))
        else:
            chosen = ()
        out.append(ResolvedFault(fault, chosen))
    return out


def pick_byzantine(
    stakes: Sequence[int],
    share: float,
    policies: Sequence[str],
    rng: random.Random,
    exclude: set[int] = frozenset(),  # type: ignore[assignment]
) -> dict[int, str]:
    """Choose operators whose stake adds up to at most `share` of the total (as close as the
    stakes allow, never above), and give them `policies` in turn. Returns index -> policy."""
    total = sum(stakes)
    budget = share * total
    order = [i for i in range(len(stakes)) if i not in exclude]
    rng.shuffle(order)
    chosen: dict[int, str] = {}
    held = 0
    for i in order:
        if held + stakes[i] <= budget:
            chosen[i] = policies[len(chosen) % len(policies)]
            held += stakes[i]
    return chosen


# ------------------------------------------------------------------------------------ helpers


def _table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{name} must be a table ([{name}])")
    return value


def _keys(doc: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _get(doc: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = doc.get(key, default)
    if type(value) is not kind:
        raise ScenarioError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _num(doc: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = doc.get(key, default)
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ScenarioError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _strings(doc: Mapping[str, Any], key: str, default: Sequence[str], where: str) -> list[str]:
    value = doc.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{where}.{key}: expected a list of strings")
    return value


def _fault(raw: Any, index: int) -> Fault:
    where = f"faults[{index}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a table")
    _keys(raw, where, {"kind", "at_ms", "until_ms", "peers", "count", "fraction", "factor", "loss"})
    peers = raw.get("peers", [])
    if not isinstance(peers, list) or not all(type(p) is int for p in peers):
        raise ScenarioError(f"{where}.peers: expected a list of peer indices")
    until = raw.get("until_ms")
    if until is not None and type(until) is not int:
        raise ScenarioError(f"{where}.until_ms: expected an integer")
    return Fault(
        kind=_get(raw, "kind", str, "", where),
        at_ms=_get(raw, "at_ms", int, 0, where),
        until_ms=until,
        peers=tuple(peers),
        count=_get(raw, "count", int, 0, where),
        fraction=_num(raw, "fraction", 0.0, where),
        factor=_num(raw, "factor", 10.0, where),
        loss=_num(raw, "loss", 0.2, where),
    )
