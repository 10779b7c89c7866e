"""The one closed loop (hil.rollout): safety layer, abort, actuation delay, wall-clock pacing, and the run log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from controllers.pd import AmproPD
from envs.walker_env import ProstheticWalkerEnv
from experiments.cli import main
from experiments.evaluate import EvalConfig, evaluate
from hil.actuation import ActuationDelay, DelayLine
from hil.pacing import Pacer
from hil.rollout import SAFE_TORQUE, LoopAborted, rollout
from hil.runlog import COLUMN_NAMES, RunLog, RunLogError, read_runlog
from hil.spec import ControllerSpec

ROOT = Path(__file__).resolve().parents[1]


class _FlakyPD(AmproPD):
    """The PD, but every `every`-th torque is NaN, and it gives up (LoopAborted) at step `abort_at`."""

    def __init__(self, dt: float, every: int = 0, abort_at: int = -1, **kw) -> None:
        super().__init__(dt, **kw)
        self.every, self.abort_at, self.k = every, abort_at, 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        k, self.k = self.k, self.k + 1
        if k == self.abort_at:
            raise LoopAborted("board silent for 10 periods")
        out = super().act(obs)
        if self.every and k % self.every == self.every - 1:
            return np.array([np.nan, 1.0])
        return out


class _NoisySensorsEnv(ProstheticWalkerEnv):
    """The walker, with an infinite load-cell reading every 50th step (a sensor fault)."""

    def step(self, action):  # type: ignore[override]
        obs, *rest = super().step(action)
        if round(self.time / self.dt) % 50 == 0:
            obs = obs.copy()
            obs[6] = np.inf
        return (obs, *rest)


def test_safety_layer_keeps_non_finite_values_from_the_motors() -> None:
    env = _NoisySensorsEnv(speed=1.0)
    obs, _ = env.reset(seed=0)
    pd = _FlakyPD(env.dt, every=25, walker=env.walker)
    seen: list[tuple[bool, bool]] = []
    r = rollout(env, pd, obs, 400, [lambda k, o, t: seen.append((bool(np.isfinite(o).all()), t is SAFE_TORQUE))])
    assert r.steps == 400 and not r.fell and r.aborted is None
    assert r.nonfinite_obs == 7  # steps 50, 100, …, 350 read the broken sensor (step 400's is never acted on)
    assert r.nonfinite_torque > 0 and r.nonfinite_torque + r.nonfinite_obs == sum(t for _, t in seen)
    assert all(safe for finite, safe in seen if not finite)  # a broken sensor vector never reaches the controller


def test_an_aborted_loop_says_why_and_where() -> None:
    env = ProstheticWalkerEnv()
    obs, _ = env.reset(seed=0)
    r = rollout(env, _FlakyPD(env.dt, abort_at=120, walker=env.walker), obs, 400)
    assert r.aborted == "board silent for 10 periods" and r.steps == 120 and r.ended == "aborted"
    assert env.time == pytest.approx(120 * env.dt)


def test_step_delayed_matches_step_and_holds_the_previous_torque() -> None:
    def run(delay: int | None, previous: np.ndarray | None) -> np.ndarray:
        env = ProstheticWalkerEnv()
        env.reset(seed=1)
        a = np.array([0.3, -0.2])
        for _ in range(20):
            if delay is None:
                env.step(a)
            else:
                env.step_delayed(a, a if previous is None else previous, delay)
        return env.state_vector()

    plain = run(None, None)
    np.testing.assert_array_equal(run(0, np.zeros(2)), plain)  # no delay: the previous torque never acts
    np.testing.assert_array_equal(run(3, None), plain)  # the same torque before and after the change
    assert not np.array_equal(run(3, np.zeros(2)), plain)  # 3 of 5 ms at zero torque: another trajectory
    np.testing.assert_array_equal(run(5, np.array([0.3, -0.2])), plain)  # ≥ a period: `previous` all period


def test_delay_line_newest_command_wins() -> None:
    line = DelayLine(frame_skip=5)
    line.push(0, np.array([1.0, 1.0]), 7)  # arrives in period 1 at substep 2
    assert line.take(0)[2] == 0 and line.take(0)[0].tolist() == [0.0, 0.0]
    line.settle(np.zeros(2))
    line.push(1, np.array([2.0, 2.0]), 1)  # computed later, arrives earlier (substep 1 of period 1)
    before, after, sub = line.take(1)
    assert after.tolist() == [2.0, 2.0] and sub == 1  # the older command (arriving at substep 2) is dropped
    line.settle(after)
    line.push(2, np.array([3.0, 3.0]), 0)
    before, after, sub = line.take(2)
    assert before.tolist() == [3.0, 3.0] and sub == 0


def test_pd_tolerates_a_few_ms_of_actuation_delay_but_not_a_dozen() -> None:
    """Falls against added latency, as the sweeps measure it: the PD walks with 4 ms and falls with 15 ms."""
    cfg = EvalConfig(speed=1.0, seconds=10.0, seeds=(0,), randomize=False)
    with ControllerSpec("pd").factory() as f:
        walk = evaluate(f, replace(cfg, actuation_delay_s=0.004), pushes=False)[0]
        fall = evaluate(f, replace(cfg, actuation_delay_s=0.015), pushes=False)[0]
    assert not walk["fell"] and fall["fell"]
    a = ActuationDelay(0.002, 0.003, seed=1)
    a.reset(7)
    d = [a.substeps(0.001) for _ in range(200)]
    assert min(d) >= 2 and max(d) <= 5 and len(set(d)) > 1
    a.reset(7)
    assert [a.substeps(0.001) for _ in range(200)] == d  # seeded
    with pytest.raises(ValueError, match="delay must be >= 0"):
        ActuationDelay(-0.001)


def test_pacer_runs_at_the_period_and_reports_lateness() -> None:
    p = Pacer(0.002, capacity=8)
    p.start()
    t0 = time.perf_counter()
    for k in range(60):
        assert p.wait(k) >= 0.0
    assert time.perf_counter() - t0 >= 59 * 0.002
    s = p.stats()
    assert s["steps"] == 60 and set(s["lateness_us"]) == {"p50", "p99", "p99_9", "max"}
    assert 0 <= s["lateness_us"]["p50"] <= s["lateness_us"]["max"] and 0 <= s["periods_missed"] <= 60


def test_run_log_round_trip_and_errors(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "a", 10, {"seed": 3})
    for k in range(4):
        log.append(tuple([k * 0.005] + [float(k)] * (len(COLUMN_NAMES) - 1)))
    log.flush()
    header, cols = read_runlog(tmp_path / "a.npy")  # unfinished: the rows written so far
    assert header["rows_flushed"] == 4 and not header["complete"] and len(cols["time"]) == 4
    log.close("completed", {"fell": False})
    header, cols = read_runlog(tmp_path / "a")
    assert header["complete"] and header["ended"] == "completed" and header["seed"] == 3
    assert np.load(tmp_path / "a.npy").shape == (4, len(COLUMN_NAMES))  # trimmed to the rows run
    assert (os.stat(tmp_path / "a.npy").st_mode & 0o777) == 0o666 & ~_umask()
    # Cut in place: a shape with fewer digits in the header, the rows as written, the file no longer than they are.
    big = RunLog(tmp_path / "big", 100_000, {})
    rows = np.arange(3 * len(COLUMN_NAMES), dtype=np.float64).reshape(3, -1) + 0.25
    for r in rows:
        big.append(tuple(r))
    big.close("fell")
    np.testing.assert_array_equal(np.load(tmp_path / "big.npy"), rows)
    np.testing.assert_array_equal(read_runlog(tmp_path / "big")[1]["time"], rows[:, 0])
    assert os.path.getsize(tmp_path / "big.npy") < 1024 + rows.nbytes
    with pytest.raises(IndexError, match="full"):
        full = RunLog(tmp_path / "b", 1, {})
        full.append(tuple([0.0] * len(COLUMN_NAMES)))
        full.append(tuple([0.0] * len(COLUMN_NAMES)))
    with pytest.raises(RunLogError, match="no run log"):
        read_runlog(tmp_path / "missing")
    (tmp_path / "c.json").write_text(json.dumps({"format": "other"}))
    np.save(tmp_path / "c.npy", np.zeros((1, 2)))
    with pytest.raises(RunLogError, match="format 'other'"):
        read_runlog(tmp_path / "c")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_eval_writes_run_logs_that_match_the_episode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ev"
    args = ["eval", "--controller", "pd", "--seconds", "4", "--seeds", "0,1", "--no-pushes", "--out", str(out)]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for ep in metrics["episodes"]:
        header, cols = read_runlog(out / "runlogs" / f"seed_{ep['seed']}")
        assert header["complete"] and header["ended"] == "completed" and header["controller"]["name"] == "pd"
        assert len(cols["time"]) == 800 and np.all(cols["torque_source"] == 0)
        # The logged commanded torque is the PD law on the logged sensors (the shadow PD is the controller).
        np.testing.assert_allclose(cols["torque_actual_knee"], cols["torque_pd_knee"], rtol=0, atol=1e-9)
        assert cols["hip_x"][-1] == pytest.approx(ep["distance_m"], abs=0.2)
    assert "run logs in" in capsys.readouterr().out
    # A forced re-run with other seeds leaves no stale run logs behind.
    assert main([*args[:6], "0", *args[7:], "--force"]) == 0
    assert sorted(p.name for p in (out / "runlogs").iterdir()) == ["seed_0.json", "seed_0.npy"]


@pytest.mark.slow
def test_a_killed_run_leaves_a_log_readable_to_the_last_flush(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "experiments.cli", "eval", "--controller", "pd", "--seconds", "60", "--seeds", "0"]
    cmd += ["--no-pushes", "--realtime", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    header_path = out / "runlogs" / "seed_0.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the run has flushed at least twice (2 s of real time)
        if header_path.exists() and json.loads(header_path.read_text()).get("rows_flushed", 0) >= 400:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the paced run never flushed its log")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    header, cols = read_runlog(out / "runlogs" / "seed_0")
    assert not header["complete"] and header["ended"] is None
    assert len(cols["time"]) >= header["rows_flushed"] >= 400  # every flushed row, maybe more
    np.testing.assert_allclose(np.diff(cols["time"]), 0.005, rtol=1e-9)  # consecutive steps, no gap or garbage
    assert np.isfinite(cols["position_actual_knee"]).all()
    assert not (out / "metrics.json").exists()  # the run never finished: no metrics pretending it did
