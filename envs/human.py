"""The virtual human: a SIMBICON-style walking controller for the human side of the walker.

It drives both hips, the sound knee and ankle, and holds the trunk upright (Yin, Loken & van de Panne, SIGGRAPH
2007). It sees the full simulation state; the prosthesis knee and ankle are never its business.

Per leg a two-state machine: state A (the first `state_a_s` of swing) lifts and swings the leg, state B extends it
until the swing foot touches down, which swaps stance and swing. The swing hip tracks a world-frame thigh angle
corrected by the centre-of-mass offset and velocity relative to the stance ankle (θ_d = θ_d0 + c_d·d + c_v·v), which
is what keeps it balanced; the stance hip holds the trunk pitch (τ_stance = −τ_torso − τ_swing). Walking speed is
set by trunk lean, with a proportional correction towards the target speed.

Joint PD servos are MuJoCo actuators evaluated at every physics step (exact, in C); this class only updates their
targets, the two hip torques and the servo gains at the control rate, so its Python cost is paid once per control
step, not once per millisecond of physics. That per-step update is itself compiled:
:func:`envs.plant_kernel.simbicon_step` on one flat float64 array (the state machine, its gains and its MuJoCo
indices); the Python version cost ~10 µs per control step in the closed loop, the kernel ~1.5 µs, with bit-identical
results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from envs.anthropometry import WalkerParams
from envs.model import ACTUATORS, SERVO_GAINS, geometry
from envs.plant_kernel import (
    H_ANKLE_BODY,
    H_ANKLE_S,
    H_HIP_KD,
    H_HIP_KP,
    H_KNEE_S,
    H_LEAN_BASE,
    H_LEAN_CORR,
    H_MAX_LEAN,
    H_MIN_SWING,
    H_MOTOR_HIP,
    H_Q_HIP,
    H_Q_PITCH,
    H_SERVO_HIP,
    H_SIZE,
    H_SPEED_EST,
    H_SPEED_KP,
    H_STANCE,
    H_STATE_A,
    H_STEPS,
    H_T_SWING,
    H_TARGET_SPEED,
    H_TARGETS,
    H_TORSO_KD,
    H_TORSO_KP,
    H_TOUCH,
    H_TOUCHDOWN,
    PROSTHESIS,
    SOUND,
    simbicon_step,
)
from envs.state_array import StateSlot

__all__ = ["PROSTHESIS", "SOUND", "HumanParams", "VirtualHuman"]


@dataclass
class HumanParams:
    """SIMBICON gains and targets (angles in rad; thigh targets are world-frame, forward positive)."""

    torso_kp: float = 800.0
    torso_kd: float = 80.0
    state_a_s: float = 0.30
    swing_hip_a: float = 0.50
    swing_hip_b: float = 0.0
    swing_knee_a: float = 1.10
    swing_knee_b: float = 0.05
    swing_ankle_a: float = 0.60
    swing_ankle_b: float = 0.15
    stance_knee_a: float = 0.05
    stance_knee_b: float = 0.10
    cd_a: float = 0.0
    cv_a: float = 0.2
    cd_b: float = 0.8
    cv_b: float = 0.2
    touchdown_n: float = 30.0
    min_swing_s: float = 0.20  # a swing shorter than this cannot end (contact chatter at toe-off)
    # Trunk lean that gives a speed: measured on this model (see tests/test_walking.py).
    lean_speeds: tuple[float, ...] = (0.6, 0.83, 0.97, 1.18, 1.45)
    lean_angles: tuple[float, ...] = (0.03, 0.10, 0.15, 0.20, 0.27)
    speed_kp: float = 0.3  # rad of extra trunk lean per m/s of speed error
    max_lean_correction: float = 0.15
    slope_lean_gain: float = 1.0  # 1 = trunk upright with respect to gravity on a slope


class VirtualHuman:
    """Sets the human actuators of one walker every control step.

    The state machine lives in the float64 array `h` (layout ``envs.plant_kernel.H_*``) that `simbicon_step`
    updates; `stance`, `t_swing`, `lean_correction`, `speed_estimate`, `steps` and `target_speed` are properties over
    it. The gains are copied from `hp` at construction and at every :meth:`reset`, so a change to `hp` takes effect at
    the next reset.
    """

    def __init__(self, model: mujoco.MjModel, params: WalkerParams, human: HumanParams | None = None) -> None:
        self.m = model
        self.hp = human or HumanParams()
        self.g = geometry(params)
        a = {name: i for i, name in enumerate(ACTUATORS)}
        self._servo_hip = (a["hip_s_servo"], a["hip_p_servo"])
        self._motor_hip = (a["hip_s_motor"], a["hip_p_motor"])
        self._knee_s, self._ankle_s = a["knee_s_servo"], a["ankle_s_servo"]
        self._hip_gain = SERVO_GAINS["hip_s_servo"]
        j = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i): model.jnt_qposadr[i] for i in range(model.njnt)}
        self._q_hip = (j["hip_s"], j["hip_p"])
        self._q_pitch = j["rooty"]
        self._ankle_body = (
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "foot_s"),
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "foot_p"),
        )
        s = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SENSOR, i): model.sensor_adr[i] for i in range(model.nsensor)}
        self._touch = ((s["heel_s_touch"], s["toe_s_touch"]), (s["heel_p_touch"], s["toe_p_touch"]))
        self._data: mujoco.MjData | None = None
        h = self.h = np.zeros(H_SIZE)
        h[H_SERVO_HIP : H_SERVO_HIP + 2] = self._servo_hip
        h[H_MOTOR_HIP : H_MOTOR_HIP + 2] = self._motor_hip
        h[H_Q_HIP : H_Q_HIP + 2] = self._q_hip
        h[H_ANKLE_BODY : H_ANKLE_BODY + 2] = self._ankle_body
        h[H_TOUCH : H_TOUCH + 4] = (*self._touch[0], *self._touch[1])
        h[H_KNEE_S], h[H_ANKLE_S], h[H_Q_PITCH] = self._knee_s, self._ankle_s, self._q_pitch
        self.reset(1.0)

    # ------------------------------------------------------------------ state
    def reset(self, target_speed: float, stance: int = PROSTHESIS) -> None:
        hp, h = self.hp, self.h
        self._min_swing = max(hp.min_swing_s, hp.state_a_s)
        h[H_TORSO_KP], h[H_TORSO_KD], h[H_STATE_A] = hp.torso_kp, hp.torso_kd, hp.state_a_s
        h[H_MIN_SWING], h[H_TOUCHDOWN] = self._min_swing, hp.touchdown_n
        h[H_SPEED_KP], h[H_MAX_LEAN] = hp.speed_kp, hp.max_lean_correction
        h[H_HIP_KP], h[H_HIP_KD] = self._hip_gain
        h[H_TARGETS : H_TARGETS + 12] = (
            *(hp.swing_hip_a, hp.swing_knee_a, hp.swing_ankle_a, hp.stance_knee_a, hp.cd_a, hp.cv_a),
            *(hp.swing_hip_b, hp.swing_knee_b, hp.swing_ankle_b, hp.stance_knee_b, hp.cd_b, hp.cv_b),
        )
        self.target_speed = float(target_speed)
        self.stance = stance
        self.t_swing = 0.0
        self.lean_correction = 0.0
        self.speed_estimate = float(target_speed)
        self.steps = 0
        self.update_lean_base()
        self.switch_servos()

    def update_lean_base(self) -> None:
        """Recompute the trunk lean for the target speed and the model's current gravity (the slope).

        Called by `reset` and whenever the env changes the slope; not per step otherwise (it is constant).
        """
        hp, g = self.hp, self.m.opt.gravity
        self.h[H_LEAN_BASE] = float(np.interp(self.target_speed, hp.lean_speeds, hp.lean_angles)) + (
            hp.slope_lean_gain * math.atan2(-g[0], -g[2])
        )

    stance = StateSlot("h", H_STANCE, int, "The stance leg, SOUND or PROSTHESIS.", writable=True)
    t_swing = StateSlot("h", H_T_SWING, float, "Time since the last stance change, s.", writable=True)
    lean_correction = StateSlot("h", H_LEAN_CORR, float, "Trunk lean added by the speed feedback, rad.", writable=True)
    speed_estimate = StateSlot("h", H_SPEED_EST, float, "Low-passed pelvis velocity, m/s.", writable=True)
    steps = StateSlot("h", H_STEPS, int, "Stance changes since reset.", writable=True)
    target_speed = StateSlot("h", H_TARGET_SPEED, float, "Walking speed the human aims at, m/s.", writable=True)

    def lean(self) -> float:
        """Trunk pitch target in the model frame: speed lean, speed correction, and the slope (upright to gravity)."""
        return float(self.h[H_LEAN_BASE] + self.h[H_LEAN_CORR])

    def foot_force(self, data: mujoco.MjData, leg: int) -> float:
        heel, toe = self._touch[leg]
        return float(data.sensordata[heel] + data.sensordata[toe])

    def _set_hip_servo(self, leg: int, on: bool) -> None:
        kp, kd = self._hip_gain if on else (0.0, 0.0)
        i = self._servo_hip[leg]
        self.m.actuator_gainprm[i, 0] = kp
        self.m.actuator_biasprm[i, 1] = -kp
        self.m.actuator_biasprm[i, 2] = -kd

    def switch_servos(self) -> None:
        """Servo gains for the current stance: the stance hip is torque-driven, the swing hip position-servoed."""
        self._set_hip_servo(self.stance, on=False)
        self._set_hip_servo(1 - self.stance, on=True)

    # ------------------------------------------------------------------ control
    def kernel_args(self, data: mujoco.MjData) -> tuple:
        """The arguments of `simbicon_step` before `dt`, for `data`: bind them once (MjData's arrays are views of its
        buffers; fetching them costs ~0.3 µs per attribute per step)."""
        return (self.h, data.qpos, data.qvel, data.sensordata, data.ctrl, data.subtree_com, data.xpos)

    def update(self, data: mujoco.MjData, dt: float) -> None:
        """Advance the state machine by `dt` and write the human's actuator commands into `data.ctrl`."""
        if data is not self._data:
            self._data = data
            self._args = self.kernel_args(data)
        if simbicon_step(*self._args, dt) > 1:
            self.switch_servos()
