"""Loss weights for distilling an RL expert (`optim.correction_weight`): the steps where the expert's correction over
the PD departs from what its gait phase predicts (push recoveries) count more in the imitation loss. They must pick
those steps out, reach the loss mask of the window batches, be refused where there is no correction to weight, and
leave a weight-0 configuration exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.train_config import CONFIG_DIR, ConfigError, config_from_dict, load_config
from experiments.train_data import (
    PHASE_BINS,
    Prepared,
    Scaling,
    Series,
    TrainError,
    WindowSampler,
    correction_weights,
    phase_bins,
    weight_summary,
)


def _walk(n: int, seed: int, spikes: tuple[int, ...] = ()) -> Series:
    """A made episode: a correction that is a function of the gait phase (two domains, τ ramps), noise, and a
    reaction the phase does not predict at `spikes` (10 steps each)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    stance = ((t // 100) % 2 == 0).astype(np.float32)
    tau = ((t % 100) / 100.0).astype(np.float32)
    bins = phase_bins({"ishumanswing": stance, "tau": tau})
    pattern = np.stack([20 * np.sin(2 * np.pi * tau) * (2 * stance - 1), 10 * np.cos(2 * np.pi * tau)], 1)
    y = (pattern + rng.normal(0, 1.0, size=(n, 2))).astype(np.float32)
    for s in spikes:
        y[s : s + 10] += np.array([40.0, -30.0], np.float32)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return Series(f"e{seed}", x, y, phase=bins)


def test_phase_bins_split_domains_and_clip_tau() -> None:
    cols = {"ishumanswing": np.array([1.0, 1.0, 0.0, 0.0, 0.0]), "tau": np.array([0.0, 0.049, 0.05, 1.49, 7.0])}
    assert phase_bins(cols).tolist() == [PHASE_BINS, PHASE_BINS, 1, PHASE_BINS - 1, PHASE_BINS - 1]
    with pytest.raises(TrainError, match=r"lacks column\(s\) tau.*correction_weight"):
        phase_bins({"ishumanswing": np.zeros(3)}, "old")


def test_weights_single_out_what_the_phase_does_not_predict() -> None:
    series = [_walk(2000, 0, spikes=(500, 1400)), _walk(2000, 1)]
    (w0, w1) = correction_weights(series, 4.0)
    assert w0.dtype == np.float32 and len(w0) == 2000 and len(w1) == 2000
    spikes = np.r_[500:510, 1400:1410]
    rest = np.setdiff1d(np.arange(2000), spikes)
    # the reactions carry weights many times the nominal walk's; the nominal walk (pattern + noise) stays near 1 + k·r²
    assert w0[spikes].min() > 10 * np.median(w0[rest])
    assert np.median(w1) < 5.0 and w1.min() >= 1.0
    # strength 0: every step counts the same; a larger strength, more emphasis on the same steps
    assert all((w == 1.0).all() for w in correction_weights(series, 0.0))
    (s1, _) = correction_weights(series, 1.0)
    assert w0[spikes].mean() / w0.mean() > s1[spikes].mean() / s1.mean() > 1.0
    summary = weight_summary([w0, w1], 4.0)
    assert summary["strength"] == 4.0 and summary["top1pct_share"] > 0.05 > 0.01  # uneven: 0.01 would be flat
    assert summary["p50_over_mean"] < 1.0 < summary["p99_over_mean"] <= summary["max_over_mean"]
    with pytest.raises(TrainError, match="gait-phase bins"):
        correction_weights([Series("bare", series[0].x, series[0].y)], 1.0)


def test_the_loss_mask_carries_the_weights() -> None:
    series = [_walk(400, 2, spikes=(200,)), _walk(300, 3)]
    weights = correction_weights(series, 2.0)
    scaling = Scaling.fit(series)
    plain = list(WindowSampler(Prepared.build(series, scaling), 50, 10, 40, 8).epoch(np.random.default_rng(5)))
    prep = Prepared.build(series, scaling, weights)
    weighted = list(WindowSampler(prep, 50, 10, 40, 8).epoch(np.random.default_rng(5)))
    assert len(plain) == len(weighted)
    for (xa, ya, ma), (xb, yb, mb) in zip(plain, weighted, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)  # the same windows are drawn
        assert torch.equal(ma > 0, mb > 0)  # the warm-up and padding stay out of the loss
        assert not torch.equal(ma, mb)
    # each weighted mask row is its window's weights: find the window by its inputs
    xb, _, mb = weighted[0]
    row = xb[0].numpy()
    for e, x in enumerate(prep.x):
        hits = np.flatnonzero((x[:, 0] == row[0, 0]) & (x[:, 1] == row[0, 1]))
        if len(hits):
            s = int(hits[0])
            np.testing.assert_array_equal(mb[0, 10:].numpy(), weights[e][s + 10 : s + 50])
            break
    else:
        raise AssertionError("window not found")
    stream = next(WindowSampler(prep, 50, 10, 40, 8).stream(np.random.default_rng(5)))[2]
    assert stream[:, 10:].min() >= 1.0 and (stream[:, :10] == 0).all()
    with pytest.raises(TrainError, match="one loss weight per step"):
        Prepared.build(series, scaling, weights[:1])


def test_correction_weight_config() -> None:
    tiny = load_config(CONFIG_DIR / "train_tiny.toml")
    assert tiny.optim.correction_weight == 0.0 and "correction_weight" not in tiny.to_dict()["optim"]
    on = config_from_dict({"target": "pd_residual", "optim": {"correction_weight": 2.0}})
    assert on.to_dict()["optim"]["correction_weight"] == 2.0
    with pytest.raises(ConfigError, match=r"optim.correction_weight.*pd_residual"):
        config_from_dict({"optim": {"correction_weight": 2.0}})  # torque target: no correction to weight
    with pytest.raises(ConfigError, match=r"optim.correction_weight.*\[0, 100\]"):
        config_from_dict({"target": "pd_residual", "optim": {"correction_weight": -1.0}})
