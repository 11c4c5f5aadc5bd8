"""The `posi-peer` command line.

Only parses arguments and calls into the packages; the node's subcommands live in
`p2p.commands`, other packages register theirs through `_PACKAGE_CLIS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

# Exit codes of the node's subcommands (documented in --help and p2p/README.md).
EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and failed (task failed/expired, result does not verify)
EXIT_USAGE = 2  # bad arguments, settings, key, genesis or certificate files: fix them
EXIT_UNAVAILABLE = 3  # the environment refused: Docker, an address in use, a corrupt store
EXIT_TIMEOUT = 4  # a deadline passed (submit, result): raise --timeout-s or check the network
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM

EXIT_CODES_HELP = """exit codes:
  0    success
  1    the operation failed (task failed or expired, result does not verify)
  2    usage: bad arguments, settings, key, genesis or certificate file (the message says which)
  3    unavailable: Docker, a listen/metrics address in use, a corrupt or foreign store
  4    timed out (submit, result): raise --timeout-s or check that the network is up
  130  interrupted (SIGINT/SIGTERM)"""

ENV_HELP = """settings (lowest precedence first): defaults, DATA/config.toml, environment, flags.
environment:
  POSI_DATA_DIR            data directory (default ~/.posi-peer)
  POSI_GENESIS             genesis file (relative to the data directory)
  POSI_LISTEN              listen multiaddrs, comma separated
  POSI_BOOTSTRAP           bootstrap multiaddrs (ending in /p2p/<peer id>), comma separated
  POSI_ROLES               validator,operator (poster is implied by submit/result)
  POSI_METRICS             HOST:PORT of the Prometheus endpoint, or off
  POSI_LOG_FORMAT          json or human
  POSI_LOG_LEVEL           debug, info, warning or error
  POSI_BLOCK_INTERVAL_MS   validators: milliseconds between blocks
  POSI_RUNTIME             operators: runc or runsc
  POSI_STATUS_INTERVAL_S   seconds between rewrites of DATA/status.json
  POSI_EXECUTE_TIMEOUT_MS  operators: an executor's deadline to report (then the next one runs)"""


