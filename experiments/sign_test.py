"""The two-sided exact sign test on paired trials: how often one controller survived a larger push than another on
the same seed and condition, and how likely so uneven a split is if neither is better (ties dropped).

Used by the checkpoint selection's confirmation (:mod:`experiments.rl_select`) and ``benchmarks/rl_vs_pd.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def sign_test_p(larger: int, smaller: int) -> float:
    """Two-sided exact sign test: P(a split at least as uneven as larger:smaller | each untied pair is a fair coin)."""
    n, k = larger + smaller, min(larger, smaller)
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n)


def paired_split(mine: Sequence[float], theirs: Sequence[float]) -> tuple[int, int, int]:
    """How many pairs ``mine`` won, lost and tied (the same trials in the same order)."""
    if len(mine) != len(theirs):
        raise ValueError(f"paired trials need the same number on both sides, got {len(mine)} and {len(theirs)}")
    larger = sum(a > b for a, b in zip(mine, theirs, strict=True))
    smaller = sum(a < b for a, b in zip(mine, theirs, strict=True))
    return larger, smaller, len(mine) - larger - smaller
