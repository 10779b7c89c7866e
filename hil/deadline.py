"""Deadline policies: what the loop does when an inference step misses its latency budget, and the accounting.

A controller in the loop must deliver a torque every control period. When the inference backend reports that a
step took longer than the budget (``latency_s > budget_s``; modelled for EdgeDRNN, measured on a board), its result
arrived too late for this period, and the policy decides what the motors get instead:

=============  =================================================================================================
policy         on a miss
=============  =================================================================================================
``hold``       hold the torque applied in the previous period (zero before the first step)
``fallback_pd``  the AMPRO PD's torque for this period (the PD law on the reference the controller tracks)
``stop``       zero torque from now on, and the run is flagged as stopped (a safety stop latches)
``period``     the budget is a target, checked and reported but not enforced: the late result is applied this
               period as long as it arrived within the control period (as on the AMPRO3 rig, where the
               controller's output is read once per 5 ms tick); a step longer than the period holds the last torque
=============  =================================================================================================

Every miss of the budget is counted (``misses``), whatever the policy; ``held`` counts the periods whose torque was
held. :class:`DeadlineMonitor` keeps the latency of every step in a preallocated array (grown by
doubling when an episode outlasts it, never per step) and reports mean / p50 / p99 / max on demand.
"""

from __future__ import annotations

import numpy as np

from controllers.pd import AmproPD

POLICIES = ("hold", "fallback_pd", "stop", "period")
HOLD, FALLBACK_PD, STOP, PERIOD = POLICIES
DEFAULT_CAPACITY = 1 << 15  # 164 s at 200 Hz before the first (amortised) growth


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown deadline policy {policy!r}; expected one of {', '.join(POLICIES)}")
    return policy


def pd_torque(pd: AmproPD, observation: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The PD law on the reference ``pd`` already holds for this step (no second reference update), saturated.

    The controller has called ``pd.update_reference(observation)`` this period; calling ``pd.act`` would advance
    its domain timers twice.
    """
    return pd.torque_on_reference(observation, out)


class DeadlineMonitor:
    """Applies a deadline policy step by step and accounts for latency and misses.

    Parameters
    ----------
    budget_s
        Latency budget of one inference step, s (21 µs default for the AMPRO3 controller).
    policy
        ``hold``, ``fallback_pd``, ``stop`` or ``period``.
    n_outputs
        Torques per step.
    capacity
        Latency samples preallocated (steps); the array doubles when exceeded.
    period_s
        The control period, s: the hard deadline of the ``period`` policy (required for it).
    """

    def __init__(
        self,
        budget_s: float = 21e-6,
        policy: str = HOLD,
        n_outputs: int = 2,
        capacity: int = DEFAULT_CAPACITY,
        period_s: float | None = None,
    ) -> None:
        if not budget_s > 0:
            raise ValueError(f"budget_s must be > 0, got {budget_s}")
        self.budget_s = float(budget_s)
        self.policy = check_policy(policy)
        if self.policy == PERIOD and not (period_s is not None and period_s > 0):
            raise ValueError(f"deadline policy 'period' needs the control period period_s > 0, got {period_s}")
        self.period_s = float(period_s) if period_s is not None else float("inf")
        self._latency = np.zeros(max(16, int(capacity)), dtype=np.float64)
        # The applied torque; between steps it is also the torque `hold` holds, so holding costs nothing.
        self._out = np.zeros(n_outputs, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """New episode: clear samples, counters, the held torque and the stop latch."""
        self.steps = 0
        self.misses = 0
        self.held = 0
        self.fallbacks = 0
        self.stopped = False
        self.stopped_at_step = -1
        self._out.fill(0.0)

    def _grow(self) -> None:
        bigger = np.zeros(2 * self._latency.size, dtype=np.float64)
        bigger[: self._latency.size] = self._latency
        self._latency = bigger

    def apply(self, latency_s: float, torque: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
        """Record one step's latency and return the torque to apply.

        ``torque`` is the controller's (late or on-time) result; ``fallback`` the PD's torque for ``fallback_pd``
        (required for that policy when the step misses). The returned array is the monitor's own, reused every
        step and holding the last applied torque: read or copy it, do not modify it.
        """
        n = self.steps
        if n == self._latency.size:
            self._grow()
        self._latency[n] = latency_s
        self.steps = n + 1
        out = self._out
        if latency_s <= self.budget_s:
            if not self.stopped:
                out[:] = torque
            return out
        self.misses += 1  # also after a stop: the record says how late the controller kept being
        if self.stopped:
            return out  # zero since the stop
        if self.policy == PERIOD:
            if latency_s <= self.period_s:
                out[:] = torque  # late for the budget, in time for this period's tick
            else:
                self.held += 1
        elif self.policy == HOLD:
            self.held += 1  # `out` still holds the previous period's torque
        elif self.policy == FALLBACK_PD:
            if fallback is None:
                raise ValueError("deadline policy 'fallback_pd' needs the PD torque of the step")
            self.fallbacks += 1
            out[:] = fallback
        else:
            self.stopped = True
            self.stopped_at_step = n
            out.fill(0.0)
        return out

    # ------------------------------------------------------------------------------------------ statistics
    @property
    def latencies_s(self) -> np.ndarray:
        """Latency of every step since :meth:`reset` (a view; copy to keep)."""
        return self._latency[: self.steps]

    def stats(self) -> dict[str, float | int | bool]:
        """Mean / p50 / p99 / max latency (µs), misses, what the policy did, and the budget."""
        lat = self.latencies_s * 1e6
        if lat.size:
            p50, p99 = np.percentile(lat, [50, 99])
            mean, mx = float(lat.mean()), float(lat.max())
        else:
            p50 = p99 = mean = mx = 0.0
        return {
            "mean_us": round(mean, 4),
            "p50_us": round(float(p50), 4),
            "p99_us": round(float(p99), 4),
            "max_us": round(mx, 4),
            "budget_us": round(self.budget_s * 1e6, 4),
            "steps": self.steps,
            "misses": self.misses,
            "miss_rate": round(self.misses / self.steps, 6) if self.steps else 0.0,
            "policy": self.policy,
            "held": self.held,
            "fallbacks": self.fallbacks,
            "stopped": self.stopped,
            "stopped_at_step": self.stopped_at_step,
        }

    def histogram(self, bin_us: float = 1.0) -> dict[str, list[float]]:
        """Latency histogram in µs with ``bin_us`` wide bins from 0 to past the max (for reports)."""
        lat = self.latencies_s * 1e6
        top = max(float(lat.max()) if lat.size else 0.0, self.budget_s * 1e6)
        edges = np.arange(0.0, top + bin_us + 1e-12, bin_us)
        counts, edges = np.histogram(lat, bins=edges)
        return {"edges_us": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
