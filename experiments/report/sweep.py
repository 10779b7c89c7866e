"""Sweeps in the report: a `legloop sweep` directory → the trade-off points, Pareto fronts, the deadline and falls
against added latency, from ``DIR/sweep.json`` alone (schema ``legloop.sweep/1``, docs/sweep.md).

Nothing is re-run and no task directory is opened: sweep.json already holds every task's parameters and key metrics,
flat and typed, with units. What this module makes of them:

points     one per combination of the parameters the sweep varied (seeds pooled), in the order the sweep lists its
           tasks: tasks done / failed, falls with their denominator (closed-loop episodes = seeds), the means of
           time and distance walked, knee RMSE (and its ratio to the baseline), temporal sparsity and mean latency;
           the worst seed's p99 and maximum latency; deadline misses and steps summed over seeds.
conditions the varied scenario parameters (``group`` "scenario" in sweep.json, and ``seconds``): a Pareto front
           compares controllers under the same conditions, so there is one front per condition.
fronts     per condition, the points no other point beats on all three of: temporal sparsity (higher is better) or
           p99 latency (lower; one front per latency source — the CPU's measured wall time and the EdgeDRNN
           model's modelled time are not compared), tracking (knee RMSE relative to the baseline when every point
           has that ratio, else knee RMSE in rad; lower) and the fraction of episodes that fell (lower). A point
           dominates another when it is at least as good on all three and better on one.
deadline   every point that measured latency: mean, worst p99 and max against its budget (``budget_us``), and the
           share of steps over the budget (misses / steps over all its seeds).
delay      when the sweep varied ``actuation_delay_ms`` (else ``jitter_ms``): per line (the points that differ only
           in that parameter) falls, time and distance walked against the added latency.

:func:`load_sweep` raises :class:`~experiments.report.load.ReportInputError` (one line) for a sweep.json that is not
a readable `legloop sweep` result; :func:`sweep_summary` gives the JSON-ready section of summary.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.report.load import ReportInputError, finite, read_json

SWEEP_FILE = "sweep.json"
SCHEMA = "legloop.sweep/1"
STATUSES = ("done", "failed", "interrupted", "not_run")
# Scenario parameters of sweep.json's schema (its ``group`` says so; these are the fallback for an entry without).
SCENARIO = ("speed", "slope_deg", "randomize", "random_slope", "sensor_noise", "push_n", "actuation_delay_ms",
            "jitter_ms", "link_faults")  # fmt: skip
DELAY_AXES = ("actuation_delay_ms", "jitter_ms")
PATHS = ("checkpoint", "train_config", "replay")
# Short names of parameters in point labels and table headers (the unit comes from sweep.json's schema).
SHORT = {"theta_x": "Θx", "theta_h": "Θh", "actuation_delay_ms": "delay", "jitter_ms": "jitter", "slope_deg": "slope",
         "speed": "speed", "gain_scale": "gains ×", "budget_us": "budget", "clock_mhz": "clock", "push_n": "push",
         "sensor_noise": "noise ×", "train_config": "train config", "feature_set": "features",
         "train.model.hidden_size": "hidden", "train.model.num_layers": "layers"}  # fmt: skip
UNITS = {"_ms": "ms", "_us": "µs", "_deg": "deg", "_n": "N", "_mhz": "MHz", "speed": "m/s", "seconds": "s"}


@dataclass
class SweepRun:
    """One sweep directory: its sweep.json and what is missing from it (notes for the page)."""

    path: Path
    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.doc["tasks"]

    @property
    def baseline(self) -> str:
        return str((self.doc.get("config") or {}).get("baseline") or "")


# ------------------------------------------------------------------------------------------------ reading
def load_sweep(path: Path) -> SweepRun:
    """Read and check ``path/sweep.json``; raises :class:`ReportInputError` naming the file and what is wrong."""
    f = path / SWEEP_FILE
    doc = read_json(f)
    if doc.get("schema") != SCHEMA:
        raise ReportInputError(f"{f}: schema {doc.get('schema')!r}, expected {SCHEMA!r} (a `legloop sweep` result)")
    tasks = doc.get("tasks")
    if not isinstance(tasks, list):
        raise ReportInputError(f"{f}: no 'tasks' list (not a complete `legloop sweep` result)")
    for i, t in enumerate(tasks):
        if not isinstance(t, dict):
            raise ReportInputError(f"{f}: tasks[{i}] is not an object")
        for key, tp in (("id", str), ("kind", str), ("status", str), ("params", dict)):
            if not isinstance(t.get(key), tp):
                raise ReportInputError(f"{f}: tasks[{i}] has no {key!r} {tp.__name__} (see docs/sweep.md)")
        if t["status"] not in STATUSES:
            raise ReportInputError(f"{f}: tasks[{i}] ({t['id']}) has status {t['status']!r}, expected one of "
                                   f"{', '.join(STATUSES)}")  # fmt: skip
        if t.get("metrics") is None:
            t["metrics"] = {}
        if not isinstance(t["metrics"], dict):
            raise ReportInputError(f"{f}: tasks[{i}] ({t['id']}) has 'metrics' that is not an object")
    run = SweepRun(path, doc)
    if not isinstance(doc.get("params"), dict):
        doc["params"] = {}
        run.notes.append("sweep.json has no 'params' schema: parameter units are left out")
    if not isinstance(doc.get("config"), dict):
        doc["config"] = {}
    if doc.get("interrupted"):
        run.notes.append("the last run of the sweep was interrupted: the tasks it did not finish have no metrics "
                         "(counted as not finished in the table)")  # fmt: skip
    return run


# ------------------------------------------------------------------------------------------------ parameters
def unit(run: SweepRun, name: str) -> str:
    u = (run.doc["params"].get(name) or {}).get("unit")
    if isinstance(u, str):
        return u
    return next((v for k, v in UNITS.items() if name.endswith(k)), "")


def short(name: str) -> str:
    """``theta_h`` → ``Θh``, ``actuation_delay_ms`` → ``delay``, ``train.model.hidden_size`` → ``hidden``."""
    if name in SHORT:
        return SHORT[name]
    if name.startswith("train."):
        return name.rsplit(".", 1)[-1].replace("_", " ")
    for suffix in UNITS:
        if suffix.startswith("_") and name.endswith(suffix):
            name = name.removesuffix(suffix)
    return name.replace("_", " ")


def value_text(name: str, v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if name in PATHS and isinstance(v, str) and v != "pd":
        return Path(v).name
    return str(v)


def varied(run: SweepRun) -> list[str]:
    """The parameters the sweep varied (seed excluded): the keys of sweep.json's ``groups`` rows that are parameters,
    else those whose value differs between the evaluation tasks that take the parameter."""
    schema = run.doc["params"]
    groups = run.doc.get("groups")
    if isinstance(groups, list) and groups and isinstance(groups[0], dict) and schema:
        return [k for k in groups[0] if k in schema and k != "seed"]
    evals = [t for t in run.tasks if t["kind"] == "eval"]
    keys: list[str] = []
    for t in evals:
        for k in t["params"]:
            if k != "seed" and k not in keys:
                values = {json.dumps(e["params"].get(k)) for e in evals if e["params"].get(k) is not None}
                if len(values) > 1:
                    keys.append(k)
    return keys


def is_condition(run: SweepRun, name: str) -> bool:
    group = (run.doc["params"].get(name) or {}).get("group")
    return name == "seconds" or (group == "scenario" if group else name in SCENARIO)


# ------------------------------------------------------------------------------------------------ points
def _vals(ms: list[dict[str, Any]], key: str) -> list[float]:
    return [v for v in (finite(m.get(key)) for m in ms) if v is not None]


def _mean(v: list[float]) -> float | None:
    return float(np.mean(v)) if v else None


def _point(members: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """One point: the tasks of one combination of the varied parameters, seeds pooled (see the module docstring)."""
    p0 = members[0]["params"]
    done = [t for t in members if t["status"] == "done"]
    ms = [t["metrics"] for t in done]
    closed = [m for m in ms if isinstance(m.get("fell"), bool)]
    falls = sum(1 for m in closed if m["fell"])
    misses = [int(m["deadline_misses"]) for m in ms if isinstance(m.get("deadline_misses"), int)]
    steps = [int(m["deadline_steps"]) for m in ms if isinstance(m.get("deadline_steps"), int)]
    budgets = sorted({b for b in (finite(t["params"].get("budget_us")) for t in done) if b is not None})
    sources = sorted({str(m["latency_source"]) for m in ms if m.get("latency_source")})
    policies = sorted({str(m["deadline_policy"]) for m in ms if m.get("deadline_policy")})
    p99 = _vals(ms, "latency_p99_us")
    mx = _vals(ms, "latency_max_us")
    return {
        "params": {k: p0.get(k) for k in keys},
        "name": str(p0.get("label") or p0.get("controller") or "?"),
        "controller": p0.get("controller"),
        "replay": p0.get("replay") is not None,
        "tasks": len(members),
        "task_ids": [t["id"] for t in members],
        "done": len(done),
        "failed": sum(1 for t in members if t["status"] == "failed"),
        "not_finished": sum(1 for t in members if t["status"] in ("interrupted", "not_run")),
        "seeds": sorted({t["params"].get("seed") for t in done if isinstance(t["params"].get("seed"), int)}),
        "episodes": len(closed),
        "falls": falls if closed else None,
        "fall_fraction": falls / len(closed) if closed else None,
        "walked_s": _mean(_vals(closed, "walked_s")),
        "distance_m": _mean(_vals(closed, "distance_m")),
        "knee_rmse_rad": _mean(_vals(closed, "knee_rmse_rad")),
        "knee_rmse_ratio": _mean(_vals(closed, "knee_rmse_ratio")),
        "sparsity": _mean(_vals(ms, "sparsity")),
        "macs_per_step": _mean(_vals(ms, "macs_per_step")),
        "latency_mean_us": _mean(_vals(ms, "latency_mean_us")),
        "latency_p99_us": max(p99) if p99 else None,
        "latency_max_us": max(mx) if mx else None,
        "latency_source": "/".join(sources) or None,
        "budget_us": budgets[0] if len(budgets) == 1 else None,
        "deadline_policy": "/".join(policies) or None,
        "deadline_misses": sum(misses) if misses else None,
        "deadline_steps": sum(steps) if steps else None,
        "miss_fraction": sum(misses) / sum(steps) if misses and steps and sum(steps) else None,
        "r2_knee": _mean(_vals(ms, "r2_knee")),
        "r2_ankle": _mean(_vals(ms, "r2_ankle")),
    }


def shown_keys(run: SweepRun, pts: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """The varied parameters that tell points apart in a label: those the points that ran and take them (value not
    null) have more than one value of; the label or controller leads every label, so those two are left out."""
    ran = [p for p in pts if p["done"]] or pts  # a failed task's parameters do not make the others' labels longer
    return [k for k in keys if k not in ("controller", "label")
            and len({json.dumps(p["params"][k]) for p in ran if p["params"][k] is not None}) > 1]  # fmt: skip


def param_text(run: SweepRun, k: str, v: Any) -> str:
    """``Θh 0.25``, ``delay 20 ms``: a parameter's short name, value and unit."""
    u = unit(run, k)
    return f"{short(k)} {value_text(k, v)}{' ' + u if u else ''}"


