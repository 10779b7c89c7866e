"""The CLI tables' number formats: an event count never reads as none or all unless it is."""

from __future__ import annotations

from experiments.tables import count_of, percent_floor, sparsity_by_layer


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


def test_sparsity_by_layer_names_each_layer_and_kind() -> None:
    text = sparsity_by_layer({"dx": [0.498, 0.706], "dh": [0.983, 0.974]})
    assert text == "layer 1 Δx 50 % Δh 98 % · layer 2 Δx 71 % Δh 97 %"
