"""Predictive threshold governor: choose Θx/Θh for the coming step from that step's own cost, before it runs.

The reactive :class:`hil.edgedrnn.governor.ThresholdGovernor` learns of a burst from a late step. This one prices
the step first with the cycle model (``../shared/facts/edgedrnn.md``) and writes the smallest thresholds whose
price fits the budget.

What the host knows (and uses; nothing else is read from the accelerator)
--------------------------------------------------------------------------
- the Q8.8 input ``x_t`` it is about to send, the thresholds it wrote, the weight-image geometry and clock;
- **every layer's hidden state h^l after each step** (a read-back of L·H int16 — on the seed's Zynq board the ARM
  core that drives the accelerator reads it from shared memory; the serial RESULT frame does *not* carry it, so
  behind :mod:`firmware_bridge.protocol` this governor runs on the board: ``SET_GOVERNOR``, protocol 1.1,
  docs/protocol.md §5.12).

From these it mirrors the delta encoder's memories exactly (x̂¹, and for every layer ĥ^l and the input memory x̂^l
of layers ≥ 2: a memory takes the new value when its delta fires, and the host knows every delta and threshold).
So before step t it knows, per layer l, the scan positions that will fire for any (Θx, Θh):

- layer 1: all of them — inputs ``Δx_t = x_t − x̂¹`` and hidden ``Δh¹_{t−1} = h¹_{t−1} − ĥ¹``;
- layer l ≥ 2: the hidden part ``h^l_{t−1} − ĥ^l``, but **not** the input part ``h^{l−1}_t − x̂^l``: layer l−1's
  new output exists only once the step has run. For it the governor uses one of two ``bound``\\ s:

  ``worst`` (a guarantee): input column j of layer l may fire only if some reachable h can be ≥ Θx away from
  x̂^l_j. |h| ≤ 256 (Q8.8 of 1.0) always holds — h is a convex combination of h_{t−1} and tanh(·) ∈ [−256, 256],
  each rounded term staying inside its own bound — so the column is assumed to fire iff ``256 + |x̂^l_j| ≥ Θx``.
  The cycle model's MAC chain is monotone (more fired positions, or later ones, never take fewer cycles), so this
  set's cost bounds the step's: the governor's prediction is ≥ the actual cycles on every step. The price is that
  for Θx ≤ 256 every input column of every deeper layer counts as fired (128 · 48 cycles for 2L-128H, far over a
  21 µs budget), so the guarantee needs Θx close to 511, which also freezes layer 1's inputs for that step.

  ``estimate`` (no guarantee): each unit of h^{l−1} is extrapolated linearly,
  ``h̃_t = h_{t−1} + gain · (h_{t−1} − h_{t−2})`` (clipped to ±256), and its delta against x̂^l, plus ``slack`` LSB
  (default 4: units within a few LSB of firing are counted), priced as if exact. It misses when layer l−1 jumps in
  one step (an impact) after a calm one; ``underestimates`` counts those steps. (On the demo's held-out walk,
  with a common floor on both registers: slack 0 left 6 % of the steps late, 4 left 1.7 %, 6 left 1.4 % at a lower
  R²; an unsigned extrapolation was no better. With the Θh-first ladder below, slack 4 leaves 2.2 %.)

  ``split`` (a guarantee, for a host that can run the step one layer at a time): the host starts layer 1 alone,
  reads back its new h¹_t, and only then prices layer 2 — whose input part is now known — and writes layer 2's own
  (Θx, Θh) before starting it (and so on for deeper layers). Every layer is priced exactly, so no step is late
  unless even 511 does not fit. Before each layer a reserve is kept for the layers after it: their ``worst`` price
  at Θ = 511 (the most they can cost whatever happens), so a later layer always has a threshold that fits. Layer 1
  picks the smallest r that fits both with the reserve and with the later layers' ``estimate`` price (slack 0), so
  a burst is shared between the layers instead of left to the last one. On EdgeDRNN this needs the accelerator to
  stop between layers with Θ rewritable there (per-layer invocations or per-layer Θ registers): the cycle model's
  sum is the same, each extra invocation adds a T_sys the model keeps as a parameter (default 0).

  ``oracle`` (exact, not realisable by a host): every candidate is priced by a trial step on a copy of the model's
  whole state (accumulators included). A host would have to run layers 1..L−1 itself to know this; it is here to
  measure the ceiling of pricing — what a perfect estimate of the unknown columns would give.

Policy (exact)
--------------
One rung r of a threshold ladder per step (``split``: per layer, in layer order, as above): ``Θh = min(511,
max(Θh_base, r))``, ``Θx = max(Θx_base, r − 511)`` — Θh rises first, and Θx only once Θh is at 511. Neither
register goes below its trained value. r is the smallest integer in [min(Θx_base, Θh_base), 1022] whose priced
cycles fit ``budget`` (cost is non-increasing in r, so a bisection of ≤ 10 pricings; the trained thresholds are
priced first and taken when they fit, as on most steps). When even Θx = Θh = 511 does not fit, that is used and the
step counts as ``infeasible`` (``worst``: then it may miss). Why Θh first: Θx also gates the deeper layers' inputs
— the feed-forward path to the output — while Θh only delays a layer's own recurrent update. On the demo's held-out
walk with ``split`` the Θh-first ladder gave torque R² 0.989 / 0.986 (knee / ankle) at 125 MHz, a common floor
r on both registers 0.985 / 0.967, Θx first 0.978 / 0.953. The first step after
:meth:`reset` prices the bias column too.

Counters (lifetime; the backend reports differences per episode): ``steps``, ``raised_steps`` (steps run above the
trained thresholds), ``changes`` (steps whose thresholds differ from the previous step's: register writes),
``infeasible``, ``underestimates`` (actual cycles > priced cycles). The hot path is compiled (numba), allocation free.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from controllers.fixedpoint import MAX_LAYERS, THETA_MAX
from envs.jit import kernel

from . import kernel as kn
from .model import EdgeDRNNError, EdgeDRNNModel

BOUNDS = ("estimate", "worst", "oracle", "split")
R_TOP = 2 * THETA_MAX  # the ladder's last rung: Θx = Θh = 511
H_MAX = 256  # |h| ≤ 1.0 in Q8.8: the GRU's output range (module docstring)

# Governor buffer: cfg/counter slots, then per-layer mirrors and per-layer priced |Δ| rows.
G_LAYERS = 0
G_HIDDEN = 1
G_INPUT = 2  # layer-1 input width, padded
G_K = 3
G_LAMBDA = 4
G_BASE_X = 5
G_BASE_H = 6
G_MAX_CYCLES = 7
G_BOUND = 8  # index into BOUNDS
G_GAIN = 9  # extrapolation gain · 256
G_SATURATE = 10
G_FIRST = 11
G_THETA_X = 12  # thresholds chosen for the current step
G_THETA_H = 13
G_STEPS = 14
G_RAISED = 15
G_CHANGES = 16
G_INFEASIBLE = 17
G_UNDER = 18
G_PRICED = 19  # priced cycles of the current step (all layers)
G_PRICED_LAYER = 20  # MAX_LAYERS entries: priced cycles per layer
G_SLACK = G_PRICED_LAYER + MAX_LAYERS  # estimate: LSB added to every estimated |Δ|
G_LAYER_TX = G_SLACK + 1  # split: the thresholds each layer ran with, MAX_LAYERS entries each
G_LAYER_TH = G_LAYER_TX + MAX_LAYERS
G_HDR = G_LAYER_TH + MAX_LAYERS


@kernel
def buffer_layout(layers, hidden, input_padded):
    """Offsets of the mirrors x̂ [L, W], ĥ [L, H], h_{t−1} [L, H], h_{t−2} [L, H], |Δ| rows [L, 1+W+H]; size."""
    w = max(input_padded, hidden)
    o_xhat = G_HDR
    o_hhat = o_xhat + layers * w
    o_h1 = o_hhat + layers * hidden
    o_h2 = o_h1 + layers * hidden
    o_abs = o_h2 + layers * hidden
    size = o_abs + layers * (1 + w + hidden)
    return o_xhat, o_hhat, o_h1, o_h2, o_abs, size


@kernel(inline="always")
def _gviews(g):
    L = g[G_LAYERS]
    H = g[G_HIDDEN]
    W = max(g[G_INPUT], H)
    o_xhat, o_hhat, o_h1, o_h2, o_abs, size = buffer_layout(L, H, g[G_INPUT])
    return (
        g[o_xhat:o_hhat].reshape((L, W)),
        g[o_hhat:o_h1].reshape((L, H)),
        g[o_h1:o_h2].reshape((L, H)),
        g[o_h2:o_abs].reshape((L, H)),
        g[o_abs:size].reshape((L, 1 + W + H)),
    )


@kernel(inline="always")
def _fit(v, sat):
    if sat:
        return min(max(v, -32768), 32767)
    return ((v + 32768) & 0xFFFF) - 32768


@kernel
def _chain(f, p, c_e, beats, lam):
    # One fired position in the facts page's MAC chain.
    return max(p + c_e, f) + beats + lam


@kernel
def _price_layer(g, layer, th_x, th_h):
    """Cycles of one layer if its priced |Δ| row fires at (th_x, th_h)."""
    H = g[G_HIDDEN]
    beats = 3 * H // g[G_K]
    lam = g[G_LAMBDA]
    n_in = g[G_INPUT] if layer == 0 else H
    c_e = kn.C_E_FIRST if layer == 0 else kn.C_E_LATER
    c_s = kn.C_S_FIRST if layer == 0 else kn.C_S_LATER
    scan = 1 + n_in + H
    row = _gviews(g)[4][layer]
    # Scan order: bias, inputs, hidden.
    f = np.int64(-(1 << 40))
    n = 0
    if g[G_FIRST] != 0:
        f = _chain(f, 0, c_e, beats, lam)
        n = 1
    for i in range(n_in):
        d = row[1 + i]
        if d != 0 and d >= th_x:
            f = _chain(f, 1 + i, c_e, beats, lam)
            n += 1
    for j in range(H):
        d = row[1 + n_in + j]
        if d != 0 and d >= th_h:
            f = _chain(f, 1 + n_in + j, c_e, beats, lam)
            n += 1
    mac = scan + c_s if n == 0 else max(f + kn.MAC_TAIL, scan + c_s)
    return mac + kn.ACT_LOOP * (H // g[G_K] + 1)


@kernel
def _price(g, th_x, th_h):
    """Cycles of the step if the priced |Δ| rows fire at (th_x, th_h); per-layer cycles → ``g[G_PRICED_LAYER:]``."""
    total = 0
    for layer in range(g[G_LAYERS]):
        c = _price_layer(g, layer, th_x, th_h)
        g[G_PRICED_LAYER + layer] = c
        total += c
    return total


@kernel
def _price_worst_at_max(g, layer):
    """An upper bound of layer ``layer``'s (≥ 1) cycles at Θx = Θh = 511, before the step: the worst bound for its
    input part, its hidden part exactly."""
    H = g[G_HIDDEN]
    sat = g[G_SATURATE] != 0
    beats = 3 * H // g[G_K]
    lam = g[G_LAMBDA]
    xhat, hhat, h1, _, _ = _gviews(g)
    f = np.int64(-(1 << 40))
    n = 0
    if g[G_FIRST] != 0:
        f = _chain(f, 0, kn.C_E_LATER, beats, lam)
        n = 1
    for i in range(H):
        if H_MAX + abs(xhat[layer, i]) >= THETA_MAX:
            f = _chain(f, 1 + i, kn.C_E_LATER, beats, lam)
            n += 1
    for j in range(H):
        d = _fit(h1[layer, j] - hhat[layer, j], sat)
        if d != 0 and abs(d) >= THETA_MAX:
            f = _chain(f, 1 + H + j, kn.C_E_LATER, beats, lam)
            n += 1
    scan = 1 + 2 * H
    mac = scan + kn.C_S_LATER if n == 0 else max(f + kn.MAC_TAIL, scan + kn.C_S_LATER)
    return mac + kn.ACT_LOOP * (H // g[G_K] + 1)


@kernel
def _trial(g, image, state, trial, h_trial, th_x, th_h):
    """Oracle price: run the step on a copy of the model's whole state (inputs loaded) and count its cycles."""
    trial[:] = state
    trial[kn.CFG_THETA_X] = th_x
    trial[kn.CFG_THETA_H] = th_h
    total = kn.step_loaded(image, trial, h_trial)
    stats = kn.state_views(trial)[0]
    for layer in range(g[G_LAYERS]):
        g[G_PRICED_LAYER + layer] = stats[kn.ST_LAYER_MAC + layer] + stats[kn.ST_LAYER_ACT + layer]
    return total


