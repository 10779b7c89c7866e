"""The report page: one self-contained HTML file (inline CSS, images as data URIs, no script, no external fetch).

It opens offline, can be mailed or attached to a pull request as it is, and prints: a print stylesheet drops the
navigation, keeps each figure and table row on one page and prints the verdict box in black and white.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from experiments.report.figures import FigureOut
from experiments.report.summary import METRICS, fmt_value

CSS = """
:root { --fg:#1b1f24; --muted:#5b6570; --line:#d8dde3; --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 2px; } h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid
var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.meta, .note, figcaption, .small { color: var(--muted); font-size: 12.5px; }
nav { font-size: 13px; margin: 8px 0 0; } nav a { margin-right: 12px; color: #0969da; text-decoration: none; }
.verdict { border: 2px solid var(--line); border-radius: 8px; padding: 12px 16px; background: var(--bg2); }
.verdict p.headline { font-size: 16px; font-weight: 600; margin: 0 0 8px; }
.verdict ul { margin: 0; padding-left: 18px; } .verdict li { margin: 4px 0; }
.badge { display: inline-block; font-size: 11.5px; font-weight: 600; border-radius: 10px; padding: 0 8px;
         margin-right: 4px; border: 1px solid currentColor; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); } .na { color: var(--muted); }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: right; vertical-align: top; }
