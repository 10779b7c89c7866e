"""Gait events from foot contact forces: contact detection, heel strikes, toe offs and strides.

Pure numpy, no simulator imports: the functions work on recorded per-sample signals (one sample per
control step) and are shared by the env, the evaluation and the tests. Sample indices are returned, not
times; multiply by the sample period (or index the time vector) to get seconds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CONTACT_OFF_N", "CONTACT_ON_N", "detect_contacts", "gait_events", "strides"]

# The contact thresholds of README's Metrics section (N of vertical foot force): the metrics, the heel-strike pushes
# and (by value, since it reads logs made anywhere) experiments.report.gait all call a heel strike by them.
CONTACT_ON_N = 50.0
CONTACT_OFF_N = 20.0


def detect_contacts(force: np.ndarray, on_n: float, off_n: float, min_dwell: int) -> np.ndarray:
    """Foot contact state from a vertical foot force by hysteresis with a minimum dwell time.

    The foot goes into contact at the first sample with ``force > on_n`` and leaves contact at the first
    sample with ``force < off_n``. After every accepted change the new state is held for at least
    ``min_dwell`` samples whatever the force does: in simulation the contact force chatters to zero for a
    few milliseconds right after touchdown, and a plain hysteresis would report several spurious
    touchdowns per stance. The initial state is ``force[0] > on_n`` and is not locked (it is not a
    detected change). Non-finite samples never trigger a change.

    Parameters
    ----------
    force : array, shape (T,)
        Vertical foot force in N (compressive / ground reaction positive), one value per sample.
    on_n, off_n : float
        Contact-on and contact-off thresholds in N; ``on_n >= off_n``.
    min_dwell : int
        Minimum number of samples a state is held after a change (>= 1; 1 = plain hysteresis).

    Returns
    -------
    contact : bool array, shape (T,)
    """
    f = np.asarray(force, dtype=float)
    if f.ndim != 1:
        raise ValueError(f"force must be 1-D, got shape {f.shape}")
    if not on_n >= off_n:
        raise ValueError(f"need on_n >= off_n, got on_n={on_n}, off_n={off_n}")
    min_dwell = int(min_dwell)
    if min_dwell < 1:
        raise ValueError(f"min_dwell must be >= 1 sample, got {min_dwell}")
    n = f.size
    contact = np.zeros(n, dtype=bool)
    if n == 0:
        return contact

    # Candidate samples for each kind of change. The loop below runs once per accepted change (about two per
    # stride), each step a binary search, so a 12,000-sample episode costs well under a millisecond.
    on_idx = np.flatnonzero(f > on_n)
    off_idx = np.flatnonzero(f < off_n)
    state = bool(f[0] > on_n)
    changes = [0]  # sample indices where a new state starts; the first entry is the initial state
    earliest = 1  # the initial state is not locked by the dwell
    while True:
        cand = off_idx if state else on_idx
        k = np.searchsorted(cand, earliest)
        if k >= cand.size:
            break
        j = int(cand[k])
        changes.append(j)
        state = not state
        earliest = j + min_dwell
        if earliest >= n:
            break

    # Paint the segments: the state flips at every change index, so a cumulative count of changes gives it.
    flips = np.zeros(n, dtype=np.int64)
    flips[np.asarray(changes[1:], dtype=np.int64)] = 1
    parity = np.cumsum(flips) % 2
    contact[:] = (parity == 1) != bool(f[0] > on_n)
    return contact


def gait_events(contact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heel strikes and toe offs of one foot from its contact state.

    Parameters
    ----------
    contact : bool array, shape (T,)
        Contact state per sample (e.g. from :func:`detect_contacts`).

    Returns
    -------
    heel_strikes : int array
        Sample indices of False→True transitions (the first sample in contact).
    toe_offs : int array
        Sample indices of True→False transitions (the first sample out of contact).

    A contact (or swing) already present at sample 0 is not an event. Heel strikes and toe offs of a foot
    alternate by construction.
    """
    c = np.asarray(contact, dtype=bool)
    if c.ndim != 1:
        raise ValueError(f"contact must be 1-D, got shape {c.shape}")
    if c.size < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    rise = ~c[:-1] & c[1:]
    fall = c[:-1] & ~c[1:]
    return np.flatnonzero(rise).astype(np.int64) + 1, np.flatnonzero(fall).astype(np.int64) + 1


def strides(heel_strikes: np.ndarray) -> np.ndarray:
    """Strides of one foot as [start, end) sample index pairs between consecutive heel strikes.

    Parameters
    ----------
    heel_strikes : int array, shape (n,)
        Increasing sample indices of the heel strikes of one foot.

    Returns
    -------
    int array, shape (max(n - 1, 0), 2)
        Row k is ``(heel_strikes[k], heel_strikes[k + 1])``; the end sample belongs to the next stride.
    """
    hs = np.asarray(heel_strikes)
    if hs.ndim != 1:
        raise ValueError(f"heel_strikes must be 1-D, got shape {hs.shape}")
    hs = hs.astype(np.int64)
    if hs.size >= 2 and np.any(np.diff(hs) <= 0):
        raise ValueError("heel_strikes must be strictly increasing")
    if hs.size < 2:
        return np.zeros((0, 2), dtype=np.int64)
    return np.column_stack([hs[:-1], hs[1:]])


def fill_gaps(contact: np.ndarray, max_gap: int) -> np.ndarray:
    """Close contact gaps shorter than `max_gap` samples (a bounce or a rolling foot is not a swing).

    :func:`detect_contacts` holds a new state for its dwell, but it still reports every gap; a foot that bounces
    off the floor for 20–30 ms after a stiff impact would otherwise count as a toe off and a heel strike.
    Gaps at the start or end of the record are left as they are.
    """
    c = np.asarray(contact, dtype=bool).copy()
    if c.ndim != 1:
        raise ValueError(f"contact must be 1-D, got shape {c.shape}")
    if max_gap <= 1 or c.size < 3:
        return c
    edges = np.diff(c.astype(np.int8))
    gap_starts = np.flatnonzero(edges == -1) + 1  # first False sample after True
    gap_ends = np.flatnonzero(edges == 1) + 1  # first True sample after False
    if gap_starts.size == 0 or gap_ends.size == 0:
        return c
    gap_ends = gap_ends[gap_ends > gap_starts[0]]
    n = min(gap_starts.size, gap_ends.size)
    for start, end in zip(gap_starts[:n], gap_ends[:n], strict=True):
        if end - start < max_gap:
            c[start:end] = True
    return c


def clean_contacts(contact: np.ndarray, min_len: int) -> np.ndarray:
    """Close gaps shorter than `min_len` samples, then drop contacts shorter than `min_len` (scuffs, not stances)."""
    return ~fill_gaps(~fill_gaps(contact, min_len), min_len)
