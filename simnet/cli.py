"""`posi-peer simnet` and `posi-peer simnet-bench`.

    posi-peer simnet --deterministic --seed 7 --peers 1000 --tasks 50      # seeded, in one process
    posi-peer simnet --deterministic --seed 0 --seeds 100 --byzantine-stake 0.2   # a seed sweep
    posi-peer simnet --peers 300 --validators 4 --tasks 50 --sandbox fake   # real py-libp2p peers
    posi-peer simnet --scenario faults.toml --crash 5@10000+20000          # a file, plus flags

Flags override the scenario file. Faults on the command line: `--crash N@AT[+DURATION]` (N peers
crash at AT ms and restart DURATION ms later; without it they stay down), `--partition
FRACTION@AT+DURATION`, `--slow N@AT+DURATION[xFACTOR]`, `--extra-loss SHARE@AT+DURATION`. Times in
milliseconds (or with an `s` suffix: seconds).

Exit code 0 when every check passed, 1 when a check failed (the report and the terminal say which,
with the command that reproduces it), 2 for a broken scenario or flag.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
import sys
from typing import Any

from p2p.roles.base import OPEN_TASKS_MAX
from simnet.errors import ScenarioError


def register(subparsers: Any) -> None:
    """Add `simnet` and `simnet-bench` to the `posi-peer` command line."""
    p = subparsers.add_parser(
        "simnet",
        help="run many peers on this machine (real libp2p, or a seeded deterministic mode)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=main_args)
    b = subparsers.add_parser(
        "simnet-bench",
        help="simulator benchmarks: scaling, seed sweeps, real-mode throughput",
        description="Run the simulator's benchmarks and print the figures (see simnet/README).",
    )
    from simnet import bench

    bench.add_arguments(b)
    b.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from simnet import bench

    return bench.main_args(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `simnet` flags."""
    p.add_argument("--deterministic", action="store_true", help="seeded discrete-event mode")
    p.add_argument("--scenario", type=pathlib.Path, help="a TOML scenario file")
    p.add_argument("--seed", type=int, help="the seed (default: the file's, else 0)")
    p.add_argument("--seeds", type=int, default=1, help="deterministic: run this many seeds")
    p.add_argument("--peers", type=int, help="operators (validators and posters come on top)")
    p.add_argument("--validators", type=int)
    p.add_argument("--tasks", type=int)
    p.add_argument("--rate", type=float, help="tasks posted per second")
    p.add_argument("--posters", type=int)
    p.add_argument("--tau", type=int, help="expected committee weight per task")
    p.add_argument(
        "--open-tasks",
        type=int,
        help="validators start no new task while this many are open; the rest queue "
        f"(default {OPEN_TASKS_MAX}, the node's)",
    )
    p.add_argument(
        "--poll-blocks",
        action="store_true",
        default=None,
        help="peers the block gossip misses follow the chain by long poll (off by default: "
        "at 300 real peers on two cores the faster blocks filled rosters past what the cores "
        "carry; simnet/README.md)",
    )
    p.add_argument("--jobs", help="job mix, comma-separated (echo,sha256,wc,sleep)")
    p.add_argument("--latency", help="deterministic: one-way latency, e.g. lognormal:20:0.4")
    p.add_argument("--loss", type=float, help="deterministic: base message loss")
    p.add_argument("--duplicate", type=float, help="deterministic: duplication share")
    p.add_argument("--reorder", type=float, help="deterministic: reordering share")
    p.add_argument("--bandwidth-mbit", type=float, help="deterministic: uplink per peer")
    p.add_argument("--byzantine-stake", type=float, help="share of operator stake byzantine")
    p.add_argument("--policies", help="byzantine operator policies, comma-separated")
    p.add_argument("--byzantine-validators", help="byzantine validator policies, comma-separated")
    p.add_argument("--crash", action="append", default=[], metavar="N@AT[+DUR]")
    p.add_argument("--partition", action="append", default=[], metavar="FRACTION@AT+DUR")
    p.add_argument("--slow", action="append", default=[], metavar="N@AT+DUR[xFACTOR]")
    p.add_argument("--extra-loss", action="append", default=[], metavar="SHARE@AT+DUR")
    p.add_argument("--faults-until", type=int, help="end of the safety phase (ms)")
    p.add_argument("--liveness-bound", type=int, help="liveness bound after faults stop (ms)")
    p.add_argument("--block-interval", type=int, default=None, help="block interval (ms)")
    p.add_argument("--out", type=pathlib.Path, help="report directory (default simnet-out/...)")
    p.add_argument("--no-plots", action="store_true", help="JSON only (no PNG/HTML)")
    p.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    real = p.add_argument_group("real mode")
    real.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    real.add_argument(
        "--sandbox",
        choices=("fake", "docker"),
        default="docker",
        help="executions: real Docker jobs (default) or the fake sandbox",
    )
    real.add_argument("--timeout", type=float, default=1800.0, help="give up after (s)")


_FAULT = re.compile(
    r"^(?P<who>[0-9.]+)@(?P<at>[0-9.]+s?)(\+(?P<dur>[0-9.]+s?))?(x(?P<f>[0-9.]+))?$"
)


