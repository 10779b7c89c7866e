"""`legloop sweep`: many independent train / evaluate tasks from one TOML file, on a local process pool or Ray.

    legloop sweep --config SWEEP.toml --out DIR [--set KEY=VALUE ...] [--workers N] [--ray [ADDRESS]]

Every task (one controller × scenario × seed, or a training run the others use) leaves DIR/tasks/<task-id>/ with
metrics.json (or error.json with the exception and traceback); a task id is a slug and a hash of its parameters,
so running the same command again skips finished tasks and retries failed ones. At the end DIR/sweep.json holds the
config and, per task, its parameters and key metrics, flat and typed (docs/sweep.md); a summary table is printed.

Shipped configs (experiments/configs/): sweep_acceptance.toml (PD, GRU, delta-GRU over speeds, slopes and seeds),
sweep_theta.toml (delta thresholds Θ against tracking, sparsity and latency), sweep_latency.toml (falls against
added actuation latency), sweep_tiny.toml (seconds; for tests). Learned controllers of the shipped configs take
``--set checkpoint=RUN_DIR`` (a `legloop train` run directory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.cli import CliError, Subparsers

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of train / evaluate tasks (local process pool or Ray), resumably", description=__doc__
    )
    p.add_argument("--config", required=True, help="sweep TOML (a path, or a name in experiments/configs/)")
    p.add_argument("--out", required=True, help="sweep directory (tasks/, sweep.json); re-use it to resume")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a parameter in [defaults] and in every [[grid]] / [[task]] (VALUE is TOML; a list makes it an axis), "
        "e.g. --set checkpoint=runs/final --set 'seed=[0,1,2]' (repeatable)",
    )
    p.add_argument("--workers", type=int, default=None, help="local pool size, or local Ray CPUs (None: all cores)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: alone, a local instance; with ADDRESS (e.g. ray://head:10001 or auto), that cluster "
        "(needs `pip install legloop[ray]`)",
    )
    p.add_argument("--list", action="store_true", help="print the tasks and exit without running them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _config_path(text: str) -> Path:
    p = Path(text)
    if p.exists() or p.is_absolute():
        return p
    for candidate in (CONFIG_DIR / text, CONFIG_DIR / f"{text}.toml"):
        if candidate.exists():
            return candidate
    return p


def run(args: argparse.Namespace) -> int:
    from experiments.sweep import make_executor, run_sweep, summary_table
    from experiments.sweep_config import SweepConfigError, load_sweep, parse_set

    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.ray:
        raise CliError("--workers applies to the local pool or a local Ray instance, not to a cluster (--ray ADDRESS)")
    try:
        overrides = parse_set(args.set)
        config = load_sweep(_config_path(args.config), overrides)
    except SweepConfigError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a directory")
    n_train, n_eval = len(config.train_tasks), len(config.eval_tasks)
    if args.list:
        for t in config.tasks:
            print(t.id)
        print(f"{n_eval} evaluation and {n_train} training tasks", file=sys.stderr)
        return 0
    where = "Ray" if args.ray is not None else "a process pool"
    print(
        f"legloop sweep: {config.path.name}: {n_eval} evaluation and {n_train} training tasks on {where}, into {out}",
        file=sys.stderr,
    )

    def executor():
        try:
            return make_executor(args.ray, args.workers)
        except RuntimeError as exc:
            raise CliError(str(exc)) from None

    result = run_sweep(config, out, executor, progress=not args.quiet, overrides=overrides)
    doc = result.document
    c = doc["counts"]
    print(summary_table(doc))
    print(
        f"\n{c['done']}/{c['tasks']} tasks done ({c['executed']} run now, {c['skipped']} finished earlier), "
        f"{c['failed']} failed; wrote {out / 'sweep.json'}"
    )
    failed = [t for t in doc["tasks"] if t["status"] == "failed"]
    for t in failed[:5]:
        print(f"  failed {t['id']}: {t['error']} (see {out / t['dir'] / 'error.json'})", file=sys.stderr)
    if len(failed) > 5:
        print(f"  … and {len(failed) - 5} more failed tasks", file=sys.stderr)
    again = " ".join(
        ["legloop sweep", "--config", args.config, "--out", str(out)]
        + [f"--set {s}" for s in args.set]
        + ([f"--ray {args.ray}".strip()] if args.ray is not None else [])
    )
    if result.interrupted:
        print(
            f"interrupted: {c['done']} of {c['tasks']} tasks finished and are kept in {out / 'tasks'}; "
            f"to resume, run the same command again: {again}",
            file=sys.stderr,
        )
        return 130
    if failed:
        print(f"{len(failed)} task(s) failed; fix the cause and run the same command to retry them: {again}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
