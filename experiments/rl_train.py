"""Reinforcement learning of the residual controller with Stable-Baselines3 PPO: `legloop rl train`.

The plant is :class:`controllers.residual.ResidualPDEnv` (PD + bounded residual) under domain randomisation and
random pushes, ``n_envs`` copies in a ``DummyVecEnv`` (one process) or ``SubprocVecEnv``, behind ``VecMonitor``
(episode returns and lengths for TensorBoard) and ``VecNormalize``. The run directory:

=========================  ====================================================================================
path                       what it holds
=========================  ====================================================================================
``policy.zip``             the SB3 model: the final one, or with ``[select]`` the checkpoint held-out push
                           trials chose (:mod:`experiments.rl_select`; ``rl.json``'s ``selection`` names it)
``vecnormalize.pkl``       its ``VecNormalize`` statistics (frozen at evaluation: ``training=False``)
``rl.json``                the checkpoint's metadata (:mod:`controllers.rl_policy`): observation layout, residual
``checkpoints/step_N/``    the same three files every ``checkpoint_every`` env steps, and of the final policy
``rl_config.toml``         the config file as given (``rl_config.json``: as resolved, every default filled in)
``rl_train.json``          summary: steps, wall time, env steps/s, episodes, falls, mean return of the last ones;
                           with ``[select]``: the selected step, its score, the PD's, the selection's wall time
``tb/``                    TensorBoard logs (SB3's rollout/train scalars)
=========================  ====================================================================================

Deterministic for a seed with ``DummyVecEnv`` (or ``SubprocVecEnv``: each env is seeded ``seed + i``) on one torch
thread: SB3 seeds torch, numpy and the envs from ``seed``; the pushes come from each env's reset seed.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controllers.residual import layout_to_json, make_residual_env
from controllers.rl_policy import FORMAT, META_FILE, NORM_FILE, POLICY_FILE
from envs.files import atomic_write_text
from experiments.progress import progress_bar
from experiments.rl_config import RLConfig
from experiments.rl_select import TRAIN_SUMMARY_FILE, select_checkpoint, with_selection
from experiments.rundir import OutputExistsError, prepare_out, provenance, write_json

OUT_FILES = (POLICY_FILE, NORM_FILE, META_FILE, TRAIN_SUMMARY_FILE)


class RLTrainError(Exception):
    """A user-facing error of `legloop rl train` (e.g. an existing run directory); one clear line."""


@dataclass
class RLResult:
    out: Path
    summary: dict[str, Any]


def make_env(cfg: RLConfig, rank: int) -> Any:
    """One training env (top-level, picklable through functools.partial for ``SubprocVecEnv``)."""
    import torch

    torch.set_num_threads(1)  # a worker process runs no network; it must not spread torch threads either
    return make_residual_env(
        cfg.env.options(),
        cfg.residual.scale,
        cfg.reward.weights(),
        cfg.pushes.random_pushes(),
        max_episode_steps=cfg.env.max_episode_steps,
        max_delta=cfg.residual.max_delta_or_none,
        envelope=cfg.residual.envelope_or_none,
        torque_limit=cfg.residual.torque_limit_or_none,
        rate_limit=cfg.residual.rate_limit_or_none,
    )


def start_run_dir(cfg: RLConfig, out: str | Path, files: tuple[str, ...], force: bool, config_text: str | None) -> Path:
    """A PPO run's directory: refuses one holding any of ``files`` unless ``force`` (``OutputExistsError``; then the
    stale ``checkpoints/`` and ``tb/`` go), writes the config (as given and as resolved) and sets torch's threads."""
    import torch

    out = prepare_out(out, files, force)
    torch.set_num_threads(cfg.torch_threads)
    if force:
        for stale in ("checkpoints", "tb"):
            if (out / stale).is_dir():
                shutil.rmtree(out / stale)
    if config_text is not None:
        atomic_write_text(out / "rl_config.toml", config_text)
    write_json(out / "rl_config.json", cfg.to_dict())
    return out


