"""A learned (GRU / delta-GRU) prosthesis controller on the CPU: a checkpoint run by the compiled float32 kernel.

Per control step (:meth:`LearnedController.act`)::

    sensors ─┬─> AmproPD.update_reference (ampro only: domain, q_k,des, q̇_k,des; the PD's torque is never used)
             └─> features_from_obs ─> (f − mean) / std ─> DeltaGRUKernel.step ─> y · scale + offset ─> clip ±peak

The kernel (:class:`controllers.gru_kernel.DeltaGRUKernel`) carries the full delta state (x̂, ĥ, h, accumulators)
between steps. ``use_thresholds=False`` runs the same weights with Θx = Θh = 0 — the dense GRU ('gru' mode): with
Θ = 0 a delta-GRU computes exactly ``nn.GRU``; only exactly-unchanged inputs (e.g. a constant domain flag) skip
their weight column, which changes no output.

Nothing is allocated per step: features, normalised inputs and torques live in buffers made at construction, and
the returned torque array is the same object every step (copy it to keep it).

Counters since :meth:`reset`: :meth:`sparsity` (fraction of zero Δx and Δh entries, i.e. weight columns not
fetched), :meth:`macs_per_step` (mean multiply-accumulates: fired columns · 3H + the output layer) and
:attr:`dense_macs_per_step` (what a dense step costs).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from numba import njit

from controllers.checkpoint import CheckpointMeta, load_checkpoint
from controllers.deltagru import DeltaGRU
from controllers.features import check_feature_set, feature_size, features_from_obs
from controllers.gru_kernel import DeltaGRUKernel, kernel_step
from controllers.pd import AmproPD
from envs.anthropometry import WalkerParams

# Rows of the float64 output block: torque = clip(y · scale + offset, lo, hi); raw keeps the unclipped torque.
_IO_SCALE, _IO_OFFSET, _IO_LO, _IO_HI, _IO_RAW, _IO_OUT = range(6)


@njit(cache=True, fastmath=False, error_model="numpy")
def _controller_step(
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
    """z-score → kernel step → de-normalise and saturate, in one compiled call (numpy ufuncs cost ~0.5 µs each)."""
    for i in range(x.shape[0]):
        x[i] = (feat[i] - norm[0, i]) / norm[1, i]  # float32, as Normalizer.__call__ computes it
    kernel_step(x, P, S, lay, cnt, y)
    for o in range(y.shape[0]):
        r = np.float64(y[o]) * io[_IO_SCALE, o] + io[_IO_OFFSET, o]
        io[_IO_RAW, o] = r
        io[_IO_OUT, o] = min(max(r, io[_IO_LO, o]), io[_IO_HI, o])


def kernel_from_model(model: DeltaGRU, use_thresholds: bool = True) -> DeltaGRUKernel:
    """The compiled step kernel of ``model``; ``use_thresholds=False`` gives Θx = Θh = 0 (the dense GRU)."""
    with torch.no_grad():
        layers = []
        for layer in range(model.num_layers):
            p = model.layer_params(layer)
            layers.append(tuple(t.detach().cpu().float().numpy() for t in (p.w_ih, p.w_hh, p.m_init)))
        w, b = model.output_params()
        tx, th = (model.theta_x, model.theta_h) if use_thresholds else (0.0, 0.0)
        return DeltaGRUKernel(layers, w.detach().cpu().float().numpy(), b.detach().cpu().float().numpy(), tx, th)


def torque_limits_of(walker: WalkerParams | None, limits: tuple[float, float] | None) -> np.ndarray:
    """Motor peak torques [knee, ankle] (N·m): explicit ``limits``, else the walker's prosthesis (142 / 168)."""
    if limits is None:
        pr = (walker or WalkerParams()).prosthesis
        limits = (pr.knee_peak_torque, pr.ankle_peak_torque)
    lim = np.asarray(limits, dtype=np.float64)
    if lim.shape != (2,) or not np.all(lim > 0):
        raise ValueError(f"torque limits must be two positive numbers [knee, ankle] N·m, got {limits!r}")
    return lim


