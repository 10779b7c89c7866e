"""Data collection: randomised walking episodes with the AMPRO PD as expert, in parallel processes, into a data set.

Every episode runs the PD at every step: it labels the step (``torque_pd_*``, domain, phase, desired trajectory).
Without a driver the PD's torque is also the applied torque (behavioural-cloning data). With a
:class:`DriverSpec` a learned controller runs too, and each step applies the PD's torque with probability β and the
learner's otherwise (DAgger with β-mixing: the learner visits its own states and the PD, run in shadow on that very
trajectory, labels them). Episodes that fall end early and are kept, marked ``fell``.

With an ``expert`` (the run directory of ``legloop rl train``) the labels are that RL controller's torques instead of
the PD's (distillation: ``legloop train --expert rl:DIR``); the reference columns (domain, phase, desired trajectory)
are still the PD's — the RL controller's own PD, which runs inside it on the same sensors. A ``correction_scale``
range perturbs such an expert's own episodes (DART-style: the expert drives with its correction over the PD scaled by
a factor drawn per episode, and labels, from the history that was applied, the clean torque that would recover), so
the data holds the states a student's smaller or larger correction leads to without a learner in the loop.

Determinism: episode i uses env seed ``seed0 + i``, speed ``speeds[i % len(speeds)]`` and a β-mixing generator
seeded from the same seed; every episode is computed in one process from its arguments alone, and the parent writes
the files, so the same arguments give byte-identical episode files whatever the number of workers.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from controllers.base import Controller
from controllers.pd import AmproPD
from controllers.residual import RandomPushes
from envs.walker_env import HeelStrikePusher
from experiments.ampro_log import ANKLE_CONTROL_FACTOR, KNEE_CONTROL_FACTOR
from experiments.dataset import (
    EPISODE_COLUMNS,
    EPISODES_DIR,
    MANIFEST,
    dataset_exists,
    write_episode,
    write_manifest,
)
from experiments.evaluate import EVAL_RANDOMIZATION
from experiments.progress import progress_bar
from experiments.rundir import OutputExistsError, provenance
from hil.rollout import rollout
from hil.spec import ControllerSpec

if TYPE_CHECKING:
    from controllers.rl_policy import RLController

# Salt of the β-mixing generator: decorrelates it from the env's generator, which gymnasium seeds with the same seed.
_MIX_SALT = 0xDA66E7
# Salt of the correction-scale draw (one factor per episode), likewise.
_SCALE_SALT = 0x5CA1E


@dataclass(frozen=True)
class DriverSpec:
    """A learned controller that drives the plant (DAgger): the checkpoint path, loaded inside the worker as a
    ``deltagru`` (or, with `use_thresholds` False, ``gru``: Θ = 0) :class:`hil.spec.ControllerSpec` on the episode's
    env."""

    checkpoint: str
    use_thresholds: bool = True


@dataclass(frozen=True)
class EpisodeTask:
    """Everything one episode depends on (picklable: it crosses to a worker process)."""

    index: int
    seed: int
    speed: float
    seconds: float
    randomize: bool = True
    sensor_noise: bool = True
    driver: DriverSpec | None = None
    beta: float = 1.0
    stage: str = "pd"
    env_options: dict[str, Any] = field(default_factory=dict)
    expert: str | None = None  # an RL checkpoint directory whose torques label the data (None: the PD's)
    pusher: HeelStrikePusher | None = None  # pushes at heel strikes (RandomPushes.heel_strike), else env_options'
    # An RL expert takes the learner's applied torque as its own history when the learner drove (its previous action,
    # an input of its policy, and its rate limit): DaggerConfig.expert_follows
    expert_follows: bool = False
    # The expert's correction over its PD is applied scaled by this (1: as commanded); labels stay the expert's. An
    # RL expert then always follows the applied torque (collect's correction_scale)
    correction_scale: float = 1.0

    @property
    def name(self) -> str:
        return f"ep_{self.index:05d}"


def _env_kwargs(task: EpisodeTask) -> dict[str, Any]:
    # As experiments.evaluate.EvalConfig: speed fixed (the condition), the rest randomised; sensor noise on.
    kw: dict[str, Any] = {"speed": task.speed, "slope_deg": 0.0, "sensor_noise": task.sensor_noise}
    if task.randomize:
        kw["randomization"] = EVAL_RANDOMIZATION
    return kw | dict(task.env_options)


def _episode_pushes(pushes: RandomPushes | None, seed: int) -> tuple[dict[str, Any], HeelStrikePusher | None]:
    """One episode's pushes, drawn from its own seeded generator: the env option of time-scheduled ones (none: no
    option) and a heel-strike pusher (or None)."""
    if pushes is None:
        return {}, None
    drawn, pusher = pushes.draw_episode(np.random.default_rng([seed, 0x9E5]))
    return ({"pushes": drawn} if drawn else {}), pusher


def load_driver(spec: DriverSpec, env: Any) -> Controller:
    """The learner of a DAgger episode on this episode's env (torch and numba load only when a learner drives)."""
    name = "deltagru" if spec.use_thresholds else "gru"
    # The episode's (randomised) body: the learner's AMPRO reference must match the PD that labels the data.
    return ControllerSpec(name, checkpoint=spec.checkpoint).factory()(env)


