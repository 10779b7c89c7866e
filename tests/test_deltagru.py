"""DeltaGRU (torch): equals nn.GRU at Θ = 0, matches a literal reference loop with thresholds, trains, quantises."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from controllers.deltagru import DeltaGRU
from controllers.fixedpoint import q17_codes, q17_values, q88_codes, q88_values
from controllers.quant import fake_quant_q17, fake_quant_q88

torch.set_num_threads(1)


def _gru_pair(I: int, H: int, L: int, O: int, seed: int = 0) -> tuple[nn.GRU, nn.Linear]:
    torch.manual_seed(seed)
    gru = nn.GRU(I, H, L, batch_first=True)
    fc = nn.Linear(H, O)
    with torch.no_grad():  # larger weights than the default init, so the dynamics are not trivially contractive
        for p in gru.parameters():
            p.mul_(2.0)
    return gru, fc


@pytest.mark.parametrize("L", [1, 2, 3])
def test_theta_zero_equals_nn_gru(L: int) -> None:
    gru, fc = _gru_pair(5, 32, L, 2)
    m = DeltaGRU.from_gru(gru, fc, bhn_zero=False)
    assert not m.bhn_zero  # b_hn is non-zero in the GRU: it is kept
    x = torch.randn(3, 60, 5)
    h0 = torch.randn(L, 3, 32) * 0.5
    with torch.no_grad():
        out, hn = gru(x, h0)
        y_ref = fc(out)
        y, state = m(x, m.state_from_h0(h0), return_state=True)
    torch.testing.assert_close(y, y_ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(state.h, hn, atol=2e-5, rtol=1e-5)


def test_theta_zero_step_equals_nn_gru_and_roundtrip() -> None:
    gru, fc = _gru_pair(4, 16, 2, 3)
    m = DeltaGRU.from_gru(gru, fc, bhn_zero=False)
    x = torch.randn(2, 30, 4)
    with torch.no_grad():
        y_ref = fc(gru(x)[0])
        state, ys = None, []
        for t in range(30):
            y, state = m.step(x[:, t], state)
            ys.append(y)
        gru2, fc2 = m.to_gru()
        y_back = fc2(gru2(x)[0])
    torch.testing.assert_close(torch.stack(ys, 1), y_ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(y_back, y_ref, atol=0, rtol=0)


def _reference(m: DeltaGRU, x: torch.Tensor) -> tuple[torch.Tensor, list[list[int]]]:
    """The facts page's equations written out element by element, float64, one sequence at a time."""
    H, L = m.hidden_size, m.num_layers
    B, T, _ = x.shape
    ys = torch.zeros(B, T, m.output_size, dtype=torch.float64)
    fired = [[0, 0] for _ in range(L)]
    for b in range(B):
        P = []
        for layer in range(L):
            w_ih = getattr(m, f"weight_ih_l{layer}").detach().double()
            w_hh = getattr(m, f"weight_hh_l{layer}").detach().double()
            b_ih = getattr(m, f"bias_ih_l{layer}").detach().double()
            b_hh = getattr(m, f"bias_hh_l{layer}").detach().double()
            b_hn = torch.zeros(H, dtype=torch.float64) if m.bhn_zero else b_hh[2 * H :]
            P.append((w_ih, w_hh, b_ih, b_hh, b_hn))
        st = []
        for layer in range(L):
            w_ih, w_hh, b_ih, b_hh, b_hn = P[layer]
            st.append(
                {
                    "xh": torch.zeros(w_ih.shape[1], dtype=torch.float64),
                    "hh": torch.zeros(H, dtype=torch.float64),
                    "h": torch.zeros(H, dtype=torch.float64),
                    "Mr": (b_ih[:H] + b_hh[:H]).clone(),
                    "Mz": (b_ih[H : 2 * H] + b_hh[H : 2 * H]).clone(),
                    "Mnx": b_ih[2 * H :].clone(),
                    "Mnh": b_hn.clone(),
                }
            )
        for t in range(T):
            inp = x[b, t].double()
            for layer in range(L):
                w_ih, w_hh = P[layer][0], P[layer][1]
                s = st[layer]
                for i in range(inp.shape[0]):
                    d = float(inp[i] - s["xh"][i])
                    if d != 0 and abs(d) >= m.theta_x:
                        s["xh"][i] = inp[i]
                        fired[layer][0] += 1
                        s["Mr"] += d * w_ih[:H, i]
                        s["Mz"] += d * w_ih[H : 2 * H, i]
                        s["Mnx"] += d * w_ih[2 * H :, i]
                for j in range(H):
                    d = float(s["h"][j] - s["hh"][j])
                    if d != 0 and abs(d) >= m.theta_h:
                        s["hh"][j] = s["h"][j]
                        fired[layer][1] += 1
                        s["Mr"] += d * w_hh[:H, j]
                        s["Mz"] += d * w_hh[H : 2 * H, j]
                        s["Mnh"] += d * w_hh[2 * H :, j]
                r = torch.sigmoid(s["Mr"])
                z = torch.sigmoid(s["Mz"])
                n = torch.tanh(s["Mnx"] + r * s["Mnh"])
                s["h"] = (1 - z) * n + z * s["h"]
                inp = s["h"]
            ys[b, t] = m.fc.weight.detach().double() @ inp + m.fc.bias.detach().double()
    return ys, fired


