"""firmware_bridge's three formats: weight image layout (weight_image), hex-beat text (rtl_hex), deployment bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.bundle import Bundle, check_theta, load_bundle, save_bundle
from firmware_bridge.errors import ImageError
from firmware_bridge.rtl_hex import format_hex_activations, parse_hex_activations, parse_hex_beats
from firmware_bridge.weight_image import build_image, image_size, read_image, split_image, write_image
from hil.edgedrnn.synthetic import image_of, random_bundle, random_layers


def test_size_formula_matches_the_facts_example() -> None:
    assert image_size(2, 5, 16) == 1200 + 1584 == 2784
    assert image_size(2, 8, 16) == 2784
    assert image_size(1, 9, 8) == 3 * 8 * (1 + 16 + 8)


def test_layout_is_column_major_bias_first_rows_rzn() -> None:
    H, I = 8, 3
    w_ih = np.arange(3 * H * I, dtype=np.int8).reshape(3 * H, I)
    w_hh = (-np.arange(3 * H * H) % 100).astype(np.int8).reshape(3 * H, H)
    b = np.full(3 * H, 7, dtype=np.int8)
    img = np.frombuffer(build_image([w_ih], [w_hh], [b]), dtype=np.int8)
    cols = img.reshape(1 + 8 + H, 3 * H)  # one row of this view = one column of [b | W_ih | W_hh]
    np.testing.assert_array_equal(cols[0], b)
    np.testing.assert_array_equal(cols[1 : 1 + I], w_ih.T)
    assert not cols[1 + I : 1 + 8].any()  # input padded with zero columns to K = 8
    np.testing.assert_array_equal(cols[9:], w_hh.T)


def test_build_split_round_trip() -> None:
    rng = np.random.default_rng(1)
    net = random_layers(rng, 3, 11, 24)
    img = image_of(net)
    back = split_image(img, 3, 11, 24)
    for a, b in zip(net, back, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert build_image(*zip(*back, strict=True)) == img


def test_hex_and_bin_files_round_trip(tmp_path: Path) -> None:
    img = image_of(random_layers(np.random.default_rng(2), 2, 5, 16))
    for name in ("w.bin", "w.txt"):
        write_image(tmp_path / name, img)
        assert read_image(tmp_path / name) == img
    first = (tmp_path / "w.txt").read_text().splitlines()[0]
    word, comment = first.split(" // ")
    # test-bench style: the comment lists the beat high byte → low byte
    assert [int(v) for v in comment.rstrip(",").split(",")] == np.frombuffer(img[:8], np.int8)[::-1].tolist()
    assert int(word, 16).to_bytes(8, "little") == img[:8]


def test_hex_parser_skips_comments_and_rejects_junk() -> None:
    assert parse_hex_beats("// header\n\n0102030405060708 // x\n", 8) == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    with pytest.raises(ImageError, match="line 1"):
        parse_hex_beats("xyz\n", 8)
    with pytest.raises(ImageError, match="at most 16"):
        parse_hex_beats("0" * 17 + "\n", 8)


def test_activation_beats_round_trip() -> None:
    x = np.random.default_rng(3).integers(-32768, 32767, (7, 16)).astype(np.int16)
    np.testing.assert_array_equal(parse_hex_activations(format_hex_activations(x), 16), x)
    line = format_hex_activations(np.arange(8, dtype=np.int16)[None]).split(" //")[0]
    assert line.endswith("0000") and line.startswith("0007")  # element 0 = lowest 16 bits
    with pytest.raises(ImageError, match="expected width 16"):
        parse_hex_activations(format_hex_activations(x[:, :8][:3]), 16)


def test_wrong_image_size_names_the_expected_bytes() -> None:
    img = image_of(random_layers(np.random.default_rng(4), 2, 5, 16))
    with pytest.raises(ImageError, match=r"expected 2784 bytes"):
        split_image(img[:-8], 2, 5, 16)
    with pytest.raises(ImageError, match=r"expected 3168 bytes"):
        split_image(img, 2, 16, 16)


def test_hidden_not_multiple_of_k_is_rejected() -> None:
    with pytest.raises(ImageError, match=r"multiple of K=8.*got 12"):
        image_size(2, 5, 12)
    with pytest.raises(ImageError, match=r"layers must be 1\.\.4"):
        image_size(5, 5, 16)


def test_build_rejects_wrong_dtype_and_shapes() -> None:
    net = random_layers(np.random.default_rng(5), 2, 5, 16)
    with pytest.raises(ImageError, match="int8"):
        build_image([net[0].w_ih.astype(np.int16)], [net[0].w_hh], [net[0].bias])
    with pytest.raises(ImageError, match=r"expected \(48, 16\)"):
        build_image([net[0].w_ih, net[1].w_ih[:, :8]], [net[0].w_hh, net[1].w_hh], [net[0].bias, net[1].bias])


def test_theta_register_range() -> None:
    assert check_theta(0) == 0 and check_theta(511) == 511
    for bad in (-1, 512, 1024):
        with pytest.raises(ImageError, match=r"expected 0\.\.511"):
            check_theta(bad)


def test_bundle_round_trip(tmp_path: Path) -> None:
    b = random_bundle(np.random.default_rng(6), theta_x=12, theta_h=30)
    b.metadata = json.dumps({"feature_set": "ampro", "note": "ü"})
    p = save_bundle(tmp_path / "ctrl.npz", b)
    c = load_bundle(p)
    assert (c.layers, c.input_size, c.hidden, c.theta_x, c.theta_h) == (2, 5, 16, 12, 30)
    np.testing.assert_array_equal(c.image, b.image)
    np.testing.assert_array_equal(c.out_weight, b.out_weight)
    np.testing.assert_array_equal(c.out_bias, b.out_bias)
    assert c.out_bias.dtype == np.int32 and c.input_mean.dtype == np.float32
    assert c.meta == {"feature_set": "ampro", "note": "ü"}
    with pytest.raises(FileExistsError):
        save_bundle(p, b)
    save_bundle(p, b, overwrite=True)


def test_bundle_validation_errors(tmp_path: Path) -> None:
    b = random_bundle(np.random.default_rng(7))
    kw = {k: getattr(b, k) for k in Bundle.__dataclass_fields__}
    cases = [
        ({"image": b.image[:-1]}, "expected 2784 bytes"),
        ({"theta_h": 600}, r"expected 0\.\.511"),
        ({"out_weight": b.out_weight.astype(np.int16)}, r"int8 \[O, 16\]"),
        ({"out_bias": np.zeros(3, np.int32)}, r"out_bias must have shape \(2,\)"),
        ({"out_bias": np.zeros(2, np.float64)}, "out_bias must be int32"),
        ({"input_std": np.zeros(5)}, "input_std must be > 0"),
        ({"input_mean": np.zeros(4)}, r"input_mean must have shape \(5,\)"),
        ({"metadata": "not json"}, "JSON"),
        ({"hidden": 12}, "multiple of K=8"),
    ]
    for change, msg in cases:
        with pytest.raises(ImageError, match=msg):
            Bundle(**{**kw, **change})
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ImageError, match="missing keys"):
        load_bundle(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"nope")
    with pytest.raises(ImageError, match="not a readable"):
        load_bundle(tmp_path / "junk.npz")


def test_firmware_bridge_does_not_import_hil() -> None:
    import firmware_bridge.bundle
    import firmware_bridge.rtl_hex
    import firmware_bridge.weight_image

    for module in (firmware_bridge.weight_image, firmware_bridge.rtl_hex, firmware_bridge.bundle):
        source = Path(module.__file__).read_text()
        assert "import hil" not in source and "from hil" not in source, module.__name__
