"""The AMPRO3-style phase-based PD baseline, using prosthesis sensors only.

Two domains, switched by the load cell with hysteresis and minimum dwell times:

* **stance** (``domain = 1``, AMPRO's ``ishumanswing = 1``): the phase τ is linear in the forward position of the hip
  relative to the prosthetic mid-foot, estimated by forward kinematics from the thigh IMU angle and the knee and ankle
  encoders (a human-inspired, state-based phase as on AMPRO3);
* **swing** (``domain = 0``): the phase is time-based.

The desired knee angle is a Bézier polynomial of τ in stance and a smooth (raised-cosine) lift-and-extend profile in
swing; the desired ankle angle is 0 (flat foot, as in the AMPRO3 log). The law is AMPRO3's, exactly::

    τ_knee  = −Kp,k (q_k − q_k,des) − Kd,k (q̇_k − q̇_k,des)        (100, 20 by default)
    τ_ankle = −Kp,a (q_a − q_a,des) − Kd,a  q̇_a                   (70, 10 by default)

saturated at the motor peak torques. Swing onset is detected from the prosthesis' own sensors — unloading alone
deadlocks against the human's own timing (shared/facts/gait.md): stance → swing after ≥ `min_stance_s` when the
load stays below `unload_n` for `unload_s`, or when the load is below `late_stance_bw`·BW while the thigh, not yet
more than `late_stance_thigh` rad ahead of vertical, already swings forward faster than `swing_thigh_velocity` (the
hip has started the swing: waiting for full unloading would drag the toe); swing → stance when the load exceeds
`contact_n` after ≥ `min_swing_s` with the knee extended below `contact_max_knee` — with the knee still flexed it is
a toe scuff, unless the load exceeds `contact_bw`·BW (a real, early landing). The late-stance rule also asks the
stance phase (AMPRO3's lives in the hip position) for consent: it waits while the hip is more than
`late_stance_min_x` behind the mid-foot, where a light load is weight shared in double support, not push-off.

Both guards were measured on 150 randomised 60 s episodes (README): without the consent the PD lifted the knee under
a loaded leg every other stride at 1.0 m/s (the period-2 gait) and fell on downhill starts at speed (9 → 3 falls);
taking scuffs for heel strikes put the knee into stance in the air and made the next step overreach (with the knee
gate: the worst episode's knee RMSE 0.24 → 0.17 rad, 1.2 m/s seed 1's 0.21 → 0.12 rad).

The swing ends on a knee flexed to `swing_end` = 0.30 rad (17°), not nearly straight: a straight leg reaches for
ground that is lower on a downhill, the swing overruns its profile (τ to 1.3), the foot lands late and far forward,
and the step lengths alternate long/short until the walker falls. Measured with the PD alone, 60 s episodes with the
evaluation's randomisation (`benchmarks/pd_swing_end.py` → `benchmarks/results/pd_swing_end.md`): at 0.15 rad it fell
on 1/150 episodes of the README's baseline grid, 2/45 of the hard-deadline acceptance grid (0.8/1.0/1.2 m/s ×
−3/0/+3° ± 5° × seeds 0–4) and 9/60 downhill starts on other seeds (1.0/1.2 m/s, −3 ± 5°, seeds 5–34); at 0.30 rad
0/150, 0/45 and 1/60, and the mean knee RMSE on the baseline grid fell 0.113 → 0.084 rad. Of the values tried, 0.25
fell once on the 45 and 0.35 / 0.40 three times on the downhill starts. (AMPRO3's own log holds its stance knee at
0.35–0.38 rad.)

The controller exposes its internals (`domain`, `phase`, `knee_des`, `knee_vel_des`, `ankle_des`) after every `act`,
so it can label any trajectory (DAgger expert, run in shadow) and produce the AMPRO error features.

`act` and `update_reference` run one compiled numba kernel (:func:`_pd_step`) on a flat float64 array holding the
state, the parameters and the polynomial; the internals above are properties over that array. In the closed loop the
Python version cost ~8 µs per control step, the kernel ~3 µs. The kernel computes in float64 in the Python version's
operation order (no fastmath), so the torques are bit-identical to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from envs.anthropometry import WalkerParams
from envs.jit import kernel
from envs.model import Geometry, geometry
from envs.state_array import StateSlot

STANCE, SWING = 1, 0


def bezier_to_power(coeffs: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Power-basis coefficients (highest degree first) of a Bézier polynomial and of its derivative, for Horner."""
    n = len(coeffs) - 1
    power = np.zeros(n + 1)
    for k in range(n + 1):
        # B_k,n(s) = C(n,k) s^k (1-s)^(n-k) = Σ_j C(n,k) C(n-k,j) (-1)^j s^(k+j)
        for j in range(n - k + 1):
            power[k + j] += coeffs[k] * math.comb(n, k) * math.comb(n - k, j) * (-1) ** j
    deriv = [power[i] * i for i in range(1, n + 1)]
    return tuple(float(c) for c in power[::-1]), tuple(float(c) for c in deriv[::-1])


