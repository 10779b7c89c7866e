"""`legloop report` on `legloop sweep` directories: a real tiny sweep (the PD, a delta-GRU on the CPU and on the
EdgeDRNN model at two thresholds, two added actuation delays, two seeds, and one task that fails) and a PD-only sweep
over speeds, reported from their sweep.json alone; the numbers checked against an aggregation of sweep.json written
here, independently of the report's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments.cli import main

SEEDS = (0, 1)
THETAS = (0.05, 0.3)
DELAYS = (0.0, 20.0)
EDGE_BUDGET_US = 2.0  # below the tiny network's modelled latency on some steps: the deadline has misses to show


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory, make_module_checkpoint: Any) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sweeps")
    ck = make_module_checkpoint("tiny.pt", theta_x=4 / 256, theta_h=0.05, qat=True)
    broken = d / "broken.pt"
    broken.write_text("not a checkpoint")
    (d / "main.toml").write_text(f"""
description = "report test: pd, deltagru and edgedrnn x theta_h x added actuation delay x 2 seeds, 1.5 s"
baseline = "pd"
[defaults]
seconds = 1.5
speed = 1.0
checkpoint = "{ck}"
[[grid]]
net = [
    {{ controller = "pd" }},
    {{ controller = "deltagru" }},
    {{ controller = "edgedrnn", policy = "period", budget_us = {EDGE_BUDGET_US} }},
]
theta_h = {list(THETAS)}
actuation_delay_ms = {list(DELAYS)}
seed = {list(SEEDS)}
[[task]]
controller = "deltagru"
label = "broken"
checkpoint = "{broken}"
""")
    (d / "pd.toml").write_text('[defaults]\nseconds = 1.0\n[[grid]]\ncontroller = "pd"\nspeed = [0.8, 1.2]\n')
    # The failing task makes `legloop sweep` exit 1; every other task finishes.
    assert main(["sweep", "--quiet", "--config", str(d / "main.toml"), "--out", str(d / "main"), "--workers", "1"]) == 1
    assert main(["sweep", "--quiet", "--config", str(d / "pd.toml"), "--out", str(d / "pd"), "--workers", "1"]) == 0
    out = d / "report"
    assert main(["report", str(d / "main"), str(d / "pd"), "--out", str(out)]) == 0
    return {"dir": d, "main": d / "main", "pd": d / "pd", "report": out}


def _summary(sweeps: dict[str, Path]) -> dict[str, Any]:
    return json.loads((sweeps["report"] / "summary.json").read_text())


def _section(sweeps: dict[str, Path], name: str) -> dict[str, Any]:
    (s,) = [s for s in _summary(sweeps)["sweeps"] if s["name"] == name]
    return s


def _doc(path: Path) -> dict[str, Any]:
    return json.loads((path / "sweep.json").read_text())


def _groups(doc: dict[str, Any]) -> dict[frozenset[str], list[dict[str, Any]]]:
    """The evaluation tasks grouped by every parameter but the seed, keyed by their task ids."""
    by: dict[str, list[dict[str, Any]]] = {}
    for t in doc["tasks"]:
        if t["kind"] == "eval":
            key = json.dumps({k: v for k, v in t["params"].items() if k != "seed"}, sort_keys=True)
            by.setdefault(key, []).append(t)
    return {frozenset(t["id"] for t in ts): ts for ts in by.values()}


def _by_tasks(section: dict[str, Any]) -> dict[frozenset[str], dict[str, Any]]:
    return {frozenset(p["task_ids"]): p for p in section["points"]}


# ------------------------------------------------------------------------------------------------ the numbers
def test_points_are_the_sweep_tasks_pooled_over_seeds(sweeps: dict[str, Path]) -> None:
    doc, s = _doc(sweeps["main"]), _section(sweeps, "main")
    groups, points = _groups(doc), _by_tasks(s)
    assert set(points) == set(groups) and len(points) == 2 + 2 * 2 * 2 + 1  # pd; deltagru, edgedrnn; broken
    for ids, ts in groups.items():
        p = points[ids]
        done = [t for t in ts if t["status"] == "done"]
        ms = [t["metrics"] for t in done]
        assert (p["tasks"], p["done"], p["failed"]) == (len(ts), len(done), len(ts) - len(done))
        assert p["episodes"] == len(done) and p["falls"] == (sum(m["fell"] for m in ms) if ms else None)
        if not ms:
            continue
        assert p["knee_rmse_ratio"] == pytest.approx(np.mean([m["knee_rmse_ratio"] for m in ms]), rel=1e-12)
        assert p["distance_m"] == pytest.approx(np.mean([m["distance_m"] for m in ms]), rel=1e-12)
        if ts[0]["params"]["controller"] == "pd":
            assert p["sparsity"] is None and p["latency_p99_us"] is None
            continue
        assert p["sparsity"] == pytest.approx(np.mean([m["sparsity"] for m in ms]), rel=1e-12)
        assert p["latency_p99_us"] == max(m["latency_p99_us"] for m in ms)  # the worst seed
        misses, steps = sum(m["deadline_misses"] for m in ms), sum(m["deadline_steps"] for m in ms)
        assert (p["deadline_misses"], p["deadline_steps"]) == (misses, steps) and steps == 300 * len(ms)
        assert p["miss_fraction"] == pytest.approx(misses / steps)
        assert p["latency_source"] == ("modelled" if ts[0]["params"]["controller"] == "edgedrnn" else "measured")
    # Failed tasks are counted and named, with their error.
    (failed,) = [t for t in doc["tasks"] if t["status"] == "failed"]
    assert s["counts"]["failed"] == 1 and s["counts"]["done"] == doc["counts"]["done"] == 20
    assert s["failed_tasks"] == [{"id": failed["id"], "error": failed["error"]}]
    assert "CheckpointError" in failed["error"]
    assert s["tracking"]["key"] == "knee_rmse_ratio" and s["baseline"] == "pd"
    assert {v["key"] for v in s["varied"]} >= {"controller", "theta_h", "actuation_delay_ms", "budget_us"}


def _dominated(a: tuple[float, ...], others: list[tuple[float, ...]]) -> bool:
    return any(all(o[i] <= a[i] for i in range(3)) and o != a for o in others)


FrontKey = tuple[str, float, str]  # panel, added delay (the condition), latency source


def _expected_fronts(doc: dict[str, Any]) -> tuple[dict[FrontKey, set[frozenset[str]]], dict[FrontKey, set]]:
    """Per added delay (a condition) and panel — sparsity (higher better) or p99 latency per latency source (lower
    better) — with knee RMSE / the PD's and the fall fraction: the undominated groups, and the candidates."""
    expected: dict[FrontKey, set[frozenset[str]]] = {}
    candidates: dict[FrontKey, set[frozenset[str]]] = {}
    for panel in ("sparsity", "latency"):
        objs: dict[tuple[float, str], dict[frozenset[str], tuple[float, ...]]] = {}
        for key, ts in _groups(doc).items():
            ms = [t["metrics"] for t in ts if t["status"] == "done"]
            if not ms or ms[0]["sparsity"] is None:
                continue  # the PD has no network; the broken task finished nothing
            x = -np.mean([m["sparsity"] for m in ms]) if panel == "sparsity" else max(m["latency_p99_us"] for m in ms)
            y = np.mean([m["knee_rmse_ratio"] for m in ms])
            falls = np.mean([m["fell"] for m in ms])
            source = ms[0]["latency_source"] if panel == "latency" else ""
            objs.setdefault((ts[0]["params"]["actuation_delay_ms"], source), {})[key] = (x, y, falls)
        for (delay, source), o in objs.items():
            candidates[(panel, delay, source)] = set(o)
            expected[(panel, delay, source)] = {k for k, v in o.items() if not _dominated(v, list(o.values()))}
    return expected, candidates


