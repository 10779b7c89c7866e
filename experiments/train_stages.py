"""One training stage: the loop over epochs (or a budget of steps) of window batches, its loss and validation.

The stage half of :mod:`experiments.train`: :class:`StageSpec` says what a stage does (epochs or a budget of
gradient steps, learning rate, thresholds, QAT, sparsity penalty, DAgger round), :func:`train_stage` trains a model
in place for one stage of epochs and returns its record, :func:`train_stage_budget` does the same for a stage of
training from logs (a budget of gradient steps, early stopping on the validation tail, the best weights kept),
:func:`validate` measures open-loop fidelity (loss, torque R², sparsity, MACs) on whole episodes,
:func:`clamp_to_q17` keeps weights inside the accelerator's Q1.7 range.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.deltagru import DeltaGRU, PreDeltas
from controllers.fixedpoint import Q17_MAX_VALUE, Q17_MIN_VALUE
from controllers.latency_surrogate import CycleGeometry, latency_hinge, step_latency
from experiments.progress import progress_bar
from experiments.train_config import TrainConfig
from experiments.train_data import AUX_NAMES, JOINTS, Prepared, Scaling, WindowSampler


# ------------------------------------------------------------------------------------------------ evaluation
def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column."""
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ss_res / np.maximum(ss_tot, 1e-12)


