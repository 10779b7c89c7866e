"""Checkpoint selection of `legloop rl train` on held-out push trials (also `legloop rl select DIR`).

Why: the training return and push robustness part ways — in the first default run the 250 k-step checkpoint survived
~300 N pushes and the final one 0–50 N while the return kept rising. So every saved checkpoint is scored on what the
evaluation measures, on seeds it never uses (the evaluation's are 5–9): `legloop eval`'s push trials (8 trunk pushes of
one magnitude, alternating forward and backward at 1.13 s intervals from 3 s; magnitudes ``select.magnitudes`` in
increasing order until the first fall) per seed of ``select.seeds`` at each speed of ``select.speeds``, randomised,
level ground. The score is the mean largest push survived (N).

Push robustness alone is not the goal: the controller must also walk like the PD where nothing pushes it. So each
checkpoint, and the PD, also walk ``select.walk_seconds`` unpushed on the same seeds under each walk condition
(``select.walk_conditions``, [speed m/s, slope °]; default: each of ``select.speeds`` on level ground), randomised; a
checkpoint is *within limits* when, on every condition, its mean knee and ankle tracking RMSE over the seeds is at
most ``max_tracking_ratio`` × the PD's on the same walks and its peak |torque| and |torque rate| per joint at most
``max_torque_ratio`` / ``max_rate_ratio`` × the PD's (issue #16's bars, which its evaluation checks per condition:
1.25, 1, 1). The winner is the best score within limits (ties: the later checkpoint); when no checkpoint is within
limits, the best score, with ``within_limits: false`` (and said on the progress line).

With ``select.residual_scales`` (factors of the trained residual bound, e.g. ``[1.0, 0.8]``) every checkpoint is
also tried with its residual scaled down at deployment — a candidate per checkpoint and factor, keyed ``"STEPxF"``
in ``scores`` — and a winning factor below 1 is written into the run's ``rl.json`` (``residual_scale``): less of a
policy's correction can keep most of its push robustness and track closer to the PD (docs/rl.md, sixth round).

The winner's policy and statistics become the run's ``policy.zip`` / ``vecnormalize.pkl`` and its ``rl.json`` gains
``selection``: ``{"step", "residual_scale_factor", "score_n", "within_limits", "scores": {key: {"score_n",
"pushes_n", "limits"}}, "baseline_pd": …, "pd_walks": …, "seeds", "speeds", "wall_s"}``. The final policy stays in
``checkpoints/step_N``.

With ``select.torque_limit_nm`` / ``select.rate_limit_nm_s`` every candidate runs under the tighter of its trained
hard limits and these (limits at deployment, as the residual scale), and the winner's ``rl.json`` keeps them.

``select.push_outside_limits = false`` walks every candidate first and runs push trials only for those within the
limits (for all, if none is): the same winner and the same scores for those within, for the trials of the others
(outside candidates keep ``score_n`` None) — with #16's five walk conditions the walks and the push trials take
about as long, and most candidates of a run fall outside.

With ``select.confirm_seeds`` the winner and the PD run the push trials and walks again on those seeds, which chose
nothing: the best of many candidates' noisy scores is biased up (the tenth round of docs/rl.md: a winner at 1.12×
the PD on its ten selection seeds walked the evaluation at 1.00×), the confirmation is not. ``selection["confirm"]``
holds both scores, the paired split (larger / smaller / same push than the PD's on the same speed and seed), its
two-sided sign test p and the limits on those seeds; it reports and does not change the winner.

``select.workers`` processes (default 2, the development machine's cores) score the candidates side by side, one
candidate's trials per process, so the scores and the winner are those of one process: with #16's five walk
conditions and three residual scales (31 candidates and the PD) the selection is most of a run's wall time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import re
import shutil
import time
from collections.abc import Callable, Generator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from controllers.rl_policy import META_FILE, NORM_FILE, POLICY_FILE, read_meta
from experiments.rl_config import SelectConfig
from experiments.rundir import write_json
from experiments.sign_test import paired_split, sign_test_p

TRAIN_SUMMARY_FILE = "rl_train.json"  # the training summary experiments/rl_train.py writes; a selection updates it
SCALED_DIR = "select_scaled"  # a selection's deployment copies of the checkpoints, in the run directory while it runs

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


class _Peaks:
    """A run observer: peak |torque| and |torque rate| per joint over an episode (N·m, N·m/s)."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.torque = np.zeros(2)
        self.rate = np.zeros(2)
        self._prev = np.zeros(2)
        self._first = True
        self._buf = np.zeros(2)  # per-step scratch: the loop allocates nothing

    def new_episode(self) -> None:
        """No rate across two episodes: the next step only sets the previous torque."""
        self._first = True

    def __call__(self, k: int, obs: np.ndarray, torque: np.ndarray) -> None:
        b = self._buf
        np.abs(torque, out=b)
        np.maximum(self.torque, b, out=self.torque)
        if not self._first:
            np.subtract(torque, self._prev, out=b)
            np.abs(b, out=b)
            b /= self.dt
            np.maximum(self.rate, b, out=self.rate)
        self._first = False
        self._prev[:] = torque


