"""The PD baseline's domain switching, on synthetic sensor sequences (the closed loop is in test_walking.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from controllers.pd import STANCE, SWING, AmproPD, PDParams


def _run(pd: AmproPD, seconds: float, *, knee: float, thigh: float, thigh_vel: float, load: float) -> None:
    obs = np.array([knee, 0.0, 0.0, 0.0, thigh, thigh_vel, load], dtype=np.float32)
    for _ in range(round(seconds / pd.dt)):
        pd.act(obs)


def _loaded_stance(params: PDParams | None = None) -> AmproPD:
    pd = AmproPD(0.005, params=params)
    _run(pd, 0.3, knee=0.15, thigh=0.1, thigh_vel=0.5, load=700.0)  # past min_stance_s, full weight
    assert pd.domain == STANCE
    return pd


# Hip 13 cm behind the mid-foot (thigh 0.14 rad forward, knee 0.15) and 14 cm ahead of it (thigh 0.2 rad back).
BEHIND = {"knee": 0.15, "thigh": 0.14}
AHEAD = {"knee": 0.05, "thigh": -0.2}


def test_late_stance_rule_waits_for_the_hip_to_pass_over_the_foot() -> None:
    pd = _loaded_stance()
    # Light load (double support) and a thigh swinging forward: push-off only once the hip is over the foot.
    _run(pd, 0.2, **BEHIND, thigh_vel=0.5, load=100.0)
    assert pd.hip_x < pd.p.late_stance_min_x
    assert pd.domain == STANCE
    _run(pd, 0.01, **AHEAD, thigh_vel=0.5, load=100.0)
    assert pd.domain == SWING
    # Without the consent (the earlier rule) the same light load behind the foot lifts the knee.
    old = _loaded_stance(replace(PDParams(), late_stance_min_x=-np.inf))
    _run(old, 0.2, **BEHIND, thigh_vel=0.5, load=100.0)
    assert old.domain == SWING


@pytest.mark.parametrize("where", [BEHIND, AHEAD])
def test_an_unloaded_foot_starts_the_swing_after_unload_s_wherever_the_hip_is(where: dict) -> None:
    """Lifting the foot is the user's decision: the unload rule needs no consent (waiting would drag the toe)."""
    pd = _loaded_stance()
    _run(pd, 0.01, **where, thigh_vel=0.0, load=0.0)
    assert pd.domain == STANCE
    _run(pd, 0.02, **where, thigh_vel=0.0, load=0.0)
    assert pd.domain == SWING


@pytest.mark.parametrize(
    ("knee", "load_bw", "domain"),
    [(0.9, 0.15, SWING), (0.3, 0.15, STANCE), (0.9, 0.6, STANCE)],
    ids=["toe-scuff-flexed-knee", "heel-strike", "heavy-early-landing"],
)
def test_swing_ends_on_a_landing_not_on_a_toe_scuff(knee: float, load_bw: float, domain: int) -> None:
    pd = _loaded_stance()
    _run(pd, 0.03, **AHEAD, thigh_vel=0.0, load=0.0)
    assert pd.domain == SWING
    _run(pd, 0.3, knee=knee, thigh=0.4, thigh_vel=0.0, load=0.0)  # past min_swing_s, in the air
    _run(pd, 0.01, knee=knee, thigh=0.4, thigh_vel=0.0, load=load_bw * pd.body_weight)
    assert pd.domain == domain