def horner(coeffs: tuple[float, ...], s: float) -> float:
    value = 0.0
    for c in coeffs:
        value = value * s + c
    return value


@dataclass(frozen=True)
class PDParams:
    """Gains, trajectories and switching thresholds of the AMPRO-style PD."""

    kp_knee: float = 100.0
    kd_knee: float = 20.0
    kp_ankle: float = 70.0
    kd_ankle: float = 10.0
    # Stance: knee Bézier over τ; τ = 0 … 1 as the hip moves from x_start to x_end relative to the mid-foot (m).
    stance_knee: tuple[float, ...] = (0.15, 0.15, 0.15, 0.15, 0.15)
    x_start: float = -0.25
    x_end: float = 0.35
    # Swing: raised cosine up to `swing_peak` at `t_peak`, down to `swing_end` at `t_end` (s).
    swing_peak: float = 1.0
    t_peak: float = 0.17
    swing_end: float = 0.30  # rad: the knee lands flexed (see the module docstring)
    t_end: float = 0.40
    # Domain switching (load cell, N; body weight fraction; thigh angle rad; times s).
    min_stance_s: float = 0.20
    unload_n: float = 20.0
    unload_s: float = 0.02
    late_stance_bw: float = 0.3
    late_stance_thigh: float = 0.15
    swing_thigh_velocity: float = 0.3  # rad/s forward: the hip has started the swing
    late_stance_min_x: float = -0.08  # m, hip relative to the mid-foot (x_start is heel strike)
    contact_n: float = 60.0
    min_swing_s: float = 0.25
    contact_max_knee: float = 0.5  # rad
    contact_bw: float = 0.5
    knee_limit: float = 142.0  # N·m
    ankle_limit: float = 168.0  # N·m

    def scaled_gains(self, factor: float) -> PDParams:
        """The same law with all four gains multiplied by `factor`."""
        return replace(
            self,
            kp_knee=self.kp_knee * factor,
            kd_knee=self.kd_knee * factor,
            kp_ankle=self.kp_ankle * factor,
            kd_ankle=self.kd_ankle * factor,
        )


# Layout of AmproPD's float64 array `_s`: state (S_DOMAIN … S_SWING_START), constants, then the stance-knee polynomial
# (S_POLY_N coefficients from S_POLY, highest degree first) followed by its derivative (S_POLY_N − 1 coefficients).
S_DOMAIN, S_T_DOMAIN, S_T_UNLOADED, S_PHASE, S_KNEE_DES, S_KNEE_VEL_DES, S_ANKLE_DES, S_ANKLE_VEL_DES = range(8)
S_HIP_X, S_SWING_START = 8, 9
S_DT, S_BODY_WEIGHT, S_THIGH, S_SHANK, S_ANKLE_HEIGHT, S_FOOT_X = range(10, 16)
S_KP_KNEE, S_KD_KNEE, S_KP_ANKLE, S_KD_ANKLE, S_X_START, S_X_END = range(16, 22)
S_SWING_PEAK, S_T_PEAK, S_SWING_END, S_T_END = range(22, 26)
S_MIN_STANCE, S_UNLOAD_N, S_UNLOAD_S, S_LATE_BW, S_LATE_THIGH, S_SWING_THIGH_VEL = range(26, 32)
S_CONTACT_N, S_MIN_SWING = 32, 33
S_KNEE_LIMIT, S_ANKLE_LIMIT, S_POLY_N = 34, 35, 36
S_LATE_MIN_X, S_CONTACT_KNEE, S_CONTACT_BW = 37, 38, 39
S_POLY = 40


