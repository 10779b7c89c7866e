"""Aggregation: one row per controller from the episodes its run recorded, ratios to the PD, and the verdict.

Every number comes from a run's files as written — nothing is recomputed from the simulation. Across the seeds of a
run a metric is summarised by a stated rule (the ``rule`` of its :class:`Metric`): mean for typical values (distance,
RMSE, CV, sparsity), the worst episode for bounds (largest Floquet multiplier, smallest margin of stability, smallest
push survived, the highest latency percentiles), sums for counts (falls, deadline misses and what the policy did).
The page, ``summary.json`` and ``summary.md`` all show these values; ``summary.json`` also keeps every episode's
recorded metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.report.load import ControllerRun, ReportInput, finite

ENFORCED = ("hold", "fallback_pd", "stop")  # deadline policies that act on a late step


@dataclass(frozen=True)
class Metric:
    """A column of the comparison table: key in a row, header, unit, number format and how seeds combine."""

    key: str
    header: str
    unit: str
    fmt: str | Callable[[Any], str]
    rule: str
    ratio: bool = False  # show the ratio to the PD's value beside it


def _pct(x: Any) -> str:
    return f"{100.0 * x:.1f} %"


def _kilo(x: Any) -> str:
    return f"{x / 1000:.1f} k" if abs(x) >= 1000 else f"{x:.0f}"


# The comparison table, in column order (the HTML page groups them under headings).
METRICS: tuple[Metric, ...] = (
    Metric("falls", "falls", "episodes", "", "fell / episodes"),
    Metric("first_fall_s", "first fall", "s", ".1f", "earliest fall"),
    Metric("distance_m", "distance", "m", ".1f", "mean", ratio=True),
    Metric("strides", "strides", "count", "d", "sum over episodes"),
    Metric("floquet_max", "Floquet max", "|λ|", ".2f", "largest episode value"),
    Metric("mos_min_m", "MoS min", "m", ".3f", "smallest episode value"),
    Metric("stride_time_cv", "stride-time CV", "%", _pct, "mean", ratio=True),
    Metric("step_time_asymmetry", "step asymmetry", "SI", ".3f", "mean"),
    Metric("knee_rmse_rad", "knee RMSE", "rad", ".3f", "mean", ratio=True),
    Metric("ankle_rmse_rad", "ankle RMSE", "rad", ".3f", "mean", ratio=True),
    Metric("r2", "R²", "knee / ankle", "", "replay"),
    Metric("nrmse", "NRMSE", "% knee / ankle", "", "replay"),
    Metric("sparsity", "sparsity", "%", _pct, "mean"),
    Metric("macs_per_step", "MACs/step", "MAC", _kilo, "mean"),
    Metric("max_push_survived_n", "push survived", "N", ".0f", "smallest episode value", ratio=True),
    Metric("deadline", "over budget", "steps", "", "sum: misses / steps"),
    Metric("policy_actions", "policy actions", "held/fallback/stopped/lost", "", "sums"),
    Metric("latency_p50_us", "p50", "µs", ".1f", "largest episode value"),
    Metric("latency_p99_us", "p99", "µs", ".1f", "largest episode value"),
    Metric("latency_p99_9_us", "p99.9", "µs", ".1f", "largest episode value"),
    Metric("latency_max_us", "max", "µs", ".1f", "largest episode value"),
    Metric("budget_us", "budget", "µs", ".1f", "as configured"),
    Metric("latency_source", "latency", "", "", "measured or modelled"),
)


def fmt_value(value: Any, spec: str | Callable[[Any], str]) -> str:
    """One cell: None → ``–``; numbers by ``spec``; text as is."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if callable(spec):
        return spec(value)
    if isinstance(value, (int, float)) and spec:
        return format(value, spec)
    return str(value)


def _vals(episodes: list[dict[str, Any]], key: str) -> list[float]:
    return [v for v in (finite(e.get(key)) for e in episodes) if v is not None]


def _lat(episodes: list[dict[str, Any]], key: str) -> list[float]:
    return [v for v in (finite((e.get("latency_us") or {}).get(key)) for e in episodes) if v is not None]


def _mean(v: list[float]) -> float | None:
    return float(np.mean(v)) if v else None


def _ints(episodes: list[dict[str, Any]], key: str) -> int | None:
    vals: list[int] = [int(v) for v in (e.get(key) for e in episodes) if isinstance(v, (int, bool))]
    return sum(vals) if vals else None


