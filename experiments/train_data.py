"""Training data: episodes from the simulator or from logs, turned into normalised arrays and random windows.

The data half of :mod:`experiments.train`: where episodes come from (:class:`DataBackend`: the project's data set
and collection modules, swappable in tests), reading ``--data`` sources and splitting off validation episodes,
the columns a feature set needs, the per-episode arrays (:class:`Series`), the input z-score and target
normalisation stored with every checkpoint (:class:`Scaling`), normalised sets (:class:`Prepared`) and the
truncated-BPTT window batches of an epoch (:class:`WindowSampler`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.checkpoint import CheckpointMeta
from controllers.features import FEATURE_COLUMNS, PRIOR_COLUMNS, TARGET_COLUMNS, Normalizer, features_from_columns
from experiments.train_config import TrainConfig

JOINTS = ("knee", "ankle")  # order of TARGET_COLUMNS and of the network outputs
# Labels of the auxiliary gait-phase output (`[aux]`, training only): the PD's domain and phase in simulation.
AUX_COLUMNS = ("ishumanswing", "tau")
AUX_NAMES = ("stance", "phase")  # targets 2·ishumanswing − 1 (+1 = prosthesis stance) and 2·τ − 1
PHASE_BINS = 30  # bins of τ per domain in phase_bins (0.05 of phase each)
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
    """One episode as training arrays: raw features [T, F] and raw targets [T, 2] (N·m), float32; with an
    auxiliary output, its targets [T, 2] (:data:`AUX_NAMES`); with ``phase``, each step's gait-phase bin
    (:func:`phase_bins`, for :func:`correction_weights`)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    aux: np.ndarray | None = None
    phase: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


def episode_series(
    episodes: Sequence[Any], feature_set: str, aux: bool = False, target: str = "torque", phase: bool = False
) -> list[Series]:
    """Features and targets of each episode (with `aux`, the auxiliary gait-phase targets too, from the PD's
    :data:`AUX_COLUMNS`; with `phase`, the steps' gait-phase bins from the same columns); a missing column or a
    non-finite value is a :class:`TrainError`. ``target = "pd_residual"``: the targets are the labels minus the
    PD's own torque (:data:`PRIOR_COLUMNS`)."""
    out = []
    for ep in episodes:
        name = getattr(ep, "name", "?")
        cols = ep.columns
        missing = [c for c in required_columns(feature_set) if c not in cols]
        if missing:
            raise TrainError(f"episode {name} lacks column(s) {', '.join(missing)} needed for {feature_set!r}")
        x = features_from_columns(feature_set, cols)
        y = np.stack([np.asarray(cols[c], dtype=np.float32) for c in TARGET_COLUMNS], axis=-1)
        if target == "pd_residual":
            missing = [c for c in PRIOR_COLUMNS if c not in cols]
            if missing:
                raise TrainError(
                    f"episode {name} lacks column(s) {', '.join(missing)}: target 'pd_residual' learns the expert's "
                    "torque minus the PD's, which data sets simulated by this legloop record (recorded logs and "
                    "older data sets do not)"
                )
            y = y - np.stack([np.asarray(cols[c], dtype=np.float32) for c in PRIOR_COLUMNS], axis=-1)
        a_targets = aux_targets(cols, str(name)) if aux else None
        bins = phase_bins(cols, str(name)) if phase else None
        for what, a in (("features", x), ("targets", y), ("aux targets", a_targets)):
            if a is not None and not np.isfinite(a).all():
                raise TrainError(f"episode {name}: non-finite {what} (NaN or inf) in the log")
        if len(x) < 2:
            raise TrainError(f"episode {name} has {len(x)} rows; at least 2 are needed")
        out.append(Series(str(name), x, y, a_targets, bins))
    return out


def _phase_columns(cols: Any, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in AUX_COLUMNS if c not in cols]
    if missing:
        raise TrainError(
            f"episode {name} lacks column(s) {', '.join(missing)}: {what} needs the PD's domain and phase, which "
            "simulated episodes record"
        )
    return np.asarray(cols["ishumanswing"], dtype=np.float32), np.asarray(cols["tau"], dtype=np.float32)


def phase_bins(cols: Any, name: str = "?") -> np.ndarray:
    """Each step's gait-phase bin [T] (int64, 0 … 2·:data:`PHASE_BINS` − 1): the PD's domain (prosthesis stance or
    swing) × its phase τ in :data:`PHASE_BINS` equal bins of [0, 1.5) (τ beyond falls in the end bins)."""
    stance, tau = _phase_columns(cols, name, "optim.correction_weight (the expert's correction by gait phase)")
    k = np.clip((tau / 1.5 * PHASE_BINS).astype(np.int64), 0, PHASE_BINS - 1)
    return (stance > 0.5).astype(np.int64) * PHASE_BINS + k


