"""Export a trained controller checkpoint for deployment: EdgeDRNN bundle, C header for firmware, ONNX.

From a :mod:`controllers.checkpoint` (a :class:`controllers.deltagru.DeltaGRU` plus its metadata):

``controller.bundle.npz``  :class:`firmware_bridge.bundle.Bundle` — the accelerator's INT8 weight image, the
                           output layer (runs on the ARM core), the input z-score and the output de-normalisation.
``controller.h``           the same numbers as a C99 header for firmware (sizes as ``#define``, the weight image
                           as ``const int8_t``, the output layer, normalisation as ``float`` arrays, thresholds).
``controller.onnx``        the equivalent dense ``nn.GRU`` + ``Linear`` (with the normalisation and torque scaling
                           folded in), for users who deploy elsewhere. ONNX has no delta semantics: the graph is
                           the Θ = 0 network in float, without the accelerator's Q8.8 rounding.

Quantisation (``../shared/facts/edgedrnn.md``)
----------------------------------------------
- Recurrent weights and the summed biases (b_ir + b_hr, b_iz + b_hz, b_in) → Q1.7: ``rint(w·128)`` (round half to
  even) clipped to [−128, 127], i.e. [−1, 127/128]. A QAT-trained model's effective weights are on that grid
  already, so this is exact for it. The hardware has no b_hn: a non-zero b_hn is refused.
- Θx, Θh (normalised float units, as in the torch model) → Q8.8 LSB ``rint(Θ·256)``; the 10-bit signed register
  holds 0..511 (Θ < 2.0): a larger Θ is an :class:`ExportError` unless ``clip_theta=True``.
- Output layer → int8 Q1.7 weights and an int32 bias in the ARM MAC's 2^-15 units (``rint(b·2^15)``, exact for a
  Q1.7 bias). If a (non-QAT) output weight exceeds the Q1.7 range, the layer is divided by a power of two 2^s and
  ``out_scale`` multiplied by it, so the ARM computes the same torque instead of a clipped one (``out_shift`` in
  the metadata).
- ``out_scale`` / ``out_offset`` = the checkpoint's ``target_scale`` / ``target_offset``: torque = y·scale + offset.

This module must not import ``hil`` (imports point down the ladder experiments → hil → firmware_bridge).
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from controllers.checkpoint import CheckpointMeta, load_checkpoint
from controllers.command_limits import CommandLimits, ResidualLimits
from controllers.deltagru import DeltaGRU
from controllers.features import FEATURE_NAMES
from controllers.fixedpoint import (
    ACC_FRAC_BITS,
    ACC_ONE,
    Q17_MAX_VALUE,
    THETA_MAX,
    THETA_MAX_VALUE,
    q17_codes,
    q17_codes_with_clip_count,
    q88_round,
)
from envs.files import atomic_write_bytes, atomic_write_text
from firmware_bridge.bundle import Bundle, save_bundle
from firmware_bridge.weight_image import ImageLayout, build_image

BUNDLE_NAME = "controller.bundle.npz"
HEADER_NAME = "controller.h"
ONNX_NAME = "controller.onnx"
OUTPUT_NAMES = ("knee_torque", "ankle_torque")


class ExportError(ValueError):
    """A checkpoint that cannot be deployed as asked (the message says what does not fit)."""


class OnnxUnavailableError(ExportError):
    """ONNX export needs a package that is not installed."""


# ---------------------------------------------------------------------------------------------------- bundle


def _float64(a: np.ndarray | torch.Tensor) -> np.ndarray:
    # Parameters carry autograd state: detach before numpy sees them (float32 → float64 is exact).
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def theta_lsb(theta: float, name: str, clip: bool = False) -> int:
    """Threshold in normalised float units → Q8.8 LSB for the 10-bit register (0..511), or an :class:`ExportError`
    saying how to fix a threshold that does not fit (``clip`` saturates it instead)."""
    if not (theta >= 0 and math.isfinite(theta)):
        raise ExportError(f"{name}={theta!r} must be a finite number >= 0")
    lsb = q88_round(theta)
    if lsb > THETA_MAX:
        if not clip:
            raise ExportError(
                f"{name}={theta:g} is {lsb} Q8.8 LSB, which does not fit the 10-bit threshold register "
                f"(0..{THETA_MAX} LSB, i.e. {name} ≤ {THETA_MAX_VALUE:.6g}); retrain with a smaller threshold or "
                "export with clip_theta=True"
            )
        lsb = THETA_MAX
    return lsb


def bundle_from_model(model: DeltaGRU, meta: CheckpointMeta, *, clip_theta: bool = False, source: str = "") -> Bundle:
    """The EdgeDRNN deployment bundle of a loaded checkpoint (see the module docstring for the formats)."""
    H = model.hidden_size
    w_ih: list[np.ndarray] = []
    w_hh: list[np.ndarray] = []
    bias: list[np.ndarray] = []
    clipped = 0
    with torch.no_grad():
        for layer in range(model.num_layers):
            p = model.layer_params(layer)
            b_hn = p.m_init[3 * H :]
            if bool((b_hn != 0).any()):
                raise ExportError(
                    f"layer {layer} has a non-zero b_hn (max |b_hn| = {float(b_hn.abs().max()):.3g}); the EdgeDRNN "
                    "accelerator has no b_hn: train with bhn_zero=True"
                )
            for dst, src in ((w_ih, p.w_ih), (w_hh, p.w_hh), (bias, p.m_init[: 3 * H])):
                q, n = q17_codes_with_clip_count(_float64(src))
                dst.append(q)
                clipped += n
        fc_w, fc_b = (_float64(t) for t in model.output_params())
    # Output layer: keep it in range by a power-of-two rescale folded into out_scale (exact in float).
    peak = float(np.abs(fc_w).max()) if fc_w.size else 0.0
    shift = max(0, math.ceil(math.log2(peak / Q17_MAX_VALUE))) if peak > Q17_MAX_VALUE else 0
    out_w = q17_codes(fc_w / 2.0**shift)
    out_b = np.rint(fc_b / 2.0**shift * ACC_ONE)
    if np.any(np.abs(out_b) > 2**31 - 1):
        raise ExportError("output bias does not fit the ARM's int32 accumulator")
    scale = np.asarray(meta.target_scale, dtype=np.float64) * 2.0**shift
    tx = theta_lsb(model.theta_x, "theta_x", clip_theta)
    th = theta_lsb(model.theta_h, "theta_h", clip_theta)
    metadata = {
        "source": source,
        "weights_sha256": meta.weights_sha256,
        "feature_set": meta.feature_set,
        "feature_names": list(FEATURE_NAMES[meta.feature_set]),
        "outputs": list(OUTPUT_NAMES),
        "output_units": "N·m",
        # "pd_residual": the outputs are a correction the host adds to the AMPRO PD's torque (hil.learned)
        "target": meta.target,
        # hard limits the host applies after the outputs (hil.learned), as the checkpoint carries them
        **({"command_limits": meta.command_limits.to_dict()} if meta.command_limits else {}),
        # a pd_residual network's limits on its correction, before the PD's torque is added (hil.learned)
        **({"residual_limits": meta.residual_limits.to_dict()} if meta.residual_limits else {}),
        "control_dt": meta.control_dt,
        "model": model.config(),
        "theta_x_float": model.theta_x,
        "theta_h_float": model.theta_h,
        "clipped_weights": clipped,
        "out_shift": shift,
        "quantisation": "Q1.7 weights/biases by round-half-even with saturation; Q8.8 activations",
    }
    return Bundle(
        image=np.frombuffer(build_image(w_ih, w_hh, bias), dtype=np.uint8).copy(),
        layers=model.num_layers,
        input_size=model.input_size,
        hidden=H,
        theta_x=tx,
        theta_h=th,
        out_weight=out_w,
        out_bias=out_b.astype(np.int32),
        input_mean=np.asarray(meta.input_norm.mean, dtype=np.float32),
        input_std=np.asarray(meta.input_norm.std, dtype=np.float32),
        out_scale=scale.astype(np.float32),
        out_offset=np.asarray(meta.target_offset, dtype=np.float32),
        metadata=json.dumps(metadata, sort_keys=True),
    )


def bundle_from_checkpoint(
    path: str | os.PathLike, *, feature_set: str | None = None, clip_theta: bool = False
) -> Bundle:
    """Load a checkpoint and build its bundle in memory (raises ``CheckpointError`` / :class:`ExportError`)."""
    model, meta = load_checkpoint(path, feature_set=feature_set)
    return bundle_from_model(model, meta, clip_theta=clip_theta, source=str(path))


# -------------------------------------------------------------------------------------------------- C header


def _c_float(v: float) -> str:
    # Scientific notation always has an exponent, so the 'f' suffix gives a valid C float literal.
    return f"{float(v):.9e}f"


def _c_int(v: int) -> str:
    v = int(v)
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def _c_array(ctype: str, name: str, values: np.ndarray, fmt=str, per_line: int = 16, attrs: str = "") -> str:
    vals = [fmt(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] {attrs}= {{\n    {body}\n}};\n"


def _limits_comment(limits: dict[str, Any] | None) -> str:
    if not limits:
        return ""
    text = CommandLimits.from_dict(limits).describe()
    return f" * Command limits (per joint, applied to the torque by the host): {text}.\n"


def _residual_comment(limits: dict[str, Any] | None) -> str:
    if not limits:
        return ""
    text = ResidualLimits.from_dict(limits).describe()
    return f" * Residual limits (the RL expert's, applied to the correction by the host): {text}.\n"


def c_header(bundle: Bundle, guard: str = "LEGLOOP_CONTROLLER_H", prefix: str = "LEGLOOP") -> str:
    """A C99 header with everything the firmware needs to run ``bundle`` (compiles with -Wall -Werror)."""
    p, lp = prefix.upper(), prefix.lower()
    layout = ImageLayout(bundle.layers, bundle.input_size, bundle.hidden)
    meta = bundle.meta
    feats = ", ".join(meta.get("feature_names", []))
    dt = float(meta.get("control_dt", 0.0))
    attr = f"{p}_CONST_ATTR "
    out = [
        f"/* Generated by legloop (firmware_bridge/export.py). Do not edit.\n"
        f" * Delta-GRU controller for the EdgeDRNN accelerator: {bundle.layers} layer(s) x {bundle.hidden} units,\n"
        f" * {bundle.input_size} input(s) ({feats}), {bundle.n_outputs} output(s) ({', '.join(OUTPUT_NAMES)}, N·m).\n"
        f" * Feature set: {meta.get('feature_set', '?')}; weights sha256 {meta.get('weights_sha256', '')[:16]}.\n"
        + (
            " * Target pd_residual: the outputs are a correction; the torque is the AMPRO PD's torque + outputs.\n"
            if meta.get("target") == "pd_residual"
            else ""
        )
        + _limits_comment(meta.get("command_limits"))
        + _residual_comment(meta.get("residual_limits"))
        + " *\n"
        " * Input:  x_q88[i] = round_half_even((feature[i] - INPUT_MEAN[i]) / INPUT_STD[i] * 256), saturated to\n"
        " *         int16, zero-padded to INPUT_PADDED values.\n"
        " * Image:  per layer [b | W_ih | W_hh], 3H rows (r, z, n), column-major, Q1.7; layer l starts at\n"
        " *         LAYER_OFFSETS[l] bytes. Thresholds THETA_X / THETA_H are Q8.8 LSB for the 10-bit registers.\n"
        " * Output: acc[o] = OUT_BIAS[o] + sum_j OUT_WEIGHT[o][j] * h_q88[j]      (int32, units 2^-15)\n"
        " *         torque[o] = acc[o] / 32768.0f * OUT_SCALE[o] + OUT_OFFSET[o]   (N·m)\n"
        " */\n",
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n",
        "#if defined(__GNUC__) || defined(__clang__)\n"
        f"#define {p}_CONST_ATTR __attribute__((unused, aligned(8)))\n"
        "#else\n"
        f"#define {p}_CONST_ATTR\n"
        "#endif\n\n",
        f"#define {p}_NUM_LAYERS {bundle.layers}\n",
        f"#define {p}_INPUT_SIZE {bundle.input_size}\n",
        f"#define {p}_INPUT_PADDED {layout.input_padded}\n",
        f"#define {p}_HIDDEN_SIZE {bundle.hidden}\n",
        f"#define {p}_OUTPUT_SIZE {bundle.n_outputs}\n",
        f"#define {p}_THETA_X {bundle.theta_x}\n",
        f"#define {p}_THETA_H {bundle.theta_h}\n",
        f"#define {p}_WEIGHT_IMAGE_BYTES {layout.nbytes}\n",
        f"#define {p}_CONTROL_DT_S {_c_float(dt)}\n",
        f"#define {p}_ACC_FRAC_BITS {ACC_FRAC_BITS}\n\n",
        _c_array("int8_t", f"{lp}_weight_image", bundle.image.view(np.int8), attrs=attr, per_line=24),
        _c_array(
            "uint32_t", f"{lp}_layer_offsets", np.asarray(layout.layer_offsets), fmt=lambda v: f"{int(v)}u", attrs=attr
        ),
        _c_array("int8_t", f"{lp}_out_weight", bundle.out_weight, attrs=attr, per_line=24),
        _c_array("int32_t", f"{lp}_out_bias", bundle.out_bias, fmt=_c_int, attrs=attr),
        # Bundle.__post_init__ replaced a None out_scale / out_offset by its default.
        _c_array("float", f"{lp}_out_scale", cast(np.ndarray, bundle.out_scale), fmt=_c_float, attrs=attr, per_line=4),
        _c_array(
            "float", f"{lp}_out_offset", cast(np.ndarray, bundle.out_offset), fmt=_c_float, attrs=attr, per_line=4
        ),
        _c_array("float", f"{lp}_input_mean", bundle.input_mean, fmt=_c_float, attrs=attr, per_line=4),
        _c_array("float", f"{lp}_input_std", bundle.input_std, fmt=_c_float, attrs=attr, per_line=4),
        f"\n#endif /* {guard} */\n",
    ]
    return "".join(out)


# ------------------------------------------------------------------------------------------------------ ONNX


class OnnxController(nn.Module):
    """Dense float controller for ONNX: raw features [B, T, I] (+ h0 [L, B, H]) → torques [B, T, O] (+ h_n).

    z-score → ``nn.GRU`` (``DeltaGRU.to_gru()``, the Θ = 0 network) → Linear → · target_scale + target_offset.
    No delta thresholds, no Q8.8 rounding, no torque saturation.
    """

    # The buffers registered in __init__ (nn.Module.__getattr__ would type them Tensor | Module).
    mean: torch.Tensor
    std: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, model: DeltaGRU, meta: CheckpointMeta) -> None:
        super().__init__()
        self.gru, self.fc = model.to_gru()
        f32 = torch.float32
        self.register_buffer("mean", torch.as_tensor(np.asarray(meta.input_norm.mean), dtype=f32))
        self.register_buffer("std", torch.as_tensor(np.asarray(meta.input_norm.std), dtype=f32))
        self.register_buffer("scale", torch.as_tensor(np.asarray(meta.target_scale), dtype=f32))
        self.register_buffer("offset", torch.as_tensor(np.asarray(meta.target_offset), dtype=f32))

    def forward(self, features: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_n = self.gru((features - self.mean) / self.std, h0)
        return self.fc(y) * self.scale + self.offset, h_n


def onnx_available() -> bool:
    """True when torch's ONNX exporter can run here (it needs the ``onnx`` package)."""
    return importlib.util.find_spec("onnx") is not None


