"""The controller interface every prosthesis controller implements.

A controller is stateful: `reset()` starts a new episode, `act(observation)` takes the prosthesis sensor vector of
:mod:`envs.sensors` (float32, 7 channels) and returns the knee and ankle torque commands in N·m, ``[knee, ankle]``.
The closed-loop runner scales torques to the env's normalised action; controllers never see the simulator.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Controller(Protocol):
    """A prosthesis controller: prosthesis sensors in, knee and ankle torques (N·m) out."""

    name: str

    def reset(self) -> None:
        """Forget all state: a new episode starts."""

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Return ``[knee_torque, ankle_torque]`` in N·m for one control step."""


class ZeroTorque:
    """A passive prosthesis: the motors output nothing (the joints keep their drive friction)."""

    name = "zero"

    def __init__(self) -> None:
        self._out = np.zeros(2)

    def reset(self) -> None:
        pass

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self._out


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
