"""Residual reinforcement learning on the walker: the AMPRO PD is the safe prior, a policy adds a bounded correction.

``torque = PD torque + residual_scale · peak torque · action`` (saturated at the motor peaks), ``action ∈ [-1, 1]²``.
A policy that outputs 0 is the PD exactly, so training starts at a walking controller (SB3's PPO initialises its
action head near 0) and learns what the PD misses: pushes, slopes, speed changes.

Two users share one :class:`ResidualCore` — the observation and the torque of a step are computed in one place, so
what a policy saw in training is what it sees in the loop:

* :class:`ResidualPDEnv`, a gymnasium wrapper of ``legloop/ProstheticWalker-v0`` for training (SB3 or any library);
* :class:`controllers.rl_policy.RLController`, the trained policy as a controller (``legloop eval --controller rl``).

The layout (names and sizes, :data:`OBS_LAYOUT`) is stored in every RL checkpoint; a checkpoint made with another
layout is refused with both layouts named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from controllers.command_limits import CommandLimits, check_joint_limits
from controllers.pd import STANCE, AmproPD
from envs.walker_env import HeelStrikePusher, ProstheticWalkerEnv, Push

# The policy's observation, in order: (name, size). Raw values; the trainer normalises them (VecNormalize).
OBS_LAYOUT: tuple[tuple[str, int], ...] = (
    ("sensors", 7),  # knee angle, velocity, ankle angle, velocity, thigh angle, rate, load (envs.sensors)
    ("pd_domain", 1),  # 1 stance, 0 swing
    ("pd_phase", 1),  # τ, clipped to [-0.5, 1.5]
    ("pd_knee_des", 1),  # rad
    ("pd_knee_vel_des", 1),  # rad/s
    ("pd_ankle_des", 1),  # rad
    ("pd_torque", 2),  # the PD's torque / peak torque
    ("prev_action", 2),  # the previous residual action
)
OBS_SIZE = sum(n for _, n in OBS_LAYOUT)
DEFAULT_RESIDUAL_SCALE = 0.25
PUSH_PATTERNS = ("random", "train")


def layout_to_json(layout: tuple[tuple[str, int], ...] = OBS_LAYOUT) -> list[dict[str, Any]]:
    """The layout as JSON-ready data: ``[{"name": ..., "size": ...}, ...]``."""
    return [{"name": name, "size": size} for name, size in layout]


def describe_layout(layout: Any) -> str:
    """``sensors:7, pd_domain:1, … (17 values)`` for error messages; tolerant of malformed stored layouts."""
    try:
        items = [(str(d["name"]), int(d["size"])) for d in layout]
    except (TypeError, KeyError, ValueError):
        return repr(layout)
    return ", ".join(f"{n}:{s}" for n, s in items) + f" ({sum(s for _, s in items)} values)"


def check_max_delta(max_delta: float | None) -> float | None:
    """The residual's slew limit (action units per control step, in (0, 2]; 2 or None: no limit) or ValueError."""
    if max_delta is None:
        return None
    if not 0.0 < max_delta <= 2.0:
        raise ValueError(f"max_delta must be in (0, 2] (action units per control step) or None, got {max_delta}")
    return None if max_delta >= 2.0 else float(max_delta)


def check_envelope(envelope: float | None) -> float | None:
    """The residual's torque envelope (a fraction of the motor peak in (0, 1]; 1 or None: none) or ValueError."""
    if envelope is None:
        return None
    if not 0.0 < envelope <= 1.0:
        raise ValueError(f"envelope must be in (0, 1] (a fraction of the motor peak torque) or None, got {envelope}")
    return None if envelope >= 1.0 else float(envelope)


