#!/usr/bin/env bash
# The evaluation grid of issue #16, for one controller: `legloop eval` on seeds 5-9 (never used in training or
# checkpoint selection) x 60 s, randomised, with push trials, at 0.8 / 1.0 / 1.2 m/s on level ground and at 1.0 m/s
# on the randomised slope centred on -3 and +3 degrees. One output directory per condition (v0.8_s0, v1.0_s-3, ...),
# the names benchmarks/rl_vs_pd.py pairs up. ~5 min per controller on one core.
#
#   bash benchmarks/rl_eval_grid.sh OUTDIR [legloop eval options, e.g. --controller rl --checkpoint RUN]
#   python benchmarks/rl_vs_pd.py OUTDIR_OF_THE_PD OUTDIR
# SEEDS=300,301,302,303,304 runs the same grid on other seeds (e.g. held out, to choose among variants before the
# evaluation's seeds see the one chosen).
set -euo pipefail
out=${1:?usage: rl_eval_grid.sh OUTDIR [legloop eval options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
legloop=${LEGLOOP:-$here/.venv/bin/legloop}
mkdir -p "$out"
for cond in "0.8 0" "1.0 -3" "1.0 0" "1.0 3" "1.2 0"; do
    read -r speed slope <<<"$cond"
    "$legloop" eval "$@" --speed "$speed" --slope "$slope" --seeds "${SEEDS:-5,6,7,8,9}" --seconds 60 \
        --out "$out/v${speed}_s${slope}" >"$out/v${speed}_s${slope}.log" 2>&1 \
        || { echo "failed: $out/v${speed}_s${slope}.log" >&2; exit 1; }
    echo "done: v${speed}_s${slope}"
done
