"""`legloop report`: built from real runs (a PD and a tiny delta-GRU on the CPU and on the EdgeDRNN model), its numbers
checked against what the runs recorded, its page opened in headless Chromium, and bad input refused in one line."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.checkpoint import CheckpointMeta, save_checkpoint
from controllers.deltagru import DeltaGRU
from controllers.features import Normalizer
from envs.gait_events import CONTACT_OFF_N, CONTACT_ON_N, clean_contacts, detect_contacts, gait_events
from experiments.ampro_log import write_csv
from experiments.cli import main
from experiments.report import gait
from experiments.report.load import read_runlog

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("gait-cycle", "latency-hist", "latency-time", "cycles-fired", "sparsity-time", "return-map")
RENDERED = ("filmstrip", "walk")


def _checkpoint(path: Path) -> Path:
    """A tiny delta-GRU with random weights (training is not under test): sparse, and it fits EdgeDRNN."""
    torch.manual_seed(0)
    m = DeltaGRU(5, 16, 2, 2, theta_x=4 / 256, theta_h=0.05, qat=True)
    meta = CheckpointMeta(
        model=m.config(),
        feature_set="ampro",
        input_norm=Normalizer(np.array([0.6, 0, 0, 0, 0], np.float32), np.array([0.5, 0.1, 1, 0.1, 1], np.float32)),
        target_scale=np.array([40.0, 20.0], np.float32),
        target_offset=np.array([10.0, 5.0], np.float32),
    )
    return save_checkpoint(path, m, meta)


def _eval(*args: str) -> None:
    assert main(["eval", "--no-pushes", *args]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real runs: PD 6 s; delta-GRU on the CPU (2 seeds) and on the EdgeDRNN model, each with an open-loop replay of
    the PD's walk — one stand-alone (matched to its run by the report), one inside the run directory."""
    d = tmp_path_factory.mktemp("runs")
    ck = _checkpoint(d / "tiny.pt")
    _eval("--controller", "pd", "--seconds", "6", "--seeds", "0", "--out", str(d / "pd"))
    _eval("--controller", "deltagru", "--checkpoint", str(ck), "--seconds", "3", "--seeds", "0,1", "--out",
          str(d / "deltagru"))  # fmt: skip
    _eval("--controller", "edgedrnn", "--checkpoint", str(ck), "--deadline-policy", "period", "--seconds", "3",
          "--seeds", "0", "--out", str(d / "edgedrnn"))  # fmt: skip
    # The PD's own run log is an AMPRO-schema log: replay it through the learned controllers.
    log = read_runlog(d / "pd" / "runlogs" / "seed_0")
    write_csv(d / "pd_walk.csv", log.cols)
    _eval("--controller", "deltagru", "--checkpoint", str(ck), "--replay", str(d / "pd_walk.csv"), "--out",
          str(d / "replay_deltagru"))  # fmt: skip
    _eval("--controller", "edgedrnn", "--checkpoint", str(ck), "--deadline-policy", "period", "--replay",
          str(d / "pd_walk.csv"), "--out", str(d / "edgedrnn" / "replay"))  # fmt: skip
    out = d / "report"
    argv = ["report", *(str(d / n) for n in ("pd", "deltagru", "edgedrnn", "replay_deltagru"))]
    assert main([*argv, "--out", str(out), "--frames", "4", "--gif-seconds", "1"]) == 0
    return {"dir": d, "report": out, "checkpoint": ck}


