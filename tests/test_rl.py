"""Residual RL with Stable-Baselines3: the wrapper, `legloop rl train`, the RL checkpoint and `--controller rl`.

One short training run (a module fixture, ~1 k steps) feeds the tests that need a policy; the whole file runs in
well under a minute on one core.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from controllers.residual import OBS_LAYOUT, OBS_SIZE, ResidualPDEnv, make_residual_env
from experiments.cli import main

TINY = """
seed = 3
total_timesteps = 1024
n_envs = 2
checkpoint_every = 512

[env]
episode_seconds = 2.0

[ppo]
n_steps = 256
batch_size = 128
n_epochs = 1

[select]
enabled = false
"""


def _train(out: Path, config: Path, *extra: str) -> int:
    return main(["rl", "train", "--config", str(config), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path) -> Path:
    out = tmp_path_factory.mktemp("rl") / "run"
    assert _train(out, tiny_config) == 0
    return out


def test_zero_residual_is_the_pd() -> None:
    """Action 0 gives exactly the PD's closed loop: the same sensor stream as the PD driving the bare env."""
    from controllers.pd import AmproPD
    from envs.walker_env import ProstheticWalkerEnv

    env = make_residual_env({"sensor_noise": True, "randomize": True})
    obs, _ = env.reset(seed=4)
    plain = ProstheticWalkerEnv(sensor_noise=True, randomize=True)
    sensors, _ = plain.reset(seed=4)
    pd = AmproPD(plain.dt, walker=plain.walker)
    zero = np.zeros(2, np.float32)
    for _ in range(300):
        np.testing.assert_array_equal(obs[:7], sensors)
        obs, *_ = env.step(zero)
        sensors, *_ = plain.step(pd.act(sensors) / plain.peak_torque)
    assert obs.shape == (OBS_SIZE,) and sum(n for _, n in OBS_LAYOUT) == OBS_SIZE


def test_residual_is_bounded_and_rewards_are_reported() -> None:
    env = make_residual_env()
    obs, _ = env.reset(seed=0)
    assert isinstance(env, ResidualPDEnv) and env.core is not None
    peak = env.core.peak
    pd_torque = obs[12:14].astype(np.float64) * peak  # the PD's torque on the reset sensors, N·m
    _, reward, _, _, info = env.step(np.array([5.0, -5.0], np.float32))  # clipped to ±1
    np.testing.assert_allclose(env.core.out, np.clip(pd_torque + 0.25 * peak * [1.0, -1.0], -peak, peak), rtol=1e-6)
    assert env.core.prev_action.tolist() == [1.0, -1.0]
    parts = [info[f"reward_{k}"] for k in ("progress", "alive", "tracking", "torque", "torque_rate")]
    assert reward == pytest.approx(sum(parts)) and info["reward_torque"] < 0.0
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.0]))


def test_training_run_directory(trained: Path, tiny_config: Path) -> None:
    meta = json.loads((trained / "rl.json").read_text())
    assert meta["observation"] == [{"name": n, "size": s} for n, s in OBS_LAYOUT]
    summary = json.loads((trained / "rl_train.json").read_text())
    assert summary["timesteps"] >= 1024 and summary["steps_per_s"] > 0
    assert (trained / "rl_config.toml").read_text() == tiny_config.read_text()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step_1024", "step_512"]
    assert list((trained / "tb").rglob("events.out.tfevents.*"))
    # An existing run is never overwritten without --force.
    assert _train(trained, tiny_config) == 2


