"""The sweep's figures: the trade-off fronts, latency against the deadline, and falls against added latency.

Each function takes a sweep's section of summary.json (:func:`experiments.report.sweep.sweep_summary`) and returns
a :class:`~experiments.report.figures.FigureOut` drawn with the helpers and style of :mod:`.figures` — or, when the
sweep did not measure what the figure needs, no image and a one-line note saying why. A point's colour is its
controller's (label's) on every sweep figure; the baseline is black.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from experiments.report import figures as figs
from experiments.report.figures import FigureOut

FELL = "#cf222e"  # the falls annotations; the budget lines are pure red, as on the per-run figures
LINESTYLES = ("-", "--", ":", "-.")
PANEL_TITLES = {"sparsity": "temporal sparsity", "latency": "inference latency"}


def colours(s: dict[str, Any]) -> dict[str, str]:
    """A fixed colour per point name (label or controller) in the sweep's order; the baseline black."""
    out: dict[str, str] = {}
    i = 0
    for p in s["points"]:
        if p["name"] in out:
            continue
        if p["name"] == s["baseline"]:
            out[p["name"]] = figs.REF_COLOUR
        else:
            out[p["name"]] = figs.PALETTE[i % len(figs.PALETTE)]
            i += 1
    return out


def _controllers(s: dict[str, Any]) -> str:
    return ", ".join(sorted({str(p["controller"]) for p in s["points"] if p["done"]})) or "none"


def _tracking_axis(s: dict[str, Any]) -> str:
    if s["tracking"]["key"] == "knee_rmse_ratio":
        return f"knee RMSE / the {s['baseline'] or 'baseline'}'s, ratio"
    return "knee RMSE, rad"


