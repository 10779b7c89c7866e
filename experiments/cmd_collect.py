"""`legloop collect`: PD-baseline walking episodes in parallel processes, written as a data set to DIR.

DIR/episodes/ep_NNNNN.npz (one per episode) and DIR/manifest.json (see experiments.dataset); with --export-csv also
DIR/csv/ep_NNNNN.csv in the AMPRO log schema, the format of real prosthesis logs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from experiments.cli import CliError, Subparsers
from experiments.rundir import OutputExistsError


def parse_speeds(text: str) -> list[float]:
    """Comma-separated walking speeds in m/s, each within the env's 0.6..1.5."""
    try:
        speeds = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CliError(f"--speeds must be comma-separated numbers like 0.8,1.0,1.2; got {text!r}") from None
    if not speeds:
        raise CliError("--speeds must name at least one speed, e.g. 0.8,1.0,1.2")
    bad = [s for s in speeds if not (math.isfinite(s) and 0.6 <= s <= 1.5)]
    if bad:
        raise CliError(f"--speeds must be within 0.6..1.5 m/s, got {bad[0]:g}")
    return speeds


def register(sub: Subparsers) -> None:
    p = sub.add_parser("collect", help="collect PD walking episodes into a data set DIR", description=__doc__)
    p.add_argument("--episodes", type=int, required=True, help="number of episodes")
    p.add_argument("--seconds", type=float, required=True, help="episode length, s (a fall ends an episode early)")
    p.add_argument("--speeds", default="0.8,1.0,1.2", help="comma-separated speeds, m/s; episode i uses speed i mod n")
    p.add_argument("--seed0", type=int, default=0, help="episode i uses seed SEED0 + i")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (1 = in this process)")
    p.add_argument("--no-randomize", action="store_true", help="turn domain randomisation off")
    p.add_argument("--export-csv", action="store_true", help="also write DIR/csv/ep_NNNNN.csv in the AMPRO schema")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="replace a data set already in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from experiments.collect import collect
    from experiments.dataset import dataset_exists, export_csv, load_dataset

    if args.episodes < 1:
        raise CliError(f"--episodes must be ≥ 1, got {args.episodes}")
    if not (math.isfinite(args.seconds) and 0.0 < args.seconds <= 3600.0):
        raise CliError(f"--seconds must be in (0, 3600], got {args.seconds}")
    if args.workers < 1:
        raise CliError(f"--workers must be ≥ 1, got {args.workers}")
    if args.seed0 < 0:
        raise CliError(f"--seed0 must be ≥ 0, got {args.seed0}")
    speeds = parse_speeds(args.speeds)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a directory")
    if not args.force and (dataset_exists(out) or (args.export_csv and any((out / "csv").glob("*.csv")))):
        raise CliError(f"{out} already holds a data set; choose another --out or pass --force to overwrite")
    print(
        f"legloop collect: {args.episodes} episodes x {args.seconds:g} s at {','.join(f'{s:g}' for s in speeds)} m/s, "
        f"seeds {args.seed0}..{args.seed0 + args.episodes - 1}, {args.workers} worker(s)",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    try:
        paths = collect(
            args.out,
            args.episodes,
            args.seconds,
            speeds=speeds,
            seed0=args.seed0,
            workers=args.workers,
            randomize=not args.no_randomize,
            progress=not args.quiet,
            overwrite=args.force,
        )
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    wall = time.perf_counter() - t0
    episodes = load_dataset([args.out])
    if args.export_csv:
        csv_dir = Path(args.out) / "csv"
        csv_dir.mkdir(exist_ok=True)
        for ep in episodes:
            export_csv(ep, csv_dir / f"{ep.name}.csv", overwrite=args.force)
    falls = sum(bool(e.meta.get("fell")) for e in episodes)
    steps = sum(len(e) for e in episodes)
    print(
        f"{len(paths)} episodes, {falls} fell, {steps} steps ({steps * episodes[0].meta['control_dt']:.0f} s of "
        f"walking) in {wall:.1f} s; wrote {args.out}/manifest.json"
        f"{' and csv/' if args.export_csv else ''}"
    )
    return 0
