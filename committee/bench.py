"""`python -m committee.bench`: what a committee decision costs.

For rosters of 64 and 200 members (every member an operator drawn by real sortition), it runs the
pure cores of all members in one process with a loss-free FIFO network and measures:

- credentials: proving (each member, once) and verifying every credential once (what validators do
  before putting a credential in a task's roster), with the VRF backend that `vrf.BACKEND` names;
- decision CPU: the whole task round (executor agreement, then result agreement: the result
  certificate) and a block round, summed over all members, with every vote, certificate and
  proposal signature checked and every message encoded and decoded;
- messages per decision, and the extra messages of one view change (the first proposer silent).

Nothing a committee sends depends on the size of the network: only on the roster (the largest
message is a proposal with three certificates of at most MEMBERS_MAX signatures).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import time
from collections.abc import Sequence

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
from committee.events import (
    Action,
    Broadcast,
    Decide,
    DecisionKind,
    GiveUp,
    LocalCredential,
    LocalVerdict,
    MessageReceived,
    NeedVerdict,
    Phase,
    Send,
    StartTimer,
    TimerFired,
)
from committee.round import Round, RoundConfig
from ledger.certificates import Membership
from ledger.domains import Domain, digest_parts
from ledger.signing import IdentityKey

SIZES = (64, 200)


@dataclasses.dataclass
class Tally:
    messages: int = 0
    bytes: int = 0
    cpu_s: float = 0.0
    per_member_cpu_s: list[float] = dataclasses.field(default_factory=list)


class Driver:
    """Runs member cores with a FIFO, loss-free network; `silent` members send nothing."""

    def __init__(self, rounds: list[Round], silent: frozenset[int] = frozenset()) -> None:
        self.rounds = rounds
        self.silent = silent
        self.index = {r.identity: i for i, r in enumerate(rounds)}
        self.queue: collections.deque[tuple[int, MessageReceived]] = collections.deque()
        self.timers: dict[int, TimerFired] = {}
        self.tally = Tally(per_member_cpu_s=[0.0] * len(rounds))
        self.decisions: dict[int, list[Decide | GiveUp]] = collections.defaultdict(list)

    def handle(self, i: int, event: object) -> None:
        start = time.process_time()
        actions = self.rounds[i].handle(event)  # type: ignore[arg-type]
        self.tally.per_member_cpu_s[i] += time.process_time() - start
        self._execute(i, actions)

    def _execute(self, i: int, actions: list[Action]) -> None:
        me = self.rounds[i].identity
        for action in actions:
            match action:
                case Send(to=to, data=data) if i not in self.silent:
                    self._count(data, 1)
                    self.queue.append((self.index[to], MessageReceived(me, data)))
                case Broadcast(data=data) if i not in self.silent:
                    self._count(data, len(self.rounds) - 1)
                    for j in range(len(self.rounds)):
                        if j != i:
                            self.queue.append((j, MessageReceived(me, data)))
                case StartTimer():
                    self.timers[i] = TimerFired(action.instance, action.view, action.phase)
                case Decide() | GiveUp():
                    self.decisions[i].append(action)
                    if (
                        isinstance(action, Decide)
                        and action.kind is DecisionKind.EXECUTOR
                        and action.value == me
                    ):
                        self.queue.append((i, _own_report(action.attempt)))  # type: ignore[arg-type]
                case NeedVerdict(attempt=attempt, report=report):
                    verdict = LocalVerdict(attempt, report, True)
                    self.queue.append((i, verdict))  # type: ignore[arg-type]

    def _count(self, data: bytes, copies: int) -> None:
        self.tally.messages += copies
        self.tally.bytes += copies * len(data)

    def run(self) -> None:
        while self.queue:
            i, event = self.queue.popleft()
            self.handle(i, event)

    def fire_waiting(self, only: int | None = None) -> None:
        for i, r in enumerate(self.rounds):
            if only is not None and i != only:
                continue
            if i not in self.silent and r.phase is not Phase.DONE and i in self.timers:
                self.handle(i, self.timers[i])


def _own_report(attempt: int) -> LocalVerdict:
    return LocalVerdict(attempt, digest_parts(Domain.REPORT, b"bench", bytes([attempt])), True)


@dataclasses.dataclass
class Committee:
    membership: Membership
    ranking: tuple[int, ...]
    keys: list[IdentityKey]  # in membership order
    prove_s: float
    verify_s: float


def build_committee(n: int) -> Committee:
    """n operators drawn by sortition with tau = total stake (everyone drawn with weight = stake 1),
    so the roster has exactly n members; every credential is proved and verified once."""
    keys = [IdentityKey(i.to_bytes(4, "big") * 8) for i in range(n)]
    vrf_keys = [vrf.SecretKey.from_seed((i + 7).to_bytes(4, "big") * 8) for i in range(n)]
    table = StakeTable.of(
        [
            StakeEntry(k.public, v.public_key.key, 1, True, 0, 1, 0)
            for k, v in zip(keys, vrf_keys, strict=True)
        ],
        height=1,
    )
    task = digest_parts(Domain.TASK_ID, b"bench", n.to_bytes(4, "big"))
    seed = committee_seed(Role.TASK_COMMITTEE, task, digest_parts(Domain.BLOCK_HEADER, b"b"))
    start = time.process_time()
    drawn = [
        draw(
            v, k.public, role=Role.TASK_COMMITTEE, subject=task, seed=seed, stake_table=table, tau=n
        )
        for k, v in zip(keys, vrf_keys, strict=True)
    ]
    prove_s = time.process_time() - start
    creds = [c for c in drawn if isinstance(c, Credential)]
    assert len(creds) == n
    start = time.process_time()
    verified = [
        UnverifiedCredential.decode(c.record.encode()).verify(seed, table, tau=n) for c in creds
    ]
    verify_s = time.process_time() - start
    membership, ranking = roster(verified)
    by_identity = {k.public: k for k in keys}
    ordered = [by_identity[m.identity] for m in membership.members]
    return Committee(membership, ranking, ordered, prove_s, verify_s)


TASK_ID = digest_parts(Domain.TASK_ID, b"bench task")


def task_round(c: Committee, silent: frozenset[int] = frozenset()) -> Driver:
    rounds = [Round(RoundConfig.for_task(TASK_ID, c.membership, c.ranking, k)) for k in c.keys]
    driver = Driver(rounds, silent)
    for i, k in enumerate(c.keys):
        driver.handle(i, LocalCredential(k.public))
    driver.run()
    if silent:
        driver.fire_waiting()  # everyone waiting for the silent proposer times out
        driver.run()
        # The next proposer heard every NEW_VIEW but the silent member's: its collection window
        # ends and it proposes.
        driver.fire_waiting(only=c.ranking[1])
        driver.run()
    return driver


def block_round(c: Committee) -> Driver:
    rounds = [Round(RoundConfig.for_block(9, c.membership, k)) for k in c.keys]
    driver = Driver(rounds)
    for i, k in enumerate(c.keys):
        driver.handle(i, LocalCredential(digest_parts(Domain.BLOCK_HEADER, k.public)))
    driver.run()
    return driver


def measure(n: int) -> dict[str, object]:
    c = build_committee(n)
    task = task_round(c)
    finished = sum(
        isinstance(o, Decide) and o.kind is DecisionKind.RESULT
        for ds in task.decisions.values()
        for o in ds
    )
    assert finished == n, f"only {finished} of {n} members certified the result"
    block = block_round(c)
    first_proposer = c.ranking[0]
    changed = task_round(c, frozenset({first_proposer}))
    honest = [i for i in range(n) if i != first_proposer]
    assert all(
        any(isinstance(o, Decide) and o.kind is DecisionKind.RESULT for o in changed.decisions[i])
        for i in honest
    ), "the view change did not finish the task"
    task_cpu = sum(task.tally.per_member_cpu_s)
    block_cpu = sum(block.tally.per_member_cpu_s)
    leader = max(task.tally.per_member_cpu_s)
    return {
        "members": n,
        "vrf_backend": vrf.BACKEND,
        "credential_prove_ms_each": 1000 * c.prove_s / n,
        "credential_verify_ms_each": 1000 * c.verify_s / n,
        "credential_verify_ms_all": 1000 * c.verify_s,
        "task_decision_cpu_ms_total": 1000 * task_cpu,
        "task_decision_cpu_ms_per_member": 1000 * task_cpu / n,
        "task_decision_cpu_ms_busiest_member": 1000 * leader,
        "task_messages": task.tally.messages,
        "task_bytes": task.tally.bytes,
        "block_decision_cpu_ms_total": 1000 * block_cpu,
        "block_decision_cpu_ms_per_member": 1000 * block_cpu / n,
        "block_messages": block.tally.messages,
        "block_bytes": block.tally.bytes,
        "view_change_extra_messages": changed.tally.messages - task.tally.messages,
        "view_change_extra_bytes": changed.tally.bytes - task.tally.bytes,
    }


def run(sizes: Sequence[int] = SIZES) -> int:
    """Measure each roster size; print the table and a JSON line. Returns the exit code."""
    print(f"VRF backend: {vrf.BACKEND} (POSI_VRF_BACKEND=auto|c|python)")
    results = []
    for n in sizes:
        r = measure(n)
        results.append(r)
        print(
            f"\n{n} members\n"
            f"  credentials: prove {r['credential_prove_ms_each']:.2f} ms each, verify "
            f"{r['credential_verify_ms_each']:.2f} ms each ({r['credential_verify_ms_all']:.0f} ms "
            f"for the roster)\n"
            f"  task decision (executor + result certificate): "
            f"{r['task_decision_cpu_ms_total']:.0f} ms CPU over all members, "
            f"{r['task_decision_cpu_ms_per_member']:.1f} ms per member, busiest "
            f"{r['task_decision_cpu_ms_busiest_member']:.1f} ms; "
            f"{r['task_messages']} messages, {r['task_bytes'] / 1024:.0f} KiB\n"
            f"  block decision: {r['block_decision_cpu_ms_total']:.0f} ms CPU over all members, "
            f"{r['block_decision_cpu_ms_per_member']:.1f} ms per member; "
            f"{r['block_messages']} messages, {r['block_bytes'] / 1024:.0f} KiB\n"
            f"  one view change (silent first proposer): +{r['view_change_extra_messages']} "
            f"messages, +{r['view_change_extra_bytes'] / 1024:.0f} KiB"
        )
    print(json.dumps(results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m committee.bench [--sizes 64 200]`."""
    parser = argparse.ArgumentParser(prog="python -m committee.bench", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    return run(parser.parse_args(argv).sizes)


if __name__ == "__main__":
    sys.exit(main())
