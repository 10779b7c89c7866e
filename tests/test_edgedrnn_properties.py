"""Property tests (hypothesis) of the EdgeDRNN model and its cycle model over random sizes, thresholds and inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.edgedrnn import kernel as kn
from hil.edgedrnn.model import EdgeDRNNModel
from hil.edgedrnn.reference import ReferenceEdgeDRNN, mac_cycles_reference
from hil.edgedrnn.synthetic import image_of, random_layers

FAST = settings(max_examples=40, deadline=None)


@st.composite
def networks(draw: st.DrawFn) -> dict:
    return {
        "layers": draw(st.integers(1, 3)),
        "input_size": draw(st.integers(1, 20)),
        "hidden": 8 * draw(st.integers(1, 3)),
        "theta_x": draw(st.integers(0, 511)),
        "theta_h": draw(st.integers(0, 511)),
        "lam": draw(st.integers(0, 4)),
        "steps": draw(st.integers(1, 25)),
        "amp": draw(st.sampled_from([16, 256, 2048, 32767])),
        "gain": draw(st.sampled_from([0.5, 1.0, 4.0])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _build(p: dict) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(p["seed"])
    img = image_of(random_layers(rng, p["layers"], p["input_size"], p["hidden"], p["gain"]))
    X = rng.integers(-p["amp"], p["amp"] + 1, (p["steps"], p["input_size"])).astype(np.int16)
    return img, X


def _column_bounds(model: EdgeDRNNModel) -> tuple[int, int]:
    """(scan floor, dense ceiling with every column incl. bias fired) of a whole step."""
    all_cols = [list(range(model.layout.columns(layer))) for layer in range(model.layers)]
    return model.floor_cycles, model.cycles_for_positions(all_cols)


@FAST
@given(networks())
def test_cycles_between_scan_floor_and_dense_ceiling(p: dict) -> None:
    img, X = _build(p)
    model = EdgeDRNNModel(
        img, p["layers"], p["input_size"], p["hidden"], p["theta_x"], p["theta_h"], burst_latency=p["lam"]
    )
    res = model.run(X)
    floor, ceiling = _column_bounds(model)
    assert (res.cycles >= floor).all()
    assert (res.cycles <= ceiling).all()
    for layer in range(model.layers):
        scan = model.layout.columns(layer)
        assert (res.layer_fired[:, layer] <= scan).all()
        c_s = kn.C_S_FIRST if layer == 0 else kn.C_S_LATER
        assert (res.layer_mac_cycles[:, layer] >= scan + c_s).all()
        # each fired column streams 3H/8 beats (+λ) back to back at best
        beats = 3 * p["hidden"] // 8 + p["lam"]
        assert (res.layer_mac_cycles[:, layer] >= res.layer_fired[:, layer] * beats).all()
    assert (res.cycles == res.layer_mac_cycles.sum(1) + res.layer_act_cycles.sum(1)).all()
    assert 0.0 <= res.sparsity <= 1.0
    assert (np.abs(res.h) <= 256).all()  # h is a convex mix of tanh and h: within ±1.0


@FAST
@given(networks())
def test_kernel_is_bit_exact_with_the_reference(p: dict) -> None:
    img, X = _build(p)
    args = (img, p["layers"], p["input_size"], p["hidden"], p["theta_x"], p["theta_h"])
    res = EdgeDRNNModel(*args, burst_latency=p["lam"]).run(X)
    ref = ReferenceEdgeDRNN(*args, burst_latency=p["lam"])
    for t in range(len(X)):
        s = ref.step(X[t].tolist())
        assert s.h == res.h[t].tolist()
        assert s.cycles == res.cycles[t]
        assert s.layer_fired == res.layer_fired[t].tolist()


@settings(max_examples=200, deadline=None)
@given(
    scan=st.integers(2, 300),
    hidden=st.sampled_from([8, 16, 64, 128]),
    lam=st.integers(0, 8),
    later=st.booleans(),
    data=st.data(),
)
def test_more_fired_columns_never_cost_fewer_cycles(scan: int, hidden: int, lam: int, later: bool, data) -> None:
    beats = 3 * hidden // 8
    c_e, c_s = (kn.C_E_LATER, kn.C_S_LATER) if later else (kn.C_E_FIRST, kn.C_S_FIRST)
    fired = sorted(data.draw(st.sets(st.integers(0, scan - 1), max_size=scan)))
    extra = sorted(set(fired) | data.draw(st.sets(st.integers(0, scan - 1), min_size=1, max_size=scan)))
    p_small = np.array(fired, dtype=np.int64)
    p_big = np.array(extra, dtype=np.int64)
    small = kn.mac_phase_cycles(p_small, len(fired), scan, beats, c_e, c_s, lam)
    big = kn.mac_phase_cycles(p_big, len(extra), scan, beats, c_e, c_s, lam)
    assert big >= small
    assert small == mac_cycles_reference(fired, scan, beats, int(later), lam)
    # floor and ceiling of one MAC phase
    assert small >= scan + c_s
    if fired:
        assert small >= fired[-1] + c_e + beats + lam + kn.MAC_TAIL
        assert small <= max(scan + c_s, fired[-1] + c_e + len(fired) * (beats + lam) + kn.MAC_TAIL)
    # a later burst never makes the phase shorter (positions shifted right cost at least as much)
    if fired and fired[-1] < scan - 1:
        shifted = p_small + 1
        assert kn.mac_phase_cycles(shifted, len(fired), scan, beats, c_e, c_s, lam) >= small


@FAST
@given(networks(), st.integers(0, 511))
def test_raising_theta_never_fires_more_on_the_first_layer_at_step0(p: dict, extra: int) -> None:
    # From reset, layer 1's input deltas are x − 0, so a larger Θx fires a subset of the columns.
    img, X = _build(p)
    lo = EdgeDRNNModel(img, p["layers"], p["input_size"], p["hidden"], p["theta_x"], p["theta_h"])
    hi = EdgeDRNNModel(img, p["layers"], p["input_size"], p["hidden"], min(511, p["theta_x"] + extra), p["theta_h"])
    lo.step(X[0])
    hi.step(X[0])
    assert hi.layer_fired[0] <= lo.layer_fired[0]
    assert hi.layer_mac_cycles[0] <= lo.layer_mac_cycles[0]
