"""A trained residual RL policy (Stable-Baselines3) as a controller: what ``legloop eval --controller rl`` runs.

An RL checkpoint is a directory (``legloop rl train --out DIR``, or one of its ``DIR/checkpoints/step_N``):

====================  =========================================================================================
file                  what it holds
====================  =========================================================================================
``policy.zip``        the SB3 model (``model.save``; ``PPO.load`` reads it)
``vecnormalize.pkl``  the ``VecNormalize`` statistics the policy was trained with (``VecNormalize.load`` reads it)
``rl.json``           ``format`` (``legloop-rl/1``), ``algo``, ``observation`` (the layout: names and sizes, see
                      :data:`controllers.residual.OBS_LAYOUT`), ``residual_scale``, ``residual_max_delta`` (the
                      slew limit; absent or null: none), ``residual_envelope`` (the torque envelope, a fraction
                      of the peak; absent or null: none), ``residual_torque_limit_nm`` and
                      ``residual_rate_limit_nm_s`` (hard limits on the command, [knee, ankle], N·m and N·m/s;
                      absent or null, for a joint or both: none), ``control_dt``, training info, ``selection`` (which
                      checkpoint held-out push trials chose, :mod:`experiments.rl_select`)
====================  =========================================================================================

The controller builds the observation with :class:`controllers.residual.ResidualCore` — the code the training
wrapper runs — normalises it with the stored statistics (``training=False``: they are frozen), takes the policy's
deterministic action and returns PD torque + residual, N·m. A checkpoint whose stored layout differs from this
code's is refused, naming both.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controllers.command_limits import CommandLimits, ResidualLimits, check_joint_limits
from controllers.pd import AmproPD
from controllers.residual import (
    OBS_SIZE,
    ResidualCore,
    check_envelope,
    check_max_delta,
    describe_layout,
    layout_to_json,
)

FORMAT = "legloop-rl/1"
POLICY_FILE = "policy.zip"
NORM_FILE = "vecnormalize.pkl"
META_FILE = "rl.json"
ALGOS = ("ppo",)  # what `legloop rl train` makes


class RLCheckpointError(ValueError):
    """An RL checkpoint that cannot be used: missing files, another observation layout, corrupt statistics."""


@dataclass
class ObsNormalizer:
    """``clip((obs − mean) / sqrt(var + eps), ±clip)``, VecNormalize's formula, with frozen statistics."""

    mean: np.ndarray
    std: np.ndarray  # sqrt(var + eps), computed once as VecNormalize computes it
    clip: float
    _buf: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._buf = np.zeros_like(self.mean, dtype=np.float64)

    @classmethod
    def from_vecnormalize(cls, vn: Any) -> ObsNormalizer:
        if not getattr(vn, "norm_obs", True):
            n = len(vn.obs_rms.mean)
            return cls(np.zeros(n), np.ones(n), float("inf"))
        return cls(
            np.asarray(vn.obs_rms.mean, dtype=np.float64).copy(),
            np.sqrt(np.asarray(vn.obs_rms.var, dtype=np.float64) + vn.epsilon),
            float(vn.clip_obs),
        )

    def __call__(self, obs: np.ndarray, out: np.ndarray) -> np.ndarray:
        b = self._buf
        np.subtract(obs, self.mean, out=b)
        np.divide(b, self.std, out=b)
        np.clip(b, -self.clip, self.clip, out=b)
        out[:] = b
        return out


class MlpActor:
    """The deterministic action of an SB3 PPO ``MlpPolicy`` in numpy: ``clip(action_net(policy_net(obs)), ±1)``.

    ``policy.predict`` spends ~100 µs per call on one small MLP (tensor conversion, mode switches, checks) — more than
    the physics step; this is the same arithmetic in float32 on preallocated buffers (equal to ``predict`` to float32
    rounding: the summation order of the matrix products may differ). Gaussian and gSDE policies alike: their
    deterministic action is the mean, ``action_net`` of the actor's latent.
    """

    def __init__(self, policy: Any) -> None:
        import torch

        if getattr(policy, "squash_output", False):
            raise TypeError("MlpActor: a policy with squashed outputs is not a plain MLP mean")
        if type(policy.features_extractor).__name__ != "FlattenExtractor":
            raise TypeError(f"MlpActor: features extractor {type(policy.features_extractor).__name__} is not Flatten")
        self.layers: list[tuple[np.ndarray, np.ndarray, str]] = []
        pending: list[Any] = []
        for m in [*policy.mlp_extractor.policy_net, policy.action_net]:
            if isinstance(m, torch.nn.Linear):
                pending.append(m)
            elif isinstance(m, (torch.nn.Tanh, torch.nn.ReLU)) and pending:
                self._add(pending.pop(), "tanh" if isinstance(m, torch.nn.Tanh) else "relu")
            else:
                raise TypeError(f"MlpActor: layer {m} is not Linear / Tanh / ReLU")
        if len(pending) != 1 or not self.layers:
            raise TypeError("MlpActor: expected Linear+activation layers, then the Linear action head")
        self._add(pending.pop(), "none")
        self._bufs = [np.zeros(w.shape[1], dtype=np.float32) for w, _, _ in self.layers]

    def _add(self, linear: Any, activation: str) -> None:
        w = linear.weight.detach().cpu().numpy().astype(np.float32).T.copy()  # (in, out): x @ w
        b = linear.bias.detach().cpu().numpy().astype(np.float32).copy()
        self.layers.append((w, b, activation))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = obs
        for (w, b, act), out in zip(self.layers, self._bufs, strict=True):
            np.matmul(x, w, out=out)
            out += b
            if act == "tanh":
                np.tanh(out, out=out)
            elif act == "relu":
                np.maximum(out, 0.0, out=out)
            x = out
        np.clip(x, -1.0, 1.0, out=x)
        return x


