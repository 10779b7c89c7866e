"""Straight-through fake quantisers: the accelerator's fixed-point grids inside torch, for quantisation-aware training.

Quantisation-aware training rounds the forward values onto the EdgeDRNN formats (Q8.8 activations, Q1.7 weights and
biases, 1/16 steps of the σ/tanh tables; all defined in :mod:`controllers.fixedpoint`) and passes the gradient
through unchanged (straight-through estimator, also in saturation), so the float model learns weights that survive
export. Every function here takes and returns float tensors on the grid; the integer codes of export and of the
accelerator model are :func:`controllers.fixedpoint.q88_codes` / :func:`~controllers.fixedpoint.q17_codes`.
Rounding is round-half-to-even (``torch.round``), as ``np.rint`` and the RTL's ``rhe``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from controllers.fixedpoint import (
    ACT_LUT_SCALE,
    LUT_LEVELS,
    Q17_MAX,
    Q17_MIN,
    Q17_SCALE,
    Q88_MAX,
    Q88_MIN,
    Q88_SCALE,
)


class _FakeQuant(torch.autograd.Function):
    """Round to ``scale`` steps and saturate to [qmin, qmax]·scale; the gradient is the identity."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float, qmin: int, qmax: int) -> Tensor:
        # Scales are powers of two, so x / scale and the product back are exact in floating point.
        return torch.clamp(torch.round(x / scale), qmin, qmax) * scale

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return grad, None, None, None


def fake_quant(x: Tensor, scale: float, qmin: int, qmax: int) -> Tensor:
    """Straight-through fake quantisation onto ``k·scale`` for integers k in [qmin, qmax]."""
    return _FakeQuant.apply(x, scale, qmin, qmax)


def fake_quant_q88(x: Tensor) -> Tensor:
    """Q8.8 fake quantisation: 1/256 steps, saturating to [-128, 127.99609375]; identity gradient."""
    return _FakeQuant.apply(x, Q88_SCALE, Q88_MIN, Q88_MAX)


def fake_quant_q17(w: Tensor) -> Tensor:
    """Q1.7 fake quantisation: 1/128 steps, saturating to [-1, 127/128]; identity gradient."""
    return _FakeQuant.apply(w, Q17_SCALE, Q17_MIN, Q17_MAX)


def fake_quant_lut(a: Tensor) -> Tensor:
    """Round a sigmoid/tanh output to the accelerator's table resolution (1/16); identity gradient."""
    return _FakeQuant.apply(a, ACT_LUT_SCALE, -LUT_LEVELS, LUT_LEVELS)