class ResidualCore:
    """The PD, the previous action and the observation buffer of one residual controller (one episode at a time).

    Per control step: :meth:`observe` (sensors → the policy's observation; runs the PD) then :meth:`torque`
    (the policy's action → motor torques, N·m). Both return arrays owned by the core, overwritten next step.

    ``envelope`` (a fraction of the motor peak, None: none) bounds what the residual may add to the torque's size:
    per joint ``|τ| ≤ max(|τ_PD|, envelope · τ_peak)``. The residual may shape the torque freely below that level and
    push against the PD's torque, but above it the command is never larger than the PD's own — so the controller's
    peak torque is the PD's (on the trajectory it walks) or the envelope, whichever is higher. A safety bound of the
    kind a prosthesis firmware would enforce on a learned correction.

    ``torque_limit`` (N·m) and ``rate_limit`` (N·m/s), per joint ``(knee, ankle)`` (None per joint or for both: none),
    are hard limits on the command itself, whatever the PD asks: ``|τ| ≤ torque_limit`` and ``|τ_k − τ_{k−1}| ≤
    rate_limit · dt`` (from 0 at a reset, as the motor starts). The envelope cannot bound the PD's own reaction to a
    gait the residual made (the swing PD's damping at a faster toe-off set the knee's peak: docs/rl.md); these do.
    """

    def __init__(
        self,
        pd: AmproPD,
        peak_torque: np.ndarray,
        residual_scale: float = DEFAULT_RESIDUAL_SCALE,
        max_delta: float | None = None,
        envelope: float | None = None,
        torque_limit: Any = None,
        rate_limit: Any = None,
    ) -> None:
        if not 0.0 < residual_scale <= 1.0:
            raise ValueError(f"residual_scale must be in (0, 1] (a fraction of the peak torque), got {residual_scale}")
        # The residual's slew limit: the applied action moves at most this far from the previous one per step.
        self.max_delta = check_max_delta(max_delta)
        self.envelope = check_envelope(envelope)
        self.pd = pd
        self.peak = np.asarray(peak_torque, dtype=np.float64).copy()
        self.residual_scale = float(residual_scale)
        self._pk, self._pa = float(self.peak[0]), float(self.peak[1])
        self._rk, self._ra = self._pk * self.residual_scale, self._pa * self.residual_scale
        e = self.envelope if self.envelope is not None else 1.0
        self._ek, self._ea = self._pk * e, self._pa * e
        self.torque_limit = check_joint_limits(torque_limit, "torque_limit", "N·m")
        self.rate_limit = check_joint_limits(rate_limit, "rate_limit", "N·m/s")
        # inf for none; the rate limit in N·m per control step
        self._lk, self._la, self._sk, self._sa = CommandLimits(self.torque_limit, self.rate_limit).per_step(pd.dt)
        self.obs = np.zeros(OBS_SIZE, dtype=np.float32)
        self.prev_action = np.zeros(2)
        self.out = np.zeros(2)  # the torque of the last step, N·m

    def reset(self) -> None:
        self.pd.reset()
        self.prev_action[:] = 0.0
        self.out[:] = 0.0

    def follow(self, applied: np.ndarray) -> None:
        """Another controller drove the last step (a DAgger learner) and ``applied`` [knee, ankle] N·m is what the
        motors got: make it this core's history — the previous action becomes the residual that torque implies over
        the PD's torque of that step (clipped to [-1, 1]) and the rate limit slews from it — so the next action
        answers the trajectory that happened, not this core's own commands that were never applied."""
        tpk, tpa = self.pd.last_torque.tolist()
        ak, aa = float(applied[0]), float(applied[1])
        a0, a1 = (ak - tpk) / self._rk, (aa - tpa) / self._ra
        self.prev_action[0] = -1.0 if a0 < -1.0 else (1.0 if a0 > 1.0 else a0)
        self.prev_action[1] = -1.0 if a1 < -1.0 else (1.0 if a1 > 1.0 else a1)
        self.out[0], self.out[1] = ak, aa

    def observe(self, sensors: np.ndarray) -> np.ndarray:
        """Run the PD on ``sensors`` and fill the observation (layout :data:`OBS_LAYOUT`)."""
        pd = self.pd
        tpk, tpa = pd.act(sensors).tolist()
        o = self.obs
        o[:7] = sensors
        o[7] = 1.0 if pd.domain == STANCE else 0.0
        ph = pd.phase
        o[8] = -0.5 if ph < -0.5 else (1.5 if ph > 1.5 else ph)
        o[9] = pd.knee_des
        o[10] = pd.knee_vel_des
        o[11] = pd.ankle_des
        o[12] = tpk / self._pk
        o[13] = tpa / self._pa
        o[14] = self.prev_action[0]
        o[15] = self.prev_action[1]
        return o

    def torque(self, action: np.ndarray) -> np.ndarray:
        """PD torque of the last :meth:`observe` + the bounded residual of ``action`` (clipped to [-1, 1], then to
        within ``max_delta`` of the previous applied action), N·m, bounded by the envelope and saturated at the motor
        peaks. A non-finite action raises ``ValueError``."""
        a0, a1 = action.tolist() if isinstance(action, np.ndarray) else (float(action[0]), float(action[1]))
        if not (math.isfinite(a0) and math.isfinite(a1)):
            raise ValueError(f"residual action must be finite, got [{a0}, {a1}]")
        a0 = -1.0 if a0 < -1.0 else (1.0 if a0 > 1.0 else a0)
        a1 = -1.0 if a1 < -1.0 else (1.0 if a1 > 1.0 else a1)
        md = self.max_delta
        if md is not None:
            p0, p1 = self.prev_action[0], self.prev_action[1]
            a0 = p0 - md if a0 < p0 - md else (p0 + md if a0 > p0 + md else a0)
            a1 = p1 - md if a1 < p1 - md else (p1 + md if a1 > p1 + md else a1)
        self.prev_action[0], self.prev_action[1] = a0, a1
        tpk, tpa = self.pd.last_torque.tolist()
        pk, pa = self._pk, self._pa
        tk, ta = tpk + self._rk * a0, tpa + self._ra * a1
        if self.envelope is not None:
            ck = max(abs(tpk), self._ek)
            ca = max(abs(tpa), self._ea)
            tk = -ck if tk < -ck else (ck if tk > ck else tk)
            ta = -ca if ta < -ca else (ca if ta > ca else ta)
        ck, ca = min(pk, self._lk), min(pa, self._la)  # the hard limit, then the motor peak
        tk = -ck if tk < -ck else (ck if tk > ck else tk)
        ta = -ca if ta < -ca else (ca if ta > ca else ta)
        out = self.out
        if self.rate_limit is not None:  # within reach of the last command: stays within the limits above
            sk, sa = self._sk, self._sa
            ok, oa = out[0], out[1]
            tk = ok - sk if tk < ok - sk else (ok + sk if tk > ok + sk else tk)
            ta = oa - sa if ta < oa - sa else (oa + sa if ta > oa + sa else ta)
        out[0], out[1] = tk, ta
        return out