def load_expert(checkpoint: str, env: Any, pd: AmproPD) -> RLController:
    """The RL controller of ``checkpoint`` on this episode's env, around ``pd`` (whose reference it then updates).

    The checkpoint is loaded once per process (a worker collects many episodes)."""
    from controllers.rl_policy import RLController

    return RLController(_rl_checkpoint(checkpoint), pd, env.peak_torque, name="expert")


@functools.cache
def _rl_checkpoint(checkpoint: str) -> Any:
    from controllers.rl_policy import load_rl_checkpoint

    return load_rl_checkpoint(checkpoint)


class DaggerMix:
    """The controller of a collection episode: the expert (the PD, or an RL controller around it) labels every step;
    the applied torque is the expert's (β-mixing coin heads, or no learner) or the learner's, saturated at the motor
    peaks as the env will apply it.

    The learner runs every step (a recurrent learner must see the whole sensor stream); a non-finite learner torque
    is an error of the learner under training, raised with the episode's seed and step.

    ``follow``: after a step the learner drove, the expert (an RL controller, whose policy sees its own previous
    action) is told what was applied before it labels the next step (:meth:`ResidualCore.follow`). Without it a
    stateful expert labels the learner's states from a history of its own commands that never reached the motors,
    which the learner cannot see.

    ``scale`` (≠ 1): where the expert drives, the applied torque is its PD's plus ``scale`` × the expert's correction
    over it (saturated at the peaks); the label stays the expert's own torque, and the expert follows what was
    applied (``follow`` is then required).
    """

    name = "dagger"

    def __init__(self, pd: AmproPD, learner: Controller | None, use_pd: np.ndarray | None, task: EpisodeTask,
                 peak: np.ndarray, expert: Controller | None = None, follow: bool = False,
                 scale: float = 1.0) -> None:  # fmt: skip
        self.pd, self.learner, self.use_pd, self.task = pd, learner, use_pd, task
        self.expert: Controller = expert if expert is not None else pd
        self.peak_k, self.peak_a = float(peak[0]), float(peak[1])
        self.applied = np.zeros(2)
        self.k = 0
        if follow and not hasattr(self.expert, "follow"):
            raise ValueError("expert_follows needs an RL expert (the PD keeps no history of its commands)")
        if scale != 1.0 and not follow:
            raise ValueError("a correction scale ≠ 1 needs an RL expert that follows the applied torque (follow=True)")
        self.follow = follow
        self.scale = float(scale)
        self._overridden = False  # the last step applied something other than the expert's torque

    def reset(self) -> None:
        self.expert.reset()  # an RL expert resets the PD inside it
        self.pd.reset()
        if self.learner is not None:
            self.learner.reset()
        self.k = 0
        self._overridden = False

    def act(self, obs: np.ndarray) -> np.ndarray:
        k = self.k
        self.k = k + 1
        if self._overridden:  # after the last step's label was recorded, before this step's
            self.expert.follow(self.applied)  # type: ignore[attr-defined]
            self._overridden = False
        pd_out = self.expert.act(obs)
        if self.learner is None:
            return self._expert_drives(pd_out)
        out = self.learner.act(obs)
        assert self.use_pd is not None
        if self.use_pd[k]:
            return self._expert_drives(pd_out)
        tk, ta = float(out[0]), float(out[1])
        if not (math.isfinite(tk) and math.isfinite(ta)):
            assert self.task.driver is not None
            raise ValueError(
                f"learned controller {self.task.driver.checkpoint} returned a non-finite torque "
                f"[{tk}, {ta}] at step {k} of seed {self.task.seed}"
            )
        return self._apply(tk, ta, self.follow)

    def _expert_drives(self, torque: np.ndarray) -> np.ndarray:
        s = self.scale
        if s == 1.0:
            return torque
        ppk, ppa = self.pd.last_torque.tolist()  # the PD inside the expert, this step
        return self._apply(ppk + s * (float(torque[0]) - ppk), ppa + s * (float(torque[1]) - ppa), True)

    def _apply(self, tk: float, ta: float, follow: bool) -> np.ndarray:
        """Apply [tk, ta] N·m instead of the expert's torque, saturated at the motor peaks as the env will; with
        ``follow`` the expert takes it as its history before the next step."""
        pk, pa = self.peak_k, self.peak_a
        self.applied[0] = -pk if tk < -pk else (pk if tk > pk else tk)
        self.applied[1] = -pa if ta < -pa else (pa if ta > pa else ta)
        self._overridden = follow
        return self.applied

    def episode_stats(self) -> dict[str, Any]:
        return {}


