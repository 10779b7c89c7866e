"""`legloop bench`: speed measured side by side with its baseline in one run, reported as ratios."""

from __future__ import annotations

import argparse

from experiments.cli import CliError, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="benchmarks: closed-loop step cost vs raw physics, and more", description=__doc__)
    p.add_argument("what", nargs="?", default="plant", choices=["plant"], help="what to benchmark")
    p.add_argument("--steps", type=int, default=2000, help="control steps per round")
    p.add_argument("--rounds", type=int, default=15, help="rounds; the best is reported (interference only adds time)")
    p.add_argument("--control-hz", type=float, default=200.0, help="control rate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.steps < 10 or args.rounds < 1:
        raise CliError("--steps must be >= 10 and --rounds >= 1")
    from experiments.bench import bench_plant, format_plant

    print(format_plant(bench_plant(args.steps, args.rounds, args.control_hz)))
    return 0
