"""`legloop bench`: every speed figure measured side by side with its baseline in one run, printed with units and
ratios, and written as JSON with the machine it ran on.

Sections: plant (closed-loop step vs raw physics, real-time factor per backend), inference (batch-1 GRU step:
torch eager, onnxruntime, the dense and the delta CPU kernel), edgedrnn (the model's wall time vs the hardware
latency it models), serial (board round trip), train (default `legloop train` per stage; skipped with --quick),
sweep (tasks per minute with a pool of 1 and of all cores). Name sections to run only those (`legloop bench plant`).
"""

from __future__ import annotations

import argparse
import sys

from experiments.cli import CliError, Subparsers

SECTIONS = ("plant", "inference", "edgedrnn", "serial", "train", "sweep")


def register(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="benchmarks: every speed figure beside its baseline, as a table and JSON",
                       description=__doc__)  # fmt: skip
    p.add_argument(
        "sections", nargs="*", metavar="SECTION", help=f"sections to run: {', '.join(SECTIONS)} (default: all)"
    )
    p.add_argument("--quick", action="store_true", help="short runs for CI (≤ 2 min), training skipped")
    p.add_argument("--out", metavar="FILE.json", default=None, help="also write the figures and the machine as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        raise CliError(f"unknown section {unknown[0]!r}; sections are: {', '.join(SECTIONS)}")
    from pathlib import Path

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise CliError(f"{out} already exists; choose another --out or pass --force to overwrite")
    from experiments.bench_suite import format_bench, run_bench
    from experiments.sweep_task import write_json_atomic

    sections = tuple(s for s in SECTIONS if s in args.sections) if args.sections else SECTIONS
    doc = run_bench(sections, args.quick, say=lambda msg: print(f"legloop bench: {msg}", file=sys.stderr, flush=True))
    print(format_bench(doc))
    if out is not None:
        write_json_atomic(out, doc)
        print(f"\nwrote {out}")
    errors = [n for n, s in doc["sections"].items() if s["status"] == "error"]
    for n in errors:
        print(f"legloop bench: section {n} failed: {doc['sections'][n]['reason']}", file=sys.stderr)
    return 1 if errors else 0
