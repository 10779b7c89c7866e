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
``none``       the budget is reported, never enforced: the simulation waits for the controller (the default for
               the CPU kernel, whose measured wall time must not change what a deterministic run does)
=============  =================================================================================================

A step that produced no result at all (a board's frame lost or corrupted: ``ok=False``) is a miss under every
policy; ``period`` and ``none`` hold the last torque for it. Across a link the round trip counts too: a result whose
round trip exceeds the control period missed this period's tick (``hold``, ``fallback_pd``, ``stop`` act on it,
``period`` holds).

Every miss of the budget is counted (``misses``), whatever the policy; ``held`` counts the periods whose torque was
held. :class:`DeadlineMonitor` keeps the latency of every step in a preallocated array (grown by
doubling when an episode outlasts it, never per step) and reports mean / p50 / p99 / max on demand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controllers.pd import AmproPD

POLICIES = ("hold", "fallback_pd", "stop", "period", "none")
HOLD, FALLBACK_PD, STOP, PERIOD, NONE = POLICIES
DEFAULT_CAPACITY = 1 << 15  # 164 s at 200 Hz before the first (amortised) growth
# Where each step's applied torque came from (DeadlineMonitor.sources, the run log's `torque_source`).
SOURCE_ON_TIME, SOURCE_LATE, SOURCE_HELD, SOURCE_FALLBACK, SOURCE_STOPPED = range(5)
SOURCE_NAMES = ("controller", "late", "held", "fallback", "stopped")
# The seed's figure: EdgeDRNN ran the AMPRO3 RNN controller in ~21 µs per 5 ms step. The one default budget.
DEFAULT_BUDGET_S = 21e-6
POLICY_HELP = {
    HOLD: "a late or lost step holds the last torque",
    FALLBACK_PD: "a late or lost step gets the PD's torque",
    STOP: "the first late or lost step stops the motors (zero torque, latched)",
    PERIOD: "the budget is a target; results within the control period are applied",
    NONE: "the budget is reported, never enforced",
}


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
        ``hold``, ``fallback_pd``, ``stop``, ``period`` or ``none``.
    n_outputs
        Torques per step.
    capacity
        Latency samples preallocated (steps); the array doubles when exceeded.
    period_s
        The control period, s: the hard deadline of the ``period`` policy (required for it).
    """

    def __init__(
        self,
        budget_s: float = DEFAULT_BUDGET_S,
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
        self._enforce = self.policy in (HOLD, FALLBACK_PD, STOP)
        self._latency = np.zeros(max(16, int(capacity)), dtype=np.float64)
        self._source = np.zeros(self._latency.size, dtype=np.int8)
        # The applied torque; between steps it is also the torque `hold` holds, so holding costs nothing.
        self._out = np.zeros(n_outputs, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """New episode: clear samples, counters, the held torque and the stop latch."""
        self.steps = 0
        self.misses = 0
        self.held = 0
        self.fallbacks = 0
        self.lost = 0
        self.late_round_trips = 0
        self.last_source = SOURCE_ON_TIME
        self.stopped = False
        self.stopped_at_step = -1
        self._out.fill(0.0)

    def _grow(self) -> None:
        n = self._latency.size
        self._latency = np.concatenate([self._latency, np.zeros(n, dtype=np.float64)])
        self._source = np.concatenate([self._source, np.zeros(n, dtype=np.int8)])

    def apply(
        self,
        latency_s: float,
        torque: np.ndarray,
        fallback: np.ndarray | None = None,
        ok: bool = True,
        round_trip_s: float = 0.0,
    ) -> np.ndarray:
        """Record one step's latency and return the torque to apply.

        ``torque`` is the controller's (late or on-time) result; ``fallback`` the PD's torque for ``fallback_pd``
        (required for that policy when the step misses). ``ok=False``: no result arrived (``torque`` is ignored).
        ``round_trip_s``: wall-clock round trip across a link (0 in process). The returned array is the monitor's
        own, reused every step and holding the last applied torque: read or copy it, do not modify it.
        """
        n = self.steps
        if n == self._latency.size:
            self._grow()
        self._latency[n] = latency_s
        self.steps = n + 1
        out = self._out
        if ok and latency_s <= self.budget_s and round_trip_s <= self.period_s:
            if not self.stopped:
                out[:] = torque
                self._source[n] = self.last_source = SOURCE_ON_TIME
            else:
                self._source[n] = self.last_source = SOURCE_STOPPED
            return out
        # A miss: the budget, the period's tick, or no result at all.
        if ok:
            if latency_s > self.budget_s:
                self.misses += 1  # also after a stop: the record says how late the controller kept being
            if round_trip_s > self.period_s:
                self.late_round_trips += 1
                if latency_s <= self.budget_s:
                    self.misses += 1
        else:
            self.lost += 1
            self.misses += 1
        src = self._decide(n, ok, latency_s, round_trip_s, torque, fallback)
        self._source[n] = self.last_source = src
        return out

    def _decide(
        self,
        n: int,
        ok: bool,
        latency_s: float,
        round_trip_s: float,
        torque: np.ndarray,
        fallback: np.ndarray | None,
    ) -> int:
        """What the policy does with a missed step; returns the SOURCE_* code of the applied torque."""
        out = self._out
        if self.stopped:
            return SOURCE_STOPPED  # zero since the stop
        if not self._enforce:
            # period / none: a result that arrived within the period is applied; otherwise the last torque holds.
            if ok and (self.policy == NONE or (latency_s <= self.period_s and round_trip_s <= self.period_s)):
                out[:] = torque
                return SOURCE_LATE
            self.held += 1
            return SOURCE_HELD
        if self.policy == HOLD:
            self.held += 1  # `out` still holds the previous period's torque
            return SOURCE_HELD
        if self.policy == FALLBACK_PD:
            if fallback is None:
                raise ValueError("deadline policy 'fallback_pd' needs the PD torque of the step")
            self.fallbacks += 1
            out[:] = fallback
            return SOURCE_FALLBACK
        self.stopped = True
        self.stopped_at_step = n
        out.fill(0.0)
        return SOURCE_STOPPED

    # ------------------------------------------------------------------------------------------ statistics
    @property
    def sources(self) -> np.ndarray:
        """Where each step's applied torque came from since :meth:`reset` (``SOURCE_*`` codes; a view)."""
        return self._source[: self.steps]

    @property
    def latencies_s(self) -> np.ndarray:
        """Latency of every step since :meth:`reset` (a view; copy to keep)."""
        return self._latency[: self.steps]

    def stats(self) -> dict[str, Any]:
        """Mean / p50 / p99 / p99.9 / max latency (µs), misses, what the policy did, and the budget.

        Latency statistics cover the steps that produced a result (a lost step has no latency; it is counted in
        ``lost``).
        """
        lat = self.latencies_s * 1e6
        lat = lat[np.isfinite(lat)] if self.lost else lat
        if lat.size:
            p50, p99, p999 = np.percentile(lat, [50, 99, 99.9])
            mean, mx = float(lat.mean()), float(lat.max())
        else:
            p50 = p99 = p999 = mean = mx = 0.0
        return {
            "mean_us": round(mean, 4),
            "p50_us": round(float(p50), 4),
            "p99_us": round(float(p99), 4),
            "p99_9_us": round(float(p999), 4),
            "max_us": round(mx, 4),
            "budget_us": round(self.budget_s * 1e6, 4),
            "steps": self.steps,
            "misses": self.misses,
            "miss_rate": round(self.misses / self.steps, 6) if self.steps else 0.0,
            "policy": self.policy,
            "held": self.held,
            "fallbacks": self.fallbacks,
            "lost": self.lost,
            "late_round_trips": self.late_round_trips,
            "stopped": self.stopped,
            "stopped_at_step": self.stopped_at_step,
        }

    def histogram(self, bin_us: float = 1.0) -> dict[str, list[float]]:
        """Latency histogram in µs with ``bin_us`` wide bins from 0 to past the max (for reports)."""
        lat = self.latencies_s * 1e6
        lat = lat[np.isfinite(lat)]
        top = max(float(lat.max()) if lat.size else 0.0, self.budget_s * 1e6)
        edges = np.arange(0.0, top + bin_us + 1e-12, bin_us)
        counts, edges = np.histogram(lat, bins=edges)
        return {"edges_us": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