@kernel(inline="always")
def _cost(g, th_x, th_h, image, state, trial, h_trial):
    if g[G_BOUND] == 2:
        return _trial(g, image, state, trial, h_trial, th_x, th_h)
    return _price(g, th_x, th_h)


@kernel
def _fill_rows(g, xin):
    """Priced |Δ| rows before the step: layer 1 and every hidden part exact, deeper inputs by the bound."""
    L = g[G_LAYERS]
    H = g[G_HIDDEN]
    I = g[G_INPUT]
    sat = g[G_SATURATE] != 0
    xhat, hhat, h1, h2, absd = _gviews(g)
    gain = g[G_GAIN]
    for layer in range(L):
        row = absd[layer]
        if layer == 0:
            for i in range(I):
                row[1 + i] = abs(_fit(xin[i] - xhat[0, i], sat))
            n_in = I
        else:
            n_in = H
            for i in range(H):
                if g[G_BOUND] == 1:
                    row[1 + i] = H_MAX + abs(xhat[layer, i])
                else:
                    prev = h1[layer - 1, i]
                    est = prev + (gain * (prev - h2[layer - 1, i])) // 256
                    est = min(max(est, -H_MAX), H_MAX)
                    row[1 + i] = abs(_fit(est - xhat[layer, i], sat)) + g[G_SLACK]
        for j in range(H):
            row[1 + n_in + j] = abs(_fit(h1[layer, j] - hhat[layer, j], sat))


