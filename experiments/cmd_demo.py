"""`legloop demo`: the seed's experiment end to end, in one run directory.

1. collect PD walking (domain-randomised, flat ground) and train a GRU by imitation — behavioural cloning, DAgger
   with the PD labelling the learner's own trajectories, then a delta fine-tune with quantisation-aware training
   (`legloop train` with its default configuration);
2. record one held-out PD walk (a seed training never saw) and replay it open loop through every learned
   controller: torque imitation R²;
3. run PD, the float GRU (after DAgger, before the delta fine-tune: `gru.pt`), the delta-GRU on the CPU
   (`controller.pt`) and the delta-GRU on the bit-exact EdgeDRNN model in closed loop on the same seeds, with the
   21 µs budget checked on every EdgeDRNN step: as a hard deadline (a late step holds the last torque), the same with
   the reactive threshold governor, with the predictive governor that prices every step with an upper bound of its
   cycles before it runs (``predictive-worst``: the default 2L-64H network's guarantee on the published accelerator),
   with the layer-by-layer predictive governor (``predictive-split``), and as a reported target with the 5 ms control
   period as the deadline; and the
   same export on the emulated board (``hil.board_emulator`` in its own process on a pseudo-terminal, configured and
   loaded over the wire, one STEP per control period: `legloop eval --controller board --emulate`);
4. print one comparison table and leave everything (data, checkpoints, exports, metrics) under `--out`: each
   controller's closed-loop run as a `legloop eval` run directory (`runs/<label>/`: metrics.json, per-step run logs,
   its replay), and `legloop report`'s page of them all in `report/`.

`--quick` runs the same pipeline with a tiny network and seconds of data: a smoke test, not a result.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments.cli import CliError, Subparsers
from experiments.rundir import OutputExistsError, prepare_out, provenance, write_json
from experiments.tables import Column, count_of

# (row label, controller, governor, deadline policy). The EdgeDRNN runs five ways with the 21 µs budget: a hard
# deadline (a late step holds the last torque), the same with the runtime threshold governor (raises Θ when the next
# step's predicted latency nears the budget), with the predictive governor that prices the whole step with an upper
# bound of its cycles before it runs (never late while a Θ fits; affordable at 2L-64H, the default size), with the
# predictive governor of a host that runs the step a layer at a time and prices each layer exactly (never late while a
# Θ fits, but it needs an accelerator that stops between layers; docs/governor.md), and the budget as a reported
# target with the 5 ms control period as
# the deadline (how the AMPRO3 rig reads the controller). The emulated board runs the last of these over the wire: the
# same network, whose round trip must also fit in the period.
# The CPU rows (gru, deltagru) measure their kernel's wall time against the budget and report it (policy 'none').
CONTROLLERS = (
    ("pd", "pd", False, None),
    ("gru", "gru", False, None),
    ("deltagru", "deltagru", False, None),
    ("edgedrnn", "edgedrnn", False, "hold"),
    ("edgedrnn+gov", "edgedrnn", "reactive", "hold"),
    ("edgedrnn+worst", "edgedrnn", "predictive-worst", "hold"),
    ("edgedrnn+split", "edgedrnn", "predictive-split", "hold"),
    ("edgedrnn@5ms", "edgedrnn", False, "period"),
    ("board@5ms", "board", False, "period"),
)
EXPORTED = ("edgedrnn", "board")  # controllers that take a deadline policy in the demo
COLUMNS = [
    Column("controller", "controller"),
    Column("falls", "falls"),
    Column("distance_m", "dist m", ".1f"),
    Column("knee_rmse_rad", "knee RMSE rad", ".3f"),
    Column("r2_knee", "R² knee", ".3f"),
    Column("r2_ankle", "R² ankle", ".3f"),
    Column("sparsity", "sparsity", ".3f"),
    Column("macs_per_step", "MACs/step", ",.0f"),
    Column("latency_mean_us", "mean µs", ".1f"),
    Column("latency_p99_us", "p99 µs", ".1f"),
    Column("policy", "policy"),
    Column("misses", "steps over budget"),
]


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: train the GRU / delta-GRU by imitation, compare PD, GRU, delta-GRU, EdgeDRNN",
        description=__doc__,
    )
    p.add_argument("--quick", action="store_true", help="smoke test: tiny network, seconds of data, one seed")
    p.add_argument("--speed", type=float, default=1.0, help="walking speed of the closed-loop comparison, m/s")
    p.add_argument("--config", default=None, help="training config TOML (default: experiments/configs/train_default)")
    p.add_argument("--out", default=None, help="run directory (default: runs/demo-<timestamp>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory's results")
    p.set_defaults(func=run)


def _row(name: str, episodes: list[dict], replay: dict | None) -> dict:
    from experiments.evaluate import summarize_episodes

    s = summarize_episodes(episodes)
    row = {
        "controller": name,
        "falls": f"{s['falls']}/{s['episodes']}",
        "distance_m": s.get("mean_distance_m"),
        "knee_rmse_rad": s.get("mean_knee_rmse_rad"),
        "sparsity": s.get("mean_sparsity"),
        "macs_per_step": s.get("mean_macs_per_step"),
    }
    lat = [e["latency_us"] for e in episodes if isinstance(e.get("latency_us"), dict)]
    if lat:
        row["latency_mean_us"] = sum(x["mean"] for x in lat) / len(lat)
        row["latency_p99_us"] = max(x["p99"] for x in lat)
        misses = sum(int(e.get("deadline_misses", 0)) for e in episodes)
        steps = sum(int(e.get("deadline_steps", 0)) for e in episodes)
        row["deadline_misses"], row["deadline_steps"] = misses, steps
        row["misses"] = count_of(misses, steps)
        row["policy"] = episodes[0].get("deadline_policy")
        row["latency_source"] = episodes[0].get("latency_source")
    if replay is not None:
        row["r2_knee"] = replay["joints"]["knee"]["r2"]
        row["r2_ankle"] = replay["joints"]["ankle"]["r2"]
    return row


def _notes(rows: list[dict], seconds: float) -> list[str]:
    from hil.deadline import DEFAULT_BUDGET_S, POLICY_HELP

    notes = [
        f"falls: episodes that fell / episodes ({seconds:g} s each); the demo's episodes are too short for the "
        "Floquet multiplier (≥ 30 strides): `legloop eval --seconds 60` reports it",
        "knee RMSE: against the AMPRO PD's desired trajectory; R²: torque imitation on a held-out PD walk (replay)",
        f"latency budget {DEFAULT_BUDGET_S * 1e6:g} µs per step; gru/deltagru: measured wall time of the CPU kernel "
        "on this machine; edgedrnn: modelled EdgeDRNN latency at 125 MHz; board: the same, computed by the emulated "
        "board over a pty (its round trip, checked against the 5 ms period, is in runs/board@5ms/metrics.json, `link`)",
    ]
    for policy in dict.fromkeys(str(r["policy"]) for r in rows if r.get("policy")):
        notes.append(f"policy {policy!r}: {POLICY_HELP[policy]}")
    notes.append("steps over budget: steps later than the budget / steps run (all episodes)")
    return notes


def run(args: argparse.Namespace) -> int:
    from experiments.collect import collect
    from experiments.dataset import export_csv, load_dataset
    from experiments.eval_run import log_header, logged, write_eval_run
    from experiments.evaluate import EvalConfig, evaluate
    from experiments.replay import replay_log
    from experiments.report import ReportInputError, ReportOptions, build_report
    from experiments.tables import table
    from experiments.train import run_training
    from experiments.train_config import CONFIG_DIR, DEFAULT_CONFIG, ConfigError, load_config
    from experiments.train_data import TrainError
    from hil.board_backend import BoardLink
    from hil.spec import ControllerSpec

    if not 0.6 <= args.speed <= 1.5:
        raise CliError(f"--speed must be within 0.6..1.5 m/s, got {args.speed}")
    config = args.config or (CONFIG_DIR / "train_tiny.toml" if args.quick else DEFAULT_CONFIG)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    out_path = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out = prepare_out(out_path, ("demo.json",), args.force)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None

    t0 = time.perf_counter()

    def say(msg: str) -> None:  # one progress line per stage, with the time since the demo started
        print(f"legloop demo [{time.perf_counter() - t0:5.0f} s]: {msg}", file=sys.stderr, flush=True)

    say(f"1/4 training into {out / 'train'} ({Path(config).name})")
    try:
        trained = run_training(cfg, out / "train", force=args.force, progress=True)
    except TrainError as exc:
        raise CliError(str(exc)) from None
    ckpt = trained.controller.parent  # the run directory: gru runs its float GRU, the others the delta-GRU
    t_train = time.perf_counter() - t0

    say("2/4 held-out PD walk for the imitation check")
    seconds = 10.0 if args.quick else 20.0
    heldout = out / "heldout"
    csv = heldout / "pd_walk.csv"
    if not csv.exists():
        collect(heldout, 1, seconds, speeds=(args.speed,), seed0=10_000, workers=1, progress=False, overwrite=True)
        export_csv(load_dataset([heldout])[0], csv, overwrite=True)

    say("3/4 closed loop on the same seeds")
    ecfg = EvalConfig(speed=args.speed, seconds=seconds, seeds=(0,) if args.quick else (0, 1, 2))
    rows, results = [], {}
    for label, name, governor, policy in CONTROLLERS:
        learned = name != "pd"
        board = BoardLink(emulate="python") if name == "board" else None
        spec = ControllerSpec(
            name,
            checkpoint=str(ckpt) if learned else None,
            governor=governor,
            policy=policy if name in EXPORTED else None,
            label=label,
            board=board,
        )
        run_dir, run_cfg = out / "runs" / label, logged(ecfg, out / "runs" / label)
        with spec.factory() as factory:
            episodes = evaluate(
                factory,
                run_cfg,
                pushes=False,
                progress=lambda m, n=label: say(f"  {n} {m}"),  # type: ignore[misc]
                log_header=log_header(spec, factory),
            )
        replay = None
        if learned:
            replay = replay_log(
                name, ckpt, csv, governor=governor, policy=policy if name in EXPORTED else None, board=board
            )[0]
        write_eval_run(run_dir, spec, factory, run_cfg, episodes, pushes=False, replay=replay)
        results[label] = {"episodes": episodes, "replay": replay}
        rows.append(_row(label, episodes, replay))

    write_json(
        out / "demo.json",
        {
            "config": {
                "training_config": str(config),
                "speed": args.speed,
                "seconds": seconds,
                "seeds": list(ecfg.seeds),
                "quick": args.quick,
            },
            "training": {
                "controller": str(trained.controller),
                "gru": str(trained.gru),
                "seconds": round(t_train, 1),
                "summary": trained.summary,
            },
            "comparison": rows,
            "controllers": results,
            "seconds": round(time.perf_counter() - t0, 1),
            "provenance": provenance(),
        },
    )
    print(table(rows, COLUMNS, _notes(rows, seconds)))
    say("4/4 report")
    try:
        opts = ReportOptions(gif_seconds=2.0 if args.quick else 3.0)
        report = build_report([out], out / "report", force=True, options=opts)
    except ReportInputError as exc:
        raise CliError(f"the runs are in {out}, but the report failed: {exc}") from None
    print(f"\n{report.headline}")
    print(f"\ntrained in {t_train:.0f} s, whole demo {time.perf_counter() - t0:.0f} s; wrote {out / 'demo.json'}")
    print(f"report: {report.html} (built in {report.seconds:.0f} s)")
    return 0
