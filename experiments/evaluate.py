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

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controllers.base import Controller
from controllers.pd import AmproPD
from envs.metrics import push_robustness, summarize
from envs.recorder import EpisodeRecorder
from envs.walker_env import ProstheticWalkerEnv, Push, Randomization
from hil.actuation import ActuationDelay
from hil.learned import LearnedController
from hil.pacing import Pacer
from hil.rollout import SAFE_TORQUE, Observer, rollout
from hil.runlog import SOURCE_SAFE, RunLog
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
    actuation_delay_s: float = 0.0  # torque → motor latency added to any controller (hil.actuation)
    actuation_jitter_s: float = 0.0  # + U(0, jitter) per period, seeded by the episode's seed
    realtime: bool = False  # pace the loop at the control rate on the wall clock (hil.pacing)
    log_dir: str | None = None  # write a run log per seed here (hil.runlog): DIR/seed_<seed>.npy + .json

    def actuation(self, seed: int) -> ActuationDelay | None:
        """The episode's actuation delay model (None when there is none)."""
        if self.actuation_delay_s == 0.0 and self.actuation_jitter_s == 0.0:
            return None
        a = ActuationDelay(self.actuation_delay_s, self.actuation_jitter_s, seed=0)
        a.reset(seed)
        return a

    def env_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"speed": self.speed, "slope_deg": self.slope_deg, "sensor_noise": self.sensor_noise}
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


def _runlog_observer(log: RunLog, env: ProstheticWalkerEnv, controller: Controller, shadow: AmproPD) -> Observer:
    """Per step, one row of :data:`hil.runlog.COLUMNS`: sensors, the PD's reference and law on them, the commanded
    torque and where it came from, the inference timing, and the simulation's truth (foot forces, hip position)."""
    from envs.human import PROSTHESIS, SOUND

    pd_torque = np.zeros(2)
    nan = math.nan
    data = env.data
    qpos = data.qpos
    foot_force = env.human.foot_force
    learned = controller if isinstance(controller, LearnedController) else None
    dt = env.dt

    def observe(k: int, obs: np.ndarray, torque: np.ndarray) -> None:
        qk, qkd, qa, qad, th, thd, load = obs.tolist()
        shadow.torque_on_reference(obs, pd_torque)
        tk, ta = torque.tolist()
        lat = rt = nan
        cycles = fired = nonzero = -1.0
        events = 0.0
        if torque is SAFE_TORQUE:
            source = SOURCE_SAFE
        elif learned is not None:
            source = learned.monitor.last_source
            r = learned.last_result
            if r is not None:
                if r.ok:
                    lat, cycles, fired, nonzero = r.latency_s * 1e6, r.cycles, r.fired_columns, r.nonzero_deltas
                rt, events = r.round_trip_s * 1e6, r.events
        else:
            source = 0
        stance = shadow.domain == 1
        log.append(
            (
                k * dt,  # time of the step's sensors, s
                1.0 if stance else 0.0,
                shadow.phase,
                qk,
                qkd,
                qa,
                qad,
                th,
                thd,
                load,
                shadow.knee_des,
                shadow.knee_vel_des,
                shadow.ankle_des,
                shadow.ankle_vel_des,
                pd_torque[0],
                pd_torque[1],
                tk,
                ta,
                source,
                lat,
                rt,
                cycles,
                fired,
                nonzero,
                events,
                foot_force(data, PROSTHESIS),
                foot_force(data, SOUND),
                qpos[0],
                *qpos.tolist(),
            )
        )

    return observe