def onnx_bytes(model: DeltaGRU, meta: CheckpointMeta, opset: int = 17) -> bytes:
    """Serialise the dense equivalent of ``model`` as ONNX (raises :class:`OnnxUnavailableError` without onnx)."""
    if not onnx_available():
        raise OnnxUnavailableError(
            "ONNX export needs the Python package 'onnx' (torch.onnx.export depends on it), which is not installed; "
            "install it with `pip install onnx`, or use the EdgeDRNN bundle / C header exports"
        )
    net = OnnxController(model, meta).float().eval()
    x = torch.zeros(1, 4, model.input_size)
    h0 = torch.zeros(model.num_layers, 1, model.hidden_size)
    buf = io.BytesIO()
    try:
        # The TorchScript exporter (dynamo=False) needs only `onnx`; the dynamo one also needs `onnxscript`.
        # Its deprecation and batch-size notes are about the exporter, not the model: keep them off the user's screen.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (x, h0),
                buf,  # type: ignore[arg-type]  # torch's annotation omits the file-like objects it accepts
                input_names=["features", "h0"],
                output_names=["torque", "h_n"],
                dynamic_axes={
                    "features": {0: "batch", 1: "time"},
                    "h0": {1: "batch"},
                    "torque": {0: "batch", 1: "time"},
                },
                opset_version=opset,
                dynamo=False,
            )
    except ModuleNotFoundError as exc:
        raise OnnxUnavailableError(
            f"ONNX export needs the Python package {exc.name!r}, which is not installed"
        ) from None
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ export_all


