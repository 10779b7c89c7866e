"""The inference-backend interface of the loop: what every backend (float CPU, EdgeDRNN model, serial board) returns.

The closed-loop runner calls ``backend.reset()`` at the start of an episode and ``backend.step(features)`` once per
control period, and does not know which backend it has. Backends run at the control rate, so a ``StepResult`` is
cheap: ``__slots__``, and a backend may hand back the SAME result object (and the same arrays) every step, updated
in place. A caller that keeps results across steps must call :meth:`StepResult.copy`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class StepResult:
    """One inference step.

    Attributes
    ----------
    outputs
        float64 [O]: the controller outputs (e.g. joint torques), de-normalised.
    latency_s
        Inference latency of the step in seconds (modelled, measured, or reported by the board).
    cycles
        Accelerator cycles of the step; -1 for backends without a cycle count.
    fired_columns
        Weight columns fetched (non-zero deltas, bias included); -1 where not applicable.
    deadline_met
        ``latency_s <= budget_s`` of the backend.
    h
        Last-layer hidden state (int16 Q8.8 for EdgeDRNN, float for a CPU GRU), or None.
    """

    __slots__ = ("cycles", "deadline_met", "fired_columns", "h", "latency_s", "outputs")

    def __init__(
        self,
        outputs: np.ndarray,
        latency_s: float = 0.0,
        cycles: int = -1,
        fired_columns: int = -1,
        deadline_met: bool = True,
        h: np.ndarray | None = None,
    ) -> None:
        self.outputs = outputs
        self.latency_s = latency_s
        self.cycles = cycles
        self.fired_columns = fired_columns
        self.deadline_met = deadline_met
        self.h = h

    def copy(self) -> StepResult:
        """A snapshot that later steps will not overwrite."""
        return StepResult(
            self.outputs.copy(),
            float(self.latency_s),
            int(self.cycles),
            int(self.fired_columns),
            bool(self.deadline_met),
            None if self.h is None else self.h.copy(),
        )

    def __repr__(self) -> str:
        return (
            f"StepResult(outputs={self.outputs!r}, latency_s={self.latency_s!r}, cycles={self.cycles!r}, "
            f"fired_columns={self.fired_columns!r}, deadline_met={self.deadline_met!r})"
        )


@runtime_checkable
class InferenceBackend(Protocol):
    """What the loop needs from an inference backend."""

    def reset(self) -> None:
        """Clear the recurrent state (start of an episode)."""
        ...

    def step(self, features: np.ndarray) -> StepResult:
        """Run one control period's inference on float features [I]; the result may be reused next step."""
        ...
