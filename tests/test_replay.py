"""Offline replay of an AMPRO-schema log, and `legloop eval` with learned controllers (replay and closed loop)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.checkpoint import load_checkpoint
from controllers.features import FEATURE_COLUMNS, feature_size, features_from_columns
from experiments.ampro_log import write_csv
from experiments.cli import main
from experiments.replay import ReplayError, read_log, replay, replay_log, torque_metrics
from hil.learned import LearnedController

torch.set_num_threads(1)

AMPRO_COLUMNS = (
    "action_type, control_signal_ankle, control_signal_knee, domainindex, force_heel, force_toe, imu_position_ankle, "
    "imu_position_knee, imu_velocity_ankle, imu_velocity_knee, ishumanswing, position_actual_ankle, "
    "position_actual_knee, position_desired_ankle, position_desired_knee, tau, time_stance, time_swing, "
    "torque_actual_ankle, torque_actual_knee, torque_desired_ankle, torque_desired_knee, torque_imped_ankle, "
    "torque_imped_knee, torque_pd_ankle, torque_pd_knee, torque_qp_ankle, torque_qp_knee, vahid_kdR_ns, "
    "vahid_knee_torque, vahid_lambdaR_ns, vahid_xhip_actual, vahid_xhip_desired, vahid_zhip_actual, "
    "vahid_zhip_desired, velocity_actual_ankle, velocity_actual_knee, velocity_desired_ankle, velocity_desired_knee"
).split(", ")


def write_log(path: Path, T: int = 600, seed: int = 0, drop: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """A synthetic AMPRO log: two domains, a knee trajectory tracked with errors, torques from the PD law."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    swing = (t % 250) < 100  # 100 swing samples, 150 stance, as in the AMPRO log
    tau = np.where(swing, (t % 250 + 1) * 0.005, ((t % 250) - 100) / 150)
    qk_des = np.where(swing, 0.15 + 0.97 * np.sin(np.pi * np.clip(tau / 0.5, 0, 1)), 0.36)
    qk_des_d = np.gradient(qk_des) / 0.005
    qk = qk_des + 0.05 * np.sin(t / 9.0) + 0.01 * rng.standard_normal(T)
    qk_d = np.gradient(qk) / 0.005
    qa = 0.1 * np.sin(t / 25.0)
    qa_d = np.gradient(qa) / 0.005
    cols = {c: np.zeros(T) for c in AMPRO_COLUMNS}
    cols |= {
        "ishumanswing": (~swing).astype(float),
        "domainindex": (~swing).astype(float),
        "tau": tau,
        "position_actual_knee": qk,
        "position_desired_knee": qk_des,
        "velocity_actual_knee": qk_d,
        "velocity_desired_knee": qk_des_d,
        "position_actual_ankle": qa,
        "velocity_actual_ankle": qa_d,
        "torque_pd_knee": -100 * (qk - qk_des) - 20 * (qk_d - qk_des_d),
        "torque_pd_ankle": -70 * qa - 10 * qa_d,
    }
    cols["torque_desired_knee"] = cols["torque_pd_knee"]
    cols["torque_desired_ankle"] = cols["torque_pd_ankle"]
    names = [c for c in AMPRO_COLUMNS if c not in drop]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for k in range(T):
            w.writerow([repr(float(cols[c][k])) for c in names])
    return cols


def _norm(feature_set: str) -> tuple[np.ndarray, np.ndarray]:
    """This file's input normalisation: zero mean, std 0.5. Its networks keep the default init (gain 1) and QAT off
    unless asked (the CPU kernel runs float activations: compare it with QAT off)."""
    n = feature_size(feature_set)
    return np.zeros(n, np.float32), np.full(n, 0.5, np.float32)