td { white-space: nowrap; } td[data-key=policy_actions] { white-space: normal; min-width: 9em; }
th { background: var(--bg2); font-weight: 600; } th .unit { display: block; font-weight: 400; color: var(--muted); }
td.label, th.label { text-align: left; white-space: nowrap; } tr.ref td { background: #fbfbf3; }
td .ratio { display: block; color: var(--muted); font-size: 11px; }
table.kv td, table.kv th { text-align: left; white-space: normal; }
table.kv td { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; word-break: break-all; }
figure { margin: 18px 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.missing { border: 1px dashed var(--line); padding: 8px 12px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { background: var(--bg2); padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; } nav { display: none; }
  .verdict { background: none; border: 1.5px solid #000; }
  figure, table, tr, .verdict { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; } a { color: inherit; text-decoration: none; } .tablewrap { overflow: visible; }
  figure img { border: none; max-height: 24cm; }
}
"""

# The comparison in two tables (one wide table does not fit a page): closed-loop walking, then the learned
# controllers' imitation, compute and timing.
TABLES = (
    (
        "comparison",
        "Walking: stability, gait and tracking",
        (
            ("stability", ("falls", "first_fall_s", "distance_m", "strides", "floquet_max", "mos_min_m",
                           "max_push_survived_n")),
            ("gait", ("stride_time_cv", "step_time_asymmetry")),
            ("tracking", ("knee_rmse_rad", "ankle_rmse_rad")),
        ),
    ),
    (
        "comparison-timing",
        "Learned controllers: imitation, compute and deadline",
        (
            ("imitation (replay)", ("r2", "nrmse")),
            ("compute", ("sparsity", "macs_per_step")),
            ("deadline", ("deadline", "policy_actions", "budget_us")),
            ("latency", ("latency_p50_us", "latency_p99_us", "latency_p99_9_us", "latency_max_us", "latency_source")),
        ),
    ),
)  # fmt: skip


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _badge(flag: bool | None, yes: str, no: str, na: str) -> str:
    if flag is None:
        return f'<span class="badge na">{esc(na)}</span>'
    return f'<span class="badge {"ok" if flag else "bad"}">{esc(yes if flag else no)}</span>'


def verdict_box(summary: dict[str, Any]) -> str:
    items = []
    for c in summary["controllers"]:
        v = c["verdict"]
        badges = _badge(v["stable"], "stable", "not stable", "no episodes")
        if v["deadline_met"] is False and not v.get("enforced"):
            badges += '<span class="badge warn">over budget (target only)</span>'
        else:
            badges += _badge(v["deadline_met"], "deadline met", "deadline missed", "no deadline")
        ref = " (reference)" if c["reference"] else ""
        items.append(f"<li>{badges} <b>{esc(c['label'])}</b>{esc(ref)}: {esc(v['text'])}</li>")
    return (
        f'<section class="verdict" id="verdict"><p class="headline">{esc(summary["headline"])}</p>'
        f"<ul>{''.join(items)}</ul></section>"
    )


def comparison_tables(summary: dict[str, Any]) -> str:
    """The two comparison tables; the second has the controllers with any imitation, compute or timing value."""
    metrics = {m.key: m for m in METRICS}
    out = []
    for table_id, title, groups_all in TABLES:
        controllers = summary["controllers"]
        if table_id != "comparison":
            every = [k for _, ks in groups_all for k in ks]
            controllers = [c for c in controllers if any(c["row"].get(k) is not None for k in every)]
            if not controllers:
                continue
        rows = [c["row"] for c in controllers]
        # Drop columns no controller has a value in (e.g. NRMSE without a replay); stability columns always stay.
        groups: list[tuple[str, list[str]]] = []
        for name, keys in groups_all:
            keep = [k for k in keys if any(r.get(k) is not None for r in rows) or name == "stability"]
            if keep:
                groups.append((name, keep))
        head1 = '<th class="label" rowspan="2">controller</th>' + "".join(
            f'<th colspan="{len(keys)}">{esc(name)}</th>' for name, keys in groups
        )
        head2 = "".join(
            f'<th>{esc(metrics[k].header)}<span class="unit">{esc(metrics[k].unit) or "&nbsp;"}</span></th>'
            for _, keys in groups
            for k in keys
        )
        body = []
        for c in controllers:
            row, rat = c["row"], c["ratios_to_pd"]
            cells = []
            for _, shown in groups:
                for k in shown:
                    m = metrics[k]
                    cell = esc(fmt_value(row.get(k), m.fmt))
                    r = rat.get(k)
                    if m.ratio and r is not None:
                        cell += f'<span class="ratio">{r:.2f}× PD</span>'
                    cells.append(f'<td data-key="{esc(k)}">{cell}</td>')
            label = esc(c["label"]) + (' <span class="small">(ref)</span>' if c["reference"] else "")
            cls = "ref" if c["reference"] else ""
            body.append(
                f'<tr class="{cls}" data-label="{esc(c["label"])}"><td class="label">{label}</td>{"".join(cells)}</tr>'
            )
        out.append(
            f'<h3>{esc(title)}</h3><div class="tablewrap"><table id="{table_id}"><thead><tr>{head1}</tr>'
            f"<tr>{head2}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )
    return "".join(out)


def combine_rules() -> str:
    """How seeds combine, in one sentence grouped by rule."""
    by_rule: dict[str, list[str]] = {}
    for m in METRICS:
        if m.rule not in ("mean", "replay", "as configured", "measured or modelled"):
            by_rule.setdefault(m.rule, []).append(m.header)
    return "; ".join(f"{', '.join(h)}: {r}" for r, h in by_rule.items())


def link_table(summary: dict[str, Any]) -> str:
    rows = [(c["label"], c["row"]["link"]) for c in summary["controllers"] if c["row"].get("link")]
    if not rows:
        return ""
    out = ['<h3 id="link">Serial link (board runs)</h3><table class="kv"><tr><th>controller</th><th>link</th></tr>']
    for label, link in rows:
        out.append(f"<tr><th>{esc(label)}</th><td>{esc(json.dumps(link, sort_keys=True))}</td></tr>")
    out.append("</table><p class='note'>Counters summed over episodes; round-trip µs: the largest episode value.</p>")
    return "".join(out)


def figure_html(f: FigureOut) -> str:
    if f.data is None:
        return (
            f'<figure class="missing" id="{esc(f.id)}"><h3>{esc(f.title)}</h3>'
            f'<p class="note">Not drawn: {esc(f.missing or "no data")}.</p></figure>'
        )
    notes = f" ({'; '.join(esc(n) for n in f.notes)})" if f.notes else ""
    return (
        f'<figure id="{esc(f.id)}"><h3>{esc(f.title)}</h3>'
        f'<img id="img-{esc(f.id.removeprefix("fig-"))}" alt="{esc(f.title)}" src="{data_uri(f.data, f.mime)}">'
        f"<figcaption>{esc(f.caption)}{notes}</figcaption></figure>"
    )


def _kv(pairs: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs if v not in (None, "", {}))
    return f'<table class="kv">{cells}</table>'


def reproduce_command(c: dict[str, Any]) -> str:
    """The `legloop eval` command line that makes the same run (from its recorded configuration)."""
    cfg = c.get("config") or {}
    spec = cfg.get("controller") or {}
    name = spec.get("name") or c["row"].get("controller") or c["label"]
    args = ["legloop", "eval", "--controller", str(name)]
    if spec.get("checkpoint") or cfg.get("checkpoint"):
        args += ["--checkpoint", str(spec.get("checkpoint") or cfg.get("checkpoint"))]
    if spec.get("gain_scale") not in (None, 1.0):
        args += ["--gain-scale", f"{spec['gain_scale']:g}"]
    if name in ("gru", "deltagru", "edgedrnn"):
        budget = spec.get("budget_s")
        if isinstance(budget, (int, float)) and abs(budget * 1e6 - 21.0) > 1e-9:
            args += ["--budget-us", f"{budget * 1e6:g}"]
        if spec.get("policy"):
            args += ["--deadline-policy", str(spec["policy"])]
        if spec.get("governor"):
            args += ["--governor", "reactive" if spec["governor"] is True else str(spec["governor"])]
        clock = spec.get("clock_hz")
        if name == "edgedrnn" and isinstance(clock, (int, float)) and abs(clock - 125e6) > 1:
            args += ["--clock-mhz", f"{clock / 1e6:g}"]
    for key, flag in (("speed", "--speed"), ("seconds", "--seconds")):
        if cfg.get(key) is not None:
            args += [flag, f"{cfg[key]:g}"]
    if cfg.get("seeds"):
        args += ["--seeds", ",".join(str(s) for s in cfg["seeds"])]
    if cfg.get("slope_deg"):
        args += ["--slope", f"{cfg['slope_deg']:g}"]
    if cfg.get("randomize") is False:
        args.append("--no-randomize")
    if cfg.get("pushes") is False:
        args.append("--no-pushes")
    for key, flag in (("actuation_delay_ms", "--actuation-delay-ms"), ("jitter_ms", "--jitter-ms")):
        if cfg.get(key):
            args += [flag, f"{cfg[key]:g}"]
    if cfg.get("realtime"):
        args.append("--realtime")
    args += ["--out", "DIR"]
    return " ".join(args)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)  # a TOML basic string is a JSON string


def toml_text(d: dict[str, Any], prefix: str = "") -> str:
    """A nested dict of scalars and lists as TOML (the training config as `legloop train --config` reads it)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    for k, v in d.items():
        if isinstance(v, dict):
            name = f"{prefix}{k}"
            lines += ["", f"[{name}]", toml_text(v, name + ".").strip()]
    return "\n".join(lines).strip() + "\n"


def config_section(summary: dict[str, Any], runlog_headers: dict[str, list[dict[str, Any]]]) -> str:
    out = ['<h2 id="config">Configuration and reproducibility</h2>']
    for c in summary["controllers"]:
        cfg = c.get("config") or {}
        prov = c.get("provenance") or {}
        ck = c.get("checkpoint") or {}
        out.append(f"<h3>{esc(c['label'])}</h3>")
        pairs: list[tuple[str, Any]] = [
            ("run directory", c["path"]),
            ("controller spec", json.dumps(cfg.get("controller"), sort_keys=True) if cfg.get("controller") else None),
            ("speed m/s · seconds · seeds", f"{cfg.get('speed')} · {cfg.get('seconds')} · {cfg.get('seeds')}"),
            ("randomised · slope ° · pushes", f"{cfg.get('randomize')} · {cfg.get('slope_deg')} · {cfg.get('pushes')}"),
            ("actuation delay / jitter ms", f"{cfg.get('actuation_delay_ms')} / {cfg.get('jitter_ms')}"),
            ("checkpoint", ck.get("path")),
            ("weights sha256", ck.get("weights_sha256") or ("not found on this machine" if ck else None)),
            (
                "checkpoint stage · model",
                f"{ck.get('stage')} · {json.dumps(ck.get('model'))}" if ck.get("model") else None,
            ),
            ("replay", c.get("replay_path")),
            ("versions", ", ".join(f"{k} {v}" for k, v in prov.items() if k in ("python", "mujoco", "numpy"))),
            ("machine · created", f"{prov.get('machine')} ({prov.get('cpus')} CPUs) · {prov.get('created')}"),
        ]
        headers = runlog_headers.get(c["label"]) or []
        if headers:
            h0 = headers[0]
            pairs.append(("backend", json.dumps(h0.get("backend"), sort_keys=True) if h0.get("backend") else "–"))
            pairs.append(("deadline", json.dumps(h0.get("deadline")) if h0.get("deadline") else None))
            for h in headers:
                env = h.get("env") or {}
                pairs.append(
                    (
                        f"seed {h.get('seed')} episode",
                        f"body {env.get('body_mass', 0):.1f} kg, {env.get('body_height', 0):.3f} m; friction "
                        f"{env.get('friction', 0):.2f}; slope {env.get('episode_slope_deg', 0):+.2f}°; "
                        f"{h.get('rows')} rows, ended {h.get('ended')}",
                    )
                )
        out.append(_kv(pairs))
        out.append(f"<pre>{esc(reproduce_command(c))}</pre>")
    for t in summary["trainings"]:
        out.append(f"<h3>training run {esc(t['path'])}</h3>")
        prov = t.get("provenance") or {}
        pairs = [
            ("feature set", t.get("feature_set")),
            ("training seconds", t.get("seconds")),
            ("data", json.dumps(t.get("data"), sort_keys=True)),
            *((f"{k} sha256", v) for k, v in (t.get("weights_sha256") or {}).items()),
            ("versions", ", ".join(f"{k} {v}" for k, v in prov.items() if k in ("python", "mujoco", "numpy"))),
            ("created", prov.get("created")),
        ]
        out.append(_kv(pairs))
        cfg = t.get("config")
        if isinstance(cfg, dict):
            out.append(
                "<details><summary class='small'>training configuration (save as train.toml, then "
                "<code>legloop train --config train.toml --out DIR</code>)</summary>"
                f"<pre>{esc(toml_text(cfg))}</pre></details>"
            )
    return "".join(out)


def training_table(summary: dict[str, Any]) -> str:
    out = []
    for t in summary["trainings"]:
        rows = []
        for s in t["stages"]:
            r2 = s.get("val_r2") or {}
            rows.append(
                "<tr>"
                + "".join(
                    f"<td{' class=label' if i == 0 else ''}>{esc(v)}</td>"
                    for i, v in enumerate(
                        (
                            s.get("name"),
                            s.get("epochs"),
                            fmt_value(s.get("train_loss"), ".4f"),
                            fmt_value(s.get("val_loss"), ".4f"),
                            fmt_value(r2.get("knee"), ".4f"),
                            fmt_value(r2.get("ankle"), ".4f"),
                            fmt_value(s.get("val_sparsity"), ".3f"),
                            fmt_value(s.get("theta_x"), ".4f"),
                            fmt_value(s.get("theta_h"), ".3f"),
                            fmt_value(s.get("seconds"), ".0f"),
                        )
                    )
                )
                + "</tr>"
            )
        heads = ("stage", "epochs", "train loss", "val loss", "val R² knee", "val R² ankle", "val sparsity", "Θx",
                 "Θh", "seconds")  # fmt: skip
        out.append(
            f"<h3>{esc(t['path'])}</h3><table><tr>{''.join(f'<th>{esc(h)}</th>' for h in heads)}</tr>"
            f"{''.join(rows)}</table>"
        )
    return "".join(out)


def page(
    summary: dict[str, Any],
    figures: list[FigureOut],
    training_figures: list[FigureOut],
    runlog_headers: dict[str, list[dict[str, Any]]],
    generated: str,
    build_s: float,
    sweep_html: str = "",
) -> str:
    """The whole page as one string; ``sweep_html``: the Sweep sections (:mod:`.sweep_page`), after the figures.
    A report of sweeps alone has no comparison, run figures or configuration sections."""
    notes = [(c["label"], n) for c in summary["controllers"] for n in c["notes"]]
    notes += [(t["path"], n) for t in summary["trainings"] for n in t["notes"]]
    notes_html = (
        "<h3>What the runs did not have</h3><ul class='note'>"
        + "".join(f"<li><b>{esc(k)}</b>: {esc(n)}</li>" for k, n in notes)
        + "</ul>"
        if notes
        else ""
    )
    replays = ""
    if summary["replays"]:
        replays = (
            "<h3>Replays without a closed-loop run</h3><ul class='note'>"
            + "".join(
                f"<li>{esc(r['path'])}: {esc(r['metrics'].get('controller'))} R² "
                + ", ".join(f"{j} {fmt_value((m or {}).get('r2'), '.3f')}" for j, m in r["metrics"]["joints"].items())
                + "</li>"
                for r in summary["replays"]
            )
            + "</ul>"
        )
    rules = combine_rules()
    ref = summary.get("reference")
    ref_note = (
        f"Ratios (× PD) are to the reference row {esc(ref)}."
        if ref
        else "No PD run among the inputs: no ratios to the PD."
    )
    runs = bool(summary["controllers"]) or not sweep_html
    sections = (("verdict", "verdict"), ("table", "comparison"), ("figures", "figures"), ("sweep", "sweep"),
                ("training", "training"), ("config", "configuration"))  # fmt: skip
    trained = bool(summary["trainings"])
    shown = {"verdict": runs, "table": runs, "figures": runs, "sweep": bool(sweep_html), "training": trained,
             "config": runs or trained}  # fmt: skip
    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in sections if shown.get(i, True))
    train_html = ""
    if summary["trainings"]:
        train_html = (
            '<h2 id="training">Training</h2>'
            + training_table(summary)
            + "".join(figure_html(f) for f in training_figures)
        )
    runs_html = f"""<h2 id="table">Comparison</h2>
{comparison_tables(summary)}
<p class="note">{ref_note} Across seeds: means, except {esc(rules)}. Floquet needs ≥ 30 strides per episode.
RMSE against the AMPRO PD's desired trajectory (a PD runs in shadow); MoS: margin of stability (Hof 2008) at heel
strike; R² and NRMSE: open-loop torque replay of a held-out PD walk (NRMSE by the range of the PD torque); policy
actions: steps held / given the PD's torque / episodes stopped / steps lost.</p>
{link_table(summary)}"""
    figures_html = f"""<h2 id="figures">Figures</h2>
{"".join(figure_html(f) for f in figures)}"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>legloop report</title>
<style>{CSS}</style></head>
<body>
<header><h1>legloop report</h1>
<div class="meta">Generated {esc(generated)} in {build_s:.1f} s from {esc(", ".join(summary["sources"]))}.
Read from the runs' files only: nothing was re-run.</div>
<nav>{nav}</nav></header>
{verdict_box(summary) if runs else ""}
{runs_html if runs else ""}
{notes_html}{replays}
{figures_html if runs else ""}
{sweep_html}
{train_html}
{config_section(summary, runlog_headers) if shown["config"] else ""}
</body></html>
"""
