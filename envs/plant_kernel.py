"""Compiled per-control-step kernels of the plant: the virtual human's state machine and the env's work around the
physics (motor commands, sensor vector, fall check), as numba functions on flat float64 arrays and MjData views.

Why: in the closed loop the pure-Python versions cost ~30 µs per control step, ~60 % on top of the physics
(5 × mj_step at 200 Hz): every attribute look-up and small-array operation missed a cache the physics had just
flushed. Two kernel calls per `env.step` (one before `mj_step`, one after) cost a few µs.

Exactness: the float operations are those of the Python versions in the same order, with ``fastmath=False`` (no
reassociation, no fused multiply-add), so observations and trajectories are bit-identical to them.

Why one module: the env's kernels and everything they call live together, so a reader finds the per-step work of
`env.step` in one place; :mod:`envs.human` and :mod:`envs.walker_env` keep the Python side (construction, reset, the
public attributes, which are properties over these arrays). (Numba's own cache is invalidated per source file only;
``envs.jit.kernel`` keys it by every reachable project module, so splitting would now be safe too.)
"""

from __future__ import annotations

import math

import numpy as np

from envs.jit import kernel
from envs.sensors import N_SENSORS

SOUND, PROSTHESIS = 0, 1  # legs; re-exported by envs.human

# The sensor vector after_physics writes, channel by channel (envs.sensors documents it). A constant of this file:
# a global imported from another module would be frozen into the cache without invalidating it.
N_OBS = 7
if N_SENSORS != N_OBS:
    raise ImportError(f"envs.plant_kernel writes {N_OBS} sensors but envs.sensors defines {N_SENSORS}: update both")

# Layout of VirtualHuman's float64 array `h`: the state machine (H_STANCE … H_LEAN_BASE), then constants set at
# construction and reset (gains, thresholds, the two rows of targets) and the MuJoCo indices it reads and writes
# (small integers, exact as float64; one array means one dispatcher argument instead of three).
H_STANCE, H_T_SWING, H_LEAN_CORR, H_SPEED_EST, H_STEPS, H_TARGET_SPEED, H_LEAN_BASE = range(7)
H_TORSO_KP, H_TORSO_KD, H_STATE_A, H_MIN_SWING, H_TOUCHDOWN, H_SPEED_KP, H_MAX_LEAN, H_HIP_KP, H_HIP_KD = range(7, 16)
H_TARGETS = 16  # 2 rows (state A, state B) × 6: swing hip, swing knee, swing ankle, stance knee, c_d, c_v
H_SERVO_HIP, H_MOTOR_HIP, H_Q_HIP, H_ANKLE_BODY = 28, 30, 32, 34  # 2 each, indexed by leg
H_TOUCH = 36  # heel, toe sensor addresses of leg 0, then of leg 1
H_KNEE_S, H_ANKLE_S, H_Q_PITCH = 40, 41, 42
H_SIZE = 43


@kernel(fastmath=False, error_model="numpy")
def simbicon_step(
    h: np.ndarray,
    qpos: np.ndarray,
    qvel: np.ndarray,
    sensors: np.ndarray,
    ctrl: np.ndarray,
    com: np.ndarray,
    xpos: np.ndarray,
    dt: float,
) -> int:
    """One control step of the virtual human on the state array `h` (layout H_*), writing its actuators into `ctrl`.

    Returns the stance leg, plus 2 when the stance changed this step: the caller then switches the hip servo gains
    (model parameters, kept out of the kernel because it happens once per step of the gait, not per control step).
    """
    stance = int(h[H_STANCE])
    swing = 1 - stance
    t_swing = h[H_T_SWING] + dt
    switched = 0
    heel, toe = int(h[H_TOUCH + 2 * swing]), int(h[H_TOUCH + 2 * swing + 1])
    if t_swing >= h[H_MIN_SWING] and sensors[heel] + sensors[toe] > h[H_TOUCHDOWN]:
        stance, swing = swing, stance
        t_swing = 0.0
        h[H_STEPS] += 1.0
        switched = 2
    h[H_STANCE] = stance
    h[H_T_SWING] = t_swing

    # Speed: low-pass the pelvis velocity over ~1 s and integrate the error into the trunk lean.
    v = qvel[0]
    speed_estimate = h[H_SPEED_EST] + (v - h[H_SPEED_EST]) * min(1.0, dt)
    h[H_SPEED_EST] = speed_estimate
    # Proportional, not integral: an integrator adds a slow mode with a multiplier near 1 to the gait.
    corr = h[H_SPEED_KP] * (h[H_TARGET_SPEED] - speed_estimate)
    limit = h[H_MAX_LEAN]
    corr = -limit if corr < -limit else (limit if corr > limit else corr)
    h[H_LEAN_CORR] = corr

    row = H_TARGETS if t_swing < h[H_STATE_A] else H_TARGETS + 6
    # Balance feedback: centre of mass relative to the stance ankle.
    d = com[1, 0] - xpos[int(h[H_ANKLE_BODY + stance]), 0]
    thigh_target = h[row] + h[row + 4] * d + h[row + 5] * v

    pitch = qpos[int(h[H_Q_PITCH])]
    # Swing hip: world-frame thigh target → hip joint target (hip = thigh angle + trunk pitch).
    hip_target = thigh_target + pitch
    ctrl[int(h[H_SERVO_HIP + swing])] = hip_target
    ctrl[int(h[H_MOTOR_HIP + swing])] = 0.0
    if swing == SOUND:
        ctrl[int(h[H_KNEE_S])] = h[row + 1]
        ctrl[int(h[H_ANKLE_S])] = h[row + 2]
    else:
        ctrl[int(h[H_KNEE_S])] = h[row + 3]
        ctrl[int(h[H_ANKLE_S])] = 0.0

    # Stance hip holds the trunk and cancels the swing hip's reaction on it (hinge joints: qvel index = qpos).
    q_sw = int(h[H_Q_HIP + swing])
    tau_swing = h[H_HIP_KP] * (hip_target - qpos[q_sw]) - h[H_HIP_KD] * qvel[q_sw]
    tau_torso = h[H_TORSO_KP] * (pitch - h[H_LEAN_BASE] - corr) + h[H_TORSO_KD] * qvel[2]
    ctrl[int(h[H_MOTOR_HIP + stance])] = -tau_torso - tau_swing
    ctrl[int(h[H_SERVO_HIP + stance])] = qpos[int(h[H_Q_HIP + stance])]
    return stance + switched


