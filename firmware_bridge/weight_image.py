"""The EdgeDRNN accelerator's DRAM weight image, the RTL test bench's hex-beat text, and the deployment bundle.

Weight image (``../shared/facts/edgedrnn.md``)
-----------------------------------------------
Per layer a matrix ``[b | W_ih | W_hh]`` of 3H rows, stored column-major as INT8 (Q1.7). Rows within a column are
ordered r (0..H-1), z (H..2H-1), n (2H..3H-1). The bias column holds ``b_ir+b_hr, b_iz+b_hz, b_in`` (the hardware
has no ``b_hn``). ``W_ih`` of layer 1 has its input zero-padded to a multiple of K = 8 columns; later layers take the
previous layer's h (I_l = H). Layers follow each other with no gap, so the image has
``Σ_l 3H·(1 + I_l_padded + H)`` bytes. All layers share one H (the RTL addresses columns as ``base + index·3H``).

Hex-beat text
-------------
One beat per line, upper- or lower-case hex, optionally followed by ``// comment``. A beat is a little-endian word:
the first element (weight or activation) is the lowest byte(s). Weights travel as 64-bit beats (8 INT8), activations
as 128-bit beats (8 Q8.8 int16). Blank lines and lines that are only a comment are skipped.

Deployment bundle (``.npz``, written by :func:`save_bundle`, read by :func:`load_bundle`)
-----------------------------------------------------------------------------------------
=================  ==================  ==============================================================================
key                dtype / shape       meaning
=================  ==================  ==============================================================================
``format``         str (0-d)           ``"legloop-edgedrnn-bundle"``
``version``        int64 (0-d)         ``1``
``image``          uint8 [N]           the weight image above (N checked against layers/input_size/hidden)
``layers``         int64 (0-d)         number of GRU layers (1..4)
``input_size``     int64 (0-d)         network inputs before padding (the image holds ``ceil(I/8)·8`` columns)
``hidden``         int64 (0-d)         H, a multiple of 8, ≤ 1024
``theta_x``        int64 (0-d)         Θx in Q8.8 LSB, 0..511 (10-bit signed register)
``theta_h``        int64 (0-d)         Θh in Q8.8 LSB, 0..511
``out_weight``     int8 [O, H]         output layer (runs on the ARM core) weights, Q1.7
``out_bias``       int32 [O]           output bias in the units of the ARM's int32 MAC, i.e. 2^-15
                                       (Q8.8 h × Q1.7 w). A Q1.7 bias ``b_q`` is stored as ``b_q·256``; a float
                                       bias ``b`` as ``round(b·2^15)``.
``out_scale``      float32 [O]         output de-normalisation: ``y = (acc·2^-15)·out_scale + out_offset``
``out_offset``     float32 [O]         (defaults 1 and 0 when absent from the file)
``input_mean``     float32 [I]         z-score normalisation of the float features: ``(f − mean) / std``,
``input_std``      float32 [I]         then Q8.8 (round half to even, saturate); std must be > 0
``metadata``       str (0-d)           free-form JSON object (training run, feature set, units, …)
=================  ==================  ==============================================================================

This module must not import ``hil`` (imports point down the ladder experiments → hil → firmware_bridge).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from controllers.fixedpoint import MAX_HIDDEN, MAX_LAYERS, THETA_MAX, K

BUNDLE_FORMAT = "legloop-edgedrnn-bundle"
BUNDLE_VERSION = 1
WEIGHT_BEAT_BYTES = 8  # 64-bit weight stream
ACT_BEAT_VALUES = 8  # 128-bit activation stream: 8 × int16


class ImageError(ValueError):
    """A weight image, its geometry or a bundle is inconsistent."""


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


def _as_image_array(image: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.int8, np.uint8) or image.ndim != 1:
            raise ImageError(f"image array must be 1-D int8/uint8, got {image.dtype} {image.shape}")
        return image.view(np.int8)
    return np.frombuffer(bytes(image), dtype=np.int8)


def check_image(image: bytes | np.ndarray, layers: int, input_size: int, hidden: int) -> np.ndarray:
    """Return the image as a 1-D int8 array after checking its size against the geometry."""
    layout = ImageLayout(layers, input_size, hidden)
    arr = _as_image_array(image)
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


# --------------------------------------------------------------------------------------------------- hex beats


def parse_hex_beats(text: str, beat_bytes: int) -> bytes:
    """Hex-beat text → bytes, each beat little-endian (first element = lowest byte)."""
    out = bytearray()
    for lineno, raw in enumerate(text.splitlines(), 1):
        token = raw.split("//", 1)[0].strip()
        if not token:
            continue
        if token.lower().startswith("0x"):
            token = token[2:]
        token = token.replace("_", "")
        if len(token) > 2 * beat_bytes:
            raise ImageError(
                f"line {lineno}: beat {token!r} has {len(token)} hex digits; expected at most {2 * beat_bytes}"
            )
        try:
            value = int(token, 16)
        except ValueError:
            raise ImageError(f"line {lineno}: {token!r} is not a hex beat") from None
        out += value.to_bytes(beat_bytes, "little")
    return bytes(out)


def format_hex_beats(data: bytes, beat_bytes: int, element_bytes: int = 1) -> str:
    """Bytes → hex-beat text in the test bench's style (comment lists the elements high → low, signed)."""
    if len(data) % beat_bytes:
        raise ImageError(f"{len(data)} bytes is not a whole number of {beat_bytes}-byte beats")
    dtype = {1: "<i1", 2: "<i2"}[element_bytes]
    lines = []
    for start in range(0, len(data), beat_bytes):
        beat = data[start : start + beat_bytes]
        word = int.from_bytes(beat, "little")
        elems = np.frombuffer(beat, dtype=dtype)[::-1]
        lines.append(f"{word:0{2 * beat_bytes}X} // " + "".join(f"{int(e)}, " for e in elems).rstrip())
    return "\n".join(lines) + "\n"


