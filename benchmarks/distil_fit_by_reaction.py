"""How well distilled networks fit their expert where it reacts, against where it walks its nominal gait.

    python benchmarks/distil_fit_by_reaction.py DATA RUN [RUN …] [--controller gru|deltagru]

DATA is an expert-driven data set (a `legloop train --expert rl:DIR` run's ``data/pd``, or any set with the PD's
torque beside the expert's labels); best one that none of the RUNs trained on (another distillation seed's). Its steps
are grouped by d, how far the expert's correction over the PD departs from its mean at that gait phase
(:func:`experiments.train_data.correction_departure`, the quantity `optim.correction_weight` weights): the top 1 %
(push recoveries, stumbles), the 90–99 % band and the lower half (the nominal walk). Each RUN's network (``deltagru``:
``RUN/controller.pt`` at its run thresholds; ``gru``: ``RUN/gru.pt``) replays every episode open loop from a fresh
state, and the mean |error| of its torque against the expert's label (N·m, knee / ankle) is reported per group, after
a row with the expert's mean |correction| there. docs/rl.md, fifteenth round: weighting those steps traded the nominal
walk's fit for the reactions'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controllers.features import PRIOR_COLUMNS, TARGET_COLUMNS, features_from_columns
from experiments.dataset import load_source
from experiments.replay import replay
from experiments.train_data import correction_departure, episode_series
from hil.spec import ControllerSpec

GROUPS = ("top 1 %", "90–99 %", "lower half")


def groups_of(d: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the steps in each group of d (the reaction's size relative to its mean)."""
    q50, q90, q99 = np.quantile(d, [0.5, 0.9, 0.99])
    return dict(zip(GROUPS, (d >= q99, (d >= q90) & (d < q99), d < q50), strict=True))


def _row(name: str, err: np.ndarray, masks: dict[str, np.ndarray]) -> str:
    cells = "".join(f"{err[m, 0].mean():>9.1f} / {err[m, 1].mean():<6.1f}" for m in masks.values())
    return f"{name:<24}{cells}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="an expert-driven data set (a distillation run's data/pd)")
    ap.add_argument("runs", type=Path, nargs="+", help="`legloop train --expert rl:DIR` output directories")
    ap.add_argument("--controller", choices=("gru", "deltagru"), default="deltagru")
    args = ap.parse_args()
    episodes = load_source(args.data)
    missing = [c for c in PRIOR_COLUMNS if c not in episodes[0].columns]
    if missing:
        sys.exit(f"{args.data}: no {', '.join(missing)} — not an expert-driven set with the PD's torque beside it")
    series = episode_series(episodes, "ampro", target="pd_residual", phase=True)  # features unused here
    d = correction_departure(series)  # d / mean d
    masks = groups_of(d)
    correction = np.abs(np.concatenate([s.y for s in series]))
    print(f"{len(episodes)} episodes, {len(d)} steps of {args.data}; mean |error| of the torque, N·m knee / ankle")
    print(f"{'':<24}" + "".join(f"{g:>18}" for g in GROUPS))
    print(_row("expert's |correction|", correction, masks))
    for run in args.runs:
        with ControllerSpec(args.controller, checkpoint=str(run)).factory() as factory:
            err = []
            for ep in episodes:
                cols = ep.columns
                feats = features_from_columns(factory.meta.feature_set, cols)
                label = np.stack([cols[c] for c in TARGET_COLUMNS], axis=1)
                prior = np.stack([cols[c] for c in PRIOR_COLUMNS], axis=1)
                residual = prior if factory.meta.target == "pd_residual" else None
                err.append(np.abs(replay(factory.offline(len(feats)), feats, label, residual) - label))
        print(_row(run.name or str(run), np.concatenate(err), masks))


if __name__ == "__main__":
    main()
