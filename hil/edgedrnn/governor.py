"""Run-time threshold governor: trade delta-GRU accuracy for latency so a controller keeps its deadline.

EdgeDRNN's Θx/Θh are registers that can be rewritten between steps. A larger Θ fires fewer weight columns, so the
next step is cheaper, at the cost of a staler x̂/ĥ (the network sees changes later and coarser).

Policy (multiplicative increase, gradual decrease, with hysteresis)
-------------------------------------------------------------------
After every step the governor predicts the next step's latency from the last two:
``pred = lat_t + max(0, lat_t − lat_{t−1})`` — activity that is rising is assumed to keep rising for one more step
(bursts from domain switches or impacts ramp up over a few steps through the hidden layers), falling activity is
not extrapolated (being late is worse than being coarse).

- ``pred > high · budget``  → raise: ``Θ ← min(511, max(Θ + raise_step, ceil(Θ · raise_factor)))`` for Θx and Θh.
- ``pred < low · budget`` for ``hold_steps`` consecutive steps → lower one notch:
  ``Θ ← max(Θ_base, min(Θ − 1, floor(Θ · lower_factor)))``. Lowering is slow on purpose: every delta that was
  held back by a high Θ fires at once when Θ drops, so a fast drop re-creates the burst.
- otherwise hold. Θ never goes below the trained thresholds ``Θ_base`` nor above the 10-bit register's 511.
- The first step after :meth:`reset` is not used: it fetches every bias column and says nothing about the next.

``raises`` and ``lowers`` count the actions; ``actions`` is their sum.
"""

from __future__ import annotations

import math
from typing import Protocol

from controllers.fixedpoint import THETA_MAX


class _Thresholded(Protocol):
    theta_x: int
    theta_h: int


class ThresholdGovernor:
    """Adjusts Θx/Θh of an EdgeDRNN model between steps to keep its latency under ``budget_s``.

    Parameters
    ----------
    budget_s
        Latency budget per step (seconds), e.g. 21e-6.
    theta_x_base, theta_h_base
        Trained thresholds: the floor the governor returns to when there is slack.
    high, low
        Fractions of the budget: raise above ``high``, lower below ``low`` (after ``hold_steps`` steps).
    raise_factor, raise_step, lower_factor, hold_steps
        Step sizes of the policy (see the module docstring).
    """

    def __init__(
        self,
        budget_s: float,
        theta_x_base: int = 0,
        theta_h_base: int = 0,
        *,
        high: float = 0.85,
        low: float = 0.5,
        raise_factor: float = 1.5,
        raise_step: int = 16,
        lower_factor: float = 0.9,
        hold_steps: int = 8,
    ) -> None:
        if not budget_s > 0:
            raise ValueError(f"budget_s must be > 0, got {budget_s}")
        if not 0 < low < high:
            raise ValueError(f"need 0 < low < high, got low={low}, high={high}")
        if raise_factor < 1 or not 0 < lower_factor < 1 or raise_step < 1 or hold_steps < 1:
            raise ValueError("need raise_factor >= 1, 0 < lower_factor < 1, raise_step >= 1, hold_steps >= 1")
        for name, v in (("theta_x_base", theta_x_base), ("theta_h_base", theta_h_base)):
            if not 0 <= int(v) <= THETA_MAX:
                raise ValueError(f"{name}={v} outside the threshold register: expected 0..{THETA_MAX}")
        self.budget_s = float(budget_s)
        self.theta_x_base = int(theta_x_base)
        self.theta_h_base = int(theta_h_base)
        self.high = high
        self.low = low
        self.raise_factor = raise_factor
        self.raise_step = int(raise_step)
        self.lower_factor = lower_factor
        self.hold_steps = int(hold_steps)
        self.raises = 0
        self.lowers = 0
        self.reset()

    @property
    def actions(self) -> int:
        """Threshold changes made so far (raises + lowers)."""
        return self.raises + self.lowers

    def reset(self) -> None:
        """Forget the latency history (counters are kept; zero them by hand if wanted)."""
        self._last = math.nan
        self._calm = 0
        self._fresh = True
        self.predicted_s = math.nan

    def predict(self, latency_s: float) -> float:
        """Predicted latency of the next step after a step that took ``latency_s``."""
        rise = latency_s - self._last if self._last == self._last else 0.0
        return latency_s + max(0.0, rise)

    def update(self, model: _Thresholded, latency_s: float) -> int:
        """Feed the latency of the step just run; adjust ``model``'s thresholds. Returns +1 raise, −1 lower, 0."""
        if self._fresh:
            self._fresh = False
            return 0
        pred = self.predict(latency_s)
        self._last = latency_s
        self.predicted_s = pred
        if pred > self.high * self.budget_s:
            self._calm = 0
            tx = min(THETA_MAX, max(model.theta_x + self.raise_step, math.ceil(model.theta_x * self.raise_factor)))
            th = min(THETA_MAX, max(model.theta_h + self.raise_step, math.ceil(model.theta_h * self.raise_factor)))
            if (tx, th) == (model.theta_x, model.theta_h):
                return 0  # already at the register's ceiling
            model.theta_x, model.theta_h = tx, th
            self.raises += 1
            return 1
        if pred < self.low * self.budget_s:
            self._calm += 1
            if self._calm >= self.hold_steps and (
                model.theta_x > self.theta_x_base or model.theta_h > self.theta_h_base
            ):
                self._calm = 0
                model.theta_x = max(self.theta_x_base, min(model.theta_x - 1, int(model.theta_x * self.lower_factor)))
                model.theta_h = max(self.theta_h_base, min(model.theta_h - 1, int(model.theta_h * self.lower_factor)))
                self.lowers += 1
                return -1
            return 0
        self._calm = 0
        return 0