def collect_episode(task: EpisodeTask) -> tuple[int, dict[str, np.ndarray], dict[str, Any]]:
    """Simulate one episode; returns (index, columns of :data:`EPISODE_COLUMNS`, manifest metadata).

    Top-level and argument-only, so it runs the same in this process or in a spawned worker.
    """
    from envs.walker_env import ProstheticWalkerEnv

    env = ProstheticWalkerEnv(**_env_kwargs(task))
    obs, _ = env.reset(seed=task.seed)
    dt = env.dt
    pd = AmproPD(dt, walker=env.walker)
    rl_expert = load_expert(task.expert, env, pd) if task.expert is not None else None
    expert: Controller = rl_expert if rl_expert is not None else pd
    learner = load_driver(task.driver, env) if task.driver is not None else None
    steps = max(1, round(task.seconds / dt))
    # β-mixing coins for the whole episode, drawn up front: the learner's choices cannot shift the stream.
    use_pd = np.random.default_rng([task.seed, _MIX_SALT]).random(steps) < task.beta if learner is not None else None
    scaled = task.correction_scale != 1.0
    follow = scaled or (task.expert_follows and learner is not None)
    mix = DaggerMix(pd, learner, use_pd, task, env.peak_torque, expert, follow, task.correction_scale)
    labels = rl_expert.last_torque if rl_expert is not None else pd.last_torque  # the expert's torque, N·m
    mix.reset()
    buf = np.zeros((steps, len(EPISODE_COLUMNS)))  # rows = steps, one row written per step with a single call

    prior = pd.last_torque  # the PD's own torque (inside an RL expert: its prior), N·m

    def record(k: int, obs: np.ndarray, torque: np.ndarray) -> None:
        tpk, tpa = labels.tolist()
        ppk, ppa = prior.tolist()
        tk, ta = torque.tolist()
        qk, qkd, qa, qad, th, thd, load = obs.tolist()
        stance = pd.domain == 1
        t_dom = pd.t_domain
        # Order must match EPISODE_COLUMNS (checked once below).
        buf[k] = (
            1.0 if stance else 0.0,  # ishumanswing
            0.0 if stance else 1.0,  # domainindex
            pd.phase,  # tau
            t_dom if stance else 0.0,  # time_stance
            0.0 if stance else t_dom,  # time_swing
            qk,
            qa,
            qkd,
            qad,
            pd.knee_des,
            pd.ankle_des,
            pd.knee_vel_des,
            pd.ankle_vel_des,
            tpk,  # torque_pd_knee
            tpa,
            tpk,  # torque_desired_knee = pd
            tpa,
            tk,  # torque_actual_knee = applied
            ta,
            tk * KNEE_CONTROL_FACTOR,
            ta * ANKLE_CONTROL_FACTOR,
            load,  # force_toe
            k * dt,  # time
            th,
            thd,
            load,
            ppk,  # torque_prior_knee
            ppa,
        )

    observers = [record]
    if task.pusher is not None:
        pusher = task.pusher
        pusher.reset()

        def push_at_heel_strikes(k: int, obs: np.ndarray, torque: np.ndarray) -> None:
            pusher.after_step(env)  # before step k: on the state after step k − 1, the push lands in step k

        observers.append(push_at_heel_strikes)
    result = rollout(env, mix, obs, steps, observers)
    n = result.steps
    fell = result.fell
    pd_steps = int(np.count_nonzero(use_pd[:n])) if use_pd is not None else n
    columns = {c: np.ascontiguousarray(buf[:n, j]) for j, c in enumerate(EPISODE_COLUMNS)}
    meta = {
        "name": task.name,
        "seed": task.seed,
        "speed": float(env.episode_speed),
        "slope_deg": float(env.episode_slope_deg),
        "body_mass": float(env.walker.body.mass),
        "body_height": float(env.walker.body.height),
        "friction": float(env.walker.friction),
        "noise_scale": float(env.episode_noise_scale),
        "control_dt": float(dt),
        "fell": fell,
        "steps": n,
        "seconds": round(n * dt, 9),
        "driver": task.driver.checkpoint if task.driver is not None else "pd",
        "beta": float(task.beta) if task.driver is not None else 1.0,
        "pd_fraction": pd_steps / n,
        "stage": task.stage,
        "expert": task.expert or "pd",
    }
    if scaled:
        meta["correction_scale"] = task.correction_scale
    if task.pusher is not None:  # pushed at heel strikes: the magnitude (N, the first push's sign) and the count
        meta["heel_strike_push_n"] = task.pusher.force_n
        meta["heel_strike_pushes"] = task.pusher.pushes
    env.close()
    return task.index, columns, meta


