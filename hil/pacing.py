"""Wall-clock pacing of the loop at the control rate, and how late it ran.

A device's controller runs once per control period of real time; with ``--realtime`` the simulation does too, so a
board across a real link sees requests at the rate it would on the prosthesis. :class:`Pacer` waits for absolute
deadlines ``t0 + k · period`` (no drift): it sleeps until ``spin_s`` before the deadline, then spins on the clock for
the rest — on a general-purpose OS, sleep alone wakes ~0.1 ms late at the median and ~1 ms at p99; sleep + spin
brings p99 to a few µs at the cost of one busy core for ``spin_s`` per period (``../shared/facts/hil.md``).

Lateness (how long after its deadline step k started) is kept per step in a preallocated array; :meth:`stats`
reports p50 / p99 / p99.9 / max and the periods missed (a step that started a whole period or more late). When the
loop falls behind, the pacer does not try to catch up by skipping: each step still runs, late, and is counted.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Pacer:
    """Absolute-deadline pacing at ``period_s``; call :meth:`start` once, then :meth:`wait` before each step."""

    def __init__(self, period_s: float, spin_s: float = 200e-6, capacity: int = 1 << 15) -> None:
        if not period_s > 0:
            raise ValueError(f"period must be > 0 s, got {period_s}")
        if not 0.0 <= spin_s <= period_s:
            raise ValueError(f"spin must be in [0, period] s, got {spin_s}")
        self.period_s = float(period_s)
        self.spin_s = float(spin_s)
        self._late = np.zeros(max(16, int(capacity)), dtype=np.float64)
        self.steps = 0
        self._t0 = 0.0

    def start(self) -> None:
        """Step 0's deadline is now."""
        self.steps = 0
        self._t0 = time.perf_counter()

    def wait(self, k: int) -> float:
        """Wait for step ``k``'s deadline; returns (and records) how late this step starts, s."""
        deadline = self._t0 + k * self.period_s
        now = time.perf_counter()
        rest = deadline - now - self.spin_s
        if rest > 0:
            time.sleep(rest)
        while (now := time.perf_counter()) < deadline:
            pass
        late = now - deadline
        n = self.steps
        if n == self._late.size:
            self._late = np.concatenate([self._late, np.zeros(n)])
        self._late[n] = late
        self.steps = n + 1
        return late

    @property
    def lateness_s(self) -> np.ndarray:
        """Lateness of every step since :meth:`start`, s (a view)."""
        return self._late[: self.steps]

    def stats(self) -> dict[str, Any]:
        """Lateness p50 / p99 / p99.9 / max (µs) and the periods missed, for the metrics file."""
        late = self.lateness_s * 1e6
        if late.size:
            p50, p99, p999 = np.percentile(late, [50, 99, 99.9])
            mx = float(late.max())
        else:
            p50 = p99 = p999 = mx = 0.0
        return {
            "period_us": round(self.period_s * 1e6, 3),
            "steps": self.steps,
            "lateness_us": {
                "p50": round(float(p50), 2),
                "p99": round(float(p99), 2),
                "p99_9": round(float(p999), 2),
                "max": round(mx, 2),
            },
            "periods_missed": int(np.count_nonzero(late >= self.period_s * 1e6)),
        }
