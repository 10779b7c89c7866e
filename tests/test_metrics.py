"""Stability and tracking metrics on synthetic signals with known answers."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.metrics import (
    EpisodeSignals,
    floquet_max,
    margin_of_stability,
    moving_average,
    peak_load_per_stride,
    push_robustness,
    step_time_asymmetry,
    stride_time_cv,
    summarize,
    tracking_rmse,
)

# ---------------------------------------------------------------- stride-time CV and step asymmetry


def test_stride_time_cv_known_jitter():
    durations = np.tile([1.05, 0.95], 10)  # mean 1.0, |deviation| 0.05 everywhere
    hs = np.concatenate([[0.0], np.cumsum(durations)])
    m = durations.size
    expected = 0.05 * math.sqrt(m / (m - 1))  # sample SD (ddof=1) over mean 1.0
    assert stride_time_cv(hs) == pytest.approx(expected, rel=1e-9)


def test_stride_time_cv_needs_three_strides():
    assert stride_time_cv(np.array([0.0, 1.0, 2.0])) is None  # two strides
    assert stride_time_cv(np.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(0.0, abs=1e-12)
    assert stride_time_cv(np.array([])) is None


def test_step_time_symmetric_gait_is_zero():
    b = np.arange(10) * 1.2
    a = b + 0.6
    assert step_time_asymmetry(a, b) == pytest.approx(0.0, abs=1e-12)


def test_step_time_asymmetry_known_index():
    b = np.arange(10) * 1.2
    a = b + 0.5  # step of A (B→A) 0.5 s, step of B (A→B) 0.7 s
    assert step_time_asymmetry(a, b) == pytest.approx(2 * 0.2 / 1.2, rel=1e-9)
    assert step_time_asymmetry(b, a) == pytest.approx(2 * 0.2 / 1.2, rel=1e-9)


def test_step_time_asymmetry_skips_hops_and_handles_missing_leg():
    b = np.array([0.0, 1.2, 2.4])
    # An extra A heel strike at 0.9 (a hop on A with no B step in between) is not a step of A.
    a = np.array([0.5, 0.9, 1.7, 2.9])
    # Steps of A: 0.5, 0.5, 0.5 -> 0.5; steps of B: 1.2-0.9=0.3, 2.4-1.7=0.7 -> 0.5.
    assert step_time_asymmetry(a, b) == pytest.approx(0.0, abs=1e-12)
    assert step_time_asymmetry(a, np.array([])) is None


# ---------------------------------------------------------------- tracking and load


def test_tracking_rmse_constant_offset_mask_and_nan_reference():
    t = np.linspace(0, 1, 101)
    q = np.sin(t)
    assert tracking_rmse(q, q - 0.1) == pytest.approx(0.1)
    q_des = q.copy()
    q_des[:50] += 0.3
    mask = np.zeros(101, dtype=bool)
    mask[:50] = True
    assert tracking_rmse(q, q_des, mask) == pytest.approx(0.3)
    assert tracking_rmse(q, q_des, ~mask) == pytest.approx(0.0)
    q_des[:50] = np.nan  # no reference there: excluded, not an error of NaN
    assert tracking_rmse(q, q_des) == pytest.approx(0.0)
    assert math.isnan(tracking_rmse(q, np.full(101, np.nan)))
    with pytest.raises(ValueError):
        tracking_rmse(q, q[:-1])


def test_moving_average_is_causal_with_short_start():
    y = moving_average(np.array([4.0, 0.0, 8.0, 0.0, 0.0]), 2)
    np.testing.assert_allclose(y, [4.0, 2.0, 4.0, 4.0, 0.0])
    np.testing.assert_allclose(moving_average(np.arange(5.0), 1), np.arange(5.0))


def test_peak_load_per_stride_raw_and_low_passed():
    # Two strides of 20 samples: plateau 800 N, and a 1-sample 2500 N impact spike right after touchdown.
    stride = np.r_[[0.0, 2500.0, 100.0, 200.0], np.full(10, 800.0), np.zeros(6)]
    load = np.tile(stride, 2)
    s = np.array([[0, 20], [20, 40]])
    np.testing.assert_allclose(peak_load_per_stride(load, s), [2500.0, 2500.0])
    # 4-sample moving average: the spike is spread to (2500 + 100 + 200 + 800) / 4 = 900. At the very start of
    # the record the window is shorter (warm-up): (0 + 2500) / 2 = 1250.
    np.testing.assert_allclose(peak_load_per_stride(load, s, window=4), [1250.0, 900.0])
    # 8 samples: (2500 + 100 + 200 + 5·800) / 8 = 850 in the second stride.
    np.testing.assert_allclose(peak_load_per_stride(load, s, window=8), [1250.0, 850.0])
    assert peak_load_per_stride(load, np.zeros((0, 2), dtype=int)).shape == (0,)
    with pytest.raises(ValueError):
        peak_load_per_stride(load, np.array([[0, 41]]))


def test_peak_load_per_stride_non_contiguous_strides():
    load = np.arange(10.0)
    np.testing.assert_allclose(peak_load_per_stride(load, np.array([[0, 3], [5, 10]])), [2.0, 9.0])


# ---------------------------------------------------------------- margin of stability


def test_margin_of_stability_hand_computed():
    # l = 0.981 m -> ω0 = sqrt(9.81 / 0.981) = sqrt(10); ξ = 0.5 + 1.0 / sqrt(10) = 0.816228 m.
    m = margin_of_stability(np.array([0.5]), np.array([1.0]), 0.981, np.array([0.9]), g=9.81)
    assert m[0] == pytest.approx(0.9 - (0.5 + 1.0 / math.sqrt(10.0)), abs=1e-12)
    assert m[0] == pytest.approx(0.083772, abs=1e-6)
    # ξ beyond the toe: negative margin.
    assert margin_of_stability(0.5, 2.0, 0.981, 0.9) < 0


def test_margin_of_stability_at_indices():
    x = np.array([0.0, 0.1, 0.2, 0.3])
    v = np.array([1.0, 1.0, 0.0, 0.0])
    bos = np.array([0.5, 0.5, 0.6, 0.2])
    m = margin_of_stability(x, v, np.full(4, 0.981), bos, indices=np.array([1, 2, 3]), g=9.81)
    np.testing.assert_allclose(m, [0.4 - 1 / math.sqrt(10.0), 0.4, -0.1], atol=1e-12)


# ---------------------------------------------------------------- Floquet multipliers

V = np.array([[1.0, 0.5], [0.2, 1.0]])  # well-conditioned, non-orthogonal eigenvectors


def linear_map_states(eigs, n, seed, noise=0.01):
    """s_{k+1} = A s_k + noise, A with the given eigenvalues; columns of very different scale and offset."""
    rng = np.random.default_rng(seed)
    a = V @ np.diag(eigs) @ np.linalg.inv(V)
    s = np.zeros((n, 2))
    for k in range(n - 1):
        s[k + 1] = a @ s[k] + noise * rng.normal(size=2)
    return s * [1.0, 50.0] + [0.3, -2.0]


def test_floquet_stable_map():
    assert floquet_max(linear_map_states([0.5, 0.3], 1000, seed=1)) == pytest.approx(0.5, abs=0.08)


def test_floquet_unstable_map():
    f = floquet_max(linear_map_states([1.2, 0.3], 40, seed=2))
    assert f > 1.0
    assert f == pytest.approx(1.2, abs=0.1)


def test_floquet_needs_min_strides():
    s = linear_map_states([0.5, 0.3], 29, seed=3)
    assert floquet_max(s) is None
    assert floquet_max(s, min_strides=20) is not None
    assert floquet_max(np.zeros((0, 3))) is None


def test_floquet_drops_constant_columns_and_ignores_units():
    s = linear_map_states([0.5, 0.3], 300, seed=4)
    base = floquet_max(s)
    padded = np.column_stack([s, np.full(300, 7.0), np.zeros(300)])
    assert floquet_max(padded) == pytest.approx(base, rel=1e-9)
    assert floquet_max(s * [1000.0, 0.001]) == pytest.approx(base, rel=1e-6)
    assert floquet_max(np.ones((50, 3))) is None


def test_floquet_many_columns_few_strides_reduced_by_pca():
    rng = np.random.default_rng(5)
    s = linear_map_states([0.5, 0.3], 45, seed=5)
    wide = s @ rng.normal(size=(2, 60)) + 1e-3 * rng.normal(size=(45, 60))  # d = 60 > n = 45
    f = floquet_max(wide)
    assert f is not None and math.isfinite(f)
    assert f < 1.0


def test_floquet_skips_non_finite_rows():
    s = linear_map_states([0.5, 0.3], 300, seed=6)
    s[100] = np.nan
    f = floquet_max(s)
    assert f == pytest.approx(0.5, abs=0.15)


# ---------------------------------------------------------------- push robustness


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([(100, True), (200, True), (300, False)], 200.0),
        ([(300, False), (100, True), (200, True)], 200.0),  # order of the series does not matter
        ([(100, False), (200, True)], 0.0),  # smallest fails
        ([(100, True), (200, False), (300, True)], 100.0),  # a lucky larger survival does not count
        ([(100, True), (200, True), (400, True)], 400.0),
        ([(100, True), (200, True), (200, False), (300, True)], 100.0),  # 200 N failed at one gait phase
        ([], 0.0),
    ],
)
def test_push_robustness_monotone(results, expected):
    assert push_robustness(results) == expected


def test_push_robustness_rejects_negative():
    with pytest.raises(ValueError):
        push_robustness([(-10.0, True)])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20).map(lambda k: 50.0 * k), st.booleans()), max_size=30))
def test_push_robustness_property(results):
    r = push_robustness(results)
    # Everything tried up to r was survived, and r is 0 or a survived magnitude.
    assert all(ok for m, ok in results if m <= r) or r == 0.0
    assert r == 0.0 or any(m == r and ok for m, ok in results)
    # Nothing larger qualifies: the next larger tried magnitude (if any) had a failure at or below it.
    larger = sorted({m for m, _ in results if m > r})
    if larger:
        assert not all(ok for m, ok in results if m <= larger[0])


# ---------------------------------------------------------------- summarize on a synthetic episode

DT = 0.005
BW = 750.0


def synthetic_episode(seconds: float, fell: bool, seed: int = 0) -> tuple[EpisodeSignals, dict]:
    """A walking record with known events: prosthetic strides alternate 1.02 / 0.98 s, the sound leg strikes
    0.45 s after every prosthetic heel strike, stance lasts 0.6 s, COM moves at 1 m/s."""
    rng = np.random.default_rng(seed)
    n = round(seconds / DT) + 1
    t = np.arange(n) * DT
    hs_p = [60]  # sample index of the first prosthetic heel strike (0.3 s)
    while True:
        step = 204 if len(hs_p) % 2 else 196  # 1.02 s, 0.98 s
        if hs_p[-1] + step >= n:
            break
        hs_p.append(hs_p[-1] + step)
    hs_p = np.array(hs_p)
    hs_s = hs_p + 90  # 0.45 s
    hs_s = hs_s[hs_s < n]

    def force_for(hs):
        f = np.zeros(n)
        for h in hs:
            f[h : h + 120] = 700.0
            f[h + 1 : h + 3] = 0.0  # touchdown chatter, shorter than the 20 ms dwell
        return f

    prosth_force = force_for(hs_p)
    # Load cell: 10-sample ramp to an 800 N plateau with a 2500 N one-sample impact at touchdown.
    load = np.zeros(n)
    for h in hs_p:
        seg = np.r_[np.linspace(0, 800, 10), np.full(100, 800.0)]
        seg[0] = 2500.0  # MA over 4 samples: (2500 + 89 + 178 + 267) / 4 = 758 N < 800 N
        load[h : h + seg.size] = seg[: max(0, min(seg.size, n - h))]

    # Poincaré state: a stable linear map (eigenvalues 0.5, 0.3) sampled at prosthetic heel strike.
    poincare = rng.normal(size=(n, 2))
    poincare[hs_p] = linear_map_states([0.5, 0.3], hs_p.size, seed=seed + 10)

    x_com = 1.0 * t
    knee = 0.6 * np.sin(2 * np.pi * t)
    ankle = 0.2 * np.sin(2 * np.pi * t)
    sig = EpisodeSignals(
        t=t,
        x_com=x_com,
        v_com=np.ones(n),
        com_height=np.full(n, 0.981),
        trunk_height=np.full(n, 0.9),
        pitch=np.zeros(n),
        hip_x=x_com + 0.02,
        sound_force=force_for(hs_s),
        prosth_force=prosth_force,
        load_cell=load,
        knee_q=knee,
        knee_q_des=knee + 0.05,
        ankle_q=ankle,
        ankle_q_des=np.full(n, np.nan),  # no ankle reference recorded
        prosth_toe_x=x_com + 0.40,
        sound_toe_x=x_com + 0.35,
        poincare=poincare,
        fell=fell,
        body_weight_n=BW,
        dt=DT,
    )
    return sig, {"hs_p": hs_p, "hs_s": hs_s, "t": t}


def test_summarize_synthetic_episode_known_answers():
    sig, truth = synthetic_episode(45.0, fell=True)
    out = summarize(sig)
    json.dumps(out, allow_nan=False)  # JSON-ready
    t, hs_p = truth["t"], truth["hs_p"]

    assert out["fell"] is True
    assert out["time_to_fall_s"] == pytest.approx(45.0)
    assert out["distance_m"] == pytest.approx(45.0)
    assert out["strides"] == hs_p.size - 1
    assert isinstance(out["strides"], int)

    steady = t[hs_p][t[hs_p] >= 2.0]
    d = np.diff(steady)
    assert set(np.round(d, 6)) == {1.02, 0.98}
    assert out["stride_time_cv"] == pytest.approx(np.std(d, ddof=1) / np.mean(d), rel=1e-9)
    assert out["stride_time_cv"] == pytest.approx(0.02, abs=0.001)
    # Sound step 0.45 s, prosthetic step ≈ 0.55 s: 2·0.1 / 1.0.
    assert out["step_time_asymmetry"] == pytest.approx(0.2, abs=0.005)
    assert out["knee_rmse_rad"] == pytest.approx(0.05)
    assert out["ankle_rmse_rad"] is None
    # ξ = x + 1/sqrt(10): margins 0.40 − 0.3162 (prosthesis) and 0.35 − 0.3162 (sound).
    assert out["mos_min_m"] == pytest.approx(0.35 - 1 / math.sqrt(10.0), abs=1e-9)
    # The 20 ms (4-sample) low-pass removes the impact spike: the plateau is the peak.
    assert out["prosthesis_peak_load_n"] == pytest.approx(800.0)
    assert out["prosthesis_peak_load_bw"] == pytest.approx(800.0 / BW)
    assert steady.size >= 30
    assert 0.2 < out["floquet_max"] < 1.0


def test_summarize_short_episode_gives_nulls():
    sig, truth = synthetic_episode(8.0, fell=False)
    out = summarize(sig)
    json.dumps(out, allow_nan=False)
    assert out["time_to_fall_s"] is None
    assert out["fell"] is False
    assert out["floquet_max"] is None  # fewer than 30 strides
    assert out["strides"] == truth["hs_p"].size - 1
    assert out["stride_time_cv"] is not None


def test_summarize_no_walking_and_raw_load():
    sig, _ = synthetic_episode(1.5, fell=True)
    out = summarize(sig)
    json.dumps(out, allow_nan=False)
    for key in (
        "stride_time_cv",
        "step_time_asymmetry",
        "floquet_max",
        "mos_min_m",
        "prosthesis_peak_load_n",
    ):
        assert out[key] is None
    sig, _ = synthetic_episode(10.0, fell=False)
    assert summarize(sig, load_lowpass_s=0.0)["prosthesis_peak_load_n"] == pytest.approx(2500.0)


def test_summarize_is_cheap_on_a_60s_episode():
    sig, _ = synthetic_episode(60.0, fell=False)  # 12,001 samples at 200 Hz
    t0 = time.perf_counter()
    summarize(sig)
    assert time.perf_counter() - t0 < 1.0  # generous; typically a few ms


def test_episode_signals_validates_shapes():
    sig, _ = synthetic_episode(3.0, fell=False)
    kwargs = {k: getattr(sig, k) for k in sig.__dataclass_fields__}
    kwargs["pitch"] = kwargs["pitch"][:-1]
    with pytest.raises(ValueError, match="pitch"):
        EpisodeSignals(**kwargs)
    kwargs["pitch"] = sig.pitch
    kwargs["poincare"] = np.zeros(0)  # no Poincaré state recorded: allowed, floquet_max is None
    assert summarize(EpisodeSignals(**kwargs))["floquet_max"] is None
    kwargs["dt"] = 0.0
    with pytest.raises(ValueError, match="dt"):
        EpisodeSignals(**kwargs)


def test_period_two_gait_is_analysed_on_the_two_stride_map() -> None:
    """A stable period-2 orbit: the 1-stride map shows |λ| ≈ 1, the 2-stride map its true stability (0.25)."""
    from envs.metrics import gait_period

    rng = np.random.default_rng(0)
    n, d = 1000, 3
    offset = np.array([1.0, -0.5, 0.3])
    dev = np.zeros((n, d))
    for k in range(1, n):
        dev[k] = 0.5 * dev[k - 1] + 0.02 * rng.standard_normal(d)  # per-stride contraction 0.5: 0.25 per 2 strides
    states = dev + np.where((np.arange(n) % 2 == 0)[:, None], offset, -offset)
    assert gait_period(states) == 2
    assert floquet_max(states) > 0.9  # the alternation looks like a multiplier of -1
    assert floquet_max(states, period=2) == pytest.approx(0.25, abs=0.1)
    assert gait_period(dev) == 1
