"""Trade-off of a trained delta-GRU over its threshold Θh (or Θx, `--which x`), changed at run time (no retraining).

For each Θ: closed-loop episodes on the same seeds as the PD, and the falls, knee RMSE relative to the PD's,
temporal sparsity and MACs per step, on the CPU kernel; and the modelled EdgeDRNN latency (mean, p99) and 21 µs
deadline misses of the same network replayed open loop through a held-out PD log with no deadline enforcement.

    python benchmarks/theta_sweep.py --checkpoint runs/final/controller.pt --log runs/demo/heldout/pd_walk.csv
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np


def _episode(args: tuple[str, str, float | None, float, int, float]) -> dict[str, Any]:
    from controllers.checkpoint import load_checkpoint
    from controllers.learned import LearnedController
    from experiments.evaluate import EvalConfig, controller_factory, run_episode

    ckpt, which, theta_h, speed, seed, seconds = args
    cfg = EvalConfig(speed=speed, seconds=seconds, seeds=(seed,))
    if theta_h is None:
        factory = controller_factory("pd")
    else:
        model, meta = load_checkpoint(ckpt)
        setattr(model, f"theta_{which}", theta_h)

        def factory(env: Any) -> LearnedController:
            return LearnedController(model, meta, dt=env.dt, walker=env.walker)

    stats: dict[str, Any] = {}
    fell, _, m = run_episode(factory, seed, seconds, cfg.env_kwargs(), stats_out=stats)
    return {"theta_h": theta_h, "seed": seed, "fell": fell, "knee": m["knee_rmse_rad"]} | stats


def _latency(ckpt: str, which: str, theta_h: float, log: str) -> dict[str, float]:
    from controllers.checkpoint import load_checkpoint
    from controllers.features import FEATURE_COLUMNS, TARGET_COLUMNS, features_from_columns
    from experiments.ampro_log import read_csv
    from experiments.replay import replay, torque_metrics
    from firmware_bridge.export import bundle_from_model
    from hil.edgedrnn_controller import EdgeDRNNController

    model, meta = load_checkpoint(ckpt)
    setattr(model, f"theta_{which}", theta_h)
    cols = read_csv(log, require=tuple(dict.fromkeys(FEATURE_COLUMNS[meta.feature_set] + TARGET_COLUMNS)))
    feats = features_from_columns(meta.feature_set, cols)
    target = np.stack([cols[c] for c in TARGET_COLUMNS], axis=1)
    ctrl = EdgeDRNNController(bundle_from_model(model, meta), meta.control_dt, meta.feature_set, budget_s=1.0,
                              capacity=len(feats))  # fmt: skip
    pred = replay(ctrl, feats, target)
    lat = ctrl.latencies_s * 1e6
    r2 = torque_metrics(pred, target)
    return {
        "edgedrnn_r2_knee": r2["knee"]["r2"],
        "lat_mean_us": float(lat.mean()),
        "lat_p99_us": float(np.percentile(lat, 99)),
        "misses_21us_pct": float(100 * np.mean(lat > 21.0)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--log", required=True, help="held-out PD walk in the AMPRO CSV schema (for the latency replay)")
    p.add_argument("--which", choices=["h", "x"], default="h", help="sweep Θh (hidden) or Θx (input)")
    p.add_argument("--thetas", default="0.125,0.25,0.375,0.5,0.75,1.0", help="Θ values, normalised units")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    thetas = [float(t) for t in args.thetas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    jobs = [(args.checkpoint, args.which, th, args.speed, s, args.seconds) for th in [None, *thetas] for s in seeds]
    with ProcessPoolExecutor(args.workers) as ex:
        eps = list(ex.map(_episode, jobs))
    pd = {e["seed"]: e["knee"] for e in eps if e["theta_h"] is None}
    print(f"{'Θ' + args.which:>6} {'falls':>6} {'knee/PD':>8} {'sparsity':>9} {'MACs':>7} {'R² knee':>8} {'lat µs':>7} "
          f"{'p99 µs':>7} {'>21µs %':>8}")  # fmt: skip
    for th in thetas:
        es = [e for e in eps if e["theta_h"] == th]
        ratio = np.mean([e["knee"] / pd[e["seed"]] for e in es])
        lat = _latency(args.checkpoint, args.which, th, args.log)
        print(
            f"{th:6.3f} {sum(e['fell'] for e in es):>3}/{len(es):<2} {ratio:8.2f} "
            f"{np.mean([e['sparsity'] for e in es]):9.3f} {np.mean([e['macs_per_step'] for e in es]):7.0f} "
            f"{lat['edgedrnn_r2_knee']:8.4f} {lat['lat_mean_us']:7.1f} {lat['lat_p99_us']:7.1f} "
            f"{lat['misses_21us_pct']:8.1f}"
        )
    print(f"{len(eps)} episodes in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
