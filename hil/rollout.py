"""The one closed loop: a controller drives the walker, step by step. Evaluation, data collection, the benchmarks and
sweeps all run their episodes through :func:`rollout`.

Per control step k::

    obs_k ──> controller.act(obs_k) ──> torque_k (N·m) ──> safety ──> observers(k, obs_k, torque_k)
          ──> env.step(torque_k / peak torque) ──> obs_{k+1}; stop on a fall

Safety, for every controller: a non-finite sensor vector is not given to the controller, and a non-finite torque
never reaches the motors; in both cases the motors get the safe action — zero torque, the passive joint — for that
period, and the event is counted (``RolloutResult.nonfinite_obs`` / ``nonfinite_torque``). Torques are saturated at
the motor peaks by the env (the action is clipped to ±1 of the peak).

A controller or backend that cannot go on (a board that stopped answering, a link that went down) raises
:class:`LoopAborted`: the rollout ends there and reports why (``RolloutResult.aborted``), so the caller can still
write what it has.

Observers are plain callables ``(k, obs, torque) -> None`` called after the controller, before the physics step
(the recorder of the gait metrics, a shadow PD, a run log, a data collector); ``torque is SAFE_TORQUE`` tells them
the safety layer acted. The loop allocates nothing per step.

Options: ``actuation`` (:class:`hil.actuation.ActuationDelay`) delays each torque on its way to the motors at the
physics step's granularity; ``pacer`` (:class:`hil.pacing.Pacer`) paces the loop at the control rate on the wall
clock (``--realtime``) and records how late each step started.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from controllers.base import Controller
from hil.actuation import ActuationDelay, DelayLine

if TYPE_CHECKING:
    from envs.walker_env import ProstheticWalkerEnv
    from hil.pacing import Pacer

Observer = Callable[[int, np.ndarray, np.ndarray], None]
# The safe action: zero torque (the passive joint). Observers compare with `is` to see the safety layer acted.
SAFE_TORQUE = np.zeros(2)
SAFE_TORQUE.flags.writeable = False


class LoopAborted(Exception):
    """The loop cannot go on (e.g. the board stopped answering): the message says what happened."""


@dataclass
class RolloutResult:
    """How a rollout ended.

    Attributes
    ----------
    steps
        Control steps run (the step that fell included).
    fell
        The walker fell (the env terminated).
    sim_time_s
        Simulated time at the end, s.
    nonfinite_obs, nonfinite_torque
        Steps whose sensor vector / controller torque was not finite (the safe action was applied instead).
    aborted
        None, or why the loop stopped early (:class:`LoopAborted`'s message).
    """

    steps: int
    fell: bool
    sim_time_s: float
    nonfinite_obs: int = 0
    nonfinite_torque: int = 0
    aborted: str | None = None

    @property
    def ended(self) -> str:
        """One word for the record: ``completed``, ``fell`` or ``aborted``."""
        return "aborted" if self.aborted else ("fell" if self.fell else "completed")


def _warm_up(env: ProstheticWalkerEnv, controller: Controller, obs: np.ndarray) -> None:
    """One step of controller and plant, then back to where they were: compiled code is compiled (or loaded from
    its cache) before a paced loop starts, not in its first periods."""
    snap = env.snapshot()
    if math.isfinite(sum(obs.tolist())):
        controller.act(obs)
    env.step(np.zeros(2))
    env.restore(snap)
    controller.reset()


def rollout(
    env: ProstheticWalkerEnv,
    controller: Controller,
    obs: np.ndarray,
    steps: int,
    observers: Sequence[Observer] = (),
    *,
    actuation: ActuationDelay | None = None,
    pacer: Pacer | None = None,
) -> RolloutResult:
    """Run ``controller`` on ``env`` for up to ``steps`` control steps from observation ``obs`` (the env's current
    state: after ``reset``, or a restored snapshot). Stops early on a fall or a :class:`LoopAborted`."""
    peak = env.peak_torque
    safe = SAFE_TORQUE
    action = np.zeros(2)
    line = DelayLine(env.frame_skip) if actuation is not None else None
    bad_obs = bad_torque = 0
    fell = False
    k = 0
    isfinite = math.isfinite
    if pacer is not None:
        _warm_up(env, controller, obs)
    # What exists now (the model, torch, the env) lives for the whole run: move it out of the collector's reach, so
    # that a full collection during the run (which scans every tracked object: 100-250 ms measured with torch
    # loaded) costs microseconds, not a dozen control periods; unfrozen when the run ends, so nothing is kept that
    # would otherwise be freed. Behaviour is unchanged; only the pauses go.
    gc.freeze()
    if pacer is not None:
        pacer.start()
    try:
        for k in range(steps):
            if pacer is not None:
                pacer.wait(k)
            # sum() of the 7 sensors is non-finite iff one of them is (inf − inf is nan): one cheap check.
            if isfinite(sum(obs.tolist())):
                torque = controller.act(obs)
                t0, t1 = torque.tolist()
                if not (isfinite(t0) and isfinite(t1)):
                    bad_torque += 1
                    torque = safe
            else:
                bad_obs += 1
                torque = safe
            for observe in observers:
                observe(k, obs, torque)
            np.divide(torque, peak, out=action)
            if line is None:
                obs, _, terminated, _, _ = env.step(action)
            else:
                assert actuation is not None
                line.push(k, action, actuation.substeps(env.physics_dt))
                before, after, substeps = line.take(k)
                obs, _, terminated, _, _ = env.step_delayed(after, before, substeps)
                line.settle(after)
            if terminated:
                fell = True
                break
    except LoopAborted as exc:
        return RolloutResult(k, fell, env.time, bad_obs, bad_torque, str(exc))
    finally:
        gc.unfreeze()
    return RolloutResult(k + 1 if steps else 0, fell, env.time, bad_obs, bad_torque, None)
