"""Residual RL with Stable-Baselines3: the wrapper, `legloop rl train`, the RL checkpoint and `--controller rl`.

One short training run (a module fixture, ~1 k steps) feeds the tests that need a policy; the whole file runs in
well under a minute on one core.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

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
    its torque is the PD's + residual_scale × peak × action, within the torque envelope."""
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
    md = loaded.max_delta
    assert md == 0.1 == loaded.meta["residual_max_delta"]  # the default slew limit, stored and applied
    assert loaded.envelope == 0.4 == loaded.meta["residual_envelope"]  # the default torque envelope, stored
    envelope = 0.4
    prev = np.zeros(2)
    for _ in range(100):
        torque = ctrl.act(sensors)
        expected, _ = model.predict(vn.normalize_obs(ctrl.core.obs), deterministic=True)  # the observation it used
        expected = np.clip(expected, prev - md, prev + md)  # the slew limit the training wrapper applied too
        # The numpy actor is SB3's arithmetic in float32; only the matrix products' summation order may differ.
        np.testing.assert_allclose(ctrl.core.prev_action, expected, rtol=0, atol=2e-6)
        prev = ctrl.core.prev_action.copy()
        pd_t = shadow.act(sensors)
        bound = np.maximum(np.abs(pd_t), envelope * env.peak_torque)  # the torque envelope, then the motor peak
        raw = np.clip(pd_t + 0.25 * env.peak_torque * ctrl.core.prev_action, -bound, bound)
        np.testing.assert_allclose(torque, np.clip(raw, -env.peak_torque, env.peak_torque))
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


def test_stored_torque_envelope_is_applied_and_checked(trained: Path, tmp_path: Path) -> None:
    from controllers.pd import AmproPD
    from controllers.rl_policy import RLCheckpointError, RLController, load_rl_checkpoint
    from envs.walker_env import ProstheticWalkerEnv

    ck = tmp_path / "ck"
    shutil.copytree(trained / "checkpoints" / "step_512", ck)
    meta = json.loads((ck / "rl.json").read_text())
    (ck / "rl.json").write_text(json.dumps(meta | {"residual_envelope": 0.3}))
    env = ProstheticWalkerEnv()
    env.reset(seed=0)
    ctrl = RLController(load_rl_checkpoint(ck), AmproPD(env.dt, walker=env.walker), env.peak_torque)
    assert ctrl.core.envelope == 0.3
    (ck / "rl.json").write_text(json.dumps(meta | {"residual_envelope": None}))  # a run trained without one
    assert load_rl_checkpoint(ck).envelope is None
    (ck / "rl.json").write_text(json.dumps(meta | {"residual_envelope": 1.7}))
    with pytest.raises(RLCheckpointError, match="residual_envelope: envelope must be in"):
        load_rl_checkpoint(ck)
    # The hard limits: stored as [knee, ankle] (null: none), applied by the controller, a bad value refused.
    limits = {"residual_torque_limit_nm": [100.0, None], "residual_rate_limit_nm_s": [14000.0, 11000.0]}
    (ck / "rl.json").write_text(json.dumps(meta | limits))
    ctrl = RLController(load_rl_checkpoint(ck), AmproPD(env.dt, walker=env.walker), env.peak_torque)
    assert ctrl.core.torque_limit == (100.0, None) and ctrl.core.rate_limit == (14000.0, 11000.0)
    assert load_rl_checkpoint(trained).torque_limit is None  # the fixture's run trained without them
    (ck / "rl.json").write_text(json.dumps(meta | {"residual_rate_limit_nm_s": [14000.0, "fast"]}))
    with pytest.raises(RLCheckpointError, match=r"rl.json: residual_rate_limit_nm_s must be \[knee, ankle\]"):
        load_rl_checkpoint(ck)


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