def correction_departure(series: Sequence[Series]) -> np.ndarray:
    """d / mean d for every step of `series`, concatenated [ΣT] (float64): d = the mean over joints of
    |r − r̄(phase)| / σ, r the targets (the expert's correction over the PD), r̄ their mean in the step's
    :func:`phase_bins` bin and σ their standard deviation, both over `series` — how far the expert departs from what
    its gait phase predicts, relative to how far it usually does."""
    if any(s.phase is None for s in series):
        raise TrainError("correction weights need every series' gait-phase bins (episode_series(..., phase=True))")
    y = np.concatenate([s.y for s in series]).astype(np.float64)
    key = np.concatenate([s.phase for s in series if s.phase is not None])
    n_bins = 2 * PHASE_BINS
    count = np.maximum(np.bincount(key, minlength=n_bins), 1).astype(np.float64)
    mean = np.stack([np.bincount(key, y[:, j], n_bins) for j in range(y.shape[1])], 1) / count[:, None]
    d = (np.abs(y - mean[key]) / np.maximum(y.std(axis=0), 1e-6)).mean(axis=1)
    return d / max(float(d.mean()), 1e-12)


def correction_weights(series: Sequence[Series], strength: float) -> list[np.ndarray]:
    """Per-step loss weights [T] (float32) of `series` (targets = the expert's correction over the PD, with their
    :func:`phase_bins`): ``1 + strength × (d / mean d)²`` (:func:`correction_departure`).

    An RL expert's correction is mostly a gait pattern (its phase mean explains 60–68 % of its variance; its
    magnitude is no larger after a push than elsewhere: docs/rl.md, fifteenth round); what the phase does not
    predict is where the expert reacts — push recoveries, falls, the start of a walk — rare in the data, and
    weighted up here.
    The weights are relative (the loss divides by their sum), so ``strength`` sets the emphasis, not the scale."""
    if strength == 0.0:
        return [np.ones(len(s), np.float32) for s in series]
    w = (1.0 + strength * correction_departure(series) ** 2).astype(np.float32)
    return list(np.split(w, np.cumsum([len(s) for s in series])[:-1]))