@dataclass(frozen=True)
class LatencyPricer:
    """Prices every step with the latency surrogate (:mod:`controllers.latency_surrogate`) at a stage's Θx, Θh."""

    geometry: CycleGeometry
    theta_x: float
    theta_h: float
    tau: float
    budget_s: float
    tau_grad: float = 0.0

    @classmethod
    def of(cls, model: DeltaGRU, spec: StageSpec) -> LatencyPricer | None:
        """The stage's pricer, or None when its latency weight is 0 (nothing is computed then)."""
        if not spec.latency_weight > 0.0:
            return None
        geo = CycleGeometry.of(model.num_layers, model.input_size, model.hidden_size, spec.latency_clock_hz)
        return cls(geo, spec.theta_x, spec.theta_h, spec.latency_tau, spec.latency_budget_s, spec.latency_tau_grad)

    def latency(self, deltas: PreDeltas) -> torch.Tensor:
        """Surrogate latency (s) of every step [B, T]."""
        return step_latency(
            deltas.x, deltas.h, self.theta_x, self.theta_h, self.geometry, tau=self.tau, tau_grad=self.tau_grad
        )

    def hinge(self, deltas: PreDeltas, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hinge over the steps the loss counts (mask > 0), and those steps' latencies (detached)."""
        lat = self.latency(deltas)[mask > 0]
        return latency_hinge(lat, self.budget_s), lat.detach()


@torch.no_grad()
def validate(
    model: DeltaGRU,
    data: Prepared,
    scaling: Scaling,
    loss_kind: str,
    aux_head: torch.nn.Module | None = None,
    pricer: LatencyPricer | None = None,
) -> dict[str, Any]:
    """Open-loop fidelity on whole episodes from a fresh state, as the controller runs: loss, R² per joint (N·m),
    temporal sparsity and MACs per step. Episodes of equal length run as one batch (no padding to skew the
    sparsity counters). With an auxiliary head (and targets in `data`) also how well it reads the gait phase from
    the hidden state: ``aux`` = the fraction of steps whose stance/swing it gets right and the RMSE of τ (None
    without a head). With a latency `pricer` also the surrogate latency's mean (µs) and the fraction of steps it
    prices over budget (``latency``; None without)."""
    model.eval()
    with_aux = aux_head is not None and data.aux is not None
    aux_sq = aux_right = 0.0
    by_len: dict[int, list[int]] = {}
    for i, a in enumerate(data.x):
        by_len.setdefault(len(a), []).append(i)
    preds: dict[int, np.ndarray] = {}
    fired = total = macs = 0.0
    zero_dx = [0.0] * model.num_layers  # per layer: Σ fraction of zero Δx entries × steps (then / steps)
    zero_dh = [0.0] * model.num_layers
    loss_sum = l1_sum = 0.0
    lat_sum, lat_hinge, lat_over = 0.0, 0.0, 0
    n_steps = 0
    for T, idx in sorted(by_len.items()):
        x = torch.from_numpy(np.stack([data.x[i] for i in idx]))
        y = torch.from_numpy(np.stack([data.y[i] for i in idx]))
        res = model(x, return_stats=True, return_hidden=with_aux, return_deltas=pricer is not None)
        out, stats = res[0], res[1]
        if pricer is not None:
            lat = pricer.latency(res[-1])
            lat_sum += float(lat.sum())
            lat_over += int((lat > pricer.budget_s).sum())
            lat_hinge += float(torch.relu(lat - pricer.budget_s).sum()) / pricer.budget_s
        if with_aux:
            assert aux_head is not None and data.aux is not None
            a_pred = aux_head(res[2])
            a_true = torch.from_numpy(np.stack([data.aux[i] for i in idx]))
            aux_sq += float(((a_pred - a_true) ** 2).sum(dim=(0, 1))[1])
            aux_right += float(((a_pred[..., 0] > 0) == (a_true[..., 0] > 0)).sum())
        loss_sum += float(_loss(out, y, torch.ones(y.shape[:2]), loss_kind)) * len(idx) * T
        w = len(idx) * T
        l1_sum += float(stats.delta_l1) * w
        fired += sum(stats.fired_cols) * w
        total += sum(stats.total_cols) * w
        for layer, (sx, sh) in enumerate(zip(stats.dx_sparsity, stats.dh_sparsity, strict=True)):
            zero_dx[layer] += sx * w
            zero_dh[layer] += sh * w
        macs += stats.macs_per_step * w
        n_steps += w
        for row, i in enumerate(idx):
            preds[i] = out[row].numpy() * scaling.target_scale + scaling.target_offset
    model.train()
    y_true = np.concatenate(data.y_raw)
    y_pred = np.concatenate([preds[i] for i in range(len(data.x))])
    r2 = r2_score(y_true.astype(np.float64), y_pred.astype(np.float64))
    aux = (
        {"stance_accuracy": round(aux_right / n_steps, 5), "tau_rmse": round(math.sqrt(aux_sq / n_steps) / 2.0, 5)}
        if with_aux
        else None
    )
    return {
        "aux": aux,
        "loss": loss_sum / n_steps,
        "delta_l1": l1_sum / n_steps,  # mean |h_t − h_{t−1}|: the sparsity penalty's term
        "r2": {j: round(float(v), 5) for j, v in zip(JOINTS, r2, strict=True)},
        "sparsity": round(1.0 - fired / total, 5),
        # Where the fetched columns come from: per layer, the fraction of zero Δx (layer 1: the features; above:
        # the layer below's h, thresholded by Θx) and zero Δh entries.
        "sparsity_layers": {
            "dx": [round(z / n_steps, 4) for z in zero_dx],
            "dh": [round(z / n_steps, 4) for z in zero_dh],
        },
        "macs_per_step": round(macs / n_steps, 1),
        "dense_macs_per_step": model.dense_macs_per_step,
        "latency": (
            {
                "mean_us": round(lat_sum / n_steps * 1e6, 3),
                "over_budget": round(lat_over / n_steps, 5),
                "hinge": lat_hinge / n_steps,  # latency_hinge over every step
            }
            if pricer is not None
            else None
        ),
    }


@dataclass
class LatencyTally:
    """The surrogate latency of the training steps since the last record: sum (s), steps over budget, steps."""

    total: float = 0.0
    over: int = 0
    n: int = 0

    def add(self, lat: torch.Tensor, budget_s: float) -> None:
        self.total += float(lat.sum())
        self.over += int((lat > budget_s).sum())
        self.n += lat.numel()

    def log(self, rec: dict[str, Any], writer: Any, step: int, v: dict[str, Any] | None) -> None:
        """Into `rec` and TensorBoard (with the validation's latency when `v` has one), then start over."""
        rec["train_latency_mean_us"] = round(self.total / max(1, self.n) * 1e6, 3)
        rec["train_over_budget"] = round(self.over / max(1, self.n), 5)
        writer.add_scalar("latency/train_mean_us", rec["train_latency_mean_us"], step)
        writer.add_scalar("latency/train_over_budget", rec["train_over_budget"], step)
        if v is not None and v["latency"] is not None:
            rec["val_latency"] = v["latency"]
            writer.add_scalar("latency/val_mean_us", v["latency"]["mean_us"], step)
            writer.add_scalar("latency/val_over_budget", v["latency"]["over_budget"], step)
        self.total, self.over, self.n = 0.0, 0, 0


def _delta_loss(
    model: DeltaGRU,
    xb: torch.Tensor,
    yb: torch.Tensor,
    mb: torch.Tensor,
    loss_kind: str,
    l1_weight: float,
    need_stats: bool,
    with_deltas: bool,
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """(the model's result, the objective, its fit term): the torque fit, plus ``l1_weight`` × mean |Δh| when
    ``need_stats``. With ``with_deltas`` the result is a tuple whose last item is the pre-threshold deltas."""
    if need_stats:
        res = model(xb, return_stats=True, return_deltas=with_deltas)
        fit = _loss(res[0], yb, mb, loss_kind)
        return res, fit + l1_weight * res[1].delta_l1, fit
    res = model(xb, return_deltas=with_deltas)
    fit = _loss(res[0] if with_deltas else res, yb, mb, loss_kind)
    return res, fit, fit


def _latency_term(
    pricer: LatencyPricer, deltas: PreDeltas, mask: torch.Tensor, weight: float, tally: LatencyTally
) -> torch.Tensor:
    """``weight`` × the latency hinge of a batch; its steps' latencies go into `tally`."""
    hinge, lat = pricer.hinge(deltas, mask)
    tally.add(lat, pricer.budget_s)
    return weight * hinge


def _latency_record(spec: StageSpec, last: dict[str, Any]) -> dict[str, Any]:
    """The stage record's latency keys (none when the stage had no latency term: records as before)."""
    if not spec.latency_weight > 0.0:
        return {}
    return {
        "latency_weight": spec.latency_weight,
        "latency_budget_us": round(spec.latency_budget_s * 1e6, 6),
        "latency_clock_mhz": round(spec.latency_clock_hz / 1e6, 6),
        "latency_tau": spec.latency_tau,
        "latency_tau_grad": spec.latency_tau_grad,
        "train_latency_mean_us": last.get("train_latency_mean_us"),
        "train_over_budget": last.get("train_over_budget"),
        "val_latency": last.get("val_latency"),
    }


def _loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    err = (out - y).abs() if kind == "l1" else (out - y) ** 2
    return (err.mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def _aux_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked MSE of the auxiliary gait-phase output (targets :data:`AUX_NAMES`, each about ±1)."""
    return (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def make_aux_head(model: DeltaGRU) -> torch.nn.Linear:
    """The training-only auxiliary output: a linear layer on the top layer's hidden state → :data:`AUX_NAMES`.
    Not part of the checkpoint's network (its export keeps the torque outputs only)."""
    return torch.nn.Linear(model.hidden_size, len(AUX_NAMES))


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
    steps: int = 0  # > 0: a budget of gradient steps (training from logs, :func:`train_stage_budget`), not epochs
    aux_weight: float = 0.0  # > 0: weight of the auxiliary gait-phase loss (needs an aux head, `[aux]`)
    # > 0: weight of the latency surrogate's hinge over the budget (delta stages, `delta.latency_*`)
    latency_weight: float = 0.0
    latency_budget_s: float = 21e-6
    latency_clock_hz: float = 125e6
    latency_tau: float = 1 / 256
    latency_tau_grad: float = 0.0


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
    aux_head: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Train `model` in place for one stage; returns the stage record (losses, R², sparsity, time).

    With `aux_head` and ``spec.aux_weight`` > 0 the head (trained alongside, not part of `model`) predicts the gait
    phase from the top hidden state and ``aux_weight`` × its loss joins the objective."""
    t0 = time.perf_counter()
    o = cfg.optim
    writer = writer or _NullWriter()
    # Each stage seeds its own generators from (seed, stage index): resuming at any stage reproduces the run.
    torch.manual_seed(cfg.seed * 1000 + spec.index)
    rng = np.random.default_rng([cfg.seed, spec.index])
    model.theta_x, model.theta_h, model.qat = spec.theta_x, spec.theta_h, spec.qat
    if o.clamp_weights:
        clamp_to_q17(model)
    use_aux = aux_head is not None and spec.aux_weight > 0.0
    sampler = WindowSampler(train, o.window, o.warmup, o.stride, o.batch_size, aux=use_aux)
    params = list(model.parameters())
    if use_aux:
        assert aux_head is not None
        params += list(aux_head.parameters())
        aux_head.train()
    opt = torch.optim.Adam(params, lr=spec.lr)
    need_stats = spec.l1_weight > 0.0
    pricer = LatencyPricer.of(model, spec)
    n_out = model.output_size
    history = []
    bar = progress_bar(spec.epochs * len(sampler), f"train {spec.name}", "batch", enabled=progress)
    model.train()
    for epoch in range(spec.epochs):
        loss_sum, aux_sum, n_batches = 0.0, 0.0, 0
        tally = LatencyTally()
        for xb, yb, mb in sampler.epoch(rng):
            if use_aux:
                assert aux_head is not None
                res = model(xb, return_stats=need_stats, return_hidden=True, return_deltas=pricer is not None)
                out, hid = res[0], res[1 + need_stats]
                fit = _loss(out, yb[..., :n_out], mb, o.loss)
                aux_loss = _aux_loss(aux_head(hid), yb[..., n_out:], mb)
                loss = fit + spec.aux_weight * aux_loss
                if need_stats:
                    loss = loss + spec.l1_weight * res[1].delta_l1
                aux_sum += float(aux_loss.detach())
            else:
                res, loss, fit = _delta_loss(model, xb, yb, mb, o.loss, spec.l1_weight, need_stats, pricer is not None)
            if pricer is not None:
                loss = loss + _latency_term(pricer, res[-1], mb, spec.latency_weight, tally)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
            opt.step()
            if o.clamp_weights:
                clamp_to_q17(model)
            loss_sum += float(fit.detach())
            n_batches += 1
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / n_batches:.4f}", refresh=False)  # update redraws
            bar.update(1)
        v = validate(model, val, scaling, o.loss, aux_head if use_aux else None, pricer) if val.x else None
        step = epoch0 + epoch + 1
        rec: dict[str, Any] = {"epoch": epoch + 1, "train_loss": round(loss_sum / max(1, n_batches), 6)}
        writer.add_scalar("loss/train", rec["train_loss"], step)
        if pricer is not None:
            tally.log(rec, writer, step, v)
        if use_aux:
            rec["train_aux_loss"] = round(aux_sum / max(1, n_batches), 6)
            writer.add_scalar("loss/train_aux", rec["train_aux_loss"], step)
        if v is not None:
            rec |= {
                "val_loss": round(v["loss"], 6),
                "r2": v["r2"],
                "sparsity": v["sparsity"],
                "sparsity_layers": v["sparsity_layers"],
                "macs_per_step": v["macs_per_step"],
            }
            writer.add_scalar("loss/val", v["loss"], step)
            for j in JOINTS:
                writer.add_scalar(f"r2/{j}", v["r2"][j], step)
            writer.add_scalar("sparsity/val", v["sparsity"], step)
            writer.add_scalar("macs_per_step/val", v["macs_per_step"], step)
            if v["aux"] is not None:
                rec["val_aux"] = v["aux"]
                writer.add_scalar("aux/val_stance_accuracy", v["aux"]["stance_accuracy"], step)
                writer.add_scalar("aux/val_tau_rmse", v["aux"]["tau_rmse"], step)
            bar.set_postfix(epoch=epoch + 1, loss=f"{rec['train_loss']:.4f}", val=f"{v['loss']:.4f}")
        history.append(rec)
    bar.close()
    writer.flush()
    model.eval()
    last = history[-1]
    aux_rec = {"aux_weight": spec.aux_weight, "val_aux": last.get("val_aux")} if use_aux else {}
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
        "val_sparsity_layers": last.get("sparsity_layers"),
        "val_macs_per_step": last.get("macs_per_step"),
        "dense_macs_per_step": model.dense_macs_per_step,
        "history": history,
        "seconds": round(time.perf_counter() - t0, 2),
        **aux_rec,
        **_latency_record(spec, last),
    }


# ------------------------------------------------------------------------------------------------ one stage, budgeted
STOP_BUDGET, STOP_EARLY, STOP_PLATEAU = "budget", "early_stop", "plateau"


def cosine_lr(lr: float, final: float, step: int, budget: int) -> float:
    """Learning rate of gradient step `step` (1-based) of `budget`: a cosine from `lr` down to ``lr × final``."""
    frac = (step - 1) / max(1, budget - 1)
    return lr * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * frac)))


def train_stage_budget(
    model: DeltaGRU,
    spec: StageSpec,
    train: Prepared,
    val: Prepared,
    scaling: Scaling,
    cfg: TrainConfig,
    writer: Any = None,
    step0: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `model` in place for one stage of training from logs; returns the stage record.

    Up to ``spec.steps`` gradient steps of ``optim.batch_size`` random windows (:meth:`WindowSampler.stream`), the
    learning rate on a cosine schedule (``logs.lr_final``). Every ``logs.eval_every`` steps (and after the last)
    the validation tail is run whole, from a fresh state, and scored by the stage's own objective (fit loss plus
    ``l1_weight`` × mean |Δh|); the best weights seen are restored at the end. Stops early after ``logs.patience``
    validations in a row that did not beat the best by ``logs.min_improvement`` (relative). The record's
    ``stopped`` says why it ended: ``budget`` (all steps ran), ``early_stop`` (the validation loss had risen above
    its best: over-fitting) or ``plateau`` (it had stopped improving); ``steps`` how many ran, ``best_step`` which
    step's weights were kept. Without a validation set it runs the whole budget and keeps the last weights.
    """
    t0 = time.perf_counter()
    o, lc = cfg.optim, cfg.logs
    budget = spec.steps
    if budget < 1:
        raise ValueError(f"stage {spec.name}: a budgeted stage needs steps >= 1, got {budget}")
    writer = writer or _NullWriter()
    torch.manual_seed(cfg.seed * 1000 + spec.index)
    rng = np.random.default_rng([cfg.seed, spec.index])
    model.theta_x, model.theta_h, model.qat = spec.theta_x, spec.theta_h, spec.qat
    if o.clamp_weights:
        clamp_to_q17(model)
    sampler = WindowSampler(train, o.window, o.warmup, o.stride, o.batch_size)
    batches = sampler.stream(rng)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    need_stats = spec.l1_weight > 0.0
    pricer = LatencyPricer.of(model, spec)
    tally = LatencyTally()
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None  # the best validation record
    best_state: dict[str, torch.Tensor] | None = None
    ref = math.inf  # the validation objective the patience counts from (the last real improvement)
    since = 0
    stopped = STOP_BUDGET
    bar = progress_bar(budget, f"train {spec.name}", "step", enabled=progress)
    model.train()
    loss_sum, n_batches, step = 0.0, 0, 0
    for step in range(1, budget + 1):
        lr = cosine_lr(spec.lr, lc.lr_final, step, budget)
        for g in opt.param_groups:
            g["lr"] = lr
        xb, yb, mb = next(batches)
        res, loss, fit = _delta_loss(model, xb, yb, mb, o.loss, spec.l1_weight, need_stats, pricer is not None)
        if pricer is not None:
            loss = loss + _latency_term(pricer, res[-1], mb, spec.latency_weight, tally)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
        if o.clamp_weights:
            clamp_to_q17(model)
        loss_sum += float(fit.detach())
        n_batches += 1
        bar.update(1)
        if step % lc.eval_every and step != budget:
            continue
        rec: dict[str, Any] = {"step": step, "lr": lr, "train_loss": round(loss_sum / n_batches, 6)}
        loss_sum, n_batches = 0.0, 0
        writer.add_scalar("loss/train", rec["train_loss"], step0 + step)
        if val.x:
            v = validate(model, val, scaling, o.loss, pricer=pricer)
            objective = v["loss"] + spec.l1_weight * v["delta_l1"]
            if pricer is not None:
                objective += spec.latency_weight * v["latency"]["hinge"]
                tally.log(rec, writer, step0 + step, v)
            rec |= {
                "val_loss": round(v["loss"], 6),
                "val_objective": round(objective, 6),
                "r2": v["r2"],
                "sparsity": v["sparsity"],
                "sparsity_layers": v["sparsity_layers"],
                "macs_per_step": v["macs_per_step"],
            }
            writer.add_scalar("loss/val", v["loss"], step0 + step)
            for j in JOINTS:
                writer.add_scalar(f"r2/{j}", v["r2"][j], step0 + step)
            writer.add_scalar("sparsity/val", v["sparsity"], step0 + step)
            if best is None or objective < best["val_objective"]:
                best, best_state = rec, copy.deepcopy(model.state_dict())
            if objective < ref * (1.0 - lc.min_improvement):
                ref, since = objective, 0
            else:
                since += 1
            bar.set_postfix(loss=f"{rec['train_loss']:.4f}", val=f"{v['loss']:.4f}", best=best["step"])
            history.append(rec)
            if lc.patience and since >= lc.patience and step < budget:
                assert best is not None
                rising = objective > best["val_objective"] * (1.0 + lc.min_improvement)
                stopped = STOP_EARLY if rising else STOP_PLATEAU
                break
        else:
            history.append(rec)
    bar.close()
    writer.flush()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    kept = best if best is not None else history[-1]
    windows = max(1, math.ceil(train.steps / o.stride))
    return {
        "name": spec.name,
        "mode": "steps",
        "budget_steps": budget,
        "steps": step,
        "stopped": stopped,
        "best_step": kept["step"],
        "samples": step * o.batch_size,  # windows seen
        "epochs_equivalent": round(step * o.batch_size / windows, 2),  # passes over the training windows
        "lr": spec.lr,
        "lr_final": spec.lr * lc.lr_final,
        "theta_x": spec.theta_x,
        "theta_h": spec.theta_h,
        "qat": spec.qat,
        "l1_weight": spec.l1_weight,
        "train_episodes": len(train.x),
        "train_steps": train.steps,
        "val_steps": val.steps,
        "train_loss": history[-1]["train_loss"],
        "val_loss": kept.get("val_loss"),
        "val_r2": kept.get("r2"),
        "val_sparsity": kept.get("sparsity"),
        "val_sparsity_layers": kept.get("sparsity_layers"),
        "val_macs_per_step": kept.get("macs_per_step"),
        "dense_macs_per_step": model.dense_macs_per_step,
        "history": history,
        "seconds": round(time.perf_counter() - t0, 2),
        **_latency_record(spec, kept),
    }
