"""Conformance of the EdgeDRNN model with the authors' RTL test bench (2-layer, 16-unit net, Θ = 0, 1000 steps).

Reads ``$LEGLOOP_CONFORMANCE_DIR/edgedrnn`` (set by ``.ci/run``) through the ``edgedrnn_tb`` fixture; skipped with a
message where the variable is unset or the folder is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controllers.fixedpoint import sig_q, tanh_q
from firmware_bridge.rtl_hex import parse_hex_activations, read_lut_dump
from firmware_bridge.weight_image import image_size, read_image, split_image
from hil.edgedrnn.model import EdgeDRNNModel
from hil.edgedrnn.reference import ReferenceEdgeDRNN

LAYERS, INPUT, HIDDEN = 2, 5, 16


@pytest.fixture
def vectors(edgedrnn_tb: Path) -> dict[str, np.ndarray]:
    cycles = np.loadtxt(edgedrnn_tb / "edgedrnn_tb_cycles_th0.csv", delimiter=",", skiprows=1, dtype=np.int64)
    return {
        "image": np.frombuffer(read_image(edgedrnn_tb / "edgedrnn_tb_params.txt"), dtype=np.int8),
        "stim": parse_hex_activations((edgedrnn_tb / "edgedrnn_tb_stim.txt").read_text(), 8),
        "gold": parse_hex_activations((edgedrnn_tb / "edgedrnn_tb_gold_rnn.txt").read_text(), HIDDEN),
        "cycles": cycles,
    }


def test_creg_matches_the_geometry(edgedrnn_tb: Path) -> None:
    lines = (edgedrnn_tb / "edgedrnn_tb_creg.txt").read_text().splitlines()
    regs = [int(line.split("//")[0], 16) for line in lines if line]
    assert regs[1] == 0 and regs[2] == 0  # Θx, Θh
    assert regs[3] == LAYERS
    assert regs[4] == 8  # input size as the RTL sees it: 5 padded to 8
    assert regs[5] == regs[6] == HIDDEN


def test_luts_equal_the_rtl_dumps(edgedrnn_tb: Path) -> None:
    for name, fn, lo, hi in (("sigmoid_lut.txt", sig_q, -2048, 2047), ("tanh_lut.txt", tanh_q, -1024, 1023)):
        idx, val = read_lut_dump(str(edgedrnn_tb / name))
        assert idx[0] == lo and idx[-1] == hi and len(idx) == hi - lo + 1
        ours = np.array([fn(int(p)) for p in idx])
        np.testing.assert_array_equal(ours, val, err_msg=name)


def test_image_packing(vectors: dict[str, np.ndarray]) -> None:
    img = vectors["image"]
    assert img.size == image_size(LAYERS, INPUT, HIDDEN) == 2784  # 1200 + 1584 (facts page example)
    # The first line of the params file is "1624F50D0902151B // 22, 36, -11, 13, 9, 2, 21, 27," (high → low byte):
    # the first weight is the lowest byte.
    assert img[:8].tolist() == [27, 21, 2, 9, 13, -11, 36, 22]
    layers = split_image(img, LAYERS, 8, HIDDEN)
    assert not layers[0].w_ih[:, INPUT:].any(), "padding columns of W_ih must be zero"


def test_all_output_beats_bit_identical(vectors: dict[str, np.ndarray]) -> None:
    model = EdgeDRNNModel(vectors["image"], LAYERS, INPUT, HIDDEN, 0, 0)
    res = model.run(vectors["stim"])
    gold = vectors["gold"]
    assert res.h.shape == gold.shape == (1000, HIDDEN)
    bad = np.argwhere(res.h != gold)
    assert bad.size == 0, f"{len(bad)} of {gold.size} values differ; first at (step, unit) {tuple(bad[0])}"


def test_step_by_step_equals_the_gold_too(vectors: dict[str, np.ndarray]) -> None:
    # The per-step path (what the loop uses), with the unpadded input width.
    model = EdgeDRNNModel(vectors["image"], LAYERS, INPUT, HIDDEN, 0, 0)
    for t in range(200):
        np.testing.assert_array_equal(model.step(vectors["stim"][t, :INPUT]), vectors["gold"][t])


def test_cycle_counts_within_4_of_the_rtl(vectors: dict[str, np.ndarray]) -> None:
    tbc = vectors["cycles"]
    model = EdgeDRNNModel(vectors["image"], LAYERS, INPUT, HIDDEN, 0, 0)
    res = model.run(vectors["stim"])
    err = res.cycles - tbc[:, 1]
    assert np.abs(err).max() <= 4, f"max |error| {np.abs(err).max()} at step {np.abs(err).argmax()}"
    assert np.abs(err).mean() <= 1.5, f"mean |error| {np.abs(err).mean():.3f}"
    # Fired columns are not a fit: they must match exactly, in total and per layer (bias, x, h columns).
    np.testing.assert_array_equal(res.fired_columns, tbc[:, 2])
    np.testing.assert_array_equal(res.layer_fired[:, 0], tbc[:, 3] // 2 + tbc[:, 4] + tbc[:, 5])
    np.testing.assert_array_equal(res.layer_fired[:, 1], tbc[:, 3] // 2 + tbc[:, 6] + tbc[:, 7])
    # Phase ends: the per-layer split of the model is within the same tolerance.
    ends = np.cumsum(
        np.stack(
            [
                res.layer_mac_cycles[:, 0],
                res.layer_act_cycles[:, 0],
                res.layer_mac_cycles[:, 1],
                res.layer_act_cycles[:, 1],
            ],
            axis=1,
        ),
        axis=1,
    )
    assert np.abs(ends - tbc[:, 8:12]).max() <= 4


def test_reference_model_agrees_on_the_first_steps(vectors: dict[str, np.ndarray]) -> None:
    ref = ReferenceEdgeDRNN(vectors["image"], LAYERS, INPUT, HIDDEN, 0, 0)
    for t in range(50):
        s = ref.step(vectors["stim"][t].tolist())
        assert s.h == vectors["gold"][t].tolist()