# ------------------------------------------------------------------------------------------------ fronts
def pareto(s: dict[str, Any], prefix: str) -> FigureOut:
    """Temporal sparsity and p99 latency (one panel each, where measured) against tracking, falls marked, the
    non-dominated points of each condition connected and labelled; the latency budget on the latency panel."""
    y_key = s["tracking"]["key"]
    out = FigureOut(
        f"fig-{prefix}-pareto",
        "Sweep: trade-off fronts",
        "One marker per combination of the varied parameters (seeds pooled: means; latency: the worst seed's p99, "
        "the thin bar reaching back to the mean). y: "
        + (
            f"knee RMSE divided by the {s['baseline']}'s on the same scenario and seed (1 = as good as the "
            f"{s['baseline']}, dotted line)"
            if y_key == "knee_rmse_ratio"
            else "knee RMSE against the PD's desired trajectory"
        )
        + ". Hollow markers fell in some episodes (red: falls / seeds). Connected and labelled: the points no other "
        "point of the same condition beats on x, tracking and falls together, one front per condition (line "
        "style) and, for latency, per source (circles: the EdgeDRNN model's modelled time; squares: measured CPU "
        "wall time). Red dashed: the latency budget; the grey figure under a latency marker is its share of steps "
        "over that budget.",
    )
    panels = [p for p in ("sparsity", "latency") if p in s["fronts"]]
    closed = [p for p in s["points"] if p["episodes"] and p[y_key] is not None]
    if not closed:
        out.missing = "no closed-loop task finished with a knee RMSE (open-loop replays and failed tasks have none)"
        return out
    if not panels:
        out.missing = (
            "no closed-loop task measured temporal sparsity or inference latency: the controllers that ran "
            f"({_controllers(s)}) have no network"
        )
        return out
    col = colours(s)
    by_id = {p["id"]: p for p in s["points"]}
    fig = figs.new_figure(5.2 * len(panels) + 0.6, 4.9)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    conditions = sorted({fr["condition"] for frs in s["fronts"].values() for fr in frs})
    style = {c: LINESTYLES[i % len(LINESTYLES)] for i, c in enumerate(conditions)}
    for ax, panel in zip(axes, panels, strict=True):
        x_key = "latency_p99_us" if panel == "latency" else "sparsity"
        xs: list[float] = []
        for fr in s["fronts"][panel]:
            for pid in fr["candidates"]:
                p = by_id[pid]
                x, y = p[x_key], p[y_key]
                xs.append(x)
                c = col[p["name"]]
                marker = "s" if panel == "latency" and fr["latency_source"] == "measured" else "o"
                on_front = pid in fr["pareto"]
                fell = bool(p["falls"])
                if panel == "latency" and p["latency_mean_us"] is not None:
                    ax.plot([p["latency_mean_us"], x], [y, y], color=c, lw=0.8, alpha=0.7)
                    xs.append(p["latency_mean_us"])
                ax.plot(x, y, marker, ms=8 if on_front else 5.5, color=c, mfc="white" if fell else c, mew=1.6,
                        zorder=3)  # fmt: skip
                if fell:
                    ax.annotate(f"{p['falls']}/{p['episodes']}", (x, y), xytext=(5, 4), textcoords="offset points",
                                fontsize=7, color=FELL)  # fmt: skip
                if panel == "latency" and p["miss_fraction"] is not None:
                    ax.annotate(f"{100 * p['miss_fraction']:.1f} %", (x, y), xytext=(0, -11),
                                textcoords="offset points", fontsize=6.5, color="0.4", ha="center")  # fmt: skip
            front = [by_id[i] for i in fr["pareto"]]
            ax.plot([p[x_key] for p in front], [p[y_key] for p in front], color="0.3", lw=1.1,
                    ls=style[fr["condition"]], zorder=2)  # fmt: skip
            for k, p in enumerate(front):  # labels alternate above and below the front, so neighbours overlap less
                ax.annotate(p["design_label"], (p[x_key], p[y_key]), xytext=(6, 5 if k % 2 == 0 else -12),
                            textcoords="offset points", fontsize=7, color=col[p["name"]])  # fmt: skip
        if y_key == "knee_rmse_ratio":
            ax.axhline(1.0, color=figs.REF_COLOUR, lw=0.8, ls=":")
            ax.text(0.01, 1.0, f"= {s['baseline']}", transform=ax.get_yaxis_transform(), fontsize=7, va="bottom")
        if panel == "latency":
            budgets = sorted({by_id[i]["budget_us"] for fr in s["fronts"][panel] for i in fr["candidates"]
                              if by_id[i]["budget_us"] is not None})  # fmt: skip
            for b in budgets:
                ax.axvline(b, color="red", ls="--", lw=1.2)
                ax.text(b * 1.04, 0.98, f"budget {b:g} µs", transform=ax.get_xaxis_transform(), fontsize=7.5,
                        va="top", color="red")  # fmt: skip
            xs += budgets
            lo, hi = min(xs), max(xs)
            ax.set_xlim(lo / 1.4, hi * 1.6)
            figs.log_axis(ax, "x")
        else:
            pad = max(0.05, 0.1 * (max(xs) - min(xs)))
            ax.set_xlim(max(0.0, min(xs) - pad) - 0.01, min(1.0, max(xs) + 2 * pad) + 0.01)
        ax.set_xlabel(
            "temporal sparsity, fraction of zero deltas (higher: fewer MACs)"
            if panel == "sparsity"
            else "inference latency per step, µs (p99 of the worst seed)",
            fontsize=9,
        )
        ax.set_ylabel(_tracking_axis(s), fontsize=9)
        ax.set_title(PANEL_TITLES[panel], fontsize=10)
        figs.style_axes(ax)
    handles = [Line2D([], [], marker="o", ls="none", color=c, label=n) for n, c in col.items()
               if any(p["name"] == n and p["id"] in _candidates(s) for p in s["points"])]  # fmt: skip
    handles.append(Line2D([], [], marker="o", ls="none", color="0.3", mfc="white", label="fell (falls/seeds)"))
    if "latency" in panels:
        handles.append(Line2D([], [], marker="s", ls="none", color="0.3", label="measured (CPU)"))
    handles += [Line2D([], [], color="0.3", ls=style[c], label=f"front{': ' + c if c else ''}") for c in conditions]
    fig.legend(handles=handles, fontsize=7.5, frameon=False, loc="outside lower center", ncol=min(len(handles), 4))
    out.data = figs.to_png(fig)
    out.notes = [
        f"{panel} front{' at ' + fr['condition'] if fr['condition'] else ''}"
        f"{' (' + fr['latency_source'] + ')' if fr['latency_source'] else ''}: "
        f"{', '.join(by_id[i]['design_label'] for i in fr['pareto'])}"
        for panel in panels
        for fr in s["fronts"][panel]
    ]
    return out


