"""`legloop eval`: closed-loop episodes of one controller over seeds, written to DIR/metrics.json."""

from __future__ import annotations

import argparse
import sys

from experiments.cli import CliError
from experiments.rundir import OutputExistsError, prepare_out, provenance, write_json

EPISODE_COLUMNS = [
    ("seed", "seed"),
    ("speed", "m/s"),
    ("fell", "fell"),
    ("time_to_fall_s", "fall s"),
    ("distance_m", "dist m"),
    ("strides", "strides"),
    ("stride_time_cv", "CV"),
    ("knee_rmse_rad", "knee rmse"),
    ("ankle_rmse_rad", "ankle rmse"),
    ("floquet_max", "floquet"),
    ("mos_min_m", "MoS m"),
    ("prosthesis_peak_load_bw", "load BW"),
    ("max_push_survived_n", "push N"),
]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CliError(f"--seeds must be comma-separated integers like 0,1,2; got {text!r}") from None
    if not seeds:
        raise CliError("--seeds must name at least one seed, e.g. 0,1,2")
    return seeds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run closed-loop episodes and write DIR/metrics.json", description=__doc__)
    p.add_argument(
        "--controller",
        default="pd",
        choices=["pd", "zero", "damped"],
        help="pd: AMPRO-style PD baseline; zero: zero-torque prosthesis; damped: passive damper",
    )
    p.add_argument("--gain-scale", type=float, default=1.0, help="multiply the PD gains (e.g. 0.2 for 'gains / 5')")
    p.add_argument("--speed", type=float, default=1.0, help="target walking speed, m/s (0.6-1.5)")
    p.add_argument("--seconds", type=float, default=60.0, help="episode length, s")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--slope", type=float, default=0.0, help="ground slope in degrees, uphill positive")
    p.add_argument("--no-randomize", action="store_true", help="turn domain randomisation off")
    p.add_argument("--no-pushes", action="store_true", help="skip the push-robustness trials (faster)")
    p.add_argument("--out", required=True, help="output directory (metrics.json goes there)")
    p.add_argument("--force", action="store_true", help="overwrite an existing DIR/metrics.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from experiments.evaluate import EvalConfig, controller_factory, evaluate, summarize_episodes
    from experiments.tables import table

    if not 0.6 <= args.speed <= 1.5:
        raise CliError(f"--speed must be within 0.6..1.5 m/s, got {args.speed}")
    if not 0.0 < args.seconds <= 3600.0:
        raise CliError(f"--seconds must be in (0, 3600], got {args.seconds}")
    if not 0.0 < args.gain_scale <= 10.0:
        raise CliError(f"--gain-scale must be in (0, 10], got {args.gain_scale}")
    seeds = parse_seeds(args.seeds)
    try:
        out = prepare_out(args.out, ("metrics.json",), args.force)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    cfg = EvalConfig(
        speed=args.speed, seconds=args.seconds, seeds=seeds, randomize=not args.no_randomize, slope_deg=args.slope
    )
    name = args.controller if args.gain_scale == 1.0 else f"{args.controller}*{args.gain_scale:g}"
    print(
        f"legloop eval: {name} at {args.speed} m/s, {args.seconds:g} s x {len(seeds)} seeds"
        f"{'' if args.no_pushes else ' + push trials'}",
        file=sys.stderr,
    )
    episodes = evaluate(
        controller_factory(args.controller, args.gain_scale),
        cfg,
        pushes=not args.no_pushes,
        progress=lambda msg: print("  " + msg, file=sys.stderr),
    )
    result = {
        "controller": name,
        "config": {
            "speed": cfg.speed,
            "seconds": cfg.seconds,
            "seeds": seeds,
            "randomize": cfg.randomize,
            "slope_deg": cfg.slope_deg,
            "pushes": not args.no_pushes,
        },
        "episodes": episodes,
        "summary": summarize_episodes(episodes),
        "provenance": provenance(),
    }
    write_json(out / "metrics.json", result)
    print(table(episodes, EPISODE_COLUMNS))
    s = result["summary"]
    print(f"\n{name}: {s['falls']}/{s['episodes']} fell; wrote {out / 'metrics.json'}")
    return 0
