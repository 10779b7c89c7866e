"""The prosthesis sensor vector: what a powered knee-ankle device measures, in one float32 array.

=====  ==================  =========  ==========================================================
index  name                unit       meaning
=====  ==================  =========  ==========================================================
0      knee_angle          rad        knee encoder, flexion positive (0 = straight)
1      knee_velocity       rad/s      knee encoder velocity
2      ankle_angle         rad        ankle encoder, dorsiflexion positive (0 = foot ⟂ pylon)
3      ankle_velocity      rad/s      ankle encoder velocity
4      thigh_angle         rad        thigh IMU, world frame, from vertical, forward positive
5      thigh_velocity      rad/s      thigh IMU gyro, forward positive
6      load                N          load cell between pylon and ankle, axial, compression positive
=====  ==================  =========  ==========================================================

Noise is Gaussian with the standard deviations of :class:`SensorNoise` (scaled by a factor the env randomises);
quantisation models encoder resolution and the load cell's ADC step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENSOR_NAMES = (
    "knee_angle",
    "knee_velocity",
    "ankle_angle",
    "ankle_velocity",
    "thigh_angle",
    "thigh_velocity",
    "load",
)
SENSOR_UNITS = ("rad", "rad/s", "rad", "rad/s", "rad", "rad/s", "N")
N_SENSORS = len(SENSOR_NAMES)


@dataclass(frozen=True)
class SensorNoise:
    """Per-channel noise standard deviation and quantisation step (0 disables)."""

    angle_std: float = 0.002  # rad
    velocity_std: float = 0.02  # rad/s
    load_std: float = 5.0  # N
    angle_step: float = 2 * np.pi / 2**14  # 14-bit absolute encoder
    load_step: float = 0.5  # N

    def std_vector(self) -> np.ndarray:
        a, v, f = self.angle_std, self.velocity_std, self.load_std
        return np.array([a, v, a, v, a, v, f], dtype=np.float64)

    def step_vector(self) -> np.ndarray:
        a, f = self.angle_step, self.load_step
        return np.array([a, 0.0, a, 0.0, a, 0.0, f], dtype=np.float64)


def quantise(x: np.ndarray, step: np.ndarray) -> None:
    """Round channels with a non-zero step to a multiple of that step, in place."""
    mask = step > 0
    x[mask] = np.round(x[mask] / step[mask]) * step[mask]
