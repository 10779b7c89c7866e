"""`legloop demo`: the main job. Today: the AMPRO-style PD baseline walks, next to a passive prosthesis.

It runs the PD baseline and a zero-torque (passive) prosthesis on the same seeds with domain randomisation, prints
their gait metrics side by side, and leaves everything in a run directory. The learned controllers (GRU, delta-GRU,
delta-GRU on the EdgeDRNN model) join this comparison as they land.
"""

from __future__ import annotations

import argparse
import sys
import time

from experiments.cli import CliError
from experiments.rundir import OutputExistsError, prepare_out, provenance, write_json

COLUMNS = [
    ("controller", "controller"),
    ("falls", "falls"),
    ("mean_distance_m", "dist m"),
    ("mean_stride_time_cv", "stride CV"),
    ("mean_knee_rmse_rad", "knee rmse"),
    ("mean_floquet_max", "floquet"),
    ("mean_prosthesis_peak_load_bw", "load BW"),
    ("mean_max_push_survived_n", "push N"),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the main job: PD baseline vs passive prosthesis, metrics side by side", description=__doc__
    )
    p.add_argument("--quick", action="store_true", help="smoke test: one seed, 10 s, no push trials")
    p.add_argument("--speed", type=float, default=1.0, help="walking speed, m/s")
    p.add_argument("--out", default=None, help="run directory (default: runs/demo-<timestamp>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory's results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from experiments.evaluate import EvalConfig, controller_factory, evaluate, summarize_episodes
    from experiments.tables import table

    if not 0.6 <= args.speed <= 1.5:
        raise CliError(f"--speed must be within 0.6..1.5 m/s, got {args.speed}")
    out_path = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out = prepare_out(out_path, ("demo.json",), args.force)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    cfg = EvalConfig(speed=args.speed, seconds=10.0 if args.quick else 30.0, seeds=(0,) if args.quick else (0, 1, 2))
    rows, results = [], {}
    for name in ("pd", "zero"):
        print(f"legloop demo: {name}, {cfg.seconds:g} s x {len(cfg.seeds)} seeds at {cfg.speed} m/s", file=sys.stderr)
        episodes = evaluate(
            controller_factory(name),
            cfg,
            pushes=not args.quick,
            progress=lambda msg: print("  " + msg, file=sys.stderr),
        )
        summary = summarize_episodes(episodes)
        results[name] = {"episodes": episodes, "summary": summary}
        rows.append({"controller": name} | summary)
    write_json(
        out / "demo.json",
        {
            "config": {"speed": cfg.speed, "seconds": cfg.seconds, "seeds": list(cfg.seeds)},
            "controllers": results,
            "provenance": provenance(),
        },
    )
    print(table(rows, COLUMNS))
    print(f"\nwrote {out / 'demo.json'}")
    return 0
