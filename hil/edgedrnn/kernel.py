"""Numba kernels of the EdgeDRNN model: one integer delta-GRU time step plus its cycle count, and loops over it.

Everything a step touches is preallocated by :class:`hil.edgedrnn.model.EdgeDRNNModel` in ONE flat int64 buffer
``state`` (plus the int8 weight image), because the numba dispatcher type-checks every argument on every call
(~0.2 µs per array here) and a controller calls ``step`` once per control period. Sections of ``state``
(offsets from :func:`state_layout`):

``cfg``      [CFG_SIZE]        geometry, thresholds, flags, per-layer byte offsets (indices below)
``stats``    [STATS_SIZE]      results of the last step (indices below)
``acc``      int32 [L, 4, H]   accumulators M_r, M_z, M_nx, M_nh (units 2^-15, kept wrapped to 24 bits)
``mem``      [L, 3, W]         x̂ (W = max(I_pad, H) wide), ĥ, h per layer
``scratch``  [3, 1 + W + H]    fired positions, their deltas, the current layer's input (row 2 = ``xin``)

The arithmetic is the facts page's "Integer recipe" (see :mod:`hil.edgedrnn.reference` for a line-by-line
version). Accumulation runs in int32 lanes and is wrapped to 24 bits once per layer and step: wrapping is a ring
homomorphism (and 2^24 divides 2^32), so that equals wrapping after every add as the RTL does. The saturating
mode clamps after every add instead (order = scan order), which is what the authors' Python model does.
"""

from __future__ import annotations

import numpy as np

from controllers.fixedpoint import MAX_LAYERS, SIG_SAT, TANH_SAT, sigmoid_table, tanh_table
from envs.jit import kernel

# cfg indices
CFG_LAYERS = 0
CFG_HIDDEN = 1
CFG_INPUT = 2  # layer-1 input width, padded to K
CFG_K = 3
CFG_LAMBDA = 4  # extra cycles per weight burst
CFG_THETA_X = 5
CFG_THETA_H = 6
CFG_SATURATE = 7
CFG_FIRST = 8  # 1 until the first step after reset: the bias column is pending
CFG_OFFSETS = 9  # byte offset of each layer, MAX_LAYERS entries
CFG_SIZE = CFG_OFFSETS + MAX_LAYERS

# stats indices
ST_CYCLES = 0
ST_FIRED = 1  # fired columns, bias included (as the test bench's `ncol`)
ST_DELTAS = 2  # non-zero deltas (bias excluded): the numerator of 1 − sparsity
ST_LAYER_FIRED = 3
ST_LAYER_MAC = ST_LAYER_FIRED + MAX_LAYERS
ST_LAYER_ACT = ST_LAYER_MAC + MAX_LAYERS
STATS_SIZE = ST_LAYER_ACT + MAX_LAYERS

# cycle-model constants of the facts page (layer 1, later layers)
C_E_FIRST, C_E_LATER = 3, 4
C_S_FIRST, C_S_LATER = 8, 10
MAC_TAIL = 6
ACT_LOOP = 5

# Frozen into the compiled code as constants (numba treats global arrays as read-only constants).
_SIG = sigmoid_table(-SIG_SAT - 1, SIG_SAT + 1)
_TANH = tanh_table(-TANH_SAT - 1, TANH_SAT + 1)

_ACC_HALF = 1 << 23
_ACC_MASK = (1 << 24) - 1


@kernel(inline="always")
def _rhe(v, s):
    # Branch-free round-half-to-even of v / 2^s: below half rounds down, above up, at half the quotient's LSB
    # (q & 1) tips it to the even neighbour. Branch-free so the activation loop pipelines.
    return (v + ((np.int64(1) << (s - 1)) - 1) + ((v >> s) & 1)) >> s


@kernel(inline="always")
def _wrap16(v):
    return ((v + 32768) & 0xFFFF) - 32768


@kernel(inline="always")
def _sat16(v):
    return min(max(v, -32768), 32767)


@kernel(inline="always")
def _fit16(v, sat):
    return _sat16(v) if sat else _wrap16(v)


