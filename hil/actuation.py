"""Actuation latency: the time from the controller's torque to the motors, added to any controller in the loop.

A real loop has a delay between computing a torque and the motor applying it (the link, the motor driver, the
current loop). :class:`ActuationDelay` models it at the physics step's granularity (1 ms by default): the torque
computed in control period k arrives ``d_k = round((delay + U(0, jitter)) / physics_dt)`` physics steps after the
period starts; until then the motors keep the previous torque. Jitter is drawn from a generator seeded per episode,
so a run is reproducible. A delay of a period or more lands the torque in a later period; when several torques
arrive within one period, the newest one (by the period it was computed in) takes effect at its arrival and the
older ones are dropped — a stale command never overrides a newer one.

:func:`hil.rollout.rollout` applies it through :meth:`envs.walker_env.ProstheticWalkerEnv.step_delayed`.
"""

from __future__ import annotations

import math

import numpy as np


class ActuationDelay:
    """Seeded actuation delay and jitter.

    Parameters
    ----------
    delay_s
        Fixed delay from torque to motor, s (≥ 0).
    jitter_s
        Extra delay drawn uniformly from [0, jitter_s] per control period, s (≥ 0).
    seed
        Seed of the jitter generator (:meth:`reset` re-seeds it per episode).
    """

    def __init__(self, delay_s: float = 0.0, jitter_s: float = 0.0, seed: int = 0) -> None:
        if not (math.isfinite(delay_s) and delay_s >= 0.0):
            raise ValueError(f"actuation delay must be >= 0 s, got {delay_s}")
        if not (math.isfinite(jitter_s) and jitter_s >= 0.0):
            raise ValueError(f"actuation jitter must be >= 0 s, got {jitter_s}")
        self.delay_s = float(delay_s)
        self.jitter_s = float(jitter_s)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def reset(self, seed: int | None = None) -> None:
        """New episode: re-seed the jitter generator (with ``seed``, or the constructor's)."""
        self._rng = np.random.default_rng(self.seed if seed is None else [self.seed, int(seed)])

    def substeps(self, physics_dt: float) -> int:
        """The delay of the next control period's torque, in physics steps."""
        d = self.delay_s
        if self.jitter_s:
            d += self.jitter_s * float(self._rng.random())
        return round(d / physics_dt)

    def describe(self) -> dict[str, float]:
        return {"delay_ms": self.delay_s * 1e3, "jitter_ms": self.jitter_s * 1e3, "seed": self.seed}


class DelayLine:
    """The torques in flight between controller and motors, for one episode (used by the rollout).

    :meth:`push` adds the period's command (normalised action); :meth:`take` returns what the motors do this period:
    ``(previous, new, substeps)`` — keep ``previous`` for ``substeps`` physics steps, then ``new``.
    """

    def __init__(self, frame_skip: int) -> None:
        self.frame_skip = int(frame_skip)
        self.current = np.zeros(2)  # what the motors do at the start of the period
        self._new = np.zeros(2)
        self._pending: list[tuple[int, int, float, float]] = []  # (arrival substep, issued period, knee, ankle)

    def push(self, k: int, action: np.ndarray, delay_substeps: int) -> None:
        a0, a1 = action.tolist()
        self._pending.append((k * self.frame_skip + delay_substeps, k, a0, a1))

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        start, end = k * self.frame_skip, (k + 1) * self.frame_skip
        pending = self._pending
        arrived = [p for p in pending if p[0] <= start]
        if arrived:
            latest = max(arrived, key=lambda p: p[1])
            self.current[0], self.current[1] = latest[2], latest[3]
            pending[:] = [p for p in pending if p[1] > latest[1]]
        during = [p for p in pending if p[0] < end]
        if not during:
            return self.current, self.current, 0
        newest = max(during, key=lambda p: p[1])
        pending[:] = [p for p in pending if p[1] > newest[1]]
        self._new[0], self._new[1] = newest[2], newest[3]
        return self.current, self._new, newest[0] - start

    def settle(self, new: np.ndarray) -> None:
        """After the period: the motors now hold ``new``."""
        self.current[:] = new