@kernel
def choose(g, xin, image, state, trial, h_trial):
    """Before a step: price the step from the host's mirrors, pick r, update the mirrors that the choice settles.

    ``xin``: the padded Q8.8 layer-1 input about to be sent. Returns (Θx, Θh) for the step. ``image``, ``state``,
    ``trial`` (a buffer like ``state``) and ``h_trial`` are read by the ``oracle`` bound only.
    """
    L = g[G_LAYERS]
    H = g[G_HIDDEN]
    I = g[G_INPUT]
    sat = g[G_SATURATE] != 0
    xhat, hhat, h1, _, _ = _gviews(g)
    _fill_rows(g, xin)
    bx = g[G_BASE_X]
    bh = g[G_BASE_H]
    lo = min(bx, bh)
    limit = g[G_MAX_CYCLES]
    r = lo
    priced = _cost(g, bx, bh, image, state, trial, h_trial)
    if priced > limit:
        top = _cost(g, THETA_MAX, THETA_MAX, image, state, trial, h_trial)
        if top > limit:
            r = R_TOP
            priced = top
            g[G_INFEASIBLE] += 1
        else:
            # Smallest rung in (lo, R_TOP] that fits: cost(a) > limit ≥ cost(b) holds throughout.
            a = lo
            b = R_TOP
            while b - a > 1:
                m = (a + b) // 2
                mx, mh = _rung(g, m)
                if _cost(g, mx, mh, image, state, trial, h_trial) <= limit:
                    b = m
                else:
                    a = m
            r = b
        # Priced again at the chosen rung: leaves its per-layer prices in g.
        rx, rh = _rung(g, r)
        priced = _cost(g, rx, rh, image, state, trial, h_trial)
    tx, th = _rung(g, r)
    if g[G_STEPS] > 0 and (tx != g[G_THETA_X] or th != g[G_THETA_H]):
        g[G_CHANGES] += 1
    if tx != bx or th != bh:
        g[G_RAISED] += 1
    g[G_THETA_X] = tx
    g[G_THETA_H] = th
    g[G_PRICED] = priced
    g[G_STEPS] += 1
    # Memories the chosen thresholds settle now: layer-1 inputs and every layer's hidden part.
    for i in range(I):
        d = _fit(xin[i] - xhat[0, i], sat)
        if d != 0 and abs(d) >= tx:
            xhat[0, i] = xin[i]
    for layer in range(L):
        for j in range(H):
            d = _fit(h1[layer, j] - hhat[layer, j], sat)
            if d != 0 and abs(d) >= th:
                hhat[layer, j] = h1[layer, j]
    return tx, th