def _excess_sq(a: float, b: float, threshold: float) -> float:
    """Σ max(0, |x| − threshold)² over the two joints' values: the peak hinges' shape."""
    ea, eb = abs(a) - threshold, abs(b) - threshold
    return (ea * ea if ea > 0.0 else 0.0) + (eb * eb if eb > 0.0 else 0.0)


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (see :class:`ResidualPDEnv`)."""

    progress: float = 1.0
    speed_tolerance: float = 0.3  # m/s: the width of the progress term's bell
    alive: float = 1.0
    tracking: float = 5.0
    torque: float = 0.05
    torque_rate: float = 5.0
    fall: float = 0.0  # once, on the step the walker falls
    residual: float = 0.0  # ‖action‖²: the PD unless a correction pays
    tracking_pushed: float | None = None  # the tracking weight within recovery_s of a push's start (None: tracking)
    tracking_knee: float | None = None  # × the knee's error instead of the tracking weight (None: the same weight)
    recovery_s: float = 1.0
    peak_torque: float = 0.0  # hinge on |τ| / τ_peak above peak_torque_at (the tail the quadratic term barely sees)
    peak_torque_at: float = 0.6
    peak_rate: float = 0.0  # hinge on |Δτ| / τ_peak per control step above peak_rate_at
    peak_rate_at: float = 0.3


@dataclass(frozen=True)
class RandomPushes:
    """Random trunk pushes per episode: with probability ``probability`` an episode gets ``count`` pushes at
    uniform times in [``start_s``, ``end_s``], magnitudes uniform in [``min_n``, ``max_n``] N, either direction.

    A curriculum: with ``start_max_n`` set, the upper magnitude grows linearly from ``start_max_n`` (training
    progress 0) to ``max_n`` (progress ``ramp``, a fraction of training, and after); progress is the ``progress``
    argument of :meth:`draw`. The draws use the generator identically at any progress (same stream).

    ``pattern = "train"``: what `legloop eval`'s push trials do instead — ``count`` pushes of one magnitude per
    episode (uniform in [``min_n``, upper]) alternating forward and backward (the first either way), the first at a
    uniform time in [``start_s``, ``start_s`` + interval], then every interval (``interval_s`` × U(0.8, 1.2) per
    episode, so the pushes land at different gait phases), those after ``end_s`` dropped.

    ``heel_strike`` > 0: that fraction of the pushed episodes is pushed at the gait's weakest moment instead — one
    magnitude per episode (uniform in [``min_n``, upper]), at every ``every``-th heel strike of the prosthetic foot in
    [``start_s``, ``end_s``], alternating (:class:`envs.walker_env.HeelStrikePusher`; :meth:`draw_episode`)."""

    probability: float = 0.5
    count: int = 3
    start_s: float = 2.0
    end_s: float = 9.0
    min_n: float = 50.0
    max_n: float = 300.0
    duration_s: float = 0.1
    start_max_n: float | None = None
    ramp: float = 0.5
    pattern: str = "random"  # "random" or "train" (see the class docstring)
    interval_s: float = 1.13
    heel_strike: float = 0.0  # fraction of the pushed episodes pushed at heel strikes instead (0: none)
    every: int = 2  # those: at every this-many-th prosthetic heel strike

    def validate(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"push probability must be in [0, 1], got {self.probability}")
        if self.count < 0 or not 0.0 <= self.start_s <= self.end_s:
            raise ValueError(f"pushes need count >= 0 and 0 <= start_s <= end_s, got {self}")
        if not 0.0 <= self.min_n <= self.max_n:
            raise ValueError(f"push magnitudes need 0 <= min_n <= max_n, got {self.min_n}, {self.max_n}")
        if not 0.0 < self.duration_s <= 1.0:
            raise ValueError(f"push duration must be in (0, 1] s, got {self.duration_s}")
        if self.start_max_n is not None and not self.min_n <= self.start_max_n <= self.max_n:
            raise ValueError(f"push curriculum needs min_n <= start_max_n <= max_n, got {self.start_max_n}")
        if not 0.0 < self.ramp <= 1.0:
            raise ValueError(f"push curriculum ramp must be in (0, 1] (a fraction of training), got {self.ramp}")
        if self.pattern not in PUSH_PATTERNS:
            raise ValueError(f"push pattern must be one of {', '.join(PUSH_PATTERNS)}, got {self.pattern!r}")
        if not 0.2 <= self.interval_s <= 10.0:
            raise ValueError(f"push interval must be in [0.2, 10] s, got {self.interval_s}")
        if not 0.0 <= self.heel_strike <= 1.0:
            raise ValueError(
                f"heel_strike must be in [0, 1] (a fraction of the pushed episodes), got {self.heel_strike}"
            )
        if self.every < 1:
            raise ValueError(f"every must be >= 1 (a push at every N-th heel strike), got {self.every}")

    def upper(self, progress: float = 1.0) -> float:
        """The largest magnitude drawn at training ``progress`` (0 … 1), N."""
        if self.start_max_n is None:
            return self.max_n
        f = min(1.0, max(0.0, progress) / self.ramp)
        return self.start_max_n + (self.max_n - self.start_max_n) * f

    def draw(self, rng: np.random.Generator, progress: float = 1.0) -> tuple[Push, ...]:
        """One episode's time-scheduled pushes (the env's ``pushes`` option; a heel-strike episode has none)."""
        return self.draw_episode(rng, progress)[0]

    def draw_episode(
        self, rng: np.random.Generator, progress: float = 1.0
    ) -> tuple[tuple[Push, ...], HeelStrikePusher | None]:
        """One episode's pushes: time-scheduled ones (the env's ``pushes`` option), or a heel-strike pusher to call
        after every step. With ``heel_strike`` 0 the generator's stream is the one before heel strikes existed."""
        if self.count == 0 or rng.random() >= self.probability:
            return (), None
        if self.heel_strike > 0.0 and rng.random() < self.heel_strike:
            mag = rng.uniform(self.min_n, self.upper(progress)) * rng.choice((-1.0, 1.0))
            return (), HeelStrikePusher(mag, self.every, self.start_s, self.end_s, self.duration_s)
        return self._timed(rng, progress), None

    def _timed(self, rng: np.random.Generator, progress: float) -> tuple[Push, ...]:
        if self.pattern == "train":
            interval = self.interval_s * rng.uniform(0.8, 1.2)
            t0 = rng.uniform(self.start_s, self.start_s + interval)
            mag = rng.uniform(self.min_n, self.upper(progress)) * rng.choice((-1.0, 1.0))
            return tuple(
                Push(float(t0 + i * interval), float(mag if i % 2 == 0 else -mag), self.duration_s)
                for i in range(self.count)
                if t0 + i * interval <= self.end_s
            )
        times = np.sort(rng.uniform(self.start_s, self.end_s, self.count))
        mags = rng.uniform(self.min_n, self.upper(progress), self.count) * rng.choice((-1.0, 1.0), self.count)
        return tuple(Push(float(t), float(f), self.duration_s) for t, f in zip(times, mags, strict=True))