def test_policy_loads_and_acts_as_sb3_would(trained: Path) -> None:
    """The controller's action is SB3's: VecNormalize.load (training=False) + model.predict(deterministic=True);
    its torque is the PD's + residual_scale × peak × action."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from controllers.pd import AmproPD
    from controllers.rl_policy import RLController, load_rl_checkpoint
    from envs.walker_env import ProstheticWalkerEnv

    vn = VecNormalize.load(str(trained / "vecnormalize.pkl"), DummyVecEnv([make_residual_env]))
    vn.training = False
    model = PPO.load(trained / "policy.zip", device="cpu")
    loaded = load_rl_checkpoint(trained)
    assert loaded.actor is not None  # the fast path is what runs
    env = ProstheticWalkerEnv(sensor_noise=True)
    sensors, _ = env.reset(seed=11)
    ctrl = RLController(loaded, AmproPD(env.dt, walker=env.walker), env.peak_torque)
    shadow = AmproPD(env.dt, walker=env.walker)
    ctrl.reset()
    residual_seen = 0.0
    for _ in range(100):
        torque = ctrl.act(sensors)
        expected, _ = model.predict(vn.normalize_obs(ctrl.core.obs), deterministic=True)  # the observation it used
        # The numpy actor is SB3's arithmetic in float32; only the matrix products' summation order may differ.
        np.testing.assert_allclose(ctrl.core.prev_action, expected, rtol=0, atol=2e-6)
        pd_t = shadow.act(sensors)
        np.testing.assert_allclose(
            torque, np.clip(pd_t + 0.25 * env.peak_torque * ctrl.core.prev_action, -env.peak_torque, env.peak_torque)
        )
        residual_seen = max(residual_seen, float(np.abs(torque - pd_t).max()))
        sensors, _, terminated, _, _ = env.step(torque / env.peak_torque)
        assert not terminated
    assert residual_seen > 0.0  # the policy acts, not only the PD


def test_eval_runs_the_rl_controller(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    code = main(["eval", "--controller", "rl", "--checkpoint", str(trained / "checkpoints" / "step_512"),
                 "--seconds", "3", "--seeds", "0", "--no-pushes", "--no-log", "--out", str(out)])  # fmt: skip
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["controller"] == "rl" and m["config"]["checkpoint"].endswith("step_512")
    (ep,) = m["episodes"]
    assert ep["distance_m"] > 1.0 and ep["knee_rmse_rad"] < 0.5


def test_vecnormalize_statistics_round_trip(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    vec = VecNormalize(DummyVecEnv([make_residual_env]), gamma=0.995)
    vec.seed(0)
    vec.reset()
    rng = np.random.default_rng(0)
    for _ in range(50):
        vec.step(rng.uniform(-1, 1, (1, 2)).astype(np.float32))
    vec.save(str(tmp_path / "vn.pkl"))
    back = VecNormalize.load(str(tmp_path / "vn.pkl"), DummyVecEnv([make_residual_env]))
    assert back.obs_rms.count == vec.obs_rms.count > 1
    np.testing.assert_array_equal(back.obs_rms.mean, vec.obs_rms.mean)
    np.testing.assert_array_equal(back.obs_rms.var, vec.obs_rms.var)
    np.testing.assert_array_equal(back.ret_rms.var, vec.ret_rms.var)
    assert back.clip_obs == vec.clip_obs and back.gamma == vec.gamma == 0.995
    assert not np.allclose(vec.obs_rms.var, 1.0)  # the statistics moved: the comparison is not of defaults


def test_checkpoint_of_another_observation_layout_is_refused(trained: Path, tmp_path: Path) -> None:
    from controllers.rl_policy import RLCheckpointError, load_rl_checkpoint

    other = tmp_path / "other"
    shutil.copytree(trained, other, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    meta = json.loads((other / "rl.json").read_text())
    meta["observation"] = [{"name": "sensors", "size": 7}, {"name": "prev_action", "size": 2}]
    (other / "rl.json").write_text(json.dumps(meta))
    with pytest.raises(RLCheckpointError) as e:
        load_rl_checkpoint(other)
    msg = str(e.value)
    assert "found sensors:7, prev_action:2 (9 values)" in msg
    assert "pd_phase:1" in msg and f"({OBS_SIZE} values)" in msg
    code = main(["eval", "--controller", "rl", "--checkpoint", str(other), "--seconds", "1", "--seeds", "0",
                 "--no-pushes", "--out", str(tmp_path / "ev")])  # fmt: skip
    assert code == 2 and not (tmp_path / "ev" / "metrics.json").exists()


def test_not_an_rl_checkpoint(tmp_path: Path) -> None:
    from controllers.rl_policy import RLCheckpointError, load_rl_checkpoint

    with pytest.raises(RLCheckpointError, match=r"policy\.zip, vecnormalize\.pkl, rl\.json missing"):
        load_rl_checkpoint(tmp_path)


def test_bad_config_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.rl_config import rl_config_from_dict
    from experiments.train_config import ConfigError

    with pytest.raises(ConfigError, match=r"unknown config key\(s\) ppo\.gama; valid keys in \[ppo\] are: .*gamma"):
        rl_config_from_dict({"ppo": {"gama": 0.99}})
    with pytest.raises(ConfigError, match=r"ppo\.gamma must be in \[0\.9, 1\)"):
        rl_config_from_dict({"ppo": {"gamma": 1.5}})
    with pytest.raises(ConfigError, match="vec_env must be one of dummy, subproc"):
        rl_config_from_dict({"vec_env": "ray"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[reward]\nalive = 1.0\nfall_penalty = 10\n")
    assert _train(tmp_path / "out", bad) == 2
    err = capsys.readouterr().err
    assert "bad --config" in err and "reward.fall_penalty" in err and str(bad) in err
    assert not (tmp_path / "out").exists()


def test_training_is_deterministic_for_a_seed(tmp_path: Path, tiny_config: Path) -> None:
    import torch

    runs = []
    for name in ("a", "b"):
        assert _train(tmp_path / name, tiny_config, "--set", "total_timesteps=512", "--set", "checkpoint_every=0") == 0
        from stable_baselines3 import PPO

        runs.append(PPO.load(tmp_path / name / "policy.zip", device="cpu").policy.state_dict())
    for k, v in runs[0].items():
        assert torch.equal(v, runs[1][k]), k


def test_rl_expert_labels_collected_data(trained: Path) -> None:
    """Distillation: with an RL expert the labels are its torques (PD + residual), the reference is still the PD's."""
    from experiments.collect import EpisodeTask, collect_episode

    _, pd_cols, _ = collect_episode(EpisodeTask(0, 21, 1.0, 2.0))
    _, rl_cols, meta = collect_episode(EpisodeTask(0, 21, 1.0, 2.0, expert=str(trained)))
    assert meta["expert"] == str(trained)
    # No learner: the applied torque is the expert's, and the label is what was applied.
    np.testing.assert_array_equal(rl_cols["torque_pd_knee"], rl_cols["torque_actual_knee"])
    # The first step sees the same sensors: same PD reference, but the label carries the policy's residual.
    assert rl_cols["position_desired_knee"][0] == pd_cols["position_desired_knee"][0]
    assert np.abs(rl_cols["torque_pd_knee"][:50] - pd_cols["torque_pd_knee"][:50]).max() > 0.0
    assert rl_cols["torque_pd_knee"][0] != pd_cols["torque_pd_knee"][0]


def test_train_expert_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--expert", "sac:x", "--out", str(tmp_path / "a")]) == 2
    assert "--expert must be pd or rl:DIR" in capsys.readouterr().err
    assert main(["train", "--expert", f"rl:{tmp_path}", "--out", str(tmp_path / "b")]) == 2
    assert "is not an RL checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_default_config_file_matches_the_defaults() -> None:
    """experiments/configs/rl.toml documents the defaults: it must not drift from the dataclasses."""
    from experiments.rl_config import RLConfig, load_rl_config

    assert load_rl_config() == RLConfig().validate()
