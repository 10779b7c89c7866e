"""Closed-loop evaluation: run controllers on the walker over seeds, compute gait metrics, push robustness.

One episode = one seed of the (optionally randomised) env with one controller for a fixed duration. Every episode
also runs an AMPRO PD *in shadow* on the same sensor stream, so tracking errors of any controller are measured
against the PD's desired trajectory. Push robustness runs separate episodes of the same seed with a series of short
trunk pushes of growing magnitude at different gait phases, and reports the largest magnitude survived.

Controllers come from a :class:`hil.spec.ControllerSpec` (its factory builds one per episode) and every episode is
one :func:`hil.rollout.rollout`. Learned controllers (``gru``, ``deltagru`` on the CPU kernel, ``edgedrnn`` on the
EdgeDRNN model) carry their own counters into the episode (``sparsity``, ``macs_per_step``, ``latency_us`` {mean,
p50, p99, p99_9, max}, the budget, the deadline policy and what it did: see :meth:`hil.learned.LearnedController.
episode_stats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controllers.base import Controller
from controllers.pd import AmproPD
from envs.metrics import push_robustness, summarize
from envs.recorder import EpisodeRecorder
from envs.walker_env import ProstheticWalkerEnv, Push, Randomization
from hil.rollout import Observer, rollout
from hil.spec import ControllerFactory

# Eval keeps the speed fixed (it is the condition under test) and randomises the rest.
EVAL_RANDOMIZATION = Randomization(speed_delta=0.0)


@dataclass
class EvalConfig:
    """What `legloop eval` runs."""

    speed: float = 1.0
    seconds: float = 60.0
    seeds: Sequence[int] = (0, 1, 2)
    randomize: bool = True
    slope_deg: float = 0.0
    sensor_noise: bool = True
    push_magnitudes: Sequence[float] = (50, 100, 150, 200, 250, 300, 400, 500)
    push_count: int = 8
    push_start_s: float = 3.0
    push_interval_s: float = 1.13  # not a multiple of the stride time: the pushes land at different gait phases
    push_duration_s: float = 0.1
    env_options: dict[str, Any] = field(default_factory=dict)

    def env_kwargs(self) -> dict[str, Any]:
        kw = {"speed": self.speed, "slope_deg": self.slope_deg, "sensor_noise": self.sensor_noise}
        if self.randomize:
            kw["randomization"] = EVAL_RANDOMIZATION
        return kw | dict(self.env_options)


def _shadow_observer(controller: Controller, shadow: AmproPD, recorder: EpisodeRecorder | None) -> Observer | None:
    """Per step: advance the shadow PD's reference on the sensors the controller saw, and record the step."""
    if shadow is controller:
        if recorder is None:
            return None
        return lambda k, obs, torque: recorder.record(obs, shadow.knee_des, shadow.ankle_des)

    def observe(k: int, obs: np.ndarray, torque: np.ndarray) -> None:
        shadow.update_reference(obs)
        if recorder is not None:
            recorder.record(obs, shadow.knee_des, shadow.ankle_des)

    return observe


def run_episode(
    factory: ControllerFactory | Callable[[ProstheticWalkerEnv], Controller],
    seed: int,
    seconds: float,
    env_kwargs: dict[str, Any],
    record: bool = True,
    stats_out: dict[str, Any] | None = None,
    observers: Sequence[Observer] = (),
) -> tuple[bool, float, dict[str, Any] | None]:
    """Run one episode; returns (fell, seconds walked, metrics or None when not recording).

    ``stats_out``, when given, receives the controller's own counters (``episode_stats()``: sparsity, MACs per step,
    latency and deadline misses for learned controllers) and how the episode ended (``ended``: completed, fell or
    aborted, with ``aborted_reason``; the safety counters ``nonfinite_obs`` / ``nonfinite_torque``).
    """
    env = ProstheticWalkerEnv(**env_kwargs)
    obs, _ = env.reset(seed=seed)
    controller = factory(env)
    controller.reset()
    shadow = controller if isinstance(controller, AmproPD) else AmproPD(env.dt, walker=env.walker)
    shadow.reset()
    steps = round(seconds / env.dt)
    recorder = EpisodeRecorder(env, steps) if record else None
    shadow_obs = _shadow_observer(controller, shadow, recorder)
    every = ([shadow_obs] if shadow_obs is not None else []) + list(observers)
    result = rollout(env, controller, obs, steps, every)
    env.close()
    if stats_out is not None:
        stats_out.update(controller.episode_stats())
        stats_out["ended"] = result.ended
        if result.aborted:
            stats_out["aborted_reason"] = result.aborted
        stats_out["nonfinite_obs"] = result.nonfinite_obs
        stats_out["nonfinite_torque"] = result.nonfinite_torque
    metrics = summarize(recorder.signals(result.fell)) if recorder is not None else None
    return result.fell, result.sim_time_s, metrics


