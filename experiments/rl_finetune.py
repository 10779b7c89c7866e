"""Closed-loop fine-tuning of a distilled student's output layer with PPO: `legloop rl finetune`.

Imitation fits the student to its expert's labels; the bar it is judged by is closed-loop (push survival within the
tracking and torque bars). This tunes the deployed network for that directly, where it can stay the same network:
its GRU frozen — thresholds, sparsity and the accelerator's work unchanged — and its Linear output layer trained as a
linear policy on the last layer's hidden state (:mod:`controllers.student_head`), starting from the imitation's
weights. PPO with ``pi = []`` (the actor is that one layer; under QAT fake-quantised to Q1.7 as the checkpoint runs),
a critic of ``ppo.net_arch``, rewards, pushes and randomisation from an RL config (`legloop rl train`'s), no
observation normalisation (the layer sees h as deployed), the reward normalised. The first ``warmup_steps`` train the
critic alone: a fresh critic's advantages are noise, and the policy starts from a controller that walks.

The run directory:

=========================  ====================================================================================
path                       what it holds
=========================  ====================================================================================
``controller.pt`` (+json)  the student with the trained output layer: `legloop eval --controller deltagru |
                           edgedrnn --checkpoint DIR`; its metadata's ``training.finetune`` says how it was made
``checkpoints/step_N/``    the same every ``checkpoint_every`` env steps
``finetune.json``          summary: student, steps, wall time, env steps/s, episodes, falls, how far the layer moved
``rl_config.toml``         the config file as given (``rl_config.json``: as resolved)
``tb/``                    TensorBoard logs
=========================  ====================================================================================

The reward's ``residual`` term weighs the squared action of the expert's residual env (the correction over
``residual.scale`` × the motor peak); the head env's action is the correction over the motor peak, so the weight is
divided by ``residual.scale``² — the same penalty per N·m. ``[residual]``'s other keys and ``[select]`` do not
apply: the student's own limits (its checkpoint's ``command_limits``) do.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from controllers.checkpoint import CheckpointMeta, learned_checkpoint, save_checkpoint
from controllers.deltagru import DeltaGRU
from controllers.quant import fake_quant_q17
from controllers.residual import RewardWeights
from controllers.student_head import StudentError, StudentHeadEnv, load_student, make_student_head_env
from experiments.rl_config import RLConfig
from experiments.rl_train import build_ppo, build_vec_env, start_run_dir, training_callbacks
from experiments.rundir import OutputExistsError, provenance, write_json

SUMMARY_FILE = "finetune.json"
OUT_FILES = ("controller.pt", "controller.json", SUMMARY_FILE)
DEFAULT_WARMUP_STEPS = 20_480


class FinetuneError(Exception):
    """A user-facing error of `legloop rl finetune` (e.g. a checkpoint that is not a student); one clear line."""


@dataclass
class FinetuneResult:
    out: Path
    summary: dict[str, Any]


class QuantHead(nn.Linear):
    """The actor's output layer as a QAT student runs it: Q1.7 weights and bias, straight-through gradients."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, fake_quant_q17(self.weight), fake_quant_q17(self.bias))


def head_weights(cfg: RLConfig) -> RewardWeights:
    """The config's reward weights, the ``residual`` term rescaled to the head env's action (module docstring)."""
    w = cfg.reward.weights()
    return dataclasses.replace(w, residual=w.residual / cfg.residual.scale**2)


def make_head_env(student: str, cfg: RLConfig, rank: int) -> StudentHeadEnv:
    """One training env (top level, picklable through functools.partial for ``SubprocVecEnv``)."""
    torch.set_num_threads(1)
    return make_student_head_env(
        student, cfg.env.options(), head_weights(cfg), cfg.pushes.random_pushes(), cfg.env.max_episode_steps
    )


