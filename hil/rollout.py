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
(the recorder of the gait metrics, a shadow PD, a run log, a data collector). The loop allocates nothing per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from controllers.base import Controller

if TYPE_CHECKING:
    from envs.walker_env import ProstheticWalkerEnv

Observer = Callable[[int, np.ndarray, np.ndarray], None]


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


def rollout(
    env: ProstheticWalkerEnv,
    controller: Controller,
    obs: np.ndarray,
    steps: int,
    observers: Sequence[Observer] = (),
) -> RolloutResult:
    """Run ``controller`` on ``env`` for up to ``steps`` control steps from observation ``obs`` (the env's current
    state: after ``reset``, or a restored snapshot). Stops early on a fall or a :class:`LoopAborted`."""
    peak = env.peak_torque
    safe = np.zeros(2)
    action = np.zeros(2)
    bad_obs = bad_torque = 0
    fell = False
    aborted: str | None = None
    k = 0
    isfinite = math.isfinite
    try:
        for k in range(steps):
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
            obs, _, terminated, _, _ = env.step(action)
            if terminated:
                fell = True
                break
    except LoopAborted as exc:
        aborted = str(exc)
        return RolloutResult(k, fell, env.time, bad_obs, bad_torque, aborted)
    return RolloutResult(k + 1 if steps else 0, fell, env.time, bad_obs, bad_torque, aborted)