def walks(checkpoint: Path | None, sel: SelectConfig, control_hz: float = 200.0) -> dict[str, Any]:
    """Unpushed walks of ``sel.walk_seconds`` per seed under each walk condition (randomised) of an RL checkpoint
    (None: the PD alone). Per condition ``[speed m/s, slope °]``: the knee and ankle tracking RMSE of each seed's walk
    (rad, against the PD's reference) and the peak |torque| (N·m) and |torque rate| (N·m/s) per joint [knee, ankle]
    over its walks."""
    from experiments.evaluate import EvalConfig, run_episode
    from hil.spec import ControllerSpec

    spec = ControllerSpec("pd") if checkpoint is None else ControllerSpec("rl", checkpoint=str(checkpoint))
    factory = spec.factory()
    env_options = {} if control_hz == 200.0 else {"control_hz": control_hz}
    conditions = sel.conditions()
    knee: list[list[float]] = []
    ankle: list[list[float]] = []
    torque, rate, falls = [], [], 0
    for speed, slope in conditions:
        kw = EvalConfig(speed=speed, slope_deg=slope, env_options=env_options).env_kwargs()
        peaks = _Peaks(1.0 / control_hz)
        knee.append([])
        ankle.append([])
        for seed in sel.seeds:
            peaks.new_episode()
            fell, _, m = run_episode(factory, seed, sel.walk_seconds, kw, observers=[peaks])
            assert m is not None
            knee[-1].append(round(float(m["knee_rmse_rad"]), 4))
            ankle[-1].append(round(float(m["ankle_rmse_rad"]), 4))
            falls += bool(fell)
        torque.append(peaks.torque.round(1).tolist())
        rate.append(peaks.rate.round(0).tolist())
    return {
        "conditions": [list(c) for c in conditions],
        "knee_rmse": knee,
        "ankle_rmse": ankle,
        "falls": falls,
        "peak_torque_nm": torque,
        "peak_rate_nm_s": rate,
    }


# One unit of a selection's work: (checkpoint or None for the PD, run its push trials?, run its walks?).
_Job = tuple[Path | None, bool, bool]
_Result = tuple[tuple[float, list[float]] | None, dict[str, Any] | None]


def _candidate(d: Path | None, sel: SelectConfig, control_hz: float, push: bool, walk: bool) -> _Result:
    """A candidate's push score and walks (``d`` None: the PD's), whichever are asked for: one process's job."""
    return (push_score(d, sel, control_hz) if push else None, walks(d, sel, control_hz) if walk else None)


def _results(jobs: list[_Job], sel: SelectConfig, control_hz: float) -> Generator[_Result, None, None]:
    """The jobs' results in the jobs' order, run by ``sel.workers`` processes (1: here, one after another)."""
    if sel.workers == 1 or len(jobs) == 1:
        for d, push, walk in jobs:
            yield _candidate(d, sel, control_hz, push, walk)
        return
    ctx = multiprocessing.get_context("spawn")  # safe with torch/MuJoCo threads in the parent (the trainer)
    with ProcessPoolExecutor(max_workers=min(sel.workers, len(jobs)), mp_context=ctx) as pool:
        futures = [pool.submit(_candidate, d, sel, control_hz, push, walk) for d, push, walk in jobs]
        try:
            for f in futures:
                yield f.result()
        finally:  # an error, or the caller stopped early: drop what has not started
            for f in futures:
                f.cancel()