def student_with_head(model: DeltaGRU, head: nn.Linear) -> DeltaGRU:
    """A copy of ``model`` whose output layer holds ``head``'s (shadow) weights, clamped to the Q1.7 range under QAT
    (what the fake quantisation saturates at anyway)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        w, b = head.weight.detach().clone(), head.bias.detach().clone()
        if model.qat:
            w.clamp_(-1.0, 1.0)
            b.clamp_(-1.0, 1.0)
        out.fc.weight.copy_(w)
        out.fc.bias.copy_(b)
    return out


def _save_student(model: DeltaGRU, meta: CheckpointMeta, info: dict[str, Any], path: Path, head: nn.Linear) -> None:
    m = copy.deepcopy(meta)
    m.training = dict(meta.training) | {"finetune": info}
    m.weights_sha256 = ""
    m.created = ""
    save_checkpoint(path, student_with_head(model, head), m, overwrite=True)


def head_change(before: DeltaGRU, after: DeltaGRU) -> dict[str, Any]:
    """How far the output layer moved: max |Δ| and relative Frobenius norm of W, the effective (quantised) weights
    that differ."""
    with torch.no_grad():
        w0, b0 = (t.detach().clone() for t in before.output_params())
        w1, b1 = (t.detach().clone() for t in after.output_params())
        dw = (w1 - w0).abs()
        return {
            "max_abs_weight_change": round(float(dw.max()), 6),
            "relative_weight_change": round(float((w1 - w0).norm() / w0.norm().clamp_min(1e-12)), 6),
            "max_abs_bias_change": round(float((b1 - b0).abs().max()), 6),
            "effective_weights_changed": int((w1 != w0).sum()) + int((b1 != b0).sum()),
            "weights": int(w0.numel() + b0.numel()),
        }


def finetune_student(
    student: str | Path,
    cfg: RLConfig,
    out: str | Path,
    *,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    config_text: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``student``'s output layer in closed loop into run directory ``out`` (module docstring); refuses an
    existing run unless ``force``, and a checkpoint that is not a ``pd_residual`` student."""
    if warmup_steps < 0:
        raise FinetuneError(f"--warmup-steps must be >= 0 (critic-only env steps), got {warmup_steps}")
    try:
        ckpt = learned_checkpoint("deltagru", student)
        model, meta = load_student(ckpt)
    except (StudentError, ValueError) as exc:  # CheckpointError is a ValueError
        raise FinetuneError(str(exc)) from None
    try:
        out = start_run_dir(cfg, out, OUT_FILES, force, config_text)
    except OutputExistsError as exc:
        raise FinetuneError(str(exc)) from None
    import stable_baselines3

    vec = build_vec_env(
        cfg, [functools.partial(make_head_env, str(ckpt), cfg, i) for i in range(cfg.n_envs)], norm_obs=False
    )
    ppo = build_ppo(cfg, vec, out, pi_arch=[])
    head: nn.Linear = ppo.policy.action_net
    with torch.no_grad():
        head.weight.copy_(model.fc.weight)
        head.bias.copy_(model.fc.bias)
    if model.qat:
        head.__class__ = QuantHead  # the same parameters (the optimiser holds them), the forward the student runs
    frozen = [*head.parameters(), ppo.policy.log_std]
    origin = {
        "student": str(ckpt.resolve()),
        "student_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        "warmup_steps": int(warmup_steps),
        "seed": cfg.seed,
    }

    def save(m: Any, venv: Any, directory: Path, steps: int) -> None:
        _save_student(model, meta, origin | {"timesteps": int(steps)}, directory / "controller.pt", head)

    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    class Warmup(BaseCallback):
        """The actor (the output layer and its exploration) frozen until ``warmup_steps``: the critic learns first."""

        def _on_training_start(self) -> None:
            for p in frozen:
                p.requires_grad_(warmup_steps == 0)

        def _on_rollout_end(self) -> None:  # before the update of this rollout
            if self.num_timesteps >= warmup_steps:
                for p in frozen:
                    p.requires_grad_(True)

        def _on_step(self) -> bool:
            return True

    stats: dict[str, Any] = {"episodes": 0, "falls": 0}
    callbacks = CallbackList([Warmup(), training_callbacks(cfg, out, progress, stats, save=save, desc="rl finetune")])
    t0 = time.perf_counter()
    try:
        ppo.learn(cfg.total_timesteps, callback=callbacks, tb_log_name="ppo")
    finally:
        vec.close()
    wall = time.perf_counter() - t0
    steps = int(ppo.num_timesteps)
    recent = list(ppo.ep_info_buffer or ())
    returns = [float(e["r"]) for e in recent]
    tuned = student_with_head(model, head)
    summary = origin | {
        "timesteps": steps,
        "wall_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 1),
        "n_envs": cfg.n_envs,
        "episodes": stats["episodes"],
        "falls": stats["falls"],
        "recent_mean_return": round(float(np.mean(returns)), 2) if returns else None,
        "head": head_change(model, tuned),
        "stable_baselines3": stable_baselines3.__version__,
        "provenance": provenance(),
    }
    _save_student(model, meta, {k: v for k, v in summary.items() if k != "provenance"}, out / "controller.pt", head)
    write_json(out / SUMMARY_FILE, summary)
    return FinetuneResult(out, summary)


def summary_line(summary: dict[str, Any]) -> str:
    h = summary["head"]
    return (
        f"fine-tuned {summary['timesteps']:,} steps in {summary['wall_s']:.0f} s ({summary['steps_per_s']:.0f} env "
        f"steps/s; the first {summary['warmup_steps']:,} the critic alone); {summary['falls']}/{summary['episodes']} "
        f"training episodes fell; output layer: {h['effective_weights_changed']}/{h['weights']} effective weights "
        f"changed, max |dW| {h['max_abs_weight_change']:.4f}, |dW|/|W| {h['relative_weight_change']:.3f}"
    )


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print(summary_line(summary) + f"; wrote {out}", file=sys.stdout)