@kernel(fastmath=False, error_model="numpy")
def _hip_kinematics(
    qk: float,
    qkd: float,
    qa: float,
    qad: float,
    th: float,
    thd: float,
    thigh: float,
    shank: float,
    ankle_height: float,
    foot_x: float,
) -> tuple[float, float]:
    """Forward hip position relative to the prosthetic mid-foot (m) and its rate (m/s), planar forward kinematics."""
    sh, shd = th - qk, thd - qkd
    psi, psid = sh + qa, shd + qad
    cp, sp = math.cos(psi), math.sin(psi)
    x = -(thigh * math.sin(th) + shank * math.sin(sh)) - (foot_x * cp + ankle_height * sp)
    xd = -(thigh * math.cos(th) * thd + shank * math.cos(sh) * shd) - (-foot_x * sp + ankle_height * cp) * psid
    return x, xd


@kernel(fastmath=False, error_model="numpy")
def _pd_step(s: np.ndarray, obs: np.ndarray, out: np.ndarray, torque: bool) -> bool:
    """Domain switch and reference for one sensor vector (+ the saturated PD law into `out` when `torque`) on `s`.

    Returns False, changing nothing, unless `obs` holds the 7 sensors. The float operations are those of the
    pure-Python controller this replaced, in the same order, in float64 (float32 sensors are widened first).
    """
    if obs.shape[0] != 7:
        return False
    # np.float64, not float(): numba's float() keeps a float32 a float32, and the arithmetic would follow.
    f64 = np.float64
    qk, qkd, qa, qad = f64(obs[0]), f64(obs[1]), f64(obs[2]), f64(obs[3])
    th, thd, load = f64(obs[4]), f64(obs[5]), f64(obs[6])
    dt = s[S_DT]
    # Hip progression over the prosthetic foot: the stance phase, and the late-stance rule's consent.
    x, xd = _hip_kinematics(qk, qkd, qa, qad, th, thd, s[S_THIGH], s[S_SHANK], s[S_ANKLE_HEIGHT], s[S_FOOT_X])
    # Domain switching (see the module docstring).
    domain = s[S_DOMAIN]
    t_domain = s[S_T_DOMAIN] + dt
    if domain == STANCE:
        t_unloaded = s[S_T_UNLOADED] + dt if load < s[S_UNLOAD_N] else 0.0
        s[S_T_UNLOADED] = t_unloaded
        if t_domain >= s[S_MIN_STANCE] and (
            t_unloaded >= s[S_UNLOAD_S]
            or (
                x >= s[S_LATE_MIN_X]
                and load < s[S_LATE_BW] * s[S_BODY_WEIGHT]
                and thd > s[S_SWING_THIGH_VEL]
                and th < s[S_LATE_THIGH]
            )
        ):
            domain = SWING
            t_domain = 0.0
            s[S_SWING_START] = qk
    elif (
        t_domain >= s[S_MIN_SWING]
        and load > s[S_CONTACT_N]
        and (qk < s[S_CONTACT_KNEE] or load > s[S_CONTACT_BW] * s[S_BODY_WEIGHT])
    ):
        domain = STANCE
        t_domain = 0.0
        s[S_T_UNLOADED] = 0.0
    s[S_DOMAIN] = domain
    s[S_T_DOMAIN] = t_domain
    if domain == STANCE:
        # Stance: knee Bézier (power basis, Horner) of the hip progression.
        span = s[S_X_END] - s[S_X_START]
        s[S_HIP_X] = x
        phase = (x - s[S_X_START]) / span
        u = 0.0 if phase < 0.0 else (1.0 if phase > 1.0 else phase)
        n = int(s[S_POLY_N])
        knee_des = 0.0
        for i in range(S_POLY, S_POLY + n):
            knee_des = knee_des * u + s[i]
        knee_vel_des = 0.0
        if 0.0 < phase < 1.0:
            dv = 0.0
            for i in range(S_POLY + n, S_POLY + 2 * n - 1):
                dv = dv * u + s[i]
            knee_vel_des = dv * xd / span
    else:
        # Swing: raised cosine from the knee angle at swing onset up to swing_peak at t_peak, down to swing_end at
        # t_end, then held.
        t = t_domain
        phase = t / s[S_T_END]
        ramp = True
        if t < s[S_T_PEAK]:
            a, b, t0, t1 = s[S_SWING_START], s[S_SWING_PEAK], 0.0, s[S_T_PEAK]
        elif t < s[S_T_END]:
            a, b, t0, t1 = s[S_SWING_PEAK], s[S_SWING_END], s[S_T_PEAK], s[S_T_END]
        else:
            ramp = False
            a = b = t0 = t1 = 0.0
        if ramp:
            w = math.pi / (t1 - t0)
            v = (t - t0) * w
            knee_des = a + (b - a) * 0.5 * (1 - math.cos(v))
            knee_vel_des = (b - a) * 0.5 * w * math.sin(v)
        else:
            knee_des, knee_vel_des = s[S_SWING_END], 0.0
    s[S_PHASE] = phase
    s[S_KNEE_DES] = knee_des
    s[S_KNEE_VEL_DES] = knee_vel_des
    s[S_ANKLE_DES] = 0.0
    s[S_ANKLE_VEL_DES] = 0.0
    if torque:
        _pd_law(s, qk, qkd, qa, qad, out)
    return True


