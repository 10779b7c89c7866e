"""A controller (RL, or its distilled delta-GRU) against the PD on the same `legloop eval` conditions, in one table.

    python benchmarks/rl_vs_pd.py runs/eval/pd runs/eval/rl [--expert runs/eval/expert] [--json OUT.json]

Each argument is a folder of `legloop eval` output directories, one per condition, with the same names on both sides
(``v1.0_s0`` …: speed and slope, as ``runs/eval_grid.sh``-style loops make them), run with run logs (the default) and
push trials (the PD's episodes are restricted to the other side's seeds: a screen may run fewer). Per condition and
controller: falls, mean knee / ankle tracking RMSE, its ratio to the PD's mean and the worst episode's ratio to the PD
on the same seed, peak
|torque| and peak |torque rate| (from the run logs, N·m and N·m/s), the median largest push survived, and a delta
network's mean temporal sparsity (fraction of weight columns not fetched; – for the PD and the RL policy). Under the
table: the median and the mean largest push survived over all episodes, and how many episodes (same condition and
seed) survived a larger / smaller push than the PD — `legloop eval`'s ladder (50, 100, …, 300, 400, 500 N) moves a
median in steps of 50 N or more, so one step is already a 1.2× gain — and the two-sided sign test's p on those
pairs (ties dropped): the chance of a split at least that uneven if neither controller survived larger pushes more
often. A median that moved one ladder step with p ≳ 0.1 is a step the episodes happened to take. Last, issue #16's
bars, each with its verdict: 0 falls, knee and ankle tracking ≤ 1.25× the PD's on every condition (the mean RMSE
ratio), peak torque and torque rate no higher than the PD's on every joint and condition, and the gain, a median
largest push survived ≥ 1.2× the PD's (``--json``: under ``"bars"``). With ``--expert`` (the grid of the RL controller
a delta network was distilled from), the distillation bar too: the network keeps at least half of the expert's median
push gain over the PD on the same conditions and seeds, ``student − 1 ≥ (expert − 1) / 2`` in ratios to the PD, at a
temporal sparsity ≥ 0.90 on every condition.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.sign_test import paired_split, sign_test_p
from hil.runlog import read_runlog


def _episode_torques(run: Path, seed: int) -> tuple[float, float, float, float]:
    header, cols = read_runlog(run / "runlogs" / f"seed_{seed}")
    dt = float(header["control_dt"])
    tk, ta = cols["torque_actual_knee"], cols["torque_actual_ankle"]
    rate = lambda x: float(np.abs(np.diff(x)).max() / dt) if len(x) > 1 else 0.0  # noqa: E731
    return float(np.abs(tk).max()), float(np.abs(ta).max()), rate(tk), rate(ta)


def condition(run: Path, seeds: list[int] | None = None) -> dict[str, Any]:
    m = json.loads((run / "metrics.json").read_text())
    eps = [e for e in m["episodes"] if seeds is None or e["seed"] in seeds]
    torques = np.array([_episode_torques(run, e["seed"]) for e in eps])
    sp = [e["sparsity"] for e in eps if e.get("sparsity") is not None]
    pushes = [e["max_push_survived_n"] for e in eps if e.get("max_push_survived_n") is not None]
    return {
        "seeds": [e["seed"] for e in eps],
        "falls": sum(bool(e["fell"]) for e in eps),
        "knee_rmse": [e["knee_rmse_rad"] for e in eps],
        "ankle_rmse": [e["ankle_rmse_rad"] for e in eps],
        "peak_torque_nm": torques[:, :2].max(axis=0).round(1).tolist(),
        "peak_rate_nm_s": torques[:, 2:].max(axis=0).round(0).tolist(),
        "median_push_n": float(np.median(pushes)) if pushes else None,
        "pushes_n": pushes,
        "push_by_seed": {e["seed"]: e.get("max_push_survived_n") for e in eps},  # None: no push trials
        # A delta network's temporal sparsity (mean over the episodes); None for the PD and the RL policy.
        "sparsity": float(np.mean(sp)) if sp else None,
    }


TRACKING_BAR = 1.25  # issue #16: knee and ankle tracking <= 1.25x the PD's (per condition)
PUSH_GAIN_BAR = 1.2  # issue #16's gain: the median largest push survived >= 1.2x the PD's
JOINTS = ("knee", "ankle")
NOT_CONDS = ("all", "bars")  # the keys of main()'s rows that are not conditions
KEEP_BAR = 0.5  # issue #16: the distilled delta-GRU keeps the gain "within half of it"
SPARSITY_BAR = 0.90  # ... at >= 90 % temporal sparsity


def distillation_bar(student_ratio: float | None, expert_ratio: float | None, sparsity: list[float | None]) -> dict:
    """Issue #16's distillation bar from the student's and the expert's median push ratios to the PD (same conditions
    and seeds) and the student's sparsity per condition: ``kept`` is the fraction of the expert's gain the student
    keeps; an expert without a gain (ratio ≤ 1) leaves nothing to keep, which is not a pass."""
    sp = [s for s in sparsity if s is not None]
    kept = None
    if student_ratio is not None and expert_ratio is not None and expert_ratio > 1.0:
        kept = round((student_ratio - 1.0) / (expert_ratio - 1.0), 3)
    sparse = bool(sp) and len(sp) == len(sparsity) and min(sp) >= SPARSITY_BAR
    return {
        "student_ratio": student_ratio,
        "expert_ratio": expert_ratio,
        "kept": kept,
        "sparsity_min": min(sp) if sp else None,
        "ok": kept is not None and kept >= KEEP_BAR and sparse,
    }


def distillation_text(d: dict[str, Any]) -> str:
    """:func:`distillation_bar` as one line."""
    s, e, k, sp = d["student_ratio"], d["expert_ratio"], d["kept"], d["sparsity_min"]
    fmt = lambda r: "no push trials" if r is None else f"{r:.2f}×"  # noqa: E731
    kept = "no gain to keep" if k is None else (f"keeps {k:.0%} of it" if k > 0 else f"keeps none of it ({k:.0%})")
    return (
        f"distillation: median push {fmt(s)} the PD's against the expert's {fmt(e)} — {kept} (≥ {KEEP_BAR:.0%}); "
        f"sparsity ≥ {SPARSITY_BAR} on every condition: "
        f"{'none measured' if sp is None else f'lowest {sp:.3f}'} — {'yes' if d['ok'] else 'NO'}"
    )


def bars(rows: dict[str, Any]) -> dict[str, Any]:
    """Issue #16's bars on :func:`main`'s rows (condition → {"pd", "rl"}, and "all"): what each measured and whether
    it holds. ``within``: every RL bar (falls, tracking, peaks); ``gain``: the push gain."""
    conds = {k: v for k, v in rows.items() if k not in NOT_CONDS}
    if not conds:
        raise ValueError("no condition in common between the two folders: nothing to hold to the bars")
    out: dict[str, Any] = {
        "episodes": sum(len(v["rl"]["seeds"]) for v in conds.values()),
        "falls": sum(v["rl"]["falls"] for v in conds.values()),
    }
    for j in JOINTS:
        ratio, cond = max((v["rl"][f"{j}_ratio_mean"], k) for k, v in conds.items())
        out[f"{j}_tracking"] = {"worst_ratio": ratio, "condition": cond, "ok": ratio <= TRACKING_BAR}
    for key, name in (("peak_torque_nm", "peak_torque"), ("peak_rate_nm_s", "peak_rate")):
        above = [
            f"{k} {j}" for k, v in conds.items() for i, j in enumerate(JOINTS) if v["rl"][key][i] > v["pd"][key][i]
        ]
        out[name] = {"above_pd": above, "of": len(conds) * len(JOINTS), "ok": not above}
    ratio = rows["all"]["ratio"] if "all" in rows else None
    out["median_push"] = {"ratio": ratio, "ok": ratio is not None and ratio >= PUSH_GAIN_BAR}
    out["within"] = (
        out["falls"] == 0
        and all(out[f"{j}_tracking"]["ok"] for j in JOINTS)
        and out["peak_torque"]["ok"]
        and out["peak_rate"]["ok"]
    )
    out["gain"] = out["median_push"]["ok"]
    return out


def bars_text(b: dict[str, Any]) -> str:
    """:func:`bars` as the lines under the table."""
    yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
    k, a = b["knee_tracking"], b["ankle_tracking"]
    lines = [
        f"issue #16's bars: falls {b['falls']} of {b['episodes']} episodes (0) — {yes(b['falls'] == 0)}; "
        f"tracking ≤ {TRACKING_BAR}× the PD's on every condition: knee worst {k['worst_ratio']:.2f}× "
        f"({k['condition']}), ankle worst {a['worst_ratio']:.2f}× ({a['condition']}) — {yes(k['ok'] and a['ok'])}"
    ]
    for name, label in (("peak_torque", "peak |τ|"), ("peak_rate", "peak |dτ/dt|")):
        p = b[name]
        where = f" (above on {', '.join(p['above_pd'])})" if p["above_pd"] else ""
        lines.append(
            f"{label} no higher than the PD's: on {p['of'] - len(p['above_pd'])} of {p['of']} joint-conditions"
            f"{where} — {yes(p['ok'])}"
        )
    r = b["median_push"]["ratio"]
    lines.append(
        f"gain: median largest push survived ≥ {PUSH_GAIN_BAR}× the PD's: "
        f"{'no push trials' if r is None else f'{r:.2f}×'} — {yes(b['gain'])}; "
        f"within every RL bar: {yes(b['within'])}"
    )
    return "\n".join(lines)


def _median_ratio(pd: Path, other: Path, seeds: dict[str, list[int]]) -> float | None:
    """``other``'s median largest push survived over the PD's, on the given conditions and seeds (both must have
    them: the expert is compared on the student's episodes)."""
    ours: list[float] = []
    theirs: list[float] = []
    for cond, s in seeds.items():
        if not (other / cond / "metrics.json").exists():
            sys.exit(f"{other / cond}: the expert has no run of condition {cond}")
        o = condition(other / cond, s)
        if o["seeds"] != s:
            sys.exit(f"{cond}: the expert's run has seeds {o['seeds']}, the student's {s}")
        ours += o["pushes_n"]
        theirs += condition(pd / cond, s)["pushes_n"]
    if not ours or not theirs:
        return None
    return round(float(np.median(ours)) / float(np.median(theirs)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pd", type=Path)
    ap.add_argument("rl", type=Path)
    ap.add_argument("--expert", type=Path, default=None, help="the RL expert's grid: adds the distillation bar")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    for where in (args.pd, args.rl, args.expert):
        if where is not None and not where.is_dir():
            sys.exit(f"{where}: not a folder of `legloop eval` output directories")
    rows = {}
    print("knee / ankle: mean tracking RMSE over the condition's episodes (rad, against the PD's reference), its ratio")
    print("to the PD's mean, and the worst episode's ratio to the PD's on the same seed; peaks over the episodes.")
    print(f"{'condition':<10} {'ctrl':<6} {'falls':>5} {'knee':>6} {'×PD':>5} {'worst':>5} {'ankle':>6} {'×PD':>5} "
          f"{'worst':>5} {'|τ|max k/a N·m':>15} {'|dτ/dt|max k/a N·m/s':>21} {'push N med':>10} "
          f"{'sparsity':>8}")  # fmt: skip
    everyone: dict[str, list[float]] = {"pd": [], "rl": []}
    pairs: list[tuple[float, float]] = []  # (other, PD): the same condition and seed, both with push trials
    for cond in sorted(p.name for p in args.pd.iterdir() if (p / "metrics.json").exists()):
        if not (args.rl / cond / "metrics.json").exists():
            continue
        rl = condition(args.rl / cond)
        pd = condition(args.pd / cond, rl["seeds"])  # a screen on fewer seeds compares with the PD's same seeds
        if pd["seeds"] != rl["seeds"]:
            sys.exit(f"{cond}: the PD run has seeds {pd['seeds']}, the other {rl['seeds']}")
        for name, key, c in (("pd", "pd", pd), (args.rl.name[:6], "rl", rl)):
            kr = max(a / b for a, b in zip(c["knee_rmse"], pd["knee_rmse"], strict=True))
            ar = max(a / b for a, b in zip(c["ankle_rmse"], pd["ankle_rmse"], strict=True))
            km = float(np.mean(c["knee_rmse"]) / np.mean(pd["knee_rmse"]))
            am = float(np.mean(c["ankle_rmse"]) / np.mean(pd["ankle_rmse"]))
            c["knee_ratio_max"], c["ankle_ratio_max"] = round(kr, 3), round(ar, 3)
            c["knee_ratio_mean"], c["ankle_ratio_mean"] = round(km, 3), round(am, 3)
            everyone[key] += c["pushes_n"]
            print(
                f"{cond:<10} {name:<6} {c['falls']:>5} {np.mean(c['knee_rmse']):>6.3f} {km:>5.2f} {kr:>5.2f} "
                f"{np.mean(c['ankle_rmse']):>6.3f} {am:>5.2f} {ar:>5.2f} "
                f"{c['peak_torque_nm'][0]:>7.1f}/{c['peak_torque_nm'][1]:<7.1f} "
                f"{c['peak_rate_nm_s'][0]:>10.0f}/{c['peak_rate_nm_s'][1]:<10.0f} {c['median_push_n'] or 0:>10.0f} "
                f"{'–' if c['sparsity'] is None else format(c['sparsity'], '.3f'):>8}"
            )
        rows[cond] = {"pd": pd, "rl": rl}
        for seed, r in rl["push_by_seed"].items():
            if r is not None and pd["push_by_seed"][seed] is not None:
                pairs.append((r, pd["push_by_seed"][seed]))
    if everyone["pd"] and everyone["rl"]:
        mp, mr = float(np.median(everyone["pd"])), float(np.median(everyone["rl"]))
        print(f"median largest push survived over all {len(everyone['rl'])} episodes: {mr:.0f} N vs the PD's "
              f"{mp:.0f} N ({mr / mp:.2f}×)")  # fmt: skip
        mean_pd, mean_rl = float(np.mean(everyone["pd"])), float(np.mean(everyone["rl"]))
        up, down, _ = paired_split([r for r, _ in pairs], [p for _, p in pairs])
        p_sign = sign_test_p(up, down)
        print(f"mean {mean_rl:.0f} N vs the PD's {mean_pd:.0f} N ({mean_rl / mean_pd:.2f}×); the same episode "
              f"survived a larger push than the PD's in {up}, a smaller in {down}, the same in "
              f"{len(pairs) - up - down} (sign test, two-sided: p = {p_sign:.2g})")  # fmt: skip
        rows["all"] = {
            "median_push_n": {"pd": mp, "rl": mr},
            "ratio": round(mr / mp, 3),
            "mean_push_n": {"pd": round(mean_pd, 1), "rl": round(mean_rl, 1)},
            "mean_ratio": round(mean_rl / mean_pd, 3),
            "paired": {
                "larger": up,
                "smaller": down,
                "same": len(pairs) - up - down,
                "sign_test_p": float(f"{p_sign:.3g}"),  # 3 significant digits: 3e-05 is not 0
            },
        }
    if rows:
        rows["bars"] = bars(rows)
        print(bars_text(rows["bars"]))
    if rows and args.expert is not None:
        rows["bars"]["distillation"] = distillation_bar(
            rows["all"]["ratio"] if "all" in rows else None,
            _median_ratio(args.pd, args.expert, {k: v["rl"]["seeds"] for k, v in rows.items() if k not in NOT_CONDS}),
            [v["rl"]["sparsity"] for k, v in rows.items() if k not in NOT_CONDS],
        )
        print(distillation_text(rows["bars"]["distillation"]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