def run_episode(
    factory: ControllerFactory | Callable[[ProstheticWalkerEnv], Controller],
    seed: int,
    seconds: float,
    env_kwargs: dict[str, Any],
    record: bool = True,
    stats_out: dict[str, Any] | None = None,
    observers: Sequence[Observer] = (),
    *,
    actuation: ActuationDelay | None = None,
    realtime: bool = False,
    log_base: Path | None = None,
    log_header: dict[str, Any] | None = None,
) -> tuple[bool, float, dict[str, Any] | None]:
    """Run one episode; returns (fell, seconds walked, metrics or None when not recording).

    ``stats_out``, when given, receives the controller's own counters (``episode_stats()``: sparsity, MACs per step,
    latency and deadline misses for learned controllers), how the episode ended (``ended``: completed, fell or
    aborted, with ``aborted_reason``), the safety counters (``nonfinite_obs`` / ``nonfinite_torque``) and, with
    ``realtime``, the loop's lateness. ``log_base``: write a run log there (:mod:`hil.runlog`).
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
    log = None
    if log_base is not None:
        header = {
            "seed": int(seed),
            "control_dt": env.dt,
            "physics_dt": env.physics_dt,
            "env": {
                "options": {k: repr(v) for k, v in sorted(env_kwargs.items())},
                "episode_speed": env.episode_speed,
                "episode_slope_deg": env.episode_slope_deg,
                "body_mass": env.walker.body.mass,
                "body_height": env.walker.body.height,
                "friction": env.walker.friction,
            },
            "actuation": actuation.describe() if actuation is not None else None,
            "realtime": realtime,
            "controller_name": getattr(controller, "name", type(controller).__name__),
            "mjcf": env.mjcf,
        } | dict(log_header or {})
        if isinstance(controller, LearnedController):
            header["backend"] = controller.backend.describe()
            header["delta_elements"] = controller.backend.delta_elements
            header["deadline"] = {"budget_us": controller.monitor.budget_s * 1e6, "policy": controller.policy}
        log = RunLog(log_base, steps, header)
        every.append(_runlog_observer(log, env, controller, shadow))
    pacer = Pacer(env.dt, capacity=steps) if realtime else None
    try:
        result = rollout(env, controller, obs, steps, every, actuation=actuation, pacer=pacer)
    except BaseException:
        if log is not None:
            log.close("error")
        raise
    env.close()
    stats = controller.episode_stats()
    ended = result.ended if not result.aborted else f"aborted: {result.aborted}"
    if log is not None:
        log.close(ended, {"fell": result.fell, "steps": result.steps, "stats": stats})
    if stats_out is not None:
        stats_out.update(stats)
        stats_out["ended"] = result.ended
        if result.aborted:
            stats_out["aborted_reason"] = result.aborted
        stats_out["nonfinite_obs"] = result.nonfinite_obs
        stats_out["nonfinite_torque"] = result.nonfinite_torque
        if pacer is not None:
            stats_out["realtime"] = pacer.stats()
        if log is not None:
            stats_out["run_log"] = str(log.npy)
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
        fell, _, _ = run_episode(factory, seed, duration, kw, record=False, actuation=cfg.actuation(seed))
        results.append((float(magnitude), not fell))
        if fell:
            break
    return push_robustness(results), results


def evaluate(
    factory: ControllerFactory | Callable[[ProstheticWalkerEnv], Controller],
    cfg: EvalConfig,
    pushes: bool = True,
    progress: Callable[[str], None] | None = None,
    log_header: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every seed of `cfg`; one metrics dict per episode in the `legloop eval` JSON schema.

    With ``cfg.log_dir`` each seed's episode leaves a run log (``log_header`` is added to its header); push trials
    run with the same actuation delay, unlogged and unpaced."""
    episodes = []
    for seed in cfg.seeds:
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        log_base = Path(cfg.log_dir) / f"seed_{seed}" if cfg.log_dir else None
        fell, walked, m = run_episode(
            factory,
            seed,
            cfg.seconds,
            cfg.env_kwargs(),
            stats_out=extra,
            actuation=cfg.actuation(seed),
            realtime=cfg.realtime,
            log_base=log_base,
            log_header=log_header,
        )
        assert m is not None
        ep = {"seed": int(seed), "speed": cfg.speed} | m | extra
        ep["fell"] = fell
        ep["time_to_fall_s"] = round(walked, 3) if fell else None
        if pushes and extra.get("ended") != "aborted":
            ep["max_push_survived_n"], ep["push_trials"] = push_trials(factory, seed, cfg)
        else:
            ep["max_push_survived_n"] = None
        ep["wall_s"] = round(time.perf_counter() - t0, 2)
        episodes.append(ep)
        if ep.get("ended") == "aborted":
            # The controller cannot go on (a board that stopped answering): later seeds would fail the same way.
            ep["seeds_not_run"] = [int(s) for s in cfg.seeds[len(episodes) :]]
            if progress is not None:
                progress(f"seed {seed}: ABORTED: {ep.get('aborted_reason')}")
            break
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