def limits(walk: dict[str, Any], pd: dict[str, Any], sel: SelectConfig) -> dict[str, Any]:
    """A checkpoint's walks against the PD's: per condition the ratios, the worst of them, and whether that is
    within ``sel``'s limits."""
    # Per condition the mean RMSE over its seeds against the PD's on the same walks: one walk's ratio swings with its
    # seed (the PD's knee RMSE ranged 0.05–0.13 rad over six 20-s walks), the mean is what "tracks like the PD"
    # means; per condition, as the evaluation checks it (a pooled mean hid a 1.30× knee at 1.0 m/s: docs/rl.md).
    knee = np.mean(walk["knee_rmse"], axis=1) / np.mean(pd["knee_rmse"], axis=1)
    ankle = np.mean(walk["ankle_rmse"], axis=1) / np.mean(pd["ankle_rmse"], axis=1)
    torque = (np.asarray(walk["peak_torque_nm"]) / np.asarray(pd["peak_torque_nm"])).max(axis=0)  # worst, per joint
    rate = (np.asarray(walk["peak_rate_nm_s"]) / np.asarray(pd["peak_rate_nm_s"])).max(axis=0)
    within = (
        walk["falls"] == 0
        and max(knee.max(), ankle.max()) <= sel.max_tracking_ratio
        and torque.max() <= sel.max_torque_ratio
        and rate.max() <= sel.max_rate_ratio
    )
    return {
        "within": bool(within),
        "falls": walk["falls"],
        "knee_ratio": round(float(knee.max()), 3),
        "ankle_ratio": round(float(ankle.max()), 3),
        "knee_ratios": [round(float(x), 3) for x in knee],
        "ankle_ratios": [round(float(x), 3) for x in ankle],
        "torque_ratio": [round(float(x), 3) for x in torque],
        "rate_ratio": [round(float(x), 3) for x in rate],
    }


