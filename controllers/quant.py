"""Fixed-point formats of the EdgeDRNN accelerator, as straight-through fake quantisers for training.

The accelerator (``../shared/facts/edgedrnn.md``) computes with Q8.8 activations (signed 16-bit, 1/256 steps,
range [-128, 127.99609375]) and Q1.7 weights and biases (signed 8-bit, 1/128 steps, range [-1, 0.9921875]).
Quantisation-aware training rounds the forward values onto those grids and passes the gradient through unchanged
(straight-through estimator, also in saturation), so the float model learns weights that survive export.

Torch side: ``quantize_q88``, ``quantize_q17`` and the general ``fake_quantize``. Numpy side (export): ``to_q88_int``,
``to_q17_int`` return the integer codes, ``from_q88_int`` / ``from_q17_int`` map them back. Rounding is
round-half-to-even everywhere (``torch.round`` and ``np.rint`` both do that), matching the RTL's ``rhe``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

Q88_SCALE = 1.0 / 256.0
Q88_MIN, Q88_MAX = -32768, 32767
Q17_SCALE = 1.0 / 128.0
Q17_MIN, Q17_MAX = -128, 127
# The accelerator's sigmoid/tanh tables output multiples of 1/16 (16 LSB of Q8.8).
ACT_LUT_SCALE = 1.0 / 16.0


class _FakeQuant(torch.autograd.Function):
    """Round to ``scale`` steps and saturate to [qmin, qmax]·scale; the gradient is the identity."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float, qmin: int, qmax: int) -> Tensor:
        # Scales are powers of two, so x / scale and the product back are exact in floating point.
        return torch.clamp(torch.round(x / scale), qmin, qmax) * scale

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return grad, None, None, None


def fake_quantize(x: Tensor, scale: float, qmin: int, qmax: int) -> Tensor:
    """Straight-through fake quantisation onto ``k·scale`` for integers k in [qmin, qmax]."""
    return _FakeQuant.apply(x, scale, qmin, qmax)


def quantize_q88(x: Tensor) -> Tensor:
    """Q8.8 fake quantisation: 1/256 steps, saturating to [-128, 127.99609375]; identity gradient."""
    return _FakeQuant.apply(x, Q88_SCALE, Q88_MIN, Q88_MAX)


def quantize_q17(w: Tensor) -> Tensor:
    """Q1.7 fake quantisation: 1/128 steps, saturating to [-1, 127/128]; identity gradient."""
    return _FakeQuant.apply(w, Q17_SCALE, Q17_MIN, Q17_MAX)


def quantize_lut(a: Tensor) -> Tensor:
    """Round a sigmoid/tanh output to the accelerator's table resolution (1/16); identity gradient."""
    return _FakeQuant.apply(a, ACT_LUT_SCALE, -16, 16)


def to_q88_int(x: np.ndarray | float) -> np.ndarray:
    """Q8.8 integer codes (int16) of ``x``: round half to even, saturate to the int16 range."""
    v = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
    return np.clip(v, Q88_MIN, Q88_MAX).astype(np.int16)


def to_q17_int(w: np.ndarray | float) -> np.ndarray:
    """Q1.7 integer codes (int8) of ``w``: round half to even, saturate to [-128, 127]."""
    v = np.rint(np.asarray(w, dtype=np.float64) * 128.0)
    return np.clip(v, Q17_MIN, Q17_MAX).astype(np.int8)


def from_q88_int(q: np.ndarray) -> np.ndarray:
    """Float32 values of Q8.8 integer codes."""
    return np.asarray(q, dtype=np.float32) * np.float32(Q88_SCALE)


def from_q17_int(q: np.ndarray) -> np.ndarray:
    """Float32 values of Q1.7 integer codes."""
    return np.asarray(q, dtype=np.float32) * np.float32(Q17_SCALE)
