"""`legloop/ProstheticWalker-v0`: a person with a powered knee-ankle prosthesis walking in MuJoCo, as a gymnasium env.

The env owns the plant and the virtual human; the agent (or controller under test) owns only the prosthesis knee and
ankle motors and sees only the prosthesis sensors.

`step` is the physics plus a thin layer of Python: the rest of its per-control-step work (the virtual human, the
sensor vector with its noise and quantisation, the fall check) runs in two compiled kernels of :mod:`envs.plant_kernel`,
one before and one after `mj_step`, bit-identical to the pure-Python version they replace (which made env.step ~40 %
slower than its physics; now ~17 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.anthropometry import GRAVITY, BodyParams, WalkerParams
from envs.gait_events import CONTACT_OFF_N, CONTACT_ON_N
from envs.human import PROSTHESIS, HumanParams, VirtualHuman
from envs.model import build_mjcf, geometry
from envs.plant_kernel import (
    E_DT,
    E_FALL_Z,
    E_NOISE,
    E_NOISE_STD,
    E_OBS,
    E_PEAK_ANKLE,
    E_PEAK_KNEE,
    E_QUANT_STEP,
    E_S_GYRO_Y,
    E_S_LOAD_Z,
    E_S_QUAT,
    E_SIZE,
    after_physics,
    before_physics,
)
from envs.posture import place_start_posture
from envs.sensors import N_SENSORS, SensorNoise

_STANCE_NAMES = ("sound", "prosthesis")  # indexed by envs.human.SOUND / PROSTHESIS


@dataclass(frozen=True)
class Push:
    """A horizontal force on the trunk: `force_n` (N, forward positive) from `time_s` for `duration_s` (s)."""

    time_s: float
    force_n: float
    duration_s: float = 0.1


class HeelStrikePusher:
    """Trunk pushes triggered by the gait: at every ``every``-th heel strike of the prosthetic foot from ``start_s`` to
    ``end_s`` (s of episode time), a push of ``force_n`` N for ``duration_s`` s, forward and backward in turn (the
    sign of ``force_n`` first). A heel strike is the foot's contact force rising through ``on_n`` after at least
    ``min_swing_s`` off the ground (it left at ``off_n``): the push lands as the prosthesis takes the body's weight,
    where a phase-based controller switches to stance — the PD's weakest moment (issue #16), which time-scheduled
    pushes hit only by chance.

    Call :meth:`reset` with the episode and :meth:`after_step` after every control step of ``env``
    (:meth:`ProstheticWalkerEnv.push_now` does the pushing); :attr:`pushes` counts them, :attr:`last_push_s` is the
    time of the latest (−inf: none yet). An episode starts in prosthetic stance (the env's start posture).
    """

    def __init__(
        self,
        force_n: float,
        every: int = 2,
        start_s: float = 3.0,
        end_s: float = math.inf,
        duration_s: float = 0.1,
        *,
        on_n: float = CONTACT_ON_N,  # the gait metrics' contact thresholds
        off_n: float = CONTACT_OFF_N,
        min_swing_s: float = 0.15,  # shorter off the ground is a bounce, not a new step
    ) -> None:
        if not math.isfinite(force_n):
            raise ValueError(f"push force must be finite (N), got {force_n}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 (a push at every N-th heel strike), got {every}")
        if not 0.0 <= start_s <= end_s:
            raise ValueError(f"heel-strike pushes need 0 <= start_s <= end_s, got {start_s}, {end_s}")
        if not 0.0 < duration_s <= 1.0:
            raise ValueError(f"push duration must be in (0, 1] s, got {duration_s}")
        self.force_n, self.every, self.start_s, self.end_s = float(force_n), int(every), float(start_s), float(end_s)
        self.duration_s, self.on_n, self.off_n, self.min_swing_s = float(duration_s), on_n, off_n, min_swing_s
        self.reset()

    def reset(self) -> None:
        self._on, self._off_steps, self._strikes, self._sign = True, 0, 0, 1.0
        self.pushes = 0
        self.last_push_s = -math.inf

    def after_step(self, env: ProstheticWalkerEnv) -> bool:
        """Watch the prosthetic foot after one control step; push (from the next step on) at a counted heel strike.
        True when it pushed."""
        f = env.human.foot_force(env.data, PROSTHESIS)
        if self._on:
            if f < self.off_n:
                self._on, self._off_steps = False, 0
            return False
        self._off_steps += 1
        if f <= self.on_n:
            return False
        self._on = True
        t = env.time
        if self._off_steps * env.dt < self.min_swing_s - 1e-9 or not self.start_s <= t <= self.end_s:
            return False
        self._strikes += 1
        if self._strikes % self.every:
            return False
        env.push_now(self._sign * self.force_n, self.duration_s)
        self._sign = -self._sign
        self.pushes += 1
        self.last_push_s = t
        return True


def _check_pushes(pushes: Sequence[Push]) -> tuple[Push, ...]:
    out = tuple(pushes)
    for p in out:
        if not isinstance(p, Push):
            raise TypeError(f"pushes must be a sequence of envs.Push, got {type(p).__name__}")
    return out


@dataclass(frozen=True)
class EnvSnapshot:
    """The plant's closed-loop state, from :meth:`ProstheticWalkerEnv.snapshot` (opaque; pass it to ``restore``)."""

    data: mujoco.MjData
    human: np.ndarray
    gainprm: np.ndarray
    biasprm: np.ndarray
    gravity: np.ndarray
    time: float
    push: tuple[int, float]
    rng: Any
    model_id: int


@dataclass(frozen=True)
class Randomization:
    """Ranges of domain randomisation, drawn at every `reset(seed=...)` from the env's seeded generator.

    Multiplicative ranges are ± fractions; `slope_deg` is ± degrees around the env's slope; `speed_delta` is ± m/s
    around the env's speed; `friction` and `noise_scale` are absolute [low, high] ranges.
    """

    mass_frac: float = 0.15
    height_frac: float = 0.05
    speed_delta: float = 0.1
    slope_deg: float = 5.0
    friction: tuple[float, float] = (0.7, 1.3)
    noise_scale: tuple[float, float] = (0.5, 2.0)


OPTIONS = (  # the constructor's keyword arguments, in the order of the docstring's table
    "speed",
    "body_mass",
    "body_height",
    "control_hz",
    "physics_dt",
    "slope_deg",
    "slope_ramp_s",
    "sensor_noise",
    "quantise_sensors",
    "pushes",
    "randomize",
    "randomization",
    "friction",
    "forward_reward_weight",
    "healthy_reward",
    "ctrl_cost_weight",
    "render_mode",
    "width",
    "height",
    "human",
)


class ProstheticWalkerEnv(gym.Env):
    """A planar person walking with a powered transfemoral (knee + ankle) prosthesis.

    The human side — both hips, the sound knee and ankle, the trunk balance — is driven by a SIMBICON-style virtual
    human (:mod:`envs.human`) that sees the full state and walks at the target `speed`. The action drives the
    prosthesis knee and ankle motors; the observation is what the prosthesis itself measures.

    ## Action space
    ``Box(-1, 1, (2,), float32)``: knee and ankle torque as a fraction of the motor peak torque (142 and 168 N·m by
    default). Values outside [-1, 1] are clipped; a non-finite action or a wrong shape raises ``ValueError``
    (a NaN torque on a real device is a fault, not something to clip silently).

    | index | actuator | unit (× peak torque) |
    |-------|----------|----------------------|
    | 0 | knee motor, flexion positive | N·m |
    | 1 | ankle motor, dorsiflexion positive | N·m |

    ## Observation space
    ``Box(-inf, inf, (7,), float32)``, the prosthesis sensor vector (:mod:`envs.sensors`):

    | index | sensor | unit |
    |-------|--------|------|
    | 0 | knee encoder angle, flexion positive | rad |
    | 1 | knee encoder velocity | rad/s |
    | 2 | ankle encoder angle, dorsiflexion positive | rad |
    | 3 | ankle encoder velocity | rad/s |
    | 4 | thigh IMU angle from vertical, world frame, forward positive | rad |
    | 5 | thigh IMU angular velocity | rad/s |
    | 6 | load cell axial force between pylon and ankle, compression positive | N |

    ## Rewards (for RL users; every term is also in ``info``)
    ``reward = forward_reward_weight · v_x + healthy_reward − ctrl_cost_weight · ‖action‖²`` with v_x the trunk's
    forward velocity in m/s. Defaults 1.0, 1.0, 0.01.

    ## Episode end
    Terminated on a fall: hip height below 0.6 leg length, trunk pitch beyond ±1 rad, or a non-finite state.
    Truncated by ``TimeLimit`` (``max_episode_steps`` of the registration: 2000 steps = 10 s at 200 Hz).

    ## Arguments
    | option | default | meaning |
    |--------|---------|---------|
    | speed | 1.0 | target walking speed of the virtual human, m/s (0.6–1.5) |
    | body_mass, body_height | 75, 1.75 | the person, kg and m (segments scale per Winter's table) |
    | control_hz | 200 | control rate (AMPRO3: 200 Hz); 50–1000, a divisor of the physics rate |
    | physics_dt | 0.001 | physics step, s (≤ 1 ms) |
    | slope_deg | 0 | ground slope, uphill positive (gravity is tilted; the floor stays the x axis) |
    | slope_ramp_s | 3 | the slope fades in linearly from level over this time, s (0: sloped from the start) |
    | sensor_noise | False | False, True or a float scale of the default noise of :class:`envs.sensors.SensorNoise` |
    | quantise_sensors | False | round encoder angles and load to the device's resolution |
    | pushes | () | sequence of :class:`Push` on the trunk (``reset(options={"pushes": ...})``: one episode's) |
    | randomize | False | domain randomisation at every reset (True for the default :class:`Randomization`) |
    | randomization | None | a :class:`Randomization` with custom ranges (implies randomize) |
    | friction | 1.0 | foot-floor friction coefficient |
    | render_mode | None | ``"rgb_array"`` (offscreen; set ``MUJOCO_GL=osmesa`` on headless machines) |
    | width, height | 480, 360 | rendered frame size |
    | human | None | :class:`envs.human.HumanParams` to change the virtual human |

    ## State
    :meth:`observe` (the sensor vector of the current state), :meth:`state_vector` / :meth:`set_state` (qpos, qvel,
    as Gymnasium's MuJoCo envs), :meth:`snapshot` / :meth:`restore` (the whole plant, human included, for tools that
    replay a state: benchmarks, what-if runs).

    ## Version History
    * v0: legloop 0.1 — planar walker (Winter anthropometrics), SIMBICON-style virtual human, 7 prosthesis sensors,
      knee/ankle torque actions, domain randomisation, pushes; slopes fade in over ``slope_ramp_s`` (3 s).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}  # type: ignore[misc]

    def __init__(
        self,
        *,
        speed: float = 1.0,
        body_mass: float = 75.0,
        body_height: float = 1.75,
        control_hz: float = 200.0,
        physics_dt: float = 0.001,
        slope_deg: float = 0.0,
        slope_ramp_s: float = 3.0,
        sensor_noise: bool | float = False,
        quantise_sensors: bool = False,
        pushes: Sequence[Push] = (),
        randomize: bool = False,
        randomization: Randomization | None = None,
        friction: float = 1.0,
        forward_reward_weight: float = 1.0,
        healthy_reward: float = 1.0,
        ctrl_cost_weight: float = 0.01,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 360,
        human: HumanParams | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(
                f"unknown ProstheticWalker option(s) {', '.join(sorted(unknown))}; "
                f"valid options are: {', '.join(OPTIONS)}"
            )
        self.speed = _check_range("speed", speed, 0.6, 1.5)
        self.slope_deg = _check_range("slope_deg", slope_deg, -10.0, 10.0)
        # Gait initiation on a slope is the virtual human's weak spot, not what the testbed measures: starting on
        # level ground and walking onto the slope (as a person walks onto a ramp) removed the PD's first-steps
        # falls on uphill starts (legloop sweep --config sweep_acceptance --set controller=pd, seeds 0..29; README).
        self.slope_ramp_s = _check_range("slope_ramp_s", slope_ramp_s, 0.0, 60.0)
        self.physics_dt = _check_range("physics_dt", physics_dt, 1e-4, 1e-3)
        control_hz = _check_range("control_hz", control_hz, 50.0, 1000.0)
        self.frame_skip = round(1.0 / (control_hz * self.physics_dt))
        if abs(self.frame_skip * self.physics_dt * control_hz - 1.0) > 1e-6:
            raise ValueError(
                f"control_hz={control_hz} must divide the physics rate {1 / self.physics_dt:g} Hz evenly "
                f"(e.g. 200, 250, 500, 1000)"
            )
        self.dt = self.frame_skip * self.physics_dt
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self._width, self._height = int(width), int(height)
        noise = sensor_noise
        self.noise_scale = float(noise) if not isinstance(noise, bool) else (1.0 if noise else 0.0)
        self.quantise_sensors = bool(quantise_sensors)
        self.pushes: tuple[Push, ...] = _check_pushes(pushes)
        self._default_pushes = self.pushes  # the constructor's; a reset's ``options={"pushes": ...}`` overrides them
        rnd = randomization
        if rnd is not None and not isinstance(rnd, Randomization):
            raise TypeError(f"randomization must be an envs.Randomization, got {type(rnd).__name__}")
        self.randomization = rnd if rnd is not None else (Randomization() if randomize else None)
        self.forward_reward_weight = float(forward_reward_weight)
        self.healthy_reward = float(healthy_reward)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.human_params = human or HumanParams()
        self.nominal = WalkerParams(
            body=BodyParams(mass=float(body_mass), height=float(body_height)),
            friction=_check_range("friction", friction, 0.2, 2.0),
            timestep=self.physics_dt,
        )

        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (N_SENSORS,), np.float32)
        self._noise = SensorNoise()
        e = self._e = np.zeros(E_SIZE)
        e[E_DT] = self.dt
        # Views of `_e` under their old names: `_noise_buf` must be contiguous for standard_normal(out=...).
        self._noise_std = e[E_NOISE_STD : E_NOISE_STD + N_SENSORS]
        self._noise_step = e[E_QUANT_STEP : E_QUANT_STEP + N_SENSORS]
        self._noise_buf = e[E_NOISE : E_NOISE + N_SENSORS]
        self._obs = e[E_OBS : E_OBS + N_SENSORS]
        self._renderer: mujoco.Renderer | None = None
        self._build(self.nominal)
        self.episode_speed = self.speed
        self.episode_slope_deg = self.slope_deg
        self.episode_noise_scale = self.noise_scale
        self._ramp_end = 0.0

    # ------------------------------------------------------------------ model
    def _build(self, walker: WalkerParams) -> None:
        self.walker = walker
        self.mjcf = build_mjcf(walker)  # the model as MJCF text: run logs keep it so a report can render the walk
        self.model = mujoco.MjModel.from_xml_string(self.mjcf)
        self.data = mujoco.MjData(self.model)
        self._qpos = self.data.qpos  # a view of MjData's buffer, fetched once
        self.geom = geometry(walker)
        self.human = VirtualHuman(self.model, walker, self.human_params)
        self.body_weight = walker.body_weight
        # Motor peak torques [knee, ankle] in N·m: action = torque / peak_torque.
        self.peak_torque = np.array([walker.prosthesis.knee_peak_torque, walker.prosthesis.ankle_peak_torque])
        self._peak_knee, self._peak_ankle = float(self.peak_torque[0]), float(self.peak_torque[1])
        sensor_adr = {self.model.sensor(i).name: int(self.model.sensor_adr[i]) for i in range(self.model.nsensor)}
        self._s_quat = sensor_adr["thigh_imu_quat"]
        self._s_gyro_y = sensor_adr["thigh_imu_gyro"] + 1
        self._s_load_z = sensor_adr["loadcell"] + 2
        self._trunk = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "trunk")
        self._stand_height = float(self.model.body_pos[self._trunk, 2])
        # Fall: hip below 0.6 leg length; rootz is measured from the standing hip height.
        self._fall_z = 0.6 * self.geom.leg_length - self._stand_height
        e = self._e
        e[E_PEAK_KNEE], e[E_PEAK_ANKLE], e[E_FALL_Z] = self._peak_knee, self._peak_ankle, self._fall_z
        e[E_S_QUAT], e[E_S_GYRO_Y], e[E_S_LOAD_Z] = self._s_quat, self._s_gyro_y, self._s_load_z
        d = self.data
        # Kernel arguments bound once per model (a new model means new MjData buffers and a new human).
        self._pre_args = (e, *self.human.kernel_args(d), self.dt)
        self._post_args = (e, d.sensordata, d.qpos)
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _set_slope(self, slope_deg: float) -> None:
        a = math.radians(slope_deg)
        self.model.opt.gravity[:] = (-GRAVITY * math.sin(a), 0.0, -GRAVITY * math.cos(a))

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        # This episode's pushes: the option's, else the constructor's (an option holds for one episode only).
        self.pushes = _check_pushes(options.pop("pushes")) if "pushes" in options else self._default_pushes
        if options:
            raise ValueError(f"ProstheticWalker.reset takes only the option 'pushes', got {sorted(options)}")
        speed, slope, noise = self.speed, self.slope_deg, self.noise_scale
        r = self.randomization
        if r is not None:
            rng = self.np_random
            walker = replace(
                self.nominal,
                body=BodyParams(
                    mass=self.nominal.body.mass * rng.uniform(1 - r.mass_frac, 1 + r.mass_frac),
                    height=self.nominal.body.height * rng.uniform(1 - r.height_frac, 1 + r.height_frac),
                ),
                friction=float(rng.uniform(*r.friction)),
            )
            speed = float(np.clip(speed + rng.uniform(-r.speed_delta, r.speed_delta), 0.6, 1.5))
            slope = slope + float(rng.uniform(-r.slope_deg, r.slope_deg))
            noise = noise * float(rng.uniform(*r.noise_scale))
            self._build(walker)
        elif self.walker is not self.nominal:
            self._build(self.nominal)
        self.episode_speed, self.episode_slope_deg, self.episode_noise_scale = speed, slope, noise
        self._noise_std[:] = self._noise.std_vector() * noise
        self._noise_step[:] = self._noise.step_vector()
        # Until the ramp ends `step` tilts gravity and the human's lean a little every control step.
        self._ramp_end = self.slope_ramp_s if slope != 0.0 else 0.0
        self._set_slope(0.0 if self._ramp_end > 0.0 else slope)
        self.human.reset(speed, stance=PROSTHESIS)
        place_start_posture(self.model, self.data, self.human.lean(), speed)
        self.data.ctrl[:] = 0.0
        self._push_index = 0
        self._push_end = -1.0
        self.time = 0.0
        return self.observe(), self._info(0.0, 0.0, 0.0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a0, a1 = _action_pair(action)
        return self._advance(a0, a1, a0, a1, 0)

    def step_delayed(
        self, action: np.ndarray, previous: np.ndarray, delay_substeps: int
    ) -> tuple[np.ndarray, float, bool, bool, dict]:
        """:meth:`step` with actuation latency: the prosthesis motors keep ``previous`` (normalised, as ``action``) for
        the first ``delay_substeps`` physics steps of this control period, then take ``action`` (0: as :meth:`step`;
        ≥ ``frame_skip``: ``action`` does not arrive this period). The virtual human is not delayed."""
        a0, a1 = _action_pair(action)
        p0, p1 = _action_pair(previous)
        d = int(delay_substeps)
        if d < 0:
            raise ValueError(f"delay_substeps must be >= 0, got {delay_substeps}")
        return self._advance(a0, a1, p0, p1, min(d, self.frame_skip))

    def _advance(
        self, a0: float, a1: float, p0: float, p1: float, delay: int
    ) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not (math.isfinite(a0) and math.isfinite(a1)):
            raise ValueError(f"action must be finite, got [{a0}, {a1}]")
        if not (math.isfinite(p0) and math.isfinite(p1)):
            raise ValueError(f"previous action must be finite, got [{p0}, {p1}]")
        a0 = -1.0 if a0 < -1.0 else (1.0 if a0 > 1.0 else a0)
        a1 = -1.0 if a1 < -1.0 else (1.0 if a1 > 1.0 else a1)
        # Motor commands and the human's (computed once per control step: every physics step of it sees the same
        # ctrl, so one mj_step(nstep=frame_skip) call is exact); returns the stance, + 2 when it just changed.
        if self.time < self._ramp_end:
            self._set_slope(self.episode_slope_deg * min(1.0, (self.time + self.dt) / self._ramp_end))
            self.human.update_lean_base()
        if delay:
            p0 = -1.0 if p0 < -1.0 else (1.0 if p0 > 1.0 else p0)
            p1 = -1.0 if p1 < -1.0 else (1.0 if p1 > 1.0 else p1)
            code = before_physics(p0, p1, *self._pre_args)
        else:
            code = before_physics(a0, a1, *self._pre_args)
        if code > 1:
            self.human.switch_servos()
        if self.pushes:
            self._apply_pushes()
        if delay:
            mujoco.mj_step(self.model, self.data, nstep=delay)
            if delay < self.frame_skip:
                ctrl = self.data.ctrl
                ctrl[0] = a0 * self._peak_knee  # as before_physics writes the motor commands
                ctrl[1] = a1 * self._peak_ankle
                mujoco.mj_step(self.model, self.data, nstep=self.frame_skip - delay)
            else:
                a0, a1 = p0, p1  # the reward's control cost is of what the motors did
        else:
            mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self.time += self.dt
        noisy = self.episode_noise_scale > 0.0
        if noisy:
            self.np_random.standard_normal(out=self._noise_buf)
        obs, fell, x_velocity, x_position = after_physics(*self._post_args, noisy, self.quantise_sensors)
        ctrl_cost = self.ctrl_cost_weight * (a0 * a0 + a1 * a1)
        forward = self.forward_reward_weight * x_velocity
        reward = forward + self.healthy_reward - ctrl_cost
        # A new dict every step, not one reused: wrappers (RecordEpisodeStatistics, vector envs) add keys to it and
        # callers keep infos, so a shared dict would leak values between steps. Same keys as _info.
        info = {
            "x_position": x_position,
            "x_velocity": x_velocity,
            "reward_forward": forward,
            "reward_healthy": self.healthy_reward,
            "reward_ctrl": -ctrl_cost,
            "human_stance": _STANCE_NAMES[code & 1],
        }
        return obs, reward, fell, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array' to gymnasium.make")
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self._height, self._width)
        self._renderer.update_scene(self.data, camera="track")
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ state (as Gymnasium's MuJoCo envs)
    def observe(self) -> np.ndarray:
        """The prosthesis sensor vector of the current state, with this episode's noise and quantisation (a fresh
        noise draw: for tools that step the physics themselves). The array is the env's own, overwritten by the
        next step or observe."""
        noisy = self.episode_noise_scale > 0.0
        if noisy:
            self.np_random.standard_normal(out=self._noise_buf)
        return after_physics(*self._post_args, noisy, self.quantise_sensors)[0]

    def state_vector(self) -> np.ndarray:
        """``concatenate([qpos, qvel])`` of the simulation (a copy), as Gymnasium's ``MujocoEnv.state_vector``."""
        return np.concatenate([self.data.qpos, self.data.qvel])

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Set the simulation's joint positions and velocities (as ``MujocoEnv.set_state``); the virtual human's
        state machine and the time are not changed (use :meth:`snapshot` / :meth:`restore` for the whole state)."""
        qpos, qvel = np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64)
        if qpos.shape != (self.model.nq,) or qvel.shape != (self.model.nv,):
            raise ValueError(
                f"set_state needs qpos ({self.model.nq},) and qvel ({self.model.nv},), "
                f"got {qpos.shape} and {qvel.shape}"
            )
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def push_now(self, force_n: float, duration_s: float = 0.1) -> None:
        """Push the trunk from the next step on: ``force_n`` (N, forward positive) for ``duration_s`` (s) — a push
        triggered by an event of the gait (a heel strike) rather than scheduled by time. It joins this episode's
        pushes ahead of the scheduled ones still to come (a reset drops it)."""
        if not (math.isfinite(force_n) and math.isfinite(duration_s) and duration_s > 0.0):
            raise ValueError(f"push_now needs a finite force (N) and a duration > 0 s, got {force_n}, {duration_s}")
        i = self._push_index
        self.pushes = (*self.pushes[:i], Push(self.time, float(force_n), float(duration_s)), *self.pushes[i:])

    def snapshot(self) -> EnvSnapshot:
        """The whole closed-loop state of the plant: physics, virtual human, servo gains, slope, pushes, time and the
        noise generator. :meth:`restore` returns to it exactly (same model: no reset in between)."""
        data = mujoco.MjData(self.model)
        mujoco.mj_copyData(data, self.model, self.data)
        m = self.model
        return EnvSnapshot(
            data=data,
            human=self.human.h.copy(),
            gainprm=m.actuator_gainprm.copy(),
            biasprm=m.actuator_biasprm.copy(),
            gravity=m.opt.gravity.copy(),
            time=self.time,
            push=(self._push_index, self._push_end),
            rng=self.np_random.bit_generator.state,
            model_id=id(self.model),
        )

    def restore(self, snap: EnvSnapshot) -> None:
        """Return to a :meth:`snapshot` of this env taken since its last reset."""
        if snap.model_id != id(self.model):
            raise ValueError("this snapshot belongs to another model (the env was reset since, or another env)")
        m = self.model
        mujoco.mj_copyData(self.data, m, snap.data)
        self.human.h[:] = snap.human
        m.actuator_gainprm[:] = snap.gainprm
        m.actuator_biasprm[:] = snap.biasprm
        m.opt.gravity[:] = snap.gravity
        self.time = snap.time
        self._push_index, self._push_end = snap.push
        self.np_random.bit_generator.state = snap.rng

    # ------------------------------------------------------------------ internals

    def _apply_pushes(self) -> None:
        xfrc = self.data.xfrc_applied
        if self._push_end >= 0.0 and self.time >= self._push_end:
            xfrc[self._trunk, 0] = 0.0
            self._push_end = -1.0
        if self._push_index < len(self.pushes):
            p = self.pushes[self._push_index]
            if self.time >= p.time_s:
                xfrc[self._trunk, 0] = p.force_n
                self._push_end = self.time + p.duration_s
                self._push_index += 1

    def _info(self, x_velocity: float, forward: float, ctrl_cost: float) -> dict:
        # The info of reset; step builds the same keys inline. Foot forces and the human's state are on env.human.
        return {
            "x_position": float(self.data.qpos[0]),
            "x_velocity": float(x_velocity),
            "reward_forward": forward,
            "reward_healthy": self.healthy_reward,
            "reward_ctrl": -ctrl_cost,
            "human_stance": "prosthesis" if self.human.stance == PROSTHESIS else "sound",
        }

    @property
    def hip_height(self) -> float:
        return self._stand_height + float(self.data.qpos[1])


def _action_pair(action: Any) -> tuple[float, float]:
    """[knee, ankle] of an action as two Python floats (not yet checked for finiteness or clipped)."""
    try:
        # An ndarray's tolist() gives two Python floats in one C call, ~7x cheaper than unpacking the array
        # (two NumPy scalars) and ~10x cheaper than np.asarray + np.clip.
        a0, a1 = action.tolist()
        return float(a0), float(a1)
    except (AttributeError, TypeError, ValueError):
        try:  # anything else (sequences, a (2, 1) array, bad shapes) as before: unpack and convert
            a0, a1 = action
            return float(a0), float(a1)
        except (TypeError, ValueError):
            raise ValueError(f"action must have shape (2,) [knee, ankle], got shape {np.shape(action)}") from None


def _check_range(name: str, value: Any, low: float, high: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in [{low}, {high}], got {value!r}") from None
    if not (math.isfinite(v) and low <= v <= high):
        raise ValueError(f"{name} must be within [{low}, {high}], got {value!r}")
    return v
