"""EdgeDRNN model: agreement with a float GRU, threshold behaviour, the cycle floor, state handling, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from firmware_bridge.weight_image import LayerWeights
from hil.edgedrnn.model import EdgeDRNNError, EdgeDRNNModel
from hil.edgedrnn.reference import ReferenceEdgeDRNN
from hil.edgedrnn.synthetic import image_of, noisy_inputs, random_layers, smooth_inputs

# Θ = 0 vs float GRU. The integer model rounds r, z, n to multiples of 1/16, i.e. up to 1/32 each per step;
# through h = (1 − z)·n + z·h that is at most 1/32 + 2·1/32 = 3/32 of fresh error per step, and the GRU's leak
# (1 − z) damps what is carried, so the error stays of the order of one activation step and does not grow with T.
# Bound stated (h in units of 1.0): max |h_int − h_float| ≤ 5/32, mean ≤ 0.025, no drift over the sequence.
GRU_MAX_ERR = 5 / 32
GRU_MEAN_ERR = 0.025


def _torch_gru(net: list[LayerWeights], input_size: int, hidden: int) -> torch.nn.GRU:
    gru = torch.nn.GRU(input_size, hidden, num_layers=len(net), batch_first=True).double()
    with torch.no_grad():
        for layer, w in enumerate(net):
            getattr(gru, f"weight_ih_l{layer}").copy_(torch.from_numpy(w.w_ih / 128.0))
            getattr(gru, f"weight_hh_l{layer}").copy_(torch.from_numpy(w.w_hh / 128.0))
            # image bias column = b_ir+b_hr, b_iz+b_hz, b_in; the hardware has no b_hn
            getattr(gru, f"bias_ih_l{layer}").copy_(torch.from_numpy(w.bias / 128.0))
            getattr(gru, f"bias_hh_l{layer}").zero_()
    return gru


@pytest.mark.parametrize(
    ("seed", "layers", "inputs", "hidden", "kind"),
    [
        (0, 2, 5, 16, "smooth"),
        (1, 2, 7, 32, "noise"),
        (2, 1, 3, 64, "noise"),
        (3, 3, 12, 24, "smooth"),
    ],
)
def test_theta0_tracks_float_gru(seed: int, layers: int, inputs: int, hidden: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    net = random_layers(rng, layers, inputs, hidden)
    T = 3000
    X = smooth_inputs(rng, T, inputs, 50.0) if kind == "smooth" else noisy_inputs(rng, T, inputs)
    res = EdgeDRNNModel(image_of(net), layers, inputs, hidden, 0, 0).run(X)
    with torch.no_grad():
        y, _ = _torch_gru(net, inputs, hidden)(torch.from_numpy(X / 256.0)[None])
    err = np.abs(res.h / 256.0 - y[0].numpy())
    assert err.max() <= GRU_MAX_ERR, f"max error {err.max():.4f}"
    assert err.mean() <= GRU_MEAN_ERR, f"mean error {err.mean():.4f}"
    thirds = err[: T // 3].mean(), err[-T // 3 :].mean()
    assert thirds[1] <= 1.5 * thirds[0] + 0.005, f"error drifts: {thirds}"


def test_large_theta_fires_nothing_after_step0_and_costs_the_floor() -> None:
    rng = np.random.default_rng(10)
    L, I, H = 2, 6, 32
    model = EdgeDRNNModel(image_of(random_layers(rng, L, I, H)), L, I, H, 511, 511)
    # |x| ≤ 510 < Θ and |h| ≤ 256 < Θ: no delta can reach the threshold from x̂ = ĥ = 0
    X = rng.integers(-510, 511, (300, I)).astype(np.int16)
    res = model.run(X)
    assert res.layer_fired[0].tolist() == [1, 1]  # only the bias columns, at the first step
    assert res.fired_columns[1:].max() == 0
    # documented minimum: Σ_l (1 + I_l + H + c_s) + 5·(H/K + 1), c_s = 8 then 10
    floor = (1 + 8 + H + 8) + 5 * (H // 8 + 1) + (1 + H + H + 10) + 5 * (H // 8 + 1)
    assert model.floor_cycles == floor
    assert (res.cycles[1:] == floor).all()
    np.testing.assert_allclose(res.latency_s[1:], floor / 125e6)
    assert res.sparsity == 1.0


def test_documented_worked_numbers() -> None:
    img16 = image_of(random_layers(np.random.default_rng(0), 2, 5, 16))
    m16 = EdgeDRNNModel(img16, 2, 5, 16)
    assert (m16.floor_cycles, m16.dense_cycles) == (106, 387)
    img128 = image_of(random_layers(np.random.default_rng(0), 2, 8, 128))
    m128 = EdgeDRNNModel(img128, 2, 8, 128)
    assert m128.floor_cycles == 582
    assert m128.latency_of(m128.floor_cycles) == pytest.approx(4.656e-6)
    assert 18_500 <= m128.dense_cycles <= 19_500  # "~19,000 cycles (152 µs) dense"


def test_burst_latency_and_t_sys_enter_latency() -> None:
    rng = np.random.default_rng(11)
    img = image_of(random_layers(rng, 2, 5, 16))
    X = noisy_inputs(rng, 50, 5)
    base = EdgeDRNNModel(img, 2, 5, 16).run(X)
    slow = EdgeDRNNModel(img, 2, 5, 16, burst_latency=3, t_sys_s=2e-6, clock_hz=100e6).run(X)
    np.testing.assert_array_equal(base.h, slow.h)  # timing never changes the arithmetic
    assert (slow.cycles >= base.cycles).all() and (slow.cycles > base.cycles).any()
    np.testing.assert_allclose(slow.latency_s, slow.cycles / 100e6 + 2e-6)


def test_threshold_is_inclusive() -> None:
    L, I, H = 1, 1, 8
    model = EdgeDRNNModel(image_of(random_layers(np.random.default_rng(12), L, I, H)), L, I, H, 40, 511)
    model.step(np.array([40], dtype=np.int16))  # |Δ| = Θ → fires
    assert model.layer_fired.tolist() == [2]  # bias + x
    model.step(np.array([79], dtype=np.int16))  # |Δ| = 39 < Θ → holds, x̂ stays 40
    assert model.layer_fired.tolist() == [0]
    model.step(np.array([80], dtype=np.int16))  # |Δ| = 40 from x̂ = 40 → fires
    assert model.layer_fired.tolist() == [1]
    assert model.state["x_hat"][0, 0] == 80


def test_step_equals_run_and_reset_restarts() -> None:
    rng = np.random.default_rng(13)
    L, I, H = 3, 10, 16
    model = EdgeDRNNModel(image_of(random_layers(rng, L, I, H)), L, I, H, 4, 9)
    X = smooth_inputs(rng, 120, I, 30.0)
    res = model.run(X)
    model.reset()
    for t in range(len(X)):
        np.testing.assert_array_equal(model.step(X[t]), res.h[t])
        assert model.cycles == res.cycles[t] and model.fired_columns == res.fired_columns[t]
        np.testing.assert_array_equal(model.layer_mac_cycles, res.layer_mac_cycles[t])
    model.reset()
    again = model.run(X)
    np.testing.assert_array_equal(again.h, res.h)
    np.testing.assert_array_equal(again.cycles, res.cycles)
    # run() continues from the current state: two halves equal one whole
    model.reset()
    a, b = model.run(X[:50]), model.run(X[50:])
    np.testing.assert_array_equal(np.vstack([a.h, b.h]), res.h)


def test_bias_column_only_at_the_first_step_after_reset() -> None:
    rng = np.random.default_rng(14)
    model = EdgeDRNNModel(image_of(random_layers(rng, 2, 5, 16)), 2, 5, 16, 511, 511)
    zeros = np.zeros((3, 5), dtype=np.int16)
    assert model.run(zeros).fired_columns.tolist() == [2, 0, 0]
    assert model.run(zeros).fired_columns.tolist() == [0, 0, 0]
    model.reset()
    assert model.run(zeros).fired_columns.tolist() == [2, 0, 0]


def test_kernel_equals_reference_including_overflow() -> None:
    # Large weights and inputs drive the 24-bit accumulators and the 16-bit pre-activations out of range:
    # both the wrapping (RTL) and the saturating mode must agree with the line-by-line reference.
    rng = np.random.default_rng(15)
    L, I, H = 2, 9, 8
    net = [
        LayerWeights(
            rng.integers(-128, 128, (3 * H, I if layer == 0 else H)).astype(np.int8),
            rng.integers(-128, 128, (3 * H, H)).astype(np.int8),
            rng.integers(-128, 128, 3 * H).astype(np.int8),
        )
        for layer in range(L)
    ]
    img = image_of(net)
    X = rng.integers(-32768, 32768, (40, I)).astype(np.int16)
    for sat in (False, True):
        model = EdgeDRNNModel(img, L, I, H, 3, 2, saturate=sat, burst_latency=1)
        ref = ReferenceEdgeDRNN(img, L, I, H, 3, 2, saturate=sat, burst_latency=1)
        res = model.run(X)
        for t in range(len(X)):
            s = ref.step(X[t].tolist())
            assert s.h == res.h[t].tolist(), f"saturate={sat} step {t}"
            assert s.cycles == res.cycles[t]
    wrapped = EdgeDRNNModel(img, L, I, H, 3, 2).run(X).h
    saturated = EdgeDRNNModel(img, L, I, H, 3, 2, saturate=True).run(X).h
    assert (wrapped != saturated).any(), "overflow case should tell wrap and saturate apart"


def test_theta_setter_validates_the_register() -> None:
    model = EdgeDRNNModel(image_of(random_layers(np.random.default_rng(16), 1, 4, 8)), 1, 4, 8)
    model.theta_x = 511
    model.theta_h = 0
    for bad in (-1, 512):
        with pytest.raises(EdgeDRNNError, match=r"expected 0\.\.511"):
            model.theta_x = bad
        with pytest.raises(EdgeDRNNError, match=r"theta_h.*expected 0\.\.511"):
            model.theta_h = bad
    with pytest.raises(EdgeDRNNError, match=r"0\.\.511"):
        EdgeDRNNModel(model.image, 1, 4, 8, theta_x=1000)
    assert model.theta_x == 511


def test_bad_geometry_and_inputs_name_the_expected_value() -> None:
    img = image_of(random_layers(np.random.default_rng(17), 2, 5, 16))
    with pytest.raises(EdgeDRNNError, match="expected 2784 bytes"):
        EdgeDRNNModel(img[:-1], 2, 5, 16)
    with pytest.raises(EdgeDRNNError, match=r"multiple of K=8.*got 20"):
        EdgeDRNNModel(img, 2, 5, 20)
    model = EdgeDRNNModel(img, 2, 5, 16)
    with pytest.raises(EdgeDRNNError, match=r"int16 \[5\] \(or padded \[8\]\)"):
        model.step(np.zeros(6, dtype=np.int16))
    with pytest.raises(EdgeDRNNError, match=r"int16 Q8\.8"):
        model.step(np.zeros(5, dtype=np.float32))
    with pytest.raises(EdgeDRNNError, match=r"int16 \[T, 5\] \(or padded \[T, 8\]\)"):
        model.run(np.zeros((4, 7), dtype=np.int16))
    model.run(np.zeros((4, 8), dtype=np.int16))  # padded width is fine
