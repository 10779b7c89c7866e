"""Plant benchmark: the cost of one closed-loop control step against the raw physics it contains.

All variants run in one process, interleaved in rounds, on the same model and the same state trajectory, so their
ratios are comparable on a noisy shared machine:

* ``physics``  — `mj_step` × frame_skip on a walking state (the floor);
* ``env``      — `ProstheticWalkerEnv.step` with a fixed action (physics + virtual human + sensors + reward);
* ``loop``     — :func:`hil.rollout.rollout` of the AMPRO PD: env.step + the controller + the loop's own checks (one
  closed-loop control step, exactly as evaluation and collection run it);
* ``loop:<name>`` — for each extra controller given (a learned one, built by its ControllerSpec factory), the same
  rollout with that controller computing its full step every period beside the PD, whose torque is applied: an
  untrained network then walks the PD's trajectory, and the row costs env.step + PD + the controller.

Times are the thread's CPU time (`time.thread_time`), so waiting for a core on a busy machine does not count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import mujoco
import numpy as np

from controllers.base import Controller
from controllers.pd import AmproPD
from envs.walker_env import ProstheticWalkerEnv
from hil.rollout import rollout

# CPU time of this thread: a variant preempted by another process on a shared machine is not charged for the wait.
_clock = time.thread_time


class Shadowed:
    """A controller that runs ``other`` every step (its whole cost, its counters) and applies the PD's torque."""

    def __init__(self, other: Controller, pd: AmproPD) -> None:
        self.other = other
        self.pd = pd

    def reset(self) -> None:
        self.other.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.other.act(obs)
        return self.pd.act(obs)