class LearnedController:
    """Controller interface over a GRU / delta-GRU checkpoint (see the module docstring).

    Parameters
    ----------
    model, meta
        A loaded checkpoint (:func:`controllers.checkpoint.load_checkpoint`).
    dt
        Control period in s; defaults to the checkpoint's ``control_dt``. Used by the AMPRO reference (its swing
        phase is time-based).
    use_thresholds
        False runs the checkpoint with Θ = 0 (dense 'gru' mode).
    walker
        Body and device parameters of the AMPRO reference (forward kinematics, body weight) and the default
        torque limits.
    torque_limits
        Saturation [knee, ankle] in N·m; default the walker's motor peak torques (142, 168).
    """

    def __init__(
        self,
        model: DeltaGRU,
        meta: CheckpointMeta,
        dt: float | None = None,
        use_thresholds: bool = True,
        walker: WalkerParams | None = None,
        torque_limits: tuple[float, float] | None = None,
    ) -> None:
        self.feature_set = check_feature_set(meta.feature_set)
        n_in = feature_size(self.feature_set)
        if model.input_size != n_in:
            raise ValueError(f"model has {model.input_size} inputs; feature set {self.feature_set!r} has {n_in}")
        if model.output_size != 2:
            raise ValueError(
                f"a prosthesis controller needs 2 outputs [knee, ankle], the model has {model.output_size}"
            )
        self.meta = meta
        self.dt = float(dt if dt is not None else meta.control_dt)
        self.kernel = kernel_from_model(model, use_thresholds)
        self.theta_x = self.kernel.theta_x
        self.theta_h = self.kernel.theta_h
        self.name = "deltagru" if (self.theta_x > 0 or self.theta_h > 0) else "gru"
        # The PD is only the reference generator of the 'ampro' error features; its torque is never used.
        self.reference: AmproPD | None = AmproPD(self.dt, walker=walker) if self.feature_set == "ampro" else None
        norm = np.stack([meta.input_norm.mean, meta.input_norm.std]).astype(np.float32)
        scale = np.asarray(meta.target_scale, dtype=np.float64)
        if norm.shape != (2, n_in) or scale.shape != (2,) or np.shape(meta.target_offset) != (2,):
            raise ValueError("checkpoint normalisation / target scale do not match the model's sizes")
        self.torque_limits = torque_limits_of(walker, torque_limits)
        self._norm = np.ascontiguousarray(norm)
        self._io = np.zeros((6, 2), dtype=np.float64)
        self._io[_IO_SCALE] = scale
        self._io[_IO_OFFSET] = meta.target_offset
        self._io[_IO_LO] = -self.torque_limits
        self._io[_IO_HI] = self.torque_limits
        self.features = np.zeros(n_in, dtype=np.float32)  # raw features of the last step
        self.inputs = np.zeros(n_in, dtype=np.float32)  # normalised network inputs of the last step
        self.raw_output = self._io[_IO_RAW]  # de-normalised torque before saturation (a view)
        self._out = self._io[_IO_OUT]
        k = self.kernel
        # The kernel's buffers, bound once: the fused step passes them straight to the compiled code.
        self._args = (self.features, self._norm, self.inputs, k._P, k._S, k._lay, k._cnt, k._out, self._io)
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        dt: float | None = None,
        use_thresholds: bool = True,
        feature_set: str | None = None,
        walker: WalkerParams | None = None,
        torque_limits: tuple[float, float] | None = None,
    ) -> LearnedController:
        """Load ``path`` (raises :class:`controllers.checkpoint.CheckpointError`, also on a feature-set mismatch)."""
        model, meta = load_checkpoint(path, feature_set=feature_set)
        return cls(model, meta, dt=dt, use_thresholds=use_thresholds, walker=walker, torque_limits=torque_limits)

    # ------------------------------------------------------------------------------------------ control
    def reset(self) -> None:
        """New episode: zero recurrent state and counters, restart the reference."""
        self.kernel.reset()
        if self.reference is not None:
            self.reference.reset()

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Torques [knee, ankle] N·m for one sensor vector (the returned array is reused every step)."""
        ref = self.reference
        if ref is not None:
            ref.update_reference(observation)
            features_from_obs(self.feature_set, observation, ref.domain, ref.knee_des, ref.knee_vel_des, self.features)
        else:
            features_from_obs(self.feature_set, observation, 0.0, 0.0, 0.0, self.features)
        return self._infer()

    def act_features(self, features: np.ndarray) -> np.ndarray:
        """Torques from raw (un-normalised) features, e.g. the columns of a recorded log (offline replay)."""
        self.features[:] = features
        return self._infer()

    def _infer(self) -> np.ndarray:
        _controller_step(*self._args)
        return self._out

    # ------------------------------------------------------------------------------------------ counters
    @property
    def steps(self) -> int:
        return self.kernel.steps

    def sparsity(self) -> float:
        """Fraction of zero Δx and Δh entries since :meth:`reset` (all layers)."""
        return self.kernel.sparsity()

    def _columns(self) -> int:
        k = self.kernel
        return k.input_size + k.hidden_size + (k.num_layers - 1) * 2 * k.hidden_size

    def macs_per_step(self) -> float:
        """Mean multiply-accumulates per step since :meth:`reset`: fired columns · 3H + the output layer H·O."""
        k = self.kernel
        if k.steps == 0:
            return 0.0
        fired = (1.0 - k.sparsity()) * self._columns()
        return fired * 3 * k.hidden_size + k.hidden_size * k.output_size

    @property
    def dense_macs_per_step(self) -> int:
        """MACs of a dense step: Σ_l 3H·(I_l + H) + H·O."""
        return self.kernel.dense_macs

    def episode_stats(self) -> dict[str, float]:
        """Counters of the episode so far, in the `legloop eval` JSON schema."""
        return {
            "sparsity": round(self.sparsity(), 6),
            "macs_per_step": round(self.macs_per_step(), 1),
            "dense_macs_per_step": self.dense_macs_per_step,
        }
