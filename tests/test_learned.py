"""LearnedController: a checkpoint on the numba kernel in the loop — torques as torch, features as a log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.base import Controller
from controllers.checkpoint import CheckpointError
from controllers.features import FEATURE_COLUMNS, FEATURE_NAMES, features_from_columns
from controllers.pd import AmproPD
from envs.walker_env import ProstheticWalkerEnv
from experiments.evaluate import EvalConfig, evaluate
from hil.learned import LearnedController
from hil.spec import ControllerSpec

torch.set_num_threads(1)


def smooth_features(
    T: int, norm: tuple[np.ndarray, np.ndarray], feature_set: str = "ampro", seed: int = 0
) -> np.ndarray:
    """Raw gait-like features [T, F] around ``norm`` (mean, std); the ampro domain flag switches every 100 steps."""
    mean, std = norm
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / 200.0
    ph = rng.uniform(0, 2 * np.pi, (1, mean.size))
    z = np.sin(2 * np.pi * 0.9 * t + ph) + 0.3 * np.sin(2 * np.pi * 1.8 * t + 2 * ph)
    f = (z * std + mean).astype(np.float32)
    if feature_set == "ampro":
        f[:, 0] = (np.arange(T) // 100) % 2
    return f


def torch_reference(ckpt: Path, feats: np.ndarray, use_thresholds: bool = True) -> np.ndarray:
    """Torques from the torch module's streaming step on the normalised features (clipped like the controller)."""
    from controllers.checkpoint import load_checkpoint

    m, meta = load_checkpoint(ckpt)
    if not use_thresholds:
        m.theta_x = m.theta_h = 0.0
    xn = meta.input_norm(feats)
    out = np.zeros((len(feats), 2))
    state = None
    with torch.no_grad():
        for t in range(len(feats)):
            y, state = m.step(torch.from_numpy(xn[t]), state)
            out[t] = y.double().numpy() * meta.target_scale + meta.target_offset
    return np.clip(out, [-142.0, -168.0], [142.0, 168.0])


@pytest.mark.parametrize(("theta_x", "theta_h", "use"), [(0.0, 0.0, True), (4 / 256, 0.05, True), (0.02, 0.1, False)])
def test_matches_torch_step(theta_x: float, theta_h: float, use: bool, make_checkpoint) -> None:
    ck = make_checkpoint("c.pt", hidden=32, theta_x=theta_x, theta_h=theta_h)
    c = LearnedController.from_checkpoint(ck, "deltagru" if use else "gru")
    assert isinstance(c, Controller)
    assert c.name == ("deltagru" if use else "gru")
    feats = smooth_features(400, make_checkpoint.norm("ampro"))
    ref = torch_reference(ck, feats, use_thresholds=use)
    got = np.array([c.act_features(f).copy() for f in feats])
    # float32 kernel (Eigen-style tanh) vs torch float32: a few ulps per step, no drift (outputs in N·m).
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)  # N·m; observed ~2e-5
    macs = 0
    c.reset()
    for f in feats:
        c.act_features(f)
        macs += c.backend.kernel.macs
    assert c.macs_per_step() == pytest.approx(macs / len(feats))
    assert c.macs_per_step() <= c.dense_macs_per_step
    if use and theta_h > 0:
        assert c.sparsity() > 0.3  # smooth inputs under thresholds: most columns stay quiet
    else:
        assert c.sparsity() < 0.05  # Θ = 0: only the piecewise-constant domain flag is ever unchanged


@pytest.mark.parametrize("feature_set", ["ampro", "ampro_plus"])
def test_ampro_features_equal_log_columns_of_the_same_run(feature_set: str, make_checkpoint) -> None:
    """Closed loop on the walker (PD drives, the learned controller sees the same sensors): its features equal
    features_from_columns on the columns such a run logs, and its torques equal torch on those features."""
    ck = make_checkpoint("c.pt", feature_set=feature_set, hidden=32, theta_x=4 / 256, theta_h=0.05)
    env = ProstheticWalkerEnv(speed=1.0, sensor_noise=True)
    obs, _ = env.reset(seed=3)
    pd = AmproPD(env.dt, walker=env.walker)
    c = LearnedController.from_checkpoint(ck, dt=env.dt, walker=env.walker)
    pd.reset()
    c.reset()
    T = 300
    names = FEATURE_COLUMNS[feature_set]
    log = {k: np.zeros(T) for k in names}
    feats = np.zeros((T, len(FEATURE_NAMES[feature_set])), dtype=np.float32)
    torques = np.zeros((T, 2))
    for t in range(T):
        torques[t] = c.act(obs)
        feats[t] = c.features
        ref = c.reference
        assert ref is not None
        row = {
            "ishumanswing": ref.domain,
            "position_actual_knee": obs[0],
            "position_desired_knee": ref.knee_des,
            "velocity_actual_knee": obs[1],
            "velocity_desired_knee": ref.knee_vel_des,
            "position_actual_ankle": obs[2],
            "velocity_actual_ankle": obs[3],
            "thigh_angle": obs[4],
            "thigh_velocity": obs[5],
            "load": obs[6],
            "tau": ref.phase,
        }
        for k in names:
            log[k][t] = row[k]
        obs, _, terminated, _, _ = env.step(pd.act(obs) / env.peak_torque)
        assert not terminated
        # The controller's reference is the PD's own reference on the same sensor stream.
        assert (ref.domain, ref.knee_des) == (pd.domain, pd.knee_des)
    env.close()
    assert 0 < log["ishumanswing"].sum() < T  # both domains visited
    np.testing.assert_array_equal(feats, features_from_columns(feature_set, log))
    np.testing.assert_allclose(torques, torch_reference(ck, feats), rtol=0, atol=1e-3)
    if feature_set == "ampro_plus":
        assert np.ptp(feats[:, 8]) > 0.5  # the phase moves through the stride
        assert feats[:, 8].min() >= -0.5 and feats[:, 8].max() <= 1.5  # clipped as the RL policy sees it