@kernel
def observe(g, state):
    """After a step: read back every layer's h from the model ``state``; settle the deeper layers' input memories,
    shift the h history, count an underestimate."""
    L = g[G_LAYERS]
    H = g[G_HIDDEN]
    sat = g[G_SATURATE] != 0
    xhat = _gviews(g)[0]
    mem = kn.state_views(state)[2]
    tx = g[G_THETA_X]
    for layer in range(1, L):
        for i in range(H):
            v = mem[layer - 1, 2, i]
            d = _fit(v - xhat[layer, i], sat)
            if d != 0 and abs(d) >= tx:
                xhat[layer, i] = v
    _observe_history(g, state)


@kernel
def _observe_history(g, state):
    # Shift the read-back h history; count a step that took more cycles than priced.
    L = g[G_LAYERS]
    H = g[G_HIDDEN]
    _, _, h1, h2, _ = _gviews(g)
    stats, _, mem, _ = kn.state_views(state)
    for layer in range(L):
        for j in range(H):
            h2[layer, j] = h1[layer, j]
            h1[layer, j] = mem[layer, 2, j]
    if stats[kn.ST_CYCLES] > g[G_PRICED]:
        g[G_UNDER] += 1
    g[G_FIRST] = 0


@kernel(inline="always")
def _write_thresholds(state, tx, th):
    state[kn.CFG_THETA_X] = tx
    state[kn.CFG_THETA_H] = th