def build_vec_env(cfg: RLConfig, fns: list[Callable[[], Any]], norm_obs: bool | None = None) -> Any:
    """``cfg.n_envs`` envs from ``fns`` in a ``DummyVecEnv`` or ``SubprocVecEnv``, behind ``VecMonitor`` and
    ``VecNormalize`` (``norm_obs``: None for the config's), the push curriculum at its start."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize

    venv = SubprocVecEnv(fns) if cfg.vec_env == "subproc" else DummyVecEnv(fns)
    n = cfg.normalize
    vec = VecNormalize(
        VecMonitor(venv),
        norm_obs=n.norm_obs if norm_obs is None else norm_obs,
        norm_reward=n.norm_reward,
        clip_obs=n.clip_obs,
        gamma=cfg.ppo.gamma,
    )
    vec.env_method("set_progress", 0.0)  # the push curriculum starts at its start (learn's first reset included)
    return vec


def build_ppo(cfg: RLConfig, vec: Any, out: Path, pi_arch: list[int] | None = None) -> Any:
    """SB3 PPO on ``vec`` with ``cfg.ppo``'s settings (``pi_arch``: the actor's hidden layers, None for
    ``ppo.net_arch``; the critic's are ``ppo.net_arch``), TensorBoard logs in ``out/tb``."""
    from stable_baselines3 import PPO

    p = cfg.ppo
    lr0 = p.learning_rate
    # SB3 calls a schedule with the remaining progress, 1 → 0: "linear" decays to 0 at the end of training.
    learning_rate: float | Callable[[float], float] = (lambda left: lr0 * left) if p.lr_schedule == "linear" else lr0
    pi = list(p.net_arch) if pi_arch is None else list(pi_arch)
    return PPO(
        "MlpPolicy",
        vec,
        learning_rate=learning_rate,
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=p.clip_range,
        ent_coef=p.ent_coef,
        vf_coef=p.vf_coef,
        max_grad_norm=p.max_grad_norm,
        target_kl=p.target_kl or None,
        use_sde=p.use_sde,
        sde_sample_freq=p.sde_sample_freq,
        policy_kwargs={"net_arch": {"pi": pi, "vf": list(p.net_arch)}, "log_std_init": p.log_std_init},
        tensorboard_log=str(out / "tb"),
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )


