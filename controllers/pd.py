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
`contact_n` after ≥ `min_swing_s`.

The controller exposes its internals (`domain`, `phase`, `knee_des`, `knee_vel_des`, `ankle_des`) after every `act`,
so it can label any trajectory (DAgger expert, run in shadow) and produce the AMPRO error features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from envs.anthropometry import WalkerParams
from envs.model import Geometry, geometry

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
    swing_end: float = 0.15
    t_end: float = 0.40
    # Domain switching (load cell, N; body weight fraction; thigh angle rad; times s).
    min_stance_s: float = 0.20
    unload_n: float = 20.0
    unload_s: float = 0.02
    late_stance_bw: float = 0.3
    late_stance_thigh: float = 0.15
    swing_thigh_velocity: float = 0.3  # rad/s forward: the hip has started the swing
    contact_n: float = 60.0
    min_swing_s: float = 0.25
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
        self.reset()

    def reset(self) -> None:
        self.domain = STANCE
        self.t_domain = 0.0
        self.t_unloaded = 0.0
        self.phase = 0.0
        self.knee_des = self.p.stance_knee[0]
        self.knee_vel_des = 0.0
        self.ankle_des = 0.0
        self.ankle_vel_des = 0.0
        self.hip_x = 0.0
        self._swing_start_knee = self.p.swing_end

    # ------------------------------------------------------------------ kinematics
    def hip_position(self, obs: np.ndarray) -> tuple[float, float]:
        """Forward hip position relative to the prosthetic mid-foot (m) and its rate (m/s)."""
        qk, qkd, qa, qad, th, thd, _ = obs.tolist()
        return self._hip_position(qk, qkd, qa, qad, th, thd)

    def _hip_position(self, qk: float, qkd: float, qa: float, qad: float, th: float, thd: float) -> tuple[float, float]:
        g = self.geom
        sh, shd = th - qk, thd - qkd
        psi, psid = sh + qa, shd + qad
        cp, sp = math.cos(psi), math.sin(psi)
        x = -(g.thigh * math.sin(th) + g.shank * math.sin(sh)) - (self._foot_x * cp + g.ankle_height * sp)
        xd = (
            -(g.thigh * math.cos(th) * thd + g.shank * math.cos(sh) * shd)
            - (-self._foot_x * sp + g.ankle_height * cp) * psid
        )
        return x, xd

    # ------------------------------------------------------------------ control
    def _switch(self, qk: float, thigh: float, thigh_vel: float, load: float) -> None:
        p = self.p
        self.t_domain += self.dt
        if self.domain == STANCE:
            self.t_unloaded = self.t_unloaded + self.dt if load < p.unload_n else 0.0
            if self.t_domain >= p.min_stance_s and (
                self.t_unloaded >= p.unload_s
                or (
                    load < p.late_stance_bw * self.body_weight
                    and thigh_vel > p.swing_thigh_velocity
                    and thigh < p.late_stance_thigh
                )
            ):
                self.domain = SWING
                self.t_domain = 0.0
                self._swing_start_knee = qk
        elif self.t_domain >= p.min_swing_s and load > p.contact_n:
            self.domain = STANCE
            self.t_domain = 0.0
            self.t_unloaded = 0.0

    def _swing_trajectory(self, t: float) -> tuple[float, float]:
        p = self.p
        if t < p.t_peak:
            a, b, t0, t1 = self._swing_start_knee, p.swing_peak, 0.0, p.t_peak
        elif t < p.t_end:
            a, b, t0, t1 = p.swing_peak, p.swing_end, p.t_peak, p.t_end
        else:
            return p.swing_end, 0.0
        w = math.pi / (t1 - t0)
        s = (t - t0) * w
        return a + (b - a) * 0.5 * (1 - math.cos(s)), (b - a) * 0.5 * w * math.sin(s)

    def update_reference(self, obs: np.ndarray) -> None:
        """Advance the domain and phase from one sensor vector and set the desired trajectory (no torque)."""
        self._reference(*obs.tolist())

    def _reference(self, qk: float, qkd: float, qa: float, qad: float, th: float, thd: float, load: float) -> None:
        self._switch(qk, th, thd, load)
        p = self.p
        if self.domain == STANCE:
            x, xd = self._hip_position(qk, qkd, qa, qad, th, thd)
            span = p.x_end - p.x_start
            self.hip_x = x
            self.phase = phase = (x - p.x_start) / span
            s = 0.0 if phase < 0.0 else (1.0 if phase > 1.0 else phase)
            self.knee_des = horner(self._knee_poly, s)
            self.knee_vel_des = horner(self._knee_dpoly, s) * xd / span if 0.0 < phase < 1.0 else 0.0
        else:
            self.phase = self.t_domain / p.t_end
            self.knee_des, self.knee_vel_des = self._swing_trajectory(self.t_domain)
        self.ankle_des = 0.0
        self.ankle_vel_des = 0.0

    def act(self, observation: np.ndarray) -> np.ndarray:
        qk, qkd, qa, qad, th, thd, load = observation.tolist()
        self._reference(qk, qkd, qa, qad, th, thd, load)
        p = self.p
        tk = -p.kp_knee * (qk - self.knee_des) - p.kd_knee * (qkd - self.knee_vel_des)
        ta = -p.kp_ankle * (qa - self.ankle_des) - p.kd_ankle * qad
        lk, la = p.knee_limit, p.ankle_limit
        out = self._out
        out[0] = -lk if tk < -lk else (lk if tk > lk else tk)
        out[1] = -la if ta < -la else (la if ta > la else ta)
        return out
