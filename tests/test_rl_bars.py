"""benchmarks/rl_vs_pd.py's verdicts on issue #16's bars, on rows made by hand (the script's real tables are in
docs/rl.md)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest


def _side(falls: int = 0, knee: float = 1.0, ankle: float = 1.0, torque=(100.0, 70.0), rate=(14e3, 11e3)) -> dict:
    return {
        "seeds": [5, 6, 7, 8, 9],
        "falls": falls,
        "knee_ratio_mean": knee,
        "ankle_ratio_mean": ankle,
        "peak_torque_nm": list(torque),
        "peak_rate_nm_s": list(rate),
    }


def _rows(ratio: float | None = 1.2, **rl: Any) -> dict[str, Any]:
    pd = _side(torque=(101.0, 96.0), rate=(17e3, 16e3))
    rows: dict[str, Any] = {
        "v0.8_s0": {"pd": pd, "rl": _side(**rl)},
        "v1.2_s0": {"pd": pd, "rl": _side(knee=0.9, ankle=1.1)},
    }
    if ratio is not None:
        rows["all"] = {"ratio": ratio}
    return rows


def test_a_controller_within_every_bar_with_the_gain(rl_vs_pd: ModuleType) -> None:
    b = rl_vs_pd.bars(_rows())
    assert b["within"] and b["gain"]
    assert b["episodes"] == 10 and b["falls"] == 0
    assert b["ankle_tracking"] == {"worst_ratio": 1.1, "condition": "v1.2_s0", "ok": True}
    assert "within every RL bar: yes" in rl_vs_pd.bars_text(b)


@pytest.mark.parametrize(
    "rl,failed",
    [
        ({"falls": 1}, "falls 1 of 10 episodes (0) — NO"),
        ({"knee": 1.36}, "knee worst 1.36× (v0.8_s0), ankle worst 1.10× (v1.2_s0) — NO"),
        ({"torque": (100.0, 96.5)}, "above on v0.8_s0 ankle) — NO"),
        ({"rate": (17001.0, 0.0)}, "on 3 of 4 joint-conditions (above on v0.8_s0 knee)"),
    ],
)
def test_each_rl_bar_fails_alone_and_says_where(rl_vs_pd: ModuleType, rl: dict[str, Any], failed: str) -> None:
    b = rl_vs_pd.bars(_rows(**rl))
    assert not b["within"] and b["gain"]  # the gain is its own verdict
    assert failed in rl_vs_pd.bars_text(b)


def test_the_gain_is_the_median_push_ratio_at_1_2(rl_vs_pd: ModuleType) -> None:
    assert not rl_vs_pd.bars(_rows(ratio=1.19))["gain"]
    no_pushes = rl_vs_pd.bars(_rows(ratio=None))
    assert not no_pushes["gain"] and no_pushes["within"]
    assert "no push trials — NO" in rl_vs_pd.bars_text(no_pushes)


def test_no_common_condition_is_an_error_not_a_pass(rl_vs_pd: ModuleType) -> None:
    with pytest.raises(ValueError, match="no condition in common"):
        rl_vs_pd.bars({"all": {"ratio": 1.5}})


def test_the_distillation_bar_is_half_the_experts_gain_at_090_sparsity(rl_vs_pd: ModuleType) -> None:
    bar = rl_vs_pd.distillation_bar
    held = bar(1.1, 1.2, [0.91, 0.93])
    assert held["ok"] and held["kept"] == 0.5 and held["sparsity_min"] == 0.91
    assert "keeps 50% of it (≥ 50%)" in rl_vs_pd.distillation_text(held) and held["ok"]
    assert not bar(1.09, 1.2, [0.91, 0.93])["ok"]  # 45 % of the gain
    assert "keeps none of it (-100%)" in rl_vs_pd.distillation_text(bar(0.8, 1.2, [0.95]))  # worse than the PD
    assert not bar(1.2, 1.2, [0.91, 0.899])["ok"]  # one condition below 0.90 sparsity
    assert not bar(1.2, 1.2, [0.95, None])["ok"]  # a condition without a delta network's sparsity
    assert not bar(1.2, 1.2, [None, None])["ok"]  # the RL policy itself: no sparsity at all


def test_an_expert_without_a_gain_leaves_nothing_to_keep(rl_vs_pd: ModuleType) -> None:
    for expert in (1.0, 0.9, None):
        d = rl_vs_pd.distillation_bar(1.1, expert, [0.95])
        assert d["kept"] is None and not d["ok"]
    assert "no gain to keep" in rl_vs_pd.distillation_text(rl_vs_pd.distillation_bar(1.1, 1.0, [0.95]))


def _candidate(rl_vs_pd: ModuleType, falls: int = 0, sparsity: float = 0.92, median: float = 1.2, mean: float = 1.1):
    rows = _rows(ratio=median, falls=falls)
    for v in rows.values():
        if "rl" in v:
            v["rl"]["sparsity"] = sparsity
    rows["all"]["mean_ratio"] = mean
    rows["all"]["paired"] = {"larger": 5, "smaller": 1, "same": 4, "sign_test_p": 0.22}
    rows["bars"] = rl_vs_pd.bars(rows)
    return rows


def test_the_student_rule_takes_the_largest_mean_of_those_that_qualify(
    rl_vs_pd: ModuleType, pick_student: ModuleType
) -> None:
    c = lambda **kw: _candidate(rl_vs_pd, **kw)  # noqa: E731
    verdicts, winner = pick_student.pick(
        {
            "fell": c(falls=1, mean=1.3),  # the largest mean, but not within every bar
            "dense": c(sparsity=0.89, mean=1.25),
            "no_gain": c(median=1.05, mean=1.2),
            "steady": c(mean=1.08),
            "steadier": c(mean=1.12),
        }
    )
    assert winner == "steadier"
    assert [n for n, v in verdicts.items() if v["ok"]] == ["steady", "steadier"]
    assert verdicts["dense"]["sparsity_min"] == 0.89
    assert pick_student.pick({"fell": c(falls=1)})[1] is None
    assert pick_student.pick({"no_gain": c(median=1.05)}, min_median=1.05)[1] == "no_gain"


def test_the_student_rule_refuses_a_comparison_without_push_trials(pick_student: ModuleType) -> None:
    with pytest.raises(ValueError, match="no 'bars' and 'all'"):
        pick_student.verdict({"v1.0_s0": {}})
