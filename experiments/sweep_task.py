"""The one task function of `legloop sweep`: :func:`run_task` trains or evaluates one task in the calling process
and leaves its run directory — ``metrics.json`` when it finished, ``error.json`` (exception and traceback) when it
raised. The local process pool and Ray run this same function; it reads and writes nothing outside its directory
except the checkpoint of the training task it needs (``DIR/tasks/<train-id>/``).

An evaluation task is one episode of ``legloop eval``: a :class:`hil.spec.ControllerSpec` and
:func:`experiments.evaluate.evaluate` with one seed (or, with ``replay``, :func:`experiments.replay.replay_log`), so
a sweep and ``legloop eval`` give the same numbers for the same parameters. Its key metrics are flattened into
:data:`METRICS` (every key present, None where it does not apply), so sweep.json is one typed table.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import time
import traceback
from pathlib import Path
from typing import Any

from envs.files import atomic_write_text
from experiments.sweep_config import LEARNED, Task, spec_kwargs

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.json"
RUN_LOGS = "runlogs"

# name → (JSON type, unit, meaning). Closed loop, open-loop replay and training fill the keys that apply to them.
METRICS: dict[str, tuple[str, str, str]] = {
    "fell": ("bool", "", "the walker fell"),
    "time_to_fall_s": ("float", "s", "when it fell (null: it did not)"),
    "walked_s": ("float", "s", "simulated time walked"),
    "distance_m": ("float", "m", "hip displacement"),
    "strides": ("int", "", "complete prosthetic strides"),
    "stride_time_cv": ("float", "", "stride-time coefficient of variation"),
    "step_time_asymmetry": ("float", "", "step-time symmetry index, prosthetic vs sound"),
    "knee_rmse_rad": ("float", "rad", "knee tracking RMSE against the PD's desired trajectory"),
    "ankle_rmse_rad": ("float", "rad", "ankle tracking RMSE against the PD's desired trajectory"),
    "knee_rmse_ratio": ("float", "", "knee RMSE / the baseline controller's on the same scenario and seed"),
    "floquet_max": ("float", "", "max Floquet multiplier (null: < 30 strides)"),
    "mos_min_m": ("float", "m", "minimum margin of stability at heel strike"),
    "prosthesis_peak_load_bw": ("float", "BW", "median per-stride peak prosthesis load / body weight"),
    "max_push_survived_n": ("float", "N", "largest trunk push survived (push_trials)"),
    "episode_speed": ("float", "m/s", "the episode's speed after randomisation"),
    "episode_slope_deg": ("float", "deg", "the episode's slope after randomisation"),
    "sparsity": ("float", "", "fraction of zero Δx, Δh entries (learned controllers)"),
    "macs_per_step": ("float", "MAC", "multiply-accumulates per step"),
    "dense_macs_per_step": ("int", "MAC", "multiply-accumulates of a dense step"),
    "latency_mean_us": ("float", "µs", "inference latency per step, mean (CPU: measured; EdgeDRNN: modelled)"),
    "latency_p50_us": ("float", "µs", "inference latency, median"),
    "latency_p99_us": ("float", "µs", "inference latency, 99th percentile"),
    "latency_max_us": ("float", "µs", "inference latency, maximum"),
    "latency_source": ("str", "", "measured (CPU wall time) or modelled (EdgeDRNN cycle model)"),
    "deadline_policy": ("str", "", "what a step over budget does"),
    "deadline_misses": ("int", "", "steps over the latency budget"),
    "deadline_steps": ("int", "", "steps the budget was checked on"),
    "miss_fraction": ("float", "", "deadline_misses / deadline_steps"),
    "r2_knee": ("float", "", "open-loop replay: knee torque R² against the PD"),
    "r2_ankle": ("float", "", "open-loop replay: ankle torque R² against the PD"),
    "nrmse_knee": ("float", "", "open-loop replay: knee torque RMSE / logged range"),
    "nrmse_ankle": ("float", "", "open-loop replay: ankle torque RMSE / logged range"),
    "ended": ("str", "", "completed | fell | aborted (closed loop)"),
    "train_s": ("float", "s", "training wall time, all stages and data collection"),
    "val_r2_knee": ("float", "", "training: held-out validation knee torque R²"),
    "val_r2_ankle": ("float", "", "training: held-out validation ankle torque R²"),
    "val_sparsity": ("float", "", "training: validation temporal sparsity of the final delta-GRU"),
    "wall_s": ("float", "s", "wall time of the task"),
}


def _finite(v: Any) -> Any:
    """JSON-safe: non-finite floats → None, recursively."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def read_record(task_dir: Path) -> dict[str, Any] | None:
    """The finished record of a task directory (a complete metrics.json with status done), else None."""
    try:
        rec = json.loads((task_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("status") != "done" or not isinstance(rec.get("metrics"), dict):
        return None
    return rec


def apply_link_faults(spec: Any, faults: str) -> Any:
    """The controller spec to run: ``spec`` itself for ``faults == ""``; otherwise (``edgedrnn`` only) the same export
    as controller ``board`` on the emulated board, with the link faults of
    :func:`hil.board_backend.link_from_text` (counted per episode in the task's ``detail.link``)."""
    if not faults:
        return spec
    from hil.board_backend import link_from_text

    link = link_from_text(faults)
    return spec.with_options(name="board", governor=False, board=link, label=spec.label or spec.name)


# ------------------------------------------------------------------------------------------------------ running
def run_task(task: Task, task_dir: str, sweep_dir: str) -> dict[str, Any]:
    """Run ``task``, leaving ``task_dir``/metrics.json (or error.json); returns the record written.

    An exception of the task is recorded, not raised; ``KeyboardInterrupt`` (Ctrl-C, a cancelled Ray task) is
    raised and leaves no record (the task runs again next time)."""
    out = Path(task_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    t0 = time.perf_counter()
    base: dict[str, Any] = {
        "task": task.id,
        "kind": task.kind,
        "params": task.params,
        "needs": task.needs,
        "host": platform.node(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    }
    try:
        if task.kind == "train":
            detail, metrics = _train(task, out)
        else:
            detail, metrics = _evaluate(task, out, Path(sweep_dir))
    except Exception as exc:
        rec = base | {
            "status": "failed",
            "wall_s": round(time.perf_counter() - t0, 3),
            "error": {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()},
        }
        write_json_atomic(out / ERROR_FILE, rec)
        return rec
    from experiments.rundir import provenance

    metrics["wall_s"] = round(time.perf_counter() - t0, 3)
    rec = base | {
        "status": "done",
        "wall_s": metrics["wall_s"],
        "metrics": {k: metrics.get(k) for k in METRICS} if task.kind == "eval" else metrics,
        "detail": detail,
        "provenance": provenance(),
    }
    write_json_atomic(out / METRICS_FILE, rec)
    (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier failure of this task is history now
    return rec


class _Worker:
    stop: Any = None  # the pool's stop event (set on Ctrl-C)


def pool_worker_init(stop: Any = None) -> None:
    """Initializer of a local pool's worker: one thread per library (the pool has a process per core), and Ctrl-C
    reaches a worker only while it runs a task (:func:`pool_task`), so an idle worker does not die noisily.
    ``stop``: an event the driver sets on Ctrl-C; a task that has not started then does not."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _Worker.stop = stop


def pool_task(task: Task, task_dir: str, sweep_dir: str) -> dict[str, Any]:
    """:func:`run_task` in a pool worker, interruptible by Ctrl-C while it runs."""
    if _Worker.stop is not None and _Worker.stop.is_set():
        raise KeyboardInterrupt("the sweep was interrupted before this task started")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_task(task, task_dir, sweep_dir)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def warm_worker(seconds: float = 0.2) -> int:
    """Import what an evaluation task needs and run a short PD episode (numba caches loaded); returns the pid."""
    from experiments.evaluate import EvalConfig, evaluate
    from hil.spec import ControllerSpec

    with ControllerSpec("pd").factory() as factory:
        evaluate(factory, EvalConfig(seconds=seconds, seeds=(0,)), pushes=False)
    time.sleep(0.2)  # hold this worker a moment, so the next warm-up call goes to another one
    return os.getpid()


# ------------------------------------------------------------------------------------------------------ kinds
def _train(task: Task, out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    from experiments.train import run_training
    from experiments.train_config import config_from_dict

    torch.set_num_threads(1)  # a process per core
    assert task.train is not None
    cfg = config_from_dict(task.train)
    res = run_training(cfg, out, force=True, progress=False)
    s = res.summary
    last = s["stages"][-1] if s["stages"] else {}
    r2 = last.get("val_r2") or {}
    metrics: dict[str, Any] = {
        "train_s": s["seconds"],
        "val_r2_knee": r2.get("knee"),
        "val_r2_ankle": r2.get("ankle"),
        "val_sparsity": last.get("val_sparsity"),
        "macs_per_step": last.get("val_macs_per_step"),
        "dense_macs_per_step": last.get("dense_macs_per_step"),
        "hidden_size": cfg.model.hidden_size,
        "num_layers": cfg.model.num_layers,
    }
    for st in s["stages"]:
        metrics[f"stage_{st['name']}_s"] = round(st["seconds"] + st.get("collect_seconds", 0.0), 2)
    if "pd" in s["collect_seconds"]:
        metrics["stage_pd_data_s"] = s["collect_seconds"]["pd"]
    detail = {"controller": str(res.controller), "gru": str(res.gru) if res.gru else None, "train": s}
    return detail, metrics


def checkpoint_of(task: Task, sweep_dir: Path) -> str | None:
    """The checkpoint an eval task runs: its own, or the run directory of the training task it needs."""
    if task.needs is not None:
        return str(sweep_dir / "tasks" / task.needs)
    return task.params["checkpoint"]


def eval_config(params: dict[str, Any], log_dir: Path | None = None) -> Any:
    """The :class:`experiments.evaluate.EvalConfig` of a task's scenario and run parameters."""
    from envs.walker_env import Push, Randomization
    from experiments.evaluate import EVAL_RANDOMIZATION, EvalConfig

    options: dict[str, Any] = {"sensor_noise": params["sensor_noise"]}
    if params["randomize"]:
        # Speed conditions keep the evaluation randomisation (slopes ±5°); random_slope = false fixes the slope.
        options["randomization"] = (
            EVAL_RANDOMIZATION if params["random_slope"] else Randomization(speed_delta=0.0, slope_deg=0.0)
        )
    cfg = EvalConfig(
        speed=params["speed"],
        seconds=params["seconds"],
        seeds=(params["seed"],),
        randomize=params["randomize"],
        slope_deg=params["slope_deg"],
        sensor_noise=params["sensor_noise"] > 0,
        env_options=options,
        actuation_delay_s=params["actuation_delay_ms"] * 1e-3,
        actuation_jitter_s=params["jitter_ms"] * 1e-3,
        log_dir=str(log_dir) if log_dir is not None else None,
    )
    if params["push_n"] > 0:
        f = params["push_n"]
        options["pushes"] = tuple(
            Push(cfg.push_start_s + i * cfg.push_interval_s, f if i % 2 == 0 else -f, cfg.push_duration_s)
            for i in range(cfg.push_count)
        )
    return cfg


def _episode_conditions(cfg: Any, seed: int) -> dict[str, Any]:
    """The episode's speed and slope after randomisation (the env's reset draws them from the seed)."""
    from envs.walker_env import ProstheticWalkerEnv

    env = ProstheticWalkerEnv(**cfg.env_kwargs())
    env.reset(seed=seed)
    out = {"episode_speed": env.episode_speed, "episode_slope_deg": env.episode_slope_deg}
    env.close()
    return out


def _latency(stats: dict[str, Any], m: dict[str, Any]) -> None:
    lat = stats.get("latency_us")
    if isinstance(lat, dict):
        for k in ("mean", "p50", "p99", "max"):
            m[f"latency_{k}_us"] = lat.get(k)
    for k in ("sparsity", "macs_per_step", "dense_macs_per_step", "latency_source", "deadline_policy"):
        m[k] = stats.get(k)
    misses, steps = stats.get("deadline_misses"), stats.get("deadline_steps")
    m["deadline_misses"], m["deadline_steps"] = misses, steps
    m["miss_fraction"] = misses / steps if misses is not None and steps else None


def _evaluate(task: Task, out: Path, sweep_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from hil.spec import ControllerSpec

    p = task.params
    ckpt = checkpoint_of(task, sweep_dir)
    spec = apply_link_faults(ControllerSpec(**spec_kwargs(p, ckpt)), p["link_faults"])
    if p["replay"] is not None:
        return _replay(spec, p, out)
    from experiments.evaluate import evaluate
    from experiments.rundir import provenance

    cfg = eval_config(p, out / RUN_LOGS if p["run_logs"] else None)
    with spec.factory() as factory:
        header = {"controller": spec.to_dict(), "checkpoint": str(factory.checkpoint_path or ""),
                  "provenance": provenance(), "sweep_task": task.id}  # fmt: skip
        (ep,) = evaluate(factory, cfg, pushes=p["push_trials"], log_header=header)
    m: dict[str, Any] = {k: ep.get(k) for k in METRICS if k in ep}
    m["walked_s"] = ep["time_to_fall_s"] if ep["fell"] else p["seconds"]
    m |= _episode_conditions(cfg, p["seed"])
    if spec.learned:
        _latency(ep, m)
    detail = {"controller": spec.to_dict(), "checkpoint": str(factory.checkpoint_path or ""), "episode": ep}
    return detail, m


def _replay(spec: Any, p: dict[str, Any], out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open loop: a recorded log, or (``replay = "pd"``) a fresh PD walk of the task's scenario and seed."""
    from experiments.replay import replay_log

    if spec.name not in LEARNED:
        raise ValueError(f"replay needs a learned controller, not {spec.name!r}")
    log = p["replay"]
    if log == "pd":
        from experiments.ampro_log import write_csv
        from experiments.collect import EpisodeTask, collect_episode

        cfg = eval_config(p)
        options = cfg.env_kwargs()
        speed = options.pop("speed")
        walk = EpisodeTask(0, p["seed"], speed, p["seconds"], randomize=p["randomize"], env_options=options)
        _, columns, _ = collect_episode(walk)
        log = str(write_csv(out / "pd_walk.csv", columns, overwrite=True))
    metrics, _, _ = replay_log(
        spec.name,
        spec.checkpoint,
        log,
        feature_set=spec.feature_set,
        budget_s=spec.budget_s,
        policy=spec.policy,
        governor=spec.governor,
        theta_x=spec.theta_x,
        theta_h=spec.theta_h,
    )
    joints = metrics["joints"]
    m: dict[str, Any] = {
        "r2_knee": joints["knee"]["r2"],
        "r2_ankle": joints["ankle"]["r2"],
        "nrmse_knee": joints["knee"]["nrmse"],
        "nrmse_ankle": joints["ankle"]["nrmse"],
    }
    _latency(metrics, m)
    detail = {k: v for k, v in metrics.items() if k != "latency_histogram"} | {"log": log}
    return detail, m