class ResidualPDEnv(gym.Wrapper):
    """Residual RL on ``legloop/ProstheticWalker-v0``: the action corrects the AMPRO PD's torque.

    ## Action space
    ``Box(-1, 1, (2,), float32)``: the residual on [knee, ankle] as a fraction of ``residual_scale`` × the motor peak
    torque (0.25 by default: at most ±35.5 / ±42 N·m on top of the PD's torque). 0 is the PD.

    ## Observation space
    ``Box(-inf, inf, (16,), float32)`` (:data:`OBS_LAYOUT`; raw units, normalise them, e.g. with ``VecNormalize``):

    | index | signal | unit |
    |-------|--------|------|
    | 0–6 | the env's prosthesis sensors: knee, ankle angle, velocity; thigh angle, rate; load | rad, rad/s, N |
    | 7 | PD domain: 1 stance, 0 swing | – |
    | 8 | PD phase τ (hip progression in stance, time in swing), clipped to [−0.5, 1.5] | – |
    | 9, 10 | PD desired knee angle, velocity | rad, rad/s |
    | 11 | PD desired ankle angle | rad |
    | 12, 13 | PD torque [knee, ankle] / peak torque | – |
    | 14, 15 | previous residual action [knee, ankle] | – |

    ## Rewards (every term is also in ``info`` as ``reward_<term>``)
    | term | per control step | default weight |
    |------|------------------|----------------|
    | progress | ``w · exp(−((v_x − v_cmd) / tol)²)``: trunk velocity at the episode's commanded speed | 1.0 |
    | alive | ``w`` while the walker has not fallen | 1.0 |
    | tracking | ``−w · ((q_k − q_k,des)² + (q_a − q_a,des)²)``, the PD's desired trajectory, rad²; ``w`` is
      ``tracking_pushed`` within ``recovery_s`` of a push's start, else ``tracking``; the knee's term, with
      ``tracking_knee`` set, takes that weight instead | 5.0 (pushed, knee: the same), 1 s |
    | torque | ``−w · ‖τ / τ_peak‖²`` of the applied torque (PD + residual) | 0.05 |
    | torque rate | ``−w · ‖(τ_k − τ_{k−1}) / τ_peak‖²`` | 5.0 |
    | peak torque | ``−w · Σ_j max(0, |τ_j| / τ_peak,j − c)²``, c = ``peak_torque_at``: the peaks alone | 0, c 0.6 |
    | peak rate | ``−w · Σ_j max(0, |Δτ_j| / τ_peak,j − c)²`` per control step, c = ``peak_rate_at`` | 0, c 0.3 |
    | fall | ``−w`` once, on the step the walker falls (terminal) | 0 |
    | residual | ``−w · ‖a‖²`` of the applied residual action: the PD unless a correction pays for itself | 0 |

    v_x is the trunk's forward velocity, v_cmd the commanded speed of the episode, tol ``speed_tolerance`` (0.3 m/s).
    The defaults here are the neutral ones; ``experiments/configs/rl.toml`` sets the trained ones. Scale: a walking
    step earns ≈ 2 (progress + alive), so with γ = 0.995 (≈ 200 steps, 1 s) a fall already forfeits ≈ 400 of
    discounted return; the explicit ``fall`` term makes it cost more than the tracking and progress a riskier gait
    buys back. Peak torque and torque-rate in unperturbed walking are held near the PD's by ``residual``, by the
    residual's slew limit (``max_delta``) and by the wrapper's torque envelope rather than by the quadratic terms,
    which weigh one large jump little; the ``peak_*`` hinges weigh exactly those, and measured, cost push robustness.
    ``tracking_pushed`` can split the policy's two jobs (walk the reference while nothing disturbs it, recover
    however it must after a push); the policy does not observe the pushes, and with push trains most of a pushed
    episode lies in a recovery window — 10 / 1 lost push robustness (docs/rl.md). ``tracking_knee`` weighs the knee
    apart (the trained default: knee 20, ankle 10 with the envelope at 0.4; docs/rl.md has each step's measurement).

    ## Episode end
    As the env: terminated on a fall, truncated by the ``TimeLimit`` of the registration (10 s at 200 Hz).

    ## Arguments
    | option | default | meaning |
    |--------|---------|---------|
    | env | – | a :class:`envs.walker_env.ProstheticWalkerEnv` (or a ``gymnasium.make`` of it); made without pushes |
    | residual_scale | 0.25 | the action's bound, a fraction of the motor peak torque |
    | weights | :class:`RewardWeights` () | the reward weights |
    | pushes | None | :class:`RandomPushes`: trunk pushes per episode, time-scheduled or at prosthetic heel strikes |
    | max_delta | None | the residual's slew limit: the applied action moves ≤ this per control step (None: none) |
    | envelope | None | above this fraction of the motor peak the torque is never larger than the PD's (None: none) |
    | torque_limit | None | hard limit on the command, N·m per joint ``(knee, ankle)`` (None: none) |
    | rate_limit | None | hard limit on the command's change, N·m/s per joint ``(knee, ankle)`` (None: none) |

    :meth:`set_progress` (0 … 1; ``legloop rl train`` calls it through ``env_method``) drives the push curriculum.
    """

    def __init__(
        self,
        env: gym.Env,
        residual_scale: float = DEFAULT_RESIDUAL_SCALE,
        weights: RewardWeights | None = None,
        pushes: RandomPushes | None = None,
        max_delta: float | None = None,
        envelope: float | None = None,
        torque_limit: Any = None,
        rate_limit: Any = None,
    ) -> None:
        super().__init__(env)
        walker = env.unwrapped
        if not isinstance(walker, ProstheticWalkerEnv):
            raise TypeError(f"ResidualPDEnv wraps a ProstheticWalkerEnv, got {type(walker).__name__}")
        if pushes is not None:
            pushes.validate()
            if walker.pushes:
                raise ValueError("make the env without pushes: ResidualPDEnv(pushes=RandomPushes()) draws them")
        self.walker = walker
        self.residual_scale = float(residual_scale)
        self.max_delta = max_delta
        check_max_delta(max_delta)
        self.envelope = check_envelope(envelope)
        self.torque_limit = check_joint_limits(torque_limit, "torque_limit", "N·m")
        self.rate_limit = check_joint_limits(rate_limit, "rate_limit", "N·m/s")
        self.progress = 1.0  # training progress for the push curriculum (set_progress)
        self.weights = weights or RewardWeights()
        self.random_pushes = pushes
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        self.core: ResidualCore | None = None
        self._body: Any = None  # the WalkerParams the core was built for
        self._push_rng = np.random.default_rng()
        self._norm_action = np.zeros(2)
        self._prev_torque = np.zeros(2)
        self._v_cmd = 1.0
        self._push_starts: tuple[float, ...] = ()  # this episode's push start times, s
        self._push_next = 0  # index of the next push to start
        self._pusher: HeelStrikePusher | None = None  # this episode's heel-strike pushes, if any

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            # A generator of its own (salted), so the pushes do not shift the env's randomisation stream.
            self._push_rng = np.random.default_rng([seed, 0x9E5])
        w = self.walker
        self._pusher = None
        if self.random_pushes is not None:
            drawn, self._pusher = self.random_pushes.draw_episode(self._push_rng, self.progress)
            if options and "pushes" in options:
                self._pusher = None  # the caller's own pushes option wins
            options = {"pushes": drawn} | dict(options or {})
        sensors, info = self.env.reset(seed=seed, options=options)
        self._push_starts = tuple(sorted(p.time_s for p in w.pushes))
        self._push_next = 0
        # A randomised reset builds a new body: the PD needs its geometry and weight, the core its motor peaks.
        if self.core is None or w.walker is not self._body:
            pd = AmproPD(w.dt, walker=w.walker)
            self.core = ResidualCore(
                pd,
                w.peak_torque,
                self.residual_scale,
                self.max_delta,
                self.envelope,
                self.torque_limit,
                self.rate_limit,
            )
            self._body = w.walker
        self.core.reset()
        self._prev_torque[:] = 0.0
        self._v_cmd = w.episode_speed
        return self.core.observe(sensors).copy(), info

    def set_progress(self, progress: float) -> None:
        """Training progress, 0 … 1: the push curriculum's magnitudes follow it from the next reset on."""
        self.progress = float(progress)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        core = self.core
        if core is None:
            raise RuntimeError("call reset() before step()")
        torque = core.torque(np.asarray(action))
        np.divide(torque, core.peak, out=self._norm_action)
        sensors, _, terminated, truncated, info = self.env.step(self._norm_action)
        if self._pusher is not None:
            self._pusher.after_step(self.walker)
        obs = core.observe(sensors)
        w = self.weights
        pd = core.pd
        ek = float(sensors[0]) - pd.knee_des
        ea = float(sensors[2]) - pd.ankle_des
        nk, na = self._norm_action.tolist()
        dk, da = nk - self._prev_torque[0], na - self._prev_torque[1]
        self._prev_torque[0], self._prev_torque[1] = nk, na
        dv = (info["x_velocity"] - self._v_cmd) / w.speed_tolerance
        r_progress = w.progress * math.exp(-dv * dv)
        r_alive = 0.0 if terminated else w.alive
        tw = w.tracking
        if w.tracking_pushed is not None and self._push_starts:
            t, starts = self.walker.time, self._push_starts
            while self._push_next < len(starts) and starts[self._push_next] <= t:
                self._push_next += 1
            if self._push_next and t < starts[self._push_next - 1] + w.recovery_s:
                tw = w.tracking_pushed
        elif w.tracking_pushed is not None and self._pusher is not None:
            if self.walker.time < self._pusher.last_push_s + w.recovery_s:
                tw = w.tracking_pushed
        tk = tw if w.tracking_knee is None else w.tracking_knee
        r_tracking = -(tk * ek * ek + tw * ea * ea)
        r_torque = -w.torque * (nk * nk + na * na)
        r_rate = -w.torque_rate * (dk * dk + da * da)
        r_peak = 0.0
        if w.peak_torque:
            r_peak -= w.peak_torque * _excess_sq(nk, na, w.peak_torque_at)
        if w.peak_rate:
            r_peak -= w.peak_rate * _excess_sq(dk, da, w.peak_rate_at)
        r_fall = -w.fall if terminated else 0.0
        ak, aa = core.prev_action[0], core.prev_action[1]  # the applied (clipped, slew-limited) action
        r_residual = -w.residual * (ak * ak + aa * aa)
        reward = r_progress + r_alive + r_tracking + r_torque + r_rate + r_peak + r_fall + r_residual
        info["reward_progress"] = r_progress
        info["reward_alive"] = r_alive
        info["reward_tracking"] = r_tracking
        info["reward_torque"] = r_torque
        info["reward_torque_rate"] = r_rate
        info["reward_peak"] = r_peak
        info["reward_fall"] = r_fall
        info["reward_residual"] = r_residual
        # A copy: callers keep observations (rollout and replay buffers), and the core overwrites its buffer.
        return obs.copy(), reward, terminated, truncated, info


def make_residual_env(
    env_options: dict[str, Any] | None = None,
    residual_scale: float = DEFAULT_RESIDUAL_SCALE,
    weights: RewardWeights | None = None,
    pushes: RandomPushes | None = None,
    max_episode_steps: int = 2000,
    max_delta: float | None = None,
    envelope: float | None = None,
    torque_limit: Any = None,
    rate_limit: Any = None,
) -> gym.Env:
    """``gymnasium.make("legloop/ProstheticWalker-v0", **env_options)`` wrapped in :class:`ResidualPDEnv`."""
    import envs  # registers the id

    env = gym.make(envs.ENV_ID, max_episode_steps=max_episode_steps, **(env_options or {}))
    return ResidualPDEnv(env, residual_scale, weights, pushes, max_delta, envelope, torque_limit, rate_limit)
