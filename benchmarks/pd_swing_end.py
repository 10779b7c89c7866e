"""Falls and knee tracking of the PD baseline per end-of-swing knee angle (`PDParams.swing_end`).

Why the PD lands on a flexed knee (controllers/pd.py's docstring): with a nearly straight knee at the end of swing
the PD fell on steep downhill starts, and every learned controller imitates those falls. This script is the
measurement behind the choice: the PD alone, for each value of ``swing_end``, on three grids of 60 s episodes with
the evaluation's domain randomisation (bodies, friction, sensor noise; speed fixed):

- ``baseline``: the README's PD baseline (``experiments/configs/sweep_acceptance.toml``'s five scenarios — 0.8 /
  1.0 / 1.2 m/s with slopes ±5° random, 1.0 m/s on fixed +3° and −3° — × seeds 0–29, 150 episodes);
- ``hard45``: the hard-deadline acceptance grid of issue #14 (0.8 / 1.0 / 1.2 m/s × slopes −3 / 0 / +3° each ±5°
  random × seeds 0–4, 45 episodes; ``benchmarks/governor_tradeoff.py --slopes=-3,0,3``);
- ``downhill``: downhill starts on seeds no other grid uses (1.0 / 1.2 m/s × −3 ± 5° × seeds 5–34, 60 episodes).

Knee RMSE is the episode metric of ``envs.metrics`` (rad, measured knee vs the PD's desired knee, over the steps
walked). Runs the episodes on a process pool (``--workers``, default 2).

    .venv/bin/python benchmarks/pd_swing_end.py [--values 0.15,0.25,0.30,0.35,0.40] [--grids baseline,hard45,downhill]
        [--workers 2] [--out benchmarks/results/pd_swing_end.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from controllers.pd import AmproPD
from envs.walker_env import ProstheticWalkerEnv, Randomization
from experiments.evaluate import EVAL_RANDOMIZATION, run_episode

# (speed m/s, slope °, slope randomised ±5°?)
GRIDS: dict[str, tuple[list[tuple[float, float, bool]], range]] = {
    "baseline": (
        [(0.8, 0.0, True), (1.0, 0.0, True), (1.2, 0.0, True), (1.0, 3.0, False), (1.0, -3.0, False)],
        range(30),
    ),
    "hard45": ([(v, s, True) for v in (0.8, 1.0, 1.2) for s in (-3.0, 0.0, 3.0)], range(5)),
    "downhill": ([(1.0, -3.0, True), (1.2, -3.0, True)], range(5, 35)),
}


class _PDFactory:
    """A picklable controller factory: the default PD with `swing_end` changed."""

    def __init__(self, swing_end: float) -> None:
        self.swing_end = swing_end

    def __call__(self, env: ProstheticWalkerEnv) -> AmproPD:
        default = AmproPD(env.dt, walker=env.walker).p  # the defaults with this walker's torque limits
        return AmproPD(env.dt, params=replace(default, swing_end=self.swing_end), walker=env.walker)


def _episode(task: tuple[float, float, float, bool, int, float]) -> dict[str, Any]:
    swing_end, speed, slope, random_slope, seed, seconds = task
    rnd = EVAL_RANDOMIZATION if random_slope else Randomization(speed_delta=0.0, slope_deg=0.0)
    kw = {"speed": speed, "slope_deg": slope, "sensor_noise": True, "randomization": rnd}
    fell, walked, metrics = run_episode(_PDFactory(swing_end), seed, seconds, kw)
    assert metrics is not None
    return {
        "swing_end": swing_end,
        "speed": speed,
        "slope": slope,
        "random_slope": random_slope,
        "seed": seed,
        "fell": fell,
        "walked_s": walked,
        "knee_rmse_rad": metrics["knee_rmse_rad"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--values", default="0.15,0.25,0.30,0.35,0.40", help="swing_end values, rad")
    p.add_argument("--grids", default="baseline,hard45,downhill", help=f"of {', '.join(GRIDS)}")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/pd_swing_end.md")
    args = p.parse_args(argv)
    values = [float(v) for v in args.values.split(",")]
    grids = args.grids.split(",")
    unknown = [g for g in grids if g not in GRIDS]
    if unknown:
        p.error(f"unknown grid(s) {unknown}: expected some of {list(GRIDS)}")
    out = Path(args.out)
    if out.exists():
        p.error(f"{out} exists: pass another --out (nothing is overwritten)")
    tasks = [
        (v, speed, slope, rnd, seed, args.seconds)
        for v in values
        for g in grids
        for speed, slope, rnd in GRIDS[g][0]
        for seed in GRIDS[g][1]
    ]
    grid_of = [g for v in values for g in grids for _ in GRIDS[g][0] for _ in GRIDS[g][1]]
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for i, r in enumerate(pool.map(_episode, tasks, chunksize=1)):
            r["grid"] = grid_of[i]
            results.append(r)
            if (i + 1) % 25 == 0 or i + 1 == len(tasks):
                print(f"{i + 1}/{len(tasks)} episodes, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    lines = [
        "# PD falls and knee tracking per end-of-swing knee angle",
        "",
        f"`benchmarks/pd_swing_end.py --values {args.values} --grids {args.grids}`; {args.seconds:g} s episodes, "
        f"evaluation randomisation; {len(tasks)} episodes in {time.perf_counter() - t0:.0f} s on {args.workers} "
        "workers. Falls = episodes that fell / episodes; knee RMSE in rad (mean and worst episode over the grid).",
        "",
        "| swing_end (rad) | " + " | ".join(f"{g}: falls | {g}: knee RMSE mean / max" for g in grids) + " |",
        "|---|" + "---|---|" * len(grids),
    ]
    for v in values:
        cells = []
        for g in grids:
            rows = [r for r in results if r["swing_end"] == v and r["grid"] == g]
            knee = [r["knee_rmse_rad"] for r in rows if math.isfinite(r["knee_rmse_rad"])]
            falls = sum(r["fell"] for r in rows)
            cells += [f"{falls}/{len(rows)}", f"{sum(knee) / len(knee):.3f} / {max(knee):.3f}"]
        lines.append(f"| {v:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Falls:", ""]
    for r in results:
        if r["fell"]:
            lines.append(
                f"- swing_end {r['swing_end']:.2f}, {r['grid']}: {r['speed']} m/s, slope {r['slope']:+g}°"
                f"{' ±5° random' if r['random_slope'] else ''}, seed {r['seed']}, at {r['walked_s']:.1f} s"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
