"""Seeded in-memory simulation of the committee round (pure cores, no trio, no sockets).

One seed derives everything: the operators and their stake, the sortition that forms the roster
(credentials checked like validators check them), which members are byzantine and how, the network
faults (drops, duplicates, random delays, hence reordering) and when they stop. The run has a safety
phase (faults on) and a liveness phase (faults off; byzantine members keep misbehaving). Checkers:

- safety: honest members never decide two different values for one agreement (one task attempt's
  executor, its result, a block); an honest member never accuses an honest one; every piece of
  equivocation evidence verifies and names a byzantine member;
- liveness: with byzantine weight below a third, every honest member finishes (result certified,
  block decided, or the task given up after every attempt), and after the faults stop no agreement
  needs more than `byzantine members + LIVENESS_SLACK_VIEWS` further views.

`python -m committee.sim --seed N` replays one seed and prints what happened; a failing test prints
that command.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import vrf
from committee.credentials import (
    Credential,
    Role,
    StakeEntry,
    StakeTable,
    UnverifiedCredential,
    committee_seed,
    draw,
    roster,
)
from committee.errors import CredentialError
from committee.events import (
    Action,
    Broadcast,
    Decide,
    DecisionKind,
    Event,
    GiveUp,
    LocalCredential,
    LocalVerdict,
    MessageReceived,
    NeedVerdict,
    Phase,
    ReportMisbehaviour,
    Send,
    StartTimer,
    TimerFired,
)
from committee.messages import (
    NewView,
    Proposal,
    RejectReason,
    VoteMessage,
    decode_message,
    encode_message,
)
from committee.round import Round, RoundConfig, RoundKind, Timing
from ledger.certificates import (
    Membership,
    UnverifiedVote,
    VoteBody,
    verify_evidence,
)
from ledger.domains import Domain, digest_parts
from ledger.signing import IdentityKey

# After the faults stop, an agreement may still go through one failed view per byzantine proposer
# plus: the view in progress when faults stopped, one whose proposer missed a lock, and one spare.
LIVENESS_SLACK_VIEWS: Final = 3
# Simulated time after the faults stop by which every honest member must be done. Timeouts double
# per view (capped at 64x), so this covers dozens of views of the simulation's timing.
LIVENESS_HORIZON_MS: Final = 600_000
# A run that exceeds this many events has a livelock (thousands of times a normal run).
EVENTS_MAX: Final = 2_000_000

SIM_TIMING: Final = Timing(
    propose_ms=400,
    collect_ms=60,
    prepare_ms=300,
    commit_ms=300,
    view_change_retry_ms=300,
    execute_ms=800,
)


_M = TypeVar("_M", Proposal, VoteMessage)

# ------------------------------------------------------------------------------ byzantine policies


@dataclasses.dataclass
class Node:
    """A simulated member: its core, its identity, its policy."""

    index: int
    key: IdentityKey
    round: Round
    policy: Policy
    honest: bool


class Policy:
    """How a member behaves. The honest policy passes the core's actions through; byzantine
    policies rewrite them (they hold the member's key, so what they sign is really signed)."""

    name: str = "honest"
    credential_fault: str | None = None  # "forge" or "weight": spoil the sortition credential

    def outgoing(self, node: Node, actions: list[Action], rng: random.Random) -> list[Action]:
        return actions

    def report(self, good: bytes, rng: random.Random) -> bytes | None:
        """The report digest this member proposes when it executes (None: stays silent)."""
        return good


class Withhold(Policy):
    """Sends nothing, never executes (a crashed or silent member)."""

    name = "withhold"

    def outgoing(self, node: Node, actions: list[Action], rng: random.Random) -> list[Action]:
        return [a for a in actions if not isinstance(a, Send | Broadcast)]

    def report(self, good: bytes, rng: random.Random) -> bytes | None:
        return None


class Equivocate(Policy):
    """As a proposer, sends a second, different signed proposal to half of the members."""

    name = "equivocate"

    def outgoing(self, node: Node, actions: list[Action], rng: random.Random) -> list[Action]:
        out: list[Action] = []
        for action in actions:
            proposal = _decoded(action, Proposal)
            if not isinstance(action, Broadcast) or proposal is None:
                out.append(action)
                continue
            other = _resign(node, proposal.vote, value=rng.randbytes(32))
            twin = dataclasses.replace(proposal, vote=other, justification=None)
            for member in node.round.membership.members:
                if member.identity == node.key.public:
                    continue
                data = action.data if rng.random() < 0.5 else _wire(node, twin)
                out.append(Send(member.identity, data))
        return out


class DoubleVote(Policy):
    """Prepares and commits two values: the proposal's and another one."""

    name = "double-vote"

    def outgoing(self, node: Node, actions: list[Action], rng: random.Random) -> list[Action]:
        out: list[Action] = []
        for action in actions:
            out.append(action)
            message = _decoded(action, VoteMessage)
            if isinstance(action, Send) and message is not None:
                other = _resign(node, message.vote, value=rng.randbytes(32))
                out.append(Send(action.to, _wire(node, VoteMessage(other))))
        return out


class WrongWeight(Policy):
    """Claims one more unit of weight than it has, in its credential and in every vote."""

    name = "wrong-weight"
    credential_fault = "weight"

    def outgoing(self, node: Node, actions: list[Action], rng: random.Random) -> list[Action]:
        return [
            _rewrite_votes(node, a, lambda v: _resign(node, v, weight=v.weight + 1))
            for a in actions
        ]


class Forge(Policy):
    """Forges its credential's proof and the signatures of its votes."""

    name = "forge"
    credential_fault = "forge"

    def outgoing(self, node: Node, actions: list[Action], rng: random.Random) -> list[Action]:
        def spoil(v: UnverifiedVote) -> UnverifiedVote:
            return dataclasses.replace(v, signature=bytes(64 - 1) + b"\x01")

        return [_rewrite_votes(node, a, spoil) for a in actions]


class WrongResult(Policy):
    """Behaves honestly in the agreements, but as executor proposes a wrong report."""

    name = "wrong-result"

    def report(self, good: bytes, rng: random.Random) -> bytes | None:
        return digest_parts(Domain.REPORT, b"wrong", good)


POLICIES: Final[dict[str, type[Policy]]] = {
    cls.name: cls for cls in (Withhold, Equivocate, DoubleVote, WrongWeight, Forge, WrongResult)
}


def _wire(node: Node, message: Proposal | VoteMessage | NewView) -> bytes:
    return encode_message(node.round.config.subject, message)


def _decoded(action: Action, cls: type[_M]) -> _M | None:
    if not isinstance(action, Send | Broadcast):
        return None
    _, message = decode_message(action.data)
    return message if isinstance(message, cls) else None


def _resign(
    node: Node, vote: UnverifiedVote, *, value: bytes | None = None, weight: int | None = None
) -> UnverifiedVote:
    body = VoteBody(
        vote.kind,
        vote.context,
        vote.view,
        vote.value if value is None else value,
        vote.voter,
        vote.weight if weight is None else weight,
    )
    signature = node.key.sign(Domain.VOTE, body.encode())
    return UnverifiedVote(
        body.kind, body.context, body.view, body.value, body.voter, body.weight, signature
    )


def _rewrite_votes(
    node: Node, action: Action, change: Callable[[UnverifiedVote], UnverifiedVote]
) -> Action:
    """Apply `change` to the sender's own vote inside an outgoing message."""
    if not isinstance(action, Send | Broadcast):
        return action
    _, message = decode_message(action.data)
    if not isinstance(message, Proposal | VoteMessage | NewView):
        return action
    new = dataclasses.replace(message, vote=change(message.vote))
    return dataclasses.replace(action, data=_wire(node, new))


# ------------------------------------------------------------------------------------ scenario


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Everything one seed decides."""

    seed: int
    kind: RoundKind
    operators: int
    tau: int
    policies: dict[int, str]  # operator index -> byzantine policy name
    drop: float
    duplicate: float
    fault_delay_ms: int
    good_delay_ms: int
    fault_end_ms: int
    start_jitter_ms: int

    @classmethod
    def from_seed(
        cls,
        seed: int,
        *,
        kind: RoundKind | None = None,
        members: int | None = None,
        byzantine: Sequence[str] | None = None,
    ) -> Scenario:
        rng = random.Random(seed)
        if kind is None:
            kind = RoundKind.TASK if rng.random() < 0.75 else RoundKind.BLOCK
        operators = members if members is not None else rng.randint(4, 10)
        names = sorted(POLICIES)
        if byzantine is None:
            count = rng.randint(0, max(0, (operators - 1) // 3))
            byzantine = [rng.choice(names) for _ in range(count)]
        chosen = rng.sample(range(operators), len(byzantine))
        faulty = rng.random() < 0.8
        return cls(
            seed=seed,
            kind=kind,
            operators=operators,
            tau=rng.randint(2 * operators, 4 * operators),
            policies=dict(zip(chosen, byzantine, strict=True)),
            drop=rng.uniform(0.0, 0.3) if faulty else 0.0,
            duplicate=rng.uniform(0.0, 0.2) if faulty else 0.0,
            fault_delay_ms=rng.randint(5, 600) if faulty else 20,
            good_delay_ms=rng.randint(1, 40),
            fault_end_ms=rng.randint(0, 4000) if faulty else 0,
            start_jitter_ms=rng.randint(0, 200),
        )


@dataclasses.dataclass
class Outcome:
    """What a run produced, and what the checkers found."""

    scenario: Scenario
    members: int
    byzantine_members: list[int]
    excluded_operators: list[int]
    decisions: dict[int, list[Decide]]
    finished: dict[int, Decide | GiveUp | None]
    reports: list[tuple[int, ReportMisbehaviour]]
    views_after_faults: dict[tuple[int, int], int]  # (member, instance) -> views entered
    messages: int
    events: int
    end_ms: int
    violations: list[str]

    @property
    def ok(self) -> bool:
        return not self.violations


def reproduce_command(seed: int) -> str:
    """The command that replays a seed."""
    return f"python -m committee.sim --seed {seed}"


# --------------------------------------------------------------------------------------- runner


class Simulation:
    """A discrete-event run of one scenario."""

    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.rng = random.Random(scenario.seed ^ 0x5EED)
        self.queue: list[tuple[int, int, int, Event]] = []
        self.seq = 0
        self.now = 0
        self.messages = 0
        self.events = 0
        self.decisions: dict[int, list[Decide]] = defaultdict(list)
        self.reports: list[tuple[int, ReportMisbehaviour]] = []
        self.views: dict[tuple[int, int], set[int]] = defaultdict(set)
        self.task_id = digest_parts(Domain.TASK_ID, b"sim", scenario.seed.to_bytes(8, "big"))
        self.excluded: list[int] = []
        self.nodes = self._build()

    # --- setup: sortition, credentials, roster

    def _build(self) -> list[Node]:
        sc = self.sc
        rng = random.Random(sc.seed)
        keys = [IdentityKey(rng.randbytes(32)) for _ in range(sc.operators)]
        policies = {i: POLICIES[name]() for i, name in sc.policies.items()}
        if sc.kind is RoundKind.BLOCK:
            weights = [rng.randint(1, 5) for _ in range(sc.operators)]
            membership = Membership.from_weights(
                (k.public, w) for k, w in zip(keys, weights, strict=True)
            )
            byz = {i for i in policies}
            members = list(range(sc.operators))
            byz = self._cap_byzantine(byz, members, weights)
            configs = [RoundConfig.for_block(7, membership, k, timing=SIM_TIMING) for k in keys]
            return [
                Node(
                    i,
                    keys[i],
                    Round(configs[i]),
                    policies.get(i, Policy()) if i in byz else Policy(),
                    i not in byz,
                )
                for i in range(sc.operators)
            ]
        return self._build_task(rng, keys, policies)

    def _build_task(
        self, rng: random.Random, keys: list[IdentityKey], policies: dict[int, Policy]
    ) -> list[Node]:
        sc = self.sc
        vrf_keys = [vrf.SecretKey.from_seed(rng.randbytes(32)) for _ in keys]
        entries = [
            StakeEntry(k.public, v.public_key.key, rng.randint(1, 60), True, 0, 2, 0)
            for k, v in zip(keys, vrf_keys, strict=True)
        ]
        table = StakeTable.of(entries, height=10, maturity_blocks=2)
        block_hash = digest_parts(Domain.BLOCK_HEADER, b"sim", sc.seed.to_bytes(8, "big"))
        seed = committee_seed(Role.TASK_COMMITTEE, self.task_id, block_hash)
        verified: dict[int, Credential] = {}
        for i, (key, vkey) in enumerate(zip(keys, vrf_keys, strict=True)):
            drawn = draw(
                vkey,
                key.public,
                role=Role.TASK_COMMITTEE,
                subject=self.task_id,
                seed=seed,
                stake_table=table,
                tau=sc.tau,
            )
            if not isinstance(drawn, Credential):
                continue
            record = drawn.record
            fault = policies[i].credential_fault if i in policies else None
            if fault == "forge":
                record = dataclasses.replace(record, proof=bytes(80))
            elif fault == "weight":
                record = dataclasses.replace(record, weight=record.weight + 1)
            wire = UnverifiedCredential.decode(record.encode())
            try:  # what a validator does before including a credential in the roster
                verified[i] = wire.verify(seed, table, tau=sc.tau)
            except CredentialError:
                self.excluded.append(i)
        if not verified:  # nobody drawn: fall back to the first operator alone
            first = draw(
                vrf_keys[0],
                keys[0].public,
                role=Role.TASK_COMMITTEE,
                subject=self.task_id,
                seed=seed,
                stake_table=table,
                tau=table.total,
            )
            assert isinstance(first, Credential)
            verified[0] = first
        membership, ranking = roster(verified.values())
        operator_of = {keys[i].public: i for i in verified}
        members = [operator_of[m.identity] for m in membership.members]
        weights = [m.weight for m in membership.members]
        byz_ops = self._cap_byzantine({i for i in policies if i in verified}, members, weights)
        nodes: list[Node] = []
        for index, op in enumerate(members):
            config = RoundConfig.for_task(
                self.task_id,
                membership,
                ranking,
                keys[op],
                timing=SIM_TIMING,
                attempts_max=len(members),
            )
            policy = policies[op] if op in byz_ops else Policy()
            nodes.append(Node(index, keys[op], Round(config), policy, op not in byz_ops))
        self.credentials = {keys[op].public: verified[op] for op in members}
        return nodes

    @staticmethod
    def _cap_byzantine(byz: set[int], members: list[int], weights: list[int]) -> set[int]:
        """Keep byzantine weight strictly below a third (the model's assumption)."""
        total = sum(weights)
        weight_of = dict(zip(members, weights, strict=True))
        kept: set[int] = set()
        for op in sorted(byz):
            if op in weight_of and 3 * (sum(weight_of[k] for k in kept) + weight_of[op]) < total:
                kept.add(op)
        return kept

    # --- event loop

    def _push(self, at: int, node: int, event: Event) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, node, event))

    def _send(self, src: int, dst: int, data: bytes) -> None:
        self.messages += 1
        faults = self.now < self.sc.fault_end_ms
        if faults and self.rng.random() < self.sc.drop:
            return
        copies = 2 if faults and self.rng.random() < self.sc.duplicate else 1
        for _ in range(copies):
            bound = self.sc.fault_delay_ms if faults else self.sc.good_delay_ms
            delay = self.rng.randint(1, bound)
            event = MessageReceived(self.nodes[src].key.public, data)
            self._push(self.now + delay, dst, event)

    def run(self) -> Outcome:
        sc = self.sc
        index_of = {n.key.public: n.index for n in self.nodes}
        self.index_of = index_of
        for node in self.nodes:
            value = self._start_value(node)
            cred = self.credentials.get(node.key.public) if sc.kind is RoundKind.TASK else None
            self._push(
                self.rng.randint(0, sc.start_jitter_ms), node.index, LocalCredential(value, cred)
            )
        horizon = sc.fault_end_ms + LIVENESS_HORIZON_MS
        while self.queue and self.events < EVENTS_MAX:
            at, _, target, event = heapq.heappop(self.queue)
            if at > horizon:
                break
            self.now = at
            self.events += 1
            node = self.nodes[target]
            before = (node.round.instance, node.round.view)
            actions = node.round.handle(event)
            after = (node.round.instance, node.round.view)
            if after != before and self.now >= sc.fault_end_ms:
                self.views[(target, after[0])].add(after[1])
            self._execute(node, actions)
        return self._check()

    def _start_value(self, node: Node) -> bytes | None:
        if self.sc.kind is RoundKind.TASK:
            return node.key.public
        return digest_parts(Domain.BLOCK_HEADER, b"block", node.key.public)

    def _execute(self, node: Node, actions: list[Action]) -> None:
        rng = self.rng
        for action in node.policy.outgoing(node, actions, rng):
            match action:
                case Send(to=to, data=data):
                    self._send(node.index, self.index_of[to], data)
                case Broadcast(data=data):
                    for other in self.nodes:
                        if other.index != node.index:
                            self._send(node.index, other.index, data)
                case StartTimer(instance=i, view=v, phase=p, duration_ms=d):
                    self._push(self.now + d, node.index, TimerFired(i, v, p))
                case Decide():
                    self.decisions[node.index].append(action)
                    if action.kind is DecisionKind.EXECUTOR and action.value == node.key.public:
                        self._run_job(node, action.attempt)
                case NeedVerdict(attempt=attempt, report=report):
                    self._fetch(node, attempt, report)
                case ReportMisbehaviour():
                    self.reports.append((node.index, action))
                case GiveUp():
                    pass

    def _good_report(self, attempt: int) -> bytes:
        return digest_parts(Domain.REPORT, self.task_id, attempt.to_bytes(4, "big"))

    def _run_job(self, node: Node, attempt: int) -> None:
        report = node.policy.report(self._good_report(attempt), self.rng)
        if report is None:
            return
        duration = self.rng.randint(10, SIM_TIMING.execute_ms // 2)
        self._push(self.now + duration, node.index, LocalVerdict(attempt, report, True))

    def _fetch(self, node: Node, attempt: int, report: bytes) -> None:
        """The shell fetches the report and verifies it (a round trip, retried under loss)."""
        faults = self.now < self.sc.fault_end_ms
        bound = self.sc.fault_delay_ms if faults else self.sc.good_delay_ms
        delay = self.rng.randint(2, 2 * bound + 2)
        if faults and self.rng.random() < self.sc.drop:
            delay += SIM_TIMING.view_change_retry_ms
        good = report == self._good_report(attempt)
        reason = RejectReason.NONE if good else RejectReason.WRONG_OUTPUT
        verdict = LocalVerdict(attempt, report, good, reason)
        self._push(self.now + delay, node.index, verdict)

    # --- checkers

    def _check(self) -> Outcome:
        sc = self.sc
        violations: list[str] = []
        honest = [n for n in self.nodes if n.honest]
        byz_ids = {n.key.public for n in self.nodes if not n.honest}
        # Safety: one value per agreement.
        per_context: dict[tuple[str, int], set[bytes]] = defaultdict(set)
        for node in honest:
            for d in self.decisions[node.index]:
                key = (
                    "result"
                    if d.kind in (DecisionKind.RESULT, DecisionKind.REJECTED)
                    else d.kind.value,
                    d.attempt,
                )
                per_context[key].add(d.value)
        for key, values in per_context.items():
            if len(values) > 1:
                violations.append(f"safety: {len(values)} different decisions for {key}")
        results = {
            d.value
            for n in honest
            for d in self.decisions[n.index]
            if d.kind is DecisionKind.RESULT
        }
        if len(results) > 1:
            violations.append("safety: two different certified results for one task")
        if results and results != {self._good_report(a) for a in range(sc.operators)} & results:
            violations.append("safety: a wrong report was certified")
        # No honest member accuses an honest one; evidence always verifies.
        for reporter, report in self.reports:
            if not self.nodes[reporter].honest:
                continue
            if report.peer not in byz_ids:
                violations.append(
                    f"accusation: member {reporter} reported honest "
                    f"{self.index_of.get(report.peer)} for {report.reason.value} ({report.detail})"
                )
            if report.evidence is not None:
                checked = verify_evidence(report.evidence, self.nodes[0].round.membership)
                if checked.voter not in byz_ids:
                    violations.append("evidence names an honest member")
        # Liveness.
        finished = {n.index: n.round.outcome for n in self.nodes}
        for node in honest:
            if node.round.phase is not Phase.DONE:
                r = node.round
                violations.append(
                    f"liveness: member {node.index} did not finish (instance {r.instance}, "
                    f"view {r.view}, phase {r.phase.value})"
                )
        byz_count = len(self.nodes) - len(honest)
        bound = byz_count + LIVENESS_SLACK_VIEWS
        views_after = {k: len(v) for k, v in self.views.items() if self.nodes[k[0]].honest}
        for (member, instance), count in views_after.items():
            if count > bound:
                violations.append(
                    f"liveness: member {member} went through {count} views of agreement "
                    f"{instance} after the faults stopped (bound {bound})"
                )
        if (
            sc.kind is RoundKind.TASK
            and not any(isinstance(finished[n.index], Decide) for n in honest)
            and not any(isinstance(finished[n.index], GiveUp) for n in honest)
        ):
            violations.append("liveness: the task ended without result or give-up")
        return Outcome(
            scenario=sc,
            members=len(self.nodes),
            byzantine_members=[n.index for n in self.nodes if not n.honest],
            excluded_operators=self.excluded,
            decisions=dict(self.decisions),
            finished=finished,
            reports=self.reports,
            views_after_faults=views_after,
            messages=self.messages,
            events=self.events,
            end_ms=self.now,
            violations=violations,
        )


def run_seed(seed: int, **overrides: object) -> Outcome:
    """Run one seed (overrides: kind, members, byzantine, as in `Scenario.from_seed`)."""
    scenario = Scenario.from_seed(seed, **overrides)  # type: ignore[arg-type]
    return Simulation(scenario).run()


def describe(outcome: Outcome) -> str:
    """A readable summary of a run."""
    sc = outcome.scenario
    lines = [
        f"seed {sc.seed}: {sc.kind.value} round, {outcome.members} members "
        f"(of {sc.operators} operators, tau {sc.tau}), byzantine "
        f"{[(m, sc.policies.get(m)) for m in outcome.byzantine_members] or 'none'}",
        f"  faults until {sc.fault_end_ms} ms: drop {sc.drop:.2f}, duplicate {sc.duplicate:.2f}, "
        f"delay <= {sc.fault_delay_ms} ms; then delay <= {sc.good_delay_ms} ms",
        f"  credentials rejected at roster formation: {outcome.excluded_operators or 'none'}",
        f"  {outcome.events} events, {outcome.messages} messages, ended at {outcome.end_ms} ms",
    ]
    for member, outcome_ in sorted(outcome.finished.items()):
        what = (
            "-"
            if outcome_ is None
            else (
                f"{outcome_.kind.value} attempt {outcome_.attempt} {outcome_.value.hex()[:12]}"
                if isinstance(outcome_, Decide)
                else f"gave up: {outcome_.reason}"
            )
        )
        lines.append(f"  member {member}: {what}")
    counts = Counter(r.reason.value for _, r in outcome.reports)
    lines.append(f"  misbehaviour reports: {dict(counts) or 'none'}")
    lines += [f"  VIOLATION {v}" for v in outcome.violations]
    lines.append("  OK" if outcome.ok else f"  FAILED: reproduce with {reproduce_command(sc.seed)}")
    return "\n".join(lines)


def run(seed: int, seeds: int = 1, *, quiet: bool = False) -> int:
    """Run seeds `seed`..`seed + seeds - 1`, print each summary (only failures if `quiet`);
    returns 1 if any checker failed, else 0."""
    failed = 0
    for one in range(seed, seed + seeds):
        outcome = run_seed(one)
        if not outcome.ok:
            failed += 1
        if not quiet or not outcome.ok:
            sys.stdout.write(describe(outcome) + "\n")
    if seeds > 1:
        sys.stdout.write(f"{seeds - failed}/{seeds} seeds passed\n")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m committee.sim --seed N [--seeds K] [--quiet]`."""
    parser = argparse.ArgumentParser(prog="python -m committee.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds")
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    args = parser.parse_args(argv)
    return run(args.seed, args.seeds, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
