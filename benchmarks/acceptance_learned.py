"""Acceptance run of a trained controller (issue #4's closed-loop criteria), side by side with the PD.

For PD, GRU (Θ = 0) and delta-GRU on the same seeds: 60 s episodes at 0.8, 1.0 and 1.2 m/s with domain
randomisation, and at 1.0 m/s on fixed slopes of +3° and −3° (training walks on flat ground only). Prints falls,
knee RMSE and its ratio to the PD's on the same episodes, sparsity and MACs per step; writes JSON.

    python benchmarks/acceptance_learned.py --checkpoint runs/final --out runs/final/acceptance.json
    python benchmarks/acceptance_learned.py --controllers "" --seeds $(seq -s, 0 29)   # the PD alone, 150 episodes

``--checkpoint`` is a training run directory (gru: its float GRU ``gru.pt``, deltagru: ``controller.pt``) or one
checkpoint file, run with Θ = 0 as gru and with its thresholds as deltagru.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from envs.files import atomic_writer

CONDITIONS = [("speed", 0.8, 0.0), ("speed", 1.0, 0.0), ("speed", 1.2, 0.0), ("slope", 1.0, 3.0), ("slope", 1.0, -3.0)]


def _job(args: tuple[str, str, float, float, int, float]) -> dict[str, Any]:
    from envs.walker_env import Randomization
    from experiments.evaluate import EVAL_RANDOMIZATION, EvalConfig, run_episode
    from hil.spec import ControllerSpec

    name, ckpt, speed, slope, seed, seconds = args
    # Speed conditions use the evaluation randomisation (slopes within ±5°); slope conditions fix the slope.
    rnd = EVAL_RANDOMIZATION if slope == 0.0 else Randomization(speed_delta=0.0, slope_deg=0.0)
    cfg = EvalConfig(speed=speed, seconds=seconds, seeds=(seed,), slope_deg=slope, env_options={"randomization": rnd})
    stats: dict[str, Any] = {}
    with ControllerSpec(name, checkpoint=None if name == "pd" else ckpt).factory() as factory:
        fell, walked, m = run_episode(factory, seed, seconds, cfg.env_kwargs(), stats_out=stats)
    assert m is not None
    return (
        {"controller": name, "speed": speed, "slope": slope, "seed": seed, "fell": fell, "walked_s": walked}
        | {k: m[k] for k in ("knee_rmse_rad", "ankle_rmse_rad", "floquet_max", "distance_m")}
        | {k: stats.get(k) for k in ("sparsity", "macs_per_step")}
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="training run directory or checkpoint (not needed for PD only)")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--controllers", default="gru,deltagru", help="learned controllers to run (the PD always runs)")
    p.add_argument("--out", default=None, help="write the episodes and the summary as JSON here")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    learned = [c for c in args.controllers.split(",") if c]
    if not set(learned) <= {"gru", "deltagru"}:
        p.error(f"--controllers takes gru and/or deltagru, got {args.controllers!r}")
    if learned and args.checkpoint is None:
        p.error(f"--checkpoint is required to run {', '.join(learned)} (or pass --controllers '' for the PD alone)")
    names = ("pd", *learned)
    jobs = [
        (name, args.checkpoint, speed, slope, seed, args.seconds)
        for name in names
        for _, speed, slope in CONDITIONS
        for seed in seeds
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as ex:
        episodes = list(ex.map(_job, jobs))
    pd_rmse = {(e["speed"], e["slope"], e["seed"]): e["knee_rmse_rad"] for e in episodes if e["controller"] == "pd"}
    rows = []
    for name in names:
        for kind, speed, slope in CONDITIONS:
            eps = [e for e in episodes if e["controller"] == name and e["speed"] == speed and e["slope"] == slope]
            ratios = [e["knee_rmse_rad"] / pd_rmse[(speed, slope, e["seed"])] for e in eps]
            sp = [e["sparsity"] for e in eps if e["sparsity"] is not None]
            macs = [e["macs_per_step"] for e in eps if e["macs_per_step"] is not None]
            rows.append({
                "controller": name, "condition": f"{kind} {speed} m/s {slope:+.0f}°",
                "falls": sum(e["fell"] for e in eps), "episodes": len(eps),
                "knee_rmse": float(np.mean([e["knee_rmse_rad"] for e in eps])),
                "max_knee_ratio_to_pd": float(np.max(ratios)),
                "mean_sparsity": float(np.mean(sp)) if sp else None,
                "min_sparsity": float(np.min(sp)) if sp else None,
                "mean_macs": float(np.mean(macs)) if macs else None,
            })  # fmt: skip
    header = ("controller", "condition", "falls", "knee rmse", "max ×PD", "sparsity mean/min", "MACs")
    print("{:10} {:22} {:>6} {:>9} {:>8} {:>17} {:>8}".format(*header))
    for r in rows:
        sp = "-" if r["min_sparsity"] is None else f"{r['mean_sparsity']:.3f} / {r['min_sparsity']:.3f}"
        macs = "-" if r["mean_macs"] is None else f"{r['mean_macs']:.0f}"
        print(
            f"{r['controller']:10} {r['condition']:22} {r['falls']:>3}/{r['episodes']:<2} {r['knee_rmse']:9.3f} "
            f"{r['max_knee_ratio_to_pd']:8.2f} {sp:>17} {macs:>8}"
        )
    print(f"{len(episodes)} episodes in {time.perf_counter() - t0:.0f} s")
    if args.out:
        with atomic_writer(args.out, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "rows": rows, "episodes": episodes}, f, indent=2)


if __name__ == "__main__":
    main()
