"""Offline replay: feed a recorded log (AMPRO CSV schema) through a learned controller, open loop, and score it.

This is how a user checks a network on data from the real device, without a simulator: the features come from the
log's columns (``controllers.features.features_from_columns``), the recurrent state is carried through the whole
log in order, and the predicted torques are compared with the logged PD torques (``torque_pd_knee``,
``torque_pd_ankle``) per joint:

- R² = 1 − Σ(τ̂ − τ)² / Σ(τ − mean τ)²
- NRMSE = RMSE / (max τ − min τ)   (normalised by the range of the logged torque)

plus the controller's temporal sparsity and MACs per step, and for ``edgedrnn`` the modelled latency distribution
and deadline misses. For ``fallback_pd`` the fallback torque of a late step is the logged PD torque of that row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from controllers.features import FEATURE_COLUMNS, PRIOR_COLUMNS, TARGET_COLUMNS, features_from_columns
from experiments.ampro_log import LogFormatError, read_csv
from hil.deadline import DEFAULT_BUDGET_S
from hil.learned import DEFAULT_CLOCK_HZ, LearnedController
from hil.spec import LEARNED_CONTROLLERS, ControllerSpec

LEARNED = LEARNED_CONTROLLERS
JOINTS = ("knee", "ankle")


class ReplayError(ValueError):
    """A log that cannot be replayed (missing columns, bad values) — the message says what is wrong."""


# --------------------------------------------------------------------------------------------------- reading


def read_log(path: str | os.PathLike, require: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The ``require``-d columns of an AMPRO-schema CSV as float64 arrays (:func:`experiments.ampro_log.read_csv`)."""
    p = Path(path)
    if not p.is_file():
        raise ReplayError(f"no log file at {p}")
    try:
        cols = read_csv(p, require=require)
    except LogFormatError as exc:
        raise ReplayError(str(exc)) from None
    n = len(cols[require[0]]) if require else 0
    if n < 2:
        raise ReplayError(f"{p}: needs at least 2 data rows, found {n}")
    bad = [c for c in require if not np.all(np.isfinite(cols[c]))]
    if bad:
        raise ReplayError(f"{p}: non-finite values in column(s) {', '.join(bad)}")
    return {c: cols[c] for c in require}


# --------------------------------------------------------------------------------------------------- metrics


def torque_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Per joint R², NRMSE (by the logged range) and RMSE (N·m) of predicted vs logged torque [T, 2]."""
    out: dict[str, dict[str, float | None]] = {}
    for j, name in enumerate(JOINTS):
        y, yh = target[:, j].astype(np.float64), pred[:, j].astype(np.float64)
        err = yh - y
        rmse = float(np.sqrt(np.mean(err**2)))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        rng = float(y.max() - y.min())
        out[name] = {
            "r2": round(1.0 - float(np.sum(err**2)) / ss_tot, 6) if ss_tot > 0 else None,
            "nrmse": round(rmse / rng, 6) if rng > 0 else None,
            "rmse_nm": round(rmse, 6),
            "logged_range_nm": round(rng, 6),
        }
    return out


# ---------------------------------------------------------------------------------------------------- replay


def replay(
    controller: LearnedController,
    features: np.ndarray,
    pd_torque: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Run ``controller`` open loop over raw features [T, F] from a fresh state → torques float64 [T, 2].

    ``pd_torque`` [T, 2] (the logged PD torque) is the fallback of a late step under the ``fallback_pd`` policy;
    ``prior`` [T, 2] (the logged PD's own torque, :data:`PRIOR_COLUMNS`) is what a ``pd_residual`` network's
    correction is added to, and its fallback (required for one)."""
    controller.reset()
    T = features.shape[0]
    pred = np.empty((T, 2), dtype=np.float64)
    feats = np.ascontiguousarray(features, dtype=np.float64)
    if controller.residual:
        if prior is None:
            raise ValueError("a pd_residual network needs the PD's torque per row (prior) to replay")
        pd_torque = prior
    if pd_torque is not None and (controller.policy == "fallback_pd" or controller.residual):
        fb = np.ascontiguousarray(pd_torque, dtype=np.float64)
        for t in range(T):
            pred[t] = controller.act_features(feats[t], fb[t])
    else:
        for t in range(T):
            pred[t] = controller.act_features(feats[t])
    return pred


def replay_log(
    controller_name: str,
    checkpoint: str | os.PathLike,
    log_path: str | os.PathLike,
    *,
    feature_set: str | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    policy: str | None = None,
    governor: bool | str | None = None,
    theta_x: float | None = None,
    theta_h: float | None = None,
    board: Any = None,
    clock_hz: float = DEFAULT_CLOCK_HZ,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Replay ``log_path`` through a checkpoint; returns (metrics, predicted torques [T, 2], logged PD torques).

    ``theta_x`` / ``theta_h`` override the checkpoint's thresholds (normalised units); ``clock_hz`` is the EdgeDRNN
    model's clock; ``board`` (a :class:`hil.board_backend.BoardLink`) is where ``controller_name='board'`` runs.
    Raises ``CheckpointError`` (unusable checkpoint or feature-set mismatch), :class:`ReplayError` (log) or
    ``ExportError`` (edgedrnn: a checkpoint that does not fit the accelerator).
    """
    if controller_name not in LEARNED:
        raise ValueError(f"replay needs a learned controller ({', '.join(LEARNED)}), got {controller_name!r}")
    spec = ControllerSpec(
        controller_name,
        checkpoint=os.fspath(checkpoint),
        feature_set=feature_set,
        budget_s=budget_s,
        policy=policy,
        governor=governor,
        theta_x=theta_x,
        theta_h=theta_h,
        board=board,
        clock_hz=clock_hz,
    )
    with spec.factory() as factory:
        fs = factory.meta.feature_set
        # A pd_residual network adds its correction to the PD's torque: the log must hold it (simulated logs do).
        prior_cols = PRIOR_COLUMNS if factory.meta.target == "pd_residual" else ()
        cols = read_log(log_path, tuple(dict.fromkeys(FEATURE_COLUMNS[fs] + TARGET_COLUMNS + prior_cols)))
        feats = features_from_columns(fs, cols)
        target = np.stack([cols[c] for c in TARGET_COLUMNS], axis=1)
        prior = np.stack([cols[c] for c in prior_cols], axis=1) if prior_cols else None
        ctrl = factory.offline(capacity=len(feats))
        assert isinstance(ctrl, LearnedController)
        pred = replay(ctrl, feats, target, prior)
        stats = ctrl.episode_stats()  # while the backend is open: a board's link counters are read from it
    metrics: dict[str, Any] = {
        "controller": controller_name,
        "checkpoint": str(factory.checkpoint_path),
        "log": str(log_path),
        "rows": len(feats),
        "feature_set": fs,
        "joints": torque_metrics(pred, target),
    }
    metrics |= stats
    metrics["latency"] = ctrl.latency_stats()
    metrics["latency_histogram"] = ctrl.monitor.histogram(1.0)
    qs = (1, 5, 25, 50, 75, 90, 95, 99, 99.9)
    lat = ctrl.latencies_s
    answered = lat[np.isfinite(lat)]  # a step lost on a link has no latency (inf): counted in link.steps_lost
    pct = np.percentile(answered * 1e6, qs) if answered.size else np.zeros(len(qs))
    metrics["latency_percentiles_us"] = {f"p{q:g}": round(float(v), 4) for q, v in zip(qs, pct, strict=True)}
    metrics["latency_percentiles_steps"] = int(answered.size)
    return metrics, pred, target
