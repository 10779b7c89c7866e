"""The CPU inference backend: a GRU / delta-GRU checkpoint on the compiled float32 kernel, timed on the wall clock.

Per step, one compiled call (numpy ufuncs on 5-element arrays cost ~0.5 µs each, more than the arithmetic)::

    raw features ─> float32 z-score (the checkpoint's mean / std) ─> controllers.gru_kernel.kernel_step
                 ─> y · target_scale + target_offset (float64) ─> StepResult.outputs

``dense=True`` runs the same weights with Θx = Θh = 0: with Θ = 0 a delta-GRU computes exactly ``nn.GRU``; only
exactly-unchanged inputs (e.g. a constant domain flag) skip their weight column, which changes no output.

``latency_s`` is the measured wall time of the compiled call (``time.perf_counter``), so a run reports what the CPU
took against the budget; it depends on the machine and its load, which is why the CPU's default deadline policy is
``none`` (reported, never enforced — see :mod:`hil.deadline`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from controllers.checkpoint import CheckpointMeta
from controllers.deltagru import DeltaGRU
from controllers.gru_kernel import DeltaGRUKernel, kernel_step
from envs.jit import kernel
from hil.backend import StepResult

# Rows of the float64 output block: y · scale + offset → OUT.
_IO_SCALE, _IO_OFFSET, _IO_OUT = range(3)


@kernel(fastmath=False, error_model="numpy")
def cpu_step(
    feat: np.ndarray,
    norm: np.ndarray,
    x: np.ndarray,
    P: np.ndarray,
    S: np.ndarray,
    lay: np.ndarray,
    cnt: np.ndarray,
    y: np.ndarray,
    io: np.ndarray,
) -> None:
    """z-score (float32) → kernel step → de-normalise (float64), in one compiled call."""
    for i in range(x.shape[0]):
        x[i] = (np.float32(feat[i]) - norm[0, i]) / norm[1, i]  # float32, as Normalizer.__call__ computes it
    kernel_step(x, P, S, lay, cnt, y)
    for o in range(y.shape[0]):
        io[_IO_OUT, o] = np.float64(y[o]) * io[_IO_SCALE, o] + io[_IO_OFFSET, o]


def kernel_from_model(model: DeltaGRU, dense: bool = False) -> DeltaGRUKernel:
    """The compiled step kernel of ``model``; ``dense=True`` gives Θx = Θh = 0 (the dense GRU)."""
    import torch

    with torch.no_grad():
        layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for layer in range(model.num_layers):
            p = model.layer_params(layer)
            w_ih, w_hh, m_init = (t.detach().cpu().float().numpy() for t in (p.w_ih, p.w_hh, p.m_init))
            layers.append((w_ih, w_hh, m_init))
        w, b = model.output_params()
        tx, th = (0.0, 0.0) if dense else (model.theta_x, model.theta_h)
        return DeltaGRUKernel(layers, w.detach().cpu().float().numpy(), b.detach().cpu().float().numpy(), tx, th)


class CpuGRUBackend:
    """:class:`hil.backend.InferenceBackend` over a checkpoint on the CPU kernel.

    Parameters
    ----------
    model, meta
        A loaded checkpoint (:func:`controllers.checkpoint.load_checkpoint`).
    dense
        True runs the checkpoint with Θ = 0 (the float GRU).
    """

    kind = "cpu"

    def __init__(self, model: DeltaGRU, meta: CheckpointMeta, dense: bool = False) -> None:
        self.kernel = kernel_from_model(model, dense=dense)
        k = self.kernel
        self.meta = meta
        self.dense = bool(dense)
        self.theta_x, self.theta_h = k.theta_x, k.theta_h
        self.input_size = k.input_size
        self.n_outputs = k.output_size
        self.hidden_size = k.hidden_size
        self.delta_elements = k.delta_elements
        self.dense_macs = k.dense_macs
        norm = np.stack([meta.input_norm.mean, meta.input_norm.std]).astype(np.float32)
        scale = np.asarray(meta.target_scale, dtype=np.float64)
        if norm.shape != (2, self.input_size) or scale.shape != (self.n_outputs,):
            raise ValueError("checkpoint normalisation / target scale do not match the model's sizes")
        if np.shape(meta.target_offset) != (self.n_outputs,):
            raise ValueError("checkpoint target offset does not match the model's outputs")
        self._norm = np.ascontiguousarray(norm)
        self._x = np.zeros(self.input_size, dtype=np.float32)  # normalised network inputs of the last step
        self._io = np.zeros((3, self.n_outputs), dtype=np.float64)
        self._io[_IO_SCALE] = scale
        self._io[_IO_OFFSET] = meta.target_offset
        self._feat = np.zeros(self.input_size, dtype=np.float64)
        P, S, lay, cnt, out = k.buffers()
        self._cnt = cnt
        self._args = (self._feat, self._norm, self._x, P, S, lay, cnt, out, self._io)
        self.result = StepResult(outputs=self._io[_IO_OUT], latency_s=0.0, cycles=-1, fired_columns=0)
        # Compile (or load from the cache) now, not in the first control period of a run.
        cpu_step(*self._args)
        self.reset()

    @property
    def inputs(self) -> np.ndarray:
        """The normalised network inputs of the last step (float32, a view)."""
        return self._x

    def reset(self) -> None:
        """Zero the recurrent state and the kernel's counters."""
        self.kernel.reset()
        self._io[_IO_OUT] = 0.0

    def step(self, features: np.ndarray) -> StepResult:
        """Raw features [I] (any float dtype) → de-normalised outputs, timed."""
        feat = self._feat
        feat[:] = features
        t0 = time.perf_counter()
        cpu_step(*self._args)
        dt = time.perf_counter() - t0
        r = self.result
        r.latency_s = dt
        fired = self.kernel.fired_columns
        r.fired_columns = fired
        r.nonzero_deltas = fired  # the float kernel has no bias column: every fetched column is a non-zero delta
        return r

    def episode_stats(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        k = self.kernel
        return {
            "kind": self.kind,
            "dense": self.dense,
            "layers": k.num_layers,
            "hidden": k.hidden_size,
            "inputs": k.input_size,
            "outputs": k.output_size,
            "theta_x": self.theta_x,
            "theta_h": self.theta_h,
        }

    def close(self) -> None:
        pass
