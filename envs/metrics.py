"""Gait stability and tracking metrics of one closed-loop episode, as pure numpy functions.

The measures follow Bruijn et al. (J R Soc Interface 2013) as summarised in ``shared/facts/gait.md``:
falls and distance, stride-time variability, step-time symmetry, knee/ankle tracking error, peak
prosthesis load, the margin of stability (Hof 2008), the maximum Floquet multiplier of the
stride-to-stride map and push robustness. Every function takes recorded arrays (one sample per control
step, time in s, lengths in m, forces in N, angles in rad) and never touches the simulator, so the same
code scores simulated episodes, recorded prosthesis logs and synthetic test signals. :func:`summarize`
turns an :class:`EpisodeSignals` record into the JSON-ready per-episode dictionary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .gait_events import CONTACT_OFF_N, CONTACT_ON_N, clean_contacts, detect_contacts, gait_events
from .gait_events import strides as make_strides

__all__ = [
    "EpisodeSignals",
    "floquet_max",
    "margin_of_stability",
    "moving_average",
    "peak_load_per_stride",
    "push_robustness",
    "step_time_asymmetry",
    "stride_time_cv",
    "summarize",
    "tracking_rmse",
]

G = 9.81  # m/s², gravity used by the extrapolated centre of mass


def _as_1d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def stride_time_cv(hs_times: np.ndarray) -> float | None:
    """Coefficient of variation of stride time.

    Parameters
    ----------
    hs_times : array, shape (n,)
        Increasing heel-strike times of one foot, s.

    Returns
    -------
    float or None
        ``std(T) / mean(T)`` of the stride durations ``T = diff(hs_times)`` (sample standard deviation,
        ddof=1), as a fraction (multiply by 100 for %). None with fewer than 3 strides (4 heel strikes).
    """
    t = _as_1d(hs_times, "hs_times")
    if t.size < 4:
        return None
    d = np.diff(t)
    if np.any(d <= 0):
        raise ValueError("hs_times must be strictly increasing")
    return float(np.std(d, ddof=1) / np.mean(d))


def _step_times(hs_a: np.ndarray, hs_b: np.ndarray) -> np.ndarray:
    """Step times of leg A: per A heel strike, time since the latest B heel strike after the previous A."""
    if hs_a.size == 0 or hs_b.size == 0:
        return np.zeros(0)
    # Index of the latest B heel strike strictly before each A heel strike.
    j = np.searchsorted(hs_b, hs_a, side="left") - 1
    ok = j >= 0
    b = hs_b[np.maximum(j, 0)]
    # It must also come after the previous A heel strike, otherwise there was no B step in between
    # (e.g. the walker hopped twice on leg A) and the interval is not a step.
    prev_a = np.concatenate([[-np.inf], hs_a[:-1]])
    ok &= b > prev_a
    return (hs_a - b)[ok]


def step_time_asymmetry(hs_times_a: np.ndarray, hs_times_b: np.ndarray) -> float | None:
    """Symmetry index of step times between two legs, ``2·|Ta − Tb| / (Ta + Tb)``.

    The step time of leg A is the time from a heel strike of B to the next heel strike of A (and vice versa);
    Ta and Tb are the means over all such steps. Steps are paired from each heel strike back to the latest
    heel strike of the other leg, and skipped when the other leg did not strike in between.

    Parameters
    ----------
    hs_times_a, hs_times_b : array
        Increasing heel-strike times of legs A and B, s.

    Returns
    -------
    float or None
        0 for perfect symmetry, dimensionless (×100 for %); None when either leg has no step.
    """
    a = np.sort(_as_1d(hs_times_a, "hs_times_a"))
    b = np.sort(_as_1d(hs_times_b, "hs_times_b"))
    ta = _step_times(a, b)
    tb = _step_times(b, a)
    if ta.size == 0 or tb.size == 0:
        return None
    ma, mb = float(np.mean(ta)), float(np.mean(tb))
    return 2.0 * abs(ma - mb) / (ma + mb)


def tracking_rmse(q: np.ndarray, q_des: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square tracking error.

    Parameters
    ----------
    q, q_des : array, shape (T,)
        Measured and desired joint angle, rad (any unit; the result has the same unit).
    mask : bool array, shape (T,), optional
        Samples to include (e.g. one gait phase); default all.

    Returns
    -------
    float
        ``sqrt(mean((q − q_des)²))`` over the masked samples where both values are finite — a controller
        without a reference records NaN as ``q_des``. NaN when no sample is left.
    """
    q = _as_1d(q, "q")
    qd = _as_1d(q_des, "q_des")
    if q.shape != qd.shape:
        raise ValueError(f"q and q_des differ in shape: {q.shape} vs {qd.shape}")
    sel = np.isfinite(q) & np.isfinite(qd)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != q.shape:
            raise ValueError(f"mask shape {m.shape} differs from q shape {q.shape}")
        sel &= m
    if not np.any(sel):
        return math.nan
    e = q[sel] - qd[sel]
    return float(np.sqrt(np.mean(e * e)))


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Causal moving average over ``window`` samples (shorter windows at the start), same length as ``x``."""
    x = _as_1d(x, "x")
    window = int(window)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window == 1 or x.size == 0:
        return x.copy()
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(1, x.size + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def peak_load_per_stride(load: np.ndarray, strides: np.ndarray, window: int = 1) -> np.ndarray:
    """Maximum load in each stride, optionally after a causal moving-average low-pass.

    Parameters
    ----------
    load : array, shape (T,)
        Load signal, N (prosthesis load cell, axial compression positive).
    strides : int array, shape (n, 2)
        [start, end) sample indices per stride (from :func:`envs.gait_events.strides`); end > start.
    window : int
        Moving-average length in samples; 1 = raw. Contact impacts put 1 ms spikes of several body weights
        on the raw force, so report a ~20 ms window (``round(0.02 / dt)``).

    Returns
    -------
    array, shape (n,)
        Peak load per stride, N.
    """
    y = moving_average(load, window)
    s = np.asarray(strides, dtype=np.int64).reshape(-1, 2)
    if s.shape[0] == 0:
        return np.zeros(0)
    if np.any(s[:, 1] <= s[:, 0]) or np.any(s[:, 0] < 0) or np.any(s[:, 1] > y.size):
        raise ValueError("strides must satisfy 0 <= start < end <= len(load)")
    # reduceat over interleaved [start, end) boundaries: even slots are the strides, odd slots the gaps
    # between them (discarded). A padding sample keeps an end index equal to len(load) in range.
    padded = np.concatenate([y, [0.0]])
    return np.maximum.reduceat(padded, s.ravel())[::2]


def margin_of_stability(
    x_com: np.ndarray,
    v_com: np.ndarray,
    com_height: np.ndarray | float,
    x_bos: np.ndarray,
    indices: np.ndarray | None = None,
    g: float = G,
) -> np.ndarray:
    """Sagittal margin of stability (Hof 2008) from the extrapolated centre of mass.

    ``ω0 = sqrt(g / l)`` with ``l`` the COM height (inverted-pendulum length), ``ξ = x + v / ω0`` and
    ``margin = x_bos − ξ``, with ``x_bos`` the anterior boundary of the base of support — at a heel strike the
    leading foot's toe. Positive means ξ lies inside the base of support (behind the toe).

    Parameters
    ----------
    x_com : array, m          Horizontal COM position.
    v_com : array, m/s        Horizontal COM velocity.
    com_height : array or float, m   COM height above the ground (> 0).
    x_bos : array, m          Anterior boundary of the base of support.
    indices : int array, optional    Sample indices to evaluate (e.g. heel strikes); default all samples.
    g : float, m/s²

    Returns
    -------
    array
        Margin in m, one value per index (or per sample).
    """
    x, v, h, b = np.broadcast_arrays(
        np.asarray(x_com, dtype=float),
        np.asarray(v_com, dtype=float),
        np.asarray(com_height, dtype=float),
        np.asarray(x_bos, dtype=float),
    )
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        x, v, h, b = x[idx], v[idx], h[idx], b[idx]
    if np.any(h <= 0):
        raise ValueError("com_height must be positive")
    omega0 = np.sqrt(g / h)
    xi = x + v / omega0
    return b - xi


def floquet_max(section_states: np.ndarray, min_strides: int = 30, period: int = 1) -> float | None:
    """Maximum Floquet multiplier of the stride-to-stride return map (of the `period`-stride map for p > 1).

    The states at a Poincaré section (e.g. every prosthetic heel strike) are ``s_k``. The fixed point
    ``s*`` is their mean and the linearised return map ``J`` is the least-squares fit of
    ``(s_{k+1} − s*) ≈ J (s_k − s*)``; the result is ``max |eig(J)|`` (< 1: deviations shrink from
    stride to stride).

    Conditioning, documented because it changes what is estimated:

    * Columns are standardised (zero mean, unit SD). That is a diagonal similarity transform, so the
      eigenvalues of the exact map are unchanged; it only stops large-unit columns dominating the PCA.
    * Constant columns (SD ≤ 1e-10 of their scale) carry no deviation and are dropped.
    * With ``d`` columns the fit has ``d`` unknowns per equation and ``n − 1`` pairs; when ``d > n // 3`` the
      states are projected on their first ``n // 3`` principal components (keeping ≥ 3 pairs per unknown).
      The multipliers are then those of the dominant subspace. Least-squares multipliers are biased by
      noise and by few strides (Ahn & Hogan 2015), hence ``min_strides`` ≥ 30 and the reduction.

    The section state must not contain quantities that drift by design (e.g. absolute forward position).

    Parameters
    ----------
    section_states : array, shape (n, d)
        One row per section crossing, in crossing order. Rows with non-finite values are dropped along with
        the pairs they belong to.
    min_strides : int
        Minimum number of crossings for an estimate.
    period : int
        Strides per gait cycle. A gait on a period-2 orbit (alternating long and short strides) has a period-1
        map whose dominant multiplier is ≈ −1 whatever its stability; its multipliers are those of the
        2-stride map ``s_{k+2} − s*_{k mod 2} ≈ J₂ (s_k − s*_{k mod 2})``, with one fixed point per phase.
        :func:`gait_period` detects the period.

    Returns
    -------
    float or None
        Maximum multiplier magnitude; None with fewer than ``min_strides`` crossings or no varying column.
    """
    s = np.asarray(section_states, dtype=float)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"section_states must be 2-D [n, d], got shape {s.shape}")
    finite = np.all(np.isfinite(s), axis=1)
    n = int(np.count_nonzero(finite))
    if n < max(int(min_strides), 3) or s.shape[1] == 0:
        return None
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    pair_ok = finite[:-period] & finite[period:]
    if np.count_nonzero(pair_ok) < 2:
        return None
    good = s[finite]
    mu = good.mean(axis=0)
    sd = good.std(axis=0)
    keep = sd > 1e-10 * np.maximum(np.abs(mu), 1.0)
    if not np.any(keep):
        return None
    z = np.zeros((s.shape[0], int(np.count_nonzero(keep))))
    z[finite] = (good[:, keep] - mu[keep]) / sd[keep]
    if period > 1:
        # One fixed point per phase of the cycle: deviations are taken from the phase's own mean.
        phase = np.arange(s.shape[0]) % period
        for p in range(period):
            rows = finite & (phase == p)
            if np.any(rows):
                z[rows] -= z[rows].mean(axis=0)

    k_max = max(1, n // 3)
    if z.shape[1] > k_max:
        _, _, vt = np.linalg.svd(z[finite], full_matrices=False)
        z = z @ vt[:k_max].T

    x0 = z[:-period][pair_ok]
    x1 = z[period:][pair_ok]
    m, *_ = np.linalg.lstsq(x0, x1, rcond=None)  # x1 ≈ x0 @ m, i.e. J = m.T (same eigenvalues)
    return float(np.max(np.abs(np.linalg.eigvals(m))))


def gait_period(section_states: np.ndarray, threshold: float = 0.5) -> int:
    """1, or 2 when alternate strides differ systematically (a period-2 gait).

    Period 2 when the split of the standardised section states into even and odd strides explains more than
    `threshold` of their variance; noise around a period-1 orbit explains ~1/n of it.
    """
    s = np.asarray(section_states, dtype=float)
    if s.ndim != 2 or s.shape[0] < 6:
        return 1
    s = s[np.all(np.isfinite(s), axis=1)]
    sd = s.std(axis=0)
    keep = sd > 1e-10 * np.maximum(np.abs(s.mean(axis=0)), 1.0)
    if s.shape[0] < 6 or not np.any(keep):
        return 1
    z = (s[:, keep] - s[:, keep].mean(axis=0)) / sd[keep]
    total = float(np.sum(z**2))
    between = sum(float(np.sum(z[p::2].mean(axis=0) ** 2)) * z[p::2].shape[0] for p in (0, 1))
    return 2 if between > threshold * total else 1


def push_robustness(results: Sequence[tuple[float, bool]]) -> float:
    """Largest push survived, by the monotone definition.

    Given the (push magnitude N, survived) pairs of a push series, returns the largest magnitude ``M``
    that was survived such that every tried magnitude ≤ ``M`` was also survived — a fall at a smaller push
    caps the result even if a larger push happened to be survived. A magnitude tried several times (e.g.
    at different gait phases) counts as survived only if every try was survived. 0.0 when the smallest
    magnitude fails or the series is empty.

    Parameters
    ----------
    results : sequence of (float, bool)
        Push magnitude in N (finite, ≥ 0) and whether the walker survived it.

    Returns
    -------
    float
        Largest monotonically survived push, N.
    """
    if len(results) == 0:
        return 0.0
    mag = np.array([float(r[0]) for r in results])
    ok = np.array([bool(r[1]) for r in results])
    if not np.all(np.isfinite(mag)) or np.any(mag < 0):
        raise ValueError("push magnitudes must be finite and non-negative")
    first_fail = mag[~ok].min() if np.any(~ok) else math.inf
    below = mag[ok & (mag < first_fail)]
    return float(below.max()) if below.size else 0.0


@dataclass
class EpisodeSignals:
    """Per-step arrays one episode records (one sample per control step, all of length T).

    Attributes
    ----------
    t : (T,) s — time since reset of each sample.
    x_com, v_com : (T,) m, m/s — horizontal whole-body COM position and velocity.
    com_height : (T,) m — COM height above the ground (pendulum length of the margin of stability).
    trunk_height : (T,) m — trunk (pelvis) height, the fall criterion's signal.
    pitch : (T,) rad — trunk pitch.
    hip_x : (T,) m — horizontal hip position; distance walked is its displacement.
    sound_force, prosth_force : (T,) N — vertical ground force on the sound / prosthetic foot.
    load_cell : (T,) N — prosthesis load cell, axial compression positive.
    knee_q, knee_q_des, ankle_q, ankle_q_des : (T,) rad — prosthesis joint angles and the controller's
        reference (NaN where the controller has none).
    prosth_toe_x, sound_toe_x : (T,) m — horizontal toe position of each foot.
    poincare : (T, d) — state to be sampled at prosthetic heel strike for the Floquet analysis (no drifting
        quantities such as absolute x).
    prosth_foot_z : (T,) m, optional — height of the prosthetic foot's lowest contact point; when given, the
        Poincaré section is refined to the interpolated instant it descends through ``section_height_m``
        before each heel strike (sampling at the control rate alone aliases the section: see
        :func:`refine_section`).
    fell : bool — the episode ended by a fall.
    body_weight_n : float, N — m·g of the walker.
    dt : float, s — sample (control) period.
    """

    t: np.ndarray
    x_com: np.ndarray
    v_com: np.ndarray
    com_height: np.ndarray
    trunk_height: np.ndarray
    pitch: np.ndarray
    hip_x: np.ndarray
    sound_force: np.ndarray
    prosth_force: np.ndarray
    load_cell: np.ndarray
    knee_q: np.ndarray
    knee_q_des: np.ndarray
    ankle_q: np.ndarray
    ankle_q_des: np.ndarray
    prosth_toe_x: np.ndarray
    sound_toe_x: np.ndarray
    poincare: np.ndarray
    fell: bool
    body_weight_n: float
    dt: float
    prosth_foot_z: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Convert and check once here so summarize() and its callers can rely on shapes.
        n = None
        for f in fields(self):
            if f.name in ("fell", "body_weight_n", "dt"):
                continue
            if f.name == "prosth_foot_z" and self.prosth_foot_z is None:
                continue
            a = np.asarray(getattr(self, f.name), dtype=float)
            if f.name == "poincare":
                if a.ndim == 1 and a.size == 0:
                    a = a.reshape(0, 0)
                if a.ndim == 1:
                    a = a[:, None]
                if a.ndim != 2:
                    raise ValueError(f"poincare must be 2-D [T, d], got shape {a.shape}")
                length = a.shape[0]
            else:
                if a.ndim != 1:
                    raise ValueError(f"{f.name} must be 1-D, got shape {a.shape}")
                length = a.size
            if n is None:
                n = length
            elif length != n and not (f.name == "poincare" and a.size == 0):
                raise ValueError(f"{f.name} has {length} samples, expected {n}")
            setattr(self, f.name, a)
        if self.poincare.shape[0] != self.t.size:
            self.poincare = np.zeros((self.t.size, 0))
        self.fell = bool(self.fell)
        self.body_weight_n = float(self.body_weight_n)
        self.dt = float(self.dt)
        if not self.dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        if not self.body_weight_n > 0:
            raise ValueError(f"body_weight_n must be positive, got {self.body_weight_n}")

    @property
    def n_samples(self) -> int:
        return int(self.t.size)


def refine_section(
    states: np.ndarray, foot_z: np.ndarray, events: np.ndarray, height: float, lookback: int
) -> np.ndarray:
    """States at the instants the foot descends through `height`, linearly interpolated between samples.

    A heel strike found on control-rate samples lands up to one period after the true contact, at an offset that
    changes from stride to stride as the stride period beats against the sample period; sampling the state there
    makes a perfectly periodic gait look like a period-2 or quasi-periodic one (a Floquet multiplier near −1).
    Interpolating to a continuous crossing just before contact removes that aliasing. Events without a crossing
    in the `lookback` samples before them keep their sampled state.
    """
    out = states[events].astype(float, copy=True)
    for i, k in enumerate(events):
        for j in range(int(k), max(int(k) - lookback, 0), -1):
            z0, z1 = foot_z[j - 1], foot_z[j]
            if z0 > height >= z1:
                a = (z0 - height) / (z0 - z1)
                out[i] = states[j - 1] + a * (states[j] - states[j - 1])
                break
    return out


def _json_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def summarize(
    signals: EpisodeSignals,
    *,
    transient_s: float = 2.0,
    contact_on_n: float = CONTACT_ON_N,
    contact_off_n: float = CONTACT_OFF_N,
    min_dwell_s: float = 0.020,
    min_swing_s: float = 0.100,
    load_lowpass_s: float = 0.020,
    min_floquet_strides: int = 30,
    section_height_m: float = 0.01,
    g: float = G,
) -> dict[str, Any]:
    """JSON-ready metrics of one episode.

    Contacts come from :func:`envs.gait_events.detect_contacts` on the vertical foot forces (on
    ``contact_on_n``, off ``contact_off_n``, dwell ``min_dwell_s`` rounded to samples), with gaps shorter than
    ``min_swing_s`` closed and contacts shorter than it dropped by :func:`envs.gait_events.clean_contacts` (a bounce
    after a stiff impact leaves the floor for a few tens of ms without swinging; a toe scuff in swing touches it
    without standing on it). Heel-strike
    statistics — stride-time CV, step-time asymmetry, Floquet multiplier, peak load, margin of
    stability — use only heel strikes at ``t >= transient_s`` (the start from the initial posture is not
    steady walking); ``strides`` counts every complete prosthetic stride and the tracking RMSEs use every
    sample.

    Returns
    -------
    dict
        ``fell`` (bool), ``time_to_fall_s`` (s; last sample time when fell, else None), ``distance_m``
        (hip displacement, m), ``strides`` (int, complete prosthetic strides), ``stride_time_cv``
        (fraction, prosthetic strides), ``step_time_asymmetry`` (symmetry index, prosthetic vs sound),
        ``knee_rmse_rad``, ``ankle_rmse_rad``, ``floquet_max`` (Poincaré section at prosthetic heel
        strike), ``mos_min_m`` (min margin of stability over both feet's heel strikes, boundary = the
        striking foot's toe), ``prosthesis_peak_load_n`` (median over prosthetic strides of the
        per-stride load-cell peak after a ``load_lowpass_s`` moving average),
        ``prosthesis_peak_load_bw`` (same / body weight). Floats are plain floats, None when undefined.
    """
    s = signals
    dt = s.dt
    n = s.n_samples
    dwell = max(1, round(min_dwell_s / dt))
    window = max(1, round(load_lowpass_s / dt))

    gap = max(1, round(min_swing_s / dt))
    c_p = clean_contacts(detect_contacts(s.prosth_force, contact_on_n, contact_off_n, dwell), gap)
    c_s = clean_contacts(detect_contacts(s.sound_force, contact_on_n, contact_off_n, dwell), gap)
    hs_p, _ = gait_events(c_p)
    hs_s, _ = gait_events(c_s)
    n_strides = max(hs_p.size - 1, 0)

    # Steady-walking events only for the statistics.
    hs_p_ss = hs_p[s.t[hs_p] >= transient_s] if hs_p.size else hs_p
    hs_s_ss = hs_s[s.t[hs_s] >= transient_s] if hs_s.size else hs_s

    cv = stride_time_cv(s.t[hs_p_ss])
    asym = step_time_asymmetry(s.t[hs_p_ss], s.t[hs_s_ss])
    knee = tracking_rmse(s.knee_q, s.knee_q_des)
    ankle = tracking_rmse(s.ankle_q, s.ankle_q_des)

    fq = None
    period = None
    if s.poincare.shape[1] > 0 and hs_p_ss.size:
        section = (
            refine_section(s.poincare, s.prosth_foot_z, hs_p_ss, section_height_m, lookback=max(2, round(0.1 / dt)))
            if s.prosth_foot_z is not None
            else s.poincare[hs_p_ss]
        )
        period = gait_period(section)
        fq = floquet_max(section, min_strides=min_floquet_strides, period=period)

    mos = np.concatenate(
        [
            margin_of_stability(s.x_com, s.v_com, s.com_height, s.prosth_toe_x, hs_p_ss, g),
            margin_of_stability(s.x_com, s.v_com, s.com_height, s.sound_toe_x, hs_s_ss, g),
        ]
    )
    mos_min = float(np.min(mos)) if mos.size else None

    peak = None
    st = make_strides(hs_p_ss)
    if st.shape[0]:
        peak = float(np.median(peak_load_per_stride(s.load_cell, st, window)))

    return {
        "fell": s.fell,
        "time_to_fall_s": float(s.t[-1]) if (s.fell and n) else None,
        "distance_m": float(s.hip_x[-1] - s.hip_x[0]) if n else 0.0,
        "strides": int(n_strides),
        "stride_time_cv": _json_float(cv),
        "step_time_asymmetry": _json_float(asym),
        "knee_rmse_rad": _json_float(knee),
        "ankle_rmse_rad": _json_float(ankle),
        "floquet_max": _json_float(fq),
        "gait_period_strides": period if fq is not None else None,
        "mos_min_m": _json_float(mos_min),
        "prosthesis_peak_load_n": _json_float(peak),
        "prosthesis_peak_load_bw": _json_float(None if peak is None else peak / s.body_weight_n),
    }
