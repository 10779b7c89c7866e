"""`legloop eval`: closed-loop episodes of one controller over seeds, written to DIR/metrics.json.

Learned controllers take a checkpoint: ``--controller gru|deltagru|edgedrnn --checkpoint CKPT`` (edgedrnn: the
checkpoint exported to the EdgeDRNN model, with ``--budget-us``, ``--deadline-policy`` and ``--governor``).
With ``--replay LOG.csv`` a learned controller runs open loop over a recorded log (AMPRO schema) instead of the
simulator, and DIR/metrics.json holds per-joint torque R² / NRMSE against the logged PD torque.
"""

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
LEARNED_COLUMNS = [("sparsity", "sparsity"), ("macs_per_step", "MACs/step")]
EDGEDRNN_COLUMNS = [("latency_p99_us", "p99 us"), ("latency_max_us", "max us"), ("deadline_misses", "misses")]
LEARNED = ("gru", "deltagru", "edgedrnn")


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
        choices=["pd", "zero", "damped", *LEARNED],
        help="pd: AMPRO-style PD baseline; zero: zero-torque prosthesis; damped: passive damper; "
        "gru / deltagru: a checkpoint on the CPU with Θ = 0 / its thresholds; edgedrnn: on the EdgeDRNN model",
    )
    p.add_argument(
        "--checkpoint",
        help="learned controllers: a checkpoint (.pt with its .json), or a training run directory: gru runs its "
        "float GRU (DIR/gru.pt), deltagru and edgedrnn its delta-GRU (DIR/controller.pt)",
    )
    p.add_argument(
        "--features", choices=["ampro", "sensors"], help="require the checkpoint to use this feature set (default: any)"
    )
    p.add_argument("--budget-us", type=float, default=21.0, help="edgedrnn: latency budget per step, µs (default 21)")
    p.add_argument(
        "--deadline-policy",
        choices=["hold", "fallback_pd", "stop", "period"],
        default="hold",
        help="edgedrnn: on a missed budget hold the last torque, use the PD's torque, stop (zero torque), or "
        "'period': count the miss but apply the late result if it arrived within the control period",
    )
    p.add_argument("--governor", action="store_true", help="edgedrnn: run-time threshold governor")
    p.add_argument("--replay", metavar="LOG.csv", help="learned controllers: open-loop replay of a recorded log")
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


def _check_learned_args(args: argparse.Namespace) -> None:
    learned = args.controller in LEARNED
    if learned and not args.checkpoint:
        raise CliError(f"--controller {args.controller} needs --checkpoint CKPT")
    if not learned:
        for flag, given in (
            ("--checkpoint", args.checkpoint),
            ("--replay", args.replay),
            ("--features", args.features),
            ("--governor", args.governor),
            ("--deadline-policy", args.deadline_policy != "hold"),
            ("--budget-us", args.budget_us != 21.0),
        ):
            if given:
                raise CliError(f"{flag} applies to learned controllers ({', '.join(LEARNED)}), not {args.controller!r}")
    elif args.controller != "edgedrnn":
        for flag, given in (
            ("--governor", args.governor),
            ("--deadline-policy", args.deadline_policy != "hold"),
            ("--budget-us", args.budget_us != 21.0),
        ):
            if given:
                raise CliError(f"{flag} applies to --controller edgedrnn only")
    if not 0.0 < args.budget_us <= 1e6:
        raise CliError(f"--budget-us must be in (0, 1e6] µs, got {args.budget_us}")


def _learned_errors() -> tuple[type[Exception], ...]:
    from controllers.checkpoint import CheckpointError
    from firmware_bridge.errors import ImageError
    from firmware_bridge.export import ExportError

    return (CheckpointError, ExportError, ImageError)


