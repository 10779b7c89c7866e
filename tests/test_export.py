"""Export of a checkpoint: EdgeDRNN bundle (Q1.7 grid, Q8.8 thresholds), C header that compiles, ONNX, export_all."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.checkpoint import load_checkpoint
from firmware_bridge.bundle import load_bundle
from firmware_bridge.export import (
    ExportError,
    OnnxUnavailableError,
    bundle_from_checkpoint,
    bundle_from_model,
    c_header,
    export_all,
    onnx_available,
    onnx_bytes,
    theta_lsb,
)
from firmware_bridge.weight_image import split_image
from hil.edgedrnn.backend import EdgeDRNNBackend

torch.set_num_threads(1)


def test_bundle_weights_are_the_quantised_layer_params(make_checkpoint) -> None:
    # gain 6: some weights beyond ±1 get clipped
    m = make_checkpoint.model(hidden=32, gain=6.0, theta_x=4 / 256, theta_h=0.5)
    b = bundle_from_model(m, make_checkpoint.meta(m))
    H = m.hidden_size
    for layer, lw in enumerate(split_image(b.image, b.layers, b.input_size, b.hidden)):
        p = m.layer_params(layer)
        for got, ref in ((lw.w_ih, p.w_ih), (lw.w_hh, p.w_hh), (lw.bias, p.m_init[: 3 * H])):
            ref = ref.detach().double().numpy()
            expect = np.clip(np.rint(ref * 128), -128, 127)
            np.testing.assert_array_equal(got.astype(np.int64), expect)
            inside = np.abs(ref) <= 127 / 128
            assert np.all(np.abs(got[inside] / 128 - ref[inside]) <= 1 / 256)  # on the grid: half an LSB away
    assert b.meta["clipped_weights"] > 0
    assert (b.theta_x, b.theta_h) == (4, 128)
    mean, std = make_checkpoint.norm("ampro")
    np.testing.assert_array_equal(b.input_mean, mean)
    np.testing.assert_array_equal(b.input_std, std)
    np.testing.assert_array_equal(b.out_offset, [10.0, 5.0])


def test_qat_model_exports_exactly_and_output_layer_units(make_checkpoint) -> None:
    m = make_checkpoint.model(hidden=32, qat=True)
    b = bundle_from_model(m, make_checkpoint.meta(m))
    w, bias = m.output_params()
    np.testing.assert_array_equal(b.out_weight.astype(np.float64) / 128, w.detach().double().numpy())
    np.testing.assert_array_equal(b.out_bias, (bias.detach().double().numpy() * 128).astype(np.int64) * 256)
    np.testing.assert_array_equal(b.out_scale, [40.0, 20.0])
    assert b.meta["clipped_weights"] == 0 and b.meta["out_shift"] == 0


def test_large_output_weights_are_rescaled_not_clipped(make_checkpoint) -> None:
    m = make_checkpoint.model(hidden=32)
    with torch.no_grad():
        m.fc.weight.mul_(20.0)  # up to ~3.5: outside Q1.7
    b = bundle_from_model(m, make_checkpoint.meta(m))
    s = 2.0 ** b.meta["out_shift"]
    assert b.meta["out_shift"] >= 2
    np.testing.assert_array_equal(b.out_scale, np.array([40.0, 20.0]) * s)
    w = m.fc.weight.detach().double().numpy()
    assert np.abs(b.out_weight / 128 * s - w).max() <= s / 256 + 1e-12


def test_thresholds_to_q88_register(make_checkpoint) -> None:
    assert theta_lsb(4 / 256, "theta_x") == 4
    assert theta_lsb(0.5, "theta_h") == 128
    assert theta_lsb(1.5 / 256, "t") == 2  # round half to even
    assert theta_lsb(511 / 256, "t") == 511
    with pytest.raises(ExportError, match=r"theta_h=2 is 512 Q8\.8 LSB.*0\.\.511"):
        theta_lsb(2.0, "theta_h")
    assert theta_lsb(2.0, "theta_h", clip=True) == 511
    m = make_checkpoint.model(hidden=32, theta_h=3.0)
    with pytest.raises(ExportError, match="10-bit threshold register"):
        bundle_from_model(m, make_checkpoint.meta(m))
    assert bundle_from_model(m, make_checkpoint.meta(m), clip_theta=True).theta_h == 511


def test_nonzero_bhn_is_refused(make_checkpoint) -> None:
    m = make_checkpoint.model(hidden=32, bhn_zero=False)
    with pytest.raises(ExportError, match="no b_hn"):
        bundle_from_model(m, make_checkpoint.meta(m))


def test_bundle_on_edgedrnn_tracks_the_float_model(make_checkpoint) -> None:
    """Θ = 0, QAT weights (on the Q1.7 grid): EdgeDRNN vs the float nn.GRU with those same weights.

    Stated bound. The integer model differs from float by Q8.8 rounding of inputs / pre-activations / h and,
    dominantly, by the σ/tanh tables' 1/16 output resolution; the recurrence keeps that from accumulating. On a
    smooth input sequence (1000 steps): the last-layer h stays within 3/16 (three table steps) at every step and
    within 1/32 (half a step) on average; each output is then within ‖w_o‖₁ · max|Δh| + 2^-15 (triangle inequality
    over the output layer, plus the bias rounding), and within 0.02 output units on average.
    """
    m = make_checkpoint.model(hidden=32, qat=True)
    meta = make_checkpoint.meta(m)
    b = bundle_from_model(m, meta)
    be = EdgeDRNNBackend(b)
    T = 1000
    rng = np.random.default_rng(0)
    t = np.arange(T)[:, None] / 200.0
    z = np.sin(2 * np.pi * 0.9 * t + rng.uniform(0, 6, (1, 5))) + 0.3 * np.sin(
        2 * np.pi * 1.8 * t + rng.uniform(0, 6, (1, 5))
    )
    mean, std = make_checkpoint.norm("ampro")
    feats = z * std + mean
    h_e = np.zeros((T, m.hidden_size))
    y_e = np.zeros((T, 2))
    for k in range(T):
        r = be.step(feats[k])
        h_e[k] = r.h / 256.0
        y_e[k] = (r.outputs - b.out_offset) / b.out_scale  # back to network output units
    gru, fc = m.to_gru()
    with torch.no_grad():
        h_f = gru(torch.from_numpy(meta.input_norm(feats.astype(np.float32))).unsqueeze(0))[0][0]
        y_f = fc(h_f).double().numpy()
    h_f = h_f.double().numpy()
    dh = np.abs(h_e - h_f)
    assert dh.max() <= 3 / 16 and dh.mean() <= 1 / 32
    w1 = np.abs(b.out_weight.astype(np.float64) / 128).sum(axis=1)
    bound = w1[None, :] * dh.max(axis=1, keepdims=True) + 2.0**-15
    dy = np.abs(y_e - y_f)
    assert np.all(dy <= bound + 1e-9)
    assert dy.mean() <= 0.02
    assert np.ptp(y_f, axis=0).min() > 0.1  # the sequence actually moves the outputs


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_header_compiles_and_holds_the_bundle(tmp_path: Path, make_checkpoint) -> None:
    m = make_checkpoint.model(hidden=16, theta_x=4 / 256, theta_h=0.25)
    with torch.no_grad():
        m.fc.bias[0] = -1.0  # a negative output bias in the int32 array
    b = bundle_from_model(m, make_checkpoint.meta(m))
    text = c_header(b)
    (tmp_path / "controller.h").write_text(text)
    src = tmp_path / "use.c"
    src.write_text(
        '#include "controller.h"\n#include "controller.h"\n'  # twice: the include guard must hold
        "int first_weight(void) { return legloop_weight_image[0] + LEGLOOP_HIDDEN_SIZE; }\n"
        "float first_mean(void) { return legloop_input_mean[0] * LEGLOOP_CONTROL_DT_S; }\n"
    )
    proc = subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", str(src), "-o", str(tmp_path / "use.o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "#define LEGLOOP_THETA_X 4\n" in text and "#define LEGLOOP_THETA_H 64\n" in text
    assert f"#define LEGLOOP_WEIGHT_IMAGE_BYTES {b.image.size}\n" in text
    body = re.search(r"legloop_weight_image\[(\d+)\][^{]*\{([^}]*)\}", text)
    assert body is not None and int(body.group(1)) == b.image.size
    values = np.array([int(v) for v in body.group(2).replace("\n", " ").split(",")], dtype=np.int64)
    np.testing.assert_array_equal(values, b.image.view(np.int8))
    mean = re.search(r"legloop_input_mean\[5\][^{]*\{([^}]*)\}", text)
    assert mean is not None
    np.testing.assert_array_equal(
        np.array([float(v.strip().rstrip("f")) for v in mean.group(1).split(",")], np.float32),
        make_checkpoint.norm("ampro")[0],
    )


@pytest.mark.skipif(onnx_available(), reason="the 'onnx' package is installed: the missing-package path cannot occur")
def test_onnx_without_the_package_raises_a_clear_error(tmp_path: Path, make_checkpoint) -> None:
    m = make_checkpoint.model(hidden=32)
    with pytest.raises(OnnxUnavailableError, match="'onnx'"):
        onnx_bytes(m, make_checkpoint.meta(m))
    ck = make_checkpoint(hidden=32, theta_x=4 / 256, theta_h=0.5)
    with pytest.raises(OnnxUnavailableError):
        export_all(ck, tmp_path / "out", onnx=True)
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.skipif(not onnx_available(), reason="the 'onnx' package is not installed (torch.onnx.export needs it)")
def test_onnx_export_matches_the_dense_model(make_checkpoint) -> None:  # pragma: no cover - needs onnx
    import onnx

    m = make_checkpoint.model(hidden=32)
    data = onnx_bytes(m, make_checkpoint.meta(m))
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["features", "h0"]


def test_export_all_writes_and_refuses_to_overwrite(tmp_path: Path, make_checkpoint) -> None:
    ck = make_checkpoint(hidden=32, theta_x=4 / 256, theta_h=0.5)
    out = tmp_path / "deploy"
    paths = export_all(ck, out)
    assert set(paths) == ({"bundle", "header", "onnx"} if onnx_available() else {"bundle", "header"})
    assert paths["bundle"].name == "controller.bundle.npz" and paths["header"].name == "controller.h"
    on_disk = load_bundle(paths["bundle"])
    mem = bundle_from_checkpoint(ck)
    np.testing.assert_array_equal(on_disk.image, mem.image)
    np.testing.assert_array_equal(on_disk.out_bias, mem.out_bias)
    assert on_disk.meta["feature_set"] == "ampro" and on_disk.meta["weights_sha256"]
    before = {p: p.read_bytes() for p in paths.values()}
    with pytest.raises(FileExistsError, match="overwrite"):
        export_all(ck, out)
    assert {p: p.read_bytes() for p in paths.values()} == before
    assert set(export_all(ck, out, overwrite=True, onnx=False)) == {"bundle", "header"}
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())  # no temp files left
    model, meta = load_checkpoint(ck)
    assert meta.feature_set == "ampro" and model.theta_h == 0.5