@kernel(fastmath=False, error_model="numpy")
def _quantise(x: np.ndarray, step: np.ndarray) -> None:
    """:func:`envs.sensors.quantise` in a loop: same rounding (half to even: numba's np.round is rint, as NumPy's)."""
    for i in range(x.shape[0]):
        if step[i] > 0:
            x[i] = np.round(x[i] / step[i]) * step[i]


# Layout of the env's float64 array `_e`: per-model constants (set by _build), the x position before the physics,
# then four sensor-sized blocks: noise std and quantisation step (set by reset), the noise draw, the float64 reading.
E_PEAK_KNEE, E_PEAK_ANKLE, E_DT, E_FALL_Z, E_S_QUAT, E_S_GYRO_Y, E_S_LOAD_Z, E_X_BEFORE = range(8)
E_NOISE_STD = 8
E_QUANT_STEP = E_NOISE_STD + N_OBS
E_NOISE = E_QUANT_STEP + N_OBS
E_OBS = E_NOISE + N_OBS
E_SIZE = E_OBS + N_OBS


@kernel(fastmath=False, error_model="numpy")
def before_physics(
    a0: float,
    a1: float,
    e: np.ndarray,
    h: np.ndarray,
    qpos: np.ndarray,
    qvel: np.ndarray,
    sensors: np.ndarray,
    ctrl: np.ndarray,
    com: np.ndarray,
    xpos: np.ndarray,
    dt: float,
) -> int:
    """Motor commands from the (checked, clipped) action, then the virtual human; returns simbicon_step's code."""
    ctrl[0] = a0 * e[E_PEAK_KNEE]
    ctrl[1] = a1 * e[E_PEAK_ANKLE]
    code = simbicon_step(h, qpos, qvel, sensors, ctrl, com, xpos, dt)
    e[E_X_BEFORE] = qpos[0]
    return code


@kernel(fastmath=False, error_model="numpy")
def after_physics(
    e: np.ndarray, sensors: np.ndarray, qpos: np.ndarray, noisy: bool, quantised: bool
) -> tuple[np.ndarray, bool, float, float]:
    """The observation (a new float32 array), the fall flag, the forward velocity over the step and the x position.

    With `noisy`, the caller has drawn standard normals into e[E_NOISE:]; they are scaled by e[E_NOISE_STD:].
    """
    o = e[E_OBS : E_OBS + N_OBS]
    for i in range(4):
        o[i] = sensors[i]
    q = int(e[E_S_QUAT])
    # Planar: the thigh's world rotation is about +y; forward (flexion) is the negative rotation.
    o[4] = -2.0 * math.atan2(sensors[q + 2], sensors[q])
    o[5] = -sensors[int(e[E_S_GYRO_Y])]
    o[6] = -sensors[int(e[E_S_LOAD_Z])]
    if noisy:
        for i in range(N_OBS):
            o[i] += e[E_NOISE + i] * e[E_NOISE_STD + i]
    if quantised:
        _quantise(o, e[E_QUANT_STEP : E_QUANT_STEP + N_OBS])
    obs = np.empty(N_OBS, np.float32)
    for i in range(N_OBS):
        obs[i] = o[i]
    x, z, pitch = qpos[0], qpos[1], qpos[2]
    # Written so that NaN compares False and counts as a fall.
    fell = not (z > e[E_FALL_Z] and -1.0 < pitch < 1.0 and x == x)
    return obs, fell, (x - e[E_X_BEFORE]) / e[E_DT], x
