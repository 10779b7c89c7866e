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
used: no collection, no DAgger, only ``bc`` and ``delta``, each sized to the data rather than in epochs
(:class:`experiments.train_config.LogsConfig`): a budget of gradient steps, validation on the last rows of every log
(a contiguous tail, never trained on), early stopping, the best weights kept; a warning when the logs are too few
for the network (:func:`data_size_warning`).

Reproducible: data seeds, weight init and window sampling derive from the config's seed, and each stage seeds its
own generators, so a resumed run (finished stages are loaded, not recomputed) ends with the same weights as an
uninterrupted one. Targets are the PD torques normalised by their mean/std (stored as target offset/scale);
inputs are z-scored with the training set's statistics (stored as the input normalisation). Both are fitted once,
on the first training set, and kept for all stages: the weights depend on them.

This module is the pipeline (run directory, collection, stages in order, deliverables); the data preparation is in
:mod:`experiments.train_data`, one stage's training loop in :mod:`experiments.train_stages`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from controllers.base import torque_limits_of
from controllers.checkpoint import (
    DELTA_GRU,
    FLOAT_GRU,
    CheckpointError,
    CheckpointMeta,
    load_checkpoint,
    save_checkpoint,
)
from controllers.command_limits import CommandLimits, ResidualLimits
from controllers.deltagru import DeltaGRU
from controllers.features import TARGET_COLUMNS, feature_size
from envs.files import atomic_write_text
from envs.walker_env import Randomization
from experiments.rundir import provenance, write_json
from experiments.train_config import TrainConfig
from experiments.train_data import (
    JOINTS,
    DataBackend,
    Prepared,
    Scaling,
    Series,
    TrainError,
    control_dt_of,
    correction_weights,
    default_backend,
    episode_series,
    load_sources,
    resolve_feature_set,
    split_tails,
    split_train_val,
    weight_summary,
)
from experiments.train_stages import (
    StageSpec,
    make_aux_head,
    summary_writer,
    train_stage,
    train_stage_budget,
    validate,
)

FINAL = DELTA_GRU


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


class DataSizeWarning(UserWarning):
    """The training logs are too few for the network (it can memorise them instead of learning the law)."""


def data_size_warning(n_params: int, n_outputs: int, train_rows: int, dt: float) -> str | None:
    """The warning when the labelled training steps are fewer than the network's parameters per output, else None.

    Each output is fitted from `train_rows` labels by the whole network: with fewer labels than parameters per output
    the fit is under-determined, and the network can memorise the log. It is a size check, not a promise: for the
    ``ampro`` features, whose PD law is linear in them, it is conservative (1L-64H, 6881 parameters per output,
    trained on 1 / 2 / 5 s of log replayed the unseen tail at torque R² 0.984 / 0.997 / 0.998 on the knee);
    laws the network must work harder for (``sensors``, a real device's) need more. The message says what to do:
    a smaller network, or more log.
    """
    per_output = n_params // max(1, n_outputs)
    if train_rows >= per_output:
        return None
    need_s = per_output * dt
    return (
        f"the logs give {train_rows} training steps ({train_rows * dt:.0f} s) for a network of {n_params} "
        f"parameters ({per_output} per output): fewer labelled steps than parameters per output, so it can memorise "
        f"the log instead of learning the control law. Train a smaller network ([model] hidden_size / num_layers; "
        f"`legloop train --data` without --config uses experiments/configs/train_logs.toml) or record more walking "
        f"(at least {per_output} training steps, {need_s:.0f} s at {1 / dt:.0f} Hz, before the validation tail)"
    )


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"legloop train: {msg}", file=sys.stderr, flush=True)


def _collect_env_options(cfg: TrainConfig) -> dict[str, Any]:
    """Training walks within ±`data.max_slope_deg` (flat by default), so the slopes of evaluation are unforeseen."""
    if not cfg.data.randomize:
        return {}
    return {"randomization": Randomization(speed_delta=0.0, slope_deg=cfg.data.max_slope_deg)}