@kernel
def governed_backend_kernel(features, fp, image, w_out, state, h_out, g, trial, h_trial):
    """:func:`hil.edgedrnn.kernel.backend_kernel` with the predictive governor around the step; returns cycles."""
    kn.quantize_input(features, fp, state)
    _, _, _, scratch = kn.state_views(state)
    tx, th = choose(g, scratch[2], image, state, trial, h_trial)
    _write_thresholds(state, tx, th)
    total = kn.step_loaded(image, state, h_out)
    observe(g, state)
    kn.arm_output(fp, w_out, h_out)
    return total


@kernel
def _settle_layer(g, layer, xin, tx, th):
    """Mirror the memories of ``layer`` that fire at (tx, th); ``xin`` is the layer's input (layer 1: x_t)."""
    sat = g[G_SATURATE] != 0
    H = g[G_HIDDEN]
    xhat, hhat, h1, _, _ = _gviews(g)
    n_in = g[G_INPUT] if layer == 0 else H
    for i in range(n_in):
        d = _fit(xin[i] - xhat[layer, i], sat)
        if d != 0 and abs(d) >= tx:
            xhat[layer, i] = xin[i]
    for j in range(H):
        d = _fit(h1[layer, j] - hhat[layer, j], sat)
        if d != 0 and abs(d) >= th:
            hhat[layer, j] = h1[layer, j]


@kernel(inline="always")
def _rung(g, r):
    """(Θx, Θh) of rung r of the ladder: Θh rises first, then Θx (module docstring)."""
    return max(g[G_BASE_X], r - THETA_MAX), min(THETA_MAX, max(g[G_BASE_H], r))