def _candidates(s: dict[str, Any]) -> set[str]:
    return {i for frs in s["fronts"].values() for fr in frs for i in fr["candidates"]}


# ------------------------------------------------------------------------------------------------ deadline
def deadline(s: dict[str, Any], prefix: str) -> FigureOut:
    """Per point that measured latency: mean, worst p99 and max against its budget; share of steps over it."""
    out = FigureOut(
        f"fig-{prefix}-deadline",
        "Sweep: latency against the deadline",
        "Inference latency per step of every point that measured it, all seeds (log scale): open circle the mean of "
        "the seeds' means, diamond the worst seed's p99, cross the largest step; red dashed: the point's budget "
        "(budget_us). Right: steps over the budget / steps, summed over the seeds (CPU rows: measured wall time; "
        "EdgeDRNN rows: the model's modelled time).",
    )
    rows = s["deadline"]
    if not rows:
        out.missing = (
            f"no task measured inference latency: the controllers that ran ({_controllers(s)}) have no network to time"
        )
        return out
    by_id = {p["id"]: p for p in s["points"]}
    col = colours(s)
    fig = figs.new_figure(9.0, 1.4 + 0.32 * len(rows))
    ax = fig.subplots()
    ys = np.arange(len(rows))[::-1]
    xs: list[float] = []
    for y, r in zip(ys, rows, strict=True):
        c = col[by_id[r["id"]]["name"]]
        vals = [v for v in (r["latency_mean_us"], r["latency_p99_us"], r["latency_max_us"]) if v is not None]
        ax.plot([min(vals), max(vals)], [y, y], color=c, lw=1.0)
        if r["latency_mean_us"] is not None:
            ax.plot(r["latency_mean_us"], y, "o", color=c, mfc="white", ms=6)
        ax.plot(r["latency_p99_us"], y, "D", color=c, ms=6)
        if r["latency_max_us"] is not None:
            ax.plot(r["latency_max_us"], y, "x", color=c, ms=6)
        if r["budget_us"] is not None:
            ax.plot([r["budget_us"]] * 2, [y - 0.42, y + 0.42], color="red", ls="--", lw=1.2)
            xs.append(r["budget_us"])
        xs += vals
    budgets = sorted({r["budget_us"] for r in rows if r["budget_us"] is not None})
    for b in budgets:
        ax.text(b * 1.04, 1.0, f"budget {b:g} µs", transform=ax.get_xaxis_transform(), fontsize=7.5, va="bottom",
                color="red")  # fmt: skip
    ax.set_xlim(min(xs) / 1.4, max(xs) * 1.4)
    figs.log_axis(ax, "x")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(ys, [r["label"] for r in rows], fontsize=7.5)
    ax.set_xlabel("inference latency per step, µs", fontsize=9)
    ax.set_ylabel("sweep point (varied parameters)", fontsize=9)
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys, [_share(r) for r in rows], fontsize=7.5)
    right.set_ylabel("steps over budget / steps", fontsize=9)
    figs.style_axes(ax)
    right.spines[["top"]].set_visible(False)
    right.tick_params(labelsize=7.5)
    out.data = figs.to_png(fig)
    out.notes = [f"budget {b:g} µs" for b in budgets] or ["no budget recorded"]
    return out