def _report_fronts(s: dict[str, Any]) -> tuple[dict[FrontKey, set[frozenset[str]]], dict[FrontKey, set]]:
    ids = {p["id"]: frozenset(p["task_ids"]) for p in s["points"]}
    fronts, candidates = {}, {}
    for panel, frs in s["fronts"].items():
        for fr in frs:
            delay = float(fr["condition"].removeprefix("delay ").removesuffix(" ms"))
            key = (panel, delay, fr["latency_source"] or "")
            fronts[key] = {ids[i] for i in fr["pareto"]}
            candidates[key] = {ids[i] for i in fr["candidates"]}
    return fronts, candidates


def test_the_pareto_set_is_the_non_dominated_points(sweeps: dict[str, Path]) -> None:
    s = _section(sweeps, "main")
    expected, candidates = _expected_fronts(_doc(sweeps["main"]))
    got, got_candidates = _report_fronts(s)
    assert got == expected and got_candidates == candidates
    assert len(got) == 2 * 3  # sparsity x 2 delays, latency x 2 delays x 2 sources
    assert any(len(expected[k]) < len(candidates[k]) for k in expected)  # some points are dominated
    for p in s["points"]:  # membership is marked on the points too
        member = sorted(panel for (panel, _, _), v in got.items() if frozenset(p["task_ids"]) in v)
        assert sorted(p["pareto"]) == member


