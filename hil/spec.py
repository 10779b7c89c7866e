"""What controller to run, as data: a small picklable spec that evaluation, collection, sweeps and worker processes
turn into a controller for each episode's env.

:class:`ControllerSpec` is the one place that knows the controller names:

============  ====================================================================================================
name          controller
============  ====================================================================================================
``pd``        the AMPRO-style PD baseline (``gain_scale`` multiplies its gains)
``zero``      a passive prosthesis: zero motor torque
``damped``    a passive prosthesis with a viscous damper on both joints
``gru``       a checkpoint on the CPU kernel with Θ = 0 (a run directory gives its float GRU ``gru.pt``)
``deltagru``  a checkpoint on the CPU kernel with its thresholds (a run directory gives ``controller.pt``)
``edgedrnn``  a checkpoint exported to the bit-exact, cycle-timed EdgeDRNN model
``board``     the same export on a board over serial (``board``: a :class:`hil.board_backend.BoardLink` — a port, or
              a virtual board started for the run: the Python emulator, the C firmware, the firmware under QEMU)
``rl``        a residual RL policy (``legloop rl train``): the PD's torque + the policy's bounded correction; the
              checkpoint is the run directory (policy, VecNormalize statistics, observation layout)
============  ====================================================================================================

A spec is validated and its checkpoint loaded (and, for EdgeDRNN, exported) once, by :meth:`ControllerSpec.factory`,
so a bad checkpoint fails before any episode runs; the factory then builds one controller per episode for that
episode's (randomised) body. Learned controllers reuse one inference backend across the episodes of a factory (it is
reset at every episode start).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.base import Controller, DampedPassive, ZeroTorque
from controllers.pd import AmproPD
from hil.deadline import DEFAULT_BUDGET_S, check_policy
from hil.governors import check_board_governor, governor_name
from hil.learned import DEFAULT_CLOCK_HZ

if TYPE_CHECKING:
    from envs.walker_env import ProstheticWalkerEnv
    from hil.board_backend import BoardLink

BUILTIN_CONTROLLERS = ("pd", "zero", "damped")
CPU_CONTROLLERS = ("gru", "deltagru")
LEARNED_CONTROLLERS = ("gru", "deltagru", "edgedrnn", "board")
# Controllers that run the exported fixed-point network (the bit-exact EdgeDRNN arithmetic), in process or on a board.
EXPORTED_CONTROLLERS = ("edgedrnn", "board")
# Controllers with a checkpoint that are not networks on an inference backend (no deadline, features, thresholds).
POLICY_CONTROLLERS = ("rl",)
CONTROLLERS = BUILTIN_CONTROLLERS + LEARNED_CONTROLLERS + POLICY_CONTROLLERS


class ControllerFactory:
    """Builds one controller per episode for that episode's env; holds what the episodes share (a loaded network
    and its inference backend, later a board link), released by :meth:`close` (or ``with``)."""

    def __init__(
        self,
        spec: ControllerSpec,
        make: Callable[[ProstheticWalkerEnv], Controller],
        close: Callable[[], None] | None = None,
        offline: Callable[[int], Controller] | None = None,
    ) -> None:
        self.spec = spec
        self._make = make
        self._close = close
        self._offline = offline
        self.checkpoint_path: Path | None = None  # learned controllers: the checkpoint file actually loaded
        self.meta: Any = None  # learned controllers: its CheckpointMeta

    def __call__(self, env: ProstheticWalkerEnv) -> Controller:
        return self._make(env)

    def offline(self, capacity: int) -> Controller:
        """A learned controller without an env, for replaying a log open loop: the checkpoint's control period, the
        default body for the AMPRO reference, ``capacity`` steps of records."""
        if self._offline is None:
            raise ValueError(f"controller {self.spec.name!r} cannot replay a log: it needs a learned controller")
        return self._offline(capacity)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> ControllerFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ControllerSpec:
    """A controller by name, with its checkpoint and options (see the module docstring for the names).

    Parameters
    ----------
    name
        ``pd``, ``zero``, ``damped``, ``gru``, ``deltagru``, ``edgedrnn``, ``board`` or ``rl``.
    checkpoint
        Learned controllers: a checkpoint ``.pt`` or a training run directory; ``rl``: an RL run directory.
    feature_set
        Require the checkpoint to use this feature set (``ampro`` / ``sensors``); None accepts either.
    gain_scale
        ``pd`` only: multiplies the PD gains.
    policy, budget_s
        Deadline policy (None: the backend's default, ``none`` on the CPU, ``hold`` on EdgeDRNN) and budget, s.
    governor
        ``edgedrnn``: the run-time threshold governor, a name of :data:`hil.governors.GOVERNORS` (``reactive``,
        ``predictive``, ``predictive-worst``, ...) or None; True means ``reactive`` (stored as the name). ``board``:
        ``predictive-worst`` or ``predictive-split``, run by the board itself (:data:`hil.governors.BOARD_GOVERNORS`).
    clock_hz
        ``edgedrnn`` and an emulated Python ``board``: the accelerator clock, Hz (a real board reports its own).
    board
        ``board`` only: where the board is and how to talk to it (:class:`hil.board_backend.BoardLink`).
    theta_x, theta_h
        ``deltagru`` / ``edgedrnn`` / ``board``: run with these delta thresholds instead of the checkpoint's
        (normalised units, as the checkpoint stores them; EdgeDRNN rounds them to Q8.8 LSB) — for threshold sweeps.
    label
        Name in results (default ``name``, or ``pd*0.5`` for a scaled PD).
    """

    name: str
    checkpoint: str | None = None
    feature_set: str | None = None
    gain_scale: float = 1.0
    policy: str | None = None
    budget_s: float = DEFAULT_BUDGET_S
    governor: str | bool | None = None  # normalised to a name or None in __post_init__
    clock_hz: float = DEFAULT_CLOCK_HZ
    theta_x: float | None = None
    theta_h: float | None = None
    label: str | None = None
    board: BoardLink | None = None

    def __post_init__(self) -> None:
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            object.__setattr__(self, "checkpoint", os.fspath(self.checkpoint))
        object.__setattr__(self, "governor", governor_name(self.governor))  # True (the old flag) → 'reactive'
        self.validate()

    # ------------------------------------------------------------------------------------------ checks
    @property
    def learned(self) -> bool:
        return self.name in LEARNED_CONTROLLERS

    @property
    def display_name(self) -> str:
        if self.label:
            return self.label
        return self.name if self.gain_scale == 1.0 else f"{self.name}*{self.gain_scale:g}"

    def validate(self) -> None:
        """Raise ``ValueError`` naming what is wrong and what was expected (no file is read here)."""
        if self.name not in CONTROLLERS:
            raise ValueError(
                f"unknown controller {self.name!r}; built-in controllers are: {', '.join(BUILTIN_CONTROLLERS)}; "
                f"learned (with a checkpoint): {', '.join(LEARNED_CONTROLLERS)}"
            )
        if (self.learned or self.name in POLICY_CONTROLLERS) and self.checkpoint is None:
            raise ValueError(f"controller {self.name!r} needs a checkpoint")
        if self.name in POLICY_CONTROLLERS:
            for what, given in (
                ("a feature set", self.feature_set is not None),
                ("a deadline policy", self.policy is not None),
                ("a latency budget", self.budget_s != DEFAULT_BUDGET_S),
                ("a governor", self.governor),
            ):
                if given:
                    raise ValueError(f"controller {self.name!r} takes no {what.split(' ', 1)[1]}")
        elif not self.learned:
            for what, given in (
                ("a checkpoint", self.checkpoint is not None),
                ("a feature set", self.feature_set is not None),
                ("a deadline policy", self.policy is not None),
                ("a latency budget", self.budget_s != DEFAULT_BUDGET_S),
                ("a governor", self.governor),
            ):
                if given:
                    raise ValueError(
                        f"controller {self.name!r} takes no {what.split(' ', 1)[1]}; learned controllers are: "
                        f"{', '.join(LEARNED_CONTROLLERS)}"
                    )
        if self.name != "pd" and self.gain_scale != 1.0:
            raise ValueError(f"gain_scale applies to the pd controller only, not {self.name!r}")
        if not 0.0 < self.gain_scale <= 10.0:
            raise ValueError(f"gain_scale must be in (0, 10], got {self.gain_scale}")
        overridden = self.theta_x is not None or self.theta_h is not None
        if overridden and self.name not in ("deltagru", *EXPORTED_CONTROLLERS):
            raise ValueError(f"threshold overrides apply to deltagru, edgedrnn and board, not {self.name!r}")
        if self.name == "board" and self.board is None:
            raise ValueError("controller 'board' needs a board: a port (e.g. /dev/ttyACM0) or a board to emulate")
        if self.name != "board" and self.board is not None:
            raise ValueError(f"a board link applies to controller 'board' only, not {self.name!r}")
        if self.board is not None:
            self.board.validate()
        for which, theta in (("theta_x", self.theta_x), ("theta_h", self.theta_h)):
            if theta is not None and not 0.0 <= theta < 2.0:
                raise ValueError(f"{which} must be in [0, 2) (normalised units), got {theta}")
        if self.name == "board" and self.governor:
            check_board_governor(governor_name(self.governor))
        elif self.name != "edgedrnn" and self.governor:
            raise ValueError(f"the threshold governor runs on the EdgeDRNN model only, not on {self.name!r}")
        if self.policy is not None:
            check_policy(self.policy)
        if not 0.0 < self.budget_s <= 1.0:
            raise ValueError(f"budget_s must be in (0, 1] s, got {self.budget_s}")
        if not self.clock_hz > 0:
            raise ValueError(f"clock_hz must be > 0, got {self.clock_hz}")

    def with_options(self, **changes: Any) -> ControllerSpec:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (for run logs and metrics files)."""
        d = asdict(self)
        if self.board is not None:
            d["board"] = self.board.to_dict()
        return d

    # ------------------------------------------------------------------------------------------ building
    def factory(self) -> ControllerFactory:
        """Load (and for EdgeDRNN export) the checkpoint once and return ``build(env) -> Controller``.

        Raises ``CheckpointError`` (corrupt, or not of ``feature_set``), ``ExportError`` / ``ImageError`` (does not
        fit EdgeDRNN) before any episode runs.
        """
        if self.learned:
            return _learned_factory(self)
        if self.name == "rl":
            return _rl_factory(self)
        if self.name == "pd":
            scale = self.gain_scale

            def make_pd(env: ProstheticWalkerEnv) -> Controller:
                pd = AmproPD(env.dt, walker=env.walker)
                if scale != 1.0:
                    pd = AmproPD(env.dt, params=pd.p.scaled_gains(scale), walker=env.walker)
                return pd

            return ControllerFactory(self, make_pd)
        if self.name == "zero":
            return ControllerFactory(self, lambda env: ZeroTorque())
        return ControllerFactory(self, lambda env: DampedPassive())


def _learned_factory(spec: ControllerSpec) -> ControllerFactory:
    # Imported here: the built-in controllers need neither torch nor the EdgeDRNN model.
    from controllers.checkpoint import learned_checkpoint, load_checkpoint
    from hil.learned import LearnedController, make_backend

    assert spec.checkpoint is not None
    path = learned_checkpoint(spec.name, spec.checkpoint)
    model, meta = load_checkpoint(path, feature_set=spec.feature_set)
    if spec.theta_x is not None:
        model.theta_x = spec.theta_x
    if spec.theta_h is not None:
        model.theta_h = spec.theta_h
    backend = make_backend(
        spec.name,
        model,
        meta,
        budget_s=spec.budget_s,
        governor=spec.governor,
        clock_hz=spec.clock_hz,
        source=str(path),
        board=spec.board,
    )
    name = spec.display_name

    def make(env: ProstheticWalkerEnv) -> Controller:
        _warn_control_period(path, meta.control_dt, env.dt, "network")
        return LearnedController(
            backend,
            meta.feature_set,
            env.dt,
            name=name,
            policy=spec.policy,
            budget_s=spec.budget_s,
            walker=env.walker,
            target=meta.target,
            command_limits=meta.command_limits,
            residual_limits=meta.residual_limits,
        )

    def offline(capacity: int) -> Controller:
        return LearnedController(
            backend, meta.feature_set, meta.control_dt, name=name, policy=spec.policy, budget_s=spec.budget_s,
            capacity=capacity, target=meta.target, command_limits=meta.command_limits,
            residual_limits=meta.residual_limits,
        )  # fmt: skip

    factory = ControllerFactory(spec, make, backend.close, offline)
    factory.checkpoint_path = path
    factory.meta = meta
    return factory


def _warn_control_period(path: object, trained_dt: float, env_dt: float, what: str) -> None:
    """Warn when a learned controller runs at another control period than it was trained at."""
    if abs(env_dt - trained_dt) > 1e-9:
        warnings.warn(
            f"{path} was trained at a {trained_dt * 1e3:g} ms control period; the env runs at {env_dt * 1e3:g} ms, "
            f"so the {what} sees different dynamics than it learned",
            stacklevel=4,
        )


def _rl_factory(spec: ControllerSpec) -> ControllerFactory:
    # Imported here: SB3 and torch load only when an RL policy runs.
    from controllers.rl_policy import RLController, load_rl_checkpoint

    assert spec.checkpoint is not None
    loaded = load_rl_checkpoint(spec.checkpoint)
    name = spec.display_name

    def make(env: ProstheticWalkerEnv) -> Controller:
        _warn_control_period(loaded.path, loaded.control_dt, env.dt, "policy")
        # The episode's (randomised) body: the PD inside needs its geometry and weight, as the training wrapper's.
        return RLController(loaded, AmproPD(env.dt, walker=env.walker), env.peak_torque, name=name)

    factory = ControllerFactory(spec, make)
    factory.checkpoint_path = loaded.path
    factory.meta = loaded.meta
    return factory
