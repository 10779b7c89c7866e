"""The gymnasium env: API conformance, spaces, determinism, bad input, start posture, rendering."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.walker_env import ProstheticWalkerEnv, Push


def test_make_and_spaces() -> None:
    env = gym.make(envs.ENV_ID)
    obs, _info = env.reset(seed=0)
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    assert obs.shape == (7,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.spec.max_episode_steps == 2000
    env.close()


def test_gymnasium_check_env() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(ProstheticWalkerEnv(randomize=True, sensor_noise=True), skip_render_check=True)


def test_sb3_check_env_passes_without_warnings() -> None:
    import warnings

    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 warns on non-float32 or non-[-1, 1] actions: there must be none
        check_env(ProstheticWalkerEnv(), warn=True)


def test_reset_is_seeded_and_randomised() -> None:
    env = ProstheticWalkerEnv(randomize=True, sensor_noise=True)
    a, _ = env.reset(seed=3)
    mass_a, slope_a = env.walker.body.mass, env.episode_slope_deg
    b, _ = env.reset(seed=3)
    assert np.array_equal(a, b) and env.walker.body.mass == mass_a and env.episode_slope_deg == slope_a
    env.reset(seed=4)
    assert env.walker.body.mass != mass_a
    assert 75 * 0.85 <= env.walker.body.mass <= 75 * 1.15
    assert -5.0 <= env.episode_slope_deg <= 5.0


def test_start_posture_is_on_the_ground_and_at_rest() -> None:
    """No drop from the air: the lowest contact touches the floor, the walker is loaded at once, joints at rest."""
    env = ProstheticWalkerEnv()
    obs, _ = env.reset(seed=0)
    m, d = env.model, env.data
    lowest = min(d.geom_xpos[i, 2] - m.geom_size[i, 0] for i in range(m.ngeom) if m.geom_contype[i])
    assert abs(lowest) < 2e-3
    assert obs[6] > 0.3 * env.body_weight  # the prosthesis carries load from the first sample
    assert np.all(d.qvel[1:] == 0.0)
    # Every DOF is reset: after walking, a new reset gives the same state.
    for _ in range(100):
        env.step(np.zeros(2))
    obs2, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, obs2)


def test_slope_fades_in_over_the_ramp() -> None:
    """The walker starts on level ground; gravity tilts to the slope over `slope_ramp_s`, the human leans with it."""
    import math

    def gravity_slope(env: ProstheticWalkerEnv) -> float:
        g = env.model.opt.gravity
        return math.degrees(math.atan2(-g[0], -g[2]))

    env = ProstheticWalkerEnv(slope_deg=4.0, slope_ramp_s=1.0)
    env.reset(seed=0)
    assert gravity_slope(env) == pytest.approx(0.0)
    lean0 = env.human.lean()
    for _ in range(100):  # 0.5 s: half way
        env.step(np.zeros(2))
    assert gravity_slope(env) == pytest.approx(2.0, abs=0.05)
    for _ in range(200):
        env.step(np.zeros(2))
    assert gravity_slope(env) == pytest.approx(4.0)
    assert env.episode_slope_deg == 4.0
    assert env.human.lean() != lean0
    env = ProstheticWalkerEnv(slope_deg=-3.0, slope_ramp_s=0.0)
    env.reset(seed=0)
    assert gravity_slope(env) == pytest.approx(-3.0)


def test_unknown_option_is_rejected_with_the_valid_list() -> None:
    with pytest.raises(TypeError, match=r"unknown ProstheticWalker option.*speeed.*valid options are"):
        ProstheticWalkerEnv(speeed=1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"speed": 3.0}, r"speed must be within \[0.6, 1.5\]"),
        ({"control_hz": 300}, "must divide the physics rate"),
        ({"physics_dt": 0.002}, r"physics_dt must be within"),
        ({"slope_ramp_s": -1.0}, r"slope_ramp_s must be within \[0(\.0)?, 60(\.0)?\]"),
        ({"render_mode": "human"}, "render_mode must be None or one of"),
    ],
)
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProstheticWalkerEnv(**kwargs)


def test_bad_actions() -> None:
    env = ProstheticWalkerEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(2,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="action must be finite"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="action must be finite"):
        env.step(np.array([0.0, np.inf]))
    # Out of range is clipped to the motor peak torque, not rejected.
    env.step(np.array([5.0, -5.0]))
    assert env.data.ctrl[0] == pytest.approx(env.walker.prosthesis.knee_peak_torque)
    assert env.data.ctrl[1] == pytest.approx(-env.walker.prosthesis.ankle_peak_torque)


def test_control_rate_sets_frame_skip() -> None:
    assert ProstheticWalkerEnv().frame_skip == 5
    env = ProstheticWalkerEnv(control_hz=1000)
    assert env.frame_skip == 1 and env.dt == pytest.approx(0.001)


def test_push_moves_the_trunk() -> None:
    def x_after(pushes: tuple) -> float:
        env = ProstheticWalkerEnv(pushes=pushes)
        env.reset(seed=0)
        for _ in range(60):
            _, _, _, _, info = env.step(np.zeros(2))
        return info["x_position"]

    assert x_after((Push(0.05, 300.0, 0.1),)) > x_after(()) + 0.02


def test_push_now_is_the_scheduled_push_triggered_by_an_event() -> None:
    """push_now(F, d) at the step where a scheduled Push(t, F, d) would start gives the same trajectory, joins the
    scheduled pushes without dropping them, and a reset drops it."""
    later = Push(0.4, -150.0, 0.1)

    def run(pushes: tuple, now_at: float | None) -> np.ndarray:
        env = ProstheticWalkerEnv(pushes=pushes)
        env.reset(seed=0)
        for _ in range(120):
            if now_at is not None and env.time >= now_at and len(env.pushes) == len(pushes):
                env.push_now(300.0, 0.1)
            env.step(np.zeros(2))
        return env.data.qpos.copy()

    scheduled = run((Push(0.1, 300.0, 0.1), later), None)
    np.testing.assert_array_equal(run((later,), 0.1), scheduled)
    assert np.abs(run((later,), None) - scheduled).max() > 1e-3  # the push did something
    env = ProstheticWalkerEnv()
    env.reset(seed=0)
    env.push_now(100.0)
    assert env.pushes == (Push(0.0, 100.0, 0.1),)
    env.reset(seed=0)
    assert env.pushes == ()
    with pytest.raises(ValueError, match=r"finite force .* duration > 0"):
        env.push_now(100.0, 0.0)


def test_fall_terminates() -> None:
    env = ProstheticWalkerEnv()
    env.reset(seed=0)
    terminated = False
    for _ in range(2000):  # the knee motor flexes the stance knee fully: the walker must go down
        _, _, terminated, truncated, _ = env.step(np.array([1.0, 0.0]))
        if terminated:
            break
    assert terminated and not truncated
    assert env.hip_height < 0.6 * env.geom.leg_length or abs(env.data.qpos[2]) > 1.0


@pytest.mark.skipif(
    os.environ.get("MUJOCO_GL") not in ("osmesa", "egl"),
    reason="rendering needs a headless GL: MUJOCO_GL=osmesa (the Makefile installs libosmesa6 and sets it)",
)
def test_render_rgb_array() -> None:
    env = ProstheticWalkerEnv(render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # not a blank image
    env.close()
