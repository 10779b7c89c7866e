#!/usr/bin/env bash
# Sixteenth round, second pool, pre-registered (written at 21:10 UTC by `date`, while pipeF's PD grid ran: before any
# fine-tuned student's grid; code at 1a72dcb). Runs after pipeF.sh.
# G_Y3 = `legloop rl finetune Y3` (Y3 = R2's recipe + [optim] correction_weight = 3, fifteenth round: the gain with
#        the knee over its bar), rl_finetune.toml defaults; the final checkpoint.
# G_s1 = `legloop rl finetune R2 --set seed=1`, the final checkpoint (is F's verdict the fine-tune's seed?).
# Rule: benchmarks/pick_student.py over these two on seeds 10-29; the winner walks seeds 5-9 once (against L10's grid).
set -euo pipefail
cd /work/runs/r23
B=/work/main/benchmarks
PY=/work/main/.venv/bin/python
L=/work/main/.venv/bin/legloop
S10=$(seq -s, 10 29)
while pgrep -f pipeF.sh > /dev/null; do sleep 20; done
date
$L train --expert rl:/work/runs/r23/L10 --config dist_y3.toml --out Y3 --quiet > Y3.log 2>&1
$L rl finetune Y3 --out G_Y3 --quiet > G_Y3.log 2>&1
$L rl finetune R2 --out G_s1 --set seed=1 --quiet > G_s1.log 2>&1
date
for c in G_Y3 G_s1; do
  SEEDS=$S10 bash $B/rl_eval_grid.sh g10_$c --controller deltagru --checkpoint $c
  $PY $B/rl_vs_pd.py g10_pd g10_$c --json g10_$c.json > cmp10_$c.txt
done
$PY $B/pick_student.py g10_G_Y3.json g10_G_s1.json > pickG.txt
cat pickG.txt
w=$(awk '/^WINNER/ {print $2}' pickG.txt)
if [ "$w" != "none" ]; then
  ck=$(basename "$w" .json); ck=${ck#g10_}
  [ -d g5_pd ] || bash $B/rl_eval_grid.sh g5_pd --controller pd
  [ -d g5_L10 ] || bash $B/rl_eval_grid.sh g5_L10 --controller rl --checkpoint L10
  bash $B/rl_eval_grid.sh g5_$ck --controller deltagru --checkpoint $ck
  $PY $B/rl_vs_pd.py g5_pd g5_$ck --expert g5_L10 --json g5_$ck.json > cmp5_$ck.txt
fi
date
