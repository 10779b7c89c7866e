#!/usr/bin/env bash
# Sixteenth round, third pool, pre-registered (written at 21:39 UTC by `date`, after pipeF's results — the fine-tune's
# tracking rose with its steps, 200 k was the rule's pick and walked seeds 5-9 at median 1.00x, mean 1.09x — and
# before any of pipeG's grids). Runs after pipeG.sh.
# H_trk = `legloop rl finetune R2 --set reward.tracking=20 --set reward.tracking_pushed=20 --set reward.tracking_knee=40`
#         (the tracking weights doubled: hold the drift F showed); candidates its 200 k checkpoint and its final.
# H_lr  = `legloop rl finetune R2 --set ppo.learning_rate=3e-5` (a third of the step); its final.
# Rule: benchmarks/pick_student.py over the three on seeds 10-29; the winner walks seeds 5-9 once (against L10's grid).
set -euo pipefail
cd /work/runs/r23
B=/work/main/benchmarks
PY=/work/main/.venv/bin/python
L=/work/main/.venv/bin/legloop
S10=$(seq -s, 10 29)
while pgrep -f pipeG.sh > /dev/null; do sleep 20; done
date
$L rl finetune R2 --out H_trk --set reward.tracking=20.0 --set reward.tracking_pushed=20.0 --set reward.tracking_knee=40.0 --quiet > H_trk.log 2>&1
$L rl finetune R2 --out H_lr --set ppo.learning_rate=3e-5 --quiet > H_lr.log 2>&1
date
SEEDS=$S10 bash $B/rl_eval_grid.sh g10_H_trk200 --controller deltagru --checkpoint H_trk/checkpoints/step_200000
$PY $B/rl_vs_pd.py g10_pd g10_H_trk200 --json g10_H_trk200.json > cmp10_H_trk200.txt
for c in H_trk H_lr; do
  SEEDS=$S10 bash $B/rl_eval_grid.sh g10_$c --controller deltagru --checkpoint $c
  $PY $B/rl_vs_pd.py g10_pd g10_$c --json g10_$c.json > cmp10_$c.txt
done
$PY $B/pick_student.py g10_H_trk200.json g10_H_trk.json g10_H_lr.json > pickH.txt
cat pickH.txt
w=$(awk '/^WINNER/ {print $2}' pickH.txt)
if [ "$w" != "none" ]; then
  ck=$(case $w in g10_H_trk200.json) echo H_trk/checkpoints/step_200000;; g10_H_trk.json) echo H_trk;; g10_H_lr.json) echo H_lr;; esac)
  n=$(basename "$w" .json); n=${n#g10_}
  bash $B/rl_eval_grid.sh g5_$n --controller deltagru --checkpoint $ck
  $PY $B/rl_vs_pd.py g5_pd g5_$n --expert g5_L10 --json g5_$n.json > cmp5_$n.txt
fi
date
