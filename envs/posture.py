"""The start posture: mid-stance on the prosthesis, the sound leg just past toe-off, both feet placed on the floor.

Every episode starts here (no drop from the air): joint angles are set, the prosthetic foot is turned flat, the
root height is chosen so that the lowest contact sphere just touches the floor, and every other DOF and velocity is
reset. The forward velocity is a fraction of the target speed so the first steps need no push.
"""

from __future__ import annotations

import mujoco
import numpy as np

# Joint angles of the start posture (rad): hip flexion, knee flexion, ankle dorsiflexion; pitch = trunk lean.
START_POSE = {
    "hip_s": -0.35,
    "knee_s": 0.35,
    "ankle_s": 0.0,
    "hip_p": 0.15,
    "knee_p": 0.10,
}


def _qadr(model: mujoco.MjModel, joint: str) -> int:
    return int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)])


def place_start_posture(model: mujoco.MjModel, data: mujoco.MjData, lean: float, speed: float) -> None:
    """Reset `data` to the start posture for walking at `speed` m/s with trunk `lean` rad."""
    mujoco.mj_resetData(model, data)
    qpos = data.qpos
    qpos[_qadr(model, "rooty")] = lean
    for name, value in START_POSE.items():
        # Hip angles are relative to the trunk: keep the thighs' world angles independent of the lean.
        qpos[_qadr(model, name)] = value + (lean if name.startswith("hip") else 0.0)
    # Prosthetic foot flat: ankle = −(shank world angle).  Thigh world angle = hip − pitch; shank = thigh − knee.
    shank_p = START_POSE["hip_p"] - START_POSE["knee_p"]
    qpos[_qadr(model, "ankle_p")] = -shank_p
    qpos[_qadr(model, "rootz")] = 0.0
    mujoco.mj_kinematics(model, data)
    lowest = np.inf
    for i in range(model.ngeom):
        if model.geom_contype[i]:
            lowest = min(lowest, data.geom_xpos[i, 2] - model.geom_size[i, 0])
    # The root body sits at the standing hip height; rootz is a displacement from there.
    qpos[_qadr(model, "rootz")] = -lowest - 0.0005
    data.qvel[:] = 0.0
    data.qvel[_qadr(model, "rootx")] = 0.8 * speed
    mujoco.mj_forward(model, data)
