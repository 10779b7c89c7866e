"""An evaluation run directory written by code other than `legloop eval` (the demo), in `legloop eval`'s layout.

``DIR/metrics.json`` ({controller, config, episodes, summary, provenance}, the keys and config entries `legloop
eval --out DIR` writes), ``DIR/runlogs/seed_<seed>.npy`` + ``.json`` (written by :func:`experiments.evaluate.evaluate`
when ``EvalConfig.log_dir`` points there) and, for a learned controller checked open loop, ``DIR/replay/metrics.json``
(what `legloop eval --replay --out DIR/replay` writes). `legloop report` reads exactly this.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from experiments.evaluate import EvalConfig, summarize_episodes
from experiments.rundir import provenance, write_json


def logged(cfg: EvalConfig, run_dir: Path) -> EvalConfig:
    """``cfg`` with its run logs going to ``run_dir/runlogs`` (stale seed logs of an earlier run removed)."""
    logs = run_dir / "runlogs"
    if logs.is_dir():
        for stale in logs.glob("seed_*.*"):
            stale.unlink()
    return dataclasses.replace(cfg, log_dir=str(logs))


def log_header(spec: Any, factory: Any) -> dict[str, Any]:
    """What `legloop eval` adds to every run log's header: the controller spec, the checkpoint, provenance."""
    return {"controller": spec.to_dict(), "checkpoint": str(factory.checkpoint_path or ""), "provenance": provenance()}


def write_eval_run(
    run_dir: Path,
    spec: Any,
    factory: Any,
    cfg: EvalConfig,
    episodes: list[dict[str, Any]],
    pushes: bool,
    replay: dict[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/metrics.json`` (and ``replay/metrics.json``) as `legloop eval` would; returns metrics.json."""
    config: dict[str, Any] = {
        "speed": cfg.speed,
        "seconds": cfg.seconds,
        "seeds": list(cfg.seeds),
        "randomize": cfg.randomize,
        "slope_deg": cfg.slope_deg,
        "pushes": pushes,
        "actuation_delay_ms": cfg.actuation_delay_s * 1e3,
        "jitter_ms": cfg.actuation_jitter_s * 1e3,
        "realtime": cfg.realtime,
        "run_logs": "runlogs" if cfg.log_dir else None,
    }
    if spec.learned:
        config["checkpoint"] = str(factory.checkpoint_path)
        config |= {"budget_us": spec.budget_s * 1e6, "deadline_policy": episodes[0].get("deadline_policy")}
    if spec.name == "edgedrnn":
        config |= {"governor": spec.governor, "clock_mhz": spec.clock_hz / 1e6}
    config["controller"] = spec.to_dict()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        run_dir / "metrics.json",
        {
            "controller": spec.display_name,
            "config": config,
            "episodes": episodes,
            "summary": summarize_episodes(episodes),
            "provenance": provenance(),
        },
    )
    if replay is not None:
        (run_dir / "replay").mkdir(exist_ok=True)
        rep = dict(replay)
        rep["config"] = {"budget_us": spec.budget_s * 1e6, "deadline_policy": spec.policy, "governor": spec.governor}
        rep["provenance"] = provenance()
        write_json(run_dir / "replay" / "metrics.json", rep)
    return run_dir / "metrics.json"