def _ms(text: str) -> int:
    return round(float(text[:-1]) * 1000) if text.endswith("s") else int(text)


def parse_fault(kind: str, text: str) -> Any:
    """A `Fault` from a flag value. Raises ScenarioError with the expected form."""
    from simnet.scenario import Fault

    m = _FAULT.match(text)
    if m is None:
        raise ScenarioError(f"--{kind} {text!r}: expected WHO@AT[+DURATION][xFACTOR]")
    try:
        at = _ms(m["at"])
        until = at + _ms(m["dur"]) if m["dur"] else None
        who = m["who"]
        if kind == "crash":
            return Fault("crash", at, until, count=int(who))
        if kind == "partition":
            return Fault("partition", at, until, fraction=float(who))
        if kind == "slow":
            return Fault("slow", at, until, count=int(who), factor=float(m["f"] or 10.0))
        return Fault("loss", at, until, loss=float(who))
    except ValueError as exc:
        raise ScenarioError(f"--{kind} {text!r}: {exc}") from None


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The scenario: the file (if any), then the flags on top. Raises ScenarioError."""
    import dataclasses

    from simnet.network import Latency
    from simnet.scenario import Phases, Scenario

    if args.scenario is not None:
        try:
            text = args.scenario.read_text()
        except OSError as exc:
            raise ScenarioError(f"--scenario {args.scenario}: {exc.strerror}") from None
        sc = Scenario.from_toml(text)
    else:
        sc = Scenario()
    top: dict[str, Any] = {}
    for name in ("seed", "peers", "validators"):
        if getattr(args, name) is not None:
            top[name] = getattr(args, name)
    wl: dict[str, Any] = {}
    for flag, field in (
        ("tasks", "tasks"),
        ("rate", "rate_per_s"),
        ("posters", "posters"),
        ("tau", "tau"),
        ("open_tasks", "open_tasks_max"),
        ("poll_blocks", "poll_blocks"),
    ):
        if getattr(args, flag) is not None:
            wl[field] = getattr(args, flag)
    if args.jobs:
        wl["jobs"] = tuple(j.strip() for j in args.jobs.split(",") if j.strip())
    net: dict[str, Any] = {}
    if args.latency:
        net["latency"] = Latency.parse(args.latency)
    for flag in ("loss", "duplicate", "reorder"):
        if getattr(args, flag) is not None:
            net[flag] = getattr(args, flag)
    if args.bandwidth_mbit is not None:
        net["bandwidth_bytes_per_ms"] = round(args.bandwidth_mbit * 1000 / 8)
    bz: dict[str, Any] = {}
    if args.byzantine_stake is not None:
        bz["stake"] = args.byzantine_stake
    if args.policies:
        bz["policies"] = tuple(x.strip() for x in args.policies.split(",") if x.strip())
    if args.byzantine_validators:
        bz["validators"] = tuple(
            x.strip() for x in args.byzantine_validators.split(",") if x.strip()
        )
    faults = list(sc.faults)
    for kind in ("crash", "partition", "slow", "extra_loss"):
        for text in getattr(args, kind):
            faults.append(parse_fault(kind.replace("extra_", ""), text))
    last = max([f.until_ms or f.at_ms for f in faults], default=0)
    phases = Phases(
        faults_until_ms=args.faults_until
        if args.faults_until is not None
        else max(sc.phases.faults_until_ms, last),
        liveness_bound_ms=args.liveness_bound
        if args.liveness_bound is not None
        else sc.phases.liveness_bound_ms,
    )
    try:
        return Scenario(
            seed=top.get("seed", sc.seed),
            peers=top.get("peers", sc.peers),
            validators=top.get("validators", sc.validators),
            network=dataclasses.replace(sc.network, **net),
            workload=dataclasses.replace(sc.workload, **wl),
            byzantine=dataclasses.replace(sc.byzantine, **bz),
            phases=phases,
            faults=tuple(faults),
        )
    except TypeError as exc:
        raise ScenarioError(str(exc)) from None


def reproduce_command(argv: list[str], seed: int) -> str:
    """The command line that replays one seed: the same flags, that seed, no sweep."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--seed", "--seeds", "--out"):
            skip = i + 1 < len(argv)
            continue
        if arg.startswith(("--seed=", "--seeds=", "--out=")):
            continue
        out.append(arg)
    return shlex.join(["posi-peer", "simnet", *out, "--seed", str(seed)])


def main_args(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run what the flags ask for; returns the exit code."""
    argv = list(sys.argv[2:] if argv is None else argv)
    try:
        scenario = scenario_from_args(args)
    except ScenarioError as exc:
        print(f"posi-peer simnet: {exc}", file=sys.stderr)
        return 2
    if args.deterministic:
        from simnet import runner

        return runner.deterministic(args, scenario, argv)
    if args.seeds != 1:
        print("posi-peer simnet: --seeds needs --deterministic", file=sys.stderr)
        return 2
    from simnet import runner

    return runner.real(args, scenario, argv)
