"""EdgeDRNN fixed-point helpers: formats, round-half-to-even shifts, wrapping, the σ/tanh lookup tables.

Formats (``../shared/facts/edgedrnn.md``): activations Q8.8 in int16, weights Q1.7 in int8, accumulators 24-bit in
units of 2^-15, σ/tanh outputs multiples of 16 LSB in the Q8.8 container. The functions here work on Python ints and
numpy arrays; the numba kernel has its own scalar copies of ``rhe`` and the wraps (kept next to it so it compiles
alone), and the conformance tests pin both to the RTL's dumps.
"""

from __future__ import annotations

import numpy as np

Q88_ONE = 256  # 1.0 in Q8.8
Q17_ONE = 128  # 1.0 in Q1.7 (not representable: Q1.7 tops out at 127/128)
ACC_BITS = 24
SIG_SAT = 879  # SIG(p) = 256 for p > 879, 0 for p < -879
TANH_SAT = 530  # TANH(p) = ±256 for |p| > 530
THETA_MAX = 511  # Θ lives in a 10-bit signed register


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


def sig_q(p: int) -> int:
    """SIG of the recipe: σ of a Q8.8 pre-activation, as a multiple of 16 in Q8.8."""
    if p > SIG_SAT:
        return Q88_ONE
    if p < -SIG_SAT:
        return 0
    return 16 * int(np.rint(16.0 / (1.0 + np.exp(-p / 256.0))))


def tanh_q(p: int) -> int:
    """TANH of the recipe: tanh of a Q8.8 pre-activation, as a multiple of 16 in Q8.8."""
    if p > TANH_SAT:
        return Q88_ONE
    if p < -TANH_SAT:
        return -Q88_ONE
    return 16 * int(np.rint(16.0 * np.tanh(p / 256.0)))


def sigmoid_table(lo: int = -SIG_SAT, hi: int = SIG_SAT) -> np.ndarray:
    """SIG(p) for p in ``lo..hi`` inclusive (int32); outside ±879 the value is the saturated one."""
    return np.array([sig_q(p) for p in range(lo, hi + 1)], dtype=np.int32)


def tanh_table(lo: int = -TANH_SAT, hi: int = TANH_SAT) -> np.ndarray:
    """TANH(p) for p in ``lo..hi`` inclusive (int32)."""
    return np.array([tanh_q(p) for p in range(lo, hi + 1)], dtype=np.int32)


def quantize_q88(x: np.ndarray) -> np.ndarray:
    """Float → Q8.8 int16: round half to even (``np.rint``), saturate to the int16 range."""
    v = np.rint(np.asarray(x, dtype=np.float64) * Q88_ONE)
    return np.clip(v, -32768, 32767).astype(np.int16)


def quantize_q17(w: np.ndarray) -> np.ndarray:
    """Float → Q1.7 int8: round half to even, saturate to [-1, 127/128]."""
    v = np.rint(np.asarray(w, dtype=np.float64) * Q17_ONE)
    return np.clip(v, -128, 127).astype(np.int8)


def read_lut_dump(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse an RTL LUT dump (lines ``<index> : lut_out[i] = <value>;``) into (indices, values)."""
    idx: list[int] = []
    val: list[int] = []
    with open(path, encoding="ascii") as fh:
        for line in fh:
            line = line.strip()
            if not line or ":" not in line:
                continue
            left, right = line.split(":", 1)
            idx.append(int(left))
            val.append(int(right.split("=", 1)[1].strip().rstrip(";")))
    return np.array(idx, dtype=np.int64), np.array(val, dtype=np.int64)
