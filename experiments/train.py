"""Imitation training of the prosthesis controller: behavioural cloning → DAgger → delta fine-tune with QAT → export.

Stages, each leaving ``DIR/stages/<stage>.pt`` + ``.json`` (a :mod:`controllers.checkpoint` checkpoint):

``bc``        behavioural cloning of the PD baseline on random windows of PD rollouts, plain GRU math (Θ = 0,
              no QAT). Truncated BPTT inside a window: every window starts from a fresh state and its first
              ``warmup`` steps are not counted in the loss (the state is still warming up there).
``daggerK``   DAgger round K: the previous stage's network drives the simulation (mixed with the PD by
              β_K = beta_decay^K), the PD in shadow labels every step, the new episodes join the training set and
              the network is fine-tuned on all of it — so it learns to correct its own drift.
``delta``     delta fine-tune: Θx, Θh on, an L1 penalty on the hidden-state change h_t − h_{t−1} (sparsity),
              quantisation-aware training on.
``delta_daggerJ``  DAgger round with the delta network itself driving (β continues to decay), then a delta
              fine-tune on the grown set: the deployed network's own closed loop differs from the dense GRU's.

The final, deployable network is ``DIR/controller.pt`` (the last delta stage), then exported (EdgeDRNN bundle, C
header, ONNX) into ``DIR/export/``. With logs given as sources (run dirs or AMPRO CSV logs) the simulator is not
used: no collection, no DAgger, only ``bc`` and ``delta``.

Reproducible: data seeds, weight init and window sampling derive from the config's seed, and each stage seeds its
own generators, so a resumed run (finished stages are loaded, not recomputed) ends with the same weights as an
uninterrupted one. Targets are the PD torques normalised by their mean/std (stored as target offset/scale);
inputs are z-scored with the training set's statistics (stored as the input normalisation). Both are fitted once,
on the first training set, and kept for all stages: the weights depend on them.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, save_checkpoint
from controllers.deltagru import DeltaGRU
from controllers.features import FEATURE_COLUMNS, TARGET_COLUMNS, Normalizer, feature_size, features_from_columns
from controllers.fixedpoint import Q17_MAX_VALUE, Q17_MIN_VALUE
from envs.walker_env import Randomization
from experiments.rundir import DELTA_GRU, FLOAT_GRU, provenance, write_json
from experiments.train_config import TrainConfig

JOINTS = ("knee", "ankle")  # order of TARGET_COLUMNS and of the network outputs
FINAL = DELTA_GRU
DEFAULT_DT = 0.005


class TrainError(Exception):
    """A user-facing training error (bad data, conflicting run directory, missing module); one clear line."""


# ------------------------------------------------------------------------------------------------ data access
@dataclass
class DataBackend:
    """Where episodes come from: ``experiments.dataset`` / ``experiments.collect`` by default (tests may swap it)."""

    load_dataset: Callable[..., list[Any]]
    split_episodes: Callable[..., tuple[list[Any], list[Any]]]
    sources_imply_ampro: Callable[[Sequence[str]], bool]
    collect: Callable[..., list[Path]] | None = None
    driver_spec: Callable[[str], Any] | None = None


def default_backend() -> DataBackend:
    """The project's data modules, imported lazily (they pull in the simulator and worker pools)."""
    try:
        from experiments import dataset
    except ModuleNotFoundError as exc:
        if exc.name != "experiments.dataset":
            raise
        raise TrainError("experiments.dataset is not available in this installation: cannot read episodes") from None
    backend = DataBackend(dataset.load_dataset, dataset.split_episodes, dataset.sources_imply_ampro)
    try:
        from experiments import collect
    except ModuleNotFoundError as exc:
        if exc.name != "experiments.collect":
            raise
        return backend  # logs still work; simulation-based collection will say what is missing
    backend.collect, backend.driver_spec = collect.collect, collect.DriverSpec
    return backend


