"""`legloop report RUN_DIR [RUN_DIR …] --out DIR`: the stability and latency report of finished runs.

Reads what runs wrote — `legloop eval` (metrics.json + runlogs/), `legloop eval --replay`, `legloop train`
(train.json + stages/), `legloop demo` and `legloop sweep` (sweep.json) directories — and never re-runs anything.
Writes DIR/report.html (self-contained: open it offline, print it, attach it), DIR/summary.json (every number on the
page), DIR/summary.md (a short table for a notebook or a pull request) and DIR/figures/. A sweep adds a Sweep section:
its points by varied parameters, the Pareto fronts of sparsity or latency against tracking and falls, latency
against the budget, falls against added actuation latency (docs/sweep.md).
"""

from __future__ import annotations

import argparse
import sys

from experiments.cli import CliError, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="HTML/JSON/Markdown report of finished runs (no re-running)", description=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (eval, replay, train, demo or sweep)")
    p.add_argument("--out", required=True, help="output directory for report.html, summary.json, summary.md")
    p.add_argument("--force", action="store_true", help="overwrite an existing report in --out")
    p.add_argument("--frames", type=int, default=8, help="filmstrip frames per controller (0: no rendering)")
    p.add_argument("--gif-seconds", type=float, default=3.0, help="length of the animated walk, s (0: none)")
    p.add_argument("--no-render", action="store_true", help="skip the MuJoCo filmstrip and animation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from experiments.report import ReportExistsError, ReportInputError, ReportOptions, build_report

    if args.frames < 0 or args.frames > 64:
        raise CliError(f"--frames must be in 0..64, got {args.frames}")
    if not 0.0 <= args.gif_seconds <= 30.0:
        raise CliError(f"--gif-seconds must be in [0, 30], got {args.gif_seconds}")
    opts = ReportOptions(strip_frames=args.frames, gif_seconds=args.gif_seconds, render=not args.no_render)
    try:
        result = build_report(args.runs, args.out, force=args.force, options=opts)
    except (ReportInputError, ReportExistsError) as exc:
        raise CliError(str(exc)) from None
    print(result.headline)
    print(f"wrote {result.html} (+ summary.json, summary.md) in {result.seconds:.1f} s", file=sys.stderr)
    return 0