@kernel
def _split_fits(g, layer, r, used, reserve, limit):
    """Does floor r fit layer ``layer`` into what is left? Layer 1 also keeps the estimated price of the later layers
    in view, so that a burst is shared rather than all left to the last layer."""
    tx, th = _rung(g, r)
    c = _price_layer(g, layer, tx, th)
    if used + c + reserve > limit:
        return False
    if layer == 0:
        for k in range(1, g[G_LAYERS]):
            c += _price_layer(g, k, tx, th)
        return c <= limit
    return True


@kernel
def _split_step(g, image, state):
    """The ``split`` bound: the host runs the step one layer at a time (module docstring); returns the cycles."""
    L = g[G_LAYERS]
    H = g[G_HIDDEN]
    sat = g[G_SATURATE] != 0
    stats, _, mem, scratch = kn.state_views(state)
    xin = scratch[2]
    xhat, _, _, _, absd = _gviews(g)
    _fill_rows(g, xin)
    bx = g[G_BASE_X]
    bh = g[G_BASE_H]
    lo = min(bx, bh)
    limit = g[G_MAX_CYCLES]
    changed = False
    raised = False
    used = 0
    priced = 0
    for layer in range(L):
        reserve = 0
        for m in range(layer + 1, L):
            reserve += _price_worst_at_max(g, m)
        if layer > 0:
            # Read back layer-1..l's new output: this layer's input part is now known exactly.
            row = absd[layer]
            for i in range(H):
                row[1 + i] = abs(_fit(mem[layer - 1, 2, i] - xhat[layer, i], sat))
        # Smallest r whose price fits what is left after the reserve (cost is non-increasing in r).
        if _split_fits(g, layer, lo, used, reserve, limit):
            b = lo
        elif not _split_fits(g, layer, R_TOP, used, reserve, limit):
            b = R_TOP
        else:
            a = lo
            b = R_TOP
            while b - a > 1:
                m = (a + b) // 2
                if _split_fits(g, layer, m, used, reserve, limit):
                    b = m
                else:
                    a = m
        tx, th = _rung(g, b)
        c = _price_layer(g, layer, tx, th)
        if used + c + reserve > limit:
            g[G_INFEASIBLE] += 1
        if g[G_STEPS] > 0 and (tx != g[G_LAYER_TX + layer] or th != g[G_LAYER_TH + layer]):
            changed = True
        if tx != bx or th != bh:
            raised = True
        g[G_LAYER_TX + layer] = tx
        g[G_LAYER_TH + layer] = th
        g[G_PRICED_LAYER + layer] = c
        priced += c
        if layer == 0:
            _settle_layer(g, 0, xin, tx, th)
        else:
            _settle_layer(g, layer, mem[layer - 1, 2], tx, th)
        state[kn.CFG_THETA_X] = tx
        state[kn.CFG_THETA_H] = th
        kn.step_layers(image, state, layer, layer + 1)
        used = stats[kn.ST_CYCLES]
    g[G_CHANGES] += changed
    g[G_RAISED] += raised
    g[G_THETA_X] = g[G_LAYER_TX]
    g[G_THETA_H] = g[G_LAYER_TH]
    g[G_PRICED] = priced
    g[G_STEPS] += 1
    return used


@kernel
def governed_split_kernel(features, fp, image, w_out, state, h_out, g):
    """:func:`governed_backend_kernel` for the ``split`` bound: layer by layer, each priced exactly."""
    kn.quantize_input(features, fp, state)
    total = _split_step(g, image, state)
    kn.copy_h(state, h_out)
    _observe_history(g, state)
    kn.arm_output(fp, w_out, h_out)
    return total


def max_cycles_within(budget_s: float, clock_hz: float, t_sys_s: float) -> int:
    """Largest cycle count c with ``c · (1/clock) + T_sys ≤ budget`` in the backend's own float arithmetic."""
    inv = 1.0 / clock_hz
    c = max(0, math.floor((budget_s - t_sys_s) * clock_hz))
    while c > 0 and c * inv + t_sys_s > budget_s:
        c -= 1
    while (c + 1) * inv + t_sys_s <= budget_s:
        c += 1
    return c


