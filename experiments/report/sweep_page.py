"""The sweep's section of the page and of summary.md: what ran, the headline, the table of points (one row per
combination of the varied parameters, seeds pooled, units in the headers and denominators in the cells), the failed
tasks by name, the training tasks, and the three sweep figures (or the note saying why one is not drawn)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from experiments.report.figures import FigureOut
from experiments.report.html import esc, figure_html
from experiments.report.summary import fmt_value
from experiments.report.sweep import SweepRun, sweep_summary, value_text
from experiments.report.sweep_figures import sweep_figures


@dataclass(frozen=True)
class Col:
    """A column of the sweep table: header, unit line, and the cell of a point (None: no value)."""

    key: str
    header: str
    unit: str
    cell: Callable[[dict[str, Any]], str | None]


def _num(key: str, spec: str, scale: float = 1.0) -> Callable[[dict[str, Any]], str | None]:
    return lambda p: None if p.get(key) is None else format(p[key] * scale, spec)


def _count(n: int | None, total: int | None, what: str) -> str | None:
    return None if n is None or total is None else f"{n}/{total} {what}"


def _tasks(p: dict[str, Any]) -> str:
    text = f"{p['done']}/{p['tasks']}"
    if p["failed"]:
        text += f", {p['failed']} failed"
    if p["not_finished"]:
        text += f", {p['not_finished']} not finished"
    return text


def _over(p: dict[str, Any]) -> str | None:
    m, n = p.get("deadline_misses"), p.get("deadline_steps")
    if m is None or not n:
        return None
    return f"{m}/{n} ({100.0 * m / n:.1f} %)"


def _param_cell(key: str) -> Callable[[dict[str, Any]], str | None]:
    return lambda p: value_text(key, p["params"].get(key))


def columns(s: dict[str, Any]) -> list[Col]:
    """The table's columns: the point, the varied parameters, then every metric some point has a value for."""
    cols = [Col("id", "point", "", lambda p: p["id"])]
    for v in s["varied"]:
        key = v["key"]
        cols.append(Col(key, v["name"], v["unit"], _param_cell(key)))
    base = s["baseline"] or "baseline"
    metrics = [
        Col("tasks", "tasks", "done / in the row", _tasks),
        Col("falls", "falls", "seeds that fell", lambda p: _count(p["falls"], p["episodes"], "seeds")),
        Col("walked_s", "time walked", "s, mean", _num("walked_s", ".2f")),
        Col("distance_m", "distance", "m, mean", _num("distance_m", ".2f")),
        Col("knee_rmse_rad", "knee RMSE", "rad, mean", _num("knee_rmse_rad", ".3f")),
        Col("knee_rmse_ratio", f"knee RMSE ×{base}", f"/ the {base}'s, mean", _num("knee_rmse_ratio", ".2f")),
        Col("sparsity", "sparsity", "%, mean", _num("sparsity", ".1f", 100.0)),
        Col("macs_per_step", "MACs/step", "MAC, mean", _num("macs_per_step", ",.0f")),
        Col("latency_mean_us", "latency mean", "µs, mean", _num("latency_mean_us", ".2f")),
        Col("latency_p99_us", "latency p99", "µs, worst seed", _num("latency_p99_us", ".2f")),
        Col("budget_us", "budget", "µs", _num("budget_us", "g")),
        Col("deadline", "over budget", "steps, all seeds", _over),
        Col("latency_source", "latency", "source", lambda p: p.get("latency_source")),
        Col("r2_knee", "R² knee", "replay, mean", _num("r2_knee", ".3f")),
        Col("pareto", "front", "non-dominated in", lambda p: ", ".join(p["pareto"]) or None),
    ]
    varied = {v["key"] for v in s["varied"]}  # a varied budget_us is a parameter column already
    return cols + [c for c in metrics if c.key not in varied and any(c.cell(p) is not None for p in s["points"])]


def rules(s: dict[str, Any]) -> str:
    base = s["baseline"] or "the baseline"
    text = (
        "One row per combination of the varied parameters, seeds pooled: means over the seeds that finished, "
        "except the worst seed's p99 latency, falls and steps over budget with their denominators (a closed-loop "
        "episode is one seed). – : the row's controller does not take the parameter, or has no such metric. "
        "RMSE against the PD's desired trajectory"
    )
    if s["tracking"]["key"] == "knee_rmse_ratio" or any(p["knee_rmse_ratio"] is not None for p in s["points"]):
        text += f"; ×{base}: each episode's knee RMSE divided by the {base}'s on the same scenario and seed"
    text += (
        ". Front: non-dominated in temporal sparsity or p99 latency, tracking and falls together among the points "
        "of the same scenario (and latency source)."
    )
    return text


