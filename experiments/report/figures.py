"""The report's figures: matplotlib (Agg, object API: no pyplot state, no display) rendered to small PNGs.

Each function takes the loaded runs and returns a :class:`FigureOut` — the PNG bytes, or, when the runs lack what
the figure needs, no image and a note saying what is missing. Colours are fixed per controller across figures (the
PD, the reference, always black), so a reader matches lines by colour on the whole page.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from experiments.report import gait
from experiments.report.load import ControllerRun, RunLog, TrainingRun

DPI = 80  # small PNGs: the page stays a few MB with every figure embedded
REF_COLOUR = "#111111"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
SPARSITY_SMOOTH_S = 0.25
WINDOW_S = 10.0  # time-series panels show this much steady walking, so strides and domains stay readable


@dataclass
class FigureOut:
    """One figure of the page: id (HTML anchor and file name), title, caption, and the image or why it is absent."""

    id: str
    title: str
    caption: str
    data: bytes | None = None
    mime: str = "image/png"
    missing: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ext(self) -> str:
        return {"image/png": "png", "image/gif": "gif"}.get(self.mime, "bin")


def colours(runs: list[ControllerRun], ref: ControllerRun | None) -> dict[str, str]:
    """A fixed colour per controller label; the reference PD is black."""
    out, i = {}, 0
    for r in runs:
        if r is ref:
            out[r.label] = REF_COLOUR
        else:
            out[r.label] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _style(ax: Any) -> None:
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)


def _log(ax: Any, axis: str = "y") -> None:
    """A log axis with plain tick labels (1, 2, 5, 10 …): mathtext labels and minor ticks cost most of a figure's
    drawing time. Call after plotting: the tick density follows the data's range."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    decades = np.log10(hi / lo) if lo > 0 and hi > 0 else 9.0
    target.set_major_locator(LogLocator(10.0, subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(NullLocator())


# The drawing helpers under public names, for the report's other figure modules (sweep_figures): one style.
new_figure = _figure
to_png = _png
style_axes = _style
log_axis = _log


def _first_log(run: ControllerRun, *cols: str) -> RunLog | None:
    for seed in sorted(run.runlogs):
        log = run.runlogs[seed]
        if log.has(*cols):
            return log
    return None


def _window(log: RunLog) -> tuple[float, float]:
    t = log.cols["time"]
    start = gait.TRANSIENT_S if t[-1] > gait.TRANSIENT_S + 2.0 else float(t[0])
    return start, min(float(t[-1]), start + WINDOW_S)


# ------------------------------------------------------------------------------------------------ gait cycle
GAIT_PANELS = (
    ("position_actual_knee", "knee angle", "rad"),
    ("position_actual_ankle", "ankle angle", "rad"),
    ("torque_actual_knee", "knee torque", "N·m"),
    ("torque_actual_ankle", "ankle torque", "N·m"),
)


def gait_cycle_profiles(run: ControllerRun) -> dict[str, np.ndarray]:
    """Every steady stride of every seed of ``run``, per panel signal, on 0–100 % of the gait cycle."""
    out: dict[str, list[np.ndarray]] = {c: [] for c, _, _ in GAIT_PANELS}
    for log in run.runlogs.values():
        if not log.has("foot_force_prosthesis", *out):
            continue
        hs = gait.heel_strikes(log.cols["foot_force_prosthesis"], log.dt)
        strides = gait.steady_strides(hs, log.cols["time"])
        for c in out:
            out[c].append(gait.cycle_profiles(log.cols[c], strides))
    return {c: np.concatenate(v) if v else np.zeros((0, gait.CYCLE_POINTS)) for c, v in out.items()}


def gait_cycle(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-gait-cycle",
        "Knee and ankle over the gait cycle",
        "Prosthetic knee and ankle angle and commanded torque over the normalised gait cycle (0 % and 100 %: "
        "prosthetic heel strike, from the logged prosthesis foot force, 50 N on / 20 N off, 100 ms debounce), "
        f"mean ± SD across all strides after the first {gait.TRANSIENT_S:g} s of every seed; n = strides.",
    )
    profiles = {r.label: gait_cycle_profiles(r) for r in runs if r.runlogs}
    profiles = {k: v for k, v in profiles.items() if v["position_actual_knee"].shape[0] > 0}
    if not profiles:
        out.missing = "no run log with at least two steady heel strikes (foot_force_prosthesis and joint columns)"
        return out
    fig = _figure(9.0, 5.6)
    axes = fig.subplots(2, 2, sharex=True)
    x = np.linspace(0.0, 100.0, gait.CYCLE_POINTS)
    for ax, (c, name, unit) in zip(axes.flat, GAIT_PANELS, strict=True):
        for label, prof in profiles.items():
            p = prof[c]
            m, s = p.mean(axis=0), p.std(axis=0)
            ax.plot(x, m, color=col[label], lw=1.6 if col[label] == REF_COLOUR else 1.2, label=f"{label} (n={len(p)})")
            ax.fill_between(x, m - s, m + s, color=col[label], alpha=0.15, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(unit, fontsize=9)
        _style(ax)
    for ax in axes[1]:
        ax.set_xlabel("gait cycle, % (prosthetic heel strike to the next)", fontsize=9)
    axes[0, 0].legend(fontsize=7, frameon=False)
    out.data = _png(fig)
    out.notes = [f"{k}: {v['position_actual_knee'].shape[0]} strides" for k, v in profiles.items()]
    return out


# ------------------------------------------------------------------------------------------------ timing
def _timed(runs: list[ControllerRun]) -> list[ControllerRun]:
    return [r for r in runs if any(log.has("latency_us") and np.isfinite(log.cols["latency_us"]).any()
                                   for log in r.runlogs.values())]  # fmt: skip


def _budget(run: ControllerRun) -> float | None:
    for log in run.runlogs.values():
        b = (log.header.get("deadline") or {}).get("budget_us")
        if isinstance(b, (int, float)):
            return float(b)
    b = next((e.get("budget_us") for e in run.episodes if e.get("budget_us") is not None), None)
    return float(b) if isinstance(b, (int, float)) else None


def _source(run: ControllerRun) -> str:
    return next((str(e["latency_source"]) for e in run.episodes if e.get("latency_source")), "latency")


def latency_histogram(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-latency-hist",
        "Latency per step against the budget",
        "Histogram of the per-step inference latency, every seed, one outline per controller (log scales; measured "
        "wall time of the CPU kernel or the EdgeDRNN model's modelled time, as the legend says); the dashed red "
        "line is the budget, and the legend gives each controller's steps beyond it.",
    )
    timed = _timed(runs)
    if not timed:
        out.missing = "no learned controller with logged latencies (the PD has no inference step to time)"
        return out
    lats = {}
    for r in timed:
        lat = np.concatenate([log.cols["latency_us"] for log in r.runlogs.values() if log.has("latency_us")])
        lats[r.label] = (lat[np.isfinite(lat) & (lat > 0)], int(np.count_nonzero(~np.isfinite(lat))))
    pooled = np.concatenate([v for v, _ in lats.values()])
    budgets = sorted({b for b in (_budget(r) for r in timed) if b})
    lo = min([float(pooled.min()) * 0.8] + [b * 0.5 for b in budgets]) if pooled.size else 0.1
    hi = max([float(pooled.max()) * 1.25] + [b * 2.0 for b in budgets]) if pooled.size else 100.0
    bins = np.geomspace(max(lo, 1e-3), hi, 70)
    fig = _figure(9.0, 3.4 + 0.18 * ((len(timed) + 1) // 2))
    ax = fig.subplots()
    for r in timed:
        lat, lost = lats[r.label]
        b = _budget(r)
        over = int(np.count_nonzero(lat > b)) if b else 0
        text = f"{r.label} ({_source(r)}): {over}/{lat.size} over ({100 * over / max(lat.size, 1):.1f} %)"
        if lost:
            text += f", {lost} lost"
        ax.hist(lat, bins=bins.tolist(), histtype="step", lw=1.4, color=col[r.label], label=text)
    for b in budgets:
        ax.axvline(b, color="red", ls="--", lw=1.2)
        ax.text(b * 1.06, 0.97, f"budget {b:g} µs", transform=ax.get_xaxis_transform(), fontsize=8, va="top",
                color="red")  # fmt: skip
    _log(ax, "x")
    _log(ax, "y")
    ax.set_xlabel("latency per step, µs", fontsize=9)
    ax.set_ylabel("steps", fontsize=9)
    fig.legend(fontsize=7.5, frameon=False, loc="outside lower center", ncol=2)
    _style(ax)
    out.data = _png(fig)
    return out


def _linked(runs: list[ControllerRun]) -> list[ControllerRun]:
    """Runs whose controller crossed a link (a board): their logs have round trips above zero."""
    return [r for r in runs if any(log.has("round_trip_us") and (np.nan_to_num(log.cols["round_trip_us"]) > 0).any()
                                   for log in r.runlogs.values())]  # fmt: skip


def link_round_trip(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-link",
        "The link: round trip per step against the control period",
        "Histogram of the wall-clock round trip of every STEP to the board (send → result received and checked), "
        "every seed, one outline per board run (log scales); the dashed red line is the control period, the "
        "deadline a round trip must meet. The legend gives the steps whose answer was lost (dropped, corrupted, "
        "truncated or later than the step timeout: the deadline policy acted on them) and the p99.",
    )
    linked = _linked(runs)
    if not linked:
        out.missing = "no controller ran across a link (only `--controller board` runs have round trips)"
        return out
    fig = _figure(9.0, 3.2)
    ax = fig.subplots()
    periods = set()
    for r in linked:
        logs = [log for log in r.runlogs.values() if log.has("round_trip_us")]
        rt = np.concatenate([log.cols["round_trip_us"] for log in logs])
        events = np.concatenate([log.cols["link_events"] for log in logs if log.has("link_events")] or [np.zeros(0)])
        lost = int(np.count_nonzero(events.astype(np.int64) & 1))  # LINK_EVENT_LOST
        ok = rt[np.isfinite(rt) & (rt > 0)]
        periods.add(1e6 * logs[0].dt)
        p99 = float(np.percentile(ok, 99)) if ok.size else float("nan")
        lo, hi = (max(float(ok.min()) * 0.8, 1.0), float(ok.max()) * 1.25 + 1.0) if ok.size else (1.0, 10.0)
        ax.hist(ok, bins=np.geomspace(lo, hi, 60).tolist(), histtype="step", lw=1.4, color=col[r.label],
                label=f"{r.label}: p99 {p99:.0f} µs, {lost}/{rt.size} steps lost")  # fmt: skip
    for period in sorted(periods):
        ax.axvline(period, color="red", ls="--", lw=1.2)
        ax.text(period * 1.06, 0.97, f"period {period / 1e3:g} ms", transform=ax.get_xaxis_transform(), fontsize=8,
                va="top", color="red")  # fmt: skip
    _log(ax, "x")
    _log(ax, "y")
    ax.set_xlabel("round trip per step, µs", fontsize=9)
    ax.set_ylabel("steps", fontsize=9)
    fig.legend(fontsize=7.5, frameon=False, loc="outside lower center", ncol=2)
    _style(ax)
    out.data = _png(fig)
    return out


PHASE_BINS = 20  # 5 % of the gait cycle each


def link_gait_phase(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-link-phase",
        "The link: where in the gait the lost steps fell",
        f"Share of control steps whose board answer was lost (dropped, corrupted, truncated, or later than the step "
        f"timeout), per {100 // PHASE_BINS} % of the prosthesis' gait cycle (0 % = prosthetic heel strike), every "
        "seed, one line per board run; the denominator is the steps of each bin, so a line that rises around heel "
        "strike means the link lost the steps the walker needs most. Steps before the first and after the last heel "
        "strike of an episode have no phase and are left out. The legend gives the lost steps with a phase out of "
        "the steps with one.",
    )
    linked = [r for r in _linked(runs) if any(log.has("link_events", "foot_force_prosthesis")
                                                for log in r.runlogs.values())]  # fmt: skip
    if not linked:
        out.missing = "no board run with link events and foot forces in its run logs"
        return out
    fig = _figure(9.0, 3.0)
    ax = fig.subplots()
    centres = (np.arange(PHASE_BINS) + 0.5) * 100.0 / PHASE_BINS
    drawn = 0
    for r in linked:
        lost = np.zeros(PHASE_BINS)
        steps = np.zeros(PHASE_BINS)
        for log in r.runlogs.values():
            if not log.has("link_events", "foot_force_prosthesis"):
                continue
            hs = gait.heel_strikes(log.cols["foot_force_prosthesis"], log.dt)
            if hs.size < 2:
                continue
            k = np.arange(int(hs[0]), int(hs[-1]))
            cycle = np.searchsorted(hs, k, side="right") - 1
            phase = (k - hs[cycle]) / (hs[cycle + 1] - hs[cycle])
            b = np.minimum((phase * PHASE_BINS).astype(np.int64), PHASE_BINS - 1)
            steps += np.bincount(b, minlength=PHASE_BINS)
            is_lost = (log.cols["link_events"][k].astype(np.int64) & 1) > 0  # LINK_EVENT_LOST
            lost += np.bincount(b[is_lost], minlength=PHASE_BINS)
        if not steps.sum():
            continue
        drawn += 1
        share = 100.0 * lost / np.maximum(steps, 1)
        text = f"{r.label}: {int(lost.sum())}/{int(steps.sum())} steps lost"
        ax.plot(centres, share, "-o", ms=3, lw=1.4, color=col[r.label], label=text)
        worst = int(np.argmax(share))
        out.notes.append(f"{text}, most at {worst * 100 // PHASE_BINS}–{(worst + 1) * 100 // PHASE_BINS} % of the "
                         f"cycle ({share[worst]:.1f} % of its steps)")  # fmt: skip
    if not drawn:
        out.missing = "no board run walked a whole gait cycle"
        return out
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("gait cycle of the prosthesis, % (0 = heel strike)", fontsize=9)
    ax.set_ylabel("steps lost, % of the bin's steps", fontsize=9)
    fig.legend(fontsize=7.5, frameon=False, loc="outside lower center", ncol=2)
    _style(ax)
    out.data = _png(fig)
    return out


def latency_time(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-latency-time",
        "Latency over time",
        f"Per-step latency of the first seed over {WINDOW_S:g} s of steady walking (dots), with prosthetic heel "
        "strikes as grey vertical lines and the budget as the dashed red line: bursts of work follow the gait "
        "events.",
    )
    timed = _timed(runs)
    if not timed:
        out.missing = "no learned controller with logged latencies"
        return out
    fig = _figure(9.0, 1.0 + 1.5 * len(timed))
    axes = np.atleast_1d(fig.subplots(len(timed), 1, sharex=False))
    for ax, r in zip(axes, timed, strict=True):
        log = _first_log(r, "latency_us", "time")
        assert log is not None
        t, lat = log.cols["time"], log.cols["latency_us"]
        a, b = _window(log)
        sel = (t >= a) & (t <= b)
        ax.plot(t[sel], lat[sel], ".", ms=2.0, color=col[r.label])
        if log.has("foot_force_prosthesis"):
            hs = gait.heel_strikes(log.cols["foot_force_prosthesis"], log.dt)
            hs_t = t[hs][(t[hs] >= a) & (t[hs] <= b)]
            ax.vlines(hs_t, 0, 1, transform=ax.get_xaxis_transform(), color="0.55", lw=0.8)
        budget = _budget(r)
        if budget:
            ax.axhline(budget, color="red", ls="--", lw=1.0)
        _log(ax, "y")
        ax.set_title(f"{r.label}, seed {log.header.get('seed', '?')} ({_source(r)})", fontsize=9, loc="left")
        ax.set_ylabel("µs", fontsize=9)
        _style(ax)
    axes[-1].set_xlabel("time, s", fontsize=9)
    out.data = _png(fig)
    return out


def cycles_fired(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-cycles-fired",
        "Accelerator cycles against fired columns",
        "Each dot is one step on the EdgeDRNN model (or a board): accelerator clock cycles against the weight "
        "columns fetched for the non-zero deltas, every seed. The cost grows with the columns fired; the spread "
        "at a column count is the fixed per-step overhead and the memory bursts.",
    )
    sel = [r for r in runs if any(log.has("cycles", "fired_columns") and np.any(log.cols["cycles"] >= 0)
                                  for log in r.runlogs.values())]  # fmt: skip
    if not sel:
        out.missing = "no EdgeDRNN or board run (the CPU kernels log no accelerator cycles)"
        return out
    fig = _figure(6.5, 4.0)
    ax = fig.subplots()
    for r in sel:
        cyc = np.concatenate([log.cols["cycles"] for log in r.runlogs.values() if log.has("cycles", "fired_columns")])
        fired = np.concatenate(
            [log.cols["fired_columns"] for log in r.runlogs.values() if log.has("cycles", "fired_columns")]
        )
        ok = (cyc >= 0) & (fired >= 0)
        ax.plot(fired[ok], cyc[ok], ".", ms=2.5, alpha=0.35, color=col[r.label], label=r.label, rasterized=True)
    ax.set_xlabel("fired weight columns per step", fontsize=9)
    ax.set_ylabel("cycles per step", fontsize=9)
    ax.legend(fontsize=8, frameon=False, markerscale=4)
    _style(ax)
    out.data = _png(fig)
    return out


# ------------------------------------------------------------------------------------------------ sparsity
def sparsity_time(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-sparsity-time",
        "Temporal sparsity over time",
        f"1 − non-zero deltas / delta elements per step (the header's delta_elements), smoothed over "
        f"{SPARSITY_SMOOTH_S * 1000:.0f} ms, first seed, {WINDOW_S:g} s of steady walking. Shaded: the prosthesis in "
        "stance (the PD's domain, ishumanswing = 1); white: swing.",
    )
    sel = []
    for r in runs:
        log = _first_log(r, "nonzero_deltas", "time")
        if log is not None and np.any(log.cols["nonzero_deltas"] >= 0) and log.header.get("delta_elements"):
            sel.append((r, log))
    if not sel:
        out.missing = "no learned controller logged its non-zero deltas (the PD has none)"
        return out
    fig = _figure(9.0, 1.0 + 1.4 * len(sel))
    axes = np.atleast_1d(fig.subplots(len(sel), 1, sharex=False))
    for ax, (r, log) in zip(axes, sel, strict=True):
        t, nz = log.cols["time"], log.cols["nonzero_deltas"].astype(float)
        nz[nz < 0] = np.nan
        sp = 1.0 - nz / float(log.header["delta_elements"])
        smooth = gait.moving_average(sp, round(SPARSITY_SMOOTH_S / log.dt))
        a, b = _window(log)
        sel_t = (t >= a) & (t <= b)
        if log.has("ishumanswing"):
            stance = log.cols["ishumanswing"] > 0.5
            for i, j in gait.runs_of(stance & sel_t):
                ax.axvspan(t[i], t[min(j, t.size - 1)], color="0.85", lw=0)
        ax.plot(t[sel_t], smooth[sel_t], color=col[r.label], lw=1.2)
        ax.set_title(f"{r.label}, seed {log.header.get('seed', '?')}: mean {np.nanmean(sp):.3f}", fontsize=9,
                     loc="left")  # fmt: skip
        ax.set_ylabel("sparsity", fontsize=9)
        _style(ax)
    axes[-1].set_xlabel("time, s", fontsize=9)
    out.data = _png(fig)
    return out


# ------------------------------------------------------------------------------------------------ return map
RETURN_MAP = (
    ("qpos_rooty", "trunk pitch at heel strike, rad"),
    ("qpos_hip_p", "prosthetic hip angle at heel strike, rad"),
    (None, "stride time, s"),
)


def return_map(runs: list[ControllerRun], col: dict[str, str]) -> FigureOut:
    out = FigureOut(
        "fig-return-map",
        "Stride-to-stride return map",
        "The Poincaré section behind the Floquet estimate: the state at prosthetic heel strike n (x axis) against "
        "strike n + 1 (y axis), for two of the section's variables (trunk pitch and prosthetic hip angle, from the "
        "logged qpos_rooty and qpos_hip_p) and the stride time; steady strides of every seed. A period-1 gait "
        "clusters on the diagonal; deviations that shrink from stride to stride pull the cloud to one point; two "
        "clusters mirrored about the diagonal are a period-2 gait.",
    )
    have = [r for r in runs if any(log.has("qpos_rooty", "qpos_hip_p", "foot_force_prosthesis")
                                   for log in r.runlogs.values())]  # fmt: skip
    if not have:
        out.missing = "no run log with qpos_* columns (an older run-log format)"
        return out
    fig = _figure(9.0, 3.4)
    axes = fig.subplots(1, 3)
    counts = {}
    for r in have:
        pts: list[list[np.ndarray]] = [[], [], []]
        for log in r.runlogs.values():
            if not log.has("qpos_rooty", "qpos_hip_p", "foot_force_prosthesis"):
                continue
            t = log.cols["time"]
            hs = gait.heel_strikes(log.cols["foot_force_prosthesis"], log.dt)
            hs = hs[t[hs] >= gait.TRANSIENT_S]
            if hs.size < 3:
                continue
            for i, (c, _) in enumerate(RETURN_MAP):
                v = log.cols[c] if c else None
                if v is None:
                    st = np.diff(t[hs])
                    pts[i].append(np.column_stack([st[:-1], st[1:]]))
                else:
                    a, b = gait.section_values(v, hs)
                    pts[i].append(np.column_stack([a, b]))
        counts[r.label] = sum(len(p) for p in pts[0])
        if not counts[r.label]:
            continue
        for ax, p in zip(axes, pts, strict=True):
            if p:
                xy = np.concatenate(p)
                ax.plot(xy[:, 0], xy[:, 1], "o", ms=3.5, alpha=0.7, color=col[r.label], label=r.label, mec="none")
    if not any(counts.values()):
        out.missing = "fewer than three steady prosthetic heel strikes in every run log"
        return out
    for ax, (_, name) in zip(axes, RETURN_MAP, strict=True):
        lims = ax.get_xlim() + ax.get_ylim()
        lo, hi = min(lims), max(lims)
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8, ls=":")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("stride n", fontsize=8)
        ax.set_ylabel("stride n + 1", fontsize=8)
        _style(ax)
    axes[0].legend(fontsize=7, frameon=False)
    out.data = _png(fig)
    out.notes = [f"{k}: {v} stride pairs" for k, v in counts.items()]
    return out


# ------------------------------------------------------------------------------------------------ training
def training_curves(run: TrainingRun, index: int) -> FigureOut:
    out = FigureOut(
        f"fig-training-{index}",
        f"Training: {run.path.name}",
        "Every stage's per-epoch training and validation loss (log scale), held-out validation R² per joint and "
        "temporal sparsity, stages laid end to end (behavioural cloning → DAgger rounds → delta fine-tune with "
        "quantisation-aware training → delta DAgger); dotted lines separate the stages.",
    )
    stages = [s for s in run.stages if s.history]
    if not stages:
        out.missing = "no per-epoch history in stages/*.json"
        return out
    fig = _figure(9.0, 4.6)
    ax_loss, ax_r2, ax_sp = fig.subplots(1, 3)
    x0 = 0
    for i, s in enumerate(stages):
        ep = np.arange(x0 + 1, x0 + len(s.history) + 1)
        h = s.history
        tr = [x.get("train_loss", np.nan) for x in h]
        va = [x.get("val_loss", np.nan) for x in h]
        ax_loss.plot(ep, tr, "o-", ms=3, color="#1f77b4", label="train" if i == 0 else None)
        ax_loss.plot(ep, va, "s--", ms=3, color="#d62728", label="validation" if i == 0 else None)
        for j, c in (("knee", "#2ca02c"), ("ankle", "#9467bd")):
            ax_r2.plot(ep, [(x.get("r2") or {}).get(j, np.nan) for x in h], "o-", ms=3, color=c,
                       label=j if i == 0 else None)  # fmt: skip
        ax_sp.plot(ep, [x.get("sparsity", np.nan) for x in h], "o-", ms=3, color="#ff7f0e")
        for ax in (ax_loss, ax_r2, ax_sp):
            if x0:
                ax.axvline(x0 + 0.5, color="0.6", lw=0.8, ls=":")
        ax_loss.text(x0 + 0.6, 1.0, s.name, transform=ax_loss.get_xaxis_transform(), fontsize=7, rotation=90,
                     va="top", color="0.35")  # fmt: skip
        x0 += len(s.history)
    _log(ax_loss, "y")
    ax_loss.set_title("loss", fontsize=9)
    ax_r2.set_title("validation R²", fontsize=9)
    ax_sp.set_title("validation temporal sparsity", fontsize=9)
    ax_sp.set_ylim(-0.02, 1.02)
    for ax in (ax_loss, ax_r2, ax_sp):
        ax.set_xlabel("epoch (all stages)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _style(ax)
    ax_loss.legend(fontsize=7, frameon=False)
    ax_r2.legend(fontsize=7, frameon=False)
    out.data = _png(fig)
    return out


# ------------------------------------------------------------------------------------------------ the walk
@dataclass
class WalkPlan:
    """Which logged rows to redraw for each controller, and the running render job."""

    film: FigureOut
    gif: FigureOut
    plans: list[tuple[str, int, list[str]]]  # (label, filmstrip frames, their captions)
    job: Any = None
    gif_fps: float = 10.0


def walk_start(
    runs: list[ControllerRun], strip_frames: int = 8, gif_seconds: float = 3.0, gif_fps: float = 10.0
) -> WalkPlan:
    """Start rendering the filmstrip and the animated walk in a child process (see :mod:`.render`)."""
    from experiments.report import render

    film = FigureOut(
        "fig-filmstrip",
        "Filmstrip of one stride",
        f"The walker redrawn from the first seed's logged joint positions and its own MJCF: {strip_frames} frames "
        "evenly over the first steady prosthetic stride (heel strike to the next; time and % of the cycle above "
        "each frame), one row per controller. The prosthesis is the blue-grey leg; slopes are drawn level.",
    )
    gif = FigureOut(
        "fig-walk",
        "The walk, animated",
        f"{gif_seconds:g} s of steady walking of every controller side by side on the same clock "
        f"({gif_fps:g} frames per second, from the first steady prosthetic heel strike; a controller that fell "
        "stays on its last logged frame).",
        mime="image/gif",
    )
    plan = WalkPlan(film, gif, [], gif_fps=gif_fps)
    items = []
    for r in runs:
        log = _first_log(r, "time", "foot_force_prosthesis", "qpos_rootx")
        if log is None or not log.header.get("mjcf"):
            continue
        t = log.cols["time"]
        hs = gait.heel_strikes(log.cols["foot_force_prosthesis"], log.dt)
        steady = hs[t[hs] >= gait.TRANSIENT_S] if hs.size else hs
        if steady.size >= 2:
            a, b = int(steady[0]), int(steady[1])
        else:  # no full steady stride (a fall, a short run): the run's first second, times only
            a, b = 0, min(log.rows - 1, round(1.0 / log.dt))
        strip = np.linspace(a, b, strip_frames, endpoint=False).round().astype(int).tolist()
        step = max(1, round(1.0 / (gif_fps * log.dt)))
        gif_rows = [min(a + k * step, log.rows - 1) for k in range(round(gif_seconds * gif_fps))]
        if steady.size >= 2:
            captions = [f"{t[k]:.2f} s · {100.0 * (k - a) / (b - a):.0f} %" for k in strip]
        else:
            captions = [f"{t[k]:.2f} s" + (" (no steady stride)" if i == 0 else "") for i, k in enumerate(strip)]
        npy, hdr = log.path.with_suffix(".npy"), log.path.with_suffix(".json")
        items.append({"key": r.label, "npy": str(npy), "json": str(hdr), "rows": strip + gif_rows})
        plan.plans.append((r.label, len(strip), captions))
    if not items:
        film.missing = gif.missing = "no run log with qpos_* columns and the walker's MJCF (an older run-log format)"
        return plan
    if gif_seconds <= 0:
        gif.missing = "the animation was turned off (--gif-seconds 0)"
    plan.job = render.RenderJob(items)
    return plan


def walk_finish(plan: WalkPlan, col: dict[str, str]) -> list[FigureOut]:
    """Wait for the render job; compose the filmstrip (PNG) and the animation (GIF)."""
    from experiments.report import render

    if plan.job is None:
        return [plan.film, plan.gif]
    try:
        frames, errors = plan.job.result()
    except RuntimeError as exc:
        plan.film.missing = plan.gif.missing = str(exc)
        return [plan.film, plan.gif]
    plan.film.notes = [f"{label} not drawn: {why}" for label, why in errors.items()]
    plans = [p for p in plan.plans if p[0] in frames]
    strips = [(label, col[label], frames[label][:n], caps) for label, n, caps in plans]
    plan.film.data = render.filmstrip_png(strips, DPI + 20)
    if plan.gif.missing is None:
        plan.gif.data = render.walk_gif([(label, frames[label][n:]) for label, n, _ in plans], plan.gif_fps)
    return [plan.film, plan.gif]