def run_replay(args: argparse.Namespace) -> int:
    """Open-loop replay of a log: metrics.json (and replay.npz with the torques) in --out."""
    import numpy as np

    from envs.files import atomic_writer
    from experiments.replay import ReplayError, replay_log

    try:
        metrics, pred, target = replay_log(
            args.controller,
            args.checkpoint,
            args.replay,
            feature_set=args.features,
            budget_s=args.budget_us * 1e-6,
            policy=args.deadline_policy,
            governor=args.governor,
        )
    except (ReplayError, *_learned_errors()) as exc:
        raise CliError(str(exc)) from None
    except KeyError as exc:  # features_from_columns names the missing log column
        raise CliError(str(exc.args[0]) if exc.args else str(exc)) from None
    try:
        out = prepare_out(args.out, ("metrics.json", "replay.npz"), args.force)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    metrics["config"] = {
        "budget_us": args.budget_us,
        "deadline_policy": args.deadline_policy,
        "governor": args.governor,
    }
    metrics["provenance"] = provenance()
    with atomic_writer(out / "replay.npz") as f:
        np.savez(f, torque_pred=pred, torque_pd=target)
    write_json(out / "metrics.json", metrics)
    for joint, m in metrics["joints"].items():
        print(f"{joint:>5}: R² {m['r2']}, NRMSE {m['nrmse']}, RMSE {m['rmse_nm']} N·m")
    print(f"sparsity {metrics['sparsity']:.3f}, {metrics['macs_per_step']:.0f} MACs/step")
    if "latency" in metrics:
        lat = metrics["latency"]
        print(
            f"latency mean {lat['mean_us']} µs, p99 {lat['p99_us']} µs, max {lat['max_us']} µs; "
            f"{lat['misses']}/{lat['steps']} deadline misses (budget {lat['budget_us']} µs)"
        )
    print(f"{args.controller} replay of {metrics['rows']} rows; wrote {out / 'metrics.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from experiments.evaluate import EvalConfig, controller_factory, evaluate, summarize_episodes
    from experiments.tables import table

    _check_learned_args(args)
    if args.replay:
        return run_replay(args)
    if not 0.6 <= args.speed <= 1.5:
        raise CliError(f"--speed must be within 0.6..1.5 m/s, got {args.speed}")
    if not 0.0 < args.seconds <= 3600.0:
        raise CliError(f"--seconds must be in (0, 3600], got {args.seconds}")
    if not 0.0 < args.gain_scale <= 10.0:
        raise CliError(f"--gain-scale must be in (0, 10], got {args.gain_scale}")
    seeds = parse_seeds(args.seeds)
    learned = args.controller in LEARNED
    # The factory loads (and for edgedrnn exports) the checkpoint: a bad one fails here, before --out is touched.
    errors: tuple[type[Exception], ...] = _learned_errors() if learned else ()
    try:
        factory = controller_factory(
            args.controller,
            args.gain_scale,
            checkpoint=args.checkpoint,
            feature_set=args.features,
            budget_s=args.budget_us * 1e-6,
            deadline_policy=args.deadline_policy,
            governor=args.governor,
        )
    except errors as exc:
        raise CliError(str(exc)) from None
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
        factory,
        cfg,
        pushes=not args.no_pushes,
        progress=lambda msg: print("  " + msg, file=sys.stderr),
    )
    config = {
        "speed": cfg.speed,
        "seconds": cfg.seconds,
        "seeds": seeds,
        "randomize": cfg.randomize,
        "slope_deg": cfg.slope_deg,
        "pushes": not args.no_pushes,
    }
    if learned:
        config["checkpoint"] = str(args.checkpoint)
    if args.controller == "edgedrnn":
        config |= {"budget_us": args.budget_us, "deadline_policy": args.deadline_policy, "governor": args.governor}
    result = {
        "controller": name,
        "config": config,
        "episodes": episodes,
        "summary": summarize_episodes(episodes),
        "provenance": provenance(),
    }
    write_json(out / "metrics.json", result)
    columns = list(EPISODE_COLUMNS)
    rows = episodes
    if learned:
        columns += LEARNED_COLUMNS
    if args.controller == "edgedrnn":
        columns += EDGEDRNN_COLUMNS
        rows = [
            e | {"latency_p99_us": e["latency_us"]["p99"], "latency_max_us": e["latency_us"]["max"]} for e in episodes
        ]
    print(table(rows, columns))
    s = result["summary"]
    print(f"\n{name}: {s['falls']}/{s['episodes']} fell; wrote {out / 'metrics.json'}")
    return 0
