"""Records the per-step signals of one episode into preallocated arrays, for :func:`envs.metrics.summarize`.

The recorder reads the simulation (ground-truth COM, feet, trunk) as well as the prosthesis sensors, so metrics are
computed from the simulation, not guessed from what the controller saw. Arrays are allocated once per episode; a
step writes a fixed set of scalars and allocates nothing.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.human import PROSTHESIS, SOUND
from envs.metrics import EpisodeSignals
from envs.walker_env import ProstheticWalkerEnv

# Poincaré state at prosthetic heel strike: joint angles and velocities that do not drift (no absolute x).
_POINCARE_QPOS = ("rootz", "rooty", "hip_s", "knee_s", "ankle_s", "hip_p", "knee_p", "ankle_p")
_POINCARE_QVEL = ("rootx", "rootz", "rooty", "hip_s", "knee_s", "hip_p", "knee_p")
_SCALARS = (
    "t", "x_com", "v_com", "com_height", "trunk_height", "pitch", "hip_x", "sound_force", "prosth_force",
    "load_cell", "knee_q", "knee_q_des", "ankle_q", "ankle_q_des", "prosth_toe_x", "sound_toe_x",
)  # fmt: skip


class EpisodeRecorder:
    """Collects :class:`envs.metrics.EpisodeSignals` from a :class:`ProstheticWalkerEnv`, one call per step."""

    def __init__(self, env: ProstheticWalkerEnv, max_steps: int) -> None:
        self.env = env
        self.max_steps = int(max_steps)
        self._buf = np.full((len(_SCALARS), self.max_steps), np.nan)
        self._poincare = np.zeros((self.max_steps, len(_POINCARE_QPOS) + len(_POINCARE_QVEL)))
        self._foot_z = np.zeros(self.max_steps)
        self.n = 0
        self.bind()

    def bind(self) -> None:
        """Look up model indices; call after every env reset (randomisation rebuilds the model)."""
        m = self.env.model
        jid = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, i): i for i in range(m.njnt)}
        self._qpos_idx = np.array([m.jnt_qposadr[jid[n]] for n in _POINCARE_QPOS])
        self._qvel_idx = np.array([m.jnt_dofadr[jid[n]] for n in _POINCARE_QVEL])
        self._toe_p = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "toe_p")
        self._toe_s = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "toe_s")
        self._contacts_p = np.array(
            [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("heel_p", "toe_p")], dtype=int
        )
        self._radius = float(m.geom_size[self._contacts_p[0], 0])
        self._last_com = None
        self.n = 0

    def record(self, obs: np.ndarray, knee_des: float, ankle_des: float) -> None:
        """Store one step: `obs` is the sensor vector the controller saw; the references are the PD's."""
        k = self.n
        if k >= self.max_steps:
            return
        env, d, b = self.env, self.env.data, self._buf
        com = d.subtree_com[1]
        b[0, k] = env.time
        b[1, k] = com[0]
        b[2, k] = 0.0 if self._last_com is None else (com[0] - self._last_com) / env.dt
        self._last_com = com[0]
        b[3, k] = com[2]
        b[4, k] = env.hip_height
        b[5, k] = d.qpos[2]
        b[6, k] = d.qpos[0]
        b[7, k] = env.human.foot_force(d, SOUND)
        b[8, k] = env.human.foot_force(d, PROSTHESIS)
        b[9, k] = obs[6]
        b[10, k] = obs[0]
        b[11, k] = knee_des
        b[12, k] = obs[2]
        b[13, k] = ankle_des
        b[14, k] = d.site_xpos[self._toe_p, 0]
        b[15, k] = d.site_xpos[self._toe_s, 0]
        nq = len(self._qpos_idx)
        self._poincare[k, :nq] = d.qpos[self._qpos_idx]
        self._poincare[k, nq:] = d.qvel[self._qvel_idx]
        gz = d.geom_xpos
        self._foot_z[k] = min(gz[self._contacts_p[0], 2], gz[self._contacts_p[1], 2]) - self._radius
        self.n = k + 1

    def signals(self, fell: bool) -> EpisodeSignals:
        n = self.n
        cols = {name: self._buf[i, :n].copy() for i, name in enumerate(_SCALARS)}
        if n > 1:
            cols["v_com"][0] = cols["v_com"][1]
        return EpisodeSignals(
            **cols,
            poincare=self._poincare[:n].copy(),
            fell=bool(fell),
            body_weight_n=self.env.body_weight,
            dt=self.env.dt,
            prosth_foot_z=self._foot_z[:n].copy(),
        )