def _metrics(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def _osmesa() -> bool:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    return "libOSMesa" in out


# ------------------------------------------------------------------------------------------------ the numbers
def test_summary_numbers_are_the_recorded_metrics(runs: dict[str, Path]) -> None:
    summary = json.loads((runs["report"] / "summary.json").read_text())
    by_label = {c["label"]: c for c in summary["controllers"]}
    assert list(by_label) == ["pd", "deltagru", "edgedrnn"]
    assert summary["reference"] == "pd" and by_label["pd"]["reference"]
    for label in by_label:
        recorded = _metrics(runs["dir"] / label)
        c, eps = by_label[label], recorded["episodes"]
        row = c["row"]
        assert c["episodes"] == eps  # every recorded episode, as written
        assert row["fell"] == sum(e["fell"] for e in eps) == recorded["summary"]["falls"]
        assert row["distance_m"] == pytest.approx(np.mean([e["distance_m"] for e in eps]), rel=1e-12)
        assert row["distance_m"] == pytest.approx(recorded["summary"]["mean_distance_m"], rel=1e-12)
        assert row["knee_rmse_rad"] == pytest.approx(recorded["summary"]["mean_knee_rmse_rad"], rel=1e-12)
        assert row["strides"] == sum(e["strides"] for e in eps)
        mos = [e["mos_min_m"] for e in eps if e["mos_min_m"] is not None]
        assert row["mos_min_m"] == (min(mos) if mos else None)
        if label == "pd":
            assert "latency_p99_us" not in row and c["ratios_to_pd"] == {}
            continue
        assert row["sparsity"] == pytest.approx(recorded["summary"]["mean_sparsity"], rel=1e-12)
        assert row["macs_per_step"] == pytest.approx(recorded["summary"]["mean_macs_per_step"], rel=1e-12)
        assert row["latency_p99_us"] == max(e["latency_us"]["p99"] for e in eps)
        assert row["latency_max_us"] == recorded["summary"]["max_latency_us"]
        assert row["deadline_misses"] == recorded["summary"]["deadline_misses"]
        assert row["deadline_steps"] == sum(e["deadline_steps"] for e in eps)
        assert row["budget_us"] == 21.0 and row["latency_source"] == eps[0]["latency_source"]
        ref = by_label["pd"]["row"]
        assert c["ratios_to_pd"]["knee_rmse_rad"] == pytest.approx(row["knee_rmse_rad"] / ref["knee_rmse_rad"])
    # Replays: the stand-alone one was matched to the CPU delta-GRU, the nested one belongs to its EdgeDRNN run.
    for label, rdir in (
        ("deltagru", runs["dir"] / "replay_deltagru"),
        ("edgedrnn", runs["dir"] / "edgedrnn" / "replay"),
    ):
        joints = _metrics(rdir)["joints"]
        row = by_label[label]["row"]
        assert row["r2_knee"] == joints["knee"]["r2"] and row["nrmse_ankle"] == joints["ankle"]["nrmse"]
    assert summary["replays"] == []
    # The Markdown table has one line per controller and the page's verdict.
    md = (runs["report"] / "summary.md").read_text()
    assert summary["headline"] in md
    assert all(re.search(rf"^\| {re.escape(label)}", md, re.M) for label in by_label)


def test_the_page_is_self_contained_and_has_every_figure(runs: dict[str, Path]) -> None:
    page = (runs["report"] / "report.html").read_text()
    summary = json.loads((runs["report"] / "summary.json").read_text())
    assert "<script" not in page and "<link" not in page and "@import" not in page
    srcs = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert srcs and all(s.startswith("data:image/") for s in srcs), [s[:40] for s in srcs if not s.startswith("data:")]
    assert "@media print" in page
    for kind in FIGURES + (RENDERED if _osmesa() else ()):
        assert re.search(rf'<img id="img-{kind}" alt="[^"]+" src="data:image/(png|gif);base64,', page), kind
        assert (
            runs["report"] / summary["figures"][[f["id"] for f in summary["figures"]].index(f"fig-{kind}")]["file"]
        ).is_file()
    assert summary["headline"] in page.replace("&#x27;", "'")
    for label in ("pd", "deltagru", "edgedrnn"):
        assert f'data-label="{label}"' in page
    assert "weights sha256" in page and "legloop eval --controller edgedrnn" in page
    assert len(page) < 6_000_000  # a few MB at most


def test_report_heel_strikes_are_the_metrics_heel_strikes(runs: dict[str, Path]) -> None:
    """The report re-implements README's gait-event rule (it may not import envs): both agree on a real log."""
    log = read_runlog(runs["dir"] / "pd" / "runlogs" / "seed_0")
    f, dt = log.cols["foot_force_prosthesis"], log.dt
    dwell, gap = round(0.02 / dt), round(0.1 / dt)
    expected, _ = gait_events(clean_contacts(detect_contacts(f, CONTACT_ON_N, CONTACT_OFF_N, dwell), gap))
    # The report keeps its own copy of the rule (it reads logs made anywhere): the same thresholds, by value.
    assert (gait.CONTACT_ON_N, gait.CONTACT_OFF_N) == (CONTACT_ON_N, CONTACT_OFF_N)
    got = gait.heel_strikes(f, dt)
    assert got.size >= 4
    np.testing.assert_array_equal(got, expected)


def test_report_package_imports_none_of_the_code_that_writes_runs() -> None:
    forbidden = {"envs", "controllers", "hil", "firmware_bridge"}
    for path in [*(ROOT / "experiments" / "report").glob("*.py"), ROOT / "experiments" / "cmd_report.py"]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in forbidden, f"{path.name} imports {n}"
    # And nothing it imports does so behind its back.
    code = (
        "import sys, experiments.report, experiments.cmd_report, experiments.report.render; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(forbidden)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ in a browser
def test_the_page_loads_in_headless_chromium(runs: dict[str, Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (scripts/system-deps.sh installs Debian's chromium as root)")
    from PIL import Image

    flags = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
    ]  # fmt: skip
    page = runs["report"] / "report.html"
    shot = tmp_path / "shot.png"
    size = "--window-size=1200,2400"
    res = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'p1'}", size, f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file(), res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    px = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert px.std() > 10 and len(np.unique(px.reshape(-1, 3), axis=0)) > 50  # not blank: text, tables, plots
    # Every image decodes: a copy of the page with a probe script reports broken images in its title.
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load',()=>{const b=[...document.images].filter(i=>!(i.complete&&"
        "i.naturalWidth>0)).map(i=>i.id);document.title='IMAGES '+document.images.length+' BAD '+b.join(',');});"
        "</script>"
    )
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    res = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'p2'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    m = re.search(r"<title>IMAGES (\d+) BAD ([^<]*)</title>", res.stdout)
    assert m, res.stdout[:500]
    assert int(m.group(1)) >= len(FIGURES) and m.group(2) == ""


# ------------------------------------------------------------------------------------------------ bad input
def _report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["report", *argv])
    err = capsys.readouterr().err
    return code, err


def test_a_directory_that_is_not_a_run_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, err = _report(capsys, str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 2 and "not a run directory" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    code, err = _report(capsys, str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"))
    assert code == 2 and "no such directory" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    code, err = _report(capsys, str(tmp_path / "bad"), "--out", str(tmp_path / "r"))
    assert code == 2 and "not valid JSON" in err and err.count("\n") == 1


def test_an_older_or_empty_run_gives_a_page_that_says_what_is_missing(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    # Older format: no run logs, and a metrics.json without the newer keys.
    old = tmp_path / "old"
    old.mkdir()
    m = _metrics(runs["dir"] / "pd")
    for e in m["episodes"]:
        for k in ("floquet_max", "mos_min_m", "stride_time_cv", "run_log", "nonfinite_obs"):
            e.pop(k, None)
    m["config"].pop("run_logs")
    (old / "metrics.json").write_text(json.dumps(m))
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "metrics.json").write_text(json.dumps({"controller": "pd", "config": {}, "episodes": []}))
    out = tmp_path / "r"
    code, err = _report(capsys, str(old), str(empty), "--out", str(out), "--no-render")
    assert code == 0, err
    page = (out / "report.html").read_text()
    assert "no run logs in runlogs/" in page and "an older run format" in page
    assert "has no &#x27;floquet_max&#x27;" in page
    assert "the run has no episodes" in page
    assert "Not drawn: no run log with at least two steady heel strikes" in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["controllers"][0]["row"]["distance_m"] == pytest.approx(m["summary"]["mean_distance_m"])
    # A report is never overwritten without --force.
    before = (out / "report.html").read_bytes()
    code, err = _report(capsys, str(old), "--out", str(out), "--no-render")
    assert code == 2 and "already exists" in err and (out / "report.html").read_bytes() == before
    assert _report(capsys, str(old), "--out", str(out), "--no-render", "--force")[0] == 0


def test_a_run_killed_mid_run_and_no_gl_context_still_give_a_page(runs: dict[str, Path], tmp_path: Path, capsys,
                                                                  monkeypatch) -> None:  # fmt: skip
    run = tmp_path / "killed"
    shutil.copytree(runs["dir"] / "pd", run)
    hdr_path = run / "runlogs" / "seed_0.json"
    hdr = json.loads(hdr_path.read_text())
    data = np.load(run / "runlogs" / "seed_0.npy")
    data[1000:] = np.nan  # the rows after the last flush of a killed run
    np.save(run / "runlogs" / "seed_0.npy", data)
    hdr |= {"complete": False, "ended": None, "rows_flushed": 1000}
    hdr.pop("rows")
    hdr_path.write_text(json.dumps(hdr))
    assert read_runlog(run / "runlogs" / "seed_0").rows == 1000
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    out = tmp_path / "r"
    code, err = _report(capsys, str(run), "--out", str(out), "--frames", "2", "--gif-seconds", "0")
    assert code == 0, err
    page = (out / "report.html").read_text()
    assert re.search(r'id="fig-filmstrip".*?Not drawn: no frames from MuJoCo \(MUJOCO_GL=no-such-backend\)', page,
                     re.S)  # fmt: skip
    assert 'id="img-gait-cycle"' in page


def test_link_statistics_of_a_board_run_are_summed_and_shown(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    """Board runs add ``link`` {counters, round_trip_us{…}, injected{…}} per episode (the documented format)."""
    board = tmp_path / "board"
    shutil.copytree(runs["dir"] / "deltagru", board)
    m = _metrics(board)
    for i, e in enumerate(m["episodes"]):
        e["link"] = {"crc_errors": i + 1, "timeouts": 0, "round_trip_us": {"p99": 300.0 + i, "max": 900.0 * (i + 1)},
                     "injected": {"drop": 2}}  # fmt: skip
    (board / "metrics.json").write_text(json.dumps(m))
    out = tmp_path / "r"
    code, err = _report(capsys, str(board), "--out", str(out), "--no-render")
    assert code == 0, err
    link = json.loads((out / "summary.json").read_text())["controllers"][0]["row"]["link"]
    n = len(m["episodes"])
    assert link["crc_errors"] == n * (n + 1) // 2 and link["injected"]["drop"] == 2 * n
    assert link["round_trip_us"] == {"p99": 300.0 + n - 1, "max": 900.0 * n}
    assert 'id="link"' in (out / "report.html").read_text()