def required_columns(feature_set: str) -> tuple[str, ...]:
    """Log columns training on `feature_set` needs: the features' columns and the PD torques (targets)."""
    return tuple(FEATURE_COLUMNS[feature_set]) + TARGET_COLUMNS


@dataclass
class Series:
    """One episode as training arrays: raw features [T, F] and raw targets [T, 2] (N·m), float32."""

    name: str
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def episode_series(episodes: Sequence[Any], feature_set: str) -> list[Series]:
    """Features and targets of each episode; a missing column or a non-finite value is a :class:`TrainError`."""
    out = []
    for ep in episodes:
        name = getattr(ep, "name", "?")
        cols = ep.columns
        missing = [c for c in required_columns(feature_set) if c not in cols]
        if missing:
            raise TrainError(f"episode {name} lacks column(s) {', '.join(missing)} needed for {feature_set!r}")
        x = features_from_columns(feature_set, cols)
        y = np.stack([np.asarray(cols[c], dtype=np.float32) for c in TARGET_COLUMNS], axis=-1)
        for what, a in (("features", x), ("targets", y)):
            if not np.isfinite(a).all():
                raise TrainError(f"episode {name}: non-finite {what} (NaN or inf) in the log")
        if len(x) < 2:
            raise TrainError(f"episode {name} has {len(x)} rows; at least 2 are needed")
        out.append(Series(str(name), x, y))
    return out


def control_dt_of(episodes: Sequence[Any]) -> float:
    """Control period of the data: episode metadata, else the median step of the ``time`` column, else 5 ms."""
    for ep in episodes:
        meta = getattr(ep, "meta", {}) or {}
        for key in ("control_dt", "dt"):
            if isinstance(meta.get(key), (int, float)) and meta[key] > 0:
                return float(meta[key])
    for ep in episodes:
        t = ep.columns.get("time")
        if t is not None and len(t) > 2:
            dt = float(np.median(np.diff(np.asarray(t, dtype=np.float64))))
            if dt > 0:
                return round(dt, 6)
    return DEFAULT_DT


# ------------------------------------------------------------------------------------------------ scaling
@dataclass
class Scaling:
    """Input z-score and target normalisation (y_n = (y − offset) / scale), stored in every checkpoint."""

    norm: Normalizer
    target_scale: np.ndarray
    target_offset: np.ndarray

    @classmethod
    def fit(cls, series: Sequence[Series]) -> Scaling:
        x = np.concatenate([s.x for s in series])
        y = np.concatenate([s.y for s in series]).astype(np.float64)
        std = y.std(axis=0)
        scale = np.where(std < 1e-3, 1.0, std).astype(np.float32)
        return cls(Normalizer.fit(x), scale, y.mean(axis=0).astype(np.float32))

    @classmethod
    def from_meta(cls, meta: CheckpointMeta) -> Scaling:
        return cls(meta.input_norm, meta.target_scale, meta.target_offset)

    def inputs(self, s: Series) -> np.ndarray:
        return self.norm(s.x)

    def targets(self, s: Series) -> np.ndarray:
        return ((s.y - self.target_offset) / self.target_scale).astype(np.float32)


@dataclass
class Prepared:
    """Normalised arrays of a set of episodes."""

    names: list[str]
    x: list[np.ndarray]
    y: list[np.ndarray]  # normalised targets
    y_raw: list[np.ndarray]  # N·m

    @classmethod
    def build(cls, series: Sequence[Series], scaling: Scaling) -> Prepared:
        return cls(
            [s.name for s in series],
            [scaling.inputs(s) for s in series],
            [scaling.targets(s) for s in series],
            [s.y for s in series],
        )

    @property
    def steps(self) -> int:
        return sum(len(a) for a in self.x)