def weight_summary(weights: Sequence[np.ndarray], strength: float) -> dict[str, float]:
    """What a stage's loss weights did, for its record: the strength, the weights' median, 99th percentile and
    largest relative to their mean, and the share of the loss weight on the top 1 % of steps (0.01 when even)."""
    w = np.concatenate(list(weights)).astype(np.float64)
    m = float(w.mean())
    top = np.sort(w)[::-1][: max(1, len(w) // 100)]
    return {
        "strength": strength,
        "p50_over_mean": round(float(np.median(w)) / m, 4),
        "p99_over_mean": round(float(np.quantile(w, 0.99)) / m, 4),
        "max_over_mean": round(float(w.max()) / m, 4),
        "top1pct_share": round(float(top.sum() / w.sum()), 4),
    }


def aux_targets(cols: Any, name: str = "?") -> np.ndarray:
    """Targets [T, 2] of the auxiliary gait-phase output: 2·ishumanswing − 1 (+1 in prosthesis stance, −1 in
    swing) and 2·τ − 1 (the PD's phase within its domain, about −1 … 1.5: stance τ follows the hip and ends near
    0.5, swing τ is time over the nominal swing duration). The PD's desired knee trajectory is a function of these
    two, which is what the ``ampro`` features give the network and ``sensors`` must infer."""
    stance, tau = _phase_columns(cols, name, "the auxiliary gait-phase output ([aux] weight > 0)")
    return np.stack([2.0 * stance - 1.0, 2.0 * tau - 1.0], axis=-1).astype(np.float32)


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
    def fit(cls, series: Sequence[Series], input_gain: Sequence[float] = ()) -> Scaling:
        """Fit on the training series; ``input_gain`` (one per feature, empty: none) multiplies each z-score."""
        x = np.concatenate([s.x for s in series])
        y = np.concatenate([s.y for s in series]).astype(np.float64)
        std = y.std(axis=0)
        scale = np.where(std < 1e-3, 1.0, std).astype(np.float32)
        norm = Normalizer.fit(x)
        if len(input_gain):
            norm = Normalizer(norm.mean, (norm.std / np.asarray(input_gain, np.float32)).astype(np.float32))
        return cls(norm, scale, y.mean(axis=0).astype(np.float32))

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
    aux: list[np.ndarray] | None = None  # auxiliary gait-phase targets (when every series has them)
    weights: list[np.ndarray] | None = None  # per-step loss weights [T] (None: every step counts 1)

    @classmethod
    def build(cls, series: Sequence[Series], scaling: Scaling, weights: Sequence[np.ndarray] | None = None) -> Prepared:
        aux = [s.aux for s in series if s.aux is not None]
        if weights is not None and [len(w) for w in weights] != [len(s) for s in series]:
            raise TrainError("one loss weight per step of every series is needed")
        return cls(
            [s.name for s in series],
            [scaling.inputs(s) for s in series],
            [scaling.targets(s) for s in series],
            [s.y for s in series],
            aux if series and len(aux) == len(series) else None,
            list(weights) if weights is not None else None,
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

    With `aux`, each target window holds the auxiliary gait-phase targets after the torques (columns
    ``[torques | aux]``); the windows drawn are the same either way. The loss mask holds the set's per-step
    weights where it has them (:func:`correction_weights`), 1 otherwise.
    """

    def __init__(
        self, data: Prepared, window: int, warmup: int, stride: int, batch_size: int, aux: bool = False
    ) -> None:
        if not data.x:
            raise TrainError("no training episodes")
        self.data, self.window, self.warmup, self.batch_size = data, window, warmup, batch_size
        self.targets = data.y
        if aux:
            if data.aux is None:
                raise TrainError("the auxiliary output needs gait-phase targets for every training episode")
            self.targets = [np.concatenate([y, a], axis=-1) for y, a in zip(data.y, data.aux, strict=True)]
        self.starts = np.array([max(1, len(a) - window + 1) for a in data.x], dtype=np.int64)
        self.cum = np.cumsum(self.starts)
        self.windows_per_epoch = max(1, math.ceil(data.steps / stride))

    def _mask(self, e: int, s: int, n: int) -> np.ndarray | float:
        """The loss mask of steps warmup … n of the window at `s` in episode `e`."""
        w = self.data.weights
        return 1.0 if w is None else w[e][s + self.warmup : s + n]

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
        n_in, n_out = self.data.x[0].shape[1], self.targets[0].shape[1]
        for b0 in range(0, n, self.batch_size):
            idx = range(b0, min(n, b0 + self.batch_size))
            xb = np.zeros((len(idx), W, n_in), dtype=np.float32)
            yb = np.zeros((len(idx), W, n_out), dtype=np.float32)
            mb = np.zeros((len(idx), W), dtype=np.float32)
            for row, i in enumerate(idx):
                e, s = int(ep[i]), int(start[i])
                xs, ys = self.data.x[e][s : s + W], self.targets[e][s : s + W]
                xb[row, : len(xs)], yb[row, : len(ys)] = xs, ys
                mb[row, self.warmup : len(xs)] = self._mask(e, s, len(xs))
            yield torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(mb)

    def stream(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Full batches of `batch_size` random windows, without end (training to a budget of gradient steps, not
        epochs: one minute of log is fewer windows than one batch of the simulator's epochs)."""
        W, B = self.window, self.batch_size
        n_in, n_out = self.data.x[0].shape[1], self.targets[0].shape[1]
        offsets = np.concatenate([[0], self.cum[:-1]])
        while True:
            flat = rng.integers(0, int(self.cum[-1]), size=B)
            ep = np.searchsorted(self.cum, flat, side="right")
            start = flat - offsets[ep]
            xb = np.zeros((B, W, n_in), dtype=np.float32)
            yb = np.zeros((B, W, n_out), dtype=np.float32)
            mb = np.zeros((B, W), dtype=np.float32)
            for row in range(B):
                e, s = int(ep[row]), int(start[row])
                xs, ys = self.data.x[e][s : s + W], self.targets[e][s : s + W]
                xb[row, : len(xs)], yb[row, : len(ys)] = xs, ys
                mb[row, self.warmup : len(xs)] = self._mask(e, s, len(xs))
            yield torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(mb)


# ------------------------------------------------------------------------------------------------ sources
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


def split_tails(
    series: Sequence[Series], val_fraction: float
) -> tuple[list[Series], list[Series], list[dict[str, Any]]]:
    """Training heads and validation tails of logs: each log's last `val_fraction` of rows (at least 2) is its
    validation tail, contiguous and in time order, and never appears in training; the head before it is trained on.

    Returns (heads, tails, one record per log: name, rows, ``train_rows`` [0, cut) and ``val_rows`` [cut, rows)).
    A log too short to leave 2 rows on each side is a :class:`TrainError`.
    """
    heads: list[Series] = []
    tails: list[Series] = []
    spans: list[dict[str, Any]] = []
    for s in series:
        n = len(s)
        cut = n - max(2, round(val_fraction * n))
        if cut < 2:
            raise TrainError(f"log {s.name} has {n} rows: too short to hold out a validation tail of {val_fraction:g}")
        heads.append(Series(f"{s.name}[train]", s.x[:cut], s.y[:cut]))
        tails.append(Series(f"{s.name}[val]", s.x[cut:], s.y[cut:]))
        spans.append({"name": s.name, "rows": n, "train_rows": [0, cut], "val_rows": [cut, n]})
    return heads, tails, spans


def split_train_val(
    backend: DataBackend, episodes: list[Any], val_fraction: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """Training and validation episodes: whole episodes (held-out seeds); a single log is split in time by the data
    module. ``val_fraction`` 0 keeps everything for training."""
    if val_fraction <= 0.0:
        return list(episodes), []
    try:
        train, val = backend.split_episodes(episodes, val_fraction, seed)
    except ValueError as exc:
        raise TrainError(f"cannot split the data into training and validation: {exc}") from None
    return list(train), list(val)
