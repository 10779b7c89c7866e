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
step, not once per millisecond of physics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from envs.anthropometry import WalkerParams
from envs.model import ACTUATORS, SERVO_GAINS, geometry

SOUND, PROSTHESIS = 0, 1


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
    """Sets the human actuators of one walker every control step."""

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
        self._min_swing = max(self.hp.min_swing_s, self.hp.state_a_s)
        hp = self.hp
        self._targets = (
            (hp.swing_hip_a, hp.swing_knee_a, hp.swing_ankle_a, hp.stance_knee_a, hp.cd_a, hp.cv_a),
            (hp.swing_hip_b, hp.swing_knee_b, hp.swing_ankle_b, hp.stance_knee_b, hp.cd_b, hp.cv_b),
        )
        self.reset(1.0)

    # ------------------------------------------------------------------ state
    def reset(self, target_speed: float, stance: int = PROSTHESIS) -> None:
        self.target_speed = float(target_speed)
        self.stance = stance
        self.t_swing = 0.0
        self.lean_correction = 0.0
        self.speed_estimate = float(target_speed)
        self.steps = 0
        # Constant through an episode: computed here, not per step.
        g = self.m.opt.gravity
        self._lean_base = float(np.interp(self.target_speed, self.hp.lean_speeds, self.hp.lean_angles)) + (
            self.hp.slope_lean_gain * math.atan2(-g[0], -g[2])
        )
        self._set_hip_servo(stance, on=False)
        self._set_hip_servo(1 - stance, on=True)

    def lean(self) -> float:
        """Trunk pitch target in the model frame: speed lean, speed correction, and the slope (upright to gravity)."""
        return self._lean_base + self.lean_correction

    def foot_force(self, data: mujoco.MjData, leg: int) -> float:
        heel, toe = self._touch[leg]
        return float(data.sensordata[heel] + data.sensordata[toe])

    def _set_hip_servo(self, leg: int, on: bool) -> None:
        kp, kd = self._hip_gain if on else (0.0, 0.0)
        i = self._servo_hip[leg]
        self.m.actuator_gainprm[i, 0] = kp
        self.m.actuator_biasprm[i, 1] = -kp
        self.m.actuator_biasprm[i, 2] = -kd

    # ------------------------------------------------------------------ control
    def _bind(self, data: mujoco.MjData) -> None:
        # MjData's arrays are views of its buffers: fetching them once saves ~0.3 µs per access per step.
        self._data = data
        self._qpos, self._qvel, self._sensors, self._ctrl = data.qpos, data.qvel, data.sensordata, data.ctrl
        self._com, self._xpos = data.subtree_com, data.xpos

    def update(self, data: mujoco.MjData, dt: float) -> None:
        """Advance the state machine by `dt` and write the human's actuator commands into `data.ctrl`."""
        if data is not self._data:
            self._bind(data)
        hp = self.hp
        self.t_swing += dt
        swing = 1 - self.stance
        heel, toe = self._touch[swing]
        sensors = self._sensors
        if self.t_swing >= self._min_swing and sensors[heel] + sensors[toe] > hp.touchdown_n:
            self.stance, swing = swing, self.stance
            self.t_swing = 0.0
            self._set_hip_servo(self.stance, on=False)
            self._set_hip_servo(swing, on=True)
            self.steps += 1

        # Speed: low-pass the pelvis velocity over ~1 s and integrate the error into the trunk lean.
        qvel, qpos = self._qvel, self._qpos
        v = qvel[0]
        self.speed_estimate += (v - self.speed_estimate) * min(1.0, dt)
        # Proportional, not integral: an integrator adds a slow mode with a multiplier near 1 to the gait.
        corr = hp.speed_kp * (self.target_speed - self.speed_estimate)
        limit = hp.max_lean_correction
        self.lean_correction = corr = -limit if corr < -limit else (limit if corr > limit else corr)

        hip0, knee_sw, ankle_sw, knee_st, cd, cv = self._targets[0 if self.t_swing < hp.state_a_s else 1]
        # Balance feedback: centre of mass relative to the stance ankle.
        d = self._com[1, 0] - self._xpos[self._ankle_body[self.stance], 0]
        thigh_target = hip0 + cd * d + cv * v

        pitch = qpos[self._q_pitch]
        ctrl = self._ctrl
        # Swing hip: world-frame thigh target → hip joint target (hip = thigh angle + trunk pitch).
        hip_target = thigh_target + pitch
        ctrl[self._servo_hip[swing]] = hip_target
        ctrl[self._motor_hip[swing]] = 0.0
        if swing == SOUND:
            ctrl[self._knee_s] = knee_sw
            ctrl[self._ankle_s] = ankle_sw
        else:
            ctrl[self._knee_s] = knee_st
            ctrl[self._ankle_s] = 0.0

        # Stance hip holds the trunk and cancels the swing hip's reaction on it (hinge joints: qvel index = qpos).
        kp, kd = self._hip_gain
        q_sw = self._q_hip[swing]
        tau_swing = kp * (hip_target - qpos[q_sw]) - kd * qvel[q_sw]
        tau_torso = hp.torso_kp * (pitch - self._lean_base - corr) + hp.torso_kd * qvel[2]
        ctrl[self._motor_hip[self.stance]] = -tau_torso - tau_swing
        ctrl[self._servo_hip[self.stance]] = qpos[self._q_hip[self.stance]]