def label_of(run: SweepRun, p: dict[str, Any], ks: list[str]) -> str:
    """The point's name (its label or controller) and its values of ``ks`` (those it takes)."""
    return " ".join([p["name"], *(param_text(run, k, p["params"][k]) for k in ks if p["params"][k] is not None)])


def points(run: SweepRun, keys: list[str]) -> list[dict[str, Any]]:
    """The evaluation tasks grouped by the varied parameters ``keys`` (seeds pooled), ids P1, P2, … in the order the
    sweep lists its tasks; each point labelled with its name and the varied parameters that tell it apart
    (``label``), without the scenario ones (``design_label``, ``condition_label``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in run.tasks:
        if t["kind"] == "eval":
            groups.setdefault(json.dumps([t["params"].get(k) for k in keys], sort_keys=True), []).append(t)
    pts = [_point(members, keys) | {"id": f"P{i + 1}"} for i, members in enumerate(groups.values())]
    shown = shown_keys(run, pts, keys)
    cond = [k for k in shown if is_condition(run, k)]
    for p in pts:
        p["label"] = label_of(run, p, shown)
        p["design_label"] = label_of(run, p, [k for k in shown if k not in cond])
        p["condition"] = {k: p["params"][k] for k in keys if is_condition(run, k)}
        p["condition_label"] = ", ".join(param_text(run, k, p["params"][k]) for k in cond)
    return pts


# ------------------------------------------------------------------------------------------------ fronts
def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """``a`` at least as good as ``b`` everywhere and better somewhere (every objective minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated(objectives: dict[str, tuple[float, ...]]) -> list[str]:
    """The keys whose objective vectors no other one dominates, in the given order."""
    return [k for k, v in objectives.items() if not any(dominates(w, v) for j, w in objectives.items() if j != k)]


def tracking(pts: list[dict[str, Any]]) -> dict[str, str]:
    """The tracking measure of the y axes: the ratio to the baseline when every closed-loop point has it."""
    closed = [p for p in pts if p["episodes"] and p["knee_rmse_rad"] is not None]
    if closed and all(p["knee_rmse_ratio"] is not None for p in closed):
        return {"key": "knee_rmse_ratio", "axis": "knee RMSE / the baseline's (same scenario and seed), ratio"}
    return {"key": "knee_rmse_rad", "axis": "knee RMSE, rad"}


PANELS = {
    # panel → (x key, sign: +1 lower is better, -1 higher is better, axis label)
    "sparsity": ("sparsity", -1.0, "temporal sparsity, fraction of zero deltas (higher: fewer MACs)"),
    "latency": ("latency_p99_us", 1.0, "inference latency per step, µs (marker: worst seed's p99; bar from the mean)"),
}


def fronts(pts: list[dict[str, Any]], y_key: str) -> dict[str, list[dict[str, Any]]]:
    """Per panel, the fronts: one per condition (and, for latency, per latency source), each with its candidates
    (points with the panel's x, the tracking y and closed-loop episodes) and its non-dominated point ids, sorted
    along x."""
    out: dict[str, list[dict[str, Any]]] = {}
    for panel, (x_key, sign, _) in PANELS.items():
        cands = [p for p in pts if p["episodes"] and p[x_key] is not None and p[y_key] is not None]
        if not cands:
            continue
        by: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for p in cands:
            source = (p["latency_source"] or "?") if panel == "latency" else ""
            by.setdefault((p["condition_label"], source), []).append(p)
        out[panel] = []
        for (cond, source), members in by.items():
            objs: dict[str, tuple[float, ...]] = {
                p["id"]: (sign * p[x_key], p[y_key], p["fall_fraction"]) for p in members
            }
            ids = non_dominated(objs)
            ids.sort(key=lambda i: next(p[x_key] for p in members if p["id"] == i))
            out[panel].append({"condition": cond, "latency_source": source or None,
                               "candidates": [p["id"] for p in members], "pareto": ids})  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------ delay
def delay_lines(run: SweepRun, pts: list[dict[str, Any]], keys: list[str]) -> dict[str, Any] | None:
    """Falls, time and distance walked against the varied added latency, one line per everything else."""
    axis = next((k for k in DELAY_AXES if k in keys), None)
    if axis is None:
        return None
    shown = [k for k in shown_keys(run, pts, keys) if k != axis]
    rest = [k for k in keys if k != axis]
    lines: dict[str, dict[str, Any]] = {}
    for p in pts:
        if not p["episodes"] or p["params"][axis] is None:
            continue
        key = json.dumps([p["params"][k] for k in rest])
        lines.setdefault(key, {"label": label_of(run, p, shown), "points": []})["points"].append(p)
    out = []
    for line in lines.values():
        ps = sorted(line["points"], key=lambda p: p["params"][axis])
        out.append({
            "label": line["label"],
            "point_ids": [p["id"] for p in ps],
            "x": [p["params"][axis] for p in ps],
            "falls": [p["falls"] for p in ps],
            "episodes": [p["episodes"] for p in ps],
            "fall_fraction": [p["fall_fraction"] for p in ps],
            "walked_s": [p["walked_s"] for p in ps],
            "distance_m": [p["distance_m"] for p in ps],
        })  # fmt: skip
    name = "actuation delay" if axis == "actuation_delay_ms" else "actuation jitter"
    return {"axis": axis, "unit": unit(run, axis), "name": name, "lines": out}


# ------------------------------------------------------------------------------------------------ the section
def _fmt_list(items: list[str], most: int = 4) -> str:
    if len(items) <= most:
        return ", ".join(items)
    return ", ".join(items[:most]) + f" and {len(items) - most} more"


def headline(s: dict[str, Any]) -> str:
    """The sweep in a few sentences: tasks, the fronts, the deadline and falls against added latency."""
    c = s["counts"]
    out = [f"Sweep {s['name']}: {c['done']}/{c['tasks']} tasks done"]
    if c["failed"]:
        out[-1] += f", {c['failed']} failed ({_fmt_list([f['id'] for f in s['failed_tasks']], 2)})"
    if c["interrupted"] or c["not_run"]:
        out[-1] += f", {c['interrupted']} interrupted, {c['not_run']} not run"
    out[-1] += "."
    by_id = {p["id"]: p for p in s["points"]}
    y = "knee RMSE ×" + (s["baseline"] or "baseline") if s["tracking"]["key"] == "knee_rmse_ratio" else "knee RMSE"
    for panel, what in (("sparsity", "temporal sparsity"), ("latency", "p99 latency")):
        parts = []
        for fr in s["fronts"].get(panel, []):
            where = ", ".join(x for x in (fr["condition"], fr["latency_source"]) if x)
            names = _fmt_list([by_id[i]["design_label"] for i in fr["pareto"]])
            parts.append(f"{where}: {names}" if where else names)
        if parts:
            out.append(f"Non-dominated in {what}, {y} and falls: {'; '.join(parts)}.")
    timed = [p for p in s["points"] if p["latency_p99_us"] is not None and p["budget_us"] is not None]
    if timed:
        within = [p for p in timed if p["latency_p99_us"] <= p["budget_us"]]
        worst = max(timed, key=lambda p: p["miss_fraction"] or 0.0)
        budgets = "/".join(f"{b:g}" for b in sorted({p["budget_us"] for p in timed}))
        txt = f"p99 latency within its budget ({budgets} µs) for {len(within)} of {len(timed)} points"
        if worst["miss_fraction"]:
            txt += f"; most steps over budget: {100 * worst['miss_fraction']:.1f} % ({worst['label']})"
        out.append(txt + ".")
    delay = s["delay"]
    if delay is not None:
        parts = []
        for line in delay["lines"]:
            fell = [(x, f, n) for x, f, n in zip(line["x"], line["falls"], line["episodes"], strict=True) if f]
            if fell:
                x, f, n = fell[0]
                parts.append(f"{line['label']} first fell at {x:g} {delay['unit']} ({f}/{n} seeds)")
            else:
                parts.append(f"{line['label']} did not fall up to {max(line['x']):g} {delay['unit']}")
        out.append(f"Added {delay['name']}: {_fmt_list(parts, 6)}.")
    return " ".join(out)


DEADLINE_KEYS = ("id", "label", "latency_mean_us", "latency_p99_us", "latency_max_us", "budget_us", "deadline_misses",
                 "deadline_steps", "miss_fraction", "latency_source", "deadline_policy")  # fmt: skip


def sweep_summary(run: SweepRun, index: int = 0) -> dict[str, Any]:
    """The sweep's section of summary.json (the page and summary.md show the same numbers)."""
    doc = run.doc
    keys = varied(run)
    pts = points(run, keys)
    track = tracking(pts)
    statuses = [t["status"] for t in run.tasks]
    counts = {"tasks": len(run.tasks), **{s: statuses.count(s) for s in STATUSES}}
    counts["eval"] = sum(1 for t in run.tasks if t["kind"] == "eval")
    counts["train"] = counts["tasks"] - counts["eval"]
    cfg = doc["config"]
    trains = [
        {"id": t["id"], "status": t["status"], **{k: t["metrics"].get(k) for k in ("train_s", "val_r2_knee",
         "val_r2_ankle", "val_sparsity", "hidden_size", "num_layers")}}
        for t in run.tasks if t["kind"] == "train"
    ]  # fmt: skip
    failed = [{"id": t["id"], "error": t.get("error") or "no error recorded"}
              for t in run.tasks if t["status"] == "failed"]  # fmt: skip
    out: dict[str, Any] = {
        "index": index,
        "path": str(run.path),
        "name": run.path.name,
        "description": cfg.get("description") or "",
        "config_path": cfg.get("path"),
        "overrides": cfg.get("overrides") or {},
        "baseline": run.baseline,
        "executor": doc.get("executor"),
        "started": doc.get("started"),
        "wall_s": doc.get("wall_s"),
        "interrupted": bool(doc.get("interrupted")),
        "counts": counts,
        "varied": [{"key": k, "name": short(k), "unit": unit(run, k), "condition": is_condition(run, k)} for k in keys],
        "tracking": track,
        "points": pts,
        "fronts": fronts(pts, track["key"]),
        "deadline": [{k: p[k] for k in DEADLINE_KEYS} for p in pts if p["latency_p99_us"] is not None],
        "delay": delay_lines(run, pts, keys),
        "failed_tasks": failed,
        "training_tasks": trains,
        "notes": list(run.notes),
        "provenance": doc.get("provenance"),
    }
    if out["delay"] is None:
        evals = [t["params"] for t in run.tasks if t["kind"] == "eval"]
        lat = {(finite(q.get("actuation_delay_ms")) or 0.0, finite(q.get("jitter_ms")) or 0.0) for q in evals}
        if len(lat) == 1:
            d, j = lat.pop()
            out["fixed_latency"] = f"{d:g} ms actuation delay and {j:g} ms jitter"
    for panel, frs in out["fronts"].items():
        for fr in frs:
            for p in pts:
                if p["id"] in fr["pareto"]:
                    p.setdefault("pareto", []).append(panel)
    for p in pts:
        p.setdefault("pareto", [])
    out["headline"] = headline(out)
    return out