def test_torque_metrics() -> None:
    y = np.stack([np.linspace(-10, 90, 50), np.linspace(0, 30, 50)], axis=1)
    perfect = torque_metrics(y, y)
    assert perfect["knee"]["r2"] == 1.0 and perfect["ankle"]["nrmse"] == 0.0
    off = torque_metrics(y + np.array([5.0, 3.0]), y)
    assert off["knee"]["rmse_nm"] == pytest.approx(5.0) and off["knee"]["nrmse"] == pytest.approx(0.05)
    assert off["ankle"]["nrmse"] == pytest.approx(0.1)
    var = np.var(y[:, 0])
    assert off["knee"]["r2"] == pytest.approx(1 - 25.0 / var, abs=1e-6)
    const = torque_metrics(y, np.ones_like(y))
    assert const["knee"]["r2"] is None and const["knee"]["nrmse"] is None  # undefined, not a division by zero


def test_replay_carries_the_state_through_the_log(tmp_path: Path, make_checkpoint) -> None:
    log = tmp_path / "log.csv"
    cols = write_log(log)
    ck = make_checkpoint("c.pt", gain=1.0, norm=_norm("ampro"), theta_x=4 / 256, theta_h=0.05)
    metrics, pred, target = replay_log("deltagru", ck, log)
    feats = features_from_columns("ampro", read_log(log, tuple(cols)))
    # One pass from a fresh state over the whole log = the torch module over the whole sequence.
    m, meta = load_checkpoint(ck)
    with torch.no_grad():
        y = m(torch.from_numpy(meta.input_norm(feats)).unsqueeze(0))[0].double().numpy()
    np.testing.assert_allclose(pred, y * meta.target_scale + meta.target_offset, rtol=0, atol=2e-3)
    np.testing.assert_array_equal(target[:, 0], cols["torque_pd_knee"])
    assert metrics["rows"] == 600 and metrics["feature_set"] == "ampro"
    assert metrics["joints"] == torque_metrics(pred, target)
    assert 0.2 < metrics["sparsity"] < 1.0 and metrics["macs_per_step"] < metrics["dense_macs_per_step"]
    c = LearnedController.from_checkpoint(ck, "deltagru")
    again = replay(c, feats)  # replay resets: same result twice
    np.testing.assert_array_equal(again, replay(c, feats))
    np.testing.assert_array_equal(again, pred)


def test_edgedrnn_replay_reports_latency(tmp_path: Path, make_checkpoint) -> None:
    log = tmp_path / "log.csv"
    write_log(log)
    ck = make_checkpoint("c.pt", gain=1.0, norm=_norm("ampro"), theta_x=4 / 256, theta_h=0.05, qat=True)
    metrics, pred, _ = replay_log("edgedrnn", ck, log, budget_s=1.2e-6, policy="fallback_pd")
    lat = metrics["latency"]
    assert lat["steps"] == 600 and 0 < lat["misses"] < 600 and lat["fallbacks"] == lat["misses"]
    assert metrics["deadline_misses"] == lat["misses"]
    assert sum(metrics["latency_histogram"]["counts"]) == 600
    p = metrics["latency_percentiles_us"]
    assert p["p1"] <= p["p50"] <= p["p99"] <= lat["max_us"]
    assert np.all(np.isfinite(pred))


