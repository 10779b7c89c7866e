"""The EdgeDRNN model: a bit-exact integer delta-GRU with the facts page's cycle model, behind a small class.

Arithmetic follows ``../shared/facts/edgedrnn.md`` ("Integer recipe"): Q8.8 activations, Q1.7 weights, 24-bit
accumulators that wrap like the RTL (``saturate=True`` clamps instead, as the authors' Python does), round half to
even, inclusive thresholds, bias column only at the first step after reset. Timing: per step and layer
``T_mac + T_act`` cycles; ``latency = cycles / clock + T_sys``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from controllers.fixedpoint import K
from firmware_bridge.bundle import Bundle, check_theta
from firmware_bridge.errors import ImageError
from firmware_bridge.weight_image import ImageLayout, check_image, read_image

from . import kernel as kn

DEFAULT_CLOCK_HZ = 125e6


class EdgeDRNNError(ValueError):
    """Bad configuration or input for the EdgeDRNN model (the message names the expected value)."""


@dataclass
class RunResult:
    """Per-step results of :meth:`EdgeDRNNModel.run` (T steps, L layers)."""

    h: np.ndarray  # int16 [T, H], last layer
    cycles: np.ndarray  # int64 [T]
    fired_columns: np.ndarray  # int64 [T], bias column included
    nonzero_deltas: np.ndarray  # int64 [T], bias excluded
    layer_fired: np.ndarray  # int64 [T, L]
    layer_mac_cycles: np.ndarray  # int64 [T, L]
    layer_act_cycles: np.ndarray  # int64 [T, L]
    latency_s: np.ndarray  # float64 [T]
    delta_elements: int  # Δx + Δh entries per step (the sparsity denominator)

    @property
    def sparsity(self) -> float:
        """Fraction of zero entries of Δx and Δh over the run (bias excluded)."""
        total = self.delta_elements * len(self.cycles)
        return 1.0 - float(self.nonzero_deltas.sum()) / total if total else 0.0


class EdgeDRNNModel:
    """Integer delta-GRU + cycle model of the EdgeDRNN accelerator.

    Parameters
    ----------
    image
        Weight image (bytes or 1-D int8/uint8 array) in the DRAM layout of :mod:`firmware_bridge.weight_image`.
    layers, input_size, hidden
        Geometry; ``input_size`` may be given padded or unpadded (the image always holds the padded width).
    theta_x, theta_h
        Delta thresholds in Q8.8 LSB, 0..511; settable at run time (between steps).
    k, clock_hz, burst_latency, t_sys_s
        Cycle-model parameters: PEs, clock, extra cycles per weight burst (λ), system overhead added to latency.
    saturate
        Clamp instead of wrap on overflow (accumulators, deltas and pre-activations). Default False = the RTL.
    """

    def __init__(
        self,
        image: bytes | np.ndarray,
        layers: int,
        input_size: int,
        hidden: int,
        theta_x: int = 0,
        theta_h: int = 0,
        *,
        k: int = K,
        clock_hz: float = DEFAULT_CLOCK_HZ,
        burst_latency: int = 0,
        t_sys_s: float = 0.0,
        saturate: bool = False,
    ) -> None:
        if k != K:
            # The image layout, the activation stage and the fitted constants are all for the RTL's K = 8.
            raise EdgeDRNNError(f"only K={K} processing elements is modelled, got k={k}")
        try:
            layout = ImageLayout(layers, input_size, hidden)
            img = check_image(image, layers, input_size, hidden)
        except ImageError as exc:
            raise EdgeDRNNError(str(exc)) from None
        if not clock_hz > 0:
            raise EdgeDRNNError(f"clock must be > 0 Hz, got {clock_hz}")
        if int(burst_latency) < 0:
            raise EdgeDRNNError(f"burst latency must be >= 0 cycles, got {burst_latency}")
        if not t_sys_s >= 0:
            raise EdgeDRNNError(f"T_sys must be >= 0 s, got {t_sys_s}")
        self.layout = layout
        self.layers = layout.layers
        self.input_size = int(input_size)
        self.input_padded = layout.input_padded
        self.hidden = layout.hidden
        self.k = k
        self.clock_hz = float(clock_hz)
        self.burst_latency = int(burst_latency)
        self.t_sys_s = float(t_sys_s)
        self.saturate = bool(saturate)
        self.image = np.ascontiguousarray(img, dtype=np.int8)
        L, H = self.layers, self.hidden
        o_stats, o_acc, o_mem, o_scr, size, width = kn.state_layout(L, H, self.input_padded)
        # One buffer for all mutable state (see kernel.py); the named arrays below are views into it.
        self._state = np.zeros(size, dtype=np.int64)
        self._cfg = self._state[: kn.CFG_SIZE]
        self._stats = self._state[o_stats:o_acc]
        self._acc = self._state[o_acc:o_mem].view(np.int32).reshape(L, 4, H)
        self._mem = self._state[o_mem:o_scr].reshape(L, 3, width)
        self._cfg[kn.CFG_LAYERS] = L
        self._cfg[kn.CFG_HIDDEN] = H
        self._cfg[kn.CFG_INPUT] = self.input_padded
        self._cfg[kn.CFG_K] = k
        self._cfg[kn.CFG_LAMBDA] = self.burst_latency
        self._cfg[kn.CFG_SATURATE] = int(self.saturate)
        self._cfg[kn.CFG_OFFSETS : kn.CFG_OFFSETS + L] = layout.layer_offsets
        self._h_out = np.zeros(H, dtype=np.int16)
        self.theta_x = theta_x
        self.theta_h = theta_h
        self.delta_elements = self.input_size + H + (L - 1) * 2 * H
        self.reset()

    # ------------------------------------------------------------------------------------------ construction

    @classmethod
    def from_bundle(cls, bundle: Bundle, **kwargs) -> EdgeDRNNModel:
        """Model of a deployment bundle (thresholds from the bundle unless given in ``kwargs``)."""
        kwargs.setdefault("theta_x", bundle.theta_x)
        kwargs.setdefault("theta_h", bundle.theta_h)
        return cls(bundle.image, bundle.layers, bundle.input_size, bundle.hidden, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, layers: int, input_size: int, hidden: int, **kwargs) -> EdgeDRNNModel:
        """Model of a weight image file (``.bin`` raw or hex-beat ``.txt``)."""
        try:
            image = read_image(path)
        except ImageError as exc:
            raise EdgeDRNNError(str(exc)) from None
        return cls(image, layers, input_size, hidden, **kwargs)

    # ---------------------------------------------------------------------------------------- thresholds

    @property
    def theta_x(self) -> int:
        """Input-delta threshold Θx (Q8.8 LSB, 0..511); takes effect at the next step."""
        return int(self._cfg[kn.CFG_THETA_X])

    @theta_x.setter
    def theta_x(self, value: int) -> None:
        self._cfg[kn.CFG_THETA_X] = _theta(value, "theta_x")

    @property
    def theta_h(self) -> int:
        """Hidden-delta threshold Θh (Q8.8 LSB, 0..511); takes effect at the next step."""
        return int(self._cfg[kn.CFG_THETA_H])

    @theta_h.setter
    def theta_h(self, value: int) -> None:
        self._cfg[kn.CFG_THETA_H] = _theta(value, "theta_h")

    # ---------------------------------------------------------------------------------------------- state

    def reset(self) -> None:
        """Zero all per-layer state (x̂, ĥ, h, M_*); the next step fetches the bias column again."""
        self._state[kn.CFG_SIZE :] = 0
        self._h_out.fill(0)
        self._cfg[kn.CFG_FIRST] = 1

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Copies of the per-layer state: x_hat [L, W], h_hat, h [L, H], m_r, m_z, m_nx, m_nh [L, H]."""
        H = self.hidden
        return {
            "x_hat": self._mem[:, 0, :].copy(),
            "h_hat": self._mem[:, 1, :H].copy(),
            "h": self._mem[:, 2, :H].copy(),
            "m_r": self._acc[:, 0].copy(),
            "m_z": self._acc[:, 1].copy(),
            "m_nx": self._acc[:, 2].copy(),
            "m_nh": self._acc[:, 3].copy(),
        }

    def kernel_buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image, state, h_out)``: the arrays the compiled kernels of :mod:`hil.edgedrnn.kernel` take, for callers
        that fuse a step into their own compiled call (updated in place; the model keeps owning them)."""
        return self.image, self._state, self._h_out

    @property
    def step_stats(self) -> np.ndarray:
        """The last step's statistics block (``kernel.ST_*`` indices; a live view, overwritten every step)."""
        return self._stats

    # ---------------------------------------------------------------------------------------------- steps

    def _input(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[-1] if x.ndim else 0
        if x.ndim != 1 or n not in (self.input_size, self.input_padded):
            raise EdgeDRNNError(
                f"input must be int16 [{self.input_size}] (or padded [{self.input_padded}]), got shape {x.shape}"
            )
        if x.dtype != np.int16:
            raise EdgeDRNNError(f"input must be int16 Q8.8, got {x.dtype}")
        return x

    def step(self, x_q88: np.ndarray) -> np.ndarray:
        """Advance one time step with a Q8.8 input; returns the last layer's h (int16 [H]).

        The returned array is reused (overwritten by the next step): copy it to keep it. Cycles, latency and
        fired columns of the step are in :attr:`cycles`, :attr:`latency_s`, :attr:`fired_columns`,
        :attr:`layer_fired`, :attr:`layer_mac_cycles`, :attr:`layer_act_cycles`.
        """
        x = self._input(np.asarray(x_q88))
        kn.step_kernel(x, self.image, self._state, self._h_out)
        return self._h_out

    @property
    def cycles(self) -> int:
        """Cycles of the last step."""
        return int(self._stats[kn.ST_CYCLES])

    @property
    def latency_s(self) -> float:
        """Modelled latency of the last step: cycles / clock + T_sys."""
        return self._stats[kn.ST_CYCLES] / self.clock_hz + self.t_sys_s

    @property
    def fired_columns(self) -> int:
        """Weight columns fetched in the last step, bias columns included."""
        return int(self._stats[kn.ST_FIRED])

    @property
    def nonzero_deltas(self) -> int:
        """Non-zero entries of Δx and Δh in the last step (bias excluded)."""
        return int(self._stats[kn.ST_DELTAS])

    @property
    def layer_fired(self) -> np.ndarray:
        return self._stats[kn.ST_LAYER_FIRED : kn.ST_LAYER_FIRED + self.layers].copy()

    @property
    def layer_mac_cycles(self) -> np.ndarray:
        return self._stats[kn.ST_LAYER_MAC : kn.ST_LAYER_MAC + self.layers].copy()

    @property
    def layer_act_cycles(self) -> np.ndarray:
        return self._stats[kn.ST_LAYER_ACT : kn.ST_LAYER_ACT + self.layers].copy()

    def run(self, X: np.ndarray) -> RunResult:
        """Run a whole sequence ``X`` int16 [T, I] or [T, I_pad] from the current state (no reset)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] not in (self.input_size, self.input_padded):
            raise EdgeDRNNError(
                f"inputs must be int16 [T, {self.input_size}] (or padded [T, {self.input_padded}]), got shape {X.shape}"
            )
        if X.dtype != np.int16:
            raise EdgeDRNNError(f"inputs must be int16 Q8.8, got {X.dtype}")
        X = np.ascontiguousarray(X)
        T, L = X.shape[0], self.layers
        h_all = np.zeros((T, self.hidden), dtype=np.int16)
        st = np.zeros((T, kn.STATS_SIZE), dtype=np.int64)
        kn.run_kernel(X, self.image, self._state, h_all, st)
        if T:
            self._h_out[:] = h_all[-1]
        cycles = st[:, kn.ST_CYCLES].copy()
        return RunResult(
            h=h_all,
            cycles=cycles,
            fired_columns=st[:, kn.ST_FIRED].copy(),
            nonzero_deltas=st[:, kn.ST_DELTAS].copy(),
            layer_fired=st[:, kn.ST_LAYER_FIRED : kn.ST_LAYER_FIRED + L].copy(),
            layer_mac_cycles=st[:, kn.ST_LAYER_MAC : kn.ST_LAYER_MAC + L].copy(),
            layer_act_cycles=st[:, kn.ST_LAYER_ACT : kn.ST_LAYER_ACT + L].copy(),
            latency_s=cycles / self.clock_hz + self.t_sys_s,
            delta_elements=self.delta_elements,
        )

    # ---------------------------------------------------------------------------------------- cycle facts

    def _layer_terms(self, layer: int) -> tuple[int, int, int, int, int]:
        i_l = self.layout.layer_inputs[layer]
        scan = 1 + i_l + self.hidden
        beats = 3 * self.hidden // self.k
        c_e = kn.C_E_FIRST if layer == 0 else kn.C_E_LATER
        c_s = kn.C_S_FIRST if layer == 0 else kn.C_S_LATER
        act = kn.ACT_LOOP * (self.hidden // self.k + 1)
        return scan, beats, c_e, c_s, act

    @property
    def floor_cycles(self) -> int:
        """Cycles of a step in which nothing fires: the delta encoder's scan floor plus the activation stages."""
        total = 0
        for layer in range(self.layers):
            scan, _, _, c_s, act = self._layer_terms(layer)
            total += scan + c_s + act
        return total

    def cycles_for_positions(self, positions: list[list[int]]) -> int:
        """Modelled cycles of a step whose fired scan positions per layer are ``positions`` (ascending)."""
        if len(positions) != self.layers:
            raise EdgeDRNNError(f"need one position list per layer ({self.layers}), got {len(positions)}")
        total = 0
        for layer, p in enumerate(positions):
            scan, beats, c_e, c_s, act = self._layer_terms(layer)
            arr = np.asarray(sorted(p), dtype=np.int64)
            if arr.size and (arr[0] < 0 or arr[-1] >= scan):
                raise EdgeDRNNError(f"layer {layer} positions must be in 0..{scan - 1}")
            total += kn.mac_phase_cycles(arr, arr.size, scan, beats, c_e, c_s, self.burst_latency) + act
        return total

    @property
    def dense_cycles(self) -> int:
        """Cycles of a step after the first in which every input and hidden column fires (no bias)."""
        return self.cycles_for_positions([list(range(1, self._layer_terms(layer)[0])) for layer in range(self.layers)])

    def latency_of(self, cycles: int | np.ndarray) -> float | np.ndarray:
        """Cycles → seconds with this model's clock and T_sys."""
        return cycles / self.clock_hz + self.t_sys_s


def _theta(value: int, name: str) -> int:
    try:
        return check_theta(value, name)
    except ImageError as exc:
        raise EdgeDRNNError(str(exc)) from None
