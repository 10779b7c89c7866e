"""One training stage: the loop over epochs of window batches, its loss, validation and TensorBoard scalars.

The stage half of :mod:`experiments.train`: :class:`StageSpec` says what a stage does (epochs, learning rate,
thresholds, QAT, sparsity penalty, DAgger round), :func:`train_stage` trains a model in place for one stage and
returns its record, :func:`validate` measures open-loop fidelity (loss, torque R², sparsity, MACs) on whole
episodes, :func:`clamp_to_q17` keeps weights inside the accelerator's Q1.7 range.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.deltagru import DeltaGRU
from controllers.fixedpoint import Q17_MAX_VALUE, Q17_MIN_VALUE
from experiments.train_config import TrainConfig
from experiments.train_data import JOINTS, Prepared, Scaling, WindowSampler


# ------------------------------------------------------------------------------------------------ evaluation
def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column."""
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ss_res / np.maximum(ss_tot, 1e-12)


@torch.no_grad()
def validate(model: DeltaGRU, data: Prepared, scaling: Scaling, loss_kind: str) -> dict[str, Any]:
    """Open-loop fidelity on whole episodes from a fresh state, as the controller runs: loss, R² per joint (N·m),
    temporal sparsity and MACs per step. Episodes of equal length run as one batch (no padding to skew the
    sparsity counters)."""
    model.eval()
    by_len: dict[int, list[int]] = {}
    for i, a in enumerate(data.x):
        by_len.setdefault(len(a), []).append(i)
    preds: dict[int, np.ndarray] = {}
    fired = total = macs = 0.0
    loss_sum = 0.0
    n_steps = 0
    for T, idx in sorted(by_len.items()):
        x = torch.from_numpy(np.stack([data.x[i] for i in idx]))
        y = torch.from_numpy(np.stack([data.y[i] for i in idx]))
        out, stats = model(x, return_stats=True)
        loss_sum += float(_loss(out, y, torch.ones(y.shape[:2]), loss_kind)) * len(idx) * T
        w = len(idx) * T
        fired += sum(stats.fired_cols) * w
        total += sum(stats.total_cols) * w
        macs += stats.macs_per_step * w
        n_steps += w
        for row, i in enumerate(idx):
            preds[i] = out[row].numpy() * scaling.target_scale + scaling.target_offset
    model.train()
    y_true = np.concatenate(data.y_raw)
    y_pred = np.concatenate([preds[i] for i in range(len(data.x))])
    r2 = r2_score(y_true.astype(np.float64), y_pred.astype(np.float64))
    return {
        "loss": loss_sum / n_steps,
        "r2": {j: round(float(v), 5) for j, v in zip(JOINTS, r2, strict=True)},
        "sparsity": round(1.0 - fired / total, 5),
        "macs_per_step": round(macs / n_steps, 1),
        "dense_macs_per_step": model.dense_macs_per_step,
    }


def _loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    err = (out - y).abs() if kind == "l1" else (out - y) ** 2
    return (err.mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def clamp_to_q17(model: DeltaGRU) -> None:
    """Keep every parameter inside Q1.7's range, so turning QAT on later does not saturate a trained network."""
    with torch.no_grad():
        for p in model.parameters():
            p.clamp_(Q17_MIN_VALUE, Q17_MAX_VALUE)


# ------------------------------------------------------------------------------------------------ one stage
class _NullWriter:
    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def summary_writer(log_dir: Path) -> Any:
    """A TensorBoard writer into ``log_dir``, or one that writes nothing when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra ("legloop[train]")
        warnings.warn("tensorboard is not installed: no TensorBoard scalars are written", stacklevel=2)
        return _NullWriter()
    return SummaryWriter(log_dir=str(log_dir))


@dataclass
class StageSpec:
    """What one training stage does."""

    name: str
    index: int  # position in the pipeline (seeds the stage's generators)
    epochs: int
    lr: float
    theta_x: float = 0.0
    theta_h: float = 0.0
    qat: bool = False
    l1_weight: float = 0.0
    dagger_round: int = 0  # > 0: collect learner-driven episodes first (round k: β = beta_decay^k)


def train_stage(
    model: DeltaGRU,
    spec: StageSpec,
    train: Prepared,
    val: Prepared,
    scaling: Scaling,
    cfg: TrainConfig,
    writer: Any = None,
    epoch0: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `model` in place for one stage; returns the stage record (losses, R², sparsity, time)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    o = cfg.optim
    writer = writer or _NullWriter()
    # Each stage seeds its own generators from (seed, stage index): resuming at any stage reproduces the run.
    torch.manual_seed(cfg.seed * 1000 + spec.index)
    rng = np.random.default_rng([cfg.seed, spec.index])
    model.theta_x, model.theta_h, model.qat = spec.theta_x, spec.theta_h, spec.qat
    if o.clamp_weights:
        clamp_to_q17(model)
    sampler = WindowSampler(train, o.window, o.warmup, o.stride, o.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    need_stats = spec.l1_weight > 0.0
    history = []
    bar = tqdm(
        total=spec.epochs * len(sampler), desc=f"train {spec.name}", unit="batch", disable=not progress, file=sys.stderr
    )
    model.train()
    for epoch in range(spec.epochs):
        loss_sum, n_batches = 0.0, 0
        for xb, yb, mb in sampler.epoch(rng):
            if need_stats:
                out, stats = model(xb, return_stats=True)
                fit = _loss(out, yb, mb, o.loss)
                loss = fit + spec.l1_weight * stats.delta_l1
            else:
                out = model(xb)
                loss = fit = _loss(out, yb, mb, o.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            opt.step()
            if o.clamp_weights:
                clamp_to_q17(model)
            loss_sum += float(fit.detach())
            n_batches += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / n_batches:.4f}")
        v = validate(model, val, scaling, o.loss) if val.x else None
        step = epoch0 + epoch + 1
        rec = {"epoch": epoch + 1, "train_loss": round(loss_sum / max(1, n_batches), 6)}
        writer.add_scalar("loss/train", rec["train_loss"], step)
        if v is not None:
            rec |= {
                "val_loss": round(v["loss"], 6),
                "r2": v["r2"],
                "sparsity": v["sparsity"],
                "macs_per_step": v["macs_per_step"],
            }
            writer.add_scalar("loss/val", v["loss"], step)
            for j in JOINTS:
                writer.add_scalar(f"r2/{j}", v["r2"][j], step)
            writer.add_scalar("sparsity/val", v["sparsity"], step)
            writer.add_scalar("macs_per_step/val", v["macs_per_step"], step)
            bar.set_postfix(epoch=epoch + 1, loss=f"{rec['train_loss']:.4f}", val=f"{v['loss']:.4f}")
        history.append(rec)
    bar.close()
    writer.flush()
    model.eval()
    last = history[-1]
    return {
        "name": spec.name,
        "epochs": spec.epochs,
        "lr": spec.lr,
        "theta_x": spec.theta_x,
        "theta_h": spec.theta_h,
        "qat": spec.qat,
        "l1_weight": spec.l1_weight,
        "train_episodes": len(train.x),
        "train_steps": train.steps,
        "batches_per_epoch": len(sampler),
        "train_loss": last["train_loss"],
        "val_loss": last.get("val_loss"),
        "val_r2": last.get("r2"),
        "val_sparsity": last.get("sparsity"),
        "val_macs_per_step": last.get("macs_per_step"),
        "dense_macs_per_step": model.dense_macs_per_step,
        "history": history,
        "seconds": round(time.perf_counter() - t0, 2),
    }
