"""Which of several distilled students walks the held-out seeds: the rule fixed before their results, applied to
`rl_vs_pd.py --json` files.

    python benchmarks/pick_student.py cmp10_A.json cmp10_B.json … [--min-median 1.1]

Each file is one candidate's comparison with the PD on the selection seeds (docs/rl.md: seeds 10–29 × issue #16's
five conditions). A candidate qualifies when it is within every RL bar (0 falls, tracking, peak torque and rate), its
delta network's temporal sparsity is ≥ 0.90 on every condition, and its median largest push survived is at least
``--min-median`` × the PD's (1.1×: half of the 1.2× gain bar, which is what a student must keep of an expert at the
bar). Of those qualifying, the largest mean push ratio wins — the median moves in ladder steps of 50 N and ties often.
One line per candidate, then ``WINNER <file>`` or ``WINNER none``; exit status 0 either way (no winner is a result).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rl_vs_pd import KEEP_BAR, NOT_CONDS, PUSH_GAIN_BAR, SPARSITY_BAR

# What a student keeps of an expert at the gain bar: half of 1.2x over the PD (rounded: 0.2 is not exact in binary).
MIN_MEDIAN = round(1.0 + (PUSH_GAIN_BAR - 1.0) * KEEP_BAR, 6)


def verdict(rows: dict[str, Any], min_median: float = MIN_MEDIAN) -> dict[str, Any]:
    """One candidate's measures (from ``rl_vs_pd.py --json``) and whether it qualifies under the rule."""
    if "bars" not in rows or "all" not in rows:
        raise ValueError("not an rl_vs_pd.py --json file with push trials: it has no 'bars' and 'all'")
    b, a = rows["bars"], rows["all"]
    sparsity = [v["rl"]["sparsity"] for k, v in rows.items() if k not in NOT_CONDS]
    sp_min = None if any(s is None for s in sparsity) else min(sparsity)
    return {
        "within": b["within"],
        "falls": b["falls"],
        "episodes": b["episodes"],
        "sparsity_min": sp_min,
        "median_ratio": a["ratio"],
        "mean_ratio": a["mean_ratio"],
        "paired": a["paired"],
        "ok": bool(b["within"] and sp_min is not None and sp_min >= SPARSITY_BAR and a["ratio"] >= min_median),
    }


def pick(candidates: dict[str, dict[str, Any]], min_median: float = MIN_MEDIAN) -> tuple[dict[str, dict], str | None]:
    """Every candidate's :func:`verdict` and the winner's name: the largest mean ratio of those that qualify (the
    first given on a tie), or None."""
    verdicts = {name: verdict(rows, min_median) for name, rows in candidates.items()}
    ok = [name for name, v in verdicts.items() if v["ok"]]
    return verdicts, max(ok, key=lambda n: verdicts[n]["mean_ratio"]) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path, nargs="+", help="rl_vs_pd.py --json files, one per candidate")
    ap.add_argument("--min-median", type=float, default=MIN_MEDIAN, help="median push ratio to the PD needed")
    args = ap.parse_args()
    candidates = {}
    for path in args.json:
        try:
            candidates[str(path)] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            sys.exit(f"{path}: expected an rl_vs_pd.py --json file ({e})")
    try:
        verdicts, winner = pick(candidates, args.min_median)
    except ValueError as e:
        sys.exit(str(e))
    for name, v in verdicts.items():
        sp = "–" if v["sparsity_min"] is None else f"{v['sparsity_min']:.3f}"
        p = v["paired"]
        print(
            f"{name}: within={v['within']} falls={v['falls']}/{v['episodes']} sparsity_min={sp} "
            f"median={v['median_ratio']:.2f}x mean={v['mean_ratio']:.3f}x paired={p['larger']}/{p['smaller']} "
            f"p={p['sign_test_p']} -> {'CANDIDATE' if v['ok'] else 'no'}"
        )
    print("WINNER", winner or "none")


if __name__ == "__main__":
    main()