@kernel(fastmath=False, error_model="numpy")
def _pd_law(s: np.ndarray, qk: float, qkd: float, qa: float, qad: float, out: np.ndarray) -> None:
    """The saturated PD law on the reference held in `s` (AMPRO3's law, see the module docstring) into `out`."""
    tk = -s[S_KP_KNEE] * (qk - s[S_KNEE_DES]) - s[S_KD_KNEE] * (qkd - s[S_KNEE_VEL_DES])
    ta = -s[S_KP_ANKLE] * (qa - s[S_ANKLE_DES]) - s[S_KD_ANKLE] * qad
    lk, la = s[S_KNEE_LIMIT], s[S_ANKLE_LIMIT]
    out[0] = -lk if tk < -lk else (lk if tk > lk else tk)
    out[1] = -la if ta < -la else (la if ta > la else ta)


class AmproPD:
    """AMPRO3 phase-based PD controller: prosthesis sensors in, knee and ankle torques (N·m) out.

    Parameters
    ----------
    dt:
        Control period in s (the swing phase is time-based).
    params:
        Gains, trajectories and thresholds; AMPRO3's defaults.
    walker:
        The user's body and device, for forward kinematics and body weight (a real device is configured with the
        user's segment lengths and weight the same way).
    """

    name = "pd"

    def __init__(self, dt: float = 0.005, params: PDParams | None = None, walker: WalkerParams | None = None) -> None:
        if not 0.0 < dt <= 0.02:
            raise ValueError(f"control period dt must be in (0, 0.02] s, got {dt}")
        self.dt = float(dt)
        walker = walker or WalkerParams()
        self.p = params or PDParams(
            knee_limit=walker.prosthesis.knee_peak_torque, ankle_limit=walker.prosthesis.ankle_peak_torque
        )
        self.geom: Geometry = geometry(walker)
        self.body_weight = walker.body_weight
        self._stance_knee = np.asarray(self.p.stance_knee, dtype=float)
        self._knee_poly, self._knee_dpoly = bezier_to_power(self._stance_knee)
        # Mid-foot contact point relative to the ankle, in the foot frame.
        self._foot_x = 0.5 * (self.geom.toe - self.geom.heel)
        self._out = np.zeros(2)
        p, g, n = self.p, self.geom, len(self._knee_poly)
        s = self._s = np.zeros(S_POLY + 2 * n - 1)
        s[S_DT], s[S_BODY_WEIGHT] = self.dt, self.body_weight
        s[S_THIGH], s[S_SHANK], s[S_ANKLE_HEIGHT], s[S_FOOT_X] = g.thigh, g.shank, g.ankle_height, self._foot_x
        s[S_KP_KNEE], s[S_KD_KNEE], s[S_KP_ANKLE], s[S_KD_ANKLE] = p.kp_knee, p.kd_knee, p.kp_ankle, p.kd_ankle
        s[S_X_START], s[S_X_END] = p.x_start, p.x_end
        s[S_SWING_PEAK], s[S_T_PEAK], s[S_SWING_END], s[S_T_END] = p.swing_peak, p.t_peak, p.swing_end, p.t_end
        s[S_MIN_STANCE], s[S_UNLOAD_N], s[S_UNLOAD_S] = p.min_stance_s, p.unload_n, p.unload_s
        s[S_LATE_BW], s[S_LATE_THIGH] = p.late_stance_bw, p.late_stance_thigh
        s[S_SWING_THIGH_VEL] = p.swing_thigh_velocity
        s[S_CONTACT_N], s[S_MIN_SWING] = p.contact_n, p.min_swing_s
        s[S_LATE_MIN_X], s[S_CONTACT_KNEE], s[S_CONTACT_BW] = p.late_stance_min_x, p.contact_max_knee, p.contact_bw
        s[S_KNEE_LIMIT], s[S_ANKLE_LIMIT], s[S_POLY_N] = p.knee_limit, p.ankle_limit, n
        s[S_POLY : S_POLY + n] = self._knee_poly
        s[S_POLY + n :] = self._knee_dpoly
        self.reset()

    def reset(self) -> None:
        s = self._s
        s[S_DOMAIN] = STANCE
        s[S_T_DOMAIN] = s[S_T_UNLOADED] = s[S_PHASE] = 0.0
        s[S_KNEE_DES] = self.p.stance_knee[0]
        s[S_KNEE_VEL_DES] = s[S_ANKLE_DES] = s[S_ANKLE_VEL_DES] = s[S_HIP_X] = 0.0
        s[S_SWING_START] = self.p.swing_end

    # ------------------------------------------------------------------ internals, read-only views of `_s`
    domain = StateSlot("_s", S_DOMAIN, int, "STANCE (1) or SWING (0).")
    t_domain = StateSlot("_s", S_T_DOMAIN, float, "Time in the current domain, s.")
    t_unloaded = StateSlot("_s", S_T_UNLOADED, float, "Time the load has been below `unload_n` in this stance, s.")
    phase = StateSlot(
        "_s", S_PHASE, float, "Phase τ: hip progression in stance (not clipped), time over `t_end` in swing."
    )
    knee_des = StateSlot("_s", S_KNEE_DES, float, "Desired knee angle, rad.")
    knee_vel_des = StateSlot("_s", S_KNEE_VEL_DES, float, "Desired knee velocity, rad/s.")
    ankle_des = StateSlot("_s", S_ANKLE_DES, float, "Desired ankle angle, rad (0: flat foot).")
    ankle_vel_des = StateSlot("_s", S_ANKLE_VEL_DES, float, "Desired ankle velocity, rad/s.")
    hip_x = StateSlot(
        "_s",
        S_HIP_X,
        float,
        "Last stance estimate of the hip's forward position relative to the prosthetic mid-foot, m.",
    )

    # ------------------------------------------------------------------ kinematics
    def hip_position(self, obs: np.ndarray) -> tuple[float, float]:
        """Forward hip position relative to the prosthetic mid-foot (m) and its rate (m/s)."""
        qk, qkd, qa, qad, th, thd, _ = obs.tolist()
        return self._hip_position(qk, qkd, qa, qad, th, thd)

    def _hip_position(self, qk: float, qkd: float, qa: float, qad: float, th: float, thd: float) -> tuple[float, float]:
        g = self.geom
        return _hip_kinematics(qk, qkd, qa, qad, th, thd, g.thigh, g.shank, g.ankle_height, self._foot_x)

    # ------------------------------------------------------------------ control
    def update_reference(self, obs: np.ndarray) -> None:
        """Advance the domain and phase from one sensor vector and set the desired trajectory (no torque)."""
        if not _pd_step(self._s, obs, self._out, False):
            raise ValueError(f"observation must be the 7 prosthesis sensors, got shape {np.shape(obs)}")

    def torque_on_reference(self, observation: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The saturated PD law on the reference already set this step, into `out`: no second reference update.

        For a caller that ran :meth:`update_reference` this period (e.g. as the reference of a learned controller)
        and now needs the PD's torque too — :meth:`act` would advance the domain timers twice.
        """
        f64 = np.float64
        _pd_law(self._s, f64(observation[0]), f64(observation[1]), f64(observation[2]), f64(observation[3]), out)
        return out

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Torques [knee, ankle] in N·m for one sensor vector; the returned array is reused by the next call."""
        if not _pd_step(self._s, observation, self._out, True):
            raise ValueError(f"observation must be the 7 prosthesis sensors, got shape {np.shape(observation)}")
        return self._out

    @property
    def last_torque(self) -> np.ndarray:
        """The torques [knee, ankle] N·m of the last :meth:`act` (the array :meth:`act` returned; copy to keep)."""
        return self._out

    def episode_stats(self) -> dict[str, Any]:
        """The PD has no counters of its own (its tracking is measured by the episode metrics)."""
        return {}

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> np.ndarray:
        """A copy of the controller's whole state (domain, timers, phase, reference); see :meth:`restore`."""
        return self._s.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        """Return to a state taken by :meth:`snapshot` of a PD with the same parameters and body."""
        if snapshot.shape != self._s.shape:
            raise ValueError(f"a PD snapshot has shape {self._s.shape}, got {snapshot.shape}")
        self._s[:] = snapshot
