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
    from experiments.evaluate import EvalConfig, run_episode
    from hil.spec import ControllerSpec

    ckpt, which, theta_h, speed, seed, seconds = args
    cfg = EvalConfig(speed=speed, seconds=seconds, seeds=(seed,))
    spec = ControllerSpec("pd") if theta_h is None else ControllerSpec("deltagru", ckpt, **{f"theta_{which}": theta_h})
    stats: dict[str, Any] = {}
    with spec.factory() as factory:
        fell, _, m = run_episode(factory, seed, seconds, cfg.env_kwargs(), stats_out=stats)
    return {"theta_h": theta_h, "seed": seed, "fell": fell, "knee": m["knee_rmse_rad"]} | stats


def _latency(ckpt: str, which: str, theta_h: float, log: str) -> dict[str, float]:
    from experiments.replay import replay_log

    # Policy 'none': every step's result is used (the replay measures accuracy); misses of 21 µs are counted.
    metrics, _, _ = replay_log("edgedrnn", ckpt, log, budget_s=21e-6, policy="none", **{f"theta_{which}": theta_h})
    lat = metrics["latency"]
    return {
        "edgedrnn_r2_knee": metrics["joints"]["knee"]["r2"],
        "lat_mean_us": lat["mean_us"],
        "lat_p99_us": lat["p99_us"],
        "misses_21us_pct": 100.0 * lat["misses"] / lat["steps"],
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