def bench_plant(
    steps: int = 2000,
    rounds: int = 15,
    control_hz: float = 200.0,
    seed: int = 0,
    controllers: Mapping[str, Callable[[ProstheticWalkerEnv], Controller]] | None = None,
) -> dict[str, Any]:
    """Best over rounds of µs per control step for each variant, their ratios and the real-time factor.

    ``controllers``: name → a builder of a controller for the env (a :class:`hil.spec.ControllerFactory`), each timed
    as ``loop:<name>`` (see the module docstring).

    Every variant follows the same trajectory: the closed loop is run once to record its actuator commands and
    the human's servo gains per step; ``physics`` replays them into bare `mj_step` calls (the cost of writing
    them is measured by a copy-only loop and subtracted), ``env`` replays the recorded actions through
    `env.step`, ``loop`` runs env.step + PD again.
    """
    env = ProstheticWalkerEnv(control_hz=control_hz)
    obs, _ = env.reset(seed=seed)
    pd = AmproPD(env.dt, walker=env.walker)
    action = np.zeros(2)
    # Walk for 2 s so every variant times steady walking, and keep that state to restart each round from.
    for _ in range(int(2.0 / env.dt)):
        np.divide(pd.act(obs), env.peak_torque, out=action)
        obs, *_ = env.step(action)
    m, d = env.model, env.data
    start_obs = obs.copy()
    env_start, pd_start = env.snapshot(), pd.snapshot()

    def restore() -> None:
        env.restore(env_start)
        pd.restore(pd_start)

    ctrls = np.zeros((steps, m.nu))
    gains = np.zeros((steps, m.nu))
    biases = np.zeros((steps, m.nu, 3))
    actions = np.zeros((steps, 2))
    restore()
    o = start_obs
    for k in range(steps):
        np.divide(pd.act(o), env.peak_torque, out=actions[k])
        env.human.update(d, env.dt)  # what env.step will write, recorded for the physics replay
        ctrls[k] = d.ctrl
        d.ctrl[0:2] = actions[k] * env.peak_torque
        ctrls[k, 0:2] = d.ctrl[0:2]
        gains[k] = m.actuator_gainprm[:, 0]
        biases[k] = m.actuator_biasprm[:, :3]
        mujoco.mj_step(m, d, nstep=env.frame_skip)
        env.time += env.dt
        o = env.observe()

    times: dict[str, list[float]] = {"physics": [], "copy": [], "env": [], "loop": []}
    extra = {f"loop:{name}": build(env) for name, build in (controllers or {}).items()}
    wall: dict[str, list[float]] = {}
    for name in extra:
        times[name] = []
        wall[name] = []
    gain_col, bias_cols = m.actuator_gainprm[:, 0], m.actuator_biasprm[:, :3]
    for _ in range(rounds):
        restore()
        t0 = _clock()
        for k in range(steps):
            d.ctrl[:] = ctrls[k]
            gain_col[:] = gains[k]
            bias_cols[:] = biases[k]
            mujoco.mj_step(m, d, nstep=env.frame_skip)
        times["physics"].append(_clock() - t0)
        end_qpos = d.qpos.copy()

        t0 = _clock()
        for k in range(steps):
            d.ctrl[:] = ctrls[k]
            gain_col[:] = gains[k]
            bias_cols[:] = biases[k]
        times["copy"].append(_clock() - t0)

        restore()
        t0 = _clock()
        for k in range(steps):
            env.step(actions[k])
        times["env"].append(_clock() - t0)
        _check_same_trajectory("env", end_qpos, d.qpos)

        restore()
        t0 = _clock()
        rollout(env, pd, start_obs, steps)
        times["loop"].append(_clock() - t0)
        _check_same_trajectory("loop", end_qpos, d.qpos)

        for name, ctrl in extra.items():
            restore()
            ctrl.reset()
            # rollout() calls only reset() and act(), all a Shadowed has of the Controller protocol.
            shadowed = cast(Controller, Shadowed(ctrl, pd))
            w0 = time.perf_counter()
            t0 = _clock()
            rollout(env, shadowed, start_obs, steps)
            times[name].append(_clock() - t0)
            wall[name].append(time.perf_counter() - w0)
            _check_same_trajectory(name, end_qpos, d.qpos)
    # Best of the rounds (as timeit): interference from other processes only ever adds time.
    us = {k: float(np.min(v)) / steps * 1e6 for k, v in times.items()}
    us["physics"] = max(us["physics"] - us.pop("copy"), 1e-3)
    stats = {name: ctrl.episode_stats() for name, ctrl in extra.items() if hasattr(ctrl, "episode_stats")}
    return {
        "controllers": {
            name: {
                "us_per_control_step": us[name],
                "over_physics": us[name] / us["physics"],
                "real_time_factor": env.dt / (us[name] * 1e-6),
                # Wall clock: what a controller across a link costs includes waiting for its answer.
                "wall_us_per_control_step": float(np.min(wall[name])) / steps * 1e6,
                "wall_real_time_factor": env.dt / (float(np.min(wall[name])) / steps),
                "sparsity": stats.get(name, {}).get("sparsity"),
            }
            for name in extra
        },
        "control_hz": control_hz,
        "frame_skip": env.frame_skip,
        "steps_per_round": steps,
        "rounds": rounds,
        "us_per_control_step": us,
        "env_over_physics": us["env"] / us["physics"],
        "loop_over_physics": us["loop"] / us["physics"],
        "overhead_pct": 100.0 * (us["loop"] / us["physics"] - 1.0),
        "real_time_factor": env.dt / (us["loop"] * 1e-6),
        "physics_real_time_factor": env.dt / (us["physics"] * 1e-6),
    }


def _check_same_trajectory(variant: str, physics_qpos: np.ndarray, qpos: np.ndarray) -> None:
    # The ratios are only meaningful on one trajectory; a state restore() misses would silently change it.
    if not np.array_equal(physics_qpos, qpos):
        raise RuntimeError(f"bench: the {variant} variant left the physics variant's trajectory (incomplete restore)")


def format_plant(r: dict[str, Any]) -> str:
    us = r["us_per_control_step"]
    lines = [
        f"plant benchmark: {r['control_hz']:g} Hz control, {r['frame_skip']} physics steps per control step, "
        f"best of {r['rounds']} rounds x {r['steps_per_round']} steps",
        f"  {'raw physics (mj_step x ' + str(r['frame_skip']) + ')':30} {us['physics']:8.1f} us/step   1.00x",
        f"  {'env.step (human, sensors)':30} {us['env']:8.1f} us/step   {r['env_over_physics']:.2f}x",
        f"  {'closed loop (env.step + PD)':30} {us['loop']:8.1f} us/step   {r['loop_over_physics']:.2f}x"
        f"   overhead {r['overhead_pct']:+.0f} % over raw physics",
        f"  real-time factor: closed loop {r['real_time_factor']:.0f}x, "
        f"raw physics {r['physics_real_time_factor']:.0f}x",
    ]
    return "\n".join(lines)