def _collect_pushes(cfg: TrainConfig, seconds: float) -> dict[str, Any]:
    """``collect``'s ``pushes`` argument for episodes of ``seconds``: push trains in ``data.push_fraction`` of them."""
    if cfg.data.push_fraction <= 0.0 or seconds < 3.0:
        return {}
    from controllers.residual import RandomPushes

    d = cfg.data
    pushes = RandomPushes(probability=d.push_fraction, count=max(1, int(seconds)), start_s=2.0, end_s=seconds - 1.0,
                          min_n=d.push_min_n, max_n=d.push_max_n, pattern="train",
                          heel_strike=d.push_heel_strike)  # fmt: skip
    return {"pushes": pushes}


def _correction_scale(cfg: TrainConfig) -> tuple[float, float] | None:
    """``collect``'s ``correction_scale`` for the expert's own episodes (None: off, the default [1, 1])."""
    lo, hi = (float(v) for v in cfg.data.correction_scale)
    return None if lo == hi == 1.0 else (lo, hi)


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
        record = {"episodes": [str(p) for p in paths], "seconds": round(seconds, 2)}
        atomic_write_text(marker, json.dumps(record) + "\n")  # its presence means "complete": never half-written
    try:
        episodes = backend.load_dataset([str(out_dir)])
    except (OSError, ValueError, KeyError) as exc:
        raise TrainError(f"cannot read collected episodes in {out_dir}: {exc}") from None
    return list(episodes), seconds