def link_summary(episodes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A board's link statistics summed over episodes (counters) or worst over them (round-trip percentiles)."""
    links = [e["link"] for e in episodes if isinstance(e.get("link"), dict)]
    if not links:
        return None
    out: dict[str, Any] = {}
    for link in links:
        for k, v in link.items():
            if isinstance(v, bool):
                out[k] = bool(out.get(k, False)) or v
            elif isinstance(v, int):
                out[k] = int(out.get(k, 0)) + v
            elif isinstance(v, float):
                out[k] = max(float(out.get(k, v)), v)
            elif isinstance(v, dict):
                sub = out.setdefault(k, {})
                for kk, vv in v.items():
                    if isinstance(vv, bool) or not isinstance(vv, (int, float)):
                        sub.setdefault(kk, vv)
                    elif isinstance(vv, int) and k != "round_trip_us":
                        sub[kk] = int(sub.get(kk, 0)) + vv
                    else:
                        sub[kk] = max(float(sub.get(kk, vv)), float(vv))
    return out


def controller_row(run: ControllerRun) -> dict[str, Any]:
    """The table row of one controller run (see the module docstring for how seeds combine)."""
    eps = run.episodes
    n = len(eps)
    falls = sum(bool(e.get("fell")) for e in eps)
    fall_times = [t for t in (finite(e.get("time_to_fall_s")) for e in eps if e.get("fell")) if t is not None]
    fq = _vals(eps, "floquet_max")
    mos = _vals(eps, "mos_min_m")
    push = _vals(eps, "max_push_survived_n")
    strides = _vals(eps, "strides")
    row: dict[str, Any] = {
        "label": run.label,
        "controller": run.name,
        "episodes": n,
        "fell": falls,
        "falls": f"{falls}/{n}",
        "first_fall_s": min(fall_times) if fall_times else None,
        "distance_m": _mean(_vals(eps, "distance_m")),
        "seconds": finite((run.metrics.get("config") or {}).get("seconds")),
        "strides": int(sum(strides)) if strides else None,
        "floquet_max": max(fq) if fq else None,
        "floquet_estimates": len(fq),
        "gait_period_strides": max(_vals(eps, "gait_period_strides"), default=None),
        "mos_min_m": min(mos) if mos else None,
        "stride_time_cv": _mean(_vals(eps, "stride_time_cv")),
        "step_time_asymmetry": _mean(_vals(eps, "step_time_asymmetry")),
        "knee_rmse_rad": _mean(_vals(eps, "knee_rmse_rad")),
        "ankle_rmse_rad": _mean(_vals(eps, "ankle_rmse_rad")),
        "prosthesis_peak_load_bw": _mean(_vals(eps, "prosthesis_peak_load_bw")),
        "max_push_survived_n": min(push) if push else None,
        "sparsity": _mean(_vals(eps, "sparsity")),
        "macs_per_step": _mean(_vals(eps, "macs_per_step")),
        "dense_macs_per_step": _mean(_vals(eps, "dense_macs_per_step")),
        "nonfinite_obs": _ints(eps, "nonfinite_obs"),
        "nonfinite_torque": _ints(eps, "nonfinite_torque"),
        "ended": dict(Counter(str(e.get("ended")) for e in eps)),
    }
    if run.replay is not None:
        joints = run.replay.get("joints") or {}
        for j in ("knee", "ankle"):
            jm = joints.get(j) or {}
            row[f"r2_{j}"] = finite(jm.get("r2"))
            row[f"nrmse_{j}"] = finite(jm.get("nrmse"))
            row[f"rmse_nm_{j}"] = finite(jm.get("rmse_nm"))
        row["replay_rows"] = run.replay.get("rows")
        row["r2"] = f"{fmt_value(row['r2_knee'], '.3f')} / {fmt_value(row['r2_ankle'], '.3f')}"
        row["nrmse"] = " / ".join(fmt_value(row[f"nrmse_{j}"], lambda x: f"{100 * x:.1f}") for j in ("knee", "ankle"))
    if any(isinstance(e.get("latency_us"), dict) for e in eps):
        misses, steps = _ints(eps, "deadline_misses"), _ints(eps, "deadline_steps")
        row |= {
            "latency_mean_us": _mean(_lat(eps, "mean")),
            "latency_p50_us": max(_lat(eps, "p50"), default=None),
            "latency_p99_us": max(_lat(eps, "p99"), default=None),
            "latency_p99_9_us": max(_lat(eps, "p99_9"), default=None),
            "latency_max_us": max(_lat(eps, "max"), default=None),
            "latency_source": next((str(e["latency_source"]) for e in eps if e.get("latency_source")), None),
            "budget_us": finite(next((e.get("budget_us") for e in eps if e.get("budget_us") is not None), None)),
            "deadline_policy": next((e.get("deadline_policy") for e in eps if e.get("deadline_policy")), None),
            "deadline_misses": misses,
            "deadline_steps": steps,
            "miss_rate": (misses / steps) if misses is not None and steps else None,
            "deadline_held": _ints(eps, "deadline_held"),
            "deadline_fallbacks": _ints(eps, "deadline_fallbacks"),
            "deadline_stopped": _ints(eps, "deadline_stopped"),
            "lost_steps": _ints(eps, "lost_steps"),
            "governor_actions": _ints(eps, "governor_actions"),
        }
        if misses is not None and steps is not None:
            rate = f" ({100.0 * misses / steps:.1f} %)" if steps else ""
            row["deadline"] = f"{misses}/{steps}{rate}"
        acts = [row.get(k) for k in ("deadline_held", "deadline_fallbacks", "deadline_stopped", "lost_steps")]
        row["policy_actions"] = "/".join("–" if a is None else str(a) for a in acts) + (
            f" ({row['deadline_policy']})" if row.get("deadline_policy") else ""
        )
        if row.get("governor_actions"):
            row["policy_actions"] += f", governor {row['governor_actions']}"
    link = link_summary(eps)
    if link is not None:
        row["link"] = link
    realtime = [e["realtime"] for e in eps if isinstance(e.get("realtime"), dict)]
    if realtime:
        row["realtime_periods_missed"] = int(sum(int(r.get("periods_missed", 0)) for r in realtime))
        row["realtime_lateness_p99_us"] = max(
            (v for v in (finite((r.get("lateness_us") or {}).get("p99")) for r in realtime) if v is not None),
            default=None,
        )
    return row


def ratios(row: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, float | None]:
    """Ratios of a row's ``ratio`` metrics to the reference (PD) row's."""
    if ref is None:
        return {}
    out: dict[str, float | None] = {}
    for m in METRICS:
        if not m.ratio:
            continue
        a, b = finite(row.get(m.key)), finite(ref.get(m.key))
        out[m.key] = a / b if a is not None and b not in (None, 0.0) else None
    return out


def reference(runs: list[ControllerRun]) -> ControllerRun | None:
    """The PD run the others are compared with (the first full-gain PD with episodes)."""
    return next((r for r in runs if r.is_pd and r.episodes), None)


# ------------------------------------------------------------------------------------------------ verdict
def _episodes(n: int) -> str:
    return f"{n} episode" + ("" if n == 1 else "s")


def verdict(row: dict[str, Any], ratio: dict[str, float | None], is_ref: bool) -> dict[str, Any]:
    """Stable or not, deadline met or not and how often, sparsity, compared with the PD — in words and flags."""
    n, falls = row["episodes"], row["fell"]
    parts: list[str] = []
    secs = f" of {row['seconds']:g} s" if row.get("seconds") else ""
    if n == 0:
        return {"stable": None, "deadline_met": None, "enforced": None, "text": "no episodes: nothing to judge"}
    if falls:
        first = f" (first at {row['first_fall_s']:.1f} s)" if row.get("first_fall_s") is not None else ""
        parts.append(f"fell in {falls} of {_episodes(n)}{secs}{first}")
    else:
        parts.append(f"walked {'its' if n == 1 else 'all'} {_episodes(n)}{secs} without a fall")
    fq = row.get("floquet_max")
    if fq is not None:
        per = " (2-stride map)" if row.get("gait_period_strides") == 2 else ""
        parts.append(
            f"max Floquet multiplier {fq:.2f}{per}: " + ("< 1, orbitally stable" if fq < 1 else "≥ 1, not stable")
        )
    elif falls == 0:
        parts.append("no Floquet estimate (< 30 strides per episode)")
    stable = falls == 0 and (fq is None or fq < 1.0)
    deadline_met = enforced = None
    if row.get("deadline_steps"):
        misses, steps, budget = row["deadline_misses"], row["deadline_steps"], row.get("budget_us")
        src = row.get("latency_source") or "?"
        policy = row.get("deadline_policy")
        deadline_met = misses == 0
        # 'period' and 'none' make the budget a reported target: a miss there is not a missed deadline of the loop.
        enforced = policy in ENFORCED
        if misses == 0:
            parts.append(f"{budget:g} µs budget met on all {steps} steps ({src})")
        else:
            how = {
                "hold": "late steps held the last torque",
                "fallback_pd": "late steps got the PD's torque",
                "stop": "the first late step stopped the motors",
                "period": "a target only: results within the control period were applied",
                "none": "reported only, not enforced",
            }.get(str(policy), f"policy {policy}")
            parts.append(
                f"{budget:g} µs budget missed on {misses}/{steps} steps ({100.0 * misses / steps:.1f} %, {src}; "
                f"{how}); p99 {row['latency_p99_us']:.1f} µs"
            )
    if row.get("sparsity") is not None:
        s = f"temporal sparsity {100 * row['sparsity']:.1f} %"
        macs, dense = row.get("macs_per_step"), row.get("dense_macs_per_step")
        if macs and dense:
            s += f" ({macs / 1000:.1f} k of {dense / 1000:.1f} k MACs per step, {dense / macs:.1f}× fewer)"
        parts.append(s)
    if not is_ref:
        cmp = []
        for key, what in (("knee_rmse_rad", "knee RMSE"), ("distance_m", "distance")):
            r = ratio.get(key)
            if r is not None:
                cmp.append(f"{what} {r:.2f}×")
        if cmp:
            parts.append(", ".join(cmp) + " the PD's")
        if row.get("r2_knee") is not None and row.get("r2_ankle") is not None:
            parts.append(f"torque imitation R² {row['r2_knee']:.3f} / {row['r2_ankle']:.3f} (knee / ankle)")
    return {"stable": stable, "deadline_met": deadline_met, "enforced": enforced, "text": "; ".join(parts) + "."}


def headline(rows: list[dict[str, Any]], verdicts: dict[str, dict[str, Any]]) -> str:
    """One paragraph over all controllers: who walked, who met the deadline and how often not, sparsity."""
    judged = [r for r in rows if r["episodes"]]
    if not judged:
        return (
            "No closed-loop episodes among the runs given (training or replay only): no stability or deadline verdict."
        )
    stable = [r["label"] for r in judged if verdicts[r["label"]]["stable"]]
    unstable = [r for r in judged if not verdicts[r["label"]]["stable"]]
    out = []
    if not unstable and len(judged) == 1:
        out.append(f"Stable: {judged[0]['label']} walked every episode without a fall.")
    elif not unstable:
        out.append(f"Stable: all {len(judged)} controllers walked every episode without a fall.")
    else:
        why = [f"{r['label']} fell in {r['falls']}" if r["fell"] else f"{r['label']} has Floquet ≥ 1" for r in unstable]
        out.append(f"Stable: {', '.join(stable) or 'none'}; {', '.join(why)}.")
    fq = [r for r in judged if r.get("floquet_max") is not None]
    if fq:
        low = all(r["floquet_max"] < 1.0 for r in fq)
        out.append(
            "Largest Floquet multiplier "
            + ", ".join(f"{r['label']} {r['floquet_max']:.2f}" for r in fq)
            + (" (< 1: deviations shrink stride to stride)." if low else ".")
        )
    else:
        out.append("(Episodes under 30 strides: no Floquet estimate, falls are the stability evidence.)")
    timed = [r for r in judged if r.get("deadline_steps")]
    if timed:
        budgets = sorted({float(r["budget_us"]) for r in timed if r.get("budget_us") is not None})
        b = "/".join(f"{x:g}" for x in budgets) + " µs" if budgets else "the"

        def shares(rs: list[dict[str, Any]]) -> str:
            """'79.4 % of steps by a, 1.1 % by b'."""
            items = [f"{100.0 * r['miss_rate']:.1f} %" + (" of steps" if i == 0 else "") + f" by {r['label']}"
                     for i, r in enumerate(rs)]  # fmt: skip
            return ", ".join(items)

        enforced = [r for r in timed if verdicts[r["label"]].get("enforced")]
        target = [r for r in timed if not verdicts[r["label"]].get("enforced")]
        if enforced:
            met = [r["label"] for r in enforced if not r["deadline_misses"]]
            missed = [r for r in enforced if r["deadline_misses"]]
            parts = ([f"met on every step by {', '.join(met)}"] if met else []) + (
                [f"missed on {shares(missed)}"] if missed else []
            )
            out.append(f"{b} deadline: {'; '.join(parts)}.")
        if target:
            over = [r for r in target if r["deadline_misses"]]
            within = [r["label"] for r in target if not r["deadline_misses"]]
            parts = ([f"exceeded on {shares(over)}"] if over else []) + (
                [f"never exceeded by {', '.join(within)}"] if within else []
            )
            out.append(f"{b} budget as a reported target: {'; '.join(parts)}.")
    sparse = [r for r in judged if r.get("sparsity") is not None]
    if sparse:
        out.append("Temporal sparsity " + ", ".join(f"{r['label']} {100 * r['sparsity']:.1f} %" for r in sparse) + ".")
    return " ".join(out)


def build_summary(inp: ReportInput) -> dict[str, Any]:
    """Rows, ratios to the PD, verdicts, per-episode records and training summaries, JSON-ready."""
    ref_run = reference(inp.controllers)
    rows = [controller_row(r) for r in inp.controllers]
    ref_row = rows[inp.controllers.index(ref_run)] if ref_run is not None else None
    controllers = []
    verdicts: dict[str, dict[str, Any]] = {}
    for run, row in zip(inp.controllers, rows, strict=True):
        is_ref = run is ref_run
        rat = {} if is_ref else ratios(row, ref_row)
        v = verdict(row, rat, is_ref)
        verdicts[run.label] = v
        meta = run.checkpoint_meta or {}
        cfg = run.metrics.get("config") or {}
        controllers.append(
            {
                "label": run.label,
                "path": str(run.path),
                "reference": is_ref,
                "row": row,
                "ratios_to_pd": rat,
                "verdict": v,
                "notes": run.notes,
                "config": cfg,
                "provenance": run.metrics.get("provenance"),
                "checkpoint": {
                    "path": cfg.get("checkpoint"),
                    "weights_sha256": meta.get("weights_sha256"),
                    "model": meta.get("model"),
                    "stage": (meta.get("training") or {}).get("stage"),
                }
                if run.learned
                else None,
                "replay": {k: v for k, v in (run.replay or {}).items() if k != "latency_histogram"} or None,
                "replay_path": str(run.replay_path) if run.replay_path else None,
                "episodes": run.episodes,
                "run_logs": {str(s): str(log.path) for s, log in run.runlogs.items()},
            }
        )
    trainings = []
    for t in inp.trainings:
        trainings.append(
            {
                "path": str(t.path),
                "seconds": t.train.get("seconds"),
                "feature_set": t.train.get("feature_set"),
                "stages": [s.summary for s in t.stages],
                "data": {k: v for k, v in (t.train.get("data") or {}).items() if not isinstance(v, list)},
                "provenance": t.train.get("provenance"),
                "weights_sha256": {k: v.get("weights_sha256") for k, v in t.checkpoints.items()},
                "config": (t.config or {}).get("config"),
                "sources": (t.config or {}).get("sources"),
                "notes": t.notes,
            }
        )
    return {
        "format": "legloop-report/1",
        "reference": ref_run.label if ref_run is not None else None,
        "headline": headline(rows, verdicts),
        "columns": [
            {"key": m.key, "header": m.header, "unit": m.unit, "rule": m.rule, "ratio_to_pd": m.ratio} for m in METRICS
        ],
        "controllers": controllers,
        "trainings": trainings,
        "replays": [{"path": str(r.path), "metrics": r.metrics} for r in inp.replays],
        "sources": [str(p) for p in inp.sources],
    }


def markdown(summary: dict[str, Any]) -> str:
    """A short table for a lab notebook or a pull request."""
    cols = (
        ("falls", "falls", ""),
        ("distance_m", "dist m", ".1f"),
        ("floquet_max", "Floquet", ".2f"),
        ("knee_rmse_rad", "knee RMSE rad", ".3f"),
        ("r2_knee", "R² knee", ".3f"),
        ("r2_ankle", "R² ankle", ".3f"),
        ("sparsity", "sparsity %", lambda x: f"{100 * x:.1f}"),
        ("macs_per_step", "MACs/step", lambda x: f"{x:,.0f}"),
        ("latency_p99_us", "p99 µs", ".1f"),
        ("deadline", "over budget", ""),
    )
    lines = [
        "| controller | " + " | ".join(h for _, h, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for c in summary["controllers"]:
        row, rat = c["row"], c["ratios_to_pd"]
        cells = []
        for key, _, spec in cols:
            cell = fmt_value(row.get(key), spec)
            if key == "knee_rmse_rad" and rat.get(key) is not None:
                cell += f" ({rat[key]:.2f}×)"
            cells.append(cell)
        name = c["label"] + (" (ref)" if c["reference"] else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out = ["# legloop report", "", summary["headline"], "", *lines, ""]
    for c in summary["controllers"]:
        out.append(f"- **{c['label']}**: {c['verdict']['text']}")
    out.append("")
    out.append(
        "Seeds combine as: means for distance, RMSE, CV and sparsity; the worst episode for Floquet, MoS, push and "
        "latency percentiles; sums for falls and deadline misses. R²: open-loop torque replay of a held-out PD walk."
    )
    return "\n".join(out) + "\n"
