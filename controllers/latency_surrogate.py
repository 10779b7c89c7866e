"""A differentiable surrogate of EdgeDRNN's per-step latency, for latency-aware training (``delta.latency_weight``).

The mean-sparsity penalty of the delta fine-tune (``delta_l1``) lowers the average cost; a hard deadline is about the
worst steps. This module prices every step of a training window with a smooth version of the facts page's cycle model
(``../shared/facts/edgedrnn.md``), so a hinge on the steps over budget can enter the loss.

Surrogate, per layer l and step t (all torch, differentiable):

- fired columns ``n_l(t) = Σ_i σ((|Δin_i(t)| − Θx)/τ) + Σ_j σ((|Δh_j(t−1)| − Θh)/τ)``: a smooth count of the
  changes that reach the threshold. Training passes the changes the hardware thresholds — against the last *fired*
  value, before thresholding (:class:`controllers.deltagru.PreDeltas`, ``DeltaGRU.forward(return_deltas=True)``) —
  so as τ → 0 the count is the exact fired count (a zero change never fires, and with Θ > 0 it counts σ(−Θ/τ) ≈ 0).
  With the step-to-step changes instead (what :class:`controllers.deltagru.DeltaStats` calls the temporal
  change) sub-threshold drifts that add up are missed — an under-count on slow drifts.
  The gradient reaches a change only within a few τ of its threshold.
- MAC phase: the facts-page chain ``f = max(p_k + c_e, f) + B + λ`` is at most ``p_n + c_e + n·(B + λ)`` and
  ``p_n ≤ S − 1``, so ``T_mac ≤ max(S + c_s, S − 1 + c_e + n·(B + λ) + 6)`` — an **upper bound** (by at most
  S − 1 cycles, 2 µs for 2L-128H at 125 MHz): the hinge errs on the safe side. The max is a soft max (temperature
  ``smooth_cycles``).
- ``T_act = 5·(H/K + 1)``; latency = Σ_l (T_mac + T_act) / clock + T_sys.

:func:`latency_hinge` is ``mean(relu(latency − budget)) / budget``. Wired into the delta stages of `legloop train`
(:mod:`experiments.train_stages`): ``loss += delta.latency_weight · latency_hinge(step_latency(...))`` beside
``delta.l1_weight · delta_l1``, over the steps the loss counts, with the stage's own Θx, Θh (the ones it exports).

The cycle-model constants are repeated here from the facts page because controllers/ sits below hil/ on the import
ladder; ``tests/test_latency_surrogate.py`` checks them against :mod:`hil.edgedrnn.kernel`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

K = 8
C_E = (3, 4)  # layer 1, later layers
C_S = (8, 10)
MAC_TAIL = 6
ACT_LOOP = 5


@dataclass(frozen=True)
class CycleGeometry:
    """What the cycle model needs: layers, padded layer-1 input, hidden size, burst latency λ, clock, T_sys."""

    layers: int
    input_padded: int
    hidden: int
    burst_latency: int = 0
    clock_hz: float = 125e6
    t_sys_s: float = 0.0

    def __post_init__(self) -> None:
        if self.hidden % K or self.input_padded % K or self.layers < 1:
            raise ValueError(
                f"need layers >= 1 and hidden, padded input multiples of {K}; got {self.layers}, "
                f"{self.hidden}, {self.input_padded}"
            )
        if not self.clock_hz > 0 or self.burst_latency < 0 or self.t_sys_s < 0:
            raise ValueError("need clock_hz > 0, burst_latency >= 0, t_sys_s >= 0")

    @classmethod
    def of(
        cls,
        num_layers: int,
        input_size: int,
        hidden_size: int,
        clock_hz: float,
        burst_latency: int = 0,
        t_sys_s: float = 0.0,
    ) -> CycleGeometry:
        """The geometry of a network (layer-1 input padded to a multiple of K, as the weight image pads it)."""
        return cls(num_layers, -(-input_size // K) * K, hidden_size, burst_latency, clock_hz, t_sys_s)

    def scan(self, layer: int) -> int:
        """Elements the delta encoder scans in ``layer``: bias, inputs, hidden."""
        return 1 + (self.input_padded if layer == 0 else self.hidden) + self.hidden


def soft_count(change: Tensor, theta: float, tau: float, tau_grad: float = 0.0) -> Tensor:
    """Smooth count over the last axis of entries with |change| ≥ theta (a sigmoid of width ``tau``).

    With ``tau_grad`` > 0 the value is the same but the gradient is that of a sigmoid of width ``tau_grad``
    (straight-through): a narrow ``tau`` keeps the count near-exact (a wide one counts sub-threshold changes as
    fractions of a column), a wide ``tau_grad`` lets the gradient reach changes far above the threshold, which a
    narrow sigmoid is flat for — a burst's biggest changes."""
    if not tau > 0 or tau_grad < 0:
        raise ValueError(f"tau must be > 0 and tau_grad >= 0, got {tau}, {tau_grad}")
    n = torch.sigmoid((change.abs() - theta) / tau).sum(dim=-1)
    if tau_grad == 0.0 or tau_grad == tau:
        return n
    wide = torch.sigmoid((change.abs() - theta) / tau_grad).sum(dim=-1)
    return n.detach() + (wide - wide.detach())


def layer_cycles(n: Tensor, geometry: CycleGeometry, layer: int, smooth_cycles: float = 8.0) -> Tensor:
    """Upper-bound surrogate of one layer's T_mac + T_act for (smooth) fired-column counts ``n`` (any shape)."""
    g = geometry
    beats = 3 * g.hidden // K
    s = g.scan(layer)
    c_e, c_s = C_E[min(layer, 1)], C_S[min(layer, 1)]
    chain = (s - 1 + c_e + MAC_TAIL) + n * (beats + g.burst_latency)
    floor = torch.full_like(chain, float(s + c_s))
    mac = smooth_cycles * torch.logaddexp(chain / smooth_cycles, floor / smooth_cycles)
    return mac + ACT_LOOP * (g.hidden // K + 1)


def step_latency(
    input_changes: list[Tensor],
    hidden_changes: list[Tensor],
    theta_x: float,
    theta_h: float,
    geometry: CycleGeometry,
    *,
    tau: float = 0.01,
    smooth_cycles: float = 8.0,
    tau_grad: float = 0.0,
) -> Tensor:
    """Surrogate latency (s) of every step: per layer the input changes [..., I_l] and the previous step's hidden
    changes [..., H] in the network's (normalised) units, with thresholds in the same units."""
    if len(input_changes) != geometry.layers or len(hidden_changes) != geometry.layers:
        raise ValueError(f"need one input and one hidden change tensor per layer ({geometry.layers})")
    total: Tensor | None = None
    for layer, (dx, dh) in enumerate(zip(input_changes, hidden_changes, strict=True)):
        n = soft_count(dx, theta_x, tau, tau_grad) + soft_count(dh, theta_h, tau, tau_grad)
        c = layer_cycles(n, geometry, layer, smooth_cycles)
        total = c if total is None else total + c
    assert total is not None
    return total / geometry.clock_hz + geometry.t_sys_s


def latency_hinge(latency_s: Tensor, budget_s: float) -> Tensor:
    """Mean over steps of how far each is over the budget, in budgets (0 when every step fits)."""
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s}")
    return torch.relu(latency_s - budget_s).mean() / budget_s
