"""Hard limits on a controller's command: what a prosthesis firmware enforces whatever the controller asks.

Per joint ``[knee, ankle]``: ``|τ| ≤ torque limit`` (N·m) and ``|τ_k − τ_{k−1}| ≤ rate limit · dt`` (N·m/s; from 0
at a reset, as the motor starts). 0 or None per joint: no limit there.

The residual RL controller applies them to PD torque + residual (:class:`controllers.residual.ResidualCore`, keys
``residual.torque_limit_nm`` / ``rate_limit_nm_s``); a network distilled from it inherits its expert's limits — the
checkpoint's ``command_limits`` — and :class:`hil.learned.LearnedController` applies them to the network's torque on
every backend, so the student is held to the same envelope the expert was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

JointLimits = tuple[float | None, float | None]


def check_joint_limits(limits: Any, what: str, unit: str) -> JointLimits | None:
    """Per-joint hard limits ``[knee, ankle]`` (> 0 in ``unit``; None or 0 per joint: none; None: none at all) as a
    tuple, or ValueError naming ``what`` and the unit."""
    if limits is None:
        return None
    try:
        k, a = (None if v is None else float(v) for v in limits)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be [knee, ankle] in {unit} (0 or null: none), got {limits!r}") from None
    pair = []
    for v in (k, a):
        if v is not None and not (math.isfinite(v) and v >= 0.0):
            raise ValueError(f"{what} must be [knee, ankle] in {unit}, each >= 0 (0 or null: none), got {limits!r}")
        pair.append(None if not v else v)
    return None if pair == [None, None] else (pair[0], pair[1])


@dataclass(frozen=True)
class CommandLimits:
    """Torque (N·m) and torque-rate (N·m/s) limits per joint ``(knee, ankle)``; None (per joint or both): none.

    Built from anything :func:`check_joint_limits` accepts (``[100, 0]``: the knee only)."""

    torque_nm: JointLimits | None = None
    rate_nm_s: JointLimits | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "torque_nm", check_joint_limits(self.torque_nm, "torque_nm", "N·m"))
        object.__setattr__(self, "rate_nm_s", check_joint_limits(self.rate_nm_s, "rate_nm_s", "N·m/s"))

    def __bool__(self) -> bool:
        return self.torque_nm is not None or self.rate_nm_s is not None

    def per_step(self, dt: float) -> tuple[float, float, float, float]:
        """``(torque knee, torque ankle, step knee, step ankle)``: N·m and N·m per control step of ``dt`` s, inf for
        none — the numbers a per-step loop compares against."""
        inf = math.inf
        tk, ta = self.torque_nm or (None, None)
        rk, ra = self.rate_nm_s or (None, None)
        return (
            inf if tk is None else tk,
            inf if ta is None else ta,
            inf if rk is None else rk * dt,
            inf if ra is None else ra * dt,
        )

    def to_dict(self) -> dict[str, list[float]]:
        """``{"torque_nm": [knee, ankle], "rate_nm_s": [knee, ankle]}``, 0 for none (the TOML/JSON convention)."""
        return {
            "torque_nm": [v or 0.0 for v in (self.torque_nm or (None, None))],
            "rate_nm_s": [v or 0.0 for v in (self.rate_nm_s or (None, None))],
        }

    @classmethod
    def from_dict(cls, d: Any) -> CommandLimits:
        """The inverse of :meth:`to_dict`; ValueError on anything else."""
        if not isinstance(d, dict) or set(d) - {"torque_nm", "rate_nm_s"}:
            raise ValueError(
                f"command_limits must be {{'torque_nm': [knee, ankle], 'rate_nm_s': [knee, ankle]}}, got {d!r}"
            )
        return cls(d.get("torque_nm"), d.get("rate_nm_s"))

    def describe(self) -> str:
        """``knee ≤ 100 N·m, ≤ 14000 N·m/s; ankle ≤ 90 N·m, ≤ 11000 N·m/s`` (``none`` when nothing is limited)."""
        if not self:
            return "none"
        parts = []
        for j, joint in enumerate(("knee", "ankle")):
            t = (self.torque_nm or (None, None))[j]
            r = (self.rate_nm_s or (None, None))[j]
            lim = [f"≤ {t:g} N·m"] if t is not None else []
            lim += [f"≤ {r:g} N·m/s"] if r is not None else []
            parts.append(f"{joint} {', '.join(lim) if lim else 'free'}")
        return "; ".join(parts)


@dataclass(frozen=True)
class ResidualLimits:
    """A residual RL expert's limits on its own correction, per joint ``(knee, ankle)``, for a network that learned
    that correction (``target = "pd_residual"``): what :class:`controllers.residual.ResidualCore` does to the
    policy's action, in N·m, in its order — the correction is clipped to ``±bound_nm`` (residual_scale × motor
    peak), then moves at most ``slew_nm_s · dt`` from the previous step's (max_delta × bound per step; from 0 at a
    reset), then PD torque + correction is bounded by ``max(|τ_PD|, envelope_nm)`` (the envelope × motor peak). None
    for the slew or the envelope: none. The expert can command nothing outside them; its student is held to them too.
    """

    bound_nm: tuple[float, float]
    slew_nm_s: tuple[float, float] | None = None
    envelope_nm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("bound_nm", "slew_nm_s", "envelope_nm"):
            v = getattr(self, name)
            if v is None and name != "bound_nm":
                continue
            try:
                k, a = (float(x) for x in v)
            except (TypeError, ValueError):
                raise ValueError(f"residual_limits.{name} must be [knee, ankle], got {v!r}") from None
            if not all(math.isfinite(x) and x > 0.0 for x in (k, a)):
                raise ValueError(f"residual_limits.{name} must be [knee, ankle], each > 0, got {v!r}")
            object.__setattr__(self, name, (k, a))

    @classmethod
    def of_expert(
        cls, residual_scale: float, max_delta: float | None, envelope: float | None, peak_nm: Any, dt: float
    ) -> ResidualLimits:
        """The limits of an expert with ``residual_scale`` (fraction of the peak), ``max_delta`` (action units per
        control step of ``dt`` s, None: none), ``envelope`` (fraction of the peak, None: none) and motor peaks
        ``peak_nm`` [knee, ankle]."""
        pk, pa = (float(p) for p in peak_nm)
        bound = (residual_scale * pk, residual_scale * pa)
        slew = None if max_delta is None else (max_delta * bound[0] / dt, max_delta * bound[1] / dt)
        env = None if envelope is None else (envelope * pk, envelope * pa)
        return cls(bound, slew, env)

    def per_step(self, dt: float) -> tuple[float, float, float, float, float, float]:
        """``(bound k, bound a, slew k, slew a, envelope k, envelope a)`` in N·m (slew per control step of ``dt``
        s; inf for none: ``max(|τ_PD|, inf)`` bounds nothing)."""
        inf = math.inf
        sk, sa = (inf, inf) if self.slew_nm_s is None else (self.slew_nm_s[0] * dt, self.slew_nm_s[1] * dt)
        ek, ea = (inf, inf) if self.envelope_nm is None else self.envelope_nm
        return (*self.bound_nm, sk, sa, ek, ea)

    def to_dict(self) -> dict[str, list[float] | None]:
        """``{"bound_nm": [k, a], "slew_nm_s": [k, a] | null, "envelope_nm": [k, a] | null}``."""
        return {
            "bound_nm": list(self.bound_nm),
            "slew_nm_s": None if self.slew_nm_s is None else list(self.slew_nm_s),
            "envelope_nm": None if self.envelope_nm is None else list(self.envelope_nm),
        }

    @classmethod
    def from_dict(cls, d: Any) -> ResidualLimits:
        """The inverse of :meth:`to_dict`; ValueError on anything else."""
        if not isinstance(d, dict) or "bound_nm" not in d or set(d) - {"bound_nm", "slew_nm_s", "envelope_nm"}:
            raise ValueError(
                "residual_limits must be {'bound_nm': [knee, ankle], 'slew_nm_s': [knee, ankle] or null, "
                f"'envelope_nm': [knee, ankle] or null}}, got {d!r}"
            )
        return cls(d["bound_nm"], d.get("slew_nm_s"), d.get("envelope_nm"))

    def describe(self) -> str:
        """``correction ≤ 35.5 / 42 N·m, ≤ 710 / 840 N·m/s; |τ| ≤ max(|τ_PD|, 56.8 / 67.2 N·m)`` (knee / ankle)."""
        b = self.bound_nm
        s = "" if self.slew_nm_s is None else f", ≤ {self.slew_nm_s[0]:.4g} / {self.slew_nm_s[1]:.4g} N·m/s"
        e = "" if self.envelope_nm is None else (
            f"; |τ| ≤ max(|τ_PD|, {self.envelope_nm[0]:.4g} / {self.envelope_nm[1]:.4g} N·m)"
        )  # fmt: skip
        return f"correction ≤ {b[0]:.4g} / {b[1]:.4g} N·m{s}{e} (knee / ankle)"