def _version() -> str:
    try:
        return version("posi-peer")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _node_flags(p: argparse.ArgumentParser, *, run: bool = False) -> None:
    """Flags shared by the commands that start a node (they override config.toml and env)."""
    p.add_argument(
        "--data-dir", help="the node's data directory (default: $POSI_DATA_DIR or ~/.posi-peer)"
    )
    p.add_argument("--genesis", help="genesis JSON file (default: DATA/genesis.json)")
    p.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help="listen address, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable)",
    )
    p.add_argument(
        "--bootstrap",
        action="append",
        metavar="MULTIADDR",
        help="bootstrap peer /ip4/H/tcp/P/p2p/<peer id> (repeatable)",
    )
    p.add_argument("--log-format", choices=["json", "human"], help="log line format on stdout")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    if run:
        p.add_argument(
            "--metrics",
            metavar="HOST:PORT",
            help="serve Prometheus metrics on http://HOST:PORT/metrics (or off)",
        )
        p.add_argument(
            "--validator",
            action="store_true",
            help="add the validator role (the identity must be a genesis validator)",
        )
        p.add_argument(
            "--operator",
            action="store_true",
            help="add the operator role (needs Docker and a registered VRF key)",
        )
        p.add_argument("--roles", help="replace the roles: comma separated validator,operator")
        p.add_argument("--block-interval-ms", type=int, help="validators: time between blocks")
        p.add_argument(
            "--open-tasks-max",
            type=int,
            help="validators: start no new task while this many are open; later ones wait in "
            "the mempool (default 256)",
        )
        p.add_argument("--runtime", choices=["runc", "runsc"], help="operators: OCI runtime")
        p.add_argument(
            "--execute-timeout-ms",
            type=int,
            help="operators: the executor's deadline to report before the next candidate runs",
        )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for `posi-peer` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="posi-peer",
        description=(
            "posi-peer: a peer-to-peer network that runs jobs in hardened Docker sandboxes, "
            "chosen and verified by VRF-drawn committees, with results on a hash-chained ledger."
        ),
        epilog=f"{EXIT_CODES_HELP}\n\n{ENV_HELP}",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"posi-peer {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "init",
        help="create a node's keys and config in a data directory (never overwrites keys)",
        description=(
            "Create DATA/identity.key (Ed25519: the peer id), DATA/vrf.key (ECVRF: sortition) "
            "and DATA/config.toml from the flags given. Existing keys are kept, never "
            "overwritten; an existing config.toml is kept unless --force-config. Prints the "
            "public keys to put in a genesis file or a REGISTER_OPERATOR transaction."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    _node_flags(p, run=True)
    p.add_argument("--force-config", action="store_true", help="rewrite config.toml (not keys)")
    p.set_defaults(func=_cmd("init"))

    devnet = sub.add_parser(
        "devnet",
        help="local development networks",
        description="Create a local development network (one machine, 127.0.0.1).",
    )
    devnet_sub = devnet.add_subparsers(dest="devnet_command", metavar="ACTION", required=True)
    d = devnet_sub.add_parser(
        "init",
        help="genesis with N validators and M operators, one data directory per node",
        description=(
            "Write DIR/genesis.json (fresh random keys: validators of weight 1, operators with "
            "stake, poster accounts with balance) and one data directory per node "
            "(DIR/validator-I, DIR/operator-J, DIR/poster-K) with its keys and config.toml, "
            "plus DIR/devnet.json listing them. Prints the commands that start the nodes and "
            "submit a job. Refuses a DIR that already holds a devnet."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    d.add_argument("dir", help="directory to create the devnet in")
    d.add_argument("--validators", type=int, default=4, help="validators (default 4)")
    d.add_argument("--operators", type=int, default=8, help="operators (default 8)")
    d.add_argument("--posters", type=int, default=1, help="poster accounts (default 1)")
    d.add_argument("--host", default="127.0.0.1", help="address every node listens on")
    d.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="first TCP port (node i listens on base+i, metrics on base+100+i); "
        "0 = pick free ports now (default)",
    )
    d.add_argument(
        "--block-interval-ms",
        type=int,
        default=2000,
        help="validators: time between blocks (default 2000)",
    )
    d.add_argument("--log-format", choices=["json", "human"], default="human")
    d.add_argument("--chain-name", default="devnet")
    d.add_argument("--capacity", type=int, default=8, help="operators' concurrent tasks")
    d.add_argument(
        "--execute-timeout-ms",
        type=int,
        default=20_000,
        help="operators: an executor's deadline to report (default 20000: devnet jobs are short)",
    )
    d.set_defaults(func=_cmd("devnet_init"))

    p = sub.add_parser(
        "run",
        help="run a node: follow the chain, serve peers, and act in its roles",
        description=(
            "Join the swarm and run until SIGINT/SIGTERM. Every node follows the chain (checks "
            "and stores finalised blocks, serves sync); validators build and finalise blocks; "
            "operators are drawn into task committees, execute and verify jobs in Docker. Logs "
            "go to stdout (json or human); DATA/status.json is kept fresh for `posi-peer status`."
        ),
        epilog=f"{EXIT_CODES_HELP}\n\n{ENV_HELP}",
        formatter_class=_formatter,
    )
    _node_flags(p, run=True)
    p.set_defaults(func=_cmd("run"))

    p = sub.add_parser(
        "submit",
        help="post a job, follow it through its phases, print the output, save the certificate",
        description=(
            "Start a short-lived light node with the poster role, sign a task (the job spec "
            "below, the fee held in escrow, tau the expected committee weight), gossip it and "
            "follow it: included, seed, roster, executor, certified, paid. Prints the phases on "
            "stderr, the job's output on stdout, and saves the result certificate "
            "(DATA/results/TASK.cert, or --out), which `posi-peer verify-result` checks offline."
        ),
        epilog=f"example:\n  posi-peer submit --data-dir devnet/poster-0 --image sha256:19ae... "
        f"--input in.txt -- /bin/sha256sum\n\n{EXIT_CODES_HELP}",
        formatter_class=_formatter,
    )
    _node_flags(p)
    p.add_argument(
        "--image",
        required=True,
        help="image id sha256:<64 hex> (a local name such as posi/busybox:1 is "
        "resolved through the local Docker Engine)",
    )
    p.add_argument("--input", metavar="FILE", help="file whose bytes the job reads on stdin")
    p.add_argument("--fee", type=int, default=1000, help="fee held in escrow (default 1000)")
    p.add_argument("--tau", type=int, default=8, help="expected committee weight (default 8)")
    p.add_argument("--wall-time-ms", type=int, default=10_000)
    p.add_argument("--memory-mib", type=int, default=64)
    p.add_argument("--cpu-millicores", type=int, default=500)
    p.add_argument("--pids", type=int, default=32)
    p.add_argument("--output-bytes-max", type=int, default=1024 * 1024)
    p.add_argument(
        "--nondeterministic",
        action="store_true",
        help="verifiers check the report but do not re-execute",
    )
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="job environment")
    p.add_argument(
        "--timeout-s", type=float, default=300.0, help="give up after this many seconds (exit 4)"
    )
    p.add_argument("--out", metavar="FILE", help="where to save the result certificate")
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary on stdout instead of the raw output",
    )
    p.add_argument("argv", nargs="+", help="the command to run in the container (after --)")
    p.set_defaults(func=_cmd("submit"))

    p = sub.add_parser(
        "result",
        help="show a task's result: from the saved certificate, or by following it on the network",
        description=(
            "Print the output of TASK (hex task id). Uses DATA/results/TASK.cert when it exists "
            "(checked against the genesis); otherwise starts a light node, follows the task to "
            "its result, fetches the output from the executor and saves the certificate."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    _node_flags(p)
    p.add_argument("task", help="task id (64 hex digits)")
    p.add_argument("--timeout-s", type=float, default=300.0)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=_cmd("result"))

    p = sub.add_parser(
        "verify-result",
        help="check a result certificate offline against the genesis",
        description=(
            "Check FILE (a result certificate saved by submit/result) against the genesis only: "
            "the ledger proof of the task record (commit certificate of the genesis validators), "
            "the roster's RESULT_ACCEPT certificate over the report, the executor's signature, "
            "and the output's hash. Prints the result as JSON. Exit 0 verified, 1 not, 2 "
            "unreadable."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    p.add_argument("file", help="the result certificate")
    p.add_argument("--genesis", help="genesis JSON (default: DATA/genesis.json)")
    p.add_argument("--data-dir", help="data directory holding genesis.json")
    p.add_argument("--output", metavar="FILE", help="also write the verified output to FILE")
    p.set_defaults(func=_cmd("verify_result"))

    p = sub.add_parser(
        "status",
        help="a node's peers, height, roles and recent tasks",
        description=(
            "Print the status the running node keeps in DATA/status.json (peers, height, roles, "
            "recent task timelines). When no node is running, the stored chain is read instead."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true", help="print the raw JSON document")
    p.set_defaults(func=_cmd("status"))

    p = sub.add_parser(
        "why",
        help="why this node was or was not drawn for a task (offline)",
        description=(
            "Explain, from the node's store and keys only, whether this node was drawn for TASK "
            "and why: not registered, inactive, over capacity, stale stake, weight 0, drawn "
            "with weight w and rank r among the candidates, chosen executor..."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    p.add_argument("task", help="task id (64 hex digits)")
    p.add_argument("--data-dir")
    p.add_argument("--genesis")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd("why"))

    bench = sub.add_parser(
        "vrf-bench",
        help="benchmark the ECVRF backends against PyNaCl Ed25519",
        description=(
            "Time ECVRF prove/verify for each available backend and PyNaCl's Ed25519 sign/verify, "
            "interleaved in one process; print medians (microseconds per op) and ratios. The last "
            "line is JSON."
        ),
    )
    bench.add_argument("--rounds", type=int, default=7, help="timed rounds per op (median taken)")
    bench.add_argument("--ops", type=int, default=200, help="operations per round")
    bench.set_defaults(func=_vrf_bench)
    for module_name in _PACKAGE_CLIS:
        importlib.import_module(module_name).register(sub)
    return parser


# Packages that add their own subcommands: each module has `register(subparsers) -> None`, which
# adds parsers whose `func` default takes the parsed args and returns an exit code.
_PACKAGE_CLIS: tuple[str, ...] = ("executor.cli", "ledger.cli", "committee.cli", "simnet.cli")


def _cmd(name: str) -> object:
    """A lazy reference to `p2p.commands.<name>` (keeps `--help` fast)."""

    def run(args: argparse.Namespace) -> int:
        from p2p import commands

        code: int = getattr(commands, name)(args)
        return code

    return run


def _vrf_bench(args: argparse.Namespace) -> int:
    from vrf import bench

    return bench.main(rounds=args.rounds, ops=args.ops)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `posi-peer` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