def table_html(s: dict[str, Any], table_id: str) -> str:
    cols = columns(s)
    head = "".join(
        f'<th class="{"label" if i == 0 else ""}">{esc(c.header)}<span class="unit">{esc(c.unit) or "&nbsp;"}</span>'
        "</th>"
        for i, c in enumerate(cols)
    )
    body = []
    for p in s["points"]:
        cells = "".join(
            f'<td data-key="{esc(c.key)}"{" class=label" if i == 0 else ""}>{esc(c.cell(p) or "–")}</td>'
            for i, c in enumerate(cols)
        )
        body.append(f'<tr data-point="{esc(p["id"])}" title="{esc(p["label"])}">{cells}</tr>')
    return (
        f'<div class="tablewrap"><table id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _kv(pairs: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs if v not in (None, "", {}))
    return f'<table class="kv">{cells}</table>'


def meta_pairs(s: dict[str, Any]) -> list[tuple[str, Any]]:
    c = s["counts"]
    ex = s.get("executor") or {}
    counts = f"{c['tasks']} tasks ({c['eval']} evaluation, {c['train']} training): {c['done']} done, {c['failed']} " \
             f"failed, {c['interrupted']} interrupted, {c['not_run']} not run"  # fmt: skip
    return [
        ("sweep directory", s["path"]),
        ("description", s["description"]),
        ("config", s["config_path"]),
        ("--set", json.dumps(s["overrides"], sort_keys=True) if s["overrides"] else None),
        ("baseline", s["baseline"] or "none"),
        ("varied", ", ".join(f"{v['key']}" + (f" ({v['unit']})" if v["unit"] else "") for v in s["varied"]) or "–"),
        ("tasks", counts),
        ("last run", f"{s.get('started')} on {ex.get('kind', '?')} ({ex.get('workers', '?')} workers), "
                     f"{fmt_value(s.get('wall_s'), '.1f')} s" if ex else None),
    ]  # fmt: skip


TRAIN_COLS = (("id", "training task", ""), ("status", "status", ""), ("train_s", "train s", ".0f"),
              ("val_r2_knee", "val R² knee", ".4f"), ("val_r2_ankle", "val R² ankle", ".4f"),
              ("val_sparsity", "val sparsity", ".3f"))  # fmt: skip


def training_html(tasks: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for _, h, _ in TRAIN_COLS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt_value(t.get(k), spec))}</td>" for k, _, spec in TRAIN_COLS) + "</tr>"
        for t in tasks
    )
    return f"<h3>Training tasks</h3><table><tr>{head}</tr>{rows}</table>"


def section_html(s: dict[str, Any], figures: list[FigureOut], multiple: bool) -> str:
    """One sweep's section: heading, headline, what ran, the table, failures, training tasks, figures."""
    n = s["index"] + 1
    anchor = "sweep" if n == 1 else f"sweep-{n}"
    title = f"Sweep{f' {n}' if multiple else ''}: {s['name']}"
    out = [
        f'<h2 id="{anchor}">{esc(title)}</h2>',
        f'<p class="headline" id="{anchor}-headline">{esc(s["headline"])}</p>',
    ]
    out.append(_kv(meta_pairs(s)))
    out.append(f"<h3>Tasks by varied parameters</h3>{table_html(s, f'{anchor}-table')}")
    out.append(f'<p class="note">{esc(rules(s))}</p>')
    if s["failed_tasks"]:
        items = "".join(f"<li><code>{esc(f['id'])}</code>: {esc(f['error'])}</li>" for f in s["failed_tasks"])
        out.append(
            f'<h3 id="{anchor}-failed">Failed tasks: {len(s["failed_tasks"])} of {s["counts"]["tasks"]}</h3>'
            f'<ul class="note">{items}</ul><p class="note">Tracebacks: tasks/&lt;id&gt;/error.json in the sweep '
            "directory; the same <code>legloop sweep</code> command again retries them.</p>"
        )
    if s["training_tasks"]:
        out.append(training_html(s["training_tasks"]))
    if s["notes"]:
        out.append("<ul class='note'>" + "".join(f"<li>{esc(x)}</li>" for x in s["notes"]) + "</ul>")
    out += [figure_html(f) for f in figures]
    return "".join(out)


def sweep_sections(runs: list[SweepRun]) -> list[tuple[dict[str, Any], list[FigureOut]]]:
    """Each sweep's section of summary.json and its figures (ids ``fig-sweep-…``, ``fig-sweep2-…`` for a second)."""
    out = []
    for i, run in enumerate(runs):
        s = sweep_summary(run, i)
        out.append((s, sweep_figures(s, "sweep" if i == 0 else f"sweep{i + 1}")))
    return out


def sweep_html(sections: list[tuple[dict[str, Any], list[FigureOut]]]) -> str:
    return "".join(section_html(s, figs, len(sections) > 1) for s, figs in sections)


def sweep_markdown(sections: list[tuple[dict[str, Any], list[FigureOut]]]) -> str:
    """The sweeps for summary.md: headline, a compact table, the failed tasks, the figures not drawn and why."""
    out: list[str] = []
    keep = ("id", "tasks", "falls", "knee_rmse_rad", "knee_rmse_ratio", "sparsity", "latency_p99_us", "deadline",
            "pareto")  # fmt: skip
    for s, figs in sections:
        cols = [c for c in columns(s) if c.key in keep or c.key in {v["key"] for v in s["varied"]}]
        out += [f"## Sweep: {s['name']}", "", s["headline"], ""]
        out.append("| " + " | ".join(f"{c.header}{f' ({c.unit})' if c.unit else ''}" for c in cols) + " |")
        out.append("|---|" + "---:|" * (len(cols) - 1))
        for p in s["points"]:
            out.append("| " + " | ".join((c.cell(p) or "–").replace("|", "/") for c in cols) + " |")
        out.append("")
        if s["failed_tasks"]:
            out.append(f"Failed tasks ({len(s['failed_tasks'])} of {s['counts']['tasks']}):")
            out += [f"- `{f['id']}`: {f['error']}" for f in s["failed_tasks"]]
            out.append("")
        for f in figs:
            if f.data is None:
                out.append(f"- {f.title}: not drawn: {f.missing}.")
        out.append("")
    return "\n".join(out)
