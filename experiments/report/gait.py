"""Gait events and per-stride views of a run log, for the report's figures (pure numpy).

Heel strikes follow README's Metrics section, so the report's strides are the ones the metrics were computed on:
the prosthetic foot's logged vertical force goes into contact above 50 N and out below 20 N, each new state held
for 20 ms (the force chatters right after touchdown), then gaps and touches shorter than 100 ms are closed / dropped
(a bounce after a stiff impact is not a swing, a toe scuff in swing is not a stance). The same rule lives in
``envs.gait_events``; the report does not import it (it reads run logs made anywhere), and a test checks both give
the same heel strikes on a real log.
"""

from __future__ import annotations

import numpy as np

CONTACT_ON_N = 50.0
CONTACT_OFF_N = 20.0
DWELL_S = 0.020
DEBOUNCE_S = 0.100
TRANSIENT_S = 2.0  # strides starting earlier are gait initiation, not steady walking (as in the metrics)
CYCLE_POINTS = 101  # 0, 1, …, 100 % of the gait cycle


def contacts(force: np.ndarray, dt: float) -> np.ndarray:
    """Contact state per sample from a vertical foot force (hysteresis, dwell, then the 100 ms debounce)."""
    f = np.asarray(force, dtype=float)
    n = f.size
    c = np.zeros(n, dtype=bool)
    if n == 0:
        return c
    dwell = max(1, round(DWELL_S / dt))
    on_idx, off_idx = np.flatnonzero(f > CONTACT_ON_N), np.flatnonzero(f < CONTACT_OFF_N)
    state0 = state = bool(f[0] > CONTACT_ON_N)
    changes: list[int] = []
    earliest = 1
    # One binary search per accepted change (about two per stride): the dwell makes a plain vectorised form wrong.
    while True:
        cand = off_idx if state else on_idx
        k = int(np.searchsorted(cand, earliest))
        if k >= cand.size:
            break
        j = int(cand[k])
        changes.append(j)
        state = not state
        earliest = j + dwell
        if earliest >= n:
            break
    flips = np.zeros(n, dtype=np.int64)
    flips[np.asarray(changes, dtype=np.int64)] = 1
    c[:] = ((np.cumsum(flips) % 2) == 1) != state0
    gap = max(1, round(DEBOUNCE_S / dt))
    return ~_fill_gaps(~_fill_gaps(c, gap), gap)


def _fill_gaps(c: np.ndarray, max_gap: int) -> np.ndarray:
    """Close False runs shorter than ``max_gap`` that lie between two True runs."""
    c = c.copy()
    if max_gap <= 1 or c.size < 3:
        return c
    edges = np.diff(c.astype(np.int8))
    starts = np.flatnonzero(edges == -1) + 1
    ends = np.flatnonzero(edges == 1) + 1
    if starts.size == 0 or ends.size == 0:
        return c
    ends = ends[ends > starts[0]]
    for s, e in zip(starts[: ends.size], ends[: starts.size], strict=True):
        if e - s < max_gap:
            c[s:e] = True
    return c


def heel_strikes(force: np.ndarray, dt: float) -> np.ndarray:
    """Sample indices of the heel strikes (first sample in contact) of one foot."""
    c = contacts(force, dt)
    if c.size < 2:
        return np.zeros(0, dtype=np.int64)
    return (np.flatnonzero(~c[:-1] & c[1:]) + 1).astype(np.int64)


def steady_strides(hs: np.ndarray, t: np.ndarray, transient_s: float = TRANSIENT_S) -> np.ndarray:
    """[start, end) sample pairs of the strides that start after the transient."""
    hs = hs[t[hs] >= transient_s] if hs.size else hs
    if hs.size < 2:
        return np.zeros((0, 2), dtype=np.int64)
    return np.column_stack([hs[:-1], hs[1:]])


def cycle_profiles(signal: np.ndarray, strides: np.ndarray, points: int = CYCLE_POINTS) -> np.ndarray:
    """Each stride of ``signal`` resampled onto 0–100 % of the gait cycle: [strides, points].

    A stride spans its heel strike (0 %) to the next one (100 %, the next stride's first sample)."""
    x = np.asarray(signal, dtype=float)
    out = np.full((len(strides), points), np.nan)
    grid = np.linspace(0.0, 1.0, points)
    for i, (a, b) in enumerate(strides):
        seg = x[a : b + 1]
        if seg.size < 2 or not np.all(np.isfinite(seg)):
            continue
        out[i] = np.interp(grid, np.linspace(0.0, 1.0, seg.size), seg)
    return out[np.all(np.isfinite(out), axis=1)]


def section_values(signal: np.ndarray, hs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The return map of ``signal`` sampled at heel strikes: (value at strike n, value at strike n + 1)."""
    v = np.asarray(signal, dtype=float)[hs]
    return v[:-1], v[1:]


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` samples, ignoring NaN (NaN where the window has no finite sample)."""
    x = np.asarray(x, dtype=float)
    window = max(1, int(window))
    ok = np.isfinite(x)
    kernel = np.ones(window)
    s = np.convolve(np.where(ok, x, 0.0), kernel, mode="same")
    n = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array (e.g. the stance domain, for shading)."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return []
    d = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))