def test_sensors_feature_set_and_saturation(make_checkpoint) -> None:
    ck = make_checkpoint("s.pt", feature_set="sensors", hidden=16, layers=1)
    c = LearnedController.from_checkpoint(ck, torque_limits=(1.0, 2.0))
    assert c.reference is None
    obs = np.array([0.3, 1.0, -0.1, 0.5, 0.2, -0.4, 500.0], dtype=np.float32)
    out = c.act(obs)
    np.testing.assert_array_equal(c.features, obs)
    assert out is c.act(obs)  # the same preallocated array every step
    assert np.all(np.abs(out) <= [1.0, 2.0])
    assert np.abs(c.raw_output).max() > 2.0  # offsets 10 / 5 N·m: the limits did act
    with pytest.raises(ValueError, match="torque limits"):
        LearnedController.from_checkpoint(ck, torque_limits=(0.0, 1.0))


def test_bad_checkpoints_are_refused(tmp_path: Path, make_checkpoint) -> None:
    ck = make_checkpoint("c.pt", hidden=32)
    with pytest.raises(CheckpointError, match="feature set 'ampro', not 'sensors'"):
        LearnedController.from_checkpoint(ck, feature_set="sensors")
    data = bytearray(ck.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ck.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the hash"):
        LearnedController.from_checkpoint(ck)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        LearnedController.from_checkpoint(tmp_path / "missing.pt")


def test_eval_episodes_report_sparsity_and_macs(make_checkpoint) -> None:
    ck = make_checkpoint("c.pt", theta_x=4 / 256, theta_h=0.05, hidden=16)
    cfg = EvalConfig(seconds=0.5, seeds=(0,), randomize=False)
    for name in ("gru", "deltagru"):
        (ep,) = evaluate(ControllerSpec(name, checkpoint=str(ck)).factory(), cfg, pushes=False)
        assert 0.0 <= ep["sparsity"] <= 1.0 and 0 < ep["macs_per_step"] <= ep["dense_macs_per_step"]
    assert ep["sparsity"] > 0.2
    assert ep["latency_source"] == "measured" and ep["deadline_policy"] == "none"
    with pytest.raises(ValueError, match="needs a checkpoint"):
        ControllerSpec("gru")
    with pytest.raises(ValueError, match="takes no checkpoint"):
        ControllerSpec("pd", checkpoint=str(ck))


def test_command_limits_from_the_checkpoint_bound_torque_and_rate(
    make_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint's command_limits clip |τ| and slew τ from the torque applied last step (from 0 after a reset),
    on top of the motor saturation; they round-trip through the metadata, reach the export and its C header, and a
    malformed entry is refused naming the key."""
    import json

    from controllers.checkpoint import load_checkpoint
    from controllers.command_limits import CommandLimits
    from firmware_bridge.export import bundle_from_checkpoint, c_header

    ck = make_checkpoint("s.pt", feature_set="sensors", hidden=16, layers=1)
    free = LearnedController.from_checkpoint(ck)
    meta_path = ck.with_suffix(".json")
    d = json.loads(meta_path.read_text())
    d["command_limits"] = {"torque_nm": [12.0, 0.0], "rate_nm_s": [0.0, 400.0]}  # knee |τ|, ankle |dτ/dt|
    meta_path.write_text(json.dumps(d))
    _, meta = load_checkpoint(ck)
    assert meta.command_limits == CommandLimits((12.0, None), (None, 400.0))
    assert meta.command_limits.to_dict() == d["command_limits"]
    bundle = bundle_from_checkpoint(ck)
    assert bundle.meta["command_limits"] == d["command_limits"]
    assert "Command limits (per joint, applied to the torque by the host): knee ≤ 12 N·m; ankle ≤ 400 N·m/s" in (
        c_header(bundle)
    )

    c = LearnedController.from_checkpoint(ck, dt=0.005)
    assert c.command_limits == meta.command_limits
    rng = np.random.default_rng(0)
    mean, std = make_checkpoint.norm("sensors")
    feats = (mean + 3.0 * std * rng.standard_normal((200, mean.size))).astype(np.float32)  # jumpy: the limits act
    step = 400.0 * 0.005  # N·m per control step
    for _ in range(2):  # twice: a reset restarts the slew from 0
        free.reset()
        c.reset()
        prev = np.zeros(2)
        for f in feats:
            want = free.act_features(f).copy()
            got = c.act_features(f).copy()
            want[0] = np.clip(want[0], -12.0, 12.0)
            want[1] = np.clip(want[1], prev[1] - step, prev[1] + step)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
            prev = got
    free.reset()
    raw = np.array([free.act_features(f).copy() for f in feats])
    assert np.abs(raw[:, 0]).max() > 12.0 and np.abs(np.diff(raw[:, 1])).max() > step  # both limits did act

    # legloop eval says so and records them.
    from experiments.cli import main

    out = tmp_path / "ev"
    argv = ["eval", "--controller", "deltagru", "--checkpoint", str(ck), "--seconds", "0.5", "--seeds", "0"]
    assert main([*argv, "--no-pushes", "--no-log", "--out", str(out)]) == 0
    assert "command limits from the checkpoint: knee ≤ 12 N·m; ankle ≤ 400 N·m/s" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["config"]["command_limits"] == d["command_limits"]

    d["command_limits"] = {"torque_nm": [-1.0, 0.0]}
    meta_path.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match=r"torque_nm must be .*each >= 0"):
        load_checkpoint(ck)
    d["command_limits"] = {"torque": [10.0, 0.0]}
    meta_path.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="command_limits must be"):
        load_checkpoint(ck)


def test_eval_runs_a_delta_network_at_other_thresholds(
    make_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`legloop eval --theta-x/--theta-h` run a checkpoint at thresholds it was not trained with (EdgeDRNN's are
    registers): Θh = 0 fires more columns than the checkpoint's, the run records what it used, and the flags are
    refused where no threshold exists or the value cannot be a threshold — before anything is written."""
    import json

    from experiments.cli import main

    ck = make_checkpoint("t.pt", theta_x=4 / 256, theta_h=0.25, hidden=16)
    base = ["eval", "--checkpoint", str(ck), "--seconds", "1", "--seeds", "0", "--no-pushes", "--no-log"]
    sparsity = {}
    runs = {"trained": ([], (None, None)), "h0": (["--theta-h", "0"], (None, 0.0)),
            "frac": (["--theta-x", "2/256", "--theta-h", "64/256"], (2 / 256, 0.25))}  # fmt: skip
    for name, (extra, recorded) in runs.items():
        out = tmp_path / name
        assert main([*base, "--controller", "deltagru", *extra, "--out", str(out)]) == 0
        m = json.loads((out / "metrics.json").read_text())
        sparsity[name] = m["summary"]["mean_sparsity"]
        assert (m["config"]["controller"]["theta_x"], m["config"]["controller"]["theta_h"]) == recorded
    err = capsys.readouterr().err
    assert "thresholds overridden: Θh 0 (the checkpoint's are not used)" in err
    assert "thresholds overridden: Θx 0.0078125, Θh 0.25" in err
    assert sparsity["h0"] < sparsity["trained"]
    for bad in ("96/0", "x/256", "0.1/256", "", "a"):  # a fraction is of integers, as the register's LSB count
        with pytest.raises(SystemExit):
            main([*base, "--controller", "deltagru", "--theta-h", bad, "--out", str(tmp_path / "bad")])
        assert "expected a normalised threshold like 0.375 or a fraction like 96/256" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

    for argv, says in (
        (["--controller", "gru", "--theta-h", "0"], "apply to --controller deltagru, edgedrnn and board"),
        (["--controller", "pd", "--theta-x", "0.1"], "--theta-x applies to learned controllers"),
        (["--controller", "deltagru", "--theta-h", "-0.1"], r"theta_h must be in [0, 2)"),
        (["--controller", "deltagru", "--theta-x", "5"], r"theta_x must be in [0, 2)"),
    ):
        out = tmp_path / "refused"
        if argv[1] == "pd":
            argv_all = [a for a in base if a not in ("--checkpoint", str(ck))] + argv
        else:
            argv_all = base + argv
        assert main([*argv_all, "--out", str(out)]) == 2
        assert says in capsys.readouterr().err
        assert not out.exists()
