"""Building a report: read the runs, aggregate, draw, and write report.html, summary.json, summary.md, figures/.

``build_report(paths, out)`` is what ``legloop report`` and ``legloop demo`` call. It refuses to overwrite an earlier
report unless ``force``; it raises :class:`~experiments.report.load.ReportInputError` (one line) for a path that is
not a run, and turns anything missing inside a run into a note on the page. A `legloop sweep` directory among the
paths adds a Sweep section (:mod:`.sweep`, :mod:`.sweep_figures`, :mod:`.sweep_page`) to the page, summary.json
(``sweeps``) and summary.md.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.report import figures as figs
from experiments.report.html import page
from experiments.report.load import ReportInputError, load_inputs
from experiments.report.summary import build_summary, markdown, reference
from experiments.report.sweep_page import sweep_html, sweep_markdown, sweep_sections

OUTPUTS = ("report.html", "summary.json", "summary.md")


class ReportExistsError(Exception):
    """The output directory already holds a report and ``force`` was not given."""


@dataclass
class ReportResult:
    """Where the report went, how long it took, and its verdict in one paragraph."""

    html: Path
    summary_json: Path
    summary_md: Path
    seconds: float
    headline: str
    summary: dict[str, Any]


@dataclass
class ReportOptions:
    """How much of the walk to render (the slow part: ~20 ms a frame in software GL)."""

    strip_frames: int = 8
    gif_seconds: float = 3.0
    gif_fps: float = 10.0
    render: bool = True


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _jsonable(x.item())
    return x


def _write(path: Path, data: str | bytes) -> None:
    """Atomic: a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def build_report(
    paths: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    force: bool = False,
    options: ReportOptions | None = None,
) -> ReportResult:
    """Read ``paths`` (run directories), write the report into ``out``; see the module docstring."""
    import json

    opts = options or ReportOptions()
    t0 = time.perf_counter()
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportExistsError(f"--out {out_dir} exists and is not a directory")
    taken = [f for f in OUTPUTS if (out_dir / f).exists()]
    if taken and not force:
        raise ReportExistsError(f"{out_dir / taken[0]} already exists; choose another --out or pass --force")
    inp = load_inputs([Path(p) for p in paths])
    if not inp.controllers and not inp.trainings and not inp.replays and not inp.sweeps:
        raise ReportInputError("the runs given hold no closed-loop episodes, training stages, replays or sweeps")
    summary = build_summary(inp)
    sweeps = sweep_sections(inp.sweeps)
    if sweeps:
        summary["sweeps"] = [s for s, _ in sweeps]
        if not inp.controllers:  # the sweeps are the report: their headlines are its headline
            summary["headline"] = " ".join(s["headline"] for s, _ in sweeps)
    ref = reference(inp.controllers)
    col = figs.colours(inp.controllers, ref)
    with_logs = [r for r in inp.controllers if r.runlogs]
    # The walk renders in a child process while this one draws the other figures.
    render = opts.render and opts.strip_frames > 0
    walk = figs.walk_start(with_logs if render else [], opts.strip_frames, opts.gif_seconds, opts.gif_fps)
    figures = [
        figs.gait_cycle(with_logs, col),
        figs.latency_histogram(with_logs, col),
        figs.latency_time(with_logs, col),
        figs.cycles_fired(with_logs, col),
        figs.link_round_trip(with_logs, col),
        figs.link_gait_phase(with_logs, col),
        figs.sparsity_time(with_logs, col),
        figs.return_map(with_logs, col),
    ]
    training_figures = [figs.training_curves(t, i) for i, t in enumerate(inp.trainings)]
    walk_figs = figs.walk_finish(walk, col)
    if not render:
        for f in walk_figs:
            f.missing = "rendering was turned off (--no-render or --frames 0)"
    figures += walk_figs
    if not inp.controllers:
        for f in figures:
            f.data, f.missing = None, "no closed-loop run among the inputs"
    headers = {r.label: [log.header for _, log in sorted(r.runlogs.items())] for r in inp.controllers}
    # Headers carry the MJCF (kilobytes each): the page and summary.json keep only what a reader needs.
    headers = {k: [{kk: vv for kk, vv in h.items() if kk not in ("mjcf", "units", "columns")} for h in v]
               for k, v in headers.items()}  # fmt: skip

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    all_figs = figures + training_figures + [f for _, fs in sweeps for f in fs]
    for f in all_figs:
        if f.data is not None:
            _write(out_dir / "figures" / f"{f.id.removeprefix('fig-')}.{f.ext}", f.data)
    build_s = time.perf_counter() - t0
    generated = time.strftime("%Y-%m-%d %H:%M:%S %z")
    summary["generated"] = generated
    summary["build_seconds"] = round(build_s, 2)
    summary["figures"] = [
        {
            "id": f.id,
            "title": f.title,
            "caption": f.caption,
            "file": f"figures/{f.id.removeprefix('fig-')}.{f.ext}" if f.data is not None else None,
            "missing": f.missing,
            "notes": f.notes,
        }
        for f in all_figs
    ]
    summary["run_log_headers"] = headers
    html_text = page(summary, figures, training_figures, headers, generated, build_s, sweep_html(sweeps))
    md = markdown(summary) if inp.controllers or not sweeps else "# legloop report\n"
    if sweeps:
        md += "\n" + sweep_markdown(sweeps)
    _write(out_dir / "summary.json", json.dumps(_jsonable(summary), indent=1, allow_nan=False) + "\n")
    _write(out_dir / "summary.md", md)
    _write(out_dir / "report.html", html_text)
    return ReportResult(
        out_dir / "report.html",
        out_dir / "summary.json",
        out_dir / "summary.md",
        time.perf_counter() - t0,
        summary["headline"],
        summary,
    )
