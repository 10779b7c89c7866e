"""The EdgeDRNN accelerator's number formats and constants: defined here once, for every layer of the ladder.

The torch fake quantisers (:mod:`controllers.quant`), export (:mod:`firmware_bridge.export`), the weight image and
bundle, the bit-exact model and its kernel (:mod:`hil.edgedrnn`) and training all take their formats, ranges and
accelerator constants from this module, which sits at the bottom of the ladder (numpy only, no torch).

Formats (``../shared/facts/edgedrnn.md``)
-----------------------------------------
=====================  ============  ========================================================================
what                   container     format
=====================  ============  ========================================================================
activations x, h, Δ    int16         Q8.8: steps of 1/256, range [-128, 127.99609375]
weights and biases     int8          Q1.7: steps of 1/128, range [-1, 127/128]
accumulators M_*       24 bits       units of 2^-15 (a Q8.8 × Q1.7 product); the ARM core's output MAC is an
                                     int32 in the same units
σ / tanh outputs       int16         multiples of 16 LSB (1/16) in the Q8.8 container, from the SIG / TANH tables
Θx, Θh                 10-bit reg.   Q8.8 LSB, 0..511
=====================  ============  ========================================================================

Rounding is round-half-to-even everywhere (``np.rint`` for floats, :func:`rhe` for integer shifts), as the RTL's
``rhe``. Names say what they return: ``q88_codes`` / ``q17_codes`` give integer codes, ``q88_values`` /
``q17_values`` the float values of codes. The numba kernel (:mod:`hil.edgedrnn.kernel`) keeps its own scalar copies
of ``rhe`` and the wraps next to it so it compiles alone; the conformance tests pin both to the RTL's dumps.
"""

from __future__ import annotations

import numpy as np

# ------------------------------------------------------------------------------------------------- formats
Q88_FRAC_BITS = 8
Q88_ONE = 1 << Q88_FRAC_BITS  # 1.0 in Q8.8
Q88_SCALE = 1.0 / Q88_ONE
Q88_MIN, Q88_MAX = -(1 << 15), (1 << 15) - 1  # the int16 container

Q17_FRAC_BITS = 7
Q17_ONE = 1 << Q17_FRAC_BITS  # 1.0 in Q1.7 (not representable: Q1.7 tops out at 127/128)
Q17_SCALE = 1.0 / Q17_ONE
Q17_MIN, Q17_MAX = -(1 << 7), (1 << 7) - 1  # the int8 container
Q17_MIN_VALUE = Q17_MIN * Q17_SCALE  # -1.0
Q17_MAX_VALUE = Q17_MAX * Q17_SCALE  # 127/128

ACC_BITS = 24
ACC_FRAC_BITS = Q88_FRAC_BITS + Q17_FRAC_BITS  # 15: the units of a Q8.8 × Q1.7 product
ACC_ONE = 1 << ACC_FRAC_BITS  # 1.0 in accumulator units (2^15)

# --------------------------------------------------------------------------------------- σ / tanh tables
LUT_STEP = 16  # the tables output multiples of 16 LSB of Q8.8 ...
LUT_LEVELS = Q88_ONE // LUT_STEP  # ... i.e. k/16 for integers |k| <= 16
ACT_LUT_SCALE = LUT_STEP / Q88_ONE  # 1/16
SIG_SAT = 879  # SIG(p) = 256 for p > 879, 0 for p < -879
TANH_SAT = 530  # TANH(p) = ±256 for |p| > 530

# ----------------------------------------------------------------------------------------------- thresholds
THETA_BITS = 10  # Θ lives in a 10-bit signed register ...
THETA_MAX = (1 << (THETA_BITS - 1)) - 1  # ... and is not negative: 0..511 Q8.8 LSB
THETA_MAX_VALUE = THETA_MAX / Q88_ONE  # the largest Θ in normalised float units, 511/256

# ---------------------------------------------------------------------------------------- accelerator geometry
K = 8  # processing elements: padding granule of the layer-1 input and of H
MAX_LAYERS = 4
MAX_HIDDEN = 1024


