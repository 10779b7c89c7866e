#!/usr/bin/env bash
# Remake the RL expert "Ls20" of docs/rl.md — the one the distillation default (train_distil.toml) was chosen with —
# from the repository alone: `legloop rl train` with experiments/configs/rl_ls20.toml (seed 2; the knee's torque limit
# and both rate limits in training), no selection over the whole run, then `legloop rl select` over the two
# checkpoints the sixth round chose among (160 k and 240 k steps) at residual 1.0 / 0.8 / 0.6x with the ankle's
# 70 N·m added at deployment, per condition on #16's grid conditions. Training is deterministic for a seed: the
# selection picks 240 k at 0.8x, held-out score 308 N (the PD 258 N), as in the sixth round (docs/rl.md, ninth round).
# ~9 min on the 2-core development machine (2026-12-05: training 7.5 min, selection 1.4 min).
#
#   bash benchmarks/remake_ls20.sh OUTDIR      # the expert: OUTDIR/Ls20; the full run: OUTDIR/train
#   legloop train --expert rl:OUTDIR/Ls20 --config experiments/configs/train_distil.toml --out DISTIL
set -euo pipefail
out=${1:?usage: remake_ls20.sh OUTDIR (new; the expert is written to OUTDIR/Ls20)}
here=$(cd "$(dirname "$0")/.." && pwd)
legloop=${LEGLOOP:-$here/.venv/bin/legloop}
if [ -e "$out" ]; then
    echo "remake_ls20.sh: $out exists; give a new directory (nothing is overwritten)" >&2
    exit 2
fi
"$legloop" rl train --config "$here/experiments/configs/rl_ls20.toml" --set select.enabled=false --out "$out/train"
mkdir -p "$out/Ls20/checkpoints"
for step in 160000 240000; do
    cp -r "$out/train/checkpoints/step_$step" "$out/Ls20/checkpoints/"
done
cp "$out/train/rl_config.json" "$out/train/rl_train.json" "$out/Ls20/"
"$legloop" rl select "$out/Ls20"
