"""experiments/sign_test.py: the sign test under the paired push counts of benchmarks/rl_vs_pd.py and the selection's
confirmation."""

from __future__ import annotations

import itertools
from types import ModuleType

import pytest

from experiments.sign_test import paired_split, sign_test_p


def _brute_force(larger: int, smaller: int) -> float:
    """Every equally likely sequence of n fair coins; the share at least as uneven as the observed split."""
    n = larger + smaller
    gap = abs(larger - smaller)
    hits = sum(abs(2 * sum(bits) - n) >= gap for bits in itertools.product((0, 1), repeat=n))
    return hits / 2**n


@pytest.mark.parametrize("larger,smaller", [(5, 0), (0, 5), (9, 1), (6, 6), (7, 3), (1, 0), (8, 4)])
def test_sign_test_matches_enumerating_every_outcome(larger: int, smaller: int) -> None:
    assert sign_test_p(larger, smaller) == pytest.approx(_brute_force(larger, smaller))


def test_sign_test_values_a_reader_can_check() -> None:
    assert sign_test_p(5, 0) == pytest.approx(2 / 32)  # all five the same way: 2 of 32 outcomes
    assert sign_test_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert sign_test_p(0, 0) == 1.0  # nothing untied: no evidence either way
    assert sign_test_p(32, 33) == 1.0
    assert sign_test_p(52, 17) < 1e-4 < sign_test_p(42, 23) < 0.05  # session 14's and 15's 100-episode splits


def test_the_benchmark_uses_the_same_test_and_pairs_must_match(rl_vs_pd: ModuleType) -> None:
    assert rl_vs_pd.sign_test_p is sign_test_p
    assert paired_split([300.0, 250.0, 200.0, 50.0], [250.0, 250.0, 300.0, 0.0]) == (2, 1, 1)
    with pytest.raises(ValueError, match="the same number on both sides, got 2 and 1"):
        paired_split([1.0, 2.0], [1.0])