def test_read_log_errors(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    write_log(log, T=20, drop=("velocity_desired_knee",))
    with pytest.raises(ReplayError, match="velocity_desired_knee"):
        read_log(log, ("velocity_desired_knee", "torque_pd_knee"))
    with pytest.raises(ReplayError, match="no log file"):
        read_log(tmp_path / "none.csv", ("tau",))


# ----------------------------------------------------------------------------------------------------- CLI


def test_cli_replay_writes_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_checkpoint) -> None:
    log = tmp_path / "log.csv"
    write_log(log)
    ck = make_checkpoint("c.pt", gain=1.0, norm=_norm("ampro"), theta_x=4 / 256, theta_h=0.05)
    out = tmp_path / "r"
    args = ["eval", "--controller", "edgedrnn", "--checkpoint", str(ck), "--replay", str(log), "--out", str(out)]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["joints"]) == {"knee", "ankle"} and set(m["joints"]["knee"]) >= {"r2", "nrmse"}
    assert m["latency_us"]["p99"] > 0 and "deadline_misses" in m and (out / "replay.npz").exists()
    assert "R²" in capsys.readouterr().out
    assert main(args) == 2  # exists: refused without --force
    assert main([*args, "--force"]) == 0
    out2 = tmp_path / "r2"
    assert main(["eval", "--controller", "gru", "--checkpoint", str(ck), "--replay", str(log), "--out", str(out2)]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["controller"] == "gru"


def test_cli_bad_inputs_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_checkpoint) -> None:
    log = tmp_path / "log.csv"
    write_log(log, T=50, drop=("position_desired_knee",))
    good_log = tmp_path / "good.csv"
    write_log(good_log, T=50)
    ck = make_checkpoint("c.pt", gain=1.0, norm=_norm("ampro"))
    sensors = make_checkpoint("s.pt", gain=1.0, norm=_norm("sensors"), feature_set="sensors")
    corrupt = make_checkpoint("x.pt", gain=1.0, norm=_norm("ampro"))
    corrupt.write_bytes(corrupt.read_bytes()[:-40])
    out = tmp_path / "out"
    base = ["eval", "--out", str(out)]
    cases = [
        (["--controller", "deltagru", "--checkpoint", str(ck), "--replay", str(log)], "position_desired_knee"),
        (["--controller", "deltagru", "--checkpoint", str(sensors), "--replay", str(good_log)], "thigh_angle"),
        (
            ["--controller", "gru", "--checkpoint", str(ck), "--features", "sensors", "--replay", str(good_log)],
            "feature",
        ),
        (["--controller", "gru", "--checkpoint", str(corrupt), "--replay", str(good_log)], "corrupt"),
        (["--controller", "gru", "--checkpoint", str(ck), "--features", "sensors", "--seconds", "1"], "feature set"),
        (["--controller", "edgedrnn", "--checkpoint", str(corrupt), "--seconds", "1"], "corrupt"),
        (["--controller", "deltagru", "--seconds", "1"], "needs --checkpoint"),
        (["--controller", "pd", "--checkpoint", str(ck)], "learned controllers"),
        (["--controller", "gru", "--checkpoint", str(ck), "--governor"], "edgedrnn only"),
        (["--controller", "edgedrnn", "--checkpoint", str(ck), "--budget-us", "0"], "--budget-us"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert "error:" in err and message in err, (extra, err)
        assert not out.exists(), extra


def test_cli_closed_loop_learned(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_checkpoint) -> None:
    ck = make_checkpoint("c.pt", gain=1.0, norm=_norm("ampro"), theta_x=4 / 256, theta_h=0.05)
    out = tmp_path / "e"
    args = ["eval", "--controller", "edgedrnn", "--checkpoint", str(ck), "--seconds", "0.5", "--seeds", "0"]
    args += ["--no-pushes", "--deadline-policy", "stop", "--budget-us", "3", "--governor", "--out", str(out)]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    (ep,) = m["episodes"]
    assert {"sparsity", "macs_per_step", "latency_us", "deadline_misses", "governor_actions"} <= set(ep)
    assert m["config"]["deadline_policy"] == "stop" and m["config"]["budget_us"] == 3.0
    assert "MACs/step" in capsys.readouterr().out


def test_sensors_replay_of_a_legloop_log(tmp_path: Path, make_checkpoint) -> None:
    """A log written by experiments.ampro_log (AMPRO columns + legloop's thigh/load columns) replays with 'sensors'."""
    cols = write_log(tmp_path / "tmp.csv", T=300)
    t = np.arange(300)
    cols |= {
        "thigh_angle": 0.3 * np.sin(t / 30),
        "thigh_velocity": 0.3 / 30 * np.cos(t / 30),
        "load": 400 + 300 * (t % 250 > 100),
    }
    log = write_csv(tmp_path / "sim.csv", cols)
    ck = make_checkpoint("s.pt", gain=1.0, norm=_norm("sensors"), feature_set="sensors", theta_h=0.05)
    metrics, pred, _ = replay_log("deltagru", ck, log)
    assert metrics["feature_set"] == "sensors" and metrics["rows"] == 300
    c = LearnedController.from_checkpoint(ck, "deltagru")
    feats = features_from_columns("sensors", read_log(log, FEATURE_COLUMNS["sensors"]))
    np.testing.assert_array_equal(pred, replay(c, feats))