def test_distillation_defaults_to_the_distil_config(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`legloop train --expert rl:DIR` without --config trains with train_distil.toml (push trains in the data)."""
    import experiments.train as train_mod

    seen = {}

    def fake_run(cfg, out, **kw):  # type: ignore[no-untyped-def]
        seen["cfg"], seen["expert"] = cfg, kw["expert"]
        raise train_mod.TrainError("stop here")

    monkeypatch.setattr(train_mod, "run_training", fake_run)
    assert main(["train", "--expert", f"rl:{trained}", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert seen["cfg"].data.push_fraction == 0.5 and seen["expert"] == str(trained)
    main(["train", "--out", str(tmp_path / "p"), "--quiet"])  # the PD's imitation keeps the default config
    assert seen["cfg"].data.push_fraction == 0.0 and seen["expert"] is None


def test_default_config_file_matches_the_defaults() -> None:
    """experiments/configs/rl.toml documents the defaults: it must not drift from the dataclasses."""
    from experiments.rl_config import RLConfig, load_rl_config

    assert load_rl_config() == RLConfig().validate()


def test_the_ls20_config_is_the_default_but_for_its_own_keys() -> None:
    """experiments/configs/rl_ls20.toml (benchmarks/remake_ls20.sh) remakes a run trained before today's defaults:
    it is the default config but for the keys it names, so a changed default shows here, not as a different expert."""
    from experiments.rl_config import DEFAULT_RL_CONFIG, load_rl_config

    def flat(cfg: dict[str, Any]) -> dict[str, Any]:
        return {f"{t}.{k}": x for t, v in cfg.items() if isinstance(v, dict) for k, x in v.items()} | {
            t: v for t, v in cfg.items() if not isinstance(v, dict)
        }

    ls20 = flat(load_rl_config(DEFAULT_RL_CONFIG.parent / "rl_ls20.toml").to_dict())
    default = flat(load_rl_config().to_dict())
    differ = {k for k in ls20 if ls20[k] != default[k]}
    assert differ == {"seed", "residual.torque_limit_nm", "residual.rate_limit_nm_s", "select.torque_limit_nm",
                      "select.walk_conditions", "select.residual_scales", "select.max_torque_ratio",
                      "select.max_rate_ratio"}  # fmt: skip
    assert ls20["seed"] == 2 and ls20["select.torque_limit_nm"] == [100.0, 70.0] and set(ls20) == set(default)


def test_the_ten_seed_config_is_ls20s_recipe_selected_on_more_seeds() -> None:
    """experiments/configs/rl_ten.toml (docs/rl.md, tenth round) trains as rl_ls20.toml but at the default seed, and
    selects on ten held-out seeds, walks first, with ten more to confirm on."""
    from experiments.rl_config import DEFAULT_RL_CONFIG, load_rl_config

    ls20 = load_rl_config(DEFAULT_RL_CONFIG.parent / "rl_ls20.toml").to_dict()
    ten = load_rl_config(DEFAULT_RL_CONFIG.parent / "rl_ten.toml").to_dict()
    assert ten["seed"] == load_rl_config().seed and ls20["seed"] == 2
    assert {k: v for k, v in ten.items() if k not in ("seed", "select")} == {
        k: v for k, v in ls20.items() if k not in ("seed", "select")
    }
    differ = {k for k in ten["select"] if ten["select"][k] != ls20["select"][k]}
    assert differ == {"seeds", "confirm_seeds", "push_outside_limits"}
    assert ten["select"]["seeds"] == list(range(100, 110)) and ten["select"]["confirm_seeds"] == list(range(110, 120))


def test_reset_option_sets_one_episodes_pushes() -> None:
    """The env takes an episode's pushes as a reset option (what ResidualPDEnv uses); the next reset without it
    returns to the constructor's; any other option is refused."""
    from envs.walker_env import ProstheticWalkerEnv, Push

    own = (Push(1.0, 100.0),)
    env = ProstheticWalkerEnv(pushes=own)
    env.reset(seed=0, options={"pushes": [Push(0.05, 5000.0)]})
    assert env.pushes == (Push(0.05, 5000.0),)
    fell = False
    for _ in range(400):  # a 5 kN shove falls the walker within 2 s
        _, _, fell, _, _ = env.step(np.zeros(2))
        if fell:
            break
    assert fell
    env.reset(seed=0)
    assert env.pushes == own
    with pytest.raises(ValueError, match="only the option 'pushes'"):
        env.reset(seed=0, options={"speed": 1.2})
    with pytest.raises(TypeError, match=r"envs\.Push"):
        env.reset(seed=0, options={"pushes": [(0.1, 50.0)]})


def test_fall_and_residual_reward_terms() -> None:
    from controllers.residual import RewardWeights
    from envs.walker_env import Push

    env = make_residual_env(weights=RewardWeights(fall=123.0, residual=0.5))
    env.reset(seed=1, options={"pushes": (Push(0.05, 5000.0),)})  # the caller's pushes reach the walker
    a = np.array([0.4, -0.2], np.float32)
    _, reward, terminated, _, info = env.step(a)
    assert info["reward_residual"] == pytest.approx(-0.5 * (0.16 + 0.04)) and info["reward_fall"] == 0.0
    for _ in range(400):
        _, reward, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            break
    assert terminated and info["reward_fall"] == -123.0 and info["reward_alive"] == 0.0
    parts = [
        info[f"reward_{k}"]
        for k in ("progress", "alive", "tracking", "torque", "torque_rate", "peak", "fall", "residual")
    ]
    assert reward == pytest.approx(sum(parts))


def test_residual_slew_limit() -> None:
    """max_delta: the applied action moves at most max_delta per step, so the residual adds at most
    max_delta × scale × peak of torque change per step; a zero action from rest is still the PD."""
    env = make_residual_env(max_delta=0.1)
    env.reset(seed=0)
    assert isinstance(env, ResidualPDEnv) and env.core is not None and env.core.max_delta == 0.1
    applied = []
    for a in ([1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [0.05, 0.0]):
        env.step(np.array(a, np.float32))
        applied.append(env.core.prev_action.tolist())
    np.testing.assert_allclose(applied, [[0.1, -0.1], [0.2, -0.2], [0.1, -0.1], [0.05, 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match="max_delta"):
        make_residual_env(max_delta=2.5)
    whole = make_residual_env(max_delta=2.0)  # 2 (the whole range): no limit, accepted
    assert isinstance(whole, ResidualPDEnv) and whole.max_delta == 2.0


def test_residual_torque_envelope() -> None:
    """envelope e: |τ| ≤ max(|τ_PD|, e · peak) per joint — the residual shapes the torque below that level and may
    oppose the PD, but above it the command is never larger than the PD's own."""
    from controllers.pd import AmproPD
    from controllers.residual import ResidualCore

    env = make_residual_env(envelope=0.5)
    obs, _ = env.reset(seed=2)
    sensors = obs[:7]  # the wrapper's observation starts with the 7 sensors
    w = env.unwrapped
    core = ResidualCore(AmproPD(w.dt, walker=w.walker), w.peak_torque, residual_scale=1.0, envelope=0.5)
    free = ResidualCore(AmproPD(w.dt, walker=w.walker), w.peak_torque, residual_scale=1.0)
    rng = np.random.default_rng(0)
    capped = 0
    for _ in range(300):
        core.observe(sensors)
        free.observe(sensors)
        a = rng.uniform(-1.0, 1.0, 2)
        tau, tau_free, tau_pd = core.torque(a).copy(), free.torque(a).copy(), core.pd.last_torque
        bound = np.maximum(np.abs(tau_pd), 0.5 * w.peak_torque)
        assert np.all(np.abs(tau) <= bound + 1e-9)
        # Inside the bound the envelope changes nothing; outside it the command sits on the bound, same sign.
        inside = np.abs(tau_free) <= bound
        np.testing.assert_allclose(tau[inside], tau_free[inside])
        np.testing.assert_allclose(tau[~inside], np.sign(tau_free[~inside]) * bound[~inside])
        capped += int((~inside).sum())
        obs, *_ = env.step(np.zeros(2, np.float32))
        sensors = obs[:7]
    assert capped > 50  # full-scale random residuals often try to exceed the envelope
    with pytest.raises(ValueError, match="envelope"):
        make_residual_env(envelope=1.5)


def test_residual_hard_torque_and_rate_limits() -> None:
    """torque_limit / rate_limit bound the command whatever asks for it — the PD's own torque included: |τ| ≤ the
    limit, |Δτ| ≤ rate · dt per control step (from 0 at a reset); a joint left at None is not limited."""
    from controllers.pd import AmproPD
    from controllers.residual import ResidualCore

    env = make_residual_env()
    obs, _ = env.reset(seed=2)
    sensors = obs[:7]
    w = env.unwrapped
    dt = w.dt

    def core(**kw: object) -> ResidualCore:
        return ResidualCore(AmproPD(dt, walker=w.walker), w.peak_torque, residual_scale=1.0, **kw)  # type: ignore[arg-type]

    limited = core(torque_limit=(60.0, None), rate_limit=(4000.0, 6000.0))
    free = core()
    rng = np.random.default_rng(0)
    prev = np.zeros(2)
    at_limit = np.zeros(2, int)
    ankle_above = 0
    for _ in range(300):
        limited.observe(sensors)
        free.observe(sensors)
        a = rng.uniform(-1.0, 1.0, 2)
        tau, tau_free = limited.torque(a).copy(), free.torque(a).copy()
        assert abs(tau[0]) <= 60.0 + 1e-9 and abs(tau[1]) <= w.peak_torque[1] + 1e-9
        step = np.abs(tau - prev)
        assert step[0] <= 4000.0 * dt + 1e-9 and step[1] <= 6000.0 * dt + 1e-9
        at_limit += np.isclose(step, [4000.0 * dt, 6000.0 * dt])
        ankle_above += abs(tau[1]) > 60.0
        # Where no limit binds, the command is the unlimited one.
        if abs(tau_free[0]) < 60.0 and np.all(np.abs(tau_free - prev) < [4000.0 * dt, 6000.0 * dt]):
            np.testing.assert_allclose(tau, tau_free)
        prev = tau
        obs, *_ = env.step(np.zeros(2, np.float32))
        sensors = obs[:7]
    assert np.all(at_limit > 50)  # full-scale random residuals often ask for more than the slew allows
    assert ankle_above > 0  # the ankle's torque is not limited (None), only its rate
    limited.reset()
    limited.observe(sensors)
    assert np.all(np.abs(limited.torque(np.ones(2))) <= [4000.0 * dt, 6000.0 * dt])  # from 0 after a reset
    assert core(torque_limit=(0.0, None)).torque_limit is None  # 0 per joint: none
    for bad in ((-1.0, 10.0), (1.0,), "fast", (float("nan"), 1.0)):
        with pytest.raises(ValueError, match=r"torque_limit must be \[knee, ankle\] in N·m"):
            core(torque_limit=bad)
    with pytest.raises(ValueError, match=r"rate_limit must be \[knee, ankle\] in N·m/s"):
        make_residual_env(rate_limit=[1.0, -2.0])


def test_tracking_weight_after_a_push() -> None:
    """tracking_pushed applies within recovery_s of a push's start, tracking before and after."""
    from controllers.residual import RewardWeights
    from envs.walker_env import Push

    env = make_residual_env(weights=RewardWeights(tracking=10.0, tracking_pushed=0.0, recovery_s=0.5))
    env.reset(seed=0, options={"pushes": (Push(1.0, 50.0),)})
    weights = []
    for k in range(400):  # 2 s at 200 Hz; the step's time is (k + 1) / 200 after it
        _, _, terminated, _, info = env.step(np.zeros(2, np.float32))
        assert not terminated
        weights.append((round((k + 1) * 0.005, 3), info["reward_tracking"]))
    # (one step either side of each edge left out: the env's clock is a running sum of dt)
    before = [r for t, r in weights if t < 0.995]
    during = [r for t, r in weights if 1.005 <= t < 1.495]
    after = [r for t, r in weights if t >= 1.505]
    assert all(r < 0.0 for r in before[10:]) and all(r == 0.0 for r in during) and all(r < 0.0 for r in after)


def test_knee_tracking_weight() -> None:
    """tracking_knee weighs the knee's error alone; the ankle's keeps the tracking weight."""
    from controllers.residual import RewardWeights

    env = make_residual_env(weights=RewardWeights(tracking=0.0, tracking_knee=3.0))
    assert isinstance(env, ResidualPDEnv)
    env.reset(seed=0)
    for _ in range(100):
        obs, _, _, _, info = env.step(np.zeros(2, np.float32))
        assert env.core is not None
        ek = float(obs[0]) - env.core.pd.knee_des
        assert info["reward_tracking"] == pytest.approx(-3.0 * ek * ek)


def test_peak_torque_and_rate_hinges() -> None:
    """The hinges cost only the part of |τ| / τ_peak (and of its per-step change) above their thresholds."""
    from controllers.residual import RewardWeights

    w = RewardWeights(peak_torque=7.0, peak_torque_at=0.3, peak_rate=11.0, peak_rate_at=0.05)
    env = make_residual_env(weights=w)
    assert isinstance(env, ResidualPDEnv)
    env.reset(seed=0)
    prev, seen = np.zeros(2), 0
    for _ in range(300):
        _, _, terminated, _, info = env.step(np.ones(2, np.float32))
        n = env._norm_action.copy()
        over = np.maximum(np.abs(n) - 0.3, 0.0)
        jump = np.maximum(np.abs(n - prev) - 0.05, 0.0)
        assert info["reward_peak"] == pytest.approx(-7.0 * (over @ over) - 11.0 * (jump @ jump), abs=1e-12)
        seen += bool(over.any())
        prev = n
        if terminated:
            break
    assert seen > 0, "no step reached the torque threshold: the test exercised nothing"
    env = make_residual_env()  # off by default
    env.reset(seed=0)
    assert env.step(np.ones(2, np.float32))[4]["reward_peak"] == 0.0


def test_push_curriculum() -> None:
    """The upper push magnitude grows from start_max_n to max_n over the ramp; the draws keep one stream."""
    from controllers.residual import RandomPushes

    rp = RandomPushes(probability=1.0, count=50, min_n=50.0, max_n=400.0, start_max_n=150.0, ramp=0.5)
    rp.validate()
    assert (rp.upper(0.0), rp.upper(0.25), rp.upper(0.5), rp.upper(1.0)) == (150.0, 275.0, 400.0, 400.0)
    early = rp.draw(np.random.default_rng(0), progress=0.0)
    late = rp.draw(np.random.default_rng(0), progress=1.0)
    assert max(abs(p.force_n) for p in early) <= 150.0 < max(abs(p.force_n) for p in late)
    assert [p.time_s for p in early] == [p.time_s for p in late]
    with pytest.raises(ValueError, match="start_max_n"):
        RandomPushes(max_n=300.0, start_max_n=350.0).validate()
    # The wrapper draws with its training progress (set_progress, as legloop rl train calls it through env_method).
    env = make_residual_env(pushes=rp)
    assert isinstance(env, ResidualPDEnv)
    env.set_progress(0.0)
    env.reset(seed=0)
    assert max(abs(p.force_n) for p in env.walker.pushes) <= 150.0


def test_heel_strike_pushes_in_training() -> None:
    """``heel_strike``: that fraction of the pushed episodes is pushed at prosthetic heel strikes (the wrapper calls
    the pusher after every step); 0 leaves the time-scheduled draws and their stream exactly as before."""
    from controllers.residual import RandomPushes
    from envs.walker_env import HeelStrikePusher

    timed = RandomPushes(probability=1.0, count=4, min_n=100.0, max_n=200.0, pattern="train")
    for seed in range(5):
        drawn, pusher = timed.draw_episode(np.random.default_rng(seed))
        assert pusher is None and drawn == timed.draw(np.random.default_rng(seed))
    hs = RandomPushes(probability=1.0, count=4, start_s=1.0, end_s=5.0, min_n=100.0, max_n=200.0, heel_strike=1.0,
                      every=1)  # fmt: skip
    drawn, pusher = hs.draw_episode(np.random.default_rng(0))
    assert drawn == () and isinstance(pusher, HeelStrikePusher) and 100.0 <= abs(pusher.force_n) <= 200.0
    for bad, match in (({"heel_strike": 1.5}, "heel_strike must be in"), ({"every": 0}, "every must be >= 1")):
        with pytest.raises(ValueError, match=match):
            RandomPushes(**bad).validate()  # type: ignore[arg-type]
    env = make_residual_env({"speed": 1.0}, pushes=hs)
    assert isinstance(env, ResidualPDEnv)
    env.reset(seed=0)
    starts = []
    for _ in range(1200):  # 6 s at 200 Hz: heel strikes about once a second from 1 s to 5 s
        env.step(np.zeros(2, np.float32))
        assert env._pusher is not None
        starts.append(env._pusher.last_push_s)
    pushes = env.walker.pushes
    assert 3 <= len(pushes) <= 6 and all(1.0 <= p.time_s <= 5.0 for p in pushes)
    assert [p.force_n for p in pushes[:2]] == [env._pusher.force_n, -env._pusher.force_n]  # alternating
    assert sorted(set(starts) - {-np.inf}) == [p.time_s for p in pushes]


def test_new_config_options_are_validated() -> None:
    from experiments.rl_config import rl_config_from_dict
    from experiments.train_config import ConfigError

    for raw, msg in (
        ({"residual": {"max_delta": 3.0}}, r"residual\.max_delta must be in \[0, 2\]"),
        ({"ppo": {"lr_schedule": "cosine"}}, r"ppo\.lr_schedule must be one of constant, linear"),
        ({"pushes": {"curriculum_start_n": 500.0}}, r"\[pushes\]: push curriculum needs min_n <= start_max_n"),
        ({"pushes": {"curriculum_ramp": 0.0}}, r"curriculum ramp must be in \(0, 1\]"),
        ({"reward": {"fall": -1.0}}, r"reward\.fall must be >= 0"),
        ({"select": {"magnitudes": [300.0, 200.0]}}, r"select\.magnitudes must be 1–16 increasing"),
        ({"select": {"speeds": [2.0]}}, r"select\.speeds must be"),
        ({"select": {"walk_seconds": 1.0}}, r"select\.walk_seconds must be 0 \(no limits\) or in \[2, 600\] s"),
        ({"select": {"max_tracking_ratio": 0.0}}, r"select\.max_tracking_ratio must be in \(0, 10\]"),
        ({"select": {"walk_conditions": [[1.0]]}}, r"select\.walk_conditions must be up to 8 \[speed m/s"),
        ({"select": {"residual_scales": [1.0, 1.2]}}, r"select\.residual_scales must be 1–8 distinct factors"),
        ({"select": {"residual_scales": []}}, r"select\.residual_scales must be"),
        ({"select": {"walk_conditions": [[1.0, 30.0]]}}, r"select\.walk_conditions must be .*slope ° in \[-10, 10\]"),
        ({"residual": {"envelope": 1.5}}, r"residual\.envelope must be in \[0, 1\]"),
        ({"residual": {"torque_limit_nm": [100.0, -1.0]}}, r"residual\.torque_limit_nm must be \[knee, ankle\]"),
        ({"residual": {"rate_limit_nm_s": [1.0]}}, r"residual\.rate_limit_nm_s must be \[knee, ankle\]"),
        ({"reward": {"tracking_pushed": -1.0}}, r"reward\.tracking_pushed must be >= 0"),
        ({"reward": {"peak_torque_at": 1.0}}, r"reward\.peak_torque_at must be in \(0, 1\)"),
        ({"reward": {"peak_rate_at": 0.0}}, r"reward\.peak_rate_at must be in \(0, 2\)"),
        ({"select": {"confirm_seeds": [101, 200]}}, r"select\.confirm_seeds must be .*none of select\.seeds"),
        ({"select": {"confirm_seeds": [7, 7]}}, r"select\.confirm_seeds must be up to 32 distinct seeds"),
        ({"select": {"workers": 0}}, r"select\.workers must be an integer in \[1, 64\]"),
        ({"select": {"workers": 1.5}}, r"select\.workers must be an integer"),
    ):
        with pytest.raises(ConfigError, match=msg):
            rl_config_from_dict(raw)
    cfg = rl_config_from_dict({"residual": {"max_delta": 0.0}, "pushes": {"curriculum_start_n": 0.0}})
    assert cfg.residual.max_delta_or_none is None and cfg.pushes.random_pushes().start_max_n is None  # type: ignore[union-attr]
    assert rl_config_from_dict({}).select.conditions() == [(0.8, 0.0), (1.2, 0.0)]  # the push speeds, level
    cfg = rl_config_from_dict({"select": {"walk_conditions": [[1.0, -3.0], [1.2, 0]]}})
    assert cfg.select.conditions() == [(1.0, -3.0), (1.2, 0.0)]
    cfg = rl_config_from_dict({"residual": {"torque_limit_nm": [100.0, 0.0], "rate_limit_nm_s": [0.0, 0.0]}})
    assert cfg.residual.torque_limit_or_none == [100.0, None] and cfg.residual.rate_limit_or_none is None


def test_learning_rate_decays_linearly(trained: Path) -> None:
    from stable_baselines3 import PPO

    model = PPO.load(trained / "policy.zip", device="cpu")
    assert model.lr_schedule(1.0) == pytest.approx(3e-4) and model.lr_schedule(0.25) == pytest.approx(7.5e-5)
    assert model.target_kl == 0.02


def test_select_picks_the_best_checkpoint(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The highest held-out push score wins (ties: the later step); its files become the run's policy and rl.json
    says which step and score."""
    import experiments.rl_select as sel_mod
    from experiments.rl_config import SelectConfig

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    fake = {"step_512": 300.0, "step_1024": 150.0, None: 250.0}
    monkeypatch.setattr(sel_mod, "push_score", lambda d, sel, hz: (fake[d.name if d else None], [1.0]))
    sel = sel_mod.select_checkpoint(run, SelectConfig(walk_seconds=0.0, workers=1))
    assert sel["step"] == 512 and sel["score_n"] == 300.0 and sel["baseline_pd"]["score_n"] == 250.0
    assert (run / "policy.zip").read_bytes() == (run / "checkpoints" / "step_512" / "policy.zip").read_bytes()
    meta = json.loads((run / "rl.json").read_text())
    assert meta["selection"]["step"] == 512 and meta["timesteps"] == 512 and "training" in meta
    assert json.loads((run / "rl_train.json").read_text())["selected_step"] == 512
    fake["step_1024"] = 300.0  # a tie: the later, longer-trained checkpoint
    assert sel_mod.select_checkpoint(run, SelectConfig(baseline=False, walk_seconds=0.0, workers=1))["step"] == 1024
    # Selecting again updates the training summary too, not only rl.json.
    summary = json.loads((run / "rl_train.json").read_text())
    assert summary["selected_step"] == 1024 and summary["selected_score_n"] == 300.0
    assert summary["baseline_pd_score_n"] is None and summary["timesteps"] >= 1024
    assert json.loads((run / "rl.json").read_text())["training"]["selected_step"] == 1024


def test_select_keeps_to_the_tracking_and_torque_limits(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The best push score *within* the limits (on every walk condition: mean tracking RMSE over the seeds ≤ 1.25×
    the PD's on the same walks, peak torque and rate ≤ the PD's) wins over a better score outside them; with none
    within, the best score, marked as outside."""
    import experiments.rl_select as sel_mod
    from experiments.rl_config import SelectConfig

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    # Two conditions (0.8 and 1.2 m/s, level) x one seed.
    pd = {"conditions": [[0.8, 0.0], [1.2, 0.0]], "knee_rmse": [[0.10], [0.08]], "ankle_rmse": [[0.12], [0.10]],
          "falls": 0, "peak_torque_nm": [[110.0, 120.0], [100.0, 90.0]],
          "peak_rate_nm_s": [[16000.0, 15000.0], [12000.0, 11000.0]]}  # fmt: skip
    ok = pd | {"knee_rmse": [[0.122], [0.09]], "peak_torque_nm": [[110.0, 100.0], [100.0, 90.0]]}  # 1.22×, 1.125×
    walked = {None: pd, "step_512": ok, "step_1024": pd | {"ankle_rmse": [[0.12], [0.126]]}}  # 1.26× at 1.2: outside
    monkeypatch.setattr(sel_mod, "walks", lambda d, sel, hz: walked[d.name if d else None])
    fake = {"step_512": 200.0, "step_1024": 300.0, None: 250.0}
    monkeypatch.setattr(sel_mod, "push_score", lambda d, sel, hz: (fake[d.name if d else None], [1.0]))
    lines: list[str] = []
    sel = sel_mod.select_checkpoint(run, SelectConfig(workers=1), progress=lines.append)
    assert sel["step"] == 512 and sel["within_limits"] and sel["pd_walks"] == pd
    lim = sel["scores"]["1024"]["limits"]
    assert not lim["within"] and lim["ankle_ratio"] == 1.26 and lim["knee_ratio"] == 1.0
    assert lim["ankle_ratios"] == [1.0, 1.26]  # pooled over both conditions it would have been 1.12×: within
    assert sel["scores"]["512"]["limits"] == {"within": True, "falls": 0, "knee_ratio": 1.22, "ankle_ratio": 1.0,
                                              "knee_ratios": [1.22, 1.125], "ankle_ratios": [1.0, 1.0],
                                              "torque_ratio": [1.0, 1.0], "rate_ratio": [1.0, 1.0]}  # fmt: skip
    assert any("step 1024" in s and "OUTSIDE limits" in s and "ankle 1.26×" in s for s in lines)
    # A peak above the PD's on one condition is outside, though below the PD's peak over all conditions (110).
    walked["step_512"] = ok | {"peak_torque_nm": [[110.0, 100.0], [100.5, 90.0]]}
    sel = sel_mod.select_checkpoint(run, SelectConfig(workers=1), progress=lines.append)
    assert sel["scores"]["512"]["limits"]["torque_ratio"] == [1.005, 1.0]
    assert sel["step"] == 1024 and not sel["within_limits"] and "no checkpoint is within the limits" in lines[-1]
    # Looser limits from the config: 1024's ankle (1.26×) is within 1.3×.
    assert sel_mod.select_checkpoint(run, SelectConfig(max_tracking_ratio=1.3, workers=1))["step"] == 1024


def test_select_tries_scaled_down_residuals(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """select.residual_scales: every checkpoint also runs with its residual bound scaled at deployment; a scaled
    candidate that wins within the limits becomes the run's policy with the scaled bound in rl.json, the scratch
    copies are removed, and the plain checkpoints are untouched."""
    import experiments.rl_select as sel_mod
    from controllers.rl_policy import load_rl_checkpoint
    from experiments.rl_config import SelectConfig

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    trained_scale = json.loads((run / "checkpoints" / "step_1024" / "rl.json").read_text())["residual_scale"]
    pd = {"conditions": [[1.0, 0.0]], "knee_rmse": [[0.10]], "ankle_rmse": [[0.10]], "falls": 0,
          "peak_torque_nm": [[100.0, 100.0]], "peak_rate_nm_s": [[1e4, 1e4]]}  # fmt: skip
    off = pd | {"knee_rmse": [[0.2]]}  # 2x the PD's tracking: outside
    walked = {None: pd, "step_512": off, "step_1024": off, "step_512_x0.5": pd, "step_1024_x0.5": pd}
    fake = {None: 250.0, "step_512": 400.0, "step_1024": 400.0, "step_512_x0.5": 300.0, "step_1024_x0.5": 280.0}
    seen: list[float] = []

    def fake_push(d: Path | None, sel: SelectConfig, hz: float) -> tuple[float, list[float]]:
        if d is not None:  # what the candidate would run with
            seen.append(json.loads((d / "rl.json").read_text())["residual_scale"])
        return fake[d.name if d else None], [1.0]

    monkeypatch.setattr(sel_mod, "walks", lambda d, sel, hz: walked[d.name if d else None])
    monkeypatch.setattr(sel_mod, "push_score", fake_push)
    sel = sel_mod.select_checkpoint(run, SelectConfig(residual_scales=[1.0, 0.5], workers=1))
    assert (sel["step"], sel["residual_scale_factor"], sel["within_limits"]) == (512, 0.5, True)
    assert set(sel["scores"]) == {"512", "512x0.5", "1024", "1024x0.5"}
    assert sorted(seen) == sorted([trained_scale, trained_scale * 0.5] * 2)
    meta = json.loads((run / "rl.json").read_text())
    assert meta["residual_scale"] == pytest.approx(trained_scale * 0.5)
    assert load_rl_checkpoint(run).residual_scale == pytest.approx(trained_scale * 0.5)
    assert not (run / sel_mod.SCALED_DIR).exists()
    assert json.loads((run / "checkpoints" / "step_512" / "rl.json").read_text())["residual_scale"] == trained_scale


def test_select_adds_limits_at_deployment(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """select.torque_limit_nm / rate_limit_nm_s: every candidate (scaled or not) runs under the tighter of its
    trained limits and these, the winner's rl.json and the loaded policy keep them, the checkpoints stay as trained."""
    import experiments.rl_select as sel_mod
    from controllers.rl_policy import load_rl_checkpoint
    from experiments.rl_config import SelectConfig, rl_config_from_dict
    from experiments.train_config import ConfigError

    assert sel_mod.tighter_limits(None, [0.0, 0.0]) is None
    assert sel_mod.tighter_limits([100.0, None], [0.0, 70.0]) == [100.0, 70.0]
    assert sel_mod.tighter_limits([100.0, 90.0], [120.0, 70.0]) == [100.0, 70.0]
    assert sel_mod.tighter_limits(None, [0.0, 70.0]) == [None, 70.0]
    assert not rl_config_from_dict({}).select.deploys_limits

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    trained_meta = json.loads((run / "checkpoints" / "step_1024" / "rl.json").read_text())
    seen: dict[str, tuple[Any, Any]] = {}

    def fake_push(d: Path | None, sel: SelectConfig, hz: float) -> tuple[float, list[float]]:
        if d is not None:
            meta = json.loads((d / "rl.json").read_text())
            seen[d.name] = (meta["residual_torque_limit_nm"], meta["residual_rate_limit_nm_s"])
        return {"step_512_x1": 300.0, "step_512_x0.5": 250.0}.get(d.name if d else "", 200.0), [1.0]

    monkeypatch.setattr(sel_mod, "push_score", fake_push)
    cfg = SelectConfig(walk_seconds=0.0, residual_scales=[1.0, 0.5], torque_limit_nm=[0.0, 70.0],
                       rate_limit_nm_s=[14000.0, 0.0], workers=1)  # fmt: skip
    sel = sel_mod.select_checkpoint(run, cfg)
    assert set(seen) == {"step_512_x1", "step_512_x0.5", "step_1024_x1", "step_1024_x0.5"}
    assert all(v == ([None, 70.0], [14000.0, None]) for v in seen.values())
    assert (sel["step"], sel["residual_scale_factor"]) == (512, 1.0)
    assert sel["deploy_limits"] == {"torque_nm": [0.0, 70.0], "rate_nm_s": [14000.0, 0.0]}
    loaded = load_rl_checkpoint(run)
    assert loaded.torque_limit == (None, 70.0) and loaded.rate_limit == (14000.0, None)
    assert loaded.residual_scale == pytest.approx(trained_meta["residual_scale"])
    assert json.loads((run / "checkpoints" / "step_1024" / "rl.json").read_text()) == trained_meta
    assert not (run / sel_mod.SCALED_DIR).exists()
    with pytest.raises(ConfigError, match=r"select\.torque_limit_nm must be \[knee, ankle\], each >= 0"):
        rl_config_from_dict({"select": {"torque_limit_nm": [100.0, -70.0]}})


def test_select_pushes_only_candidates_within_limits(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select.push_outside_limits = false: every candidate walks first and only those within the limits run push
    trials (all of them when none is) — the same winner and scores as pushing all, the others' score None."""
    import experiments.rl_select as sel_mod
    from experiments.rl_config import SelectConfig

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    pd = {"conditions": [[1.0, 0.0]], "knee_rmse": [[0.10]], "ankle_rmse": [[0.10]], "falls": 0,
          "peak_torque_nm": [[100.0, 100.0]], "peak_rate_nm_s": [[1e4, 1e4]]}  # fmt: skip
    off = pd | {"knee_rmse": [[0.2]]}  # 2x the PD's tracking: outside
    walked = {None: pd, "step_512": off, "step_1024": off, "step_512_x0.5": pd, "step_1024_x0.5": pd}
    fake = {None: 250.0, "step_512": 400.0, "step_1024": 400.0, "step_512_x0.5": 300.0, "step_1024_x0.5": 280.0}
    pushed: list[str | None] = []

    def fake_push(d: Path | None, sel: SelectConfig, hz: float) -> tuple[float, list[float]]:
        pushed.append(d.name if d else None)
        return fake[d.name if d else None], [1.0]

    monkeypatch.setattr(sel_mod, "walks", lambda d, sel, hz: walked[d.name if d else None])
    monkeypatch.setattr(sel_mod, "push_score", fake_push)
    found = {}
    for outside in (True, False):
        pushed.clear()
        lines: list[str] = []
        cfg = SelectConfig(residual_scales=[1.0, 0.5], push_outside_limits=outside, workers=1)
        found[outside] = (sel_mod.select_checkpoint(run, cfg, progress=lines.append), sorted(map(str, pushed)))
    (every, every_pushed), (within, within_pushed) = found[True], found[False]
    assert every_pushed == ["None", "step_1024", "step_1024_x0.5", "step_512", "step_512_x0.5"]
    assert within_pushed == ["None", "step_1024_x0.5", "step_512_x0.5"]  # the outside ones never pushed
    assert (within["step"], within["residual_scale_factor"]) == (every["step"], every["residual_scale_factor"])
    assert (within["step"], within["residual_scale_factor"], within["score_n"]) == (512, 0.5, 300.0)
    assert within["scores"]["512x0.5"] == every["scores"]["512x0.5"] and within["baseline_pd"] == every["baseline_pd"]
    assert within["scores"]["512"]["score_n"] is None and every["scores"]["512"]["score_n"] == 400.0
    assert within["scores"]["512"]["limits"] == every["scores"]["512"]["limits"] and not within["push_outside_limits"]
    assert "select: push trials for the 2 of 4 candidates within the limits" in lines
    assert any(s.startswith("select: step 512: OUTSIDE limits") for s in lines)
    # None within: every candidate is pushed, and the best score wins, marked as outside.
    walked.update({"step_512_x0.5": off, "step_1024_x0.5": off})
    pushed.clear()
    lines = []
    sel = sel_mod.select_checkpoint(run, SelectConfig(residual_scales=[1.0, 0.5], push_outside_limits=False,
                                                      workers=1), progress=lines.append)  # fmt: skip
    assert len(pushed) == 5 and (sel["step"], sel["within_limits"]) == (1024, False) and sel["score_n"] == 400.0
    assert "select: push trials for all 4 candidates (none is within the limits)" in lines


def test_select_confirms_the_winner_on_other_seeds(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select.confirm_seeds: the winner and the PD run the trials again on seeds that chose nothing; rl.json and the
    training summary report the scores, the paired split and its sign test, and the winner stays the winner."""
    import experiments.rl_select as sel_mod
    from experiments.rl_config import SelectConfig

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    calls: list[tuple[str | None, list[int], bool]] = []

    def fake_push(d: Path | None, sel: SelectConfig, hz: float) -> tuple[float, list[float]]:
        confirm = sel.seeds == [7, 8]
        calls.append((d.name if d else None, sel.seeds, confirm))
        if confirm:  # the winner's edge shrinks on other seeds: 1 larger, 1 smaller, 2 the same
            trials = [300.0, 200.0, 250.0, 250.0] if d is not None else [250.0, 250.0, 250.0, 250.0]
        else:
            trials = {"step_512": [400.0] * 4, "step_1024": [300.0] * 4, None: [250.0] * 4}[d.name if d else None]
        return float(np.mean(trials)), trials

    monkeypatch.setattr(sel_mod, "push_score", fake_push)
    lines: list[str] = []
    sel = sel_mod.select_checkpoint(run, SelectConfig(walk_seconds=0.0, confirm_seeds=[7, 8], workers=1),
                                    progress=lines.append)  # fmt: skip
    assert sel["step"] == 512 and sel["score_n"] == 400.0
    assert [c for c in calls if c[2]] == [("step_512", [7, 8], True), (None, [7, 8], True)]  # winner and PD only
    c = sel["confirm"]
    assert (c["seeds"], c["score_n"], c["baseline_pd"]["score_n"]) == ([7, 8], 250.0, 250.0)
    assert (c["larger"], c["smaller"], c["same"], c["sign_test_p"], c["limits"]) == (1, 1, 2, 1.0, None)
    assert lines[-1].startswith("select: confirmed on seeds 7, 8 (chose nothing): mean largest push survived 250 N")
    assert json.loads((run / "rl.json").read_text())["selection"]["confirm"] == c
    summary = json.loads((run / "rl_train.json").read_text())
    assert (summary["confirm_score_n"], summary["confirm_baseline_pd_score_n"]) == (250.0, 250.0)
    assert summary["confirm_within_limits"] is None
    assert sel_mod.select_checkpoint(run, SelectConfig(walk_seconds=0.0, workers=1))["confirm"] is None


def test_select_command_runs_push_trials(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    code = main(["rl", "select", str(run), "--quiet", "--set", "select.seeds=[100]", "--set", "select.speeds=[1.0]",
                 "--set", "select.magnitudes=[50.0, 5000.0]", "--set", "select.walk_seconds=2.0",
                 "--set", "select.max_tracking_ratio=10", "--set", "select.max_torque_ratio=10",
                 "--set", "select.max_rate_ratio=10", "--set", "select.confirm_seeds=[101]"])  # fmt: skip
    assert code == 0
    sel = json.loads((run / "rl.json").read_text())["selection"]
    # 50 N is walked through, 5 kN is not: every candidate and the PD survive exactly 50 N; the tie goes to 1024.
    assert {s: (e["score_n"], e["pushes_n"]) for s, e in sel["scores"].items()} == {
        "512": (50.0, [50.0]), "1024": (50.0, [50.0])
    }  # fmt: skip
    assert sel["baseline_pd"]["score_n"] == 50.0 and sel["step"] == 1024 and sel["within_limits"]
    # The walks ran: one 2-s walk per checkpoint and the PD, with tracking and peak torques from the real loop.
    pd = sel["pd_walks"]
    assert pd["conditions"] == [[1.0, 0.0]] and sel["walk_conditions"] == [[1.0, 0.0]]
    assert pd["falls"] == 0 and len(pd["knee_rmse"]) == 1 and 0.0 < pd["knee_rmse"][0][0] < 0.5
    assert 10.0 < pd["peak_torque_nm"][0][0] <= 142.0 and pd["peak_rate_nm_s"][0][0] > 0.0
    lim = sel["scores"]["1024"]["limits"]
    assert lim["within"] and 0.0 < lim["knee_ratio"] < 10.0
    # Confirmed on seed 101: the winner and the PD both survive 50 N again, and walk within the limits.
    c = sel["confirm"]
    assert (c["seeds"], c["score_n"], c["baseline_pd"]["score_n"], c["same"]) == ([101], 50.0, 50.0, 1)
    assert c["limits"]["within"] and c["pd_walks"]["conditions"] == [[1.0, 0.0]]
    out = capsys.readouterr().out
    assert "selected step 1024" in out and "on the confirmation seeds 50 N (the PD: 50 N" in out
    assert main(["rl", "select", str(tmp_path)]) == 2


def test_select_scores_alike_in_one_process_or_two(trained: Path, tmp_path: Path) -> None:
    """select.workers only spreads the candidates over processes: real push trials and walks score every candidate
    the same with 1 and 2 workers, and the progress lines come in the candidates' order either way."""
    import experiments.rl_select as sel_mod
    from experiments.rl_config import SelectConfig

    found: dict[int, dict[str, Any]] = {}
    lines: dict[int, list[str]] = {1: [], 2: []}
    for workers in (1, 2):
        run = tmp_path / f"run{workers}"
        shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
        cfg = SelectConfig(seeds=[100], speeds=[1.0], magnitudes=[100.0, 200.0, 5000.0], walk_seconds=2.0,
                           residual_scales=[1.0, 0.5], max_tracking_ratio=10.0, max_torque_ratio=10.0,
                           max_rate_ratio=10.0, workers=workers)  # fmt: skip
        found[workers] = sel_mod.select_checkpoint(run, cfg, progress=lines[workers].append)
    one, two = found[1], found[2]
    assert one["scores"] == two["scores"] and one["pd_walks"] == two["pd_walks"]
    assert one["baseline_pd"] == two["baseline_pd"] and (one["step"], one["residual_scale_factor"]) == (
        two["step"], two["residual_scale_factor"])  # fmt: skip
    assert set(one["scores"]) == {"512", "512x0.5", "1024", "1024x0.5"}
    assert lines[1] == lines[2] and len(lines[1]) == 6 and "PD's walks" in lines[1][0] and "PD alone" in lines[1][-1]
    # Walks first (all within these loose limits, so all pushed), in two processes: the same scores again.
    run = tmp_path / "walks_first"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("tb"))
    cfg = dataclasses.replace(cfg, push_outside_limits=False)
    first = sel_mod.select_checkpoint(run, cfg)
    assert first["scores"] == one["scores"] and first["baseline_pd"] == one["baseline_pd"]
    assert (first["step"], first["residual_scale_factor"]) == (one["step"], one["residual_scale_factor"])


def test_push_train_pattern() -> None:
    """pattern "train": one magnitude per episode, alternating direction, evenly spaced, none after end_s."""
    from controllers.residual import RandomPushes

    rp = RandomPushes(probability=1.0, count=8, start_s=2.0, end_s=9.0, min_n=100.0, max_n=400.0, pattern="train")
    rp.validate()
    for seed in range(5):
        pushes = rp.draw(np.random.default_rng(seed))
        forces = [p.force_n for p in pushes]
        assert 1 <= len(pushes) <= 8 and all(2.0 <= p.time_s <= 9.0 for p in pushes)
        assert len({abs(f) for f in forces}) == 1 and 100.0 <= abs(forces[0]) <= 400.0
        assert all(a == -b for a, b in itertools.pairwise(forces))
        gaps = np.diff([p.time_s for p in pushes])
        assert np.allclose(gaps, gaps[0]) and 0.8 * 1.13 <= gaps[0] <= 1.2 * 1.13
    with pytest.raises(ValueError, match="pattern"):
        RandomPushes(pattern="burst").validate()


def test_a_sweep_runs_the_rl_policy_beside_the_pd(trained: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "rl_sweep.toml"
    cfg.write_text(
        f'[defaults]\nseconds = 2.0\ncheckpoint = "{trained}"\n\n[[grid]]\ncontroller = ["pd", "rl"]\nseed = [0]\n'
    )
    out = tmp_path / "sweep"
    assert main(["sweep", "--quiet", "--config", str(cfg), "--out", str(out), "--workers", "1"]) == 0
    doc = json.loads((out / "sweep.json").read_text())
    by = {t["params"]["controller"]: t for t in doc["tasks"]}
    assert set(by) == {"pd", "rl"} and all(t["status"] == "done" for t in by.values())
    assert by["rl"]["params"]["checkpoint"] == str(trained) and by["pd"]["params"]["checkpoint"] is None
    rl = by["rl"]["metrics"]
    assert rl["distance_m"] > 0.5 and rl["knee_rmse_ratio"] is not None  # compared with the PD of the same episode
    assert rl["sparsity"] is None  # not a delta network
    # No checkpoint: one line that names the key, before anything runs.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[grid]]\ncontroller = "rl"\n')
    assert main(["sweep", "--quiet", "--config", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_collected_data_records_the_pd_prior(trained: Path) -> None:
    """torque_prior_* is the PD's own torque: the label itself with the PD as expert; under an RL expert the PD
    inside it, which differs from the label by the policy's residual."""
    from experiments.collect import EpisodeTask, collect_episode

    _, pd_cols, _ = collect_episode(EpisodeTask(0, 21, 1.0, 2.0))
    np.testing.assert_array_equal(pd_cols["torque_prior_knee"], pd_cols["torque_pd_knee"])
    np.testing.assert_array_equal(pd_cols["torque_prior_ankle"], pd_cols["torque_pd_ankle"])
    _, rl_cols, _ = collect_episode(EpisodeTask(0, 21, 1.0, 2.0, expert=str(trained)))
    assert rl_cols["torque_prior_knee"][0] == pd_cols["torque_pd_knee"][0]  # the same first sensors, the same PD
    assert np.abs(rl_cols["torque_pd_knee"] - rl_cols["torque_prior_knee"]).max() > 0.0


def test_a_following_expert_sees_the_learners_applied_residual_as_its_previous_action(trained: Path) -> None:
    """``dagger.expert_follows``: while a DAgger learner drives, the RL expert's policy observes as its previous
    action the residual that was actually applied (applied torque − the PD's, over the bound) — not its own label of
    the step before, which never reached the motors; its slew then starts from there. Without it, it does not."""
    from controllers.pd import AmproPD
    from envs.walker_env import ProstheticWalkerEnv
    from experiments.collect import DaggerMix, EpisodeTask, collect, load_expert

    steps = 120

    class Stiffer:  # a learner that is not the expert: the PD's torque plus a fixed knee offset
        name = "stiffer"

        def __init__(self, pd: AmproPD) -> None:
            self.pd = pd

        def reset(self) -> None:
            self.pd.reset()

        def act(self, obs: np.ndarray) -> np.ndarray:
            return self.pd.act(obs) + np.array([12.0, -6.0])

    def run(follow: bool) -> tuple[np.ndarray, np.ndarray]:
        env = ProstheticWalkerEnv()
        obs, _ = env.reset(seed=2)
        pd = AmproPD(env.dt, walker=env.walker)
        expert = load_expert(str(trained), env, pd)
        learner = Stiffer(AmproPD(env.dt, walker=env.walker))
        use_pd = np.zeros(steps, dtype=bool)
        use_pd[::4] = True  # the expert drives every fourth step
        task = EpisodeTask(index=0, seed=2, speed=1.0, seconds=steps * env.dt)
        mix = DaggerMix(pd, learner, use_pd, task, env.peak_torque, expert, follow)
        mix.reset()
        bound = expert.loaded.residual_scale * env.peak_torque
        seen, implied = np.zeros((steps, 2)), np.zeros((steps, 2))
        for k in range(steps):
            tau = mix.act(obs).copy()
            seen[k] = expert.core.obs[14:16]  # the previous action the expert's policy observed at step k
            implied[k] = np.clip((tau - pd.last_torque) / bound, -1.0, 1.0)  # what this step applied, as a residual
            obs, *_ = env.step(tau / env.peak_torque)
        return seen, implied

    seen, implied = run(True)
    after_learner = [k for k in range(1, steps) if (k - 1) % 4 != 0]
    np.testing.assert_allclose(
        seen[after_learner], implied[np.array(after_learner) - 1], rtol=0, atol=1e-6
    )  # float32 obs
    seen_own, implied_own = run(False)
    assert np.abs(seen_own[after_learner] - implied_own[np.array(after_learner) - 1]).max() > 0.05
    with pytest.raises(ValueError, match="expert_follows needs an RL expert"):
        collect("/nonexistent", 1, 1.0, expert_follows=True)


def test_a_scaled_correction_is_applied_and_the_expert_labels_from_what_was(trained: Path, tmp_path: Path) -> None:
    """``data.correction_scale`` (DART-style perturbation of the expert's own episodes): the applied torque is the
    PD's plus s × the expert's correction over it, s drawn per episode within [lo, hi] and recorded; the labels stay
    the expert's own torques, computed from the applied history (its previous action is the applied residual)."""
    from controllers.pd import AmproPD
    from envs.walker_env import ProstheticWalkerEnv
    from experiments.collect import DaggerMix, EpisodeTask, collect, load_expert
    from experiments.dataset import load_dataset, read_manifest

    steps, s = 120, 0.7
    env = ProstheticWalkerEnv()
    obs, _ = env.reset(seed=3)
    pd = AmproPD(env.dt, walker=env.walker)
    expert = load_expert(str(trained), env, pd)
    task = EpisodeTask(index=0, seed=3, speed=1.0, seconds=steps * env.dt, correction_scale=s)
    with pytest.raises(ValueError, match="follow"):
        DaggerMix(pd, None, None, task, env.peak_torque, expert, False, s)
    mix = DaggerMix(pd, None, None, task, env.peak_torque, expert, True, s)
    mix.reset()
    bound = expert.loaded.residual_scale * env.peak_torque
    labels, prior, applied, seen = (np.zeros((steps, 2)) for _ in range(4))
    for k in range(steps):
        tau = mix.act(obs).copy()
        labels[k], prior[k], applied[k] = expert.last_torque, pd.last_torque, tau
        seen[k] = expert.core.obs[14:16]
        obs, *_ = env.step(tau / env.peak_torque)
    np.testing.assert_allclose(applied, prior + s * (labels - prior), rtol=0, atol=1e-9)
    assert np.abs(labels - prior).max() > 0.2  # the expert corrects the PD (N·m), so the scale changes what is applied
    np.testing.assert_allclose(seen[1:], np.clip((applied[:-1] - prior[:-1]) / bound, -1, 1), rtol=0, atol=1e-6)

    out = tmp_path / "scaled"
    collect(out, 2, 0.5, expert=str(trained), correction_scale=(0.6, 0.8), workers=1, progress=False)
    man = read_manifest(out)
    assert man["collect"]["correction_scale"] == [0.6, 0.8]
    eps = load_dataset([out])
    scales = [e.meta["correction_scale"] for e in eps]
    assert all(0.6 <= x <= 0.8 for x in scales) and scales[0] != scales[1]
    for e, x in zip(eps, scales, strict=True):
        c = e.columns
        for j in ("knee", "ankle"):
            lab, pri = c[f"torque_pd_{j}"], c[f"torque_prior_{j}"]
            np.testing.assert_allclose(c[f"torque_actual_{j}"], pri + x * (lab - pri), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="pass expert=DIR"):
        collect(tmp_path / "no_expert", 1, 0.5, correction_scale=(0.8, 1.0))
    with pytest.raises(ValueError, match="0 <= lo <= hi <= 2"):
        collect(tmp_path / "bad", 1, 0.5, expert=str(trained), correction_scale=(0.9, 0.8))

    from experiments.train import TrainError, run_training
    from experiments.train_config import CONFIG_DIR, ConfigError, load_config

    cfg = load_config(CONFIG_DIR / "train_tiny.toml")
    assert "correction_scale" not in cfg.to_dict()["data"]  # older runs' ids still match
    scaled = cfg.replace(data=dataclasses.replace(cfg.data, correction_scale=[0.8, 1.0]))
    assert scaled.to_dict()["data"]["correction_scale"] == [0.8, 1.0]
    with pytest.raises(ConfigError, match=r"data\.correction_scale"):
        cfg.replace(data=dataclasses.replace(cfg.data, correction_scale=[1.2, 0.8]))
    with pytest.raises(TrainError, match=r"correction_scale .* --expert"):
        run_training(scaled, tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()


def test_residual_limits_hold_the_student_to_the_experts_correction(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``residual_limits = true``: the distilled network's correction is held to its expert's limits on the residual
    (bound, slew, torque envelope) — in the loop the controller commands exactly what the expert's ResidualCore
    would for the action correction / bound; the checkpoint and train.json carry them; without an expert, or with
    the torque target, the key is refused before anything is written."""
    from controllers.base import torque_limits_of
    from controllers.checkpoint import load_checkpoint
    from controllers.command_limits import ResidualLimits
    from controllers.pd import AmproPD
    from controllers.residual import ResidualCore
    from controllers.rl_policy import load_rl_checkpoint
    from envs.walker_env import ProstheticWalkerEnv
    from experiments.train import TrainError, run_training
    from experiments.train_config import CONFIG_DIR, ConfigError, load_config
    from hil.learned import LearnedController

    cfg = load_config(CONFIG_DIR / "train_tiny.toml").replace(target="pd_residual", residual_limits=True)
    assert cfg.to_dict()["residual_limits"] is True
    assert "residual_limits" not in cfg.replace(residual_limits=False).to_dict()  # older runs' ids still match
    with pytest.raises(ConfigError, match="residual_limits"):
        cfg.replace(target="torque")
    with pytest.raises(TrainError, match="--expert"):
        run_training(cfg, tmp_path / "none", progress=False)
    follows = load_config(CONFIG_DIR / "train_tiny.toml")
    follows = follows.replace(dagger=dataclasses.replace(follows.dagger, expert_follows=True))
    assert follows.to_dict()["dagger"]["expert_follows"] is True
    assert "expert_follows" not in load_config(CONFIG_DIR / "train_tiny.toml").to_dict()["dagger"]
    with pytest.raises(TrainError, match="expert_follows"):
        run_training(follows, tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()

    expert = tmp_path / "expert"  # the tiny policy with a slew limit, an envelope and a hard torque-rate limit
    shutil.copytree(trained, expert)
    rl_meta = json.loads((expert / "rl.json").read_text())
    rl_meta |= {"residual_max_delta": 0.1, "residual_envelope": 0.4, "residual_rate_limit_nm_s": [9000.0, 0.0]}
    (expert / "rl.json").write_text(json.dumps(rl_meta))
    loaded = load_rl_checkpoint(expert)
    peak = torque_limits_of(None)
    want = loaded.residual_limits(peak)
    bound = np.array(want.bound_nm)
    np.testing.assert_allclose(bound, loaded.residual_scale * peak)
    assert want.slew_nm_s == pytest.approx(tuple(0.1 * bound / loaded.control_dt))
    assert want.envelope_nm == pytest.approx(tuple(0.4 * peak))
    out = tmp_path / "distil"
    monkeypatch.chdir(tmp_path)
    run_training(cfg, out, progress=False, expert="expert")  # relative to the working directory
    _, meta = load_checkpoint(out / "controller.pt")
    assert meta.residual_limits == want
    summary = json.loads((out / "train.json").read_text())
    assert summary["residual_limits"] == want.to_dict()
    assert summary["expert"] == str(expert.resolve())  # resolved: a resumed or moved run still finds it
    assert ResidualLimits.from_dict(want.to_dict()) == want
    # benchmarks/distil_fit_by_driver.py: the fit per data set, in the order collected
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "distil_fit_by_driver.py"
    fit = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, check=True).stdout
    rows = [line.split()[0] for line in fit.splitlines()[1:]]
    assert rows == ["pd", "dagger1", "delta_dagger1"], fit
    from firmware_bridge.export import bundle_from_checkpoint, c_header

    bundle = bundle_from_checkpoint(out / "controller.pt")
    assert bundle.meta["residual_limits"] == want.to_dict()
    assert "Residual limits (the RL expert's, applied to the correction by the host): correction ≤" in c_header(bundle)
    ev = tmp_path / "ev"
    argv = ["eval", "--controller", "deltagru", "--checkpoint", str(out), "--seconds", "0.5", "--seeds", "0"]
    assert main([*argv, "--no-pushes", "--no-log", "--out", str(ev)]) == 0
    assert json.loads((ev / "metrics.json").read_text())["config"]["residual_limits"] == want.to_dict()

    # A jumpy network (its output scale x 40) so that every limit bites.
    js = out / "controller.json"
    d = json.loads(js.read_text())
    d["target_scale"] = [40.0 * v for v in d["target_scale"]]
    js.write_text(json.dumps(d))
    env = ProstheticWalkerEnv()
    obs, _ = env.reset(seed=3)
    # What legloop eval runs (the spec's factory), and from_checkpoint, both hold the limits.
    from hil.spec import ControllerSpec

    factory = ControllerSpec("deltagru", checkpoint=str(out)).factory()
    ctrl = factory(env)
    assert isinstance(ctrl, LearnedController) and ctrl.residual_limits == want
    assert factory.offline(16).residual_limits == want  # a replay's
    assert LearnedController.from_checkpoint(out, "deltagru").residual_limits == want
    core = ResidualCore(
        AmproPD(env.dt, walker=env.walker),
        env.peak_torque,
        loaded.residual_scale,
        loaded.max_delta,
        loaded.envelope,
        loaded.torque_limit,
        loaded.rate_limit,
    )
    bit = {"bound": False, "slew": False, "envelope": False}
    prev = np.zeros(2)
    for _ in range(200):
        tau = ctrl.act(obs).copy()
        core.observe(obs)
        raw = ctrl.raw_output.copy()
        expected = core.torque(raw / bound).copy()
        np.testing.assert_allclose(tau, expected, rtol=0, atol=1e-9)
        applied = core.prev_action * bound  # the correction after the bound and the slew
        bit["bound"] |= bool(np.any(np.abs(raw) > bound))
        bit["slew"] |= bool(np.any(np.abs(applied - np.clip(raw, -bound, bound)) > 1e-9))
        bit["envelope"] |= bool(np.any(np.abs(tau) < np.abs(core.pd.last_torque + applied) - 1e-6))
        prev = applied
        obs, *_ = env.step(tau / env.peak_torque)
    factory.close()
    assert all(bit.values()), bit
    assert np.abs(prev).max() > 0.0


def test_distilled_pd_residual_network_adds_the_pd(trained: Path, tmp_path: Path) -> None:
    """target = "pd_residual": the network learns label − PD torque, its checkpoint and export say so, and in the
    loop (and in a replay) the controller applies PD torque + network output — within the expert's hard limits on
    the command, which the checkpoint inherits; data without the PD's torque is refused with the reason."""
    import json
    import shutil

    from controllers.checkpoint import load_checkpoint
    from controllers.command_limits import CommandLimits
    from controllers.pd import AmproPD
    from envs.walker_env import ProstheticWalkerEnv
    from experiments.dataset import export_csv, load_dataset
    from experiments.replay import ReplayError, replay_log
    from experiments.train import TrainError, run_training
    from experiments.train_config import CONFIG_DIR, load_config
    from experiments.train_data import episode_series
    from hil.learned import LearnedController

    cfg = load_config(CONFIG_DIR / "train_tiny.toml").replace(target="pd_residual")
    assert cfg.to_dict()["target"] == "pd_residual" and "target" not in cfg.replace(target="torque").to_dict()
    expert = tmp_path / "expert"  # the tiny policy with hard limits on its command: knee |τ|, ankle |dτ/dt|
    shutil.copytree(trained, expert)
    rl_meta = json.loads((expert / "rl.json").read_text())
    rl_meta |= {"residual_torque_limit_nm": [30.0, 0.0], "residual_rate_limit_nm_s": [0.0, 2000.0]}
    (expert / "rl.json").write_text(json.dumps(rl_meta))
    out = tmp_path / "distil"
    run_training(cfg, out, progress=False, expert=str(expert))
    _, meta = load_checkpoint(out / "controller.pt")
    assert meta.target == "pd_residual"
    assert meta.command_limits == CommandLimits((30.0, None), (None, 2000.0))
    from firmware_bridge.export import bundle_from_checkpoint, c_header

    bundle = bundle_from_checkpoint(out / "controller.pt")
    assert bundle.meta["target"] == "pd_residual" and "Target pd_residual" in c_header(bundle)
    assert "knee ≤ 30 N·m; ankle ≤ 2000 N·m/s" in c_header(bundle)

    eps = load_dataset([out / "data" / "pd"])
    (s,) = episode_series(eps[:1], "ampro", target="pd_residual")
    c = eps[0].columns
    np.testing.assert_allclose(s.y[:, 0], c["torque_pd_knee"] - c["torque_prior_knee"], atol=1e-4)  # float32
    bare = [type(eps[0])({k: v for k, v in c.items() if not k.startswith("torque_prior")}, eps[0].meta, "old")]
    with pytest.raises(TrainError, match=r"lacks column.*torque_prior_knee.*target 'pd_residual'"):
        episode_series(bare, "ampro", target="pd_residual")

    env = ProstheticWalkerEnv()
    obs, _ = env.reset(seed=3)
    ctrl = LearnedController.from_checkpoint(out, "deltagru", walker=env.walker)
    pd = AmproPD(env.dt, walker=env.walker)
    assert ctrl.residual and ctrl.command_limits == meta.command_limits
    prev_ankle, step = 0.0, 2000.0 * env.dt
    acted = np.zeros(2, dtype=bool)
    for _ in range(100):
        tau = ctrl.act(obs).copy()
        unlimited = np.clip(pd.act(obs) + ctrl.raw_output, -env.peak_torque, env.peak_torque)
        expected = unlimited.copy()
        expected[0] = np.clip(expected[0], -30.0, 30.0)
        expected[1] = np.clip(expected[1], prev_ankle - step, prev_ankle + step)
        np.testing.assert_allclose(tau, expected, atol=1e-9)
        acted |= np.abs(expected - unlimited) > 1e-6
        prev_ankle = tau[1]
        obs, *_ = env.step(tau / env.peak_torque)
    assert np.abs(ctrl.raw_output).max() > 0.0
    assert acted.all()  # both limits bit

    log = export_csv(eps[0], tmp_path / "ep.csv")
    metrics, pred, _ = replay_log("deltagru", out, log)
    assert metrics["rows"] == len(pred) and np.isfinite(pred).all()
    cols_no_prior = {k: v for k, v in c.items() if not k.startswith("torque_prior")}
    from experiments.ampro_log import write_csv

    with pytest.raises(ReplayError, match="torque_prior_knee"):
        replay_log("deltagru", out, write_csv(tmp_path / "old.csv", cols_no_prior))


def test_distillation_with_correction_weights_records_them(trained: Path, tmp_path: Path) -> None:
    """``optim.correction_weight`` on a real distillation: every stage trains on the expert's data with uneven loss
    weights and says so in its record; the configuration carries the key. With the PD as its own 'expert' there is
    no correction to weight: the weights are even."""
    from experiments.train import run_training
    from experiments.train_config import CONFIG_DIR, load_config

    cfg = load_config(CONFIG_DIR / "train_tiny.toml").replace(target="pd_residual")
    cfg = cfg.replace(optim=dataclasses.replace(cfg.optim, correction_weight=3.0))
    res = run_training(cfg, tmp_path / "w", progress=False, expert=str(trained))
    assert res.controller.exists()
    assert json.loads((tmp_path / "w" / "train_config.json").read_text())["config"]["optim"]["correction_weight"] == 3.0
    stages = json.loads((tmp_path / "w" / "train.json").read_text())["stages"]
    assert [s["name"] for s in stages] == ["bc", "dagger1", "delta", "delta_dagger1"]
    for s in stages:
        lw = s["loss_weights"]
        assert lw["strength"] == 3.0 and lw["top1pct_share"] > 0.015 and lw["p50_over_mean"] < 1.0
    # benchmarks/distil_fit_by_reaction.py: the fit where the expert reacts and where it walks, per network
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "distil_fit_by_reaction.py"
    argv = [sys.executable, str(script), str(tmp_path / "w" / "data" / "pd"), str(tmp_path / "w")]
    lines = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[1].split() == ["top", "1", "%", "90–99", "%", "lower", "half"]
    assert lines[2].startswith("expert's |correction|") and lines[3].startswith("w ")
    errors = [float(v) for v in lines[3].split()[1:] if v != "/"]
    assert len(errors) == 6 and all(np.isfinite(errors)) and max(errors) > 0.0
    run_training(cfg, tmp_path / "pd", progress=False)  # the PD imitating itself: a zero correction everywhere
    pd_stages = json.loads((tmp_path / "pd" / "train.json").read_text())["stages"]
    assert all(s["loss_weights"]["max_over_mean"] == 1.0 for s in pd_stages)
