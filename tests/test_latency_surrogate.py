"""The latency surrogate for latency-aware training (controllers.latency_surrogate) against the cycle model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from controllers import latency_surrogate as ls
from hil.edgedrnn import EdgeDRNNModel
from hil.edgedrnn import kernel as kn
from hil.edgedrnn.synthetic import image_of, noisy_inputs, random_layers, smooth_inputs


def test_constants_are_the_cycle_models() -> None:
    assert ls.C_E == (kn.C_E_FIRST, kn.C_E_LATER) and ls.C_S == (kn.C_S_FIRST, kn.C_S_LATER)
    assert (ls.MAC_TAIL, ls.ACT_LOOP) == (kn.MAC_TAIL, kn.ACT_LOOP)


def test_layer_cycles_bound_the_exact_cycles_from_above_within_one_scan() -> None:
    rng = np.random.default_rng(0)
    L, I, H = 2, 8, 64
    X = smooth_inputs(rng, 300, I, 100.0)
    X[100:130] = noisy_inputs(rng, 30, I)
    r = EdgeDRNNModel(image_of(random_layers(rng, L, I, H)), L, I, H, 8, 16).run(X)
    geo = ls.CycleGeometry(L, I, H)
    for layer in range(L):
        exact = r.layer_mac_cycles[:, layer] + r.layer_act_cycles[:, layer]
        sur = ls.layer_cycles(torch.tensor(r.layer_fired[:, layer], dtype=torch.float64), geo, layer, 1e-3).numpy()
        assert (sur >= exact - 1e-6).all()
        assert (sur <= exact + geo.scan(layer) - 1 + 1e-6).all()  # the chain starts at position ≥ 0
        assert r.layer_fired[:, layer].max() > 10  # the burst is in there


def test_hinge_has_gradient_only_from_steps_over_budget() -> None:
    geo = ls.CycleGeometry(2, 8, 128)
    calm = torch.full((1, 8), 0.001)
    burst = torch.full((1, 128), 0.025, requires_grad=True)  # just over Θx: where the sigmoid has a slope
    dx = [calm, burst]  # layer 2's input: layer 1's output jumped
    dh = [torch.zeros(1, 128), torch.zeros(1, 128)]
    lat = ls.step_latency(dx, dh, 0.02, 0.3, geo)
    assert lat.item() > 21e-6  # 128 columns of 48 cycles
    loss = ls.latency_hinge(lat, 21e-6)
    loss.backward()
    assert burst.grad is not None and burst.grad.abs().sum() > 0
    quiet = ls.step_latency([calm, torch.zeros(1, 128)], dh, 0.02, 0.3, geo)
    assert quiet.item() < 21e-6 and ls.latency_hinge(quiet, 21e-6).item() == 0.0
    with pytest.raises(ValueError, match="one input and one hidden"):
        ls.step_latency(dx[:1], dh, 0.02, 0.3, geo)
    with pytest.raises(ValueError, match="multiples of 8"):
        ls.CycleGeometry(2, 5, 128)