def read_lut_dump(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Parse an RTL LUT dump (lines ``<index> : lut_out[i] = <value>;``) into (indices, values)."""
    idx: list[int] = []
    val: list[int] = []
    with open(path, encoding="ascii") as fh:
        for line in fh:
            line = line.strip()
            if not line or ":" not in line:
                continue
            left, right = line.split(":", 1)
            idx.append(int(left))
            val.append(int(right.split("=", 1)[1].strip().rstrip(";")))
    return np.array(idx, dtype=np.int64), np.array(val, dtype=np.int64)


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
    """Write a weight image; the suffix picks the format as in :func:`read_image`."""
    p = Path(path)
    data = _as_image_array(image).tobytes()
    if _is_hex_path(p):
        if len(data) % WEIGHT_BEAT_BYTES:
            raise ImageError(f"image of {len(data)} bytes is not a whole number of 64-bit beats")
        p.write_text(format_hex_beats(data, WEIGHT_BEAT_BYTES), encoding="ascii")
    elif p.suffix.lower() == ".bin":
        p.write_bytes(data)
    else:
        raise ImageError(f"{p}: unknown weight-image format {p.suffix!r}; expected .bin or .txt/.hex")


def parse_hex_activations(text: str, width: int) -> np.ndarray:
    """128-bit activation beats → int16 [T, width]; ``width`` (a multiple of 8) values = width/8 beats a step."""
    if width % ACT_BEAT_VALUES:
        raise ImageError(f"activation width {width} is not a multiple of {ACT_BEAT_VALUES} (one 128-bit beat)")
    data = parse_hex_beats(text, 2 * ACT_BEAT_VALUES)
    values = np.frombuffer(data, dtype="<i2")
    if values.size % width:
        beats = values.size // ACT_BEAT_VALUES
        raise ImageError(
            f"{beats} activation beats is not a multiple of {width // ACT_BEAT_VALUES} beats per step "
            f"(expected width {width})"
        )
    return values.reshape(-1, width).astype(np.int16)


def format_hex_activations(x: np.ndarray) -> str:
    """int16 [T, width] (width a multiple of 8) → 128-bit activation beat text."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] % ACT_BEAT_VALUES:
        raise ImageError(f"activations must be [T, width] with width a multiple of 8, got shape {x.shape}")
    return format_hex_beats(x.astype("<i2").tobytes(), 2 * ACT_BEAT_VALUES, element_bytes=2)


# ---------------------------------------------------------------------------------------------------- bundle


@dataclass
class Bundle:
    """Everything needed to deploy a delta-GRU controller on EdgeDRNN (see the module docstring for units)."""

    image: np.ndarray  # uint8 [N]
    layers: int
    input_size: int
    hidden: int
    theta_x: int
    theta_h: int
    out_weight: np.ndarray  # int8 [O, H], Q1.7
    out_bias: np.ndarray  # int32 [O], units 2^-15
    input_mean: np.ndarray  # float32 [I]
    input_std: np.ndarray  # float32 [I]
    out_scale: np.ndarray | None = None  # float32 [O]; None → ones
    out_offset: np.ndarray | None = None  # float32 [O]; None → zeros
    metadata: str = "{}"

    def __post_init__(self) -> None:
        self.image = np.ascontiguousarray(_as_image_array(self.image).view(np.uint8))
        self.out_weight = np.asarray(self.out_weight)
        self.out_bias = np.asarray(self.out_bias)
        n_out = self.out_weight.shape[0] if self.out_weight.ndim == 2 else 0
        if self.out_scale is None:
            self.out_scale = np.ones(n_out, dtype=np.float32)
        if self.out_offset is None:
            self.out_offset = np.zeros(n_out, dtype=np.float32)
        if isinstance(self.metadata, dict):
            self.metadata = json.dumps(self.metadata, sort_keys=True)
        self.validate()

    @property
    def n_outputs(self) -> int:
        return int(self.out_weight.shape[0])

    @property
    def meta(self) -> dict:
        """The metadata JSON, parsed."""
        return json.loads(self.metadata)

    def validate(self) -> None:
        """Raise :class:`ImageError` naming the expected value for any inconsistency."""
        for name in ("layers", "input_size", "hidden", "theta_x", "theta_h"):
            setattr(self, name, int(getattr(self, name)))
        check_image(self.image, self.layers, self.input_size, self.hidden)
        for name in ("theta_x", "theta_h"):
            check_theta(getattr(self, name), name)
        h, i = self.hidden, self.input_size
        w = self.out_weight
        if w.dtype != np.int8 or w.ndim != 2 or w.shape[1] != h or w.shape[0] < 1:
            raise ImageError(f"out_weight must be int8 [O, {h}] (Q1.7), got {w.dtype} {w.shape}")
        n_out = w.shape[0]
        _check_vec(self, "out_bias", np.int32, n_out)
        _check_vec(self, "input_mean", np.float32, i, cast=True)
        _check_vec(self, "input_std", np.float32, i, cast=True)
        _check_vec(self, "out_scale", np.float32, n_out, cast=True)
        _check_vec(self, "out_offset", np.float32, n_out, cast=True)
        if not np.all(np.isfinite(self.input_mean)) or not np.all(np.isfinite(self.input_std)):
            raise ImageError("input_mean and input_std must be finite")
        if np.any(self.input_std <= 0):
            raise ImageError(f"input_std must be > 0 everywhere, got min {float(self.input_std.min())}")
        try:
            meta = json.loads(self.metadata)
        except (TypeError, ValueError) as exc:
            raise ImageError(f"metadata must be a JSON object string: {exc}") from None
        if not isinstance(meta, dict):
            raise ImageError(f"metadata must be a JSON object, got {type(meta).__name__}")


def _check_vec(b: Bundle, name: str, dtype: type, n: int, cast: bool = False) -> None:
    a = np.asarray(getattr(b, name))
    if a.shape != (n,):
        raise ImageError(f"{name} must have shape ({n},), got {a.shape}")
    if a.dtype != dtype:
        lossless_int = (
            np.issubdtype(dtype, np.integer)
            and np.issubdtype(a.dtype, np.integer)
            and (a.size == 0 or (a.min() >= np.iinfo(dtype).min and a.max() <= np.iinfo(dtype).max))
        )
        if not (cast or lossless_int):
            raise ImageError(f"{name} must be {np.dtype(dtype).name}, got {a.dtype}")
        a = a.astype(dtype)
    setattr(b, name, a)


def check_theta(value: int, name: str = "theta") -> int:
    """Θ must fit the 10-bit signed register and be non-negative: 0..511 Q8.8 LSB."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ImageError(f"{name} must be an integer in 0..{THETA_MAX} (Q8.8 LSB), got {value!r}")
    if not 0 <= int(value) <= THETA_MAX:
        raise ImageError(
            f"{name}={int(value)} does not fit the 10-bit signed threshold register: expected 0..{THETA_MAX}"
        )
    return int(value)


def save_bundle(path: str | os.PathLike, bundle: Bundle, *, overwrite: bool = False) -> Path:
    """Write ``bundle`` as an uncompressed ``.npz`` (suffix added if missing). Refuses to overwrite by default."""
    bundle.validate()
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    np.savez(
        p,
        format=np.array(BUNDLE_FORMAT),
        version=np.array(BUNDLE_VERSION, dtype=np.int64),
        image=bundle.image,
        layers=np.array(bundle.layers, dtype=np.int64),
        input_size=np.array(bundle.input_size, dtype=np.int64),
        hidden=np.array(bundle.hidden, dtype=np.int64),
        theta_x=np.array(bundle.theta_x, dtype=np.int64),
        theta_h=np.array(bundle.theta_h, dtype=np.int64),
        out_weight=bundle.out_weight,
        out_bias=bundle.out_bias,
        out_scale=bundle.out_scale,
        out_offset=bundle.out_offset,
        input_mean=bundle.input_mean,
        input_std=bundle.input_std,
        metadata=np.array(bundle.metadata),
    )
    return p


_REQUIRED = (
    "format",
    "version",
    "image",
    "layers",
    "input_size",
    "hidden",
    "theta_x",
    "theta_h",
    "out_weight",
    "out_bias",
    "input_mean",
    "input_std",
    "metadata",
)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle written by :func:`save_bundle` (no pickles are loaded)."""
    p = Path(path)
    try:
        npz = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{p}: not a readable .npz bundle: {exc}") from None
    with npz:
        missing = [k for k in _REQUIRED if k not in npz.files]
        if missing:
            raise ImageError(f"{p}: not an EdgeDRNN bundle, missing keys {missing}")
        fmt = str(npz["format"])
        if fmt != BUNDLE_FORMAT:
            raise ImageError(f"{p}: format is {fmt!r}; expected {BUNDLE_FORMAT!r}")
        version = int(npz["version"])
        if version != BUNDLE_VERSION:
            raise ImageError(f"{p}: bundle version {version}; this reader understands {BUNDLE_VERSION}")
        try:
            return Bundle(
                image=npz["image"],
                layers=int(npz["layers"]),
                input_size=int(npz["input_size"]),
                hidden=int(npz["hidden"]),
                theta_x=int(npz["theta_x"]),
                theta_h=int(npz["theta_h"]),
                out_weight=npz["out_weight"],
                out_bias=npz["out_bias"],
                input_mean=npz["input_mean"],
                input_std=npz["input_std"],
                out_scale=npz["out_scale"] if "out_scale" in npz.files else None,
                out_offset=npz["out_offset"] if "out_offset" in npz.files else None,
                metadata=str(npz["metadata"]),
            )
        except ImageError as exc:
            raise ImageError(f"{p}: {exc}") from None
