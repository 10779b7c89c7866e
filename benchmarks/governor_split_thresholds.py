"""Which thresholds ``predictive-split`` runs each layer with, replaying a held-out walk on the EdgeDRNN model.

``governor_tradeoff.py`` says how often the governor raised Θ ("raised /1000 steps"); this says how far: per clock
and layer, the fraction of steps run with Θh above the trained value and at the register's maximum 511 (no hidden
delta can reach it: |h| ≤ 256, so the layer's recurrent update is frozen), with Θx above the trained value and at
511, the median Θx, and the governor's ``infeasible`` steps (even Θx = Θh = 511 priced over the budget) and late
steps. Open loop on the features of the log (the ``hold`` policy, 21 µs); the fractions are of the log's steps.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/governor_split_thresholds.py --checkpoint runs/size/h256 \\
        [--heldout runs/demo/heldout/pd_walk.csv] [--clocks 100,125,200] [--budget-us 21]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from controllers.features import FEATURE_COLUMNS, TARGET_COLUMNS, features_from_columns
from controllers.fixedpoint import THETA_MAX
from experiments.replay import read_log
from hil.edgedrnn import predictive as pr
from hil.edgedrnn.backend import EdgeDRNNBackend
from hil.spec import ControllerSpec


def features(ckpt: str, heldout: Path) -> np.ndarray:
    """The network's input features [T, I] of every step of a held-out log (its feature set's columns)."""
    with ControllerSpec("edgedrnn", checkpoint=ckpt).factory() as f0:
        fs = f0.meta.feature_set
    cols = read_log(heldout, tuple(dict.fromkeys(FEATURE_COLUMNS[fs] + TARGET_COLUMNS)))
    return np.ascontiguousarray(features_from_columns(fs, cols), dtype=np.float64)


def thresholds(ckpt: str, feats: np.ndarray, clock_hz: float, budget_s: float) -> str:
    """One line per layer (and a summary line) for one clock."""
    spec = ControllerSpec(
        "edgedrnn", checkpoint=ckpt, governor="predictive-split", clock_hz=clock_hz, policy="hold", budget_s=budget_s
    )
    with spec.factory() as factory:
        backend = getattr(factory.offline(capacity=len(feats)), "backend", None)
        if not isinstance(backend, EdgeDRNNBackend) or not isinstance(backend.governor, pr.PredictiveGovernor):
            raise SystemExit(f"{ckpt}: not an EdgeDRNN backend with the predictive-split governor")
        gov = backend.governor
        layers = backend.model.layers
        backend.reset()
        before = gov.counters()
        tx = np.zeros((len(feats), layers), dtype=np.int64)
        th = np.zeros_like(tx)
        late = 0
        for i, f in enumerate(feats):
            late += not backend.step(f).deadline_met
            tx[i] = gov.buffer[pr.G_LAYER_TX : pr.G_LAYER_TX + layers]
            th[i] = gov.buffer[pr.G_LAYER_TH : pr.G_LAYER_TH + layers]
        infeasible = gov.counters()["infeasible"] - before["infeasible"]
        bx, bh = backend.bundle.theta_x, backend.bundle.theta_h
        floor_us = backend.model.floor_cycles / clock_hz * 1e6
    lines = [
        f"{clock_hz / 1e6:g} MHz: {len(feats)} steps, {late} late, {infeasible} infeasible; trained Θx {bx}, "
        f"Θh {bh}; floor {floor_us:.2f} µs"
    ]
    for layer in range(layers):
        x, h = tx[:, layer], th[:, layer]
        lines.append(
            f"  layer {layer + 1}: Θh > trained {np.mean(h > bh):.3f}, Θh = {THETA_MAX} {np.mean(h == THETA_MAX):.3f}; "
            f"Θx > trained {np.mean(x > bx):.3f}, Θx = {THETA_MAX} {np.mean(x == THETA_MAX):.3f}, "
            f"median Θx {np.median(x):g}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a training run directory or controller .pt")
    p.add_argument("--heldout", default="runs/demo/heldout/pd_walk.csv", help="held-out PD walk CSV")
    p.add_argument("--clocks", default="100,125,200", help="accelerator clocks, MHz")
    p.add_argument("--budget-us", type=float, default=21.0)
    args = p.parse_args(argv)
    feats = features(args.checkpoint, Path(args.heldout))
    print(args.checkpoint)
    for clock in (float(c) for c in args.clocks.split(",") if c.strip()):
        print(thresholds(args.checkpoint, feats, clock * 1e6, args.budget_us * 1e-6), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