_ROW_ORDER = (
    "ishumanswing", "domainindex", "tau", "time_stance", "time_swing", "position_actual_knee", "position_actual_ankle",
    "velocity_actual_knee", "velocity_actual_ankle", "position_desired_knee", "position_desired_ankle",
    "velocity_desired_knee", "velocity_desired_ankle", "torque_pd_knee", "torque_pd_ankle", "torque_desired_knee",
    "torque_desired_ankle", "torque_actual_knee", "torque_actual_ankle", "control_signal_knee", "control_signal_ankle",
    "force_toe", "time", "thigh_angle", "thigh_velocity", "load", "torque_prior_knee", "torque_prior_ankle",
)  # fmt: skip
assert _ROW_ORDER == EPISODE_COLUMNS, "collect_episode's row layout is out of step with EPISODE_COLUMNS"


def _prepare_dir(out: Path, overwrite: bool) -> None:
    ep_dir = out / EPISODES_DIR
    existing = dataset_exists(out)
    if existing and not overwrite:
        raise OutputExistsError(f"{out} already holds a data set; choose another --out or pass --force to overwrite")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory")
    if existing:
        # Stale episodes of an earlier, longer run must not leak into the new data set.
        (out / MANIFEST).unlink(missing_ok=True)
        if ep_dir.is_dir():
            for p in ep_dir.glob("*.npz"):
                p.unlink()
        if (out / "csv").is_dir():
            shutil.rmtree(out / "csv")
    ep_dir.mkdir(parents=True, exist_ok=True)


