"""`legloop sweep`: real processes on a tiny sweep — local pool and Ray give the same results, a re-run skips finished
tasks, a failing task is recorded and the others finish, Ctrl-C keeps what finished, bad configs are one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.sweep_config import SweepConfigError, expand, load_sweep
from experiments.sweep_task import METRICS

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "configs" / "sweep_tiny.toml"
# Metrics that are the same wherever the episode runs (not the measured CPU latency or wall time).
DETERMINISTIC = ("fell", "distance_m", "strides", "knee_rmse_rad", "ankle_rmse_rad", "sparsity", "macs_per_step",
                 "episode_slope_deg")  # fmt: skip


def _sweep(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sweep", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _doc(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sweep (1 training task, 4 evaluation tasks of 3 s) on a local pool of 2."""
    out = tmp_path_factory.mktemp("sweep") / "pool"
    assert main(["sweep", "--quiet", "--config", str(TINY), "--out", str(out), "--workers", "2"]) == 0
    return out


def test_tiny_sweep_runs_every_task_and_writes_a_self_describing_sweep_json(pool_run: Path) -> None:
    doc = _doc(pool_run)
    assert doc["counts"]["done"] == 5 and doc["counts"]["executed"] == 5
    kinds = sorted(t["kind"] for t in doc["tasks"])
    assert kinds == ["eval"] * 4 + ["train"]
    for t in doc["tasks"]:
        assert t["status"] == "done" and (pool_run / t["dir"] / "metrics.json").is_file()
        if t["kind"] == "eval":
            assert set(t["metrics"]) == set(METRICS)  # flat, every key present (None where it does not apply)
            assert set(t["params"]) >= set(doc["params"])
    pd = [t for t in doc["tasks"] if t["params"]["controller"] == "pd"]
    learned = [t for t in doc["tasks"] if t["params"]["controller"] == "deltagru"]
    assert all(t["metrics"]["knee_rmse_ratio"] == 1.0 for t in pd)
    assert all(t["metrics"]["sparsity"] is not None and t["needs"] for t in learned)
    assert all(t["baseline_task"] in {p["id"] for p in pd} for t in learned)
    # Types and units travel with the file, so a report needs nothing else.
    assert doc["params"]["actuation_delay_ms"]["unit"] == "ms" and doc["metrics"]["knee_rmse_rad"]["type"] == "float"


def test_a_task_gives_what_legloop_eval_gives(pool_run: Path) -> None:
    """No second loop: the sweep's PD episode equals `evaluate` with the same parameters, in this process."""
    from experiments.evaluate import evaluate
    from experiments.sweep_task import eval_config
    from hil.spec import ControllerSpec

    t = next(t for t in _doc(pool_run)["tasks"] if t["params"]["controller"] == "pd" and t["params"]["seed"] == 1)
    with ControllerSpec("pd").factory() as factory:
        (ep,) = evaluate(factory, eval_config(t["params"]), pushes=False)
    assert ep["knee_rmse_rad"] == t["metrics"]["knee_rmse_rad"] and ep["distance_m"] == t["metrics"]["distance_m"]


