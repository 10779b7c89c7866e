"""Compiled batch-1 delta-GRU step for the CPU control loop (numba, float32), exported from a ``DeltaGRU``.

Torch eager costs ~65 µs per call before doing any work, more than a whole control step should take, so the
in-the-loop controller runs this kernel instead. It computes the equations of :mod:`controllers.deltagru` for one
sample, carrying the per-layer delta state (x̂, ĥ, h, M_r | M_z | M_nx | M_nh), then the Linear output layer.

Why it is fast:
- weights are stored column-major (one contiguous 3H-float column per input or hidden unit, rows r | z | n), and
  only columns whose delta fires are touched: at 90 % temporal sparsity ~10× fewer weight bytes are read;
- the inner loops are plain element-wise float32 loops that LLVM vectorises (``fastmath=False``: no reassociation,
  so the float results are reproducible);
- σ and tanh are a branch-free rational approximation (Eigen's float tanh, |error| ≤ 3.5e-7, σ(x) = ½ + ½·tanh(x/2))
  instead of 6H scalar libm calls;
- all parameters, state and counters live in a few flat preallocated arrays: the step body allocates nothing
  (numba's dispatcher still wraps each of the 6 array arguments in a small MemInfo per call, as for any call).

Differences from the torch module, all within float tolerance: summation order (column by column here, BLAS
blocks there) and the activation approximation. A delta whose magnitude is within rounding of Θ may fire in one and
not the other; that happens rarely and only on exact ties of continuous values.
For ``qat`` models the kernel uses the Q1.7-quantised weights and summed biases but computes activations in
float: it does not round inputs, pre-activations, σ/tanh outputs or h to the Q8.8 / 1/16 grids as the QAT forward
does, so it matches the QAT torch model only approximately (≈ the grid step). Bit-exact fixed point is the job of
the EdgeDRNN model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from envs.jit import kernel

if TYPE_CHECKING:
    from controllers.deltagru import DeltaGRU, DeltaGRUState

# Eigen's rational approximation of tanh on [-c, c] (float32; beyond c, tanh rounds to ±1 anyway).
_TANH_CLAMP = np.float32(7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)
_F32 = np.dtype(np.float32)

# Rows of the int64 layout table: row 0 is global, row 1 + l describes layer l.
_G_LAYERS, _G_HIDDEN, _G_OUT, _G_FCW, _G_FCB, _G_THETA, _G_SCRATCH, _G_MAXIN = range(8)
_L_IN, _L_WX, _L_WH, _L_MINIT, _L_XHAT, _L_HHAT, _L_H, _L_MX, _L_MH = range(9)
# Counters: 0 steps since reset, 1 fired columns this step, 2 MACs this step, then per layer l at 3 + 4l:
# fired x columns this step, fired h columns this step, cumulative fired x, cumulative fired h.
_C_STEPS, _C_FIRED, _C_MACS, _C_LAYER0 = 0, 1, 2, 3


@kernel(fastmath=False, error_model="numpy", inline="always")
def _tanh(x: np.float32) -> np.float32:
    if x > _TANH_CLAMP:
        x = _TANH_CLAMP
    if x < -_TANH_CLAMP:
        x = -_TANH_CLAMP
    x2 = x * x
    p = _A13
    p = p * x2 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    p = p * x2 + _A1
    p = p * x
    q = _B6
    q = q * x2 + _B4
    q = q * x2 + _B2
    q = q * x2 + _B0
    return p / q


@kernel(fastmath=False, error_model="numpy", inline="always")
def _sigmoid(x: np.float32) -> np.float32:
    return _HALF + _HALF * _tanh(_HALF * x)


@kernel(fastmath=False, error_model="numpy")
def _encode(v: np.ndarray, mem: np.ndarray, theta: np.float32, idx: np.ndarray, dd: np.ndarray) -> int:
    """Delta encoder: list the columns j whose |v[j] − mem[j]| ≥ Θ (and ≠ 0) with their Δ; update mem there."""
    n = 0
    for j in range(v.shape[0]):
        d = v[j] - mem[j]
        if d != 0 and abs(d) >= theta:
            mem[j] = v[j]
            idx[n] = j
            dd[n] = d
            n += 1
    return n


@kernel(fastmath=False, error_model="numpy")
def _accumulate(W: np.ndarray, idx: np.ndarray, dd: np.ndarray, n: int, m: np.ndarray) -> None:
    """m += Σ Δ_i · W[:, idx_i] over the fired columns (column c of W is the contiguous W[c·R : (c+1)·R])."""
    R = m.shape[0]
    i = 0
    # Four columns per pass: a quarter of the loads/stores of m, and the adds form a short tree.
    while i + 4 <= n:
        c0 = W[idx[i] * R : idx[i] * R + R]
        c1 = W[idx[i + 1] * R : idx[i + 1] * R + R]
        c2 = W[idx[i + 2] * R : idx[i + 2] * R + R]
        c3 = W[idx[i + 3] * R : idx[i + 3] * R + R]
        d0 = dd[i]
        d1 = dd[i + 1]
        d2 = dd[i + 2]
        d3 = dd[i + 3]
        for k in range(R):
            m[k] += (d0 * c0[k] + d1 * c1[k]) + (d2 * c2[k] + d3 * c3[k])
        i += 4
    while i < n:
        c = W[idx[i] * R : idx[i] * R + R]
        d = dd[i]
        for k in range(R):
            m[k] += d * c[k]
        i += 1


@kernel(fastmath=False, error_model="numpy")
def _activate(mx: np.ndarray, mh: np.ndarray, g: np.ndarray, h: np.ndarray) -> None:
    """h ← (1 − z)·n + z·h from the input-side (r|z|nx) and hidden-side (r|z|nh) accumulators."""
    H = h.shape[0]
    for k in range(2 * H):
        g[k] = _sigmoid(mx[k] + mh[k])
    for k in range(H):
        n = _tanh(mx[2 * H + k] + g[k] * mh[2 * H + k])
        h[k] = n + g[H + k] * (h[k] - n)


@kernel(fastmath=False, error_model="numpy")
def _linear(w: np.ndarray, b: np.ndarray, v: np.ndarray, acc: np.ndarray, out: np.ndarray) -> None:
    """out = W v + b with W row-major [O, H]; eight partial sums per row so the reduction is not one long chain."""
    H = v.shape[0]
    for o in range(out.shape[0]):
        row = w[o * H : (o + 1) * H]
        for u in range(8):
            acc[u] = 0
        for k0 in range(0, H, 8):
            for u in range(8):
                acc[u] += row[k0 + u] * v[k0 + u]
        out[o] = b[o] + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])))


@kernel(fastmath=False, error_model="numpy")
def kernel_step(x: np.ndarray, P: np.ndarray, S: np.ndarray, lay: np.ndarray, cnt: np.ndarray, out: np.ndarray) -> None:
    """One step on a kernel's flat buffers (``DeltaGRUKernel._P/_S/_lay/_cnt/_out``): x → out.

    Public so other compiled code can fuse it into its own step (:mod:`hil.cpu_backend` normalises, steps and
    de-normalises in one call, on :meth:`DeltaGRUKernel.buffers`); Python callers use :meth:`DeltaGRUKernel.step`.
    """
    n_layers = lay[0, _G_LAYERS]
    H = lay[0, _G_HIDDEN]
    H3 = 3 * H
    theta_x = P[lay[0, _G_THETA]]
    theta_h = P[lay[0, _G_THETA] + 1]
    sc = lay[0, _G_SCRATCH]
    g = S[sc : sc + 2 * H]
    dd = S[sc + 2 * H : sc + 2 * H + lay[0, _G_MAXIN]]
    idx = cnt[_C_LAYER0 + 4 * n_layers :]
    fired_all = 0
    src = x
    for layer in range(n_layers):
        row = layer + 1
        n_in = lay[row, _L_IN]
        x_hat = S[lay[row, _L_XHAT] : lay[row, _L_XHAT] + n_in]
        h_hat = S[lay[row, _L_HHAT] : lay[row, _L_HHAT] + H]
        h = S[lay[row, _L_H] : lay[row, _L_H] + H]
        mx = S[lay[row, _L_MX] : lay[row, _L_MX] + H3]
        mh = S[lay[row, _L_MH] : lay[row, _L_MH] + H3]
        # Hardware keeps one M_r (and M_z); two accumulators (input side, hidden side) keep both kinds of
        # column contiguous over 3H rows. M_r = mx_r + mh_r, M_nx = mx_n, M_nh = mh_n.
        fx = _encode(src, x_hat, theta_x, idx, dd)
        _accumulate(P[lay[row, _L_WX] : lay[row, _L_WX] + n_in * H3], idx, dd, fx, mx)
        # Hidden deltas come from h_{t-1}: encode before the activation overwrites h.
        fh = _encode(h, h_hat, theta_h, idx, dd)
        _accumulate(P[lay[row, _L_WH] : lay[row, _L_WH] + H * H3], idx, dd, fh, mh)
        _activate(mx, mh, g, h)
        c = _C_LAYER0 + 4 * layer
        cnt[c] = fx
        cnt[c + 1] = fh
        cnt[c + 2] += fx
        cnt[c + 3] += fh
        fired_all += fx + fh
        src = h
    n_out = lay[0, _G_OUT]
    fcw = lay[0, _G_FCW]
    fcb = lay[0, _G_FCB]
    _linear(P[fcw : fcw + n_out * H], P[fcb : fcb + n_out], src, dd, out)
    cnt[_C_STEPS] += 1
    cnt[_C_FIRED] = fired_all
    cnt[_C_MACS] = fired_all * H3 + n_out * H


@kernel(fastmath=False, error_model="numpy")
def _kernel_reset(P: np.ndarray, S: np.ndarray, lay: np.ndarray, cnt: np.ndarray) -> None:
    H = lay[0, _G_HIDDEN]
    for layer in range(lay[0, _G_LAYERS]):
        row = layer + 1
        for j in range(lay[row, _L_IN]):
            S[lay[row, _L_XHAT] + j] = 0
        for j in range(H):
            S[lay[row, _L_HHAT] + j] = 0
            S[lay[row, _L_H] + j] = 0
        # M_init = b_r | b_z | b_in | b_hn: the input side takes b_r, b_z, b_in, the hidden side 0, 0, b_hn.
        for k in range(3 * H):
            S[lay[row, _L_MX] + k] = P[lay[row, _L_MINIT] + k]
        for k in range(2 * H):
            S[lay[row, _L_MH] + k] = 0
        for k in range(H):
            S[lay[row, _L_MH] + 2 * H + k] = P[lay[row, _L_MINIT] + 3 * H + k]
    for i in range(cnt.shape[0]):
        cnt[i] = 0


class DeltaGRUKernel:
    """Batch-1 float32 delta-GRU + Linear step with preallocated state; build with :meth:`from_module`.

    ``step(x)`` returns the same output array every call (overwritten in place): copy it to keep it.
    Counters after a step: ``fired_columns`` (all layers), ``macs`` (fired columns · 3H + output layer),
    ``fired_x`` / ``fired_h`` (per layer), and cumulative ``sparsity()`` since :meth:`reset`.
    """

    def __init__(
        self,
        layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        fc_weight: np.ndarray,
        fc_bias: np.ndarray,
        theta_x: float,
        theta_h: float,
    ) -> None:
        """``layers``: per layer (W_ih [3H, I_l], W_hh [3H, H], M_init [4H]) as in ``DeltaGRU.layer_params``."""
        H = layers[0][1].shape[1]
        n_layers = len(layers)
        self.hidden_size = H
        self.num_layers = n_layers
        self.input_size = layers[0][0].shape[1]
        self.output_size = fc_weight.shape[0]
        self.theta_x = float(theta_x)
        self.theta_h = float(theta_h)
        if H % 8:
            raise ValueError(f"hidden size must be a multiple of 8, got {H}")
        lay = np.zeros((n_layers + 1, 9), dtype=np.int64)
        chunks: list[np.ndarray] = []
        pos = 0

        def put(a: np.ndarray) -> int:
            nonlocal pos
            start = pos
            chunks.append(np.ascontiguousarray(a, dtype=np.float32).ravel())
            pos += chunks[-1].size
            return start

        s_pos = 0
        for layer, (w_ih, w_hh, m_init) in enumerate(layers):
            n_in = w_ih.shape[1]
            if w_ih.shape[0] != 3 * H or w_hh.shape != (3 * H, H) or m_init.shape != (4 * H,):
                raise ValueError(f"layer {layer}: inconsistent shapes for hidden size {H}")
            row = lay[layer + 1]
            row[_L_IN] = n_in
            # Transposed so column j of W (what a fired delta multiplies) is contiguous.
            row[_L_WX] = put(np.asarray(w_ih).T)
            row[_L_WH] = put(np.asarray(w_hh).T)
            row[_L_MINIT] = put(m_init)
            for key, size in ((_L_XHAT, n_in), (_L_HHAT, H), (_L_H, H), (_L_MX, 3 * H), (_L_MH, 3 * H)):
                row[key] = s_pos
                s_pos += size
        lay[0, _G_LAYERS] = n_layers
        lay[0, _G_HIDDEN] = H
        lay[0, _G_OUT] = self.output_size
        lay[0, _G_FCW] = put(fc_weight)
        lay[0, _G_FCB] = put(fc_bias)
        lay[0, _G_THETA] = put(np.array([theta_x, theta_h]))
        max_in = max(H, self.input_size)  # ≥ 8: also holds the output layer's 8 partial sums
        lay[0, _G_MAXIN] = max_in
        # Scratch: gates σ(r|z) [2H], then the fired deltas [max(I, H)] (also the output layer's partial sums).
        lay[0, _G_SCRATCH] = s_pos
        s_pos += 2 * H + max_in
        self._P = np.concatenate(chunks)
        self._S = np.zeros(s_pos, dtype=np.float32)
        self._lay = lay
        # Counters, then the fired column indices of the layer being computed (scratch).
        self._n_counters = _C_LAYER0 + 4 * n_layers
        self._cnt = np.zeros(self._n_counters + max_in, dtype=np.int64)
        self._out = np.zeros(self.output_size, dtype=np.float32)
        self._xbuf = np.zeros(self.input_size, dtype=np.float32)
        self._xshape = (self.input_size,)
        self.reset()

    @classmethod
    def from_module(cls, m: DeltaGRU) -> DeltaGRUKernel:
        """Export the effective (for ``qat``: Q1.7-quantised) weights and thresholds of a ``DeltaGRU``."""
        import torch  # local: the kernel itself needs only numpy and numba

        with torch.no_grad():
            layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            for layer in range(m.num_layers):
                p = m.layer_params(layer)
                w_ih, w_hh, m_init = (t.detach().cpu().float().numpy() for t in (p.w_ih, p.w_hh, p.m_init))
                layers.append((w_ih, w_hh, m_init))
            w, b = m.output_params()
            return cls(layers, w.detach().cpu().float().numpy(), b.detach().cpu().float().numpy(), m.theta_x, m.theta_h)

    def reset(self) -> None:
        """Start a new sequence: x̂ = ĥ = h = 0, accumulators = biases, counters = 0."""
        _kernel_reset(self._P, self._S, self._lay, self._cnt)

    def load_state(self, state: DeltaGRUState) -> None:
        """Copy a batch-1 torch :class:`DeltaGRUState` into the kernel (counters are kept)."""
        H = self.hidden_size
        if len(state.layers) != self.num_layers or state.layers[0].h.shape[0] != 1:
            raise ValueError("expected a batch-1 state with one entry per layer")
        for layer, ls in enumerate(state.layers):
            row = self._lay[1 + layer]
            x_hat, h_hat, h, m = (t.detach().cpu().float().numpy()[0] for t in (ls.x_hat, ls.h_hat, ls.h, ls.m))
            self._S[row[_L_XHAT] : row[_L_XHAT] + x_hat.size] = x_hat
            self._S[row[_L_HHAT] : row[_L_HHAT] + H] = h_hat
            self._S[row[_L_H] : row[_L_H] + H] = h
            self._S[row[_L_MX] : row[_L_MX] + 3 * H] = m[: 3 * H]  # M_r | M_z | M_nx
            self._S[row[_L_MH] : row[_L_MH] + 2 * H] = 0
            self._S[row[_L_MH] + 2 * H : row[_L_MH] + 3 * H] = m[3 * H :]  # M_nh

    def step(self, x: np.ndarray) -> np.ndarray:
        """One control step: x float32 [I] → the preallocated output array float32 [O] (overwritten next step)."""
        if x.__class__ is not np.ndarray or x.dtype is not _F32 or x.shape != self._xshape:
            # Slow path (lists, float64, …): copy once into a fixed buffer, so nothing is recompiled.
            a = np.asarray(x, dtype=np.float32)
            if a.shape != self._xshape:
                raise ValueError(f"expected x of shape [{self.input_size}], got {a.shape}")
            self._xbuf[:] = a
            x = self._xbuf
        kernel_step(x, self._P, self._S, self._lay, self._cnt, self._out)
        return self._out

    def buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(P, S, lay, cnt, out)``: the flat arrays :func:`kernel_step` takes after ``x``, for compiled callers that
        fuse the step into their own (they are updated in place; the kernel keeps owning them)."""
        return self._P, self._S, self._lay, self._cnt, self._out

    # --------------------------------------------------------------------------------------- counters
    @property
    def delta_elements(self) -> int:
        """Δx + Δh entries per step over all layers, Σ_l (I_l + H): the denominator of temporal sparsity."""
        return sum(int(self._lay[1 + layer, _L_IN]) + self.hidden_size for layer in range(self.num_layers))

    @property
    def fired_columns(self) -> int:
        """Weight columns fetched in the last step, all layers (x and h)."""
        return int(self._cnt[_C_FIRED])

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the last step: fired columns · 3H + the output layer's H·O."""
        return int(self._cnt[_C_MACS])

    @property
    def dense_macs(self) -> int:
        """MACs of a dense step: Σ_l 3H·(I_l + H) + H·O."""
        cols = sum(int(self._lay[1 + layer, _L_IN]) + self.hidden_size for layer in range(self.num_layers))
        return 3 * self.hidden_size * cols + self.hidden_size * self.output_size

    @property
    def fired_x(self) -> list[int]:
        return [int(self._cnt[_C_LAYER0 + 4 * layer]) for layer in range(self.num_layers)]

    @property
    def fired_h(self) -> list[int]:
        return [int(self._cnt[_C_LAYER0 + 4 * layer + 1]) for layer in range(self.num_layers)]

    @property
    def steps(self) -> int:
        return int(self._cnt[_C_STEPS])

    def sparsity(self) -> float:
        """Fraction of weight columns not fetched since :meth:`reset` (all layers, x and h)."""
        steps = int(self._cnt[_C_STEPS])
        if steps == 0:
            return 0.0
        fired = sum(
            int(self._cnt[_C_LAYER0 + 4 * layer + 2] + self._cnt[_C_LAYER0 + 4 * layer + 3])
            for layer in range(self.num_layers)
        )
        cols = sum(int(self._lay[1 + layer, _L_IN]) + self.hidden_size for layer in range(self.num_layers))
        return 1.0 - fired / (steps * cols)

    def hidden(self, layer: int = -1) -> np.ndarray:
        """A copy of layer ``layer``'s hidden state h."""
        return self.hidden_view(layer).copy()

    def hidden_view(self, layer: int = -1) -> np.ndarray:
        """Layer ``layer``'s hidden state h as a view of the kernel's state: it changes with every step."""
        row = 1 + (layer % self.num_layers)
        start = int(self._lay[row, _L_H])
        return self._S[start : start + self.hidden_size]
