"""The controller interface every prosthesis controller implements.

A controller is stateful: `reset()` starts a new episode, `act(observation)` takes the prosthesis sensor vector of
:mod:`envs.sensors` (float32, 7 channels) and returns the knee and ankle torque commands in N·m, ``[knee, ankle]``.
The closed-loop runner scales torques to the env's normalised action; controllers never see the simulator.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from envs.anthropometry import WalkerParams


def torque_limits_of(walker: WalkerParams | None, limits: tuple[float, float] | None = None) -> np.ndarray:
    """Motor peak torques [knee, ankle] (N·m): explicit ``limits``, else the walker's prosthesis (142 / 168)."""
    if limits is None:
        pr = (walker or WalkerParams()).prosthesis
        limits = (pr.knee_peak_torque, pr.ankle_peak_torque)
    lim = np.asarray(limits, dtype=np.float64)
    if lim.shape != (2,) or not np.all(lim > 0):
        raise ValueError(f"torque limits must be two positive numbers [knee, ankle] N·m, got {limits!r}")
    return lim


@runtime_checkable
class Controller(Protocol):
    """A prosthesis controller: prosthesis sensors in, knee and ankle torques (N·m) out."""

    name: str

    def reset(self) -> None:
        """Forget all state: a new episode starts."""

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Return ``[knee_torque, ankle_torque]`` in N·m for one control step."""

    def episode_stats(self) -> dict[str, Any]:
        """The controller's own counters since :meth:`reset` for the results file (``{}`` when it has none)."""


class ZeroTorque:
    """A passive prosthesis: the motors output nothing (the joints keep their drive friction)."""

    name = "zero"

    def __init__(self) -> None:
        self._out = np.zeros(2)

    def reset(self) -> None:
        pass

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self._out

    def episode_stats(self) -> dict[str, Any]:
        return {}


class DampedPassive:
    """A passive prosthesis with viscous damping on both joints (a mechanical damper knee)."""

    name = "damped"

    def __init__(self, knee_damping: float = 6.0, ankle_damping: float = 6.0) -> None:
        self.c = np.array([knee_damping, ankle_damping])
        self._out = np.zeros(2)

    def reset(self) -> None:
        pass

    def act(self, observation: np.ndarray) -> np.ndarray:
        self._out[0] = -self.c[0] * observation[1]
        self._out[1] = -self.c[1] * observation[3]
        return self._out

    def episode_stats(self) -> dict[str, Any]:
        return {}