def push_trials(
    factory: ControllerFactory | Callable[[ProstheticWalkerEnv], Controller], seed: int, cfg: EvalConfig
) -> tuple[float, list[tuple[float, bool]]]:
    """Largest push magnitude (N) survived, trying magnitudes in increasing order until the first fall."""
    results: list[tuple[float, bool]] = []
    duration = cfg.push_start_s + cfg.push_count * cfg.push_interval_s + 2.0
    for magnitude in cfg.push_magnitudes:
        # Alternate forward and backward pushes: both directions at several phases.
        pushes = tuple(
            Push(cfg.push_start_s + i * cfg.push_interval_s, magnitude * (1 if i % 2 == 0 else -1), cfg.push_duration_s)
            for i in range(cfg.push_count)
        )
        kw = cfg.env_kwargs() | {"pushes": pushes}
        fell, _, _ = run_episode(factory, seed, duration, kw, record=False)
        results.append((float(magnitude), not fell))
        if fell:
            break
    return push_robustness(results), results


def evaluate(
    factory: ControllerFactory | Callable[[ProstheticWalkerEnv], Controller],
    cfg: EvalConfig,
    pushes: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every seed of `cfg`; one metrics dict per episode in the `legloop eval` JSON schema."""
    episodes = []
    for seed in cfg.seeds:
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        fell, walked, m = run_episode(factory, seed, cfg.seconds, cfg.env_kwargs(), stats_out=extra)
        assert m is not None
        ep = {"seed": int(seed), "speed": cfg.speed} | m | extra
        ep["fell"] = fell
        ep["time_to_fall_s"] = round(walked, 3) if fell else None
        if pushes:
            ep["max_push_survived_n"], ep["push_trials"] = push_trials(factory, seed, cfg)
        else:
            ep["max_push_survived_n"] = None
        ep["wall_s"] = round(time.perf_counter() - t0, 2)
        episodes.append(ep)
        if progress is not None:
            progress(
                f"seed {seed}: {f'FELL at {walked:.1f} s' if fell else f'walked {walked:.0f} s'}, "
                f"{ep['distance_m']:.1f} m, {ep['wall_s']:.1f} s wall"
            )
    return episodes


def summarize_episodes(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Across-episode summary: fall count and the mean of every numeric metric (None when all are None)."""
    skip = ("seed", "push_trials", "fell")
    # Structured and text entries (latency_us, deadline_policy, …) have no mean; they are summarised below.
    keys = [k for k, v in episodes[0].items() if k not in skip and not isinstance(v, (dict, str))] if episodes else []
    out: dict[str, Any] = {"episodes": len(episodes), "falls": sum(bool(e["fell"]) for e in episodes)}
    for k in keys:
        vals = [e[k] for e in episodes if isinstance(e.get(k), (int, float)) and not isinstance(e.get(k), bool)]
        out[f"mean_{k}"] = float(np.mean(vals)) if vals else None
    lat = [e["latency_us"] for e in episodes if isinstance(e.get("latency_us"), dict)]
    if lat:
        out["mean_latency_us"] = float(np.mean([v["mean"] for v in lat]))
        out["mean_latency_p99_us"] = float(np.mean([v["p99"] for v in lat]))
        out["max_latency_us"] = float(max(v["max"] for v in lat))
        out["deadline_misses"] = int(sum(e.get("deadline_misses", 0) for e in episodes))
    return out