@dataclass
class RLPolicy:
    """A loaded RL checkpoint: the SB3 policy, its frozen observation statistics and the residual's bound."""

    policy: Any  # stable_baselines3 BasePolicy
    normalizer: ObsNormalizer
    residual_scale: float
    control_dt: float
    meta: dict[str, Any]
    path: Path
    actor: MlpActor | None = None  # the policy's mean in numpy; None: SB3's predict
    max_delta: float | None = None  # the residual's slew limit per control step (None: none)
    envelope: float | None = None  # the residual's torque envelope, a fraction of the peak (None: none)
    torque_limit: tuple[float | None, float | None] | None = None  # hard limit on the command, N·m (None: none)
    rate_limit: tuple[float | None, float | None] | None = None  # on its change, N·m/s (None: none)

    @property
    def command_limits(self) -> CommandLimits:
        """The hard limits on the command (what a controller distilled from this policy inherits)."""
        return CommandLimits(self.torque_limit, self.rate_limit)

    def residual_limits(self, peak_torque: Any) -> ResidualLimits:
        """This policy's limits on its correction in N·m (what a network distilled with ``residual_limits`` is held
        to), for motor peaks ``peak_torque`` [knee, ankle] N·m."""
        scale, dt = self.residual_scale, self.control_dt
        return ResidualLimits.of_expert(scale, self.max_delta, self.envelope, peak_torque, dt)

    def action(self, obs_norm: np.ndarray) -> np.ndarray:
        """The deterministic action for one normalised observation (clipped to the action space)."""
        if self.actor is not None:
            return self.actor(obs_norm)
        action, _ = self.policy.predict(obs_norm, deterministic=True)
        return action


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """``rl.json`` of an RL checkpoint directory; raises :class:`RLCheckpointError` naming what is wrong."""
    d = Path(path)
    if not d.is_dir():
        raise RLCheckpointError(
            f"an RL checkpoint is a directory holding {POLICY_FILE}, {NORM_FILE} and {META_FILE} "
            f"(legloop rl train --out DIR); {d} is not a directory"
        )
    missing = [f for f in (POLICY_FILE, NORM_FILE, META_FILE) if not (d / f).is_file()]
    if missing:
        raise RLCheckpointError(f"{d} is not an RL checkpoint: {', '.join(missing)} missing")
    try:
        meta = json.loads((d / META_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RLCheckpointError(f"cannot read {d / META_FILE}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise RLCheckpointError(
            f"{d / META_FILE} is not a legloop RL checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    return meta


def check_layout(meta: dict[str, Any], where: Path) -> None:
    """Refuse a checkpoint trained on another observation layout, naming the expected and the found layout."""
    expected = layout_to_json()
    found = meta.get("observation")
    if found != expected:
        raise RLCheckpointError(
            f"RL checkpoint {where} was trained on another observation layout: found {describe_layout(found)}; "
            f"this legloop builds {describe_layout(expected)}. Retrain it with `legloop rl train`"
        )


def _optional_limit(
    meta: dict[str, Any], key: str, check: Callable[[float | None], float | None], where: Path
) -> float | None:
    """``meta[key]`` (absent or null: None) through ``check``; a non-number or a value ``check`` refuses raises
    :class:`RLCheckpointError` naming the file and the key."""
    value = meta.get(key)
    try:
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"not a number: {value!r}")
        return check(value)
    except ValueError as exc:
        raise RLCheckpointError(f"{where / META_FILE}: {key}: {exc}") from None


def load_rl_checkpoint(path: str | os.PathLike) -> RLPolicy:
    """Load an RL checkpoint directory (see the module docstring); raises :class:`RLCheckpointError`."""
    d = Path(path)
    meta = read_meta(d)
    check_layout(meta, d)
    algo = meta.get("algo")
    if algo not in ALGOS:
        raise RLCheckpointError(f"{d / META_FILE}: algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    scale, dt = meta.get("residual_scale"), meta.get("control_dt")
    if not isinstance(scale, (int, float)) or not 0.0 < scale <= 1.0:
        raise RLCheckpointError(f"{d / META_FILE}: residual_scale must be a number in (0, 1], got {scale!r}")
    if not isinstance(dt, (int, float)) or not 0.0 < dt <= 0.02:
        raise RLCheckpointError(f"{d / META_FILE}: control_dt must be a number in (0, 0.02] s, got {dt!r}")
    # Absent in checkpoints from before the slew limit / the envelope: none.
    md = _optional_limit(meta, "residual_max_delta", check_max_delta, d)
    env = _optional_limit(meta, "residual_envelope", check_envelope, d)
    limits = []
    for key, unit in (("residual_torque_limit_nm", "N·m"), ("residual_rate_limit_nm_s", "N·m/s")):
        try:
            limits.append(check_joint_limits(meta.get(key), key, unit))
        except ValueError as exc:
            raise RLCheckpointError(f"{d / META_FILE}: {exc}") from None
    import torch
    from stable_baselines3 import PPO

    # One small MLP per control step: one thread is fastest, and more would fight the simulation for the cores.
    torch.set_num_threads(1)
    try:
        model = PPO.load(d / POLICY_FILE, device="cpu")
    except Exception as exc:  # SB3 raises many kinds for a bad zip; each is "this file is not a policy"
        raise RLCheckpointError(f"cannot load {d / POLICY_FILE} as an SB3 {algo.upper()} model: {exc}") from None
    shape = getattr(model.observation_space, "shape", None)
    if shape != (OBS_SIZE,):
        raise RLCheckpointError(
            f"{d / POLICY_FILE} takes observations of shape {shape}; the layout in {META_FILE} needs ({OBS_SIZE},)"
        )
    try:
        with open(d / NORM_FILE, "rb") as f:
            vn = pickle.load(f)  # SB3's own format (VecNormalize.save); a file of this checkpoint, as policy.zip is
        normalizer = ObsNormalizer.from_vecnormalize(vn)
    except (OSError, pickle.UnpicklingError, AttributeError, EOFError, TypeError) as exc:
        raise RLCheckpointError(f"cannot read the VecNormalize statistics {d / NORM_FILE}: {exc}") from None
    if normalizer.mean.shape != (OBS_SIZE,):
        raise RLCheckpointError(
            f"{d / NORM_FILE} holds statistics of {normalizer.mean.shape[0]} observations; the layout needs {OBS_SIZE}"
        )
    try:
        actor: MlpActor | None = MlpActor(model.policy)
    except TypeError:
        actor = None  # another architecture: SB3's own predict, slower but general
    return RLPolicy(model.policy, normalizer, float(scale), float(dt), meta, d, actor, md, env, *limits)


class RLController:
    """The residual policy in the loop: prosthesis sensors in, knee and ankle torques (N·m) out.

    ``pd`` is the PD inside it (its ``domain``, ``phase``, ``knee_des`` … after every :meth:`act`), so the
    controller can label trajectories for imitation like the PD does.
    """

    def __init__(self, loaded: RLPolicy, pd: AmproPD, peak_torque: np.ndarray, name: str = "rl") -> None:
        self.name = name
        self.loaded = loaded
        self.core = ResidualCore(
            pd,
            peak_torque,
            loaded.residual_scale,
            loaded.max_delta,
            loaded.envelope,
            loaded.torque_limit,
            loaded.rate_limit,
        )
        self._obs_n = np.zeros(OBS_SIZE, dtype=np.float32)

    @property
    def pd(self) -> AmproPD:
        return self.core.pd

    @property
    def last_torque(self) -> np.ndarray:
        """The torques [knee, ankle] N·m of the last :meth:`act` (the array it returned)."""
        return self.core.out

    def reset(self) -> None:
        self.core.reset()

    def follow(self, applied: np.ndarray) -> None:
        """``applied`` (N·m) drove the last step instead of this policy's torque: :meth:`ResidualCore.follow`."""
        self.core.follow(applied)

    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = self.core.observe(observation)
        action = self.loaded.action(self.loaded.normalizer(obs, self._obs_n))
        return self.core.torque(action)

    def episode_stats(self) -> dict[str, Any]:
        return {}