def collect(
    out_dir: str | os.PathLike,
    n_episodes: int,
    seconds: float,
    speeds: Sequence[float] = (0.8, 1.0, 1.2),
    seed0: int = 0,
    workers: int = 2,
    randomize: bool = True,
    driver: DriverSpec | None = None,
    beta: float = 1.0,
    stage: str = "pd",
    progress: bool = True,
    *,
    sensor_noise: bool = True,
    env_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    expert: str | None = None,
    pushes: RandomPushes | None = None,
    expert_follows: bool = False,
    correction_scale: tuple[float, float] | None = None,
) -> list[Path]:
    """Collect `n_episodes` episodes of `seconds` s each into OUT_DIR/episodes + OUT_DIR/manifest.json.

    Episode i: env seed ``seed0 + i``, target speed ``speeds[i % len(speeds)]`` (m/s), eval-style randomisation
    (body, friction, slope, sensor noise scale; speed fixed) when `randomize`. `driver` makes it a DAgger round: the
    applied torque is the PD's with probability `beta` per step, the learner's otherwise. `workers` processes
    (spawned; 1 = in this process). `env_options` are extra :class:`envs.walker_env.ProstheticWalkerEnv` options
    (picklable). ``expert``: an RL checkpoint directory whose torques label the data instead of the PD's. ``pushes``:
    trunk pushes drawn per episode (:class:`controllers.residual.RandomPushes`, from a generator seeded by the
    episode's seed), so the data holds the expert's recoveries — what a distilled controller must learn to keep an
    RL expert's push robustness. ``expert_follows``: in a DAgger round the RL expert takes the learner's applied
    torque as its own history (:class:`DaggerMix`). ``correction_scale`` (lo, hi): where the RL expert drives, its
    correction over its PD is applied scaled by a factor drawn per episode, uniform in [lo, hi] (seeded by the
    episode's seed); the labels stay its own torques, from the applied history (it follows what was applied).
    Refuses a directory that already holds a data set unless `overwrite`.
    Returns the episode files in index order.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be ≥ 1, got {n_episodes}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if not speeds:
        raise ValueError("speeds must name at least one speed (m/s)")
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    if seed0 < 0:
        raise ValueError(f"seed0 must be ≥ 0 (seeds are non-negative), got {seed0}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if expert_follows and expert is None:
        raise ValueError("expert_follows needs an RL expert (expert=DIR): the PD keeps no history of its commands")
    if correction_scale is not None:
        lo, hi = (float(v) for v in correction_scale)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 2.0):
            raise ValueError(f"correction_scale must be (lo, hi) with 0 <= lo <= hi <= 2, got {correction_scale}")
        if expert is None:
            raise ValueError("correction_scale scales an RL expert's correction over its PD: pass expert=DIR")
        correction_scale = (lo, hi)
    if driver is not None and not isinstance(driver, DriverSpec):
        raise TypeError(f"driver must be a DriverSpec, got {type(driver).__name__}")
    out = Path(out_dir)
    _prepare_dir(out, overwrite)
    drawn = [_episode_pushes(pushes, seed0 + i) for i in range(n_episodes)]
    scales = [1.0] * n_episodes
    if correction_scale is not None:
        lo, hi = correction_scale
        scales = [float(np.random.default_rng([seed0 + i, _SCALE_SALT]).uniform(lo, hi)) for i in range(n_episodes)]
    tasks = [
        EpisodeTask(
            index=i,
            seed=seed0 + i,
            speed=float(speeds[i % len(speeds)]),
            seconds=float(seconds),
            randomize=randomize,
            sensor_noise=sensor_noise,
            driver=driver,
            beta=float(beta),
            stage=stage,
            env_options=dict(env_options or {}) | drawn[i][0],
            expert=expert,
            pusher=drawn[i][1],
            expert_follows=expert_follows,
            correction_scale=scales[i],
        )
        for i in range(n_episodes)
    ]
    header = {
        "columns": list(EPISODE_COLUMNS),
        "collect": {
            "n_episodes": n_episodes,
            "seconds": float(seconds),
            "speeds": [float(s) for s in speeds],
            "seed0": seed0,
            "randomize": randomize,
            "sensor_noise": sensor_noise,
            "driver": asdict(driver) if driver is not None else None,
            "beta": float(beta),
            "stage": stage,
            "env_options": {k: repr(v) for k, v in sorted((env_options or {}).items())},
            "expert": expert or "pd",
            "pushes": asdict(pushes) if pushes is not None else None,
            **({"expert_follows": True} if expert_follows else {}),
            **({"correction_scale": list(correction_scale)} if correction_scale is not None else {}),
        },
        "provenance": provenance(),
        "episodes": [],
    }
    write_manifest(out, header)
    paths: dict[int, Path] = {}
    bar = progress_bar(n_episodes, "collect", "ep", enabled=progress)
    falls = 0

    def done(index: int, columns: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        nonlocal falls
        paths[index] = write_episode(out, columns, meta)
        falls += bool(meta["fell"])
        bar.update(1)
        bar.set_postfix(falls=falls, refresh=False)

    try:
        if workers == 1 or n_episodes == 1:
            for t in tasks:
                done(*collect_episode(t))
        else:
            ctx = multiprocessing.get_context("spawn")  # safe with torch/numba/MuJoCo threads in the parent
            with ProcessPoolExecutor(max_workers=min(workers, n_episodes), mp_context=ctx) as pool:
                pending: set[Future] = {pool.submit(collect_episode, t) for t in tasks}
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            done(*f.result())
                except BaseException:
                    for f in pending:
                        f.cancel()
                    raise
    finally:
        bar.close()
    return [paths[i] for i in range(n_episodes)]