def test_rerun_skips_finished_tasks(pool_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(pool_run.glob("tasks/*/metrics.json"))
    before = {
        p: (p.stat().st_mtime_ns, json.loads(p.read_text())["pid"]) for p in pool_run.glob("tasks/*/metrics.json")
    }
    code, out, _ = _sweep(capsys, "--config", str(TINY), "--out", str(pool_run))
    assert code == 0 and "0 run now, 5 finished earlier" in out
    doc = _doc(pool_run)
    assert doc["counts"]["executed"] == 0 and doc["counts"]["skipped"] == 5
    assert not any(t["executed"] for t in doc["tasks"])
    after = {p: (p.stat().st_mtime_ns, json.loads(p.read_text())["pid"]) for p in files}
    assert after == before and len(after) == 5


def test_ray_gives_the_same_results(pool_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="ray is an optional extra (pip install 'legloop[ray]') and is not installed")
    out = tmp_path / "ray"
    # The finished training task is copied: the Ray run resumes from it and runs the 4 evaluation tasks.
    train = next(t for t in _doc(pool_run)["tasks"] if t["kind"] == "train")
    shutil.copytree(pool_run / train["dir"], out / train["dir"])
    code, _, err = _sweep(capsys, "--config", str(TINY), "--out", str(out), "--ray", "--workers", "2")
    assert code == 0, err
    doc = _doc(out)
    assert doc["executor"]["kind"] == "ray" and doc["counts"]["executed"] == 4 and doc["counts"]["done"] == 5
    pool = {t["id"]: t for t in _doc(pool_run)["tasks"]}
    for t in doc["tasks"]:
        assert t["id"] in pool  # same ids: the id is a hash of the parameters, not of the run
        if t["kind"] == "eval":
            assert {k: t["metrics"][k] for k in DETERMINISTIC} == {
                k: pool[t["id"]]["metrics"][k] for k in DETERMINISTIC
            }
            assert json.loads((out / t["dir"] / "metrics.json").read_text())["pid"] != os.getpid()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_failing_task_is_recorded_and_the_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = _write(tmp_path / "broken.pt", "not a checkpoint")
    cfg = _write(
        tmp_path / "fail.toml",
        f"""
[defaults]
seconds = 1.0
[[grid]]
controller = "pd"
seed = [0, 1]
[[task]]
controller = "deltagru"
checkpoint = "{broken}"
""",
    )
    out = tmp_path / "out"
    code, _, err = _sweep(capsys, "--config", str(cfg), "--out", str(out), "--workers", "2")
    assert code == 1 and "1 task(s) failed" in err and "run the same command to retry" in err
    doc = _doc(out)
    assert (doc["counts"]["tasks"], doc["counts"]["done"], doc["counts"]["failed"]) == (3, 2, 1)
    (bad,) = [t for t in doc["tasks"] if t["status"] == "failed"]
    rec = json.loads((out / bad["dir"] / "error.json").read_text())
    assert (
        rec["error"]["type"] == "CheckpointError" and "Traceback (most recent call last)" in rec["error"]["traceback"]
    )
    assert "CheckpointError" in bad["error"] and not (out / bad["dir"] / "metrics.json").exists()
    # A failed task is retried on the next run; finished ones are not.
    code, _, _ = _sweep(capsys, "--config", str(cfg), "--out", str(out))
    assert code == 1 and _doc(out)["counts"]["executed"] == 1


def test_ctrl_c_keeps_finished_tasks_and_says_how_to_resume(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path / "long.toml", "[defaults]\nseconds = 10.0\n[[grid]]\ncontroller = 'pd'\nseed = [0, 1, 2, 3]\n"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", "--quiet", "--config", str(cfg), "--out", str(out),
           "--workers", "1"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # Its own session: Ctrl-C at a terminal goes to the whole process group, so does this SIGINT.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("tasks/*/metrics.json")):
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before a task finished"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "to resume, run the same command again" in err and "Traceback" not in err
    doc = _doc(out)
    assert doc["interrupted"] and 1 <= doc["counts"]["done"] < 4
    assert doc["counts"]["done"] + doc["counts"]["interrupted"] + doc["counts"]["not_run"] == 4
    assert not list(out.rglob("*.tmp"))  # atomic writes: nothing half-written
    done = doc["counts"]["done"]
    assert main(["sweep", "--quiet", "--config", str(cfg), "--out", str(out), "--workers", "2"]) == 0
    assert _doc(out)["counts"]["executed"] == 4 - done


# ---------------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[grid]]\ncontroller = 'pd'\nspeed = 'fast'\n", "[[grid]] 1.speed must be a number"),
        ("[[grid]]\ncontroller = 'pd'\nsped = [1.0]\n", "unknown parameter [[grid]] 1.sped"),
        ("[[grid]]\ncontroller = 'pd'\nspeed = [1.0, 3.0]\n", "speed[1] → speed must be a number in [0.6, 1.5] m/s"),
        ("[[grid]]\ncontroller = 'pd'\ntheta_h = [0.1, 0.2]\n", "theta_h applies to deltagru, edgedrnn only"),
        ("[[grid]]\ncontroller = 'gru'\n", "checkpoint is missing: controller 'gru' needs a checkpoint"),
        ("[[grid]]\ncontroller = 'pd'\nseed = []\n", "seed is an empty list"),
        ("[defaults]\nseconds = 1\n", "no tasks: give at least one [[grid]] or [[task]]"),
        ("workers = 2\n[[grid]]\ncontroller = 'pd'\n", "unknown top-level key(s) workers"),
        ("[[grid]]\ncontroller = 'lqr'\n", "controller must be one of 'pd'"),
        ("[[grid]]\ncontroller = 'deltagru'\ntrain.model.hidden = 64\n", "train.model.hidden: unknown training config"),
        ("[[grid]]\ncontroller = 'deltagru'\ntrain.model.hidden_size = 100\n", "model.hidden_size must be a multiple"),
        ("[[grid]]\ncontroller = 'pd'\nlink_faults = 'drop 1%'\n", "link_faults applies to edgedrnn only"),
        ("[[grid]\n", "is not valid TOML"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    cfg = _write(tmp_path / "bad.toml", text)
    code, _, err = _sweep(capsys, "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("legloop sweep: error: ")
    assert not (tmp_path / "out").exists()


def test_ids_are_stable_and_coinciding_tasks_run_once(tmp_path: Path) -> None:
    ckpt = _write(tmp_path / "c.pt", "")
    raw = {
        "defaults": {"seconds": 5.0, "checkpoint": str(ckpt)},
        "grid": [{"controller": ["pd", "deltagru"], "theta_h": [0.25, 0.5], "seed": [0, 1]}],
    }
    a = expand(raw, tmp_path / "s.toml")
    ids = [t.id for t in a.tasks]
    assert len(ids) == 2 + 4  # the PD takes no threshold: its 4 combinations are 2 tasks
    assert ids == [t.id for t in expand(raw, tmp_path / "s.toml").tasks]
    reordered = {"defaults": raw["defaults"], "grid": [{"seed": [0, 1], "theta_h": [0.25, 0.5],
                                                         "controller": ["pd", "deltagru"]}]}  # fmt: skip
    assert sorted(ids) == sorted(t.id for t in expand(reordered, tmp_path / "s.toml").tasks)
    # A value equal to the default does not change the id; any other value does.
    same = expand({**raw, "defaults": raw["defaults"] | {"speed": 1.0}}, tmp_path / "s.toml")
    assert [t.id for t in same.tasks] == ids
    other = expand({**raw, "defaults": raw["defaults"] | {"speed": 1.2}}, tmp_path / "s.toml")
    assert not set(ids) & {t.id for t in other.tasks}
    # --set replaces a key everywhere; a list makes it an axis.
    pd_only = expand(raw, tmp_path / "s.toml", {"controller": "pd", "seed": [0, 1, 2]})
    assert [t.params["controller"] for t in pd_only.tasks] == ["pd"] * 3


def test_shipped_configs_expand(tmp_path: Path) -> None:
    ckpt = str(_write(tmp_path / "c.pt", ""))
    sizes = {"sweep_acceptance": 75, "sweep_theta": 5 + 60 + 6, "sweep_latency": 60}
    for name, n in sizes.items():
        cfg = load_sweep(ROOT / "experiments" / "configs" / f"{name}.toml", {"checkpoint": ckpt})
        assert len(cfg.eval_tasks) == n and not cfg.train_tasks, name
    with pytest.raises(SweepConfigError, match="checkpoint is missing"):
        load_sweep(ROOT / "experiments" / "configs" / "sweep_acceptance.toml")
    tiny = load_sweep(TINY)
    assert (len(tiny.eval_tasks), len(tiny.train_tasks)) == (4, 1)


def test_link_faults_run_the_export_on_the_emulated_board(
    make_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = make_checkpoint("c.pt", theta_x=0.02, theta_h=0.02)
    cfg = _write(
        tmp_path / "link.toml",
        f"""
[defaults]
seconds = 2.0
checkpoint = "{ckpt}"
policy = "none"
[[grid]]
controller = ["pd", "edgedrnn"]
link_faults = ["", "board", "drop=0.05,seed=1"]
""",
    )
    code, _, err = _sweep(capsys, "--config", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1")
    assert code == 0, err
    tasks = _doc(tmp_path / "out")["tasks"]
    # The PD takes no link: its link_faults is left out and its tasks coincide into one.
    assert sorted((t["params"]["controller"], t["params"]["link_faults"] or "") for t in tasks) == [
        ("edgedrnn", ""),
        ("edgedrnn", "board"),
        ("edgedrnn", "drop=0.05,seed=1"),
        ("pd", ""),
    ]
    records = {
        t["params"]["link_faults"] or "": tmp_path / "out" / t["dir"] / "metrics.json"
        for t in tasks
        if t["params"]["controller"] == "edgedrnn"
    }
    details = {k: json.loads(p.read_text())["detail"]["episode"] for k, p in records.items()}
    assert "link" not in details[""]  # in process
    assert details["board"]["link"]["steps_lost"] == 0 and details["board"]["link"]["steps"] > 0
    faulty = details["drop=0.05,seed=1"]["link"]
    assert faulty["injected"]["drop"] > 0 and faulty["timeouts"] == faulty["injected"]["drop"] == faulty["steps_lost"]
    # The board computes what the in-process model does: the same sparsity on the fault-free link. (Policy "none":
    # under `hold` a round trip over the 5 ms period — a loaded host's scheduling, not the board's computation —
    # holds the torque and the two walks part; a lost step holds it under every policy.)
    assert details["board"]["sparsity"] == details[""]["sparsity"]


def test_a_bad_link_faults_value_is_one_line_naming_it(
    make_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = make_checkpoint("c.pt")
    text = f'[[task]]\ncontroller = "edgedrnn"\ncheckpoint = "{ckpt}"\nlink_faults = "dorp=0.1"\n'
    cfg = _write(tmp_path / "bad.toml", text)
    code, _, err = _sweep(capsys, "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and "link_faults" in err and "'dorp=0.1'" in err and len(err.strip().splitlines()) == 1


def test_a_sweeps_link_waits_for_a_busy_machine_and_timeout_ms_overrides_it() -> None:
    from hil.board_backend import SWEEP_STEP_TIMEOUT_S, link_from_text

    board = link_from_text("board")
    assert board is not None and board.step_timeout_s == SWEEP_STEP_TIMEOUT_S >= 0.05
    faulty = link_from_text("drop=0.01, timeout_ms=250, seed=2")
    assert faulty is not None and faulty.step_timeout_s == 0.25 and faulty.faults.drop == 0.01
    with pytest.raises(ValueError, match="timeout_ms"):
        link_from_text("timeout_ms=fast")