# ------------------------------------------------------------------------------------------------ windows
class WindowSampler:
    """Random crops of length `window` from a set of episodes, batched; deterministic given the generator.

    An epoch draws ``ceil(steps / stride)`` windows, episodes weighted by their number of possible start points,
    so every step is seen about ``window / stride`` times. Episodes shorter than a window (e.g. a DAgger
    episode that fell early) give one zero-padded window whose padding is masked out of the loss.
    """

    def __init__(self, data: Prepared, window: int, warmup: int, stride: int, batch_size: int) -> None:
        if not data.x:
            raise TrainError("no training episodes")
        self.data, self.window, self.warmup, self.batch_size = data, window, warmup, batch_size
        self.starts = np.array([max(1, len(a) - window + 1) for a in data.x], dtype=np.int64)
        self.cum = np.cumsum(self.starts)
        self.windows_per_epoch = max(1, math.ceil(data.steps / stride))

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(self.windows_per_epoch / self.batch_size)

    def epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Batches (x [B, W, F], y [B, W, O], loss mask [B, W]) of one epoch."""
        n = self.windows_per_epoch
        flat = rng.integers(0, int(self.cum[-1]), size=n)
        ep = np.searchsorted(self.cum, flat, side="right")
        start = flat - np.concatenate([[0], self.cum[:-1]])[ep]
        W = self.window
        n_in, n_out = self.data.x[0].shape[1], self.data.y[0].shape[1]
        for b0 in range(0, n, self.batch_size):
            idx = range(b0, min(n, b0 + self.batch_size))
            xb = np.zeros((len(idx), W, n_in), dtype=np.float32)
            yb = np.zeros((len(idx), W, n_out), dtype=np.float32)
            mb = np.zeros((len(idx), W), dtype=np.float32)
            for row, i in enumerate(idx):
                e, s = int(ep[i]), int(start[i])
                xs, ys = self.data.x[e][s : s + W], self.data.y[e][s : s + W]
                xb[row, : len(xs)], yb[row, : len(ys)] = xs, ys
                mb[row, self.warmup : len(xs)] = 1.0
            yield torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(mb)


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


def _summary_writer(log_dir: Path) -> Any:
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


# ------------------------------------------------------------------------------------------------ the pipeline
@dataclass
class TrainResult:
    """What `run_training` leaves: the final checkpoint, the export files and the per-stage records."""

    controller: Path
    gru: Path | None  # the float GRU before the delta fine-tune (``DIR/gru.pt``)
    stages: list[dict[str, Any]]
    exported: dict[str, Path] = field(default_factory=dict)
    export_error: str | None = None
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"legloop train: {msg}", file=sys.stderr, flush=True)


def _collect_env_options(cfg: TrainConfig) -> dict[str, Any]:
    """Training walks within ±`data.max_slope_deg` (flat by default), so the slopes of evaluation are unforeseen."""
    if not cfg.data.randomize:
        return {}
    return {"randomization": Randomization(speed_delta=0.0, slope_deg=cfg.data.max_slope_deg)}


def _collect_cached(
    backend: DataBackend,
    out_dir: Path,
    progress: bool,
    **kwargs: Any,
) -> tuple[list[Any], float]:
    """Collect into `out_dir` unless a completed collection is there (marker ``.complete``); load its episodes."""
    marker = out_dir / ".complete"
    seconds = 0.0
    if not marker.exists():
        if backend.collect is None:
            raise TrainError(
                "simulation-based collection needs experiments.collect, which is not available; "
                "train on logs with --data instead"
            )
        if out_dir.exists():  # an interrupted collection: start it again, deterministically
            shutil.rmtree(out_dir)
        t0 = time.perf_counter()
        paths = backend.collect(out_dir, progress=progress, **kwargs)
        seconds = time.perf_counter() - t0
        marker.write_text(json.dumps({"episodes": [str(p) for p in paths], "seconds": round(seconds, 2)}) + "\n")
    try:
        episodes = backend.load_dataset([str(out_dir)])
    except (OSError, ValueError, KeyError) as exc:
        raise TrainError(f"cannot read collected episodes in {out_dir}: {exc}") from None
    return list(episodes), seconds


def _split(backend: DataBackend, episodes: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    # Whole episodes (held-out seeds); a single log is split in time by the data module.
    if val_fraction <= 0.0:
        return list(episodes), []
    try:
        train, val = backend.split_episodes(episodes, val_fraction, seed)
    except ValueError as exc:
        raise TrainError(f"cannot split the data into training and validation: {exc}") from None
    return list(train), list(val)


def load_sources(
    sources: Sequence[str], feature_set: str, backend: DataBackend | None = None
) -> tuple[list[Any], DataBackend]:
    """Read logs/run directories for training; every error (missing file or column) is a :class:`TrainError`."""
    for src in sources:
        if not Path(src).exists():
            raise TrainError(f"--data {src}: no such file or directory")
    backend = backend or default_backend()
    try:
        episodes = backend.load_dataset(list(sources), require=required_columns(feature_set))
    except TrainError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise TrainError(f"cannot read --data: {msg}") from None
    if not episodes:
        raise TrainError(f"--data {' '.join(sources)}: no episodes found")
    return list(episodes), backend


def resolve_feature_set(
    cfg: TrainConfig, sources: Sequence[str], explicit: str | None, backend: DataBackend | None = None
) -> str:
    """--features wins; else logs in the AMPRO CSV schema among the sources imply 'ampro'; else the config's."""
    if explicit:
        return explicit
    if sources and (backend or default_backend()).sources_imply_ampro(list(sources)):
        return "ampro"
    return cfg.feature_set


