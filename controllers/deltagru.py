"""Delta-GRU in torch with the EdgeDRNN accelerator's equations, for training and as the reference for export.

Per layer and time step (``../shared/facts/edgedrnn.md``)::

    Δx = x_t − x̂      where |x_t − x̂| ≥ Θx (and ≠ 0), else 0;   x̂ ← x_t where it fired
    Δh = h_{t−1} − ĥ  where |h_{t−1} − ĥ| ≥ Θh (and ≠ 0), else 0; ĥ ← h_{t−1} where it fired
    M_r += W_xr Δx + W_hr Δh    M_z += W_xz Δx + W_hz Δh    M_nx += W_xn Δx    M_nh += W_hn Δh
    r = σ(M_r), z = σ(M_z), n = tanh(M_nx + r ⊙ M_nh), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

with M initialised at reset to (b_ir + b_hr, b_iz + b_hz, b_in, b_hn). With Θx = Θh = 0 this is ``nn.GRU``.
The hardware has no b_hn: ``bhn_zero=True`` (default) keeps it at 0. Layer l > 0 takes layer l−1's new h as x.

Gradients: the firing mask is a constant (a comparison), the Δ values carry the gradient, so training sees the
delta network exactly as it runs. ``qat=True`` adds straight-through fake quantisation: Q1.7 weights and summed
biases, Q8.8 inputs, pre-activations and h, and sigmoid/tanh outputs on the accelerator's 1/16 table grid.

Parameter names follow ``nn.GRU`` (``weight_ih_l0`` …) plus ``fc.weight`` / ``fc.bias`` for the Linear output
layer; persistence is ``state_dict`` plus :meth:`DeltaGRU.config` (constructor arguments, JSON-able).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from controllers.fixedpoint import MAX_LAYERS, K
from controllers.quant import fake_quant_lut, fake_quant_q17, fake_quant_q88

HIDDEN_SIZES = tuple(range(16, 257, K))  # multiples of the accelerator's K PEs; the torch model stops at 256


@dataclass
class LayerState:
    """Delta state of one layer for a batch: memories, hidden state and the four accumulators."""

    x_hat: Tensor  # [B, I_l] last fired input values
    h_hat: Tensor  # [B, H]   last fired hidden values
    h: Tensor  # [B, H]   hidden state h_{t-1}
    m: Tensor  # [B, 4H]  M_r | M_z | M_nx | M_nh

    def detach(self) -> LayerState:
        return LayerState(self.x_hat.detach(), self.h_hat.detach(), self.h.detach(), self.m.detach())


@dataclass
class DeltaGRUState:
    """Full streaming state of a :class:`DeltaGRU`: one :class:`LayerState` per layer."""

    layers: tuple[LayerState, ...]

    def detach(self) -> DeltaGRUState:
        """Cut the graph (truncated BPTT between windows)."""
        return DeltaGRUState(tuple(s.detach() for s in self.layers))

    @property
    def h(self) -> Tensor:
        """Hidden states stacked like ``nn.GRU``'s h_n: [num_layers, B, H]."""
        return torch.stack([s.h for s in self.layers])


@dataclass
class DeltaStats:
    """Sparsity counters of one forward/step call (averaged over batch and time)."""

    dx_sparsity: list[float]  # per layer: fraction of zero Δx entries
    dh_sparsity: list[float]  # per layer: fraction of zero Δh entries
    fired_cols: list[float]  # per layer: mean fired weight columns (x and h) per step and sequence
    total_cols: list[int]  # per layer: columns a dense step touches (I_l + H)
    macs_per_step: float  # mean MACs per step: fired columns · 3H over layers + the dense output layer
    dense_macs_per_step: int
    # Mean |h_t − h_{t−1}| over layers, steps, batch and units; carries gradient (the sparsity penalty). It is the
    # temporal change that both a layer's Δh and the next layer's Δx are cut from: in a stacked delta-GRU most
    # fired columns are the next layer's Δx, so penalising only the thresholded Δh would miss them.
    delta_l1: Tensor

    @property
    def sparsity(self) -> float:
        """Overall temporal sparsity: fraction of weight columns not fetched (all layers, x and h)."""
        return 1.0 - sum(self.fired_cols) / sum(self.total_cols)


