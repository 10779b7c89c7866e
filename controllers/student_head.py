"""A distilled student's output layer as an RL policy: the frozen delta-GRU's hidden state is the observation.

A ``pd_residual`` student (``legloop train --expert rl:DIR``) applies PD torque + correction, the correction being
its Linear output layer on the last GRU layer's hidden state h_t, de-normalised. The student does not observe its own
outputs (its features are sensors and the PD's reference), so with the GRU frozen h_t is a function of the sensor
history alone, and the output layer is a *linear policy on h_t*: ``y_t = W h_t + b``. :class:`StudentHeadEnv` is
the walker with the student's GRU inside it, the env such a policy acts in — reinforcement learning can then tune the
deployed network's output layer for what it is judged on (push survival, tracking, torque), not for the expert's
labels, and the result is the same network shape, thresholds and sparsity, ready for export
(``legloop rl finetune``, :mod:`experiments.rl_finetune`).

## Action space
``Box(-A, A, (2,), float32)``, A = :data:`ACTION_BOUND`: the network's output y [knee, ankle] in its normalised
units; the correction is ``y · target_scale + target_offset`` N·m, as the checkpoint de-normalises it.

## Observation space
``Box(-1, 1, (H,), float32)``: h_t of the last GRU layer after this step's features (the checkpoint's feature set,
normalised with its constants, through its delta thresholds: what the CPU kernel and EdgeDRNN compute).

## Torque, rewards, episode end
:class:`controllers.residual.ResidualPDEnv` at residual scale 1 (action = correction / motor peak), without a slew
limit or an envelope, and with the student's ``command_limits``: the torque the student applies in the loop
(``hil.learned.LearnedController``: PD + correction, saturated at the motor peaks, then the command limits; the one
difference is that a correction beyond a motor peak is clipped there before the PD's torque is added — a torque
that saturates either way). The rewards, pushes and episode end are that env's. ``info["student_output"]`` is the
frozen checkpoint's own y for this h (its original output layer), for comparison.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from controllers.checkpoint import CheckpointMeta, learned_checkpoint, load_checkpoint
from controllers.deltagru import DeltaGRU
from controllers.features import feature_size, features_from_obs
from controllers.gru_kernel import DeltaGRUKernel
from controllers.residual import RandomPushes, ResidualPDEnv, RewardWeights, make_residual_env

# The action's bound in normalised output units: a correction of ±20 target-scales, far beyond any trained output.
ACTION_BOUND = 20.0


class StudentError(ValueError):
    """A checkpoint that cannot be fine-tuned as a student head (one clear line)."""


def load_student(path: str | os.PathLike) -> tuple[DeltaGRU, CheckpointMeta]:
    """A distilled ``pd_residual`` delta-GRU (a run directory's ``controller.pt``, or a ``.pt``), or StudentError."""
    model, meta = load_checkpoint(learned_checkpoint("deltagru", path))
    if meta.target != "pd_residual":
        raise StudentError(
            f"{path}: target {meta.target!r}; a student head is a distilled RL expert's correction network "
            "(target 'pd_residual', `legloop train --expert rl:DIR`)"
        )
    if meta.residual_limits is not None:
        raise StudentError(
            f"{path}: distilled with residual_limits (the expert's slew and envelope on the correction); "
            "fine-tuning supports students without them (the distillation default)"
        )
    return model, meta


class StudentHeadEnv(gym.Wrapper):
    """The walker with a student's frozen delta-GRU inside: observe h_t, act with the output layer's y_t.

    ``env`` is a :class:`ResidualPDEnv` made with ``residual_scale = 1``, no ``max_delta`` or ``envelope`` and the
    student's command limits (:func:`make_student_head_env` makes it); ``model`` and ``meta`` are the student
    (:func:`load_student`). See the module docstring for the spaces.
    """

    def __init__(self, env: ResidualPDEnv, model: DeltaGRU, meta: CheckpointMeta) -> None:
        super().__init__(env)
        if env.residual_scale != 1.0 or env.max_delta is not None or env.envelope is not None:
            raise ValueError("StudentHeadEnv needs a ResidualPDEnv at residual_scale 1, without max_delta or envelope")
        self.residual_env = env
        self.feature_set = meta.feature_set
        self.kernel = DeltaGRUKernel.from_module(model)
        k = self.kernel
        if k.input_size != feature_size(meta.feature_set):
            raise ValueError(f"network has {k.input_size} inputs; feature set {meta.feature_set!r} differs")
        self.hidden_size = k.hidden_size
        self._mean = np.asarray(meta.input_norm.mean, np.float32)
        self._std = np.asarray(meta.input_norm.std, np.float32)
        self._scale = np.asarray(meta.target_scale, np.float64)
        self._offset = np.asarray(meta.target_offset, np.float64)
        self._feat = np.zeros(k.input_size, np.float32)
        self._x = np.zeros(k.input_size, np.float32)
        self._action = np.zeros(2)
        self._h = k.hidden_view()  # the last layer's h
        self.student_output = np.zeros(2)
        self.action_space = spaces.Box(-ACTION_BOUND, ACTION_BOUND, (2,), np.float32)
        self.observation_space = spaces.Box(-1.0, 1.0, (k.hidden_size,), np.float32)

    def _advance(self, obs: np.ndarray) -> np.ndarray:
        """Features of this step (the residual env's sensors and PD reference) → one GRU step → a copy of h_t."""
        pd = self.residual_env.core.pd  # type: ignore[union-attr]
        features_from_obs(self.feature_set, obs[:7], pd.domain, pd.knee_des, pd.knee_vel_des, self._feat, pd.phase)
        x = self._x
        np.subtract(self._feat, self._mean, out=x)  # float32, as the CPU backend normalises
        np.divide(x, self._std, out=x)
        y = self.kernel.step(x)
        self.student_output[0] = y[0]
        self.student_output[1] = y[1]
        return self._h.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.kernel.reset()
        h = self._advance(obs)
        info["student_output"] = self.student_output.copy()
        return h, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        core = self.residual_env.core
        if core is None:
            raise RuntimeError("call reset() before step()")
        a = self._action
        np.multiply(action, self._scale, out=a)  # the correction, N·m (into a float64 buffer: no allocation)
        a += self._offset
        a /= core.peak  # residual scale 1: the action is the correction over the motor peak
        obs, reward, terminated, truncated, info = self.env.step(a)
        h = self._advance(obs)
        info["student_output"] = self.student_output.copy()
        return h, float(reward), terminated, truncated, info


def make_student_head_env(
    student: str | os.PathLike,
    env_options: dict[str, Any] | None = None,
    weights: RewardWeights | None = None,
    pushes: RandomPushes | None = None,
    max_episode_steps: int = 2000,
) -> StudentHeadEnv:
    """``legloop/ProstheticWalker-v0`` (``env_options``) in a :class:`ResidualPDEnv` with the student's command
    limits, in a :class:`StudentHeadEnv` of the student at ``student``."""
    model, meta = load_student(student)
    lim = meta.command_limits
    env = make_residual_env(
        env_options,
        1.0,
        weights,
        pushes,
        max_episode_steps=max_episode_steps,
        torque_limit=lim.torque_nm,
        rate_limit=lim.rate_nm_s,
    )
    return StudentHeadEnv(env, model, meta)  # type: ignore[arg-type]
