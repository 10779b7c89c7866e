"""Time the default `legloop train` pipeline stage by stage and report its fidelity and sparsity.

Runs :func:`experiments.train.run_training` with a config (default: ``experiments/configs/train_default.toml``) into
a run directory, then prints the wall time of data collection and of every stage, the validation torque R² per
joint (held-out seeds) and the temporal sparsity of the final delta-GRU, plus the machine load before and after
(the machine is shared: a loaded machine makes every figure slower).

    .venv/bin/python benchmarks/bench_train.py [--config FILE] [--out DIR] [--features ampro|sensors] [--threads N]

Afterwards the final delta-GRU is replayed open loop on fresh PD episodes of seeds 0, 1, 2 (``--fidelity-seeds 3``)
at each speed: the "unseen seeds" fidelity check (the training data use seeds from 10000 up).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from experiments.train import run_training
from experiments.train_config import load_config


def fidelity_on_seeds(controller: Path, seeds: list[int], speeds: tuple[float, ...], seconds: float) -> dict:
    """Open-loop torque R² of the final network on fresh PD episodes of consecutive `seeds` (not in training)."""
    from controllers.checkpoint import load_checkpoint
    from experiments.collect import collect
    from experiments.dataset import load_dataset
    from experiments.train_data import Prepared, Scaling, episode_series
    from experiments.train_stages import validate

    model, meta = load_checkpoint(controller)
    with tempfile.TemporaryDirectory(prefix="bench_train_fid-") as d:
        out: dict[str, Any] = {}
        for speed in speeds:
            collect(
                Path(d) / f"v{speed}", len(seeds), seconds, speeds=(speed,), seed0=seeds[0], workers=1, progress=False
            )
            eps = load_dataset([str(Path(d) / f"v{speed}")])
            sc = Scaling.from_meta(meta)
            out[f"{speed:g} m/s"] = validate(model, Prepared.build(episode_series(eps, meta.feature_set), sc), sc, "l1")
    return out


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=None, help="training config TOML (default: train_default.toml)")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--features", default=None, choices=["ampro", "sensors"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument(
        "--fidelity-seeds", type=int, default=3, help="open-loop R² check on PD episodes of seeds 0..N-1 (0 = skip)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    tmp = None if args.out else tempfile.mkdtemp(prefix="bench_train-")
    out = args.out or tmp
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    try:
        res = run_training(cfg, out, feature_set=args.features, restart=True, force=True, progress=not args.quiet)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        seeds = list(range(args.fidelity_seeds))
        fid = fidelity_on_seeds(res.controller, seeds, (0.8, 1.0, 1.2), 20.0) if seeds else {}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    s = res.summary
    print(f"\ntorch threads {args.threads}; cpus {os.cpu_count()}")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f}")
    print(f"{'stage':<14} {'collect s':>9} {'train s':>8} {'epochs':>6} {'R² knee':>8} {'R² ankle':>8} {'sparsity':>8}")
    for k, v in s["collect_seconds"].items():
        if k == "pd":
            print(f"{'pd data':<14} {v:>9.1f}")
    for st in s["stages"]:
        r2 = st.get("val_r2") or {}
        print(
            f"{st['name']:<14} {st.get('collect_seconds', 0.0):>9.1f} {st['seconds']:>8.1f} {st['epochs']:>6} "
            f"{r2.get('knee', float('nan')):>8.4f} {r2.get('ankle', float('nan')):>8.4f} "
            f"{st.get('val_sparsity') or 0.0:>8.3f}"
        )
    print(f"total wall {wall:.1f} s (pipeline {s['seconds']:.1f} s); export: {s['export_error'] or 'ok'}")
    for cond, v in fid.items():
        print(
            f"unseen seeds 0..{args.fidelity_seeds - 1} at {cond}: R² knee {v['r2']['knee']:.4f} "
            f"ankle {v['r2']['ankle']:.4f}, "
            f"sparsity {v['sparsity']:.3f}, MACs/step {v['macs_per_step']:.0f} of {v['dense_macs_per_step']}"
        )


if __name__ == "__main__":
    main()
