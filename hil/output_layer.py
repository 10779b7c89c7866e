"""The EdgeDRNN system's output layer as the board's ARM core computes it, compiled: integer only, one call per step.

``acc_o = wrap32(bias_o + Σ_k w_out[o, k] · h[k])`` with int8 Q1.7 weights, int16 Q8.8 h and an int32 bias in the
MAC's 2^-15 units — the same arithmetic as the output layer of ``hil.edgedrnn.kernel.backend_kernel``, without the
float scaling (the host does that). The sum is exact in int64 and wrapped to int32 once, which equals wrapping
after every add (two's-complement addition is a ring homomorphism mod 2^32).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def output_layer(w_out: np.ndarray, h: np.ndarray, bias: np.ndarray, out: np.ndarray) -> bool:
    """``w_out`` int8 [O, H], ``h`` int16 [H], ``bias`` int64 [O] → ``out`` int32 [O]; True if any sum wrapped."""
    wrapped = False
    for o in range(w_out.shape[0]):
        s = bias[o]
        for k in range(h.shape[0]):
            s += np.int64(w_out[o, k]) * np.int64(h[k])
        w = ((s + 2147483648) & 0xFFFFFFFF) - 2147483648
        out[o] = w
        if w != s:
            wrapped = True
    return wrapped
