"""The `posi-peer` command line.

Only parses arguments and calls into the packages; every subcommand's work lives with its package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("posi-peer")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for `posi-peer` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="posi-peer",
        description=(
            "posi-peer: a peer-to-peer network that runs jobs in hardened Docker sandboxes, "
            "chosen and verified by VRF-drawn committees, with results on a hash-chained ledger."
        ),
    )
    parser.add_argument("--version", action="version", version=f"posi-peer {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
_PACKAGE_CLIS: tuple[str, ...] = ("executor.cli", "ledger.cli")


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
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
