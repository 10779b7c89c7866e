"""The inference-backend interface of the loop: what every backend (CPU kernel, EdgeDRNN model, serial board) is.

A backend turns the raw (un-normalised) features of one control period into de-normalised controller outputs: the
network, its normalisation and its fixed-point conversions live behind it, so the controller front end
(:class:`hil.learned.LearnedController`) and the closed-loop rollout (:func:`hil.rollout.rollout`) do not know which
backend they drive. ``reset()`` starts an episode, ``step(features)`` runs one control period.

Backends run at the control rate, so a :class:`StepResult` is cheap: ``__slots__``, and a backend hands back the SAME
result object (and the same arrays) every step, updated in place. A caller that keeps results across steps must call
:meth:`StepResult.copy`.

| backend | module | latency_s is | cycles |
|---|---|---|---|
| ``cpu`` | :mod:`hil.cpu_backend` | measured wall time of the compiled step | -1 |
| ``edgedrnn`` | :mod:`hil.edgedrnn.backend` | modelled: cycles / clock + T_sys | modelled |
| ``board`` | :mod:`hil.board_backend` | the board's modelled compute (its cycles / clock) | reported by the board |
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class StepResult:
    """One inference step.

    Attributes
    ----------
    outputs
        float64 [O]: the controller outputs (joint torques, N·m), de-normalised, before saturation.
    ok
        False when no result arrived (a board's frame lost, corrupted or late beyond the period): ``outputs`` then
        holds stale values and must not drive the motors; the deadline policy decides what does.
    latency_s
        Inference latency of the step in seconds (measured, modelled, or reported by the board).
    round_trip_s
        Wall-clock time from sending the request to receiving the result, for backends across a link; 0 in process.
    cycles
        Accelerator cycles of the step; -1 for backends without a cycle count.
    fired_columns
        Weight columns fetched (non-zero deltas, plus the bias column where the hardware fetches one); -1 where not
        applicable.
    nonzero_deltas
        Non-zero Δx and Δh entries of the step (the numerator of 1 − temporal sparsity); -1 where not applicable.
    deadline_met
        ``latency_s <= budget_s`` as the backend sees it (the front end's deadline monitor decides what is applied).
    h
        Last-layer hidden state (int16 Q8.8 for EdgeDRNN, float for a CPU GRU), or None.
    events
        Link events of the step as a bit mask (:mod:`hil.board_backend` ``LINK_EVENT_*``); 0 in process.
    """

    __slots__ = (
        "cycles",
        "deadline_met",
        "events",
        "fired_columns",
        "h",
        "latency_s",
        "nonzero_deltas",
        "ok",
        "outputs",
        "round_trip_s",
    )

    def __init__(
        self,
        outputs: np.ndarray,
        latency_s: float = 0.0,
        cycles: int = -1,
        fired_columns: int = -1,
        deadline_met: bool = True,
        h: np.ndarray | None = None,
        *,
        nonzero_deltas: int = -1,
        ok: bool = True,
        round_trip_s: float = 0.0,
        events: int = 0,
    ) -> None:
        self.outputs = outputs
        self.latency_s = latency_s
        self.cycles = cycles
        self.fired_columns = fired_columns
        self.deadline_met = deadline_met
        self.h = h
        self.nonzero_deltas = nonzero_deltas
        self.ok = ok
        self.round_trip_s = round_trip_s
        self.events = events

    def copy(self) -> StepResult:
        """A snapshot that later steps will not overwrite."""
        return StepResult(
            self.outputs.copy(),
            float(self.latency_s),
            int(self.cycles),
            int(self.fired_columns),
            bool(self.deadline_met),
            None if self.h is None else self.h.copy(),
            nonzero_deltas=int(self.nonzero_deltas),
            ok=bool(self.ok),
            round_trip_s=float(self.round_trip_s),
            events=int(self.events),
        )

    def __repr__(self) -> str:
        return (
            f"StepResult(outputs={self.outputs!r}, ok={self.ok!r}, latency_s={self.latency_s!r}, "
            f"round_trip_s={self.round_trip_s!r}, cycles={self.cycles!r}, fired_columns={self.fired_columns!r}, "
            f"nonzero_deltas={self.nonzero_deltas!r}, deadline_met={self.deadline_met!r})"
        )


@runtime_checkable
class InferenceBackend(Protocol):
    """What the loop needs from an inference backend.

    ``kind`` names it (``cpu``, ``edgedrnn``, ``board``); ``input_size`` / ``n_outputs`` are the raw feature and
    output widths; ``hidden_size`` is H; ``delta_elements`` is the number of Δx + Δh entries per step (Σ_l I_l + H,
    the denominator of temporal sparsity) and ``dense_macs`` the multiply-accumulates of a step where every delta
    fires (Σ_l 3H·(I_l + H) + H·O).
    """

    kind: str
    input_size: int
    n_outputs: int
    hidden_size: int
    delta_elements: int
    dense_macs: int

    def reset(self) -> None:
        """Clear the recurrent state (start of an episode) and the per-episode counters of :meth:`episode_stats`."""
        ...

    def step(self, features: np.ndarray) -> StepResult:
        """Run one control period's inference on raw float features [I]; the result may be reused next step."""
        ...

    def episode_stats(self) -> dict[str, Any]:
        """Backend-specific counters since :meth:`reset` (e.g. governor actions, link counters); may be empty."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a run log's header records about this backend (kind, sizes, thresholds, clock, port, versions)."""
        ...

    def close(self) -> None:
        """Release what the backend holds (a serial port, a process); in-process backends do nothing."""
        ...
