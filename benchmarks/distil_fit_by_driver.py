"""How well a distilled network fits its expert's labels, per data set of its training run — that is, by who drove
while the data was collected (the expert, or the learner in DAgger round k with probability 1 − β).

    python benchmarks/distil_fit_by_driver.py RUN [--controller gru|deltagru]

RUN is a `legloop train --expert rl:DIR` output directory (its ``data/<stage>/`` sets and the network: ``gru`` runs
``RUN/gru.pt``, ``deltagru`` ``RUN/controller.pt``). Each episode is replayed open loop through the network from a
fresh state (features and the PD's torque from the log), and the R² and RMS error of the torque against the expert's
label are reported per joint, over all of the set's steps (R² against the variance of the expert's correction for a
``pd_residual`` network, of the torque otherwise). A fit that falls as the learner drives more, on data the network
trained on, says the labels depend on something the network cannot see (docs/rl.md, twelfth round: an expert that
observes its own previous action labelled the learner's steps from commands never applied — `dagger.expert_follows`).
Runs trained since 2026-12-05 carry the same figure (R² only, the network on its training data) in ``train.json``'s
``fit_by_data_set``; this script adds the RMS error, the falls, the dense GRU and runs made before it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controllers.features import PRIOR_COLUMNS, TARGET_COLUMNS, features_from_columns
from experiments.replay import replay
from hil.spec import ControllerSpec


def _stage_order(p: Path) -> tuple[int, int, str]:
    """pd, dagger1, dagger2, …, delta_dagger1, …: the order the training collected them in."""
    name = p.name
    kind = 0 if name == "pd" else 1 if name.startswith("dagger") else 2
    digits = "".join(c for c in name if c.isdigit())
    return kind, int(digits) if digits else 0, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a `legloop train` output directory with data/<stage>/ sets")
    ap.add_argument("--controller", choices=("gru", "deltagru"), default="gru")
    args = ap.parse_args()
    data = args.run / "data"
    sets = sorted((p for p in data.iterdir() if (p / "manifest.json").exists()), key=_stage_order)
    if not sets:
        sys.exit(f"{data}: no collected data sets (data/<stage>/manifest.json)")
    print(f"{'data set':<15} {'episodes':>8} {'falls':>5} {'β (expert)':>10}  R² knee  R² ankle  RMS knee / ankle N·m")
    with ControllerSpec(args.controller, checkpoint=str(args.run)).factory() as factory:
        residual = factory.meta.target == "pd_residual"
        for d in sets:
            episodes = json.loads((d / "manifest.json").read_text())["episodes"]
            err, ref = [], []
            for e in episodes:
                with np.load(d / e["file"]) as z:
                    cols = {k: z[k] for k in z.files}
                feats = features_from_columns(factory.meta.feature_set, cols)
                label = np.stack([cols[c] for c in TARGET_COLUMNS], axis=1)
                prior = np.stack([cols[c] for c in PRIOR_COLUMNS], axis=1)
                pred = replay(factory.offline(len(feats)), feats, label, prior if residual else None)
                err.append(pred - label)
                ref.append(label - prior if residual else label)
            e_all, r_all = np.concatenate(err), np.concatenate(ref)
            r2 = 1.0 - (e_all**2).mean(0) / r_all.var(0)
            rms = np.sqrt((e_all**2).mean(0))
            falls = sum(bool(e["fell"]) for e in episodes)
            print(f"{d.name:<15} {len(episodes):>8} {falls:>5} {episodes[0].get('beta', 1.0):>10.4g}  {r2[0]:>7.3f}  "
                  f"{r2[1]:>8.3f}  {rms[0]:>6.1f} / {rms[1]:<6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
