"""`legloop edgedrnn simulate` end to end: on the RTL bench's own files, on .bin/.npy files, and its user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main
from firmware_bridge.rtl_hex import parse_hex_activations
from firmware_bridge.weight_image import write_image
from hil.edgedrnn.synthetic import image_of, random_layers, smooth_inputs


def _args(image: Path, inputs: Path, out: Path, *extra: str, hidden: int = 16, theta: int = 0) -> list[str]:
    return [
        "edgedrnn", "simulate", "--image", str(image), "--layers", "2", "--input-size", "5",
        "--hidden", str(hidden), "--theta-x", str(theta), "--theta-h", str(theta),
        "--inputs", str(inputs), "--out", str(out), *extra,
    ]  # fmt: skip


def test_simulate_on_the_conformance_files(edgedrnn_tb: Path, tmp_path: Path, capsys) -> None:
    tb = edgedrnn_tb
    out = tmp_path / "r.npz"
    rc = main(_args(tb / "edgedrnn_tb_params.txt", tb / "edgedrnn_tb_stim.txt", out))
    assert rc == 0
    text = capsys.readouterr().out
    assert "cycles mean" in text and "p99" in text and "sparsity" in text and "latency" in text
    res = np.load(out)
    gold = parse_hex_activations((tb / "edgedrnn_tb_gold_rnn.txt").read_text(), 16)
    assert res["h"].dtype == np.int16
    np.testing.assert_array_equal(res["h"], gold)
    tbc = np.loadtxt(tb / "edgedrnn_tb_cycles_th0.csv", delimiter=",", skiprows=1, dtype=np.int64)
    np.testing.assert_array_equal(res["fired_columns"], tbc[:, 2])
    assert np.abs(res["cycles"] - tbc[:, 1]).max() <= 4
    # refuses to overwrite, unless --force
    assert main(_args(tb / "edgedrnn_tb_params.txt", tb / "edgedrnn_tb_stim.txt", out)) == 2
    assert "--force" in capsys.readouterr().err
    assert main(_args(tb / "edgedrnn_tb_params.txt", tb / "edgedrnn_tb_stim.txt", out, "--force")) == 0


def test_simulate_bin_and_npy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = image_of(random_layers(rng, 2, 5, 16))
    write_image(tmp_path / "w.bin", img)
    X = smooth_inputs(rng, 64, 8, 20.0)
    X[:, 5:] = 0
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "r.npz"
    assert main(_args(tmp_path / "w.bin", tmp_path / "x.npy", out, "--clock-mhz", "100", "--burst-latency", "2")) == 0
    res = np.load(out)
    assert res["h"].shape == (64, 16) and res["cycles"].shape == res["fired_columns"].shape == (64,)
    np.testing.assert_allclose(res["latency_s"], res["cycles"] / 100e6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden": 12}, "multiple of K=8"),
        ({"theta": 512}, "expected 0..511"),
        ({"hidden": 24}, "expected 5904 bytes"),
        ({"npy_width": 6}, "expected int16 [T, 8]"),
        ({"npy_dtype": np.float32}, "expected int16"),
        ({"out": "r.txt"}, "expected a .npz"),
        ({"image": "missing.bin"}, "no such file"),
    ],
)
def test_simulate_user_errors(tmp_path: Path, capsys, change: dict, message: str) -> None:
    img = image_of(random_layers(np.random.default_rng(1), 2, 5, 16))
    write_image(tmp_path / "w.bin", img)
    x = np.zeros((4, change.get("npy_width", 8)), dtype=change.get("npy_dtype", np.int16))
    np.save(tmp_path / "x.npy", x)
    image = tmp_path / change.get("image", "w.bin")
    args = _args(
        image, tmp_path / "x.npy", tmp_path / change.get("out", "r.npz"),
        hidden=change.get("hidden", 16), theta=change.get("theta", 0),
    )  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("legloop edgedrnn: error:") and message in err and err.count("\n") == 1
