"""Closed-loop evaluation: run controllers on the walker over seeds, compute gait metrics, push robustness.

One episode = one seed of the (optionally randomised) env with one controller for a fixed duration. Every episode
also runs an AMPRO PD *in shadow* on the same sensor stream, so tracking errors of any controller are measured
against the PD's desired trajectory. Push robustness runs separate episodes of the same seed with a series of short
trunk pushes of growing magnitude at different gait phases, and reports the largest magnitude survived.

Learned controllers (``gru``, ``deltagru`` on the CPU kernel, ``edgedrnn`` on the EdgeDRNN model) run from a
checkpoint; their episodes carry the controller's own counters too (``sparsity``, ``macs_per_step`` and, for
edgedrnn, ``latency_us`` {mean, p50, p99, max}, ``deadline_misses``, ``governor_actions``).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controllers.base import Controller, DampedPassive, ZeroTorque
from controllers.pd import AmproPD
from envs.metrics import push_robustness, summarize
from envs.recorder import EpisodeRecorder
from envs.walker_env import ProstheticWalkerEnv, Push, Randomization
from experiments.rundir import learned_checkpoint

ControllerFactory = Callable[[ProstheticWalkerEnv], Controller]

# Eval keeps the speed fixed (it is the condition under test) and randomises the rest.
EVAL_RANDOMIZATION = Randomization(speed_delta=0.0)


LEARNED_CONTROLLERS = ("gru", "deltagru", "edgedrnn")
BUILTIN_CONTROLLERS = ("pd", "zero", "damped")


def controller_factory(
    name: str,
    gain_scale: float = 1.0,
    *,
    checkpoint: str | os.PathLike | None = None,
    feature_set: str | None = None,
    budget_s: float = 21e-6,
    deadline_policy: str = "hold",
    governor: bool = False,
) -> ControllerFactory:
    """Factory for a controller; it is called after each reset with the episode's (randomised) env.

    Built-in: ``pd`` (with ``gain_scale``), ``zero``, ``damped``. Learned (need ``checkpoint``): ``gru`` (the
    checkpoint run with Θ = 0), ``deltagru`` (with its thresholds), both on the CPU kernel, and ``edgedrnn`` (the
    checkpoint exported to the EdgeDRNN model with a latency budget, deadline policy and optional threshold
    governor). The checkpoint is loaded (and for edgedrnn exported) once, here, so a bad one fails before any
    episode runs: ``CheckpointError`` (corrupt, or not of ``feature_set``), ``ExportError`` (does not fit EdgeDRNN).
    """
    if name in LEARNED_CONTROLLERS:
        return _learned_factory(name, checkpoint, feature_set, budget_s, deadline_policy, governor)
    if checkpoint is not None:
        raise ValueError(
            f"controller {name!r} takes no checkpoint; learned controllers are: {', '.join(LEARNED_CONTROLLERS)}"
        )
    if name == "pd":

        def make(env: ProstheticWalkerEnv) -> Controller:
            pd = AmproPD(env.dt, walker=env.walker)
            if gain_scale != 1.0:
                pd = AmproPD(env.dt, params=pd.p.scaled_gains(gain_scale), walker=env.walker)
            return pd

        return make
    if name == "zero":
        return lambda env: ZeroTorque()
    if name == "damped":
        return lambda env: DampedPassive()
    raise ValueError(
        f"unknown controller {name!r}; built-in controllers are: {', '.join(BUILTIN_CONTROLLERS)}; "
        f"learned (with a checkpoint): {', '.join(LEARNED_CONTROLLERS)}"
    )


def _learned_factory(
    name: str,
    checkpoint: str | os.PathLike | None,
    feature_set: str | None,
    budget_s: float,
    deadline_policy: str,
    governor: bool,
) -> ControllerFactory:
    # Imported here: the built-in controllers need neither torch nor the EdgeDRNN model.
    from controllers.checkpoint import load_checkpoint
    from controllers.learned import LearnedController

    if checkpoint is None:
        raise ValueError(f"controller {name!r} needs a checkpoint")
    checkpoint = learned_checkpoint(name, checkpoint)
    model, meta = load_checkpoint(checkpoint, feature_set=feature_set)

    def check_rate(env: ProstheticWalkerEnv) -> None:
        if abs(env.dt - meta.control_dt) > 1e-9:
            warnings.warn(
                f"{checkpoint} was trained at a {meta.control_dt * 1e3:g} ms control period; the env runs at "
                f"{env.dt * 1e3:g} ms, so the network sees different dynamics than it learned",
                stacklevel=3,
            )

    if name == "edgedrnn":
        from firmware_bridge.export import bundle_from_model
        from hil.deadline import check_policy
        from hil.edgedrnn_controller import EdgeDRNNController

        check_policy(deadline_policy)
        bundle = bundle_from_model(model, meta, source=str(checkpoint))

        def make_edgedrnn(env: ProstheticWalkerEnv) -> Controller:
            check_rate(env)
            return EdgeDRNNController(
                bundle,
                env.dt,
                meta.feature_set,
                budget_s=budget_s,
                policy=deadline_policy,
                governor=governor,
                walker=env.walker,
            )

        return make_edgedrnn

    def make_learned(env: ProstheticWalkerEnv) -> Controller:
        check_rate(env)
        return LearnedController(model, meta, dt=env.dt, use_thresholds=name == "deltagru", walker=env.walker)

    return make_learned


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


def run_episode(
    factory: ControllerFactory,
    seed: int,
    seconds: float,
    env_kwargs: dict[str, Any],
    record: bool = True,
    stats_out: dict[str, Any] | None = None,
) -> tuple[bool, float, dict[str, Any] | None]:
    """Run one episode; returns (fell, seconds walked, metrics or None when not recording).

    ``stats_out``, when given, receives the controller's own counters (``episode_stats()`` of learned controllers:
    sparsity, MACs per step, and for edgedrnn latency and deadline misses).
    """
    env = ProstheticWalkerEnv(**env_kwargs)
    obs, _ = env.reset(seed=seed)
    controller = factory(env)
    controller.reset()
    shadow = controller if isinstance(controller, AmproPD) else AmproPD(env.dt, walker=env.walker)
    shadow.reset()
    steps = round(seconds / env.dt)
    recorder = EpisodeRecorder(env, steps) if record else None
    peak = env.peak_torque
    fell = False
    action = np.zeros(2)
    for _ in range(steps):
        torque = controller.act(obs)
        if shadow is not controller:
            shadow.update_reference(obs)
        if recorder is not None:
            recorder.record(obs, shadow.knee_des, shadow.ankle_des)
        np.divide(torque, peak, out=action)
        obs, _, terminated, _, _ = env.step(action)
        if terminated:
            fell = True
            break
    walked = env.time
    env.close()
    if stats_out is not None and hasattr(controller, "episode_stats"):
        stats_out.update(controller.episode_stats())
    metrics = summarize(recorder.signals(fell)) if recorder is not None else None
    return fell, walked, metrics


def push_trials(factory: ControllerFactory, seed: int, cfg: EvalConfig) -> tuple[float, list[tuple[float, bool]]]:
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
    factory: ControllerFactory,
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
