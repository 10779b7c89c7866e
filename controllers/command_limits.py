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
