"""Gait-event detection on synthetic contact-force signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.gait_events import detect_contacts, gait_events, strides

ON, OFF = 50.0, 20.0


def reference_contacts(force: np.ndarray, on_n: float, off_n: float, min_dwell: int) -> np.ndarray:
    """Plain sample-by-sample loop with the documented semantics (the specification for the fast version)."""
    out = np.zeros(len(force), dtype=bool)
    if len(force) == 0:
        return out
    state = bool(force[0] > on_n)
    last_change = -(10**9)
    out[0] = state
    for i in range(1, len(force)):
        if i - last_change >= min_dwell:
            if state and force[i] < off_n:
                state, last_change = False, i
            elif not state and force[i] > on_n:
                state, last_change = True, i
        out[i] = state
    return out


def square_wave(periods: int, swing: int, stance: int, high: float = 700.0) -> tuple[np.ndarray, list, list]:
    """Force that is 0 N in swing and ``high`` in stance; returns force, heel-strike and toe-off indices."""
    f, hs, to = [], [], []
    for _ in range(periods):
        f += [0.0] * swing
        hs.append(len(f))
        f += [high] * stance
        to.append(len(f))
    return np.array(f), hs, to


def test_square_wave_with_touchdown_chatter_gives_exact_events():
    force, hs, to = square_wave(5, swing=80, stance=120)
    clean = force.copy()
    # Contact chatter: the force drops to zero for a few samples just after every touchdown.
    for h in hs:
        force[h + 2 : h + 4] = 0.0
        force[h + 6] = 5.0
    c = detect_contacts(force, ON, OFF, min_dwell=10)
    np.testing.assert_array_equal(c, clean > ON)
    got_hs, got_to = gait_events(c)
    np.testing.assert_array_equal(got_hs, hs)
    np.testing.assert_array_equal(got_to, to[:-1])  # the last stance runs to the end of the record

    # Without the dwell the chatter shows up as extra heel strikes: the dwell is doing the work.
    naive_hs, _ = gait_events(detect_contacts(force, ON, OFF, min_dwell=1))
    assert len(naive_hs) == 3 * len(hs)


def test_hysteresis_band_holds_state():
    force = np.array([0, 30, 49, 51, 40, 21, 30, 19, 45, 50, 51.0])
    c = detect_contacts(force, ON, OFF, min_dwell=1)
    np.testing.assert_array_equal(c, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1])


def test_initial_contact_is_not_an_event_and_not_locked():
    force = np.array([600.0, 600.0, 0.0, 0.0, 0.0, 0.0, 600.0, 600.0])
    c = detect_contacts(force, ON, OFF, min_dwell=3)
    np.testing.assert_array_equal(c, [1, 1, 0, 0, 0, 0, 1, 1])
    hs, to = gait_events(c)
    np.testing.assert_array_equal(hs, [6])
    np.testing.assert_array_equal(to, [2])


def test_nan_force_holds_state():
    force = np.array([0.0, 100.0, np.nan, np.nan, 0.0])
    np.testing.assert_array_equal(detect_contacts(force, ON, OFF, 1), [0, 1, 1, 1, 0])


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_short_input(n):
    c = detect_contacts(np.full(n, 100.0), ON, OFF, 5)
    assert c.shape == (n,) and c.dtype == bool
    hs, to = gait_events(c)
    assert hs.size == 0 and to.size == 0
    assert strides(hs).shape == (0, 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="on_n >= off_n"):
        detect_contacts(np.zeros(3), 10.0, 20.0, 1)
    with pytest.raises(ValueError, match="min_dwell"):
        detect_contacts(np.zeros(3), ON, OFF, 0)
    with pytest.raises(ValueError, match="1-D"):
        detect_contacts(np.zeros((3, 2)), ON, OFF, 1)
    with pytest.raises(ValueError, match="increasing"):
        strides(np.array([5, 3]))


def test_strides_pairs_consecutive_heel_strikes():
    s = strides(np.array([10, 130, 250, 371]))
    np.testing.assert_array_equal(s, [[10, 130], [130, 250], [250, 371]])
    assert s.dtype == np.int64
    assert strides(np.array([7])).shape == (0, 2)


def test_long_episode_is_fast():
    import time

    force, hs, _ = square_wave(120, swing=40, stance=60)  # 12,000 samples, like a 60 s episode at 200 Hz
    t0 = time.perf_counter()
    got, _ = gait_events(detect_contacts(force, ON, OFF, 4))
    elapsed = time.perf_counter() - t0
    np.testing.assert_array_equal(got, hs)
    assert elapsed < 0.5  # generous; typically well under 5 ms


LEVELS = [0.0, 10.0, 30.0, 49.0, 60.0, 700.0]  # below off, in the band, above on
forces = st.lists(st.sampled_from(LEVELS), min_size=0, max_size=200).map(np.array)


@settings(max_examples=150, deadline=None)
@given(forces, st.integers(1, 12))
def test_matches_reference_loop(force, dwell):
    expected = reference_contacts(force, ON, OFF, dwell)
    np.testing.assert_array_equal(detect_contacts(force, ON, OFF, dwell), expected)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.booleans(), max_size=200).map(np.array))
def test_events_alternate(contact):
    hs, to = gait_events(contact)
    kinds = np.r_[np.ones(hs.size), np.zeros(to.size)][np.argsort(np.r_[hs, to], kind="stable")]
    assert np.all(np.diff(kinds) != 0)  # never two heel strikes (or two toe offs) in a row
    assert abs(hs.size - to.size) <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(8, 40), min_size=1, max_size=20), st.booleans(), st.integers(1, 8))
def test_dwell_invariant_without_chatter(segments, start_high, dwell):
    # Clean square waves with every segment at least 8 samples long: any dwell up to 8 changes nothing.
    levels = [700.0 if (i % 2 == 0) == start_high else 0.0 for i in range(len(segments))]
    force = np.repeat(levels, segments)
    c = detect_contacts(force, ON, OFF, dwell)
    np.testing.assert_array_equal(c, detect_contacts(force, ON, OFF, 1))
    np.testing.assert_array_equal(c, force > ON)


def test_fill_gaps_closes_short_gaps_only() -> None:
    from envs.gait_events import fill_gaps

    c = np.array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    out = fill_gaps(c, max_gap=3)
    np.testing.assert_array_equal(out, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    # Leading and trailing gaps are not touched; a record without gaps is unchanged.
    edge = np.array([0, 0, 1, 1, 0], dtype=bool)
    np.testing.assert_array_equal(fill_gaps(edge, 5), edge)
    np.testing.assert_array_equal(fill_gaps(np.ones(5, bool), 3), np.ones(5, bool))


def test_clean_contacts_drops_scuffs_and_closes_bounces() -> None:
    from envs.gait_events import clean_contacts

    c = np.array([1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1], dtype=bool)
    out = clean_contacts(c, min_len=2)
    # The one-sample bounce at index 3 is closed, the one-sample scuff at index 11 is dropped.
    np.testing.assert_array_equal(out, [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