def run_training(
    cfg: TrainConfig,
    out: str | Path,
    sources: Sequence[str] = (),
    feature_set: str | None = None,
    restart: bool = False,
    force: bool = False,
    progress: bool = True,
    backend: DataBackend | None = None,
) -> TrainResult:
    """The whole pipeline into run directory `out`; see the module docstring. Raises :class:`TrainError`.

    Nothing in `out` is touched before the inputs are validated; ``out/controller.pt`` is only replaced with
    `force`. Stages whose checkpoint exists are loaded (unless `restart`, which recomputes everything).
    """
    t_start = time.perf_counter()
    out = Path(out)
    fs = resolve_feature_set(cfg, sources, feature_set, backend)
    if fs != cfg.feature_set:
        cfg = cfg.replace(feature_set=fs)
    final = out / FINAL
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} exists and is not a directory")
    if (final.exists() or final.with_suffix(".json").exists()) and not force:
        raise TrainError(f"{final} already exists; choose another --out or pass --force to overwrite it")

    # ---- validate the inputs before writing anything
    logs: list[Any] = []
    if sources:
        logs, backend = load_sources(sources, fs, backend)
        episode_series(logs, fs)  # every column present and finite, before anything is written
    backend = backend or default_backend()
    run_spec = {"config": cfg.to_dict(), "sources": [str(Path(s).resolve()) for s in sources]}
    spec_path = out / "train_config.json"
    if spec_path.exists() and not restart:
        try:
            previous = json.loads(spec_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != run_spec:
            raise TrainError(
                f"{out} holds a training run with another configuration or data ({spec_path.name}); "
                "pass --restart to retrain from scratch there, or choose another --out"
            )

    # ---- the run directory
    out.mkdir(parents=True, exist_ok=True)
    stages_dir, data_dir, tb_dir = out / "stages", out / "data", out / "tb"
    if restart:
        # DIR/data is ours only when we simulate; with --data it is left alone (it might hold the user's logs).
        for d in (stages_dir, tb_dir) if sources else (stages_dir, data_dir, tb_dir):
            if d.exists():
                shutil.rmtree(d)
    stages_dir.mkdir(exist_ok=True)
    write_json(spec_path, run_spec)
    writer = _summary_writer(tb_dir)

    # ---- data
    collect_seconds: dict[str, float] = {}
    seed_base = 10_000 + 100_000 * cfg.seed  # far from the evaluation seeds (0, 1, 2, …): those stay unseen
    if sources:
        dt = control_dt_of(logs)
        train_eps, val_eps = _split(backend, logs, cfg.data.val_fraction, cfg.seed)
        train_s, val_s = episode_series(train_eps, fs), episode_series(val_eps, fs)
        data_info = {"sources": [str(s) for s in sources], "episodes": len(logs)}
    else:
        _say(progress, f"collecting {cfg.data.episodes} PD episodes of {cfg.data.seconds:g} s")
        pd_eps, collect_seconds["pd"] = _collect_cached(
            backend,
            data_dir / "pd",
            progress,
            n_episodes=cfg.data.episodes,
            seconds=cfg.data.seconds,
            speeds=tuple(cfg.data.speeds),
            seed0=seed_base,
            workers=cfg.workers,
            randomize=cfg.data.randomize,
            env_options=_collect_env_options(cfg),
            stage="pd",
        )
        dt = control_dt_of(pd_eps)
        train_eps, val_eps = _split(backend, pd_eps, cfg.data.val_fraction, cfg.seed)
        train_s, val_s = episode_series(train_eps, fs), episode_series(val_eps, fs)
        data_info = {"pd_episodes": len(pd_eps), "seed0": seed_base}
    data_info |= {
        "train_episodes": [s.name for s in train_s],
        "val_episodes": [s.name for s in val_s],
        "train_steps": sum(len(s) for s in train_s),
        "val_steps": sum(len(s) for s in val_s),
    }

    # ---- stages
    rounds = 0 if sources else cfg.dagger.rounds
    l1 = cfg.optim.l1_weight
    specs = [StageSpec("bc", 0, cfg.bc.epochs, cfg.bc.lr or cfg.optim.lr, l1_weight=l1)]
    specs += [
        StageSpec(f"dagger{k}", k, cfg.dagger.epochs, cfg.dagger.lr or cfg.optim.lr, l1_weight=l1, dagger_round=k)
        for k in range(1, rounds + 1)
    ]
    d = cfg.delta
    delta_lr = d.lr or cfg.optim.lr
    specs.append(StageSpec("delta", rounds + 1, d.epochs, delta_lr, d.theta_x, d.theta_h, d.qat, d.l1_weight))
    for j in range(1, (0 if sources else d.dagger_rounds) + 1):
        specs.append(
            StageSpec(
                f"delta_dagger{j}",
                rounds + 1 + j,
                d.dagger_epochs,
                delta_lr,
                d.theta_x,
                d.theta_h,
                d.qat,
                d.l1_weight,
                dagger_round=rounds + j,
            )
        )

    scaling: Scaling | None = None
    torch.manual_seed(cfg.seed)  # the initial weights
    model = DeltaGRU(feature_size(fs), cfg.model.hidden_size, cfg.model.num_layers, len(TARGET_COLUMNS))
    history: list[dict[str, Any]] = []
    prev_ckpt: Path | None = None
    epoch0 = 0
    for spec in specs:
        ckpt = stages_dir / f"{spec.name}.pt"
        if spec.dagger_round:
            k = spec.dagger_round
            assert prev_ckpt is not None and backend is not None
            if backend.driver_spec is None and not (data_dir / spec.name / ".complete").exists():
                raise TrainError("DAgger needs experiments.collect (DriverSpec), which is not available")
            beta = cfg.dagger.beta(k)
            _say(progress, f"DAgger round {k}: {cfg.dagger.episodes} episodes, learner drives with β = {beta:g}")
            new_eps, collect_seconds[spec.name] = _collect_cached(
                backend,
                data_dir / spec.name,
                progress,
                n_episodes=cfg.dagger.episodes,
                seconds=cfg.dagger.seconds,
                speeds=tuple(cfg.data.speeds),
                seed0=seed_base + 1000 * k,
                workers=cfg.workers,
                randomize=cfg.data.randomize,
                env_options=_collect_env_options(cfg),
                driver=backend.driver_spec(str(prev_ckpt)) if backend.driver_spec else None,
                beta=beta,
                stage=spec.name,
            )
            train_s = train_s + episode_series(new_eps, fs)
        if ckpt.exists():
            try:
                model, meta = load_checkpoint(ckpt, fs)
            except CheckpointError as exc:
                raise TrainError(f"cannot resume from {ckpt}: {exc}; pass --restart to retrain") from None
            scaling = Scaling.from_meta(meta)
            history = list(meta.training.get("stages", []))
            _say(progress, f"stage {spec.name}: loaded {ckpt} (finished earlier)")
        else:
            if scaling is None:
                scaling = Scaling.fit(train_s)
            _say(progress, f"stage {spec.name}: {spec.epochs} epoch(s) on {len(train_s)} episodes")
            rec = train_stage(
                model,
                spec,
                Prepared.build(train_s, scaling),
                Prepared.build(val_s, scaling),
                scaling,
                cfg,
                writer,
                epoch0,
                progress,
            )
            if spec.name in collect_seconds:
                rec["collect_seconds"] = round(collect_seconds[spec.name], 2)
            history = [*history, rec]
            meta = _meta(cfg, fs, scaling, dt, spec.name, history, data_info)
            save_checkpoint(ckpt, model, meta, overwrite=True)
        epoch0 += spec.epochs
        prev_ckpt = ckpt
    writer.close()
    assert scaling is not None

    # ---- the deliverables: the float GRU it started from, the delta-GRU, then its export
    float_stages = [s.name for s in specs if s.theta_x == 0.0 and s.theta_h == 0.0 and not s.qat]
    gru_path = None
    if float_stages:
        gru_model, gru_meta = load_checkpoint(stages_dir / f"{float_stages[-1]}.pt", fs)
        gru_path = save_checkpoint(out / FLOAT_GRU, gru_model, gru_meta, overwrite=True)
    meta = _meta(cfg, fs, scaling, dt, specs[-1].name, history, data_info)
    final_path = save_checkpoint(final, model, meta, overwrite=True)
    exported: dict[str, Path] = {}
    export_error = None
    try:
        from firmware_bridge.export import export_all
    except ModuleNotFoundError as exc:
        if exc.name != "firmware_bridge.export":
            raise
        export_error = "firmware_bridge.export is not available: export skipped"
    else:
        try:
            exported = dict(export_all(final_path, out / "export", overwrite=True))
        except Exception as exc:  # the checkpoint is the deliverable; a failed export is reported, not fatal
            export_error = f"{type(exc).__name__}: {exc}"
    if export_error:
        _say(progress, f"export: {export_error}")
    seconds = time.perf_counter() - t_start
    summary = {
        "controller": str(final_path),
        "gru": str(gru_path) if gru_path else None,
        "feature_set": fs,
        "control_dt": dt,
        "stages": [{k: v for k, v in s.items() if k != "history"} for s in history],
        "collect_seconds": {k: round(v, 2) for k, v in collect_seconds.items()},
        "export": {k: str(v) for k, v in exported.items()},
        "export_error": export_error,
        "seconds": round(seconds, 2),
        "data": data_info,
        "provenance": provenance(),
    }
    write_json(out / "train.json", summary)
    return TrainResult(final_path, gru_path, history, exported, export_error, seconds, summary)


def _meta(
    cfg: TrainConfig,
    fs: str,
    scaling: Scaling,
    dt: float,
    stage: str,
    history: list[dict[str, Any]],
    data_info: dict[str, Any],
) -> CheckpointMeta:
    last = history[-1] if history else {}
    training = {
        "stage": stage,
        "stages": history,
        "val_r2": last.get("val_r2"),
        "val_sparsity": last.get("val_sparsity"),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "data": data_info,
    }
    return CheckpointMeta(
        model={},
        feature_set=fs,
        input_norm=scaling.norm,
        target_scale=scaling.target_scale,
        target_offset=scaling.target_offset,
        control_dt=dt,
        training=training,
    )
