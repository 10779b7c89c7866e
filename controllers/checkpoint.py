"""Checkpoints of learned controllers: a torch state dict plus JSON metadata beside it.

``NAME.pt``   — ``DeltaGRU.state_dict()``, loaded with ``torch.load(weights_only=True)`` (no pickle code runs);
``NAME.json`` — everything needed to use the weights without the code that trained them:

=================  ===========================================================================================
key                meaning
=================  ===========================================================================================
format             ``"legloop-controller/1"``
model              ``DeltaGRU.config()``: sizes, layers, Θx/Θh (normalised units), bhn_zero, qat
feature_set        ``"ampro"`` or ``"sensors"`` (:mod:`controllers.features`)
target             ``"pd_residual"``: the outputs are a correction added to the AMPRO PD's torque; absent: the
                   outputs are the torques (``"torque"``)
input_norm         z-score of the inputs: ``{"mean": [...], "std": [...]}``
command_limits     hard limits on the command, ``{"torque_nm": [knee, ankle], "rate_nm_s": [knee, ankle]}`` (0: none;
                   absent: none) — a network distilled from a limited RL expert inherits the expert's
                   (:mod:`controllers.command_limits`)
residual_limits    a ``pd_residual`` network distilled with ``residual_limits = true``: its expert's limits on the
                   correction, ``{"bound_nm", "slew_nm_s", "envelope_nm"}`` (:class:`ResidualLimits`; absent: none)
target_scale       torques = network output · scale + offset, per output [knee, ankle], N·m
target_offset
control_dt         control period the controller was trained at, s
weights_sha256     hash of the .pt file: a corrupt or swapped file is refused
versions, created  provenance; ``training`` holds free-form training information (stages, losses, data)
=================  ===========================================================================================

Writing is atomic (:mod:`envs.files`: a temporary file and a rename), so an interrupted save never leaves a
half-written checkpoint, and an existing checkpoint is only replaced when the caller asks for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.command_limits import CommandLimits, ResidualLimits
from controllers.deltagru import DeltaGRU
from controllers.features import Normalizer, check_feature_set, check_target, feature_size
from envs.files import atomic_write_text, atomic_writer

FORMAT = "legloop-controller/1"
DELTA_GRU = "controller.pt"  # `legloop train`'s deliverable: the quantised delta-GRU
FLOAT_GRU = "gru.pt"  # the float GRU it was fine-tuned from (behavioural cloning + DAgger, no thresholds)


def learned_checkpoint(controller: str, path: str | os.PathLike) -> Path:
    """The checkpoint a learned controller runs from ``path``: a file as given; a training run directory stands
    for its deliverables — ``gru`` runs ``DIR/gru.pt`` (the float GRU), the others ``DIR/controller.pt`` (the
    delta-GRU). A run directory from before ``gru.pt`` existed gives ``controller.pt`` for all of them."""
    p = Path(path)
    if not p.is_dir():
        return p
    if controller == "gru" and (p / FLOAT_GRU).exists():
        return p / FLOAT_GRU
    return p / DELTA_GRU


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or for another feature set."""


