"""`legloop train`: imitation-train the prosthesis controller (BC → DAgger → delta fine-tune with QAT → export).

    legloop train [--config FILE] [--data DIR|CSV ...] [--features ampro|sensors|ampro_plus] [--expert pd|rl:DIR]
                  --out DIR [--restart] [--force]

Without ``--data`` it first collects PD-baseline rollouts in simulation (``DIR/data/``) and runs DAgger rounds;
with ``--data`` (run directories or AMPRO CSV logs of a real prosthesis) it trains on those alone, by default with
``experiments/configs/train_logs.toml``: budgets of gradient steps, the last 20 % of every log held out for
validation and early stopping, the best weights kept, a warning when the logs are too few for the network. The
stage table says how many gradient steps each stage ran and why it stopped, and the line under it the
validation sparsity per layer (which deltas fetch the weight columns). The deployable
delta-GRU is ``DIR/controller.pt`` (+ ``.json``), exported to ``DIR/export/``; stage checkpoints are in
``DIR/stages/``, TensorBoard scalars in ``DIR/tb/``, a summary in ``DIR/train.json``. An interrupted run resumes
where it stopped (finished stages are loaded) when started again with the same arguments. ``--expert rl:DIR``
distils a residual RL controller (``legloop rl train``) instead of the PD: its torques are the labels, by default
with ``experiments/configs/train_distil.toml`` (the default network on the ``ampro_plus`` features — the thigh, the
load and the PD's phase besides the paper's five — push trains in half the episodes so the data holds the expert's
recoveries, and sparser delta thresholds: Θx 16/256, L1 weight 4) and ``target = "pd_residual"``: the network
learns the expert's correction to the PD (label − the PD's own torque) and runs beside the PD, as the RL policy
did: every learned controller (``--controller deltagru|edgedrnn|board``) then applies PD torque + network output.
``target = "torque"`` in a config learns the torques themselves.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from controllers.features import FEATURE_SETS
from experiments.cli import CliError, Subparsers
from experiments.tables import sparsity_by_layer


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train the GRU / delta-GRU controller by imitation of the PD (BC, DAgger, delta + QAT, export)",
        description=__doc__,
    )
    p.add_argument(
        "--config",
        default=None,
        help="training config TOML (default: experiments/configs/train_default, with --data train_logs)",
    )
    p.add_argument(
        "--data",
        nargs="+",
        default=None,
        metavar="DIR|CSV",
        help="train on these run directories / AMPRO CSV logs instead of simulating (no DAgger)",
    )
    p.add_argument(
        "--features",
        choices=FEATURE_SETS,
        default=None,
        help="network inputs (default: the config's; an AMPRO CSV log implies ampro)",
    )
    p.add_argument(
        "--expert",
        default="pd",
        metavar="pd|rl:DIR",
        help="what the network imitates: the PD, or the RL controller of a `legloop rl train` run directory "
        "(its torques label the simulated data and the DAgger rounds: distillation)",
    )
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--restart", action="store_true", help="retrain every stage instead of resuming finished ones")
    p.add_argument("--force", action="store_true", help="replace an existing DIR/controller.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _expert(text: str) -> str | None:
    """None for the PD, the RL run directory of ``rl:DIR``."""
    if text == "pd":
        return None
    kind, _, path = text.partition(":")
    if kind != "rl" or not path:
        raise CliError(f"--expert must be pd or rl:DIR (a `legloop rl train` run directory), got {text!r}")
    return path


def run(args: argparse.Namespace) -> int:
    from experiments.train import DataSizeWarning, run_training
    from experiments.train_config import DISTIL_CONFIG, LOGS_CONFIG, ConfigError, load_config
    from experiments.train_data import TrainError

    expert = _expert(args.expert)
    if expert is not None and args.data:
        raise CliError("--expert rl:DIR labels simulated data; with --data the logs' own torques are the labels")
    try:
        default = LOGS_CONFIG if args.data else (DISTIL_CONFIG if expert is not None else None)
        cfg = load_config(args.config or default)
    except ConfigError as exc:
        raise CliError(f"bad --config: {exc}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataSizeWarning)
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, DataSizeWarning):  # one plain line, not a source location
                print(f"legloop train: warning: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        try:
            res = run_training(
                cfg,
                args.out,
                sources=args.data or (),
                feature_set=args.features,
                restart=args.restart,
                force=args.force,
                progress=not args.quiet,
                expert=expert,
            )
        except TrainError as exc:
            raise CliError(str(exc)) from None
    s = res.summary
    print(f"{'stage':<14} {'seconds':>8} {'steps':>6} {'stopped':<10} {'R² knee':>8} {'R² ankle':>8} {'sparsity':>8}")
    if "pd" in s["collect_seconds"]:
        print(f"{'pd data':<14} {s['collect_seconds']['pd']:>8.1f}")
    for st in s["stages"]:
        r2 = st.get("val_r2") or {}
        sec = st["seconds"] + st.get("collect_seconds", 0.0)
        knee, ankle = r2.get("knee", float("nan")), r2.get("ankle", float("nan"))
        sp = st.get("val_sparsity")
        # A stage of epochs ran all of them; a budgeted one (from logs) says why it ended.
        steps = st["steps"] if "steps" in st else st["epochs"] * st.get("batches_per_epoch", 0)
        stopped = st.get("stopped", "epochs")
        # Latency-aware stages: the surrogate's mean µs and fraction of steps over budget (validation; training).
        lat = st.get("val_latency")
        tail = ""
        if st.get("latency_weight"):
            tail = f"  latency: train {st['train_latency_mean_us']:.1f} µs, {st['train_over_budget']:.2%} over"
            if lat:
                tail += f"; val {lat['mean_us']:.1f} µs, {lat['over_budget']:.2%} over"
        print(
            f"{st['name']:<14} {sec:>8.1f} {steps:>6} {stopped:<10} {knee:>8.4f} {ankle:>8.4f} "
            f"{sp if sp is not None else float('nan'):>8.3f}{tail}"
        )
    last = s["stages"][-1] if s["stages"] else {}
    layers = last.get("val_sparsity_layers")
    if layers and last.get("theta_x", 0.0) + last.get("theta_h", 0.0) > 0.0:
        print(f"sparsity by layer ({last['name']}, validation; zero Δ entries): {sparsity_by_layer(layers)}")
    lw = last.get("loss_weights")
    if lw:
        print(f"loss weights (optim.correction_weight {lw['strength']:g}, {last['name']}'s training steps): the top "
              f"1 % of steps hold {lw['top1pct_share'] * 100:.1f} % of the weight (even: 1 %); median "
              f"{lw['p50_over_mean']:.2f}×, 99th percentile {lw['p99_over_mean']:.2f}× the mean")  # fmt: skip
    if s.get("run_thresholds"):
        run = s["run_thresholds"]
        at = ""
        if run.get("val_r2"):
            r2 = run["val_r2"]
            at = f" (validation there: R² knee {r2['knee']:.4f}, ankle {r2['ankle']:.4f}, "
            at += f"sparsity {run['val_sparsity']:.3f})"
        print(f"controller.pt runs at Θx {run['theta_x'] * 256:g}/256, Θh {run['theta_h'] * 256:g}/256{at}: the "
              "stage lines above are at the trained thresholds")  # fmt: skip
    print(f"\nwrote {res.controller} ({s['feature_set']} features) in {res.seconds:.0f} s")
    if res.export_error:
        print(f"export skipped: {res.export_error}", file=sys.stderr)
    else:
        print(f"exported to {', '.join(str(p) for p in res.exported.values())}")
    return 0
