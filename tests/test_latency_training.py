"""Latency-aware training (issue #14): the delta stages' ``latency_weight`` × the surrogate's hinge over the budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from controllers import latency_surrogate as ls
from controllers.deltagru import DeltaGRU
from experiments import train_stages
from experiments.train_config import ConfigError, TrainConfig, config_from_dict, load_config
from experiments.train_data import Prepared, Scaling, Series
from experiments.train_stages import LatencyPricer, StageSpec, train_stage, validate

torch.set_num_threads(1)
THETA_X, THETA_H = 6 / 256, 24 / 256


def _series(seed: int, n: int = 6, T: int = 300) -> list[Series]:
    """Smooth inputs with a jump every 50 steps (a 'heel strike': every input changes at once)."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        t = np.arange(T)[:, None]
        x = np.sin(2 * np.pi * t / 97 + rng.uniform(0, 6, 5)) + 0.8 * ((t // 50) % 2) * rng.normal(size=5)
        x = x.astype(np.float32)
        y = np.stack([x[:, 0] + 0.5 * x[:, 1] * x[:, 2], np.tanh(x[:, 3] - x[:, 4])], axis=-1).astype(np.float32)
        out.append(Series(f"e{seed}_{e}", x, y))
    return out


@pytest.fixture(scope="module")
def data() -> tuple[Prepared, Prepared, Scaling, TrainConfig]:
    train_s, val_s = _series(0), _series(1, n=2)
    scaling = Scaling.fit(train_s)
    cfg = config_from_dict({"optim": {"window": 60, "warmup": 10, "batch_size": 8, "lr": 3e-3}})
    return Prepared.build(train_s, scaling), Prepared.build(val_s, scaling), scaling, cfg


def _model() -> DeltaGRU:
    torch.manual_seed(0)
    return DeltaGRU(5, 32, 2, 2, THETA_X, THETA_H, qat=True)


def _spec(weight: float, budget_s: float = 21e-6, tau: float = 1 / 256) -> StageSpec:
    return StageSpec(
        "delta",
        1,
        4,
        3e-3,
        THETA_X,
        THETA_H,
        True,
        0.0,
        latency_weight=weight,
        latency_budget_s=budget_s,
        latency_tau=tau,
    )


def test_pre_deltas_count_exactly_what_fires_and_carry_gradient() -> None:
    m = _model()
    x = torch.from_numpy(_series(2, n=2, T=120)[0].x[None]).repeat(2, 1, 1)
    y0 = m(x)
    y, stats, d = m(x, return_stats=True, return_deltas=True)
    assert torch.equal(y, y0)  # asking for the deltas changes nothing
    for layer in range(2):
        hard = sum(
            ((c != 0) & (c.abs() >= th)).sum(-1).double().mean().item()
            for c, th in ((d.x[layer], THETA_X), (d.h[layer], THETA_H))
        )
        assert hard == pytest.approx(stats.fired_cols[layer])
    geo = ls.CycleGeometry.of(2, 5, 32, 125e6)
    lat = ls.step_latency(d.x, d.h, THETA_X, THETA_H, geo, tau=1 / 256)
    assert lat.shape == (2, 120)
    ls.latency_hinge(lat, float(lat.detach().median())).backward()
    for name in ("weight_hh_l0", "weight_ih_l1"):
        grad = getattr(m, name).grad
        assert grad is not None and grad.abs().sum() > 0


def test_weight_zero_computes_nothing_and_records_nothing(data, monkeypatch: pytest.MonkeyPatch) -> None:
    train, val, scaling, cfg = data
    a = _model()
    rec_a = train_stage(a, _spec(0.0), train, val, scaling, cfg, progress=False)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the latency surrogate ran at weight 0")

    monkeypatch.setattr(train_stages, "step_latency", boom)
    b = _model()
    rec_b = train_stage(b, _spec(0.0, budget_s=5e-6, tau=0.5), train, val, scaling, cfg, progress=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not any(k.startswith("latency") or "latency" in k for k in rec_b)
    assert {k: v for k, v in rec_a.items() if k != "seconds"} == {k: v for k, v in rec_b.items() if k != "seconds"}
    # The config: the latency keys at their defaults leave the recorded config as it was before they existed.
    assert not any(k.startswith("latency") for k in load_config().to_dict()["delta"])
    on = config_from_dict({"delta": {"latency_weight": 1.0}}).to_dict()["delta"]
    assert on["latency_weight"] == 1.0 and on["latency_budget_us"] == 21.0 and on["latency_clock_mhz"] == 125.0


def test_weight_lowers_the_hinge_over_budget(data) -> None:
    train, val, scaling, cfg = data
    free = _model()
    train_stage(free, _spec(0.0), train, val, scaling, cfg, progress=False)
    # A budget that the unconstrained network misses on its bursts: its 80th-percentile surrogate latency.
    probe = LatencyPricer.of(free, _spec(1.0))
    assert probe is not None
    with torch.no_grad():
        _, _, d = free(torch.from_numpy(np.stack(val.x)), return_stats=True, return_deltas=True)
        budget = float(torch.quantile(probe.latency(d).flatten().double(), 0.8))
    pricer = LatencyPricer(probe.geometry, THETA_X, THETA_H, 1 / 256, budget)
    v_free = validate(free, val, scaling, "l1", pricer=pricer)["latency"]
    held = _model()
    rec = train_stage(held, _spec(10.0, budget_s=budget), train, val, scaling, cfg, progress=False)
    v_held = validate(held, val, scaling, "l1", pricer=pricer)["latency"]
    assert v_free["over_budget"] > 0.15
    assert v_held["hinge"] < 0.5 * v_free["hinge"], (v_free, v_held)
    assert v_held["over_budget"] < v_free["over_budget"]
    assert rec["latency_weight"] == 10.0 and rec["val_latency"]["over_budget"] == v_held["over_budget"]
    assert 0.0 <= rec["train_over_budget"] <= 1.0 and rec["train_latency_mean_us"] > 0


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"latency_weight": -1.0}, "delta.latency_weight must be in [0, 10000]"),
        ({"latency_weight": True}, "delta.latency_weight must be a number"),
        ({"latency_budget_us": 0.0}, "delta.latency_budget_us must be in (0, 1e6]"),
        ({"latency_clock_mhz": -125.0}, "delta.latency_clock_mhz must be in (0, 1000]"),
        ({"latency_tau": 0.0}, "delta.latency_tau must be in (0, 1]"),
        ({"latency_tau_grad": -0.1}, "delta.latency_tau_grad must be in [0, 1]"),
        ({"latency_budget": 21.0}, "delta.latency_budget"),
    ],
)
def test_bad_latency_config_names_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"delta": raw})
    assert needle in str(exc.value)


def test_tau_grad_keeps_the_count_and_reaches_changes_far_above_threshold() -> None:
    far = torch.tensor([[0.0, 0.001, 0.3, -0.5]], requires_grad=True)  # Θ = 6/256: two fire, far above it
    narrow = ls.soft_count(far, THETA_X, 1 / 256)
    (g_narrow,) = torch.autograd.grad(narrow.sum(), far)
    wide = ls.soft_count(far, THETA_X, 1 / 256, tau_grad=0.125)
    (g_wide,) = torch.autograd.grad(wide.sum(), far)
    assert wide.item() == pytest.approx(narrow.item()) and narrow.item() == pytest.approx(2.0, abs=0.01)
    assert g_narrow[0, 2:].abs().max() < 1e-20 < g_wide[0, 2:].abs().min()
    assert g_wide[0, 2] > 0 > g_wide[0, 3]  # the gradient shrinks |change|
    with pytest.raises(ValueError, match="tau_grad"):
        ls.soft_count(far, THETA_X, 1 / 256, tau_grad=-1.0)