def _share(r: dict[str, Any]) -> str:
    if r["deadline_misses"] is None or not r["deadline_steps"]:
        return "–"
    return f"{r['deadline_misses']}/{r['deadline_steps']} ({100.0 * r['deadline_misses'] / r['deadline_steps']:.1f} %)"


# ------------------------------------------------------------------------------------------------ delay
def delay(s: dict[str, Any], prefix: str) -> FigureOut:
    """Falls (fraction of episodes), time and distance walked against the varied added latency, one line per
    controller (and whatever else the sweep varied)."""
    d = s["delay"]
    what = "actuation delay" if d is None else d["name"]
    out = FigureOut(
        f"fig-{prefix}-delay",
        "Sweep: falls against added latency",
        f"Closed-loop episodes against the added {what} (torque-to-motor latency on top of the controller's): the "
        "fraction that fell (falls / seeds beside each marker), the mean simulated time walked (up to a fall) and "
        "the mean distance walked, one line per controller and setting of the other varied parameters.",
    )
    if d is None:
        out.missing = (
            "the sweep did not vary actuation_delay_ms or jitter_ms (every task ran with "
            f"{s.get('fixed_latency') or 'the same added latency'})"
        )
        return out
    lines = [ln for ln in d["lines"] if ln["x"]]
    if not lines:
        out.missing = f"no closed-loop task finished at any {d['axis']} value"
        return out
    col = colours(s)
    names = {p["id"]: p["name"] for p in s["points"]}
    fig = figs.new_figure(10.0, 3.9 + 0.18 * ((len(lines) + 2) // 3))
    axes = fig.subplots(1, 3)
    span = max(max(ln["x"]) for ln in lines) - min(min(ln["x"]) for ln in lines) or 1.0
    seen: dict[str, int] = {}
    for i, ln in enumerate(lines):
        name = names[ln["point_ids"][0]]
        k = seen[name] = seen.get(name, -1) + 1
        c, ls = col[name], LINESTYLES[k % len(LINESTYLES)]
        x = np.asarray(ln["x"], float)
        dodge = 0.012 * span * (i - (len(lines) - 1) / 2)  # lines at the same values stay apart on the falls panel
        ff = np.asarray([np.nan if v is None else v for v in ln["fall_fraction"]], float)
        axes[0].plot(x + dodge, ff, "o", ls=ls, color=c, ms=5, label=ln["label"])
        for xi, fi, f, n in zip(x + dodge, ff, ln["falls"], ln["episodes"], strict=True):
            if f:
                axes[0].annotate(f"{f}/{n}", (xi, fi), xytext=(4, 3), textcoords="offset points", fontsize=7,
                                 color=FELL)  # fmt: skip
        for ax, key in ((axes[1], "walked_s"), (axes[2], "distance_m")):
            ax.plot(x, [np.nan if v is None else v for v in ln[key]], "o", ls=ls, color=c, ms=4)
    axes[0].set_ylim(-0.05, 1.05)
    for ax, title, ylab in (
        (axes[0], "falls", "episodes that fell, fraction"),
        (axes[1], "time walked", "time walked (to a fall), s"),
        (axes[2], "distance walked", "distance walked, m"),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylab, fontsize=9)
        ax.set_xlabel(f"added {what}, {d['unit'] or 'ms'}", fontsize=9)
        figs.style_axes(ax)
    fig.legend(fontsize=7.5, frameon=False, loc="outside lower center", ncol=min(len(lines), 3))
    out.data = figs.to_png(fig)
    out.notes = [f"{len(lines)} line(s) over {d['axis']} = " + ", ".join(f"{v:g}" for v in sorted(
        {v for ln in lines for v in ln["x"]}))]  # fmt: skip
    return out


def sweep_figures(s: dict[str, Any], prefix: str) -> list[FigureOut]:
    """The three figures of a sweep's section, ids ``fig-<prefix>-pareto`` / ``-deadline`` / ``-delay``."""
    return [pareto(s, prefix), deadline(s, prefix), delay(s, prefix)]