@dataclass
class CheckpointMeta:
    """The JSON half of a checkpoint."""

    model: dict[str, Any]
    feature_set: str
    input_norm: Normalizer
    target_scale: np.ndarray
    target_offset: np.ndarray
    control_dt: float = 0.005
    training: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    target: str = "torque"  # or "pd_residual": outputs + the PD's torque (controllers.features.TARGETS)
    command_limits: CommandLimits = field(default_factory=CommandLimits)  # applied after the output (none: none)
    residual_limits: ResidualLimits | None = None  # pd_residual: the expert's limits on the correction (None: none)

    def to_dict(self) -> dict[str, Any]:
        # "target", "command_limits" and "residual_limits" only when not the default: checkpoints from before they
        # existed read and hash the same.
        return {
            "format": FORMAT,
            "model": self.model,
            "feature_set": self.feature_set,
            **({"target": self.target} if self.target != "torque" else {}),
            **({"command_limits": self.command_limits.to_dict()} if self.command_limits else {}),
            **({"residual_limits": self.residual_limits.to_dict()} if self.residual_limits else {}),
            "input_norm": self.input_norm.to_dict(),
            "target_scale": [float(v) for v in self.target_scale],
            "target_offset": [float(v) for v in self.target_offset],
            "control_dt": self.control_dt,
            "training": self.training,
            "weights_sha256": self.weights_sha256,
            "versions": self.versions,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> CheckpointMeta:
        if d.get("format") != FORMAT:
            raise CheckpointError(f"{where}: not a legloop controller checkpoint (format {d.get('format')!r})")
        try:
            meta = cls(
                model=dict(d["model"]),
                feature_set=check_feature_set(d["feature_set"]),
                input_norm=Normalizer.from_dict(d["input_norm"]),
                target_scale=np.asarray(d["target_scale"], dtype=np.float32),
                target_offset=np.asarray(d["target_offset"], dtype=np.float32),
                control_dt=float(d.get("control_dt", 0.005)),
                training=dict(d.get("training", {})),
                weights_sha256=str(d.get("weights_sha256", "")),
                versions=dict(d.get("versions", {})),
                created=str(d.get("created", "")),
                target=check_target(str(d.get("target", "torque"))),
                command_limits=CommandLimits.from_dict(d.get("command_limits", {})),
                residual_limits=(
                    ResidualLimits.from_dict(d["residual_limits"]) if d.get("residual_limits") is not None else None
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: malformed metadata: {exc}") from None
        if meta.residual_limits is not None and meta.target != "pd_residual":
            raise CheckpointError(
                f"{where}: residual_limits bound a pd_residual network's correction; the target is {meta.target!r}"
            )
        n_in = feature_size(meta.feature_set)
        if meta.model.get("input_size") != n_in or len(meta.input_norm.mean) != n_in:
            raise CheckpointError(
                f"{where}: feature set {meta.feature_set!r} has {n_in} inputs but the model/normalisation has "
                f"{meta.model.get('input_size')}/{len(meta.input_norm.mean)}"
            )
        return meta


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / "controller.pt"
    if p.suffix != ".pt":
        p = p.with_suffix(".pt")
    return p, p.with_suffix(".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(path: str | os.PathLike, model: DeltaGRU, meta: CheckpointMeta, overwrite: bool = False) -> Path:
    """Write ``path`` (.pt) and its .json; refuses to replace an existing checkpoint unless `overwrite`."""
    pt, js = _paths(path)
    if not overwrite and (pt.exists() or js.exists()):
        raise FileExistsError(f"{pt} already exists; pass overwrite=True (CLI: --force) to replace it")
    pt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # Into a file object, not a path: torch names the archive inside the .pt after the file it is given, which
    # would be the random temporary name, and the bytes would differ from save to save.
    with atomic_writer(pt, overwrite=overwrite) as f:
        torch.save(state, f)
    meta.model = model.config()
    meta.weights_sha256 = _sha256(pt)
    meta.versions = {"torch": torch.__version__, "numpy": np.__version__, **meta.versions}
    meta.created = meta.created or time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_text(js, json.dumps(meta.to_dict(), indent=2, allow_nan=False) + "\n", overwrite=overwrite)
    return pt


def load_checkpoint(path: str | os.PathLike, feature_set: str | None = None) -> tuple[DeltaGRU, CheckpointMeta]:
    """Load a checkpoint; `feature_set`, when given, must match the one it was trained on."""
    pt, js = _paths(path)
    if not pt.exists():
        raise CheckpointError(f"no checkpoint at {pt}")
    if not js.exists():
        raise CheckpointError(f"{pt} has no metadata file {js.name} beside it")
    try:
        raw = json.loads(js.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{js}: corrupt metadata ({exc})") from None
    meta = CheckpointMeta.from_dict(raw, str(js))
    if meta.weights_sha256 and meta.weights_sha256 != _sha256(pt):
        raise CheckpointError(f"{pt}: weights do not match the hash in {js.name} (corrupt or replaced file)")
    if feature_set is not None and meta.feature_set != feature_set:
        raise CheckpointError(
            f"{pt} was trained on feature set {meta.feature_set!r}, not {feature_set!r}; "
            f"train with --features {feature_set} or pick the matching checkpoint"
        )
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
        model = DeltaGRU(**meta.model)
        model.load_state_dict(state)
    except Exception as exc:  # a truncated zip, wrong tensors, wrong sizes: all "unusable checkpoint"
        raise CheckpointError(f"{pt}: cannot load weights ({type(exc).__name__}: {exc})") from None
    model.eval()
    return model, meta
