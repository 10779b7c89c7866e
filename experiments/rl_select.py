"""Checkpoint selection of `legloop rl train` on held-out push trials (also `legloop rl select DIR`).

Why: the training return and push robustness part ways — in the first default run the 250 k-step checkpoint survived
~300 N pushes and the final one 0–50 N while the return kept rising. So every saved checkpoint is scored on what the
evaluation measures, on seeds it never uses (the evaluation's are 5–9): `legloop eval`'s push trials (8 trunk pushes of
one magnitude, alternating forward and backward at 1.13 s intervals from 3 s; magnitudes ``select.magnitudes`` in
increasing order until the first fall) per seed of ``select.seeds`` at each speed of ``select.speeds``, randomised,
level ground. The score is the mean largest push survived (N); ties go to the later checkpoint. The winner's policy and
statistics become the run's ``policy.zip`` / ``vecnormalize.pkl`` and its ``rl.json`` gains ``selection``:
``{"step", "score_n", "scores": {step: {"score_n", "pushes_n"}}, "baseline_pd": …, "seeds", "speeds", "wall_s"}``.
The final policy stays in ``checkpoints/step_N``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from controllers.rl_policy import META_FILE, NORM_FILE, POLICY_FILE, read_meta
from experiments.rl_config import SelectConfig
from experiments.rundir import write_json

_STEP = re.compile(r"^step_(\d+)$")


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run directory, ``(step, dir)`` by step (``rl.json`` written last: complete)."""
    found = []
    for d in (run / "checkpoints").glob("step_*"):
        m = _STEP.match(d.name)
        if m and all((d / f).is_file() for f in (POLICY_FILE, NORM_FILE, META_FILE)):
            found.append((int(m.group(1)), d))
    return sorted(found)


def push_score(checkpoint: Path | None, sel: SelectConfig, control_hz: float = 200.0) -> tuple[float, list[float]]:
    """Mean largest push survived (N) of an RL checkpoint (None: the PD alone) over the selection trials."""
    from experiments.evaluate import EvalConfig, push_trials
    from hil.spec import ControllerSpec

    spec = ControllerSpec("pd") if checkpoint is None else ControllerSpec("rl", checkpoint=str(checkpoint))
    factory = spec.factory()
    env_options = {} if control_hz == 200.0 else {"control_hz": control_hz}
    survived = []
    for speed in sel.speeds:
        cfg = EvalConfig(speed=speed, seeds=tuple(sel.seeds), push_magnitudes=tuple(sel.magnitudes),
                         env_options=env_options)  # fmt: skip
        for seed in sel.seeds:
            best, _ = push_trials(factory, seed, cfg)
            survived.append(float(best))
    return float(np.mean(survived)), survived


def select_checkpoint(
    run: str | Path,
    sel: SelectConfig,
    control_hz: float = 200.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every checkpoint of ``run``, make the best the run's policy (see the module docstring); the selection."""
    run = Path(run)
    found = checkpoints(run)
    if not found:
        raise FileNotFoundError(f"{run} has no complete checkpoints in {run / 'checkpoints'} to select from")
    t0 = time.perf_counter()
    scores: dict[str, Any] = {}
    for step, d in found:
        score, pushes = push_score(d, sel, control_hz)
        scores[str(step)] = {"score_n": round(score, 1), "pushes_n": pushes}
        if progress is not None:
            progress(f"select: step {step}: mean largest push survived {score:.0f} N {pushes}")
    baseline = None
    if sel.baseline:
        score, pushes = push_score(None, sel, control_hz)
        baseline = {"score_n": round(score, 1), "pushes_n": pushes}
        if progress is not None:
            progress(f"select: the PD alone: {score:.0f} N {pushes}")
    best_step, best_dir = max(found, key=lambda sd: (scores[str(sd[0])]["score_n"], sd[0]))
    selection = {
        "step": best_step,
        "score_n": scores[str(best_step)]["score_n"],
        "scores": scores,
        "baseline_pd": baseline,
        "seeds": list(sel.seeds),
        "speeds": list(sel.speeds),
        "magnitudes": list(sel.magnitudes),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    # The winner's files become the run's policy; rl.json last (its presence means the three files are complete).
    (run / META_FILE).unlink(missing_ok=True)
    for f in (POLICY_FILE, NORM_FILE):
        tmp = run / (f + ".tmp")
        shutil.copyfile(best_dir / f, tmp)
        tmp.replace(run / f)
    meta = read_meta(best_dir)
    training = _training_summary(run)
    if training is not None:
        meta["training"] = training
    meta["selection"] = selection
    write_json(run / META_FILE, meta)
    return selection


def _training_summary(run: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((run / "rl_train.json").read_text()))
    except (OSError, ValueError):
        return None
