"""EdgeDRNN inference backend (quantisation, ARM output layer, deadline verdict) and the threshold governor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controllers.fixedpoint import q88_codes
from firmware_bridge.bundle import save_bundle
from hil.backend import InferenceBackend, StepResult
from hil.edgedrnn import EdgeDRNNBackend, EdgeDRNNError, EdgeDRNNModel, ThresholdGovernor
from hil.edgedrnn.synthetic import image_of, noisy_inputs, random_bundle, random_layers, smooth_inputs


def _bundle(seed: int = 0, **kw):
    b = random_bundle(np.random.default_rng(seed), **kw)
    b.input_mean = np.linspace(-1, 1, b.input_size).astype(np.float32)
    b.input_std = np.linspace(0.5, 2, b.input_size).astype(np.float32)
    b.out_scale = np.array([2.0, -0.5], dtype=np.float32)
    b.out_offset = np.array([0.25, 1.0], dtype=np.float32)
    b.validate()
    return b


def test_backend_is_an_inference_backend() -> None:
    be = EdgeDRNNBackend(_bundle())
    assert isinstance(be, InferenceBackend)
    assert isinstance(be.step(np.zeros(5)), StepResult)


def test_backend_matches_a_numpy_rendition_of_the_arm_path(tmp_path: Path) -> None:
    b = _bundle(1, theta_x=5, theta_h=3)
    be = EdgeDRNNBackend(save_bundle(tmp_path / "b.npz", b), budget_s=2.5e-6)  # from a file, too
    model = EdgeDRNNModel.from_bundle(b)
    rng = np.random.default_rng(2)
    F = rng.normal(0, 3, (200, 5))
    F[7, 0] = 1e6  # saturates to int16
    met = 0
    for f in F:
        r = be.step(f)
        xq = q88_codes((f - b.input_mean.astype(np.float64)) / b.input_std.astype(np.float64))
        h = model.step(xq)
        acc = b.out_weight.astype(np.int64) @ h.astype(np.int64) + b.out_bias
        expect = acc / 32768.0 * b.out_scale + b.out_offset
        np.testing.assert_array_equal(r.h, h)
        np.testing.assert_allclose(r.outputs, expect, rtol=0, atol=1e-12)
        assert r.cycles == model.cycles and r.fired_columns == model.fired_columns
        assert r.latency_s == pytest.approx(model.cycles / 125e6)
        assert r.deadline_met == (r.latency_s <= 2.5e-6)
        met += r.deadline_met
    assert be.steps == 200 and be.misses == 200 - met
    assert 0 < met < 200  # the budget was chosen so that both verdicts occur


def test_result_object_is_reused_and_copy_detaches() -> None:
    be = EdgeDRNNBackend(_bundle())
    r1 = be.step(np.ones(5))
    snap = r1.copy()
    r2 = be.step(-np.ones(5))
    assert r1 is r2
    assert snap.outputs is not r2.outputs and not np.array_equal(snap.h, r2.h)


def test_reset_restores_state_and_thresholds() -> None:
    be = EdgeDRNNBackend(_bundle(theta_x=7, theta_h=9))
    F = np.random.default_rng(3).normal(size=(30, 5))
    first = [be.step(f).copy() for f in F]
    be.model.theta_x = 200
    be.reset()
    assert (be.model.theta_x, be.model.theta_h) == (7, 9)
    for f, r in zip(F, first, strict=True):
        np.testing.assert_array_equal(be.step(f).outputs, r.outputs)


def test_backend_input_errors() -> None:
    be = EdgeDRNNBackend(_bundle())
    with pytest.raises(EdgeDRNNError, match=r"shape \(5,\)"):
        be.step(np.zeros(4))
    be.step(np.zeros(5, dtype=np.float32))  # other float dtypes are converted
    with pytest.raises(EdgeDRNNError, match="budget_s"):
        EdgeDRNNBackend(_bundle(), budget_s=0)


def test_governor_reduces_deadline_misses_through_a_burst() -> None:
    # 2-layer, 128-unit net, smooth input with a 100-step burst of noise (an impact / domain switch).
    rng = np.random.default_rng(0)
    L, I, H, T, budget = 2, 8, 128, 800, 21e-6
    img = image_of(random_layers(rng, L, I, H))
    X = smooth_inputs(rng, T, I, 400.0)
    X[300:400] = noisy_inputs(rng, 100, I)
    base = 16
    fixed = EdgeDRNNModel(img, L, I, H, base, base)
    fixed_misses = int((fixed.run(X).latency_s > budget).sum())

    model = EdgeDRNNModel(img, L, I, H, base, base)
    gov = ThresholdGovernor(budget, base, base)
    misses, thetas = 0, []
    for x in X:
        model.step(x)
        misses += model.latency_s > budget
        gov.update(model, model.latency_s)
        thetas.append(model.theta_h)
    assert fixed_misses >= 100  # every burst step misses with fixed Θ
    assert misses <= fixed_misses // 5, (misses, fixed_misses)
    assert gov.raises > 0 and gov.lowers > 0 and gov.actions == gov.raises + gov.lowers
    assert max(thetas[300:400]) > base and min(thetas) >= base and max(thetas) <= 511


def test_governor_policy_steps() -> None:
    class Regs:
        theta_x = 10
        theta_h = 0

    regs = Regs()
    gov = ThresholdGovernor(10e-6, 10, 0, hold_steps=2)
    assert gov.update(regs, 50e-6) == 0  # first step after reset is ignored
    assert gov.update(regs, 9e-6) == 1  # above 85 % of the budget → raise
    assert (regs.theta_x, regs.theta_h) == (26, 16)  # max(Θ + 16, ⌈1.5·Θ⌉)
    assert gov.predict(9.5e-6) == pytest.approx(10e-6)  # rising activity is extrapolated
    assert gov.update(regs, 3e-6) == 0  # calm, but only 1 of 2 hold steps
    assert gov.update(regs, 3e-6) == -1
    assert (regs.theta_x, regs.theta_h) == (23, 14)
    for _ in range(40):
        gov.update(regs, 1e-6)
    assert (regs.theta_x, regs.theta_h) == (10, 0)  # back to the trained thresholds, never below
    regs.theta_x = regs.theta_h = 511
    assert gov.update(regs, 20e-6) == 0  # at the register ceiling nothing more to do
    with pytest.raises(ValueError, match=r"0\.\.511"):
        ThresholdGovernor(1e-6, 600)


def test_backend_with_governor_counts_actions() -> None:
    b = random_bundle(np.random.default_rng(4), input_size=8, hidden=64, theta_x=0, theta_h=0)
    be = EdgeDRNNBackend(b, governor=True, budget_s=4e-6)
    for f in np.random.default_rng(5).normal(size=(200, 8)):
        be.step(f)
    assert be.governor is not None and be.governor.raises > 0