@kernel(inline="always")
def _sig(p):
    # The tables carry one saturated entry beyond ±SIG_SAT at each end, so clamping the index is the whole test.
    return _SIG[min(max(p, -SIG_SAT - 1), SIG_SAT + 1) + SIG_SAT + 1]


@kernel(inline="always")
def _tanh(p):
    return _TANH[min(max(p, -TANH_SAT - 1), TANH_SAT + 1) + TANH_SAT + 1]


@kernel(inline="always")
def _axpy(dst, d_off, src, s_off, n, d):
    # Slices first: indexing with an offset sum makes numba emit a negative-index check per element, which
    # blocks vectorisation (7x slower here). int32 lanes wrap mod 2^32, which preserves the value mod 2^24.
    a = dst[d_off : d_off + n]
    w = src[s_off : s_off + n]
    d32 = np.int32(d)
    for j in range(n):
        a[j] += d32 * np.int32(w[j])


@kernel(inline="always")
def _axpy_sat(dst, d_off, src, s_off, n, d):
    a = dst[d_off : d_off + n]
    w = src[s_off : s_off + n]
    for j in range(n):
        a[j] = min(max(np.int64(a[j]) + d * np.int64(w[j]), -_ACC_HALF), _ACC_HALF - 1)


@kernel(inline="always")
def _activate(acc_l, h, fit16):
    """σ/tanh stage for one layer: accumulators [4, H] → new h (in place, reads h_{t-1} first)."""
    a_r = acc_l[0]
    a_z = acc_l[1]
    a_nx = acc_l[2]
    a_nh = acc_l[3]
    for j in range(h.shape[0]):
        r = _sig(fit16(_rhe(np.int64(a_r[j]), 7)))
        z = _sig(fit16(_rhe(np.int64(a_z[j]), 7)))
        pre_nh = fit16(_rhe(np.int64(a_nh[j]), 7))
        nn = _tanh(fit16(_rhe(2 * np.int64(a_nx[j]) + r * pre_nh, 8)))
        h[j] = _rhe((256 - z) * nn, 8) + _rhe(z * h[j], 8)


@kernel
def mac_phase_cycles(positions, n, scan, beats, c_e, c_s, lam):
    """T_mac of one layer from the first ``n`` ascending fired scan positions (facts-page formula)."""
    if n == 0:
        return scan + c_s
    f = positions[0] + c_e + beats + lam
    for k in range(1, n):
        start = positions[k] + c_e
        if f > start:
            start = f
        f = start + beats + lam
    return max(f + MAC_TAIL, scan + c_s)


@kernel
def state_layout(layers, hidden, input_padded):
    """Offsets of (stats, acc, mem, scratch) in the state buffer, its total size, and W."""
    width = max(input_padded, hidden)
    o_stats = CFG_SIZE
    o_acc = o_stats + STATS_SIZE
    o_mem = o_acc + layers * 2 * hidden  # int32 accumulators, two per int64 slot
    o_scr = o_mem + layers * 3 * width
    size = o_scr + 3 * (1 + width + hidden)
    return o_stats, o_acc, o_mem, o_scr, size, width


@kernel(inline="always")
def _views(state):
    L = state[CFG_LAYERS]
    H = state[CFG_HIDDEN]
    o_stats, o_acc, o_mem, o_scr, size, W = state_layout(L, H, state[CFG_INPUT])
    stats = state[o_stats:o_acc]
    acc = state[o_acc:o_mem].view(np.int32).reshape((L, 4, H))
    mem = state[o_mem:o_scr].reshape((L, 3, W))
    scratch = state[o_scr:size].reshape((3, 1 + W + H))
    return stats, acc, mem, scratch


@kernel
def _step(image, state):
    """One time step of all layers; the padded layer-1 input must already be in ``scratch[2, :I_pad]``."""
    return _step_layers(image, state, 0, state[CFG_LAYERS])