class PredictiveGovernor:
    """Chooses Θx/Θh of an :class:`EdgeDRNNModel` before every step so the step's priced cycles fit ``budget_s``.

    Parameters
    ----------
    model
        The model it governs (geometry, clock, λ, T_sys, arithmetic mode are read once; its state never is — only
        every layer's h after each step, see the module docstring).
    budget_s
        Latency budget per step, s.
    theta_x_base, theta_h_base
        Trained thresholds (Q8.8 LSB): the floor.
    bound
        ``estimate`` (linear extrapolation of the unknown columns), ``worst`` (every column that can fire does: a
        guarantee whenever some threshold fits), ``split`` (layer by layer, each priced exactly: a guarantee; runs
        inside :class:`hil.edgedrnn.backend.EdgeDRNNBackend` only) or ``oracle`` (trial steps: a ceiling).
    gain, slack
        The estimate's extrapolation gain (1 = linear) and the LSB added to every estimated delta (default 4; 0 for
        ``split``, which uses the estimate only to share a burst between layers).

    Use :meth:`before` / :meth:`after` around ``model.step``; :class:`hil.edgedrnn.backend.EdgeDRNNBackend` fuses both
    into its compiled step instead.
    """

    kind = "predictive"

    def __init__(
        self,
        model: EdgeDRNNModel,
        budget_s: float,
        theta_x_base: int = 0,
        theta_h_base: int = 0,
        *,
        bound: str = "estimate",
        gain: float = 1.0,
        slack: int | None = None,
    ) -> None:
        if not budget_s > 0:
            raise EdgeDRNNError(f"budget_s must be > 0, got {budget_s}")
        if bound not in BOUNDS:
            raise EdgeDRNNError(f"bound must be one of {', '.join(BOUNDS)}, got {bound!r}")
        if not 0.0 <= gain <= 16.0:
            raise EdgeDRNNError(f"gain must be in [0, 16], got {gain}")
        if slack is None:
            slack = 0 if bound == "split" else 4  # split: the estimate only shares a burst between the layers
        if not 0 <= int(slack) <= THETA_MAX:
            raise EdgeDRNNError(f"slack must be in 0..{THETA_MAX} LSB, got {slack}")
        for name, v in (("theta_x_base", theta_x_base), ("theta_h_base", theta_h_base)):
            if not 0 <= int(v) <= THETA_MAX:
                raise EdgeDRNNError(f"{name}={v} outside the threshold register: expected 0..{THETA_MAX}")
        self.budget_s = float(budget_s)
        self.bound = bound
        self.gain = float(gain)
        self.theta_x_base = int(theta_x_base)
        self.theta_h_base = int(theta_h_base)
        self.max_cycles = max_cycles_within(self.budget_s, model.clock_hz, model.t_sys_s)
        L, H, I = model.layers, model.hidden, model.input_padded
        self.layers = L
        self.buffer = np.zeros(buffer_layout(L, H, I)[-1], dtype=np.int64)
        g = self.buffer
        g[G_LAYERS], g[G_HIDDEN], g[G_INPUT], g[G_K], g[G_LAMBDA] = L, H, I, model.k, model.burst_latency
        g[G_BASE_X], g[G_BASE_H] = self.theta_x_base, self.theta_h_base
        g[G_MAX_CYCLES] = self.max_cycles
        g[G_BOUND] = BOUNDS.index(bound)
        g[G_GAIN] = round(self.gain * 256)
        g[G_SLACK] = int(slack)
        g[G_SATURATE] = int(model.saturate)
        self._xin = np.zeros(I, dtype=np.int64)
        # The oracle's trial step runs on a copy of the model's state (other bounds get 1-element dummies).
        n_trial = model.kernel_buffers()[1].size if bound == "oracle" else 1
        self.trial = np.zeros(n_trial, dtype=np.int64)
        self.h_trial = np.zeros(H if bound == "oracle" else 1, dtype=np.int16)
        self._timing = _timing_of(model)
        self.reset()

    def check_model(self, model: EdgeDRNNModel) -> None:
        """Raise :class:`EdgeDRNNError` unless ``model`` has the geometry and timing this governor prices."""
        if _timing_of(model) != self._timing:
            raise EdgeDRNNError(
                f"the predictive governor prices a model with (layers, hidden, padded input, K, λ, clock, T_sys, "
                f"saturate) = {self._timing}, got {_timing_of(model)}"
            )

    @property
    def name(self) -> str:
        """``predictive`` (estimate) or ``predictive-worst``: the governor's name in results."""
        return "predictive" if self.bound == "estimate" else f"predictive-{self.bound}"

    def reset(self) -> None:
        """Forget the mirrors (the model was reset: zero state, bias column pending); counters are kept."""
        self.buffer[G_HDR:] = 0
        self.buffer[G_FIRST] = 1
        self.buffer[G_THETA_X] = self.theta_x_base
        self.buffer[G_THETA_H] = self.theta_h_base

    def before(self, model: EdgeDRNNModel, x_q88: np.ndarray) -> tuple[int, int]:
        """Choose and write the thresholds of the step about to run on ``x_q88`` (int16 [I] or [I_pad])."""
        if self.bound == "split":
            raise EdgeDRNNError("the split bound runs the step itself, layer by layer: use it through EdgeDRNNBackend")
        x = np.asarray(x_q88)
        if x.ndim != 1 or x.shape[0] not in (model.input_size, model.input_padded):
            raise EdgeDRNNError(f"input must be [{model.input_size}] (or padded [{model.input_padded}]), got {x.shape}")
        self._xin[:] = 0
        self._xin[: x.shape[0]] = x
        image, state, _ = model.kernel_buffers()
        if self.bound == "oracle":
            # The trial step reads its input from the model's input row, as the fused backend kernel leaves it.
            kn.load_input(x, state)
        tx, th = choose(self.buffer, self._xin, image, state, self.trial, self.h_trial)
        model.theta_x, model.theta_h = int(tx), int(th)
        return int(tx), int(th)

    def after(self, model: EdgeDRNNModel) -> None:
        """Read back the step's h of every layer (and its cycles, for the underestimate count)."""
        observe(self.buffer, model.kernel_buffers()[1])

    # ------------------------------------------------------------------------------------------- results
    @property
    def theta(self) -> tuple[int, int]:
        """(Θx, Θh) chosen for the last step."""
        return int(self.buffer[G_THETA_X]), int(self.buffer[G_THETA_H])

    @property
    def priced_cycles(self) -> int:
        """The last step's priced cycles (``worst``: an upper bound of its actual cycles)."""
        return int(self.buffer[G_PRICED])

    @property
    def priced_layer_cycles(self) -> np.ndarray:
        """The last step's priced cycles per layer (layer 1 is exact in both bounds)."""
        return self.buffer[G_PRICED_LAYER : G_PRICED_LAYER + self.layers].copy()

    def counters(self) -> dict[str, int]:
        """Lifetime counters (module docstring)."""
        g = self.buffer
        return {
            "steps": int(g[G_STEPS]),
            "raised_steps": int(g[G_RAISED]),
            "changes": int(g[G_CHANGES]),
            "infeasible": int(g[G_INFEASIBLE]),
            "underestimates": int(g[G_UNDER]),
        }

    @property
    def actions(self) -> int:
        """Threshold register writes so far (steps whose thresholds differ from the previous step's)."""
        return int(self.buffer[G_CHANGES])

    def mirrors(self) -> dict[str, Any]:
        """Copies of the host's mirrors: x_hat [L, W], h_hat [L, H], h [L, H] (the last read-back)."""
        xhat, hhat, h1, _, _ = _gviews(self.buffer)
        return {"x_hat": xhat.copy(), "h_hat": hhat.copy(), "h": h1.copy()}


def _timing_of(model: EdgeDRNNModel) -> tuple[Any, ...]:
    return (
        model.layers, model.hidden, model.input_padded, model.k, model.burst_latency, model.clock_hz, model.t_sys_s,
        model.saturate,
    )  # fmt: skip
