"""`posi-peer` subcommands of the committee package: committee-params, committee-sim,
committee-bench. Only parses; the work lives in params.py, sim.py and bench.py (imported when the
subcommand runs, so `posi-peer --help` stays fast)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the committee subcommands to the `posi-peer` parser."""
    from committee import params  # light: the analysis needs only sortition's arithmetic

    p = subparsers.add_parser(
        "committee-params",
        help="failure probabilities of a task committee for an expected size tau",
        description=params.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    params.add_arguments(p)
    p.set_defaults(func=_params)

    s = subparsers.add_parser(
        "committee-sim",
        help="seeded simulation of the committee round with faults and byzantine members",
    )
    s.add_argument("--seed", type=int, default=0, help="first seed")
    s.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds")
    s.add_argument("--quiet", action="store_true", help="print failures only")
    s.set_defaults(func=_sim)

    b = subparsers.add_parser(
        "committee-bench",
        help="CPU and messages of a committee decision for 64 and 200 members",
    )
    b.add_argument("--sizes", type=int, nargs="+", default=[64, 200])
    b.set_defaults(func=_bench)


def _params(args: argparse.Namespace) -> int:
    from committee import params

    return params.run(args)


def _sim(args: argparse.Namespace) -> int:
    from committee import sim

    return sim.run(args.seed, args.seeds, quiet=args.quiet)


def _bench(args: argparse.Namespace) -> int:
    from committee import bench

    return bench.run(args.sizes)
