"""The CLI tables' number formats: an event count never reads as none or all unless it is."""

from __future__ import annotations

from experiments.tables import count_of, percent_floor


def test_count_of_reads_zero_or_all_only_when_exact() -> None:
    assert count_of(1, 12000) == "1/12000 (<0.1 %)"
    assert count_of(0, 12000) == "0/12000 (0.0 %)"
    assert count_of(11999, 12000) == "11999/12000 (>99.9 %)"
    assert count_of(12000, 12000) == "12000/12000 (100.0 %)"
    assert count_of(51, 12000) == "51/12000 (0.4 %)"
    assert count_of(3, 0) == "3/0" and count_of(2, 5, pct=False) == "2/5" and count_of(None, 5) is None


def test_percent_floor_rounds_down() -> None:
    assert percent_floor(59998, 60000) == "99.99 %" and percent_floor(60000, 60000) == "100.00 %"
    assert percent_floor(1, 3) == "33.33 %"