def _limits_text(lim: dict[str, Any]) -> str:
    t, r = lim["torque_ratio"], lim["rate_ratio"]
    return (f"{'within' if lim['within'] else 'OUTSIDE'} limits (worst condition): tracking knee "
            f"{lim['knee_ratio']:.2f}×, ankle {lim['ankle_ratio']:.2f}× the PD; peak torque {t[0]:.2f}/{t[1]:.2f}×, "
            f"rate {r[0]:.2f}/{r[1]:.2f}×"
            + (f", {lim['falls']} falls" if lim["falls"] else ""))  # fmt: skip


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
    say = progress if progress is not None else (lambda _: None)
    scores: dict[str, Any] = {}
    scratch = run / SCALED_DIR  # the candidates' deployment copies (residual scale, limits), removed at the end
    candidates: list[tuple[str, int, float, Path]] = []
    for step, d in found:
        for factor in sel.residual_scales:
            copy = d if factor == 1.0 and not sel.deploys_limits else _deployment_copy(d, factor, scratch, sel)
            candidates.append((_key(step, factor), step, factor, copy))
    walk = sel.walk_seconds > 0
    walks_first = walk and not sel.push_outside_limits
    # In the order they are reported: the PD's walks (every candidate's reference), the candidates, the PD's pushes.
    # Walks first: every candidate's walks, then the pushes of those within the limits (of all, if none is).
    jobs: list[_Job] = [(d, not walks_first, walk) for _, _, _, d in candidates]
    if walk:
        jobs.insert(0, (None, False, True))
    if sel.baseline and not walks_first:
        jobs.append((None, True, False))
    baseline = pd_walks = None
    with contextlib.closing(_results(jobs, sel, control_hz)) as results:
        if walk:
            pd_walks = next(results)[1]
            assert pd_walks is not None
            conds = ", ".join(f"{v:g} m/s {s:+g}°" for v, s in pd_walks["conditions"])
            say(f"select: the PD's walks ({sel.walk_seconds:g} s × {len(sel.seeds)} seeds on {conds}): peak torque "
                f"{pd_walks['peak_torque_nm']} N·m, rate {pd_walks['peak_rate_nm_s']} N·m/s per condition")  # fmt: skip
        for key, step, factor, _ in candidates:
            pushed, walked = next(results)
            entry: dict[str, Any] = {"score_n": None, "pushes_n": None, "limits": None}
            line = f"select: step {step}{_scaled(factor)}: "
            if pushed is not None:
                entry["score_n"], entry["pushes_n"] = round(pushed[0], 1), pushed[1]
                line += f"mean largest push survived {pushed[0]:.0f} N {pushed[1]}; "
            if pd_walks is not None and walked is not None:
                entry["walks"] = walked
                entry["limits"] = limits(walked, pd_walks, sel)
                line += _limits_text(entry["limits"])
            scores[key] = entry
            say(line.removesuffix("; "))
        if sel.baseline and not walks_first:
            baseline = _baseline(next(results), say)
    if walks_first:
        inside = [c for c in candidates if scores[c[0]]["limits"]["within"]]
        pushing = inside or candidates
        say(f"select: push trials for the {len(inside)} of {len(candidates)} candidates within the limits" if inside
            else f"select: push trials for all {len(candidates)} candidates (none is within the limits)")  # fmt: skip
        jobs = [(d, True, False) for _, _, _, d in pushing] + ([(None, True, False)] if sel.baseline else [])
        with contextlib.closing(_results(jobs, sel, control_hz)) as results:
            for key, step, factor, _ in pushing:
                pushed, _ = next(results)
                assert pushed is not None
                scores[key]["score_n"], scores[key]["pushes_n"] = round(pushed[0], 1), pushed[1]
                say(f"select: step {step}{_scaled(factor)}: mean largest push survived {pushed[0]:.0f} N {pushed[1]}")
            if sel.baseline:
                baseline = _baseline(next(results), say)

    def within(key: str) -> bool:
        lim = scores[key]["limits"]
        return lim is None or bool(lim["within"])

    # Best: within the limits, then the push score, then the later checkpoint, then the larger residual (a candidate
    # without push trials is outside the limits while another is within: it cannot win).
    best_key, best_step, best_f, best_dir = max(
        candidates, key=lambda c: (within(c[0]), scores[c[0]]["score_n"] or 0.0, c[1], c[2])
    )
    if not within(best_key):
        say(f"select: no checkpoint is within the limits; step {best_key} has the best push score")
    confirmed = _confirm(best_dir, sel, control_hz, say) if sel.confirm_seeds else None
    selection = {
        "step": best_step,
        "residual_scale_factor": best_f,
        "score_n": scores[best_key]["score_n"],
        "within_limits": within(best_key),
        "scores": scores,
        "baseline_pd": baseline,
        "pd_walks": pd_walks,
        "seeds": list(sel.seeds),
        "speeds": list(sel.speeds),
        "walk_conditions": [list(c) for c in sel.conditions()],
        "push_outside_limits": sel.push_outside_limits,
        "residual_scales": list(sel.residual_scales),
        "deploy_limits": {"torque_nm": list(sel.torque_limit_nm), "rate_nm_s": list(sel.rate_limit_nm_s)},
        "magnitudes": list(sel.magnitudes),
        "limits": {
            k: getattr(sel, k) for k in ("walk_seconds", "max_tracking_ratio", "max_torque_ratio", "max_rate_ratio")
        },
        "confirm": confirmed,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    # The winner's files become the run's policy; rl.json last (its presence means the three files are complete).
    (run / META_FILE).unlink(missing_ok=True)
    for f in (POLICY_FILE, NORM_FILE):
        tmp = run / (f + ".tmp")
        shutil.copyfile(best_dir / f, tmp)
        tmp.replace(run / f)
    meta = read_meta(best_dir)  # a scaled copy's holds the scaled residual_scale
    if scratch.exists():
        shutil.rmtree(scratch)
    training = _training_summary(run)
    if training is not None:  # a selection run again (`legloop rl select`) must not leave the old winner in it
        training = with_selection(training, selection)
        write_json(run / TRAIN_SUMMARY_FILE, training)
        meta["training"] = training
    meta["selection"] = selection
    write_json(run / META_FILE, meta)
    return selection


def _confirm(best: Path, sel: SelectConfig, control_hz: float, say: Callable[[str], None]) -> dict[str, Any]:
    """The winner and the PD on ``sel.confirm_seeds``, which chose nothing: push trials (paired per speed and seed)
    and, with walks, the limits — an unbiased look at a winner picked as the best of many noisy scores."""
    csel = dataclasses.replace(sel, seeds=list(sel.confirm_seeds))
    walk = sel.walk_seconds > 0
    results = list(_results([(best, True, walk), (None, True, walk)], csel, control_hz))
    (mine, my_walks), (pd, pd_walks) = results
    assert mine is not None and pd is not None
    larger, smaller, same = paired_split(mine[1], pd[1])
    p = sign_test_p(larger, smaller)
    lim = limits(my_walks, pd_walks, sel) if my_walks is not None and pd_walks is not None else None
    say(f"select: confirmed on seeds {_seeds_text(csel.seeds)} (chose nothing): mean largest push survived "
        f"{mine[0]:.0f} N, the PD alone {pd[0]:.0f} N; a larger push than the PD's in {larger}, a smaller in "
        f"{smaller}, the same in {same} (sign test, two-sided: p = {p:.2g})"
        + ("; " + _limits_text(lim) if lim is not None else ""))  # fmt: skip
    return {
        "seeds": list(csel.seeds),
        "score_n": round(mine[0], 1),
        "pushes_n": mine[1],
        "baseline_pd": {"score_n": round(pd[0], 1), "pushes_n": pd[1]},
        "larger": larger,
        "smaller": smaller,
        "same": same,
        "sign_test_p": float(f"{p:.3g}"),
        "limits": lim,
        "walks": my_walks,
        "pd_walks": pd_walks,
    }


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _scaled(factor: float) -> str:
    return "" if factor == 1.0 else f" (residual ×{factor:g})"


def _baseline(result: _Result, say: Callable[[str], None]) -> dict[str, Any]:
    pushed = result[0]
    assert pushed is not None
    say(f"select: the PD alone: {pushed[0]:.0f} N {pushed[1]}")
    return {"score_n": round(pushed[0], 1), "pushes_n": pushed[1]}


def _key(step: int, factor: float) -> str:
    return str(step) if factor == 1.0 else f"{step}x{factor:g}"


def _deployment_copy(d: Path, factor: float, scratch: Path, sel: SelectConfig) -> Path:
    """A copy of checkpoint ``d`` whose residual bound is ``factor`` × its own and whose command limits are the
    tighter of its own and ``sel``'s deployment limits (policy and statistics as they are)."""
    out = scratch / f"{d.name}_x{factor:g}"
    out.mkdir(parents=True, exist_ok=True)
    for f in (POLICY_FILE, NORM_FILE):
        shutil.copyfile(d / f, out / f)
    meta = read_meta(d)
    meta["residual_scale"] = round(float(meta["residual_scale"]) * factor, 6)
    for key, deploy in (
        ("residual_torque_limit_nm", sel.torque_limit_nm),
        ("residual_rate_limit_nm_s", sel.rate_limit_nm_s),
    ):
        meta[key] = tighter_limits(meta.get(key), deploy)
    meta.pop("selection", None)
    write_json(out / META_FILE, meta)
    return out


def tighter_limits(trained: list[float | None] | None, deploy: list[float]) -> list[float | None] | None:
    """Per joint the tighter of a checkpoint's limits (``rl.json``'s form: None for none) and deployment limits
    (0: none), in ``rl.json``'s form."""
    own = list(trained) if trained is not None else [None, None]
    out: list[float | None] = []
    for t, v in zip(own, deploy, strict=True):
        given = [float(x) for x in (t, v) if x]
        out.append(min(given) if given else None)
    return None if out == [None, None] else out


def with_selection(summary: dict[str, Any], selection: dict[str, Any]) -> dict[str, Any]:
    """A training summary (``rl_train.json``) with the outcome of ``selection``: the ``selected_*`` keys, the PD's
    score, the selection's wall time and ``total_wall_s`` (training + this selection), s."""
    out = dict(summary)
    out["selected_step"] = selection["step"]
    out["selected_score_n"] = selection["score_n"]
    out["selected_within_limits"] = selection["within_limits"]
    out["baseline_pd_score_n"] = (selection["baseline_pd"] or {}).get("score_n")
    confirmed = selection.get("confirm")
    if confirmed:
        out["confirm_score_n"] = confirmed["score_n"]
        out["confirm_baseline_pd_score_n"] = confirmed["baseline_pd"]["score_n"]
        out["confirm_sign_test_p"] = confirmed["sign_test_p"]
        out["confirm_within_limits"] = None if confirmed["limits"] is None else confirmed["limits"]["within"]
    out["select_wall_s"] = selection["wall_s"]
    if "wall_s" in out:
        out["total_wall_s"] = round(out["wall_s"] + selection["wall_s"], 1)
    return out


def _training_summary(run: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((run / TRAIN_SUMMARY_FILE).read_text()))
    except (OSError, ValueError):
        return None