@kernel
def _step_layers(image, state, l0, l1):
    """Layers ``l0 .. l1-1`` of a time step (the thresholds in force are read at ``l0``). Run in pieces that cover
    0..L-1 in order, it is :func:`_step`: the stats add up from ``l0 > 0`` and the bias column stays pending until the
    last layer ran."""
    stats, acc, mem, scratch = _views(state)
    cfg = state
    L = cfg[CFG_LAYERS]
    H = cfg[CFG_HIDDEN]
    K = cfg[CFG_K]
    lam = cfg[CFG_LAMBDA]
    th_x = cfg[CFG_THETA_X]
    th_h = cfg[CFG_THETA_H]
    sat = cfg[CFG_SATURATE] != 0
    first = cfg[CFG_FIRST] != 0
    H3 = 3 * H
    pos = scratch[0]
    dlt = scratch[1]
    xin = scratch[2]
    I = cfg[CFG_INPUT]
    total = 0
    fired_total = 0
    deltas = 0
    if l0 > 0:
        total = stats[ST_CYCLES]
        fired_total = stats[ST_FIRED]
        deltas = stats[ST_DELTAS]
    for layer in range(l0, l1):
        if layer > 0:
            I = H
            for i in range(H):
                xin[i] = mem[layer - 1, 2, i]
        xhat = mem[layer, 0]
        hhat = mem[layer, 1]
        hcur = mem[layer, 2]
        # delta encoder, in scan order: bias, inputs, hidden (inclusive thresholds, zero never fires)
        n = 0
        if first:
            pos[0] = 0
            dlt[0] = 256
            n = 1
        for i in range(I):
            d = _fit16(xin[i] - xhat[i], sat)
            if d != 0 and abs(d) >= th_x:
                xhat[i] = xin[i]
                pos[n] = 1 + i
                dlt[n] = d
                n += 1
        n_in = n
        for j in range(H):
            d = _fit16(hcur[j] - hhat[j], sat)
            if d != 0 and abs(d) >= th_h:
                hhat[j] = hcur[j]
                pos[n] = 1 + I + j
                dlt[n] = d
                n += 1
        # MAC: one column of 3H weights per fired delta; n rows go to M_nx (inputs) or M_nh (hidden)
        base = cfg[CFG_OFFSETS + layer]
        # acc[layer] is [r, z, nx, nh] back to back: an input column's 3H rows land on r|z|nx in one run, a hidden
        # column's on r|z then nh. One destination per loop lets LLVM vectorise it.
        acc_l = acc[layer].reshape(4 * H)
        for k in range(n):
            d = dlt[k]
            col = base + pos[k] * H3
            if sat:
                if k < n_in:
                    _axpy_sat(acc_l, 0, image, col, H3, d)
                else:
                    _axpy_sat(acc_l, 0, image, col, 2 * H, d)
                    _axpy_sat(acc_l, 3 * H, image, col + 2 * H, H, d)
            elif k < n_in:
                _axpy(acc_l, 0, image, col, H3, d)
            else:
                _axpy(acc_l, 0, image, col, 2 * H, d)
                _axpy(acc_l, 3 * H, image, col + 2 * H, H, d)
        if not sat and n > 0:
            for j in range(4 * H):
                acc_l[j] = ((np.int64(acc_l[j]) + _ACC_HALF) & _ACC_MASK) - _ACC_HALF
        # activation stage
        if sat:
            _activate(acc[layer], hcur[:H], _sat16)
        else:
            _activate(acc[layer], hcur[:H], _wrap16)
        # cycle model
        scan = 1 + I + H
        if layer == 0:
            mac = mac_phase_cycles(pos, n, scan, H3 // K, C_E_FIRST, C_S_FIRST, lam)
        else:
            mac = mac_phase_cycles(pos, n, scan, H3 // K, C_E_LATER, C_S_LATER, lam)
        act = ACT_LOOP * (H // K + 1)
        stats[ST_LAYER_FIRED + layer] = n
        stats[ST_LAYER_MAC + layer] = mac
        stats[ST_LAYER_ACT + layer] = act
        total += mac + act
        fired_total += n
        deltas += n - 1 if first else n
    if l1 == L:
        cfg[CFG_FIRST] = 0
    stats[ST_CYCLES] = total
    stats[ST_FIRED] = fired_total
    stats[ST_DELTAS] = deltas
    return total


@kernel(inline="always")
def _load_input(x, state):
    # Layers > 0 reuse the input row for h, so the padding must be re-zeroed every step.
    _, _, _, scratch = _views(state)
    xin = scratch[2]
    n = x.shape[0]
    for i in range(n):
        xin[i] = x[i]
    for i in range(n, state[CFG_INPUT]):
        xin[i] = 0


@kernel(inline="always")
def _copy_h(state, h_out):
    _, _, mem, _ = _views(state)
    last = state[CFG_LAYERS] - 1
    for j in range(h_out.shape[0]):
        h_out[j] = mem[last, 2, j]


@kernel
def step_kernel(x, image, state, h_out):
    """One step from input ``x`` (int16 [I] or [I_pad]); last layer's h → ``h_out`` (int16 [H]). Returns cycles."""
    _load_input(x, state)
    total = _step(image, state)
    _copy_h(state, h_out)
    return total


@kernel
def run_kernel(X, image, state, h_all, stats_all):
    """Steps over the rows of ``X`` [T, I_pad]; fills ``h_all`` [T, H] (last layer) and ``stats_all`` [T, STATS]."""
    stats, _, _, _ = _views(state)
    for t in range(X.shape[0]):
        _load_input(X[t], state)
        _step(image, state)
        _copy_h(state, h_all[t])
        for s in range(STATS_SIZE):
            stats_all[t, s] = stats[s]


# rows of the backend's float parameter block
FP_MEAN = 0
FP_STD = 1
FP_SCALE = 2
FP_OFFSET = 3
FP_BIAS = 4  # output bias (int32 units 2^-15, exact in float64)
FP_OUT = 5  # the float outputs of the last step
FP_ROWS = 6


@kernel(inline="always")
def quantize_input(features, fp, state):
    """Features → z-score with ``fp``'s mean/std → Q8.8 (round half to even, saturate) → the layer-1 input row."""
    _, _, _, scratch = _views(state)
    xin = scratch[2]
    n_in = features.shape[0]
    for i in range(n_in):
        v = np.rint((features[i] - fp[FP_MEAN, i]) / fp[FP_STD, i] * 256.0)
        if not (v == v):  # NaN: a defined value instead of an undefined cast
            v = 0.0
        xin[i] = np.int64(min(max(v, -32768.0), 32767.0))
    for i in range(n_in, state[CFG_INPUT]):
        xin[i] = 0


@kernel(inline="always")
def step_loaded(image, state, h_out):
    """One step of all layers on the input already in the layer-1 input row; last layer's h → ``h_out``."""
    total = _step(image, state)
    _copy_h(state, h_out)
    return total


@kernel(inline="always")
def arm_output(fp, w_out, h_out):
    """The output layer on the ARM core: int32 MAC of h with the Q1.7 weights + bias → ``fp[FP_OUT, :O]``."""
    H = h_out.shape[0]
    for o in range(w_out.shape[0]):
        s = np.int64(fp[FP_BIAS, o])
        for j in range(H):
            s += np.int64(w_out[o, j]) * np.int64(h_out[j])
        s = ((s + 2147483648) & 0xFFFFFFFF) - 2147483648  # the ARM's int32 MAC wraps
        fp[FP_OUT, o] = s / 32768.0 * fp[FP_SCALE, o] + fp[FP_OFFSET, o]


# Public names of the state views and the input loader, for kernels in sibling modules (the predictive governor
# reads back every layer's h; its oracle runs trial steps).
state_views = _views
load_input = _load_input
step_layers = _step_layers
copy_h = _copy_h


@kernel
def backend_kernel(features, fp, image, w_out, state, h_out):
    """Features → z-score → Q8.8 → one step → output layer as on the ARM core; returns the step's cycles.

    ``fp`` float64 [FP_ROWS, max(I, O)] (rows above); the outputs land in ``fp[FP_OUT, :O]``.
    """
    quantize_input(features, fp, state)
    total = step_loaded(image, state, h_out)
    arm_output(fp, w_out, h_out)
    return total
