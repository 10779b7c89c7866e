#!/usr/bin/env bash
# Sixteenth round, pre-registered (written before any fine-tune result; code at 1a72dcb):
# F = `legloop rl finetune R2` with experiments/configs/rl_finetune.toml (600 k steps, seed 0, warm-up 20 480).
# Candidates: F's checkpoints at 200 k and 400 k and its final (600 k). Rule: benchmarks/pick_student.py over the
# three candidates' `rl_vs_pd.py --json` on seeds 10-29 x #16's five conditions (within every RL bar, sparsity >= 0.90,
# median >= 1.1x; largest mean wins). The winner, if any, walks seeds 5-9 once, judged by rl_vs_pd.py --expert
# against L10's grid there. R2 (the starting point) is graded on seeds 10-29 as a control, not a candidate.
set -euo pipefail
cd /work/runs/r23
B=/work/main/benchmarks
PY=/work/main/.venv/bin/python
L=/work/main/.venv/bin/legloop
S10=$(seq -s, 10 29)
date
$L rl finetune R2 --out F --quiet > F.log 2>&1
date
SEEDS=$S10 bash $B/rl_eval_grid.sh g10_pd --controller pd
for c in 200000 400000; do
  SEEDS=$S10 bash $B/rl_eval_grid.sh g10_F$c --controller deltagru --checkpoint F/checkpoints/step_$c
  $PY $B/rl_vs_pd.py g10_pd g10_F$c --json g10_F$c.json > cmp10_F$c.txt
done
SEEDS=$S10 bash $B/rl_eval_grid.sh g10_F --controller deltagru --checkpoint F
$PY $B/rl_vs_pd.py g10_pd g10_F --json g10_F.json > cmp10_F.txt
date
$PY $B/pick_student.py g10_F200000.json g10_F400000.json g10_F.json > pick.txt
cat pick.txt
SEEDS=$S10 bash $B/rl_eval_grid.sh g10_R2 --controller deltagru --checkpoint R2
$PY $B/rl_vs_pd.py g10_pd g10_R2 --json g10_R2.json > cmp10_R2.txt
w=$(awk '/^WINNER/ {print $2}' pick.txt)
if [ "$w" != "none" ]; then
  ck=$(case $w in g10_F200000.json) echo F/checkpoints/step_200000;; g10_F400000.json) echo F/checkpoints/step_400000;; g10_F.json) echo F;; esac)
  bash $B/rl_eval_grid.sh g5_pd --controller pd
  bash $B/rl_eval_grid.sh g5_L10 --controller rl --checkpoint L10
  bash $B/rl_eval_grid.sh g5_win --controller deltagru --checkpoint $ck
  $PY $B/rl_vs_pd.py g5_pd g5_win --expert g5_L10 --json g5_win.json > cmp5_win.txt
fi
date
