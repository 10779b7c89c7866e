"""The EdgeDRNN inference backend: a deployment bundle run on the bit-exact, cycle-timed model.

Per step, as the real system does it: float features → z-score with the bundle's mean/std → Q8.8 (round half to
even, saturate to int16) → delta-GRU on the accelerator model → output layer on the "ARM core" (int32 MAC of the
Q8.8 last-layer h with the Q1.7 weights, plus the bias in the MAC's 2^-15 units, wrapping like int32) → float
``acc · 2^-15 · out_scale + out_offset``. Latency is the modelled ``cycles / clock + T_sys``; the step meets its
deadline when that is ≤ the budget (21 µs by default).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from firmware_bridge.bundle import Bundle, load_bundle
from hil.backend import StepResult
from hil.deadline import DEFAULT_BUDGET_S
from hil.governors import governor_name

from . import kernel as kn
from .governor import ThresholdGovernor
from .model import DEFAULT_CLOCK_HZ, EdgeDRNNError, EdgeDRNNModel
from .predictive import PredictiveGovernor, governed_backend_kernel, governed_split_kernel


class EdgeDRNNBackend:
    """:class:`hil.backend.InferenceBackend` over :class:`EdgeDRNNModel`.

    Parameters
    ----------
    bundle
        A :class:`firmware_bridge.bundle.Bundle` or the path of a bundle ``.npz``.
    budget_s
        Latency budget of one step (what ``StepResult.deadline_met`` and the governor aim at).
    governor
        Optional threshold governor around ``budget_s``: a :class:`ThresholdGovernor` (adjusts Θx/Θh after every
        step), a :class:`PredictiveGovernor` of this backend's model (chooses them before every step), or a name of
        :data:`hil.governors.GOVERNORS` for one with the default policy (True = ``reactive``).
    clock_hz, burst_latency, t_sys_s, saturate
        Passed to the model.

    ``step`` returns the same :class:`StepResult` object every time (outputs and h updated in place).
    """

    kind = "edgedrnn"

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        governor: ThresholdGovernor | PredictiveGovernor | bool | str | None = None,
        clock_hz: float = DEFAULT_CLOCK_HZ,
        burst_latency: int = 0,
        t_sys_s: float = 0.0,
        saturate: bool = False,
    ) -> None:
        if not isinstance(bundle, Bundle):
            bundle = load_bundle(bundle)
        if not budget_s > 0:
            raise EdgeDRNNError(f"budget_s must be > 0, got {budget_s}")
        self.bundle = bundle
        self.budget_s = float(budget_s)
        self.model = EdgeDRNNModel.from_bundle(
            bundle, clock_hz=clock_hz, burst_latency=burst_latency, t_sys_s=t_sys_s, saturate=saturate
        )
        if not isinstance(governor, (ThresholdGovernor, PredictiveGovernor)):
            try:
                name = governor_name(governor)
            except ValueError as exc:
                raise EdgeDRNNError(str(exc)) from None
            if name == "reactive":
                governor = ThresholdGovernor(self.budget_s, bundle.theta_x, bundle.theta_h)
            elif name is not None:
                bound = name.partition("-")[2] or "estimate"
                governor = PredictiveGovernor(self.model, self.budget_s, bundle.theta_x, bundle.theta_h, bound=bound)
            else:
                governor = None
        self.governor: ThresholdGovernor | PredictiveGovernor | None = governor
        self._predictive = governor if isinstance(governor, PredictiveGovernor) else None
        if self._predictive is not None:
            self._predictive.check_model(self.model)
        self.input_size = bundle.input_size
        self.n_outputs = bundle.n_outputs
        self.hidden_size = bundle.hidden
        self.delta_elements = self.model.delta_elements
        # Columns of a dense step (Σ_l I_l + H, bias aside) · 3H, plus the output layer on the ARM core.
        self.dense_macs = 3 * bundle.hidden * self.delta_elements + bundle.hidden * bundle.n_outputs
        width = max(self.input_size, self.n_outputs)
        self._fp = np.zeros((kn.FP_ROWS, width), dtype=np.float64)
        self._fp[kn.FP_MEAN, : self.input_size] = bundle.input_mean
        self._fp[kn.FP_STD, : self.input_size] = bundle.input_std
        self._fp[kn.FP_SCALE, : self.n_outputs] = bundle.out_scale
        self._fp[kn.FP_OFFSET, : self.n_outputs] = bundle.out_offset
        self._fp[kn.FP_BIAS, : self.n_outputs] = bundle.out_bias
        self._w_out = np.ascontiguousarray(bundle.out_weight, dtype=np.int8)
        self._inv_clock = 1.0 / self.model.clock_hz
        self._t_sys = self.model.t_sys_s
        image, state, h_out = self.model.kernel_buffers()
        self._args = (self._fp, image, self._w_out, state, h_out)
        if self._predictive is not None:
            pg = self._predictive
            self._gargs: tuple[np.ndarray, ...]
            self._split = pg.bound == "split"
            if self._split:
                self._gargs = (*self._args, pg.buffer)
                governed_split_kernel(np.zeros(self.input_size), *self._gargs)
            else:
                self._gargs = (*self._args, pg.buffer, pg.trial, pg.h_trial)
                governed_backend_kernel(np.zeros(self.input_size), *self._gargs)
        self._gov_raised = 0
        self._stats = self.model.step_stats
        self.steps = 0
        self.misses = 0
        self._gov_base = 0
        self.result = StepResult(outputs=self._fp[kn.FP_OUT, : self.n_outputs], h=h_out, latency_s=0.0, cycles=0)
        # Compile (or load from the cache) now, not in the first control period of a run.
        kn.backend_kernel(np.zeros(self.input_size), *self._args)
        self.reset()

    def reset(self) -> None:
        """Zero the recurrent state, restore the bundle's thresholds (lifetime counters ``steps``/``misses`` kept)."""
        self.model.reset()
        self.model.theta_x = self.bundle.theta_x
        self.model.theta_h = self.bundle.theta_h
        if self.governor is not None:
            self.governor.reset()
            self._gov_base = self.governor.actions
        if self._predictive is not None:
            self._gov_raised = self._predictive.counters()["raised_steps"]
        self._fp[kn.FP_OUT] = 0.0

    def step(self, features: np.ndarray) -> StepResult:
        """One control period: float features [I] → outputs [O] with the step's modelled timing."""
        f = features
        if type(f) is not np.ndarray or f.dtype != np.float64 or not f.flags.c_contiguous:
            f = np.ascontiguousarray(f, dtype=np.float64)
        if f.shape != (self.input_size,):
            raise EdgeDRNNError(f"features must have shape ({self.input_size},), got {np.shape(features)}")
        if self._predictive is not None:
            if self._split:
                cycles = governed_split_kernel(f, *self._gargs)
            else:
                cycles = governed_backend_kernel(f, *self._gargs)
        else:
            cycles = kn.backend_kernel(f, *self._args)
        latency = cycles * self._inv_clock + self._t_sys
        met = latency <= self.budget_s
        r = self.result
        r.latency_s = latency
        r.cycles = cycles
        stats = self._stats
        r.fired_columns = int(stats[kn.ST_FIRED])
        r.nonzero_deltas = int(stats[kn.ST_DELTAS])
        r.deadline_met = met
        self.steps += 1
        if not met:
            self.misses += 1
        if isinstance(self.governor, ThresholdGovernor):
            self.governor.update(self.model, latency)
        return r

    @property
    def governor_actions(self) -> int:
        """Threshold changes the governor made since :meth:`reset` (0 without a governor)."""
        return self.governor.actions - self._gov_base if self.governor is not None else 0

    @property
    def governor_kind(self) -> str | None:
        """The governor's name (:data:`hil.governors.GOVERNORS`), None without one."""
        if self.governor is None:
            return None
        return self.governor.name if isinstance(self.governor, PredictiveGovernor) else "reactive"

    def episode_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"governor": self.governor_kind or "none", "governor_actions": self.governor_actions}
        if self._predictive is not None:
            # Steps run above the trained thresholds (the predictive governor re-chooses every step).
            out["governor_raised_steps"] = self._predictive.counters()["raised_steps"] - self._gov_raised
        return out

    def describe(self) -> dict[str, Any]:
        b, m = self.bundle, self.model
        return {
            "kind": self.kind,
            "layers": b.layers,
            "hidden": b.hidden,
            "inputs": b.input_size,
            "outputs": b.n_outputs,
            "theta_x_lsb": b.theta_x,
            "theta_h_lsb": b.theta_h,
            "clock_hz": m.clock_hz,
            "t_sys_s": m.t_sys_s,
            "burst_latency": m.burst_latency,
            "budget_s": self.budget_s,
            "governor": self.governor_kind,
        }

    def close(self) -> None:
        pass