@pytest.mark.parametrize("bhn_zero", [True, False])
def test_thresholds_match_reference_loop_and_give_sparsity(bhn_zero: bool) -> None:
    torch.manual_seed(1)
    m = DeltaGRU(3, 16, 2, 2, theta_x=0.1, theta_h=0.05, bhn_zero=bhn_zero).double()
    if not bhn_zero:
        with torch.no_grad():
            m.bias_hh_l0[32:].uniform_(-0.5, 0.5)
    x = (torch.randn(2, 40, 3).cumsum(1) * 0.15).double()
    y_ref, fired = _reference(m, x)
    y, stats = m(x, return_stats=True)
    torch.testing.assert_close(y, y_ref, atol=1e-9, rtol=1e-9)
    for layer in range(2):  # the forward's counters agree with the literal loop
        n_in = m.layer_input_size(layer)
        assert stats.dx_sparsity[layer] == pytest.approx(1 - fired[layer][0] / (2 * 40 * n_in))
        assert stats.dh_sparsity[layer] == pytest.approx(1 - fired[layer][1] / (2 * 40 * 16))
        assert stats.fired_cols[layer] == pytest.approx(sum(fired[layer]) / 80)
    assert 0.2 < stats.sparsity < 1.0
    assert stats.macs_per_step < 0.8 * stats.dense_macs_per_step
    # The streaming step follows the same equations.
    with torch.no_grad():
        state, ys = None, []
        for t in range(40):
            yt, state = m.step(x[:, t], state)
            ys.append(yt)
    torch.testing.assert_close(torch.stack(ys, 1), y_ref, atol=1e-9, rtol=1e-9)