def test_falls_count_against_a_point_on_the_front(sweeps: dict[str, Path], tmp_path: Path) -> None:
    """The same sweep.json with one fall added to each sparsity front's best point: points it dominated before
    join the front (falls are the third objective), and the report agrees with the independent fronts again."""
    doc = _doc(sweeps["main"])
    before, _ = _expected_fronts(doc)
    for key, front in before.items():
        if key[0] == "sparsity":
            first = next(t for t in doc["tasks"] if t["id"] in sorted(next(iter(front))))
            first["metrics"]["fell"] = True
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "sweep.json").write_text(json.dumps(doc))
    assert main(["report", str(edited), "--out", str(tmp_path / "r")]) == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())["sweeps"][0]
    after, _ = _expected_fronts(doc)
    assert _report_fronts(s)[0] == after
    assert any(len(after[k]) > len(before[k]) for k in after if k[0] == "sparsity")
    fell = [p for p in s["points"] if p["falls"] and p["controller"] != "pd"]
    assert fell and all(p["falls"] == 1 and p["episodes"] == 2 for p in fell)


def test_the_deadline_shares_and_budgets(sweeps: dict[str, Path]) -> None:
    s = _section(sweeps, "main")
    rows = {r["id"]: r for r in s["deadline"]}
    points = {p["id"]: p for p in s["points"]}
    assert len(rows) == 8  # deltagru and edgedrnn at 2 thresholds and 2 delays; the PD measures no latency
    for pid, r in rows.items():
        budget = EDGE_BUDGET_US if points[pid]["controller"] == "edgedrnn" else 21.0
        assert r["budget_us"] == budget
        assert r["miss_fraction"] == pytest.approx(r["deadline_misses"] / r["deadline_steps"])
    assert any(r["deadline_misses"] > 0 and r["latency_p99_us"] > r["budget_us"] for r in rows.values())
    fig = {f["id"]: f for f in _summary(sweeps)["figures"]}["fig-sweep-deadline"]
    assert fig["file"] and fig["missing"] is None and set(fig["notes"]) == {"budget 2 µs", "budget 21 µs"}
    page = (sweeps["report"] / "report.html").read_text()
    worst = max(rows.values(), key=lambda r: r["miss_fraction"])
    assert f"{worst['deadline_misses']}/{worst['deadline_steps']} ({100 * worst['miss_fraction']:.1f} %)" in page


def test_falls_against_added_latency(sweeps: dict[str, Path]) -> None:
    doc, s = _doc(sweeps["main"]), _section(sweeps, "main")
    delay = s["delay"]
    assert delay["axis"] == "actuation_delay_ms" and delay["unit"] == "ms"
    assert len(delay["lines"]) == 1 + 2 + 2 and all(line["x"] == list(DELAYS) for line in delay["lines"])
    points = {p["id"]: p for p in s["points"]}
    for line in delay["lines"]:
        (name,) = {points[i]["name"] for i in line["point_ids"]}
        for pid, x, falls, n in zip(line["point_ids"], line["x"], line["falls"], line["episodes"], strict=True):
            ts = [t for t in doc["tasks"] if t["id"] in points[pid]["task_ids"]]
            assert all(t["params"]["actuation_delay_ms"] == x and t["params"]["controller"] == name for t in ts)
            assert (falls, n) == (sum(t["metrics"]["fell"] for t in ts), len(ts))
    assert "pd" in {line["label"] for line in delay["lines"]}
    fig = {f["id"]: f for f in _summary(sweeps)["figures"]}["fig-sweep-delay"]
    assert fig["file"] and (sweeps["report"] / fig["file"]).is_file()


