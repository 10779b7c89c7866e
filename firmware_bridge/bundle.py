"""The deployment bundle: everything needed to run a delta-GRU controller on EdgeDRNN, in one ``.npz``.

Written by :func:`save_bundle`, read and validated by :func:`load_bundle`; the format:

=================  ==================  ==============================================================================
key                dtype / shape       meaning
=================  ==================  ==============================================================================
``format``         str (0-d)           ``"legloop-edgedrnn-bundle"``
``version``        int64 (0-d)         ``1``
``image``          uint8 [N]           the weight image of :mod:`firmware_bridge.weight_image` (N checked against
                                       layers/input_size/hidden)
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
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from controllers.fixedpoint import THETA_MAX
from envs.files import atomic_writer
from firmware_bridge.errors import ImageError
from firmware_bridge.weight_image import as_image_array, check_image

BUNDLE_FORMAT = "legloop-edgedrnn-bundle"
BUNDLE_VERSION = 1


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
        self.image = np.ascontiguousarray(as_image_array(self.image).view(np.uint8))
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
    """Write ``bundle`` as an uncompressed ``.npz`` (suffix added if missing), atomically. Refuses to overwrite by
    default."""
    bundle.validate()
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    with atomic_writer(p, overwrite=overwrite) as f:
        np.savez(
            f,
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
            # Never None here: __post_init__ fills the defaults and validate() checks the shapes.
            out_scale=cast(np.ndarray, bundle.out_scale),
            out_offset=cast(np.ndarray, bundle.out_offset),
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