def run_training(
    cfg: TrainConfig,
    out: str | Path,
    sources: Sequence[str] = (),
    feature_set: str | None = None,
    restart: bool = False,
    force: bool = False,
    progress: bool = True,
    backend: DataBackend | None = None,
    expert: str | None = None,
) -> TrainResult:
    """The whole pipeline into run directory `out`; see the module docstring. Raises :class:`TrainError`.

    ``expert``: an RL checkpoint directory (``legloop rl train``) whose torques label the simulated data and the
    DAgger rounds instead of the PD's — the imitation pipeline then distils the RL controller.

    Nothing in `out` is touched before the inputs are validated; ``out/controller.pt`` is only replaced with
    `force`. Stages whose checkpoint exists are loaded (unless `restart`, which recomputes everything).
    """
    t_start = time.perf_counter()
    out = Path(out)
    # A distilled network inherits its expert's hard limits on the command (hil.learned applies them).
    limits = CommandLimits()
    res_limits: ResidualLimits | None = None  # and, with residual_limits = true, its limits on the correction
    if expert is not None:
        if sources:
            raise TrainError("--expert labels simulated data; with --data the logs' own torques are the labels")
        from controllers.rl_policy import RLCheckpointError, load_rl_checkpoint

        try:
            loaded = load_rl_checkpoint(expert)  # fails here, before anything is written
        except RLCheckpointError as exc:
            raise TrainError(f"--expert: {exc}") from None
        limits = loaded.command_limits
        if cfg.residual_limits:
            res_limits = loaded.residual_limits(torque_limits_of(None))
        expert = str(Path(expert).resolve())
    elif cfg.residual_limits:
        raise TrainError("residual_limits = true holds the network to an RL expert's limits: pass --expert rl:DIR")
    elif cfg.dagger.expert_follows:
        raise TrainError("dagger.expert_follows = true syncs an RL expert's history: pass --expert rl:DIR")
    elif _correction_scale(cfg) is not None:
        raise TrainError("data.correction_scale scales an RL expert's correction over its PD: pass --expert rl:DIR")
    fs = resolve_feature_set(cfg, sources, feature_set, backend)
    if fs != cfg.feature_set:
        cfg = cfg.replace(feature_set=fs)
    aux_w = cfg.aux.weight
    cw = cfg.optim.correction_weight
    if aux_w > 0.0 and sources:
        raise TrainError(
            "[aux] weight > 0 (the auxiliary gait-phase output) trains on the PD's domain and phase from the "
            "simulator; with --data set it to 0"
        )
    final = out / FINAL
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} exists and is not a directory")
    if (final.exists() or final.with_suffix(".json").exists()) and not force:
        raise TrainError(f"{final} already exists; choose another --out or pass --force to overwrite it")

    # ---- validate the inputs before writing anything
    logs: list[Any] = []
    log_split: tuple[list[Series], list[Series], list[dict[str, Any]]] | None = None
    if sources:
        logs, backend = load_sources(sources, fs, backend)
        # Every column present and finite, every log long enough to split, before anything is written.
        log_split = split_tails(episode_series(logs, fs, target=cfg.target), cfg.logs.val_fraction)
    backend = backend or default_backend()
    run_spec: dict[str, Any] = {"config": cfg.to_dict(), "sources": [str(Path(s).resolve()) for s in sources]}
    if expert is not None:
        run_spec["expert"] = expert
    if limits:  # only when set: a run distilled from an unlimited expert resumes as before
        run_spec["command_limits"] = limits.to_dict()
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
    writer = summary_writer(tb_dir)

    # ---- data
    collect_seconds: dict[str, float] = {}
    seed_base = 10_000 + 100_000 * cfg.seed  # far from the evaluation seeds (0, 1, 2, …): those stay unseen
    if log_split is not None:
        dt = control_dt_of(logs)
        train_s, val_s, spans = log_split
        data_info = {"sources": [str(s) for s in sources], "episodes": len(logs), "split": spans}
    else:
        labels = "PD" if expert is None else f"expert ({Path(expert).name}) labelled"
        _say(progress, f"collecting {cfg.data.episodes} {labels} episodes of {cfg.data.seconds:g} s")
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
            **({"expert": expert} if expert is not None else {}),
            **({"correction_scale": cs} if (cs := _correction_scale(cfg)) is not None else {}),
            **_collect_pushes(cfg, cfg.data.seconds),
        )
        dt = control_dt_of(pd_eps)
        train_eps, val_eps = split_train_val(backend, pd_eps, cfg.data.val_fraction, cfg.seed)
        train_s, val_s = (
            episode_series(train_eps, fs, aux_w > 0.0, cfg.target, cw > 0.0),
            episode_series(val_eps, fs, aux_w > 0.0, cfg.target, cw > 0.0),
        )
        data_info = {"pd_episodes": len(pd_eps), "seed0": seed_base}
    # The final network's open-loop fit per data set: validation holds out expert-driven episodes only, so a label
    # the network cannot learn where the learner drove (a DAgger round) shows here and nowhere else.
    fit_sets: dict[str, tuple[list[Series], float]] = {"data": (train_s, 1.0)}
    data_info |= {
        "train_episodes": [s.name for s in train_s],
        "val_episodes": [s.name for s in val_s],
        "train_steps": sum(len(s) for s in train_s),
        "val_steps": sum(len(s) for s in val_s),
    }

    # ---- stages
    rounds = 0 if sources else cfg.dagger.rounds
    l1 = cfg.optim.l1_weight
    bc_steps, delta_steps = (cfg.logs.bc_steps, cfg.logs.delta_steps) if sources else (0, 0)
    specs = [
        StageSpec("bc", 0, cfg.bc.epochs, cfg.bc.lr or cfg.optim.lr, l1_weight=l1, steps=bc_steps, aux_weight=aux_w)
    ]
    specs += [
        StageSpec(
            f"dagger{k}",
            k,
            cfg.dagger.epochs,
            cfg.dagger.lr or cfg.optim.lr,
            l1_weight=l1,
            dagger_round=k,
            aux_weight=aux_w,
        )
        for k in range(1, rounds + 1)
    ]
    dcfg = cfg.delta  # not `d`: that name holds the run's folders above
    delta_lr = dcfg.lr or cfg.optim.lr
    specs.append(
        StageSpec(
            "delta",
            rounds + 1,
            dcfg.epochs,
            delta_lr,
            dcfg.theta_x,
            dcfg.theta_h,
            dcfg.qat,
            dcfg.l1_weight,
            steps=delta_steps,
            aux_weight=aux_w,
            latency_weight=dcfg.latency_weight,
            latency_budget_s=dcfg.latency_budget_us * 1e-6,
            latency_clock_hz=dcfg.latency_clock_mhz * 1e6,
            latency_tau=dcfg.latency_tau,
            latency_tau_grad=dcfg.latency_tau_grad,
        )
    )
    for j in range(1, (0 if sources else dcfg.dagger_rounds) + 1):
        specs.append(
            StageSpec(
                f"delta_dagger{j}",
                rounds + 1 + j,
                dcfg.dagger_epochs,
                delta_lr,
                dcfg.theta_x,
                dcfg.theta_h,
                dcfg.qat,
                dcfg.l1_weight,
                dagger_round=rounds + j,
                aux_weight=aux_w,
                latency_weight=dcfg.latency_weight,
                latency_budget_s=dcfg.latency_budget_us * 1e-6,
                latency_clock_hz=dcfg.latency_clock_mhz * 1e6,
                latency_tau=dcfg.latency_tau,
                latency_tau_grad=dcfg.latency_tau_grad,
            )
        )

    scaling: Scaling | None = None
    torch.manual_seed(cfg.seed)  # the initial weights
    model = DeltaGRU(feature_size(fs), cfg.model.hidden_size, cfg.model.num_layers, len(TARGET_COLUMNS))
    # The auxiliary gait-phase head (training only): saved beside each stage checkpoint so a resumed run continues
    # with it, never inside the checkpoint (the deployed network keeps its torque outputs).
    aux_head = make_aux_head(model) if aux_w > 0.0 else None
    if sources:
        n_params = sum(p.numel() for p in model.parameters())
        msg = data_size_warning(n_params, len(TARGET_COLUMNS), sum(len(s) for s in train_s), dt)
        data_info["warnings"] = [msg] if msg else []
        if msg:
            warnings.warn(msg, DataSizeWarning, stacklevel=2)
    history: list[dict[str, Any]] = []
    prev_ckpt: Path | None = None
    epoch0 = step0 = 0
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
                **({"expert": expert} if expert is not None else {}),
                **({"expert_follows": True} if cfg.dagger.expert_follows else {}),
                **_collect_pushes(cfg, cfg.dagger.seconds),
            )
            new_s = episode_series(new_eps, fs, aux_w > 0.0, cfg.target, cw > 0.0)
            fit_sets[spec.name] = (new_s, beta)
            train_s = train_s + new_s
        if ckpt.exists():
            try:
                model, meta = load_checkpoint(ckpt, fs)
            except CheckpointError as exc:
                raise TrainError(f"cannot resume from {ckpt}: {exc}; pass --restart to retrain") from None
            scaling = Scaling.from_meta(meta)
            history = list(meta.training.get("stages", []))
            aux_path = ckpt.with_suffix(".aux.pt")
            if aux_head is not None and aux_path.exists():
                aux_head.load_state_dict(torch.load(aux_path, map_location="cpu", weights_only=True))
            _say(progress, f"stage {spec.name}: loaded {ckpt} (finished earlier)")
        else:
            if scaling is None:
                scaling = Scaling.fit(train_s, cfg.model.input_gain)
            weights = correction_weights(train_s, cw) if cw > 0.0 else None
            train_p, val_p = Prepared.build(train_s, scaling, weights), Prepared.build(val_s, scaling)
            if spec.steps:
                _say(progress, f"stage {spec.name}: up to {spec.steps} steps on {train_p.steps} rows of log")
                rec = train_stage_budget(model, spec, train_p, val_p, scaling, cfg, writer, step0, progress)
            else:
                _say(progress, f"stage {spec.name}: {spec.epochs} epoch(s) on {len(train_s)} episodes")
                rec = train_stage(model, spec, train_p, val_p, scaling, cfg, writer, epoch0, progress, aux_head)
            if spec.name in collect_seconds:
                rec["collect_seconds"] = round(collect_seconds[spec.name], 2)
            if weights is not None:
                rec["loss_weights"] = weight_summary(weights, cw)
            history = [*history, rec]
            meta = _meta(cfg, fs, scaling, dt, spec.name, history, data_info, limits, res_limits)
            save_checkpoint(ckpt, model, meta, overwrite=True)
            if aux_head is not None:
                torch.save(aux_head.state_dict(), ckpt.with_suffix(".aux.pt"))
        epoch0 += spec.epochs
        step0 += spec.steps
        prev_ckpt = ckpt
    writer.close()
    assert scaling is not None

    # ---- the deliverables: the float GRU it started from, the delta-GRU, then its export
    float_stages = [s.name for s in specs if s.theta_x == 0.0 and s.theta_h == 0.0 and not s.qat]
    gru_path = None
    if float_stages:
        gru_model, gru_meta = load_checkpoint(stages_dir / f"{float_stages[-1]}.pt", fs)
        gru_path = save_checkpoint(out / FLOAT_GRU, gru_model, gru_meta, overwrite=True)
    meta = _meta(cfg, fs, scaling, dt, specs[-1].name, history, data_info, limits, res_limits)
    trained = (cfg.delta.theta_x, cfg.delta.theta_h)
    run_tx, run_th = cfg.delta.run_thresholds()
    if (run_tx, run_th) != trained and (specs[-1].theta_x, specs[-1].theta_h) != trained:
        _say(progress, "delta.run_theta_x/run_theta_h ignored: the last stage is not the delta fine-tune")
    elif (run_tx, run_th) != trained:
        # The final network runs at other thresholds than it was trained at (its stage checkpoints keep those).
        model.theta_x, model.theta_h = run_tx, run_th
        meta.training["run_thresholds"] = {"theta_x": run_tx, "theta_h": run_th}
        if val_s:  # the stages' validation figures are at the trained thresholds: these are at the run ones
            v = validate(model, Prepared.build(val_s, scaling), scaling, cfg.optim.loss)
            meta.training["run_thresholds"] |= {"val_r2": v["r2"], "val_sparsity": v["sparsity"]}
        _say(progress, f"controller.pt runs at Θx {run_tx * 256:g}/256, Θh {run_th * 256:g}/256 (trained at "
                       f"{trained[0] * 256:g}/256, {trained[1] * 256:g}/256)")  # fmt: skip
    final_path = save_checkpoint(final, model, meta, overwrite=True)
    fit = _fit_by_data_set(model, fit_sets, val_s, scaling, cfg.optim.loss)
    if len(fit) > 2:
        _say(progress, "fit by data set (R² " + "/".join(JOINTS) + "; the learner drives 1 − β of a DAgger round's "
                       "steps): " + ", ".join(f"{k} " + "/".join(f"{r:.2f}" for r in v["r2"].values())
                                              for k, v in fit.items()))  # fmt: skip
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
        "fit_by_data_set": fit,
        "expert": expert or "pd",
        **({"command_limits": limits.to_dict()} if limits else {}),
        **({"residual_limits": res_limits.to_dict()} if res_limits else {}),
        **({"run_thresholds": meta.training["run_thresholds"]} if "run_thresholds" in meta.training else {}),
        "provenance": provenance(),
    }
    write_json(out / "train.json", summary)
    return TrainResult(final_path, gru_path, history, exported, export_error, seconds, summary)


def _fit_by_data_set(
    model: DeltaGRU,
    sets: dict[str, tuple[list[Series], float]],
    val_s: list[Series],
    scaling: Scaling,
    loss: str,
) -> dict[str, dict[str, Any]]:
    """The final network (at its run thresholds) replayed open loop on every data set it trained on — the collected
    (or logged) training episodes, each DAgger round's — and on the validation episodes: episodes, β (the expert's
    share of the applied steps) and R² per joint."""
    out: dict[str, dict[str, Any]] = {}
    for name, (series, beta) in [*sets.items(), ("val", (val_s, 1.0))]:
        if series:
            v = validate(model, Prepared.build(series, scaling), scaling, loss)
            out[name] = {"episodes": len(series), "beta": round(beta, 6), "r2": v["r2"]}
    return out


def _meta(
    cfg: TrainConfig,
    fs: str,
    scaling: Scaling,
    dt: float,
    stage: str,
    history: list[dict[str, Any]],
    data_info: dict[str, Any],
    limits: CommandLimits,
    res_limits: ResidualLimits | None = None,
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
        target=cfg.target,
        command_limits=limits,
        residual_limits=res_limits,
    )
