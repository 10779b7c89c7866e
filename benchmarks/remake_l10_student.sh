#!/usr/bin/env bash
# Remake #16's distilled student from the repository alone (docs/rl.md, sixteenth round): the RL expert L10, its
# student R2, and R2's output layer fine-tuned in closed loop — the network that walked seeds 5-9 within every RL bar at
# the expert's median push gain, at >= 0.92 temporal sparsity.
#   1. L10: `legloop rl train --config rl_ls20.toml` (seed 2, 800 k steps), then `legloop rl select` of its 240 k
#      checkpoint at residual 1.0 on ten held-out seeds (100-109). The ninth round's selection over all 33 candidates
#      on those seeds (`legloop rl select RUN --set 'select.seeds=[100,...,109]'`, ~20 min) picks this one; selecting
#      it alone writes the same policy with the deployment limits (ankle 70 N·m) in ~1 min.
#   2. R2: `legloop train --expert rl:L10 --config experiments/configs/train_distil_r2.toml`.
#   3. `legloop rl finetune R2` (experiments/configs/rl_finetune.toml); the student is its checkpoints/step_200000.
# ~20 min on the 2-core development machine (2026-12-05: training ~7 min, selection 1 min, distillation 4 min,
# fine-tune 4 min). Then, e.g.:
#   bash benchmarks/rl_eval_grid.sh runs/eval/pd --controller pd
#   bash benchmarks/rl_eval_grid.sh runs/eval/l10 --controller rl --checkpoint OUT/L10
#   bash benchmarks/rl_eval_grid.sh runs/eval/student --controller deltagru --checkpoint OUT/student
#   python benchmarks/rl_vs_pd.py runs/eval/pd runs/eval/student --expert runs/eval/l10
set -euo pipefail
out=${1:?usage: remake_l10_student.sh OUTDIR (new; the student is written to OUTDIR/student)}
here=$(cd "$(dirname "$0")/.." && pwd)
legloop=${LEGLOOP:-$here/.venv/bin/legloop}
if [ -e "$out" ]; then
    echo "remake_l10_student.sh: $out exists; give a new directory (nothing is overwritten)" >&2
    exit 2
fi
"$legloop" rl train --config "$here/experiments/configs/rl_ls20.toml" --set select.enabled=false --out "$out/train"
mkdir -p "$out/L10/checkpoints"
cp -r "$out/train/checkpoints/step_240000" "$out/L10/checkpoints/"
cp "$out/train/rl_config.json" "$out/L10/"
"$legloop" rl select "$out/L10" --set 'select.seeds=[100,101,102,103,104,105,106,107,108,109]' \
    --set 'select.residual_scales=[1.0]'
"$legloop" train --expert "rl:$out/L10" --config "$here/experiments/configs/train_distil_r2.toml" --out "$out/R2"
"$legloop" rl finetune "$out/R2" --out "$out/finetune"
ln -s finetune/checkpoints/step_200000 "$out/student"
echo "the student: $out/student (controller.pt)"