def checkpoint_meta(cfg: RLConfig, steps: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``rl.json``: what :func:`controllers.rl_policy.load_rl_checkpoint` needs, and how the policy was made."""
    import stable_baselines3
    import torch

    return {
        "format": FORMAT,
        "algo": "ppo",
        "observation": layout_to_json(),
        "residual_scale": cfg.residual.scale,
        "residual_max_delta": cfg.residual.max_delta_or_none,
        "residual_envelope": cfg.residual.envelope_or_none,
        "residual_torque_limit_nm": cfg.residual.torque_limit_or_none,
        "residual_rate_limit_nm_s": cfg.residual.rate_limit_or_none,
        "control_dt": 1.0 / cfg.env.control_hz,
        "timesteps": int(steps),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    } | (extra or {})


def save_checkpoint_dir(model: Any, vec: Any, directory: Path, meta: dict[str, Any]) -> None:
    """The three files of an RL checkpoint into ``directory`` (the JSON last: its presence means complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / POLICY_FILE)
    vec.save(str(directory / NORM_FILE))
    write_json(directory / META_FILE, meta)


def _save_rl_checkpoint(cfg: RLConfig, model: Any, vec: Any, directory: Path, steps: int) -> None:
    save_checkpoint_dir(model, vec, directory, checkpoint_meta(cfg, steps))


def training_callbacks(
    cfg: RLConfig,
    out: Path,
    progress: bool,
    stats: dict[str, Any],
    save: Callable[[Any, Any, Path, int], None] | None = None,
    desc: str = "rl train",
) -> Any:
    """SB3 callbacks of a PPO run on ``cfg``: a progress bar, ``save(model, vec_env, directory, steps)`` into
    ``out/checkpoints/step_N`` every ``checkpoint_every`` steps (default: an RL checkpoint directory), the push
    curriculum's progress, and the finished episodes and falls counted into ``stats``."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    save_at = save or functools.partial(_save_rl_checkpoint, cfg)

    class Progress(BaseCallback):
        """A tqdm bar of env steps (SB3's own needs `rich`), with the recent mean episode return and length."""

        def _on_training_start(self) -> None:
            rollout = cfg.ppo.n_steps * cfg.n_envs  # SB3 runs whole rollouts: the total rounds up to one
            total = -(-cfg.total_timesteps // rollout) * rollout
            self.bar = progress_bar(total, desc, "step", enabled=progress, interval_s=1.0)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            if buf:
                self.bar.set_postfix(ret=f"{np.mean([e['r'] for e in buf]):.0f}",
                                     len=f"{np.mean([e['l'] for e in buf]):.0f}", refresh=False)  # fmt: skip

        def _on_training_end(self) -> None:
            self.bar.close()

    class Checkpoints(BaseCallback):
        """Every ``checkpoint_every`` env steps: an evaluable checkpoint directory ``checkpoints/step_N``."""

        def __init__(self) -> None:
            super().__init__()
            self.next_at = cfg.checkpoint_every

        def _on_step(self) -> bool:
            if cfg.checkpoint_every and self.num_timesteps >= self.next_at:
                d = out / "checkpoints" / f"step_{self.num_timesteps}"
                save_at(self.model, self.training_env, d, self.num_timesteps)
                self.next_at += cfg.checkpoint_every
            return True

    class Curriculum(BaseCallback):
        """Training progress to every env at each rollout: the push curriculum's magnitudes follow it."""

        def _on_rollout_start(self) -> None:
            self.training_env.env_method("set_progress", self.num_timesteps / cfg.total_timesteps)

        def _on_step(self) -> bool:
            return True

    class Episodes(BaseCallback):
        """Counts finished episodes and falls (terminated, not truncated) for the summary."""

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done:
                    stats["episodes"] += 1
                    stats["falls"] += not info.get("TimeLimit.truncated", False)
            return True

    return CallbackList([Progress(), Checkpoints(), Curriculum(), Episodes()])


def train_rl(
    cfg: RLConfig,
    out: str | Path,
    *,
    config_text: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> RLResult:
    """Train into run directory ``out`` (see the module docstring); refuses an existing run unless ``force``."""
    try:
        out = start_run_dir(cfg, out, OUT_FILES, force, config_text)
    except OutputExistsError as exc:
        raise RLTrainError(str(exc)) from None
    import stable_baselines3

    vec = build_vec_env(cfg, [functools.partial(make_env, cfg, i) for i in range(cfg.n_envs)])
    model = build_ppo(cfg, vec, out)
    stats: dict[str, Any] = {"episodes": 0, "falls": 0}
    t0 = time.perf_counter()
    try:
        model.learn(cfg.total_timesteps, callback=training_callbacks(cfg, out, progress, stats), tb_log_name="ppo")
        wall = time.perf_counter() - t0
        steps = int(model.num_timesteps)
        recent = list(model.ep_info_buffer or ())
        returns = [float(e["r"]) for e in recent]
        lengths = [float(e["l"]) for e in recent]
        summary = {
            "timesteps": steps,
            "wall_s": round(wall, 2),
            "steps_per_s": round(steps / wall, 1),
            "n_envs": cfg.n_envs,
            "vec_env": cfg.vec_env,
            "episodes": stats["episodes"],
            "falls": stats["falls"],
            "recent_mean_return": round(float(np.mean(returns)), 2) if returns else None,
            "recent_mean_length": round(float(np.mean(lengths)), 1) if lengths else None,
            "stable_baselines3": stable_baselines3.__version__,
            "torch_threads": cfg.torch_threads,
            "provenance": provenance(),
        }
        save_checkpoint_dir(model, vec, out, checkpoint_meta(cfg, steps, {"training": summary}))
        final = out / "checkpoints" / f"step_{steps}"
        if not (final / META_FILE).is_file():  # the final policy is a candidate of the selection too
            save_checkpoint_dir(model, vec, final, checkpoint_meta(cfg, steps))
        write_json(out / TRAIN_SUMMARY_FILE, summary)
    finally:
        vec.close()
    if cfg.select.enabled:
        log = (lambda msg: print(msg, file=sys.stderr)) if progress else None
        sel = select_checkpoint(out, cfg.select, cfg.env.control_hz, progress=log)  # also updates rl_train.json
        summary = with_selection(summary, sel)
    return RLResult(out, summary)


def summary_line(summary: dict[str, Any]) -> str:
    keys = ("timesteps", "wall_s", "steps_per_s", "episodes", "falls", "selected_step", "selected_score_n",
            "selected_within_limits", "baseline_pd_score_n", "confirm_score_n", "confirm_baseline_pd_score_n",
            "confirm_sign_test_p", "total_wall_s")  # fmt: skip
    return json.dumps({k: summary[k] for k in keys if k in summary})