def test_forward_state_continues_like_one_long_sequence() -> None:
    torch.manual_seed(2)
    m = DeltaGRU(5, 24, 2, 2, theta_x=0.05, theta_h=0.1)
    x = torch.randn(4, 50, 5).cumsum(1) * 0.1
    with torch.no_grad():
        y_full = m(x)
        y1, s = m(x[:, :20], return_state=True)
        y2 = m(x[:, 20:], s.detach())
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_full, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("qat", [False, True])
def test_gradient_flows_and_training_reduces_l1(qat: bool) -> None:
    torch.manual_seed(3)
    m = DeltaGRU(2, 16, 2, 1, theta_x=1 / 64, theta_h=1 / 16, qat=qat)
    t = torch.linspace(0, 6, 40)
    x = torch.stack([torch.sin(t), torch.cos(t)], -1).expand(8, 40, 2).contiguous()
    target = 0.5 * torch.sin(t + 0.5).view(1, 40, 1).expand(8, 40, 1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for it in range(10):
        y, stats = m(x, return_stats=True)
        loss = (y - target).abs().mean() + 1e-3 * stats.delta_l1
        opt.zero_grad()
        loss.backward()
        if it == 0:
            for name, p in m.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
                assert p.grad.abs().sum() > 0, name  # the Δ path carries gradient into every weight
            assert stats.delta_l1.requires_grad
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    # b_hn stays exactly zero (bhn_zero is the default), as the accelerator needs.
    assert torch.all(m.bias_hh_l0[32:] == 0) and torch.all(m.bias_hh_l1[32:] == 0)
    assert torch.all(m.layer_params(0).m_init[48:] == 0)


def test_qat_forward_is_on_the_grids() -> None:
    torch.manual_seed(4)
    m = DeltaGRU(5, 16, 2, 2, theta_x=4 / 256, theta_h=0.5, qat=True)
    x = torch.randn(2, 20, 5)
    with torch.no_grad():
        _, state = m(x, return_state=True)
        p = m.layer_params(1)
    for tensor, scale in ((state.layers[0].h, 256), (state.layers[1].x_hat, 256), (p.w_hh, 128), (p.m_init, 128)):
        v = tensor * scale
        assert torch.equal(v, torch.round(v))
    assert p.w_hh.min() >= -1 and p.w_hh.max() <= 127 / 128


def test_ste_quantisers_grid_saturation_and_identity_gradient() -> None:
    x = torch.tensor([0.5 / 256, 1.5 / 256, -2.5 / 256, 0.1234, 200.0, -300.0, 127.999], requires_grad=True)
    q = fake_quant_q88(x)
    assert q.tolist() == [0.0, 2 / 256, -2 / 256, round(0.1234 * 256) / 256, 32767 / 256, -128.0, 32767 / 256]
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through, also where saturated
    w = torch.tensor([0.5 / 128, 3.5 / 128, 0.3, 1.5, -1.7, -0.99], requires_grad=True)
    qw = fake_quant_q17(w)
    assert qw.tolist() == [0.0, 4 / 128, round(0.3 * 128) / 128, 127 / 128, -1.0, round(-0.99 * 128) / 128]
    (qw * torch.arange(6.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(6.0))
    # numpy twins: integer codes for export, same rounding and saturation
    xs = x.detach().numpy()
    codes = q88_codes(xs)
    assert codes.dtype == np.int16 and codes.tolist() == [0, 2, -2, 32, 32767, -32768, 32767]
    np.testing.assert_array_equal(q88_values(codes), q.detach().numpy())
    wc = q17_codes(w.detach().numpy())
    assert wc.dtype == np.int8 and wc.tolist() == [0, 4, 38, 127, -128, -127]
    np.testing.assert_array_equal(q17_values(wc), qw.detach().numpy())


@pytest.mark.parametrize("hidden", [8, 12, 100, 264, 512])
def test_invalid_hidden_size(hidden: int) -> None:
    with pytest.raises(ValueError, match=r"multiple of 8 from 16 to 256"):
        DeltaGRU(5, hidden, 2, 2)


@pytest.mark.parametrize("layers", [0, 5])
def test_invalid_num_layers(layers: int) -> None:
    with pytest.raises(ValueError, match=r"1, 2, 3 or 4"):
        DeltaGRU(5, 16, layers, 2)


def test_invalid_threshold_and_input_shape() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        DeltaGRU(5, 16, theta_h=-0.1)
    m = DeltaGRU(5, 16)
    with pytest.raises(ValueError, match=r"\[B, T, 5\]"):
        m(torch.zeros(2, 3, 4))


def test_from_gru_drops_bhn_with_warning_and_state_dict_persistence() -> None:
    gru, fc = _gru_pair(5, 16, 2, 2)
    with pytest.warns(UserWarning, match="b_hn"):
        m = DeltaGRU.from_gru(gru, fc, bhn_zero=True, theta_x=0.02, theta_h=0.1)
    assert torch.all(m.bias_hh_l1[32:] == 0)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = DeltaGRU(**m.config())
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, 15, 5)
    with torch.no_grad():
        torch.testing.assert_close(m2(x), m(x), atol=0, rtol=0)
    assert set(m.state_dict()) >= {"weight_ih_l0", "weight_hh_l1", "bias_hh_l0", "fc.weight", "fc.bias"}
    assert m.dense_macs_per_step == 3 * 16 * (5 + 16) + 3 * 16 * 32 + 16 * 2
    assert math.isclose(m.config()["theta_h"], 0.1)


def test_delta_l1_is_the_hidden_state_change_and_the_penalty_smooths_it() -> None:
    torch.manual_seed(4)
    m = DeltaGRU(3, 16, 2, 2, theta_x=1 / 64, theta_h=1 / 16)
    x = torch.randn(4, 30, 3)
    _, stats = m(x, return_stats=True)
    # Same number from the streaming step, one step at a time (the first step's change is from h = 0).
    s, changes = m.reset_state(4), []
    for t in range(30):
        _, s_new, st = m.step(x[:, t], s, return_stats=True)
        changes.append(st.delta_l1)
        s = s_new
    torch.testing.assert_close(stats.delta_l1, torch.stack(changes).mean(), atol=1e-6, rtol=1e-5)
    # Minimising the penalty alone makes the hidden states change less from step to step.
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = stats.delta_l1.item()
    for _ in range(20):
        _, st = m(x, return_stats=True)
        opt.zero_grad()
        st.delta_l1.backward()
        opt.step()
    assert m(x, return_stats=True)[1].delta_l1.item() < 0.5 * first