# ------------------------------------------------------------------------------------------- integer arithmetic
def rhe(v: int, s: int) -> int:
    """Round-half-to-even of ``v / 2**s`` for a Python int ``v`` and shift ``s >= 1``."""
    q = v >> s  # floor division, also for negative v
    rem = v - (q << s)
    half = 1 << (s - 1)
    if rem > half or (rem == half and (q & 1)):
        q += 1
    return q


def rhe_array(v: np.ndarray, s: int) -> np.ndarray:
    """Vectorised :func:`rhe` on an integer array (returns int64)."""
    v = np.asarray(v, dtype=np.int64)
    q = v >> s
    rem = v - (q << s)
    half = 1 << (s - 1)
    return q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))


def wrap(v: int, bits: int) -> int:
    """Two's-complement wrap of ``v`` to ``bits`` bits (what the RTL's registers do)."""
    m = 1 << bits
    return ((v + (m >> 1)) & (m - 1)) - (m >> 1)


def saturate(v: int, bits: int) -> int:
    """Clamp ``v`` to the signed ``bits``-bit range (the authors' Python behaviour)."""
    hi = (1 << (bits - 1)) - 1
    return max(-hi - 1, min(hi, v))


# --------------------------------------------------------------------------------------------- σ / tanh tables
def sig_q(p: int) -> int:
    """SIG of the recipe: σ of a Q8.8 pre-activation, as a multiple of 16 in Q8.8."""
    if p > SIG_SAT:
        return Q88_ONE
    if p < -SIG_SAT:
        return 0
    return LUT_STEP * int(np.rint(LUT_LEVELS / (1.0 + np.exp(-p / Q88_ONE))))


def tanh_q(p: int) -> int:
    """TANH of the recipe: tanh of a Q8.8 pre-activation, as a multiple of 16 in Q8.8."""
    if p > TANH_SAT:
        return Q88_ONE
    if p < -TANH_SAT:
        return -Q88_ONE
    return LUT_STEP * int(np.rint(LUT_LEVELS * np.tanh(p / Q88_ONE)))


def sigmoid_table(lo: int = -SIG_SAT, hi: int = SIG_SAT) -> np.ndarray:
    """SIG(p) for p in ``lo..hi`` inclusive (int32); outside ±879 the value is the saturated one."""
    return np.array([sig_q(p) for p in range(lo, hi + 1)], dtype=np.int32)


def tanh_table(lo: int = -TANH_SAT, hi: int = TANH_SAT) -> np.ndarray:
    """TANH(p) for p in ``lo..hi`` inclusive (int32)."""
    return np.array([tanh_q(p) for p in range(lo, hi + 1)], dtype=np.int32)


# ---------------------------------------------------------------------------------------- float <-> codes
def q88_codes(x: np.ndarray | float) -> np.ndarray:
    """Q8.8 integer codes (int16) of ``x``: round half to even, saturate to the int16 range."""
    v = np.rint(np.asarray(x, dtype=np.float64) * Q88_ONE)
    return np.clip(v, Q88_MIN, Q88_MAX).astype(np.int16)


def q17_codes(w: np.ndarray | float) -> np.ndarray:
    """Q1.7 integer codes (int8) of ``w``: round half to even, saturate to [-128, 127] (i.e. [-1, 127/128])."""
    return q17_codes_with_clip_count(w)[0]


def q17_codes_with_clip_count(w: np.ndarray | float) -> tuple[np.ndarray, int]:
    """:func:`q17_codes` of ``w`` and how many of its values were outside the range (saturated)."""
    v = np.rint(np.asarray(w, dtype=np.float64) * Q17_ONE)
    clipped = int(np.count_nonzero((v < Q17_MIN) | (v > Q17_MAX)))
    return np.clip(v, Q17_MIN, Q17_MAX).astype(np.int8), clipped


def q88_values(q: np.ndarray) -> np.ndarray:
    """Float32 values of Q8.8 integer codes."""
    return np.asarray(q, dtype=np.float32) * np.float32(Q88_SCALE)


def q17_values(q: np.ndarray) -> np.ndarray:
    """Float32 values of Q1.7 integer codes."""
    return np.asarray(q, dtype=np.float32) * np.float32(Q17_SCALE)


def q88_round(x: float) -> int:
    """The Q8.8 integer nearest to a float scalar (round half to even), not saturated: how Θ becomes register LSB."""
    return int(np.rint(x * Q88_ONE))