# ------------------------------------------------------------------------------------------------ the page
def test_the_page_has_the_sweep_section_table_and_figures(sweeps: dict[str, Path]) -> None:
    from PIL import Image

    page = (sweeps["report"] / "report.html").read_text()
    s = _section(sweeps, "main")
    assert '<h2 id="sweep">' in page and 'href="#sweep"' in page
    assert 'id="table"' not in page and 'id="verdict"' not in page  # sweeps alone: no per-run comparison
    for kind in ("pareto", "deadline", "delay"):
        assert re.search(rf'<img id="img-sweep-{kind}" alt="[^"]+" src="data:image/png;base64,', page), kind
        png = sweeps["report"] / "figures" / f"sweep-{kind}.png"
        with Image.open(png) as im:
            assert im.size[0] > 400 and im.size[1] > 200
    # The table: a row per point, units in the headers, falls with their denominator, the failure named.
    table = page[page.index('<table id="sweep-table">') : page.index("</table>", page.index('id="sweep-table"'))]
    assert table.count("<tr data-point=") == len(s["points"])
    assert 'delay<span class="unit">ms</span>' in table and '<span class="unit">µs, worst seed</span>' in table
    assert re.search(r'data-key="falls">\d/2 seeds<', table)
    assert s["failed_tasks"][0]["id"] in page and "Failed tasks: 1 of 21" in page
    assert "<script" not in page
    md = (sweeps["report"] / "summary.md").read_text()
    assert "## Sweep: main" in md and s["headline"] in md and s["failed_tasks"][0]["id"] in md
    assert re.search(r"^\| P1 \| pd \|", md, re.M)


def test_a_figure_that_cannot_be_drawn_is_a_note_saying_why(sweeps: dict[str, Path]) -> None:
    s = _section(sweeps, "pd")
    assert s["fronts"] == {} and s["deadline"] == [] and s["delay"] is None
    figs = {f["id"]: f for f in _summary(sweeps)["figures"] if f["id"].startswith("fig-sweep2-")}
    assert set(figs) == {"fig-sweep2-pareto", "fig-sweep2-deadline", "fig-sweep2-delay"}
    assert all(f["file"] is None for f in figs.values())
    assert "measured temporal sparsity or inference latency" in figs["fig-sweep2-pareto"]["missing"]
    assert "no task measured inference latency" in figs["fig-sweep2-deadline"]["missing"]
    assert "did not vary actuation_delay_ms or jitter_ms" in figs["fig-sweep2-delay"]["missing"]
    page = (sweeps["report"] / "report.html").read_text()
    for fid, f in figs.items():
        block = re.search(rf'<figure class="missing" id="{fid}">.*?</figure>', page, re.S)
        assert block and "<img" not in block.group(0)
        assert f"Not drawn: {f['missing']}." in block.group(0).replace("&#x27;", "'")
    assert not list((sweeps["report"] / "figures").glob("sweep2-*"))
    # The main sweep drew all three.
    assert all(f["missing"] is None for f in _summary(sweeps)["figures"] if f["id"].startswith("fig-sweep-"))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda doc: "{not json", "sweep.json: not valid JSON"),
        (lambda doc: json.dumps(doc | {"schema": "legloop.sweep/0"}), "schema 'legloop.sweep/0', expected"),
        (lambda doc: json.dumps({k: v for k, v in doc.items() if k != "tasks"}), "no 'tasks' list"),
        (lambda doc: json.dumps(doc | {"tasks": [{**doc["tasks"][0], "params": None}]}), "tasks[0] has no 'params'"),
        (lambda doc: json.dumps(doc | {"tasks": [{**doc["tasks"][0], "status": "ok"}]}), "has status 'ok'"),
    ],
)
def test_a_broken_sweep_json_is_a_one_line_error(
    sweeps: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, message: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "sweep.json").write_text(edit(_doc(sweeps["pd"])))
    code = main(["report", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and str(bad / "sweep.json") in err
    assert not (tmp_path / "r").exists()
