"""The numba delta-GRU kernel: same outputs and counters as DeltaGRU.step, no allocation per step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from controllers.deltagru import DeltaGRU, DeltaGRUState
from controllers.gru_kernel import DeltaGRUKernel

torch.set_num_threads(1)


def _inputs(T: int, I: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / 50.0
    x = np.sin(2 * np.pi * t + rng.uniform(0, 6, (1, I))) + 0.05 * rng.standard_normal((T, I)).cumsum(0)
    return x.astype(np.float32)


def _model(I: int, H: int, L: int, O: int, theta_x: float, theta_h: float, seed: int = 0) -> DeltaGRU:
    torch.manual_seed(seed)
    m = DeltaGRU(I, H, L, O, theta_x=theta_x, theta_h=theta_h)
    with torch.no_grad():  # livelier dynamics than the default init
        for name, p in m.named_parameters():
            if name.startswith("weight"):
                p.mul_(2.5)
    return m


def _tie_gap(m: DeltaGRU, prev: DeltaGRUState, new: DeltaGRUState, x: torch.Tensor) -> float:
    """Smallest | |Δ| − Θ | over the deltas of one torch step: how close a firing decision was to a tie."""
    gaps = []
    inp = x.unsqueeze(0)
    for p, n in zip(prev.layers, new.layers, strict=True):
        gaps.append(((inp - p.x_hat).abs() - m.theta_x).abs().min())
        gaps.append(((p.h - p.h_hat).abs() - m.theta_h).abs().min())
        inp = n.h
    return float(min(gaps))


@pytest.mark.parametrize(
    ("I", "H", "L", "theta_x", "theta_h"),
    [(5, 128, 2, 0.0, 0.0), (5, 128, 2, 4 / 256, 0.05), (7, 16, 3, 0.05, 0.02), (3, 64, 1, 0.0, 0.1)],
)
def test_kernel_matches_torch_step(I: int, H: int, L: int, theta_x: float, theta_h: float) -> None:
    m = _model(I, H, L, 2, theta_x, theta_h)
    k = DeltaGRUKernel.from_module(m)
    xs = _inputs(300, I)
    state = None
    fired_torch = fired_kernel = resyncs = 0
    with torch.no_grad():
        for t in range(300):
            prev = state if state is not None else m.reset_state(1)
            x = torch.from_numpy(xs[t])
            y, state, stats = m.step(x, prev, return_stats=True)
            yk = k.step(xs[t])
            fired_t = [round(v) for v in stats.fired_cols]
            fired_k = [a + b for a, b in zip(k.fired_x, k.fired_h, strict=True)]
            if fired_k != fired_t:
                # Summation order differs (BLAS vs column by column), so a delta within rounding of Θ may
                # fire in one and not the other. Accept only such near-ties, then continue from torch's state.
                assert _tie_gap(m, prev, state, x) < 1e-4, f"step {t}: firing differs without a near-tie"
                resyncs += 1
                k.load_state(state)
                continue
            np.testing.assert_allclose(yk, y.numpy(), atol=2e-5, rtol=1e-4, err_msg=f"step {t}")
            fired_torch += sum(fired_t)
            fired_kernel += k.fired_columns
            assert k.macs == k.fired_columns * 3 * H + 2 * H
    assert resyncs <= 3
    assert fired_kernel == fired_torch
    np.testing.assert_allclose(k.hidden(), state.layers[-1].h[0].numpy(), atol=2e-5)
    cols = sum(m.layer_input_size(layer) + H for layer in range(L))
    if theta_h > 0:
        assert k.sparsity() > 0.3
    else:
        assert k.sparsity() < 0.02  # dense: every changing value fires
    assert k.dense_macs == m.dense_macs_per_step
    assert 0 <= k.sparsity() <= 1 and k.steps == 300 and cols > 0


def test_kernel_no_allocation_and_reset() -> None:
    from numba import njit
    from numba.core.runtime import _nrt_python as nrt

    @njit
    def empty(x, P, S, lay, cnt, out):
        pass

    m = _model(5, 32, 2, 2, 4 / 256, 0.05)
    k = DeltaGRUKernel.from_module(m)
    xs = _inputs(100, 5)
    out = k.step(xs[0])
    args = k.buffers()
    empty(xs[0], *args)
    k.reset()
    first = np.array([k.step(x).copy() for x in xs])
    second = np.empty_like(first)
    was_enabled = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    try:
        # Passing an array into any numba function wraps it in a MemInfo; count those with an empty function.
        a0 = nrt.memsys_get_stats_alloc()
        for x in xs:
            empty(x, *args)
        a1 = nrt.memsys_get_stats_alloc()
        k.reset()
        a2 = nrt.memsys_get_stats_alloc()
        for t, x in enumerate(xs):
            y = k.step(x)
            assert y is out  # the same preallocated buffer every step
            second[t] = y
        a3 = nrt.memsys_get_stats_alloc()
    finally:
        if not was_enabled:
            nrt.memsys_disable_stats()
    assert a3 - a2 == a1 - a0  # the step body allocates nothing beyond the argument wrappers
    np.testing.assert_array_equal(second, first)  # reset restores the initial state exactly


def test_kernel_input_coercion_and_shape_check() -> None:
    m = _model(4, 16, 2, 2, 0.0, 0.0)
    k = DeltaGRUKernel.from_module(m)
    x = _inputs(3, 4)
    y32 = [k.step(v).copy() for v in x]
    k.reset()
    y_list = [k.step(v.astype(np.float64).tolist()).copy() for v in x]
    np.testing.assert_array_equal(np.array(y_list), np.array(y32))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        k.step(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        k.step(np.zeros(1, np.float32))


def test_kernel_of_qat_model_uses_quantised_weights() -> None:
    m = _model(5, 16, 2, 2, 4 / 256, 0.05)
    m.qat = True
    k = DeltaGRUKernel.from_module(m)
    # A float model with the QAT model's effective (Q1.7) weights: the kernel must equal it.
    gru, fc = m.to_gru()
    f = DeltaGRU.from_gru(gru, fc, theta_x=m.theta_x, theta_h=m.theta_h)
    xs = _inputs(200, 5)
    state = None
    with torch.no_grad():
        for x in xs:
            y, state = f.step(torch.from_numpy(x), state)
            np.testing.assert_allclose(k.step(x), y.numpy(), atol=2e-5, rtol=1e-4)
