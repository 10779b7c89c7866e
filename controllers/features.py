"""Feature sets: what a learned controller sees, computed the same way from a live sensor stream and from a log.

A feature set maps the prosthesis sensor vector (:mod:`envs.sensors`) plus, for ``ampro`` and ``ampro_plus``, the
PD's reference (domain, desired knee trajectory and phase, from :meth:`controllers.pd.AmproPD.update_reference`) to
the network input.

==========  ====  ============================================================================================
name        size  features (in order)
==========  ====  ============================================================================================
ampro       5     ishumanswing (1 = prosthesis stance), knee position error q_k − q_k,des (rad), knee velocity
                  error (rad/s), ankle position (rad), ankle velocity (rad/s) — the paper's five inputs
sensors     7     the raw prosthesis sensors: knee angle, knee velocity, ankle angle, ankle velocity, thigh angle,
                  thigh velocity, load (N) — the network must infer the gait phase itself
ampro_plus  9     ampro's five, then thigh angle (rad), thigh velocity (rad/s), load (N) and the PD's phase τ
                  (clipped to [-0.5, 1.5]) — what a residual RL expert observes besides the PD's outputs and its
                  own last action: a push shows in the thigh before the knee, so its student needs them
==========  ====  ============================================================================================

Logs use the AMPRO CSV column names (shared/facts/ampro.md; ``tau`` is its phase) plus three legloop columns for
the sensors the AMPRO schema lacks (``thigh_angle``, ``thigh_velocity``, ``load``); :data:`FEATURE_COLUMNS` says
which columns each set reads. Normalisation (z-score) constants travel with the checkpoint as a :class:`Normalizer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from envs.sensors import SENSOR_NAMES

FEATURE_SETS = ("ampro", "sensors", "ampro_plus")
FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "ampro": ("ishumanswing", "knee_pos_error", "knee_vel_error", "ankle_pos", "ankle_vel"),
    "sensors": SENSOR_NAMES,
    "ampro_plus": (
        "ishumanswing", "knee_pos_error", "knee_vel_error", "ankle_pos", "ankle_vel", "thigh_angle", "thigh_vel",
        "load", "tau",
    ),
}  # fmt: skip
# The PD's phase as a feature: clipped as the residual RL policy sees it (controllers.residual), so the few steps
# where τ overshoots at a domain switch do not stretch its normalisation.
PHASE_MIN, PHASE_MAX = -0.5, 1.5
# Log columns each feature set reads (AMPRO names; thigh_* and load are legloop additions).
FEATURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ampro": (
        "ishumanswing",
        "position_actual_knee",
        "position_desired_knee",
        "velocity_actual_knee",
        "velocity_desired_knee",
        "position_actual_ankle",
        "velocity_actual_ankle",
    ),
    "sensors": (
        "position_actual_knee",
        "velocity_actual_knee",
        "position_actual_ankle",
        "velocity_actual_ankle",
        "thigh_angle",
        "thigh_velocity",
        "load",
    ),
}
FEATURE_COLUMNS["ampro_plus"] = FEATURE_COLUMNS["ampro"] + ("thigh_angle", "thigh_velocity", "load", "tau")
# Targets: the PD torques, [knee, ankle] in N·m.
TARGET_COLUMNS = ("torque_pd_knee", "torque_pd_ankle")
# The PD's own torque, [knee, ankle] N·m, under the labels: = the labels with the PD as expert; with an RL expert
# (distillation) the PD inside it, which the ``pd_residual`` target subtracts.
PRIOR_COLUMNS = ("torque_prior_knee", "torque_prior_ankle")
# What a network's outputs are: ``torque`` — the torques themselves; ``pd_residual`` — a correction the controller
# adds to the AMPRO PD's torque, which runs beside the network (the RL policy's structure, distilled).
TARGETS = ("torque", "pd_residual")


def check_target(name: str) -> str:
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; expected one of {', '.join(TARGETS)}")
    return name


def check_feature_set(name: str) -> str:
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; expected one of {', '.join(FEATURE_SETS)}")
    return name


def feature_size(name: str) -> int:
    return len(FEATURE_NAMES[check_feature_set(name)])


def features_from_columns(name: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Features [T, F] (float32) of a whole log given as column arrays; missing columns raise a clear KeyError."""
    check_feature_set(name)
    missing = [c for c in FEATURE_COLUMNS[name] if c not in columns]
    if missing:
        raise KeyError(f"feature set {name!r} needs log column(s) {', '.join(missing)}")
    c = {k: np.asarray(columns[k], dtype=np.float64) for k in FEATURE_COLUMNS[name]}
    cols: tuple[np.ndarray, ...]
    if name in ("ampro", "ampro_plus"):
        cols = (
            c["ishumanswing"],
            c["position_actual_knee"] - c["position_desired_knee"],
            c["velocity_actual_knee"] - c["velocity_desired_knee"],
            c["position_actual_ankle"],
            c["velocity_actual_ankle"],
        )
        if name == "ampro_plus":
            cols += (c["thigh_angle"], c["thigh_velocity"], c["load"], np.clip(c["tau"], PHASE_MIN, PHASE_MAX))
    else:
        cols = tuple(c[k] for k in FEATURE_COLUMNS["sensors"])
    return np.stack(cols, axis=-1).astype(np.float32)


def features_from_obs(
    name: str,
    obs: np.ndarray,
    domain: float,
    knee_des: float,
    knee_vel_des: float,
    out: np.ndarray,
    phase: float = 0.0,
) -> np.ndarray:
    """Features of one control step into `out` (float32 [F]); the same arithmetic as :func:`features_from_columns`.
    ``domain``, ``knee_des``, ``knee_vel_des`` and ``phase`` are the PD reference's (unused by ``sensors``)."""
    if name != "sensors":
        out[0] = domain
        out[1] = float(obs[0]) - knee_des
        out[2] = float(obs[1]) - knee_vel_des
        out[3] = obs[2]
        out[4] = obs[3]
        if name == "ampro_plus":
            out[5] = obs[4]
            out[6] = obs[5]
            out[7] = obs[6]
            out[8] = PHASE_MIN if phase < PHASE_MIN else (PHASE_MAX if phase > PHASE_MAX else phase)
    else:
        out[:] = obs
    return out


@dataclass(frozen=True)
class Normalizer:
    """z-score constants of the network inputs: x_n = (x − mean) / std."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, min_std: float = 1e-3) -> Normalizer:
        """Fit on features [N, F]; a (near-)constant feature gets std 1 so it is only centred."""
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)
        return cls(mean=x.mean(axis=0).astype(np.float32), std=np.where(std < min_std, 1.0, std).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: Mapping[str, list[float]]) -> Normalizer:
        return cls(mean=np.asarray(d["mean"], dtype=np.float32), std=np.asarray(d["std"], dtype=np.float32))