def export_all(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    *,
    onnx: bool | None = None,
    clip_theta: bool = False,
) -> dict[str, Path]:
    """Write ``controller.bundle.npz``, ``controller.h`` and ``controller.onnx`` into ``out_dir``.

    ``onnx``: True requires the ONNX export (raises :class:`OnnxUnavailableError` before writing anything when the
    ``onnx`` package is missing), False skips it, None (default) writes it when possible. Returns ``{"bundle",
    "header"[, "onnx"]}`` → path. Existing files are refused unless ``overwrite`` — checked for all outputs before
    any is written, and everything is built in memory first, so a failure leaves the folder as it was.
    """
    model, meta = load_checkpoint(checkpoint)
    want_onnx = onnx_available() if onnx is None else bool(onnx)
    out = Path(out_dir)
    targets = {"bundle": out / BUNDLE_NAME, "header": out / HEADER_NAME}
    if want_onnx:
        targets["onnx"] = out / ONNX_NAME
    if not overwrite:
        taken = [str(p) for p in targets.values() if p.exists()]
        if taken:
            raise FileExistsError(f"{taken[0]} already exists; pass overwrite=True (CLI: --force) to replace it")
    bundle = bundle_from_model(model, meta, clip_theta=clip_theta, source=str(checkpoint))
    header = c_header(bundle)
    onnx_data = onnx_bytes(model, meta) if want_onnx else None
    out.mkdir(parents=True, exist_ok=True)
    # Each file is written atomically; overwrite=False also refuses a file that appeared since the check above.
    save_bundle(targets["bundle"], bundle, overwrite=overwrite)
    atomic_write_text(targets["header"], header, overwrite=overwrite)
    if onnx_data is not None:
        atomic_write_bytes(targets["onnx"], onnx_data, overwrite=overwrite)
    return targets