@dataclass
class PreDeltas:
    """What each layer's thresholds were compared against in one forward call, before thresholding, with gradient:
    the input changes x_t − x̂ [B, T, I_l] and the hidden changes h_{t−1} − ĥ [B, T, H] (x̂, ĥ the last fired
    values). An entry fires (fetches a weight column) where it is ≠ 0 and |·| ≥ Θ, so these price a step's latency
    exactly (:mod:`controllers.latency_surrogate`)."""

    x: list[Tensor]
    h: list[Tensor]


@dataclass
class LayerParams:
    """Effective parameters of one layer as the delta equations use them (quantised when ``qat``)."""

    w_ih: Tensor  # [3H, I_l], rows r | z | n
    w_hh: Tensor  # [3H, H]
    m_init: Tensor  # [4H]: b_ir + b_hr | b_iz + b_hz | b_in | b_hn


def _check_sizes(input_size: int, hidden_size: int, num_layers: int, output_size: int) -> None:
    if not isinstance(hidden_size, int) or hidden_size not in HIDDEN_SIZES:
        raise ValueError(
            f"hidden_size must be a multiple of 8 from 16 to 256 (16, 24, 32, …, 248, 256); got {hidden_size!r}"
        )
    if not isinstance(num_layers, int) or not 1 <= num_layers <= MAX_LAYERS:
        raise ValueError(f"num_layers must be 1, 2, 3 or 4; got {num_layers!r}")
    for name, v in (("input_size", input_size), ("output_size", output_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")


def _fire(d: Tensor, theta: float) -> Tensor:
    """Mask of deltas that fire: inclusive threshold, and never a zero change (it fetches nothing)."""
    return (d != 0) & (d.abs() >= theta)


class DeltaGRU(nn.Module):
    """Multi-layer delta-GRU with a Linear output layer; batch-first sequences [B, T, I] → [B, T, O]."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        output_size: int = 2,
        theta_x: float = 0.0,
        theta_h: float = 0.0,
        bhn_zero: bool = True,
        qat: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, num_layers, output_size)
        if not (theta_x >= 0 and theta_h >= 0):
            raise ValueError(f"thresholds must be >= 0; got theta_x={theta_x!r}, theta_h={theta_h!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.output_size = output_size
        self.theta_x = float(theta_x)
        self.theta_h = float(theta_h)
        self.bhn_zero = bool(bhn_zero)
        self.qat = bool(qat)
        H = hidden_size
        for layer in range(num_layers):
            i_l = input_size if layer == 0 else H
            setattr(self, f"weight_ih_l{layer}", nn.Parameter(torch.empty(3 * H, i_l)))
            setattr(self, f"weight_hh_l{layer}", nn.Parameter(torch.empty(3 * H, H)))
            setattr(self, f"bias_ih_l{layer}", nn.Parameter(torch.empty(3 * H)))
            setattr(self, f"bias_hh_l{layer}", nn.Parameter(torch.empty(3 * H)))
        self.fc = nn.Linear(H, output_size)
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------------- set-up
    def reset_parameters(self) -> None:
        """``nn.GRU``'s initialisation (uniform ±1/√H) for the recurrent part; b_hn = 0 when ``bhn_zero``."""
        k = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for layer in range(self.num_layers):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    nn.init.uniform_(getattr(self, f"{name}_l{layer}"), -k, k)
                if self.bhn_zero:
                    getattr(self, f"bias_hh_l{layer}")[2 * self.hidden_size :].zero_()
        self.fc.reset_parameters()

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able): ``DeltaGRU(**m.config())`` rebuilds the architecture."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "output_size": self.output_size,
            "theta_x": self.theta_x,
            "theta_h": self.theta_h,
            "bhn_zero": self.bhn_zero,
            "qat": self.qat,
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.hidden_size

    @property
    def dense_macs_per_step(self) -> int:
        """Multiply-accumulates of one dense step: Σ_l 3H·(I_l + H) plus the output layer H·O."""
        H = self.hidden_size
        rec = sum(3 * H * (self.layer_input_size(layer) + H) for layer in range(self.num_layers))
        return rec + H * self.output_size

    # ------------------------------------------------------------------------------------ effective params
    def layer_params(self, layer: int) -> LayerParams:
        """The weights the equations use for ``layer``: Q1.7-quantised under ``qat``, b_hn = 0 if ``bhn_zero``.

        The accelerator stores the summed biases b_ir + b_hr and b_iz + b_hz in one column, so those sums (not
        the separate terms) are what gets quantised.
        """
        H = self.hidden_size
        w_ih = getattr(self, f"weight_ih_l{layer}")
        w_hh = getattr(self, f"weight_hh_l{layer}")
        b_ih = getattr(self, f"bias_ih_l{layer}")
        b_hh = getattr(self, f"bias_hh_l{layer}")
        b_hn = torch.zeros_like(b_hh[2 * H :]) if self.bhn_zero else b_hh[2 * H :]
        m_init = torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :], b_hn])
        if self.qat:
            w_ih, w_hh, m_init = fake_quant_q17(w_ih), fake_quant_q17(w_hh), fake_quant_q17(m_init)
        return LayerParams(w_ih, w_hh, m_init)

    def output_params(self) -> tuple[Tensor, Tensor]:
        """Output layer (weight [O, H], bias [O]), Q1.7-quantised under ``qat``."""
        if self.qat:
            return fake_quant_q17(self.fc.weight), fake_quant_q17(self.fc.bias)
        return self.fc.weight, self.fc.bias

    # ------------------------------------------------------------------------------------------ state
    def reset_state(self, batch: int = 1) -> DeltaGRUState:
        """Fresh state: x̂ = ĥ = h = 0 and the accumulators holding the biases (the bias column's one fetch)."""
        ref = self.fc.weight
        layers = []
        for layer in range(self.num_layers):
            m0 = self.layer_params(layer).m_init
            layers.append(
                LayerState(
                    x_hat=ref.new_zeros(batch, self.layer_input_size(layer)),
                    h_hat=ref.new_zeros(batch, self.hidden_size),
                    h=ref.new_zeros(batch, self.hidden_size),
                    m=m0.unsqueeze(0).expand(batch, -1).clone(),
                )
            )
        return DeltaGRUState(tuple(layers))

    def state_from_h0(self, h0: Tensor) -> DeltaGRUState:
        """State equivalent to ``nn.GRU`` started from h0 [num_layers, B, H] (ĥ = 0, so h0 fires at t = 0)."""
        state = self.reset_state(h0.shape[1])
        return DeltaGRUState(tuple(LayerState(s.x_hat, s.h_hat, h0[i], s.m) for i, s in enumerate(state.layers)))

    # --------------------------------------------------------------------------------------- the cell
    def _gates(self, m_rz: Tensor, m_nx: Tensor, m_nh: Tensor, h: Tensor) -> Tensor:
        """New h from the accumulators (shared by forward and step so they compute alike)."""
        if self.qat:
            m_rz, m_nh = fake_quant_q88(m_rz), fake_quant_q88(m_nh)
            rz = fake_quant_lut(torch.sigmoid(m_rz))
        else:
            rz = torch.sigmoid(m_rz)
        r, z = rz.chunk(2, dim=-1)
        pre_n = m_nx + r * m_nh
        if self.qat:
            n = fake_quant_lut(torch.tanh(fake_quant_q88(pre_n)))
            return fake_quant_q88(n + z * (h - n))
        n = torch.tanh(pre_n)
        return n + z * (h - n)

    def forward(
        self,
        x: Tensor,
        state: DeltaGRUState | None = None,
        *,
        return_state: bool = False,
        return_stats: bool = False,
        return_hidden: bool = False,
        return_deltas: bool = False,
    ) -> Tensor | tuple[Any, ...]:
        """Run sequences x [B, T, I] from ``state`` (fresh if None) → y [B, T, O].

        Returns ``y``; with ``return_state`` / ``return_stats`` / ``return_hidden`` / ``return_deltas`` a tuple
        ``(y, state?, stats?, hidden?, deltas?)`` in that order, ``hidden`` the top layer's h [B, T, H] that the
        output layer reads (what a training-only auxiliary head reads too), ``deltas`` the per-layer changes before
        thresholding (:class:`PreDeltas`, what latency-aware training prices; collected only when asked).
        Layers run one after the other over the whole window (like cuDNN), so the input-side products of a layer
        are one batched matmul; only the hidden-side product is in the per-step loop.
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected x of shape [B, T, {self.input_size}], got {tuple(x.shape)}")
        B, T, _ = x.shape
        if state is None:
            state = self.reset_state(B)
        H = self.hidden_size
        inp = fake_quant_q88(x) if self.qat else x
        new_layers: list[LayerState] = []
        dx_list: list[Tensor] = []
        dh_list: list[Tensor] = []
        change_list: list[Tensor] = []
        pre_x: list[Tensor] = []
        pre_h: list[Tensor] = []
        for layer in range(self.num_layers):
            p = self.layer_params(layer)
            st = state.layers[layer]
            # Input deltas depend only on the input sequence: scan them first, then one matmul for all steps.
            if self.theta_x == 0.0:
                dx = torch.diff(inp, dim=1, prepend=st.x_hat.unsqueeze(1))
                x_hat = inp[:, -1]
                if return_deltas:
                    pre_x.append(dx)
            else:
                x_hat = st.x_hat
                steps = []
                pre_steps: list[Tensor] = []
                for t in range(T):
                    x_t = inp[:, t]
                    d = x_t - x_hat
                    if return_deltas:
                        pre_steps.append(d)
                    fire = _fire(d, self.theta_x)
                    d = d * fire
                    # Assign (not add) so x̂ equals the fired value exactly, as in hardware and the kernel.
                    x_hat = torch.where(fire, x_t, x_hat)
                    steps.append(d)
                dx = torch.stack(steps, dim=1)
                if return_deltas:
                    pre_x.append(torch.stack(pre_steps, dim=1))
            # Input-side accumulators over the window: M_x(t) = M_x(0) + Σ_{s≤t} W_x Δx_s.
            m = st.m
            mx = torch.cumsum(dx @ p.w_ih.T, dim=1) + m[:, : 3 * H].unsqueeze(1)
            mx_rz, mx_n = mx[..., : 2 * H].unbind(1), mx[..., 2 * H :].unbind(1)
            # Hidden-side accumulators carried in the loop (r, z and n parts of W_hh Δh).
            mh = torch.cat([torch.zeros_like(m[:, : 2 * H]), m[:, 3 * H :]], dim=1)
            w_hh_t = p.w_hh.T
            h, h_hat = st.h, st.h_hat
            hs, dhs = [], []
            pre_hs: list[Tensor] = []
            for t in range(T):
                d = h - h_hat
                if return_deltas:
                    pre_hs.append(d)
                if self.theta_h != 0.0:
                    fire = _fire(d, self.theta_h)
                    d = d * fire
                    h_hat = torch.where(fire, h, h_hat)
                else:
                    h_hat = h
                mh = torch.addmm(mh, d, w_hh_t)
                h = self._gates(mx_rz[t] + mh[:, : 2 * H], mx_n[t], mh[:, 2 * H :], h)
                hs.append(h)
                dhs.append(d)
            m_new = torch.cat([mx_rz[-1] + mh[:, : 2 * H], mx_n[-1], mh[:, 2 * H :]], dim=1)
            new_layers.append(LayerState(x_hat, h_hat, h, m_new))
            seq = torch.stack(hs, dim=1)
            if return_deltas:
                pre_h.append(torch.stack(pre_hs, dim=1))
            if return_stats:
                dx_list.append(dx)
                dh_list.append(torch.stack(dhs, dim=1))
                change_list.append(torch.diff(seq, dim=1, prepend=st.h.unsqueeze(1)))
            inp = seq
        w_fc, b_fc = self.output_params()
        y = torch.nn.functional.linear(inp, w_fc, b_fc)
        out: tuple[Any, ...] = (y,)
        if return_state:
            out += (DeltaGRUState(tuple(new_layers)),)
        if return_stats:
            out += (self._stats(dx_list, dh_list, change_list),)
        if return_hidden:
            out += (inp,)
        if return_deltas:
            out += (PreDeltas(pre_x, pre_h),)
        return out[0] if len(out) == 1 else out

    def step(self, x: Tensor, state: DeltaGRUState | None = None, *, return_stats: bool = False) -> tuple[Any, ...]:
        """One streaming step: x [I] or [B, I] → ``(y, state)`` (y [O] or [B, O]), ``+ (stats,)`` if asked.

        Follows the equations literally (accumulators updated in place of recomputation), as the kernel does.
        """
        single = x.dim() == 1
        xb = x.unsqueeze(0) if single else x
        if xb.dim() != 2 or xb.shape[-1] != self.input_size:
            raise ValueError(f"expected x of shape [{self.input_size}] or [B, {self.input_size}], got {tuple(x.shape)}")
        if state is None:
            state = self.reset_state(xb.shape[0])
        H = self.hidden_size
        inp = fake_quant_q88(xb) if self.qat else xb
        new_layers, dx_list, dh_list, change_list = [], [], [], []
        for layer in range(self.num_layers):
            p = self.layer_params(layer)
            st = state.layers[layer]
            dx = inp - st.x_hat
            fire_x = _fire(dx, self.theta_x)
            dx = dx * fire_x
            dh = st.h - st.h_hat
            fire_h = _fire(dh, self.theta_h)
            dh = dh * fire_h
            gx = dx @ p.w_ih.T
            gh = dh @ p.w_hh.T
            m = st.m + torch.cat([gx[:, : 2 * H] + gh[:, : 2 * H], gx[:, 2 * H :], gh[:, 2 * H :]], dim=1)
            h = self._gates(m[:, : 2 * H], m[:, 2 * H : 3 * H], m[:, 3 * H :], st.h)
            x_hat = torch.where(fire_x, inp, st.x_hat)
            h_hat = torch.where(fire_h, st.h, st.h_hat)
            new_layers.append(LayerState(x_hat, h_hat, h, m))
            dx_list.append(dx.unsqueeze(1))
            dh_list.append(dh.unsqueeze(1))
            change_list.append((h - st.h).unsqueeze(1))
            inp = h
        w_fc, b_fc = self.output_params()
        y = torch.nn.functional.linear(inp, w_fc, b_fc)
        if single:
            y = y.squeeze(0)
        out: tuple[Any, ...] = (y, DeltaGRUState(tuple(new_layers)))
        if return_stats:
            out += (self._stats(dx_list, dh_list, change_list),)
        return out

    def _stats(self, dx_list: list[Tensor], dh_list: list[Tensor], change_list: list[Tensor]) -> DeltaStats:
        """Counters from the per-layer deltas [B, T, ·] and hidden-state changes h_t − h_{t−1} of one call."""
        H = self.hidden_size
        dxs, dhs, fired, total = [], [], [], []
        with torch.no_grad():
            for dx, dh in zip(dx_list, dh_list, strict=True):
                nx = (dx != 0).sum(-1).double().mean().item()
                nh = (dh != 0).sum(-1).double().mean().item()
                dxs.append(1.0 - nx / dx.shape[-1])
                dhs.append(1.0 - nh / H)
                fired.append(nx + nh)
                total.append(dx.shape[-1] + H)
        macs = 3 * H * sum(fired) + H * self.output_size
        delta_l1 = torch.cat([c.abs().flatten() for c in change_list]).mean()
        return DeltaStats(dxs, dhs, fired, total, macs, self.dense_macs_per_step, delta_l1)

    # ---------------------------------------------------------------------------------- conversions
    @classmethod
    def from_gru(
        cls,
        gru: nn.GRU,
        fc: nn.Linear,
        *,
        theta_x: float = 0.0,
        theta_h: float = 0.0,
        bhn_zero: bool | None = None,
        qat: bool = False,
    ) -> DeltaGRU:
        """A DeltaGRU with the weights of ``gru`` (+ output layer ``fc``).

        ``bhn_zero=None`` keeps b_hn unless it is all zero. ``bhn_zero=True`` with a non-zero b_hn drops it
        (the accelerator has none) and warns, since the network then computes something different.
        """
        # mypy picks getattr's `default: bool` overload from the bool operands before it: a false alarm.
        if gru.bidirectional or not gru.bias or getattr(gru, "proj_size", 0):  # type: ignore[arg-type]
            raise ValueError("from_gru needs a unidirectional nn.GRU with biases and no projection")
        if fc.in_features != gru.hidden_size:
            raise ValueError(f"fc.in_features ({fc.in_features}) must equal gru.hidden_size ({gru.hidden_size})")
        H = gru.hidden_size
        b_hn_max = max(
            getattr(gru, f"bias_hh_l{i}")[2 * H :].detach().abs().max().item() for i in range(gru.num_layers)
        )
        if bhn_zero is None:
            bhn_zero = b_hn_max == 0.0
        elif bhn_zero and b_hn_max > 0.0:
            warnings.warn(
                f"from_gru(bhn_zero=True) drops a non-zero b_hn (max |b_hn| = {b_hn_max:.3g}): "
                "the delta-GRU will not reproduce the GRU exactly",
                stacklevel=2,
            )
        m = cls(
            gru.input_size,
            H,
            gru.num_layers,
            fc.out_features,
            theta_x=theta_x,
            theta_h=theta_h,
            bhn_zero=bhn_zero,
            qat=qat,
        ).to(fc.weight.dtype)
        with torch.no_grad():
            for i in range(gru.num_layers):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(m, f"{name}_l{i}").copy_(getattr(gru, f"{name}_l{i}"))
                if bhn_zero:
                    getattr(m, f"bias_hh_l{i}")[2 * H :].zero_()
            m.fc.load_state_dict(fc.state_dict())
        return m

    def to_gru(self) -> tuple[nn.GRU, nn.Linear]:
        """An equivalent ``nn.GRU`` (batch_first) + ``nn.Linear`` with the effective weights (Θ = 0 behaviour).

        Without ``qat`` the parameters are copied (b_hn = 0 if ``bhn_zero``). With ``qat`` the Q1.7 weights and
        summed biases are exported (b_ir holds b_ir + b_hr, b_hr = 0, …); activation rounding is not part of a GRU.
        """
        H = self.hidden_size
        gru = nn.GRU(self.input_size, H, self.num_layers, batch_first=True).to(self.fc.weight.dtype)
        fc = nn.Linear(H, self.output_size).to(self.fc.weight.dtype)
        with torch.no_grad():
            for i in range(self.num_layers):
                if self.qat:
                    p = self.layer_params(i)
                    getattr(gru, f"weight_ih_l{i}").copy_(p.w_ih)
                    getattr(gru, f"weight_hh_l{i}").copy_(p.w_hh)
                    getattr(gru, f"bias_ih_l{i}").copy_(p.m_init[: 3 * H])
                    b_hh = torch.zeros(3 * H, dtype=p.m_init.dtype)
                    b_hh[2 * H :] = p.m_init[3 * H :]
                    getattr(gru, f"bias_hh_l{i}").copy_(b_hh)
                else:
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(gru, f"{name}_l{i}").copy_(getattr(self, f"{name}_l{i}"))
                    if self.bhn_zero:
                        getattr(gru, f"bias_hh_l{i}")[2 * H :].zero_()
            w, b = self.output_params()
            fc.weight.copy_(w)
            fc.bias.copy_(b)
        return gru, fc
