"""The EdgeDRNN accelerator's DRAM weight image: layout, build / split / check, read / write.

Weight image (``../shared/facts/edgedrnn.md``)
-----------------------------------------------
Per layer a matrix ``[b | W_ih | W_hh]`` of 3H rows, stored column-major as INT8 (Q1.7). Rows within a column are
ordered r (0..H-1), z (H..2H-1), n (2H..3H-1). The bias column holds ``b_ir+b_hr, b_iz+b_hz, b_in`` (the hardware
has no ``b_hn``). ``W_ih`` of layer 1 has its input zero-padded to a multiple of K = 8 columns; later layers take the
previous layer's h (I_l = H). Layers follow each other with no gap, so the image has
``Σ_l 3H·(1 + I_l_padded + H)`` bytes. All layers share one H (the RTL addresses columns as ``base + index·3H``).

Files: ``.bin`` holds the raw bytes, ``.txt`` / ``.hex`` / ``.mem`` the test bench's 64-bit hex beats
(:mod:`firmware_bridge.rtl_hex`).

This module must not import ``hil`` (imports point down the ladder experiments → hil → firmware_bridge).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from controllers.fixedpoint import MAX_HIDDEN, MAX_LAYERS, K
from envs.files import atomic_write_bytes, atomic_write_text
from firmware_bridge.errors import ImageError
from firmware_bridge.rtl_hex import WEIGHT_BEAT_BYTES, format_hex_beats, parse_hex_beats


def padded(n: int, k: int = K) -> int:
    """``n`` rounded up to a multiple of ``k``."""
    return -(-int(n) // k) * k


@dataclass(frozen=True)
class ImageLayout:
    """Geometry of a weight image: where each layer starts and how many columns it has.

    ``input_size`` may be the padded or unpadded input width; ``input_padded`` is what the image holds.
    """

    layers: int
    input_size: int
    hidden: int
    input_padded: int = field(init=False)
    layer_inputs: tuple[int, ...] = field(init=False)  # I_l (padded) per layer
    layer_offsets: tuple[int, ...] = field(init=False)  # byte offset of each layer's bias column
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        check_geometry(self.layers, self.input_size, self.hidden)
        ip = padded(self.input_size)
        inputs = tuple([ip] + [self.hidden] * (self.layers - 1))
        offsets = []
        off = 0
        for i_l in inputs:
            offsets.append(off)
            off += 3 * self.hidden * (1 + i_l + self.hidden)
        object.__setattr__(self, "input_padded", ip)
        object.__setattr__(self, "layer_inputs", inputs)
        object.__setattr__(self, "layer_offsets", tuple(offsets))
        object.__setattr__(self, "nbytes", off)

    def columns(self, layer: int) -> int:
        """Columns of ``layer`` (0-based): bias + inputs + hidden."""
        return 1 + self.layer_inputs[layer] + self.hidden


def check_geometry(layers: int, input_size: int, hidden: int) -> None:
    """Raise :class:`ImageError` naming the expected value if the network shape is not one the RTL supports."""
    if not 1 <= int(layers) <= MAX_LAYERS:
        raise ImageError(f"layers must be 1..{MAX_LAYERS}, got {layers}")
    if int(input_size) < 1:
        raise ImageError(f"input size must be >= 1, got {input_size}")
    if int(hidden) < K or int(hidden) % K != 0 or int(hidden) > MAX_HIDDEN:
        raise ImageError(
            f"hidden size must be a multiple of K={K} in {K}..{MAX_HIDDEN}, got {hidden}"
            f" (nearest valid: {min(MAX_HIDDEN, max(K, padded(hidden)))})"
        )


def image_size(layers: int, input_size: int, hidden: int) -> int:
    """Bytes of the image: ``Σ_l 3H·(1 + I_l_padded + H)``."""
    return ImageLayout(layers, input_size, hidden).nbytes


def as_image_array(image: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """An image as a 1-D int8 array (a view of an int8/uint8 array; bytes are copied), without a size check."""
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.int8, np.uint8) or image.ndim != 1:
            raise ImageError(f"image array must be 1-D int8/uint8, got {image.dtype} {image.shape}")
        return image.view(np.int8)
    return np.frombuffer(bytes(image), dtype=np.int8)


def check_image(image: bytes | np.ndarray, layers: int, input_size: int, hidden: int) -> np.ndarray:
    """Return the image as a 1-D int8 array after checking its size against the geometry."""
    layout = ImageLayout(layers, input_size, hidden)
    arr = as_image_array(image)
    if arr.size != layout.nbytes:
        terms = " + ".join(
            f"3·{hidden}·(1+{i_l}+{hidden})={3 * hidden * (1 + i_l + hidden)}" for i_l in layout.layer_inputs
        )
        raise ImageError(
            f"weight image has {arr.size} bytes; expected {layout.nbytes} bytes for layers={layers}, "
            f"input_size={input_size} (padded {layout.input_padded}), hidden={hidden}: {terms}"
        )
    return arr


class LayerWeights(NamedTuple):
    """One layer's INT8 (Q1.7) parameters in PyTorch's row order r, z, n."""

    w_ih: np.ndarray  # [3H, I]
    w_hh: np.ndarray  # [3H, H]
    bias: np.ndarray  # [3H]: b_ir+b_hr, b_iz+b_hz, b_in


def build_image(w_ih: Sequence[np.ndarray], w_hh: Sequence[np.ndarray], bias: Sequence[np.ndarray]) -> bytes:
    """Lay out per-layer int8 matrices as the accelerator's DRAM image.

    Parameters
    ----------
    w_ih, w_hh, bias
        Per layer: ``W_ih`` int8 [3H, I_l], ``W_hh`` int8 [3H, H], bias int8 [3H] (rows r, z, n). Layer 1's
        inputs are zero-padded to a multiple of 8; later layers need I_l = H.

    Returns
    -------
    bytes
        The image, ``Σ_l 3H·(1 + I_l_padded + H)`` bytes.
    """
    if not (len(w_ih) == len(w_hh) == len(bias)) or len(w_ih) == 0:
        raise ImageError("w_ih, w_hh and bias need one entry per layer (same, non-zero count)")
    hidden = np.asarray(w_hh[0]).shape[-1]
    input_size = np.asarray(w_ih[0]).shape[-1]
    layout = ImageLayout(len(w_ih), input_size, hidden)
    h3 = 3 * hidden
    out = np.zeros(layout.nbytes, dtype=np.int8)
    for layer, (wi, wh, b) in enumerate(zip(w_ih, w_hh, bias, strict=True)):
        wi, wh, b = (np.asarray(a) for a in (wi, wh, b))
        for name, a in (("w_ih", wi), ("w_hh", wh), ("bias", b)):
            if a.dtype != np.int8:
                raise ImageError(f"layer {layer} {name} must be int8 (Q1.7), got {a.dtype}")
        i_l = input_size if layer == 0 else hidden
        if wi.shape != (h3, i_l):
            raise ImageError(f"layer {layer} w_ih has shape {wi.shape}; expected {(h3, i_l)}")
        if wh.shape != (h3, hidden):
            raise ImageError(f"layer {layer} w_hh has shape {wh.shape}; expected {(h3, hidden)}")
        if b.shape != (h3,):
            raise ImageError(f"layer {layer} bias has shape {b.shape}; expected {(h3,)}")
        ip = layout.layer_inputs[layer]
        mat = np.zeros((h3, 1 + ip + hidden), dtype=np.int8)
        mat[:, 0] = b
        mat[:, 1 : 1 + i_l] = wi
        mat[:, 1 + ip :] = wh
        off = layout.layer_offsets[layer]
        out[off : off + mat.size] = mat.T.reshape(-1)  # column-major
    return out.tobytes()


def split_image(image: bytes | np.ndarray, layers: int, input_size: int, hidden: int) -> list[LayerWeights]:
    """Inverse of :func:`build_image`: per-layer ``(w_ih [3H, I_l], w_hh [3H, H], bias [3H])`` int8 copies.

    Layer 1's ``w_ih`` has ``input_size`` columns (pass the padded width to also see the padding columns).
    """
    arr = check_image(image, layers, input_size, hidden)
    layout = ImageLayout(layers, input_size, hidden)
    h3 = 3 * hidden
    result = []
    for layer in range(layers):
        ip = layout.layer_inputs[layer]
        cols = layout.columns(layer)
        off = layout.layer_offsets[layer]
        mat = arr[off : off + h3 * cols].reshape(cols, h3).T
        i_l = input_size if layer == 0 else hidden
        result.append(
            LayerWeights(w_ih=mat[:, 1 : 1 + i_l].copy(), w_hh=mat[:, 1 + ip :].copy(), bias=mat[:, 0].copy())
        )
    return result


def _is_hex_path(path: Path) -> bool:
    return path.suffix.lower() in (".txt", ".hex", ".mem")


def read_image(path: str | os.PathLike) -> bytes:
    """Read a weight image: ``.bin`` raw bytes, ``.txt``/``.hex``/``.mem`` 64-bit hex beats."""
    p = Path(path)
    if _is_hex_path(p):
        return parse_hex_beats(p.read_text(encoding="ascii"), WEIGHT_BEAT_BYTES)
    if p.suffix.lower() == ".bin":
        return p.read_bytes()
    raise ImageError(f"{p}: unknown weight-image format {p.suffix!r}; expected .bin (raw) or .txt/.hex (beats)")


def write_image(path: str | os.PathLike, image: bytes | np.ndarray) -> None:
    """Write a weight image atomically; the suffix picks the format as in :func:`read_image`."""
    p = Path(path)
    data = as_image_array(image).tobytes()
    if _is_hex_path(p):
        if len(data) % WEIGHT_BEAT_BYTES:
            raise ImageError(f"image of {len(data)} bytes is not a whole number of 64-bit beats")
        atomic_write_text(p, format_hex_beats(data, WEIGHT_BEAT_BYTES), encoding="ascii")
    elif p.suffix.lower() == ".bin":
        atomic_write_bytes(p, data)
    else:
        raise ImageError(f"{p}: unknown weight-image format {p.suffix!r}; expected .bin or .txt/.hex")
