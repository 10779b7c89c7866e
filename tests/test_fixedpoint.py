"""The fixed-point formats of controllers.fixedpoint: round half to even, saturation, codes and values."""

from __future__ import annotations

import numpy as np

from controllers.fixedpoint import (
    ACC_ONE,
    Q17_MAX_VALUE,
    Q17_MIN_VALUE,
    THETA_MAX,
    THETA_MAX_VALUE,
    q17_codes,
    q17_codes_with_clip_count,
    q88_codes,
    q88_round,
    rhe,
    rhe_array,
)


def test_rounding_helpers() -> None:
    v = np.arange(-1000, 1000)
    for s in (1, 7, 8):
        expect = [round(int(x) / 2**s) for x in v]  # Python's round is half-to-even and exact here
        assert [rhe(int(x), s) for x in v] == expect
        assert rhe_array(v, s).tolist() == expect
    np.testing.assert_array_equal(
        q88_codes(np.array([0.5 / 256, 1.5 / 256, -0.5 / 256, 200.0, -200.0])), [0, 2, 0, 32767, -32768]
    )


def test_q17_rounds_half_to_even_and_saturates() -> None:
    codes, clipped = q17_codes_with_clip_count(np.array([2.5, 3.5, -2.5, 127.4, 127.6, -128.5, 300.0]) / 128)
    assert codes.dtype == np.int8
    assert codes.tolist() == [2, 4, -2, 127, 127, -128, 127]
    assert clipped == 2  # 127.6 rounds to 128 and 300 — both above 127/128
    np.testing.assert_array_equal(q17_codes(np.array([2.5, 300.0]) / 128), [2, 127])


def test_ranges_and_threshold_register() -> None:
    assert (Q17_MIN_VALUE, Q17_MAX_VALUE) == (-1.0, 127 / 128)
    assert ACC_ONE == 2**15 and THETA_MAX == 511 and THETA_MAX_VALUE == 511 / 256
    assert [q88_round(t) for t in (4 / 256, 0.5, 1.5 / 256, 2.5 / 256, 3.0)] == [4, 128, 2, 2, 768]  # not saturated
