"""The one controller front end of every learned controller: sensors in, torques out, over any inference backend.

Per control step (:meth:`LearnedController.act`)::

    sensors ─┬─> AmproPD.update_reference (ampro features; the fallback_pd policy's PD law; a pd_residual prior)
             └─> features_from_obs ─> backend.step (normalise → network → de-normalise; CPU kernel, EdgeDRNN model
                 or a board over serial) ─> [pd_residual: the expert's residual limits, + the PD's torque]
                 ─> saturate at the motor limits
                 ─> [the checkpoint's command limits: |τ|, |dτ/dt|] ─> DeadlineMonitor (hold | fallback_pd | stop |
                 period | none) ─> torques [knee, ankle] N·m

A checkpoint trained with ``target = "pd_residual"`` (a distilled residual RL policy) outputs a correction: the
controller runs the AMPRO PD beside the network, as the RL policy did, and applies PD torque + correction. A
checkpoint distilled from an RL expert with hard limits on its command (``command_limits``: per joint |τ| and
|dτ/dt|, :mod:`controllers.command_limits`) gets the same limits here, on the host, whatever the backend — the student
is held to the envelope its expert was. The limits bound the network's command; a ``fallback_pd`` step is the PD's.
A residual network distilled with ``residual_limits`` also gets the expert's limits on the correction itself
(bound, slew, torque envelope: :class:`controllers.command_limits.ResidualLimits`), applied as the expert's
:class:`controllers.residual.ResidualCore` applies them to its action.

The same front end runs a recorded log open loop (:meth:`LearnedController.act_features`). Per step it records the
backend's cycles and fired columns in preallocated arrays (the latency and the torque source live in the monitor);
statistics are computed on demand (:meth:`episode_stats`), never in the loop. Nothing is allocated per step: the
returned torque array is the monitor's, reused every step (copy it to keep it).

Backends: :class:`hil.cpu_backend.CpuGRUBackend` (``gru``: dense, ``deltagru``: with thresholds),
:class:`hil.edgedrnn.backend.EdgeDRNNBackend` (``edgedrnn``) and :class:`hil.board_backend.SerialBoardBackend`
(``board``). :func:`hil.spec.ControllerSpec` builds any of them from a checkpoint by name.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from controllers.base import torque_limits_of
from controllers.command_limits import CommandLimits, ResidualLimits
from controllers.features import check_feature_set, check_target, feature_size, features_from_obs
from controllers.pd import AmproPD
from envs.anthropometry import WalkerParams
from hil.backend import InferenceBackend, StepResult
from hil.deadline import DEFAULT_BUDGET_S, DEFAULT_CAPACITY, FALLBACK_PD, NONE, DeadlineMonitor, check_policy, pd_torque

if TYPE_CHECKING:
    from controllers.checkpoint import CheckpointMeta
    from controllers.deltagru import DeltaGRU
    from hil.board_backend import BoardLink

# The deadline policy a backend gets when none is asked for: modelled and board latencies are enforced as a hard
# deadline (a late step holds the last torque); the CPU's measured wall time is reported, never enforced, so a
# simulated run does not depend on the machine's load.
DEFAULT_POLICY = {"cpu": NONE, "edgedrnn": "hold", "board": "hold"}
DEFAULT_CLOCK_HZ = 125e6  # the EdgeDRNN accelerator's clock on the seed's board
# Learned controller name → how its network runs.
NETWORK_CONTROLLERS = ("gru", "deltagru", "edgedrnn", "board")


def make_backend(
    controller: str,
    model: DeltaGRU,
    meta: CheckpointMeta,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    governor: bool | str | None = None,
    clock_hz: float = DEFAULT_CLOCK_HZ,
    source: str = "",
    board: BoardLink | None = None,
) -> InferenceBackend:
    """The inference backend of a learned controller: ``gru`` (CPU kernel, Θ = 0), ``deltagru`` (CPU kernel, the
    model's thresholds), ``edgedrnn`` (exported to a bundle, on the bit-exact model with ``clock_hz``; raises
    ``ExportError`` when the network does not fit the accelerator) or ``board`` (the same bundle on a board over
    serial, ``board`` says where: :class:`hil.board_backend.BoardLink`)."""
    if controller in ("edgedrnn", "board"):
        from firmware_bridge.export import bundle_from_model

        bundle = bundle_from_model(model, meta, source=source)
        if controller == "board":
            from hil.board_backend import SerialBoardBackend

            if board is None:
                raise ValueError("controller 'board' needs a BoardLink (a port, or a board to emulate)")
            from hil.governors import governor_name

            gov = governor_name(governor)
            return SerialBoardBackend(bundle, board, budget_s=budget_s, clock_hz=clock_hz, governor=gov)
        from hil.edgedrnn.backend import EdgeDRNNBackend

        return EdgeDRNNBackend(bundle, budget_s=budget_s, governor=governor, clock_hz=clock_hz)
    if controller in ("gru", "deltagru"):
        from hil.cpu_backend import CpuGRUBackend

        return CpuGRUBackend(model, meta, dense=controller == "gru")
    raise ValueError(f"unknown learned controller {controller!r}; expected one of {', '.join(NETWORK_CONTROLLERS)}")


class LearnedController:
    """The :class:`controllers.base.Controller` interface over an :class:`hil.backend.InferenceBackend`.

    Parameters
    ----------
    backend
        The inference backend; its ``input_size`` must be the feature set's and ``n_outputs`` 2 [knee, ankle].
    feature_set
        ``ampro`` or ``ampro_plus`` (need the AMPRO reference) or ``sensors``.
    dt
        Control period, s: the AMPRO reference's swing phase is time-based, and ``period`` holds results later
        than one period.
    name
        Controller name in results (default: the backend's kind).
    policy, budget_s
        Deadline policy (default per backend: ``none`` for the CPU, ``hold`` otherwise) and the latency budget.
    walker, torque_limits
        The reference PD's body parameters and the torque saturation [knee, ankle] N·m (default: the walker's motor
        peak torques, 142 / 168).
    capacity
        Steps of per-step records preallocated (doubled when exceeded).
    target
        ``torque`` (the network's outputs are the torques) or ``pd_residual`` (a correction added to the PD's torque).
    command_limits
        Hard limits on the command after saturation: ``|τ| ≤ torque_nm``, ``|τ_k − τ_{k−1}| ≤ rate_nm_s · dt`` (from 0
        at a reset); default none. :meth:`from_checkpoint` passes the checkpoint's.
    residual_limits
        ``pd_residual`` only: the expert's limits on the correction (:class:`ResidualLimits`), before the PD's torque
        is added; default none. :meth:`from_checkpoint` passes the checkpoint's.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        feature_set: str,
        dt: float,
        *,
        name: str | None = None,
        policy: str | None = None,
        budget_s: float = DEFAULT_BUDGET_S,
        walker: WalkerParams | None = None,
        torque_limits: tuple[float, float] | None = None,
        capacity: int = DEFAULT_CAPACITY,
        target: str = "torque",
        command_limits: CommandLimits | None = None,
        residual_limits: ResidualLimits | None = None,
    ) -> None:
        self.feature_set = check_feature_set(feature_set)
        self.target = check_target(target)
        self.residual = self.target == "pd_residual"
        if residual_limits is not None and not self.residual:
            raise ValueError(f"residual_limits bound a pd_residual network's correction; target is {self.target!r}")
        n_in = feature_size(self.feature_set)
        if backend.input_size != n_in:
            raise ValueError(f"network has {backend.input_size} inputs; feature set {self.feature_set!r} has {n_in}")
        if backend.n_outputs != 2:
            raise ValueError(
                f"a prosthesis controller needs 2 outputs [knee, ankle], the network has {backend.n_outputs}"
            )
        if not 0.0 < dt <= 0.02:
            raise ValueError(f"control period dt must be in (0, 0.02] s, got {dt}")
        self.backend = backend
        self.name = name or backend.kind
        self.dt = float(dt)
        self.policy = check_policy(policy if policy is not None else DEFAULT_POLICY.get(backend.kind, "hold"))
        self.monitor = DeadlineMonitor(budget_s, self.policy, 2, capacity, period_s=self.dt)
        needs_reference = self.feature_set != "sensors" or self.policy == FALLBACK_PD or self.residual
        # The PD is the reference generator of the 'ampro' error features (and the fallback_pd policy's law, and a
        # pd_residual network's prior).
        self.reference: AmproPD | None = AmproPD(self.dt, walker=walker) if needs_reference else None
        self.torque_limits = torque_limits_of(walker, torque_limits)
        self.command_limits = command_limits if command_limits is not None else CommandLimits()
        ck, ca, self._step_knee, self._step_ankle = self.command_limits.per_step(self.dt)
        self._rate_limited = self.command_limits.rate_nm_s is not None
        self._lim_knee, self._lim_ankle = min(float(self.torque_limits[0]), ck), min(float(self.torque_limits[1]), ca)
        self.residual_limits = residual_limits
        self._res = residual_limits.per_step(self.dt) if residual_limits is not None else None
        self._correction = np.zeros(2, dtype=np.float64)  # the last limited correction (the slew's origin)
        self.dense_macs_per_step = int(backend.dense_macs)
        self._macs_out = backend.hidden_size * backend.n_outputs
        self._h3 = 3 * backend.hidden_size
        self._delta_elements = int(backend.delta_elements)
        cap = max(16, int(capacity))
        self._cycles = np.zeros(cap, dtype=np.int64)
        self._fired = np.zeros(cap, dtype=np.int64)
        self.features = np.zeros(n_in, dtype=np.float64)  # raw features of the last step
        self.raw_output = np.zeros(2, dtype=np.float64)  # the network's output (torque or correction), N·m
        self._prior = np.zeros(2, dtype=np.float64)  # pd_residual: the PD's torque this step
        self._net = np.zeros(2, dtype=np.float64)
        self._applied = np.zeros(2, dtype=np.float64)  # the torque applied last step (rate limit only)
        self._fallback = np.zeros(2, dtype=np.float64)
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        controller: str = "deltagru",
        *,
        dt: float | None = None,
        feature_set: str | None = None,
        policy: str | None = None,
        budget_s: float = DEFAULT_BUDGET_S,
        governor: bool | str | None = None,
        clock_hz: float = DEFAULT_CLOCK_HZ,
        walker: WalkerParams | None = None,
        torque_limits: tuple[float, float] | None = None,
        capacity: int = DEFAULT_CAPACITY,
    ) -> LearnedController:
        """Load a checkpoint (a ``.pt``, or a training run directory: ``gru`` runs its ``gru.pt``, the others its
        ``controller.pt``) and run it as ``controller`` (``gru`` | ``deltagru`` | ``edgedrnn``); ``dt`` defaults to
        the checkpoint's control period. Raises ``CheckpointError`` (also on a feature-set mismatch) or
        ``ExportError``."""
        from controllers.checkpoint import learned_checkpoint, load_checkpoint

        ckpt = learned_checkpoint(controller, path)
        model, meta = load_checkpoint(ckpt, feature_set=feature_set)
        backend = make_backend(
            controller, model, meta, budget_s=budget_s, governor=governor, clock_hz=clock_hz, source=str(ckpt)
        )
        return cls(
            backend,
            meta.feature_set,
            dt if dt is not None else meta.control_dt,
            name=controller,
            policy=policy,
            budget_s=budget_s,
            walker=walker,
            torque_limits=torque_limits,
            capacity=capacity,
            target=meta.target,
            command_limits=meta.command_limits,
            residual_limits=meta.residual_limits,
        )

    # ------------------------------------------------------------------------------------------ control
    def reset(self) -> None:
        """New episode: zero the network state, clear the records and the deadline monitor, restart the reference."""
        self.backend.reset()
        self.monitor.reset()
        if self.reference is not None:
            self.reference.reset()
        self._net[:] = 0.0
        self._applied[:] = 0.0  # the rate limit slews from 0 after a reset, as the motor starts
        self._correction[:] = 0.0  # so does the expert's residual (its previous action is 0 at a reset)
        self._nonzero = 0
        self._fired_total = 0
        self._results = 0
        self.last_result: StepResult | None = None  # the backend's result of the last step (reused, in place)

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Torques [knee, ankle] N·m for one sensor vector, after the deadline policy (array reused each step)."""
        ref = self.reference
        fallback = None
        if ref is not None:
            ref.update_reference(observation)
            if self.residual:
                fallback = pd_torque(ref, observation, self._prior)  # the prior is also fallback_pd's torque
            elif self.policy == FALLBACK_PD:
                fallback = pd_torque(ref, observation, self._fallback)
            features_from_obs(
                self.feature_set, observation, ref.domain, ref.knee_des, ref.knee_vel_des, self.features, ref.phase
            )
        else:
            features_from_obs(self.feature_set, observation, 0.0, 0.0, 0.0, self.features)
        return self._infer(fallback)

    def act_features(self, features: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
        """Torques from raw features (offline replay of a log); ``fallback`` is the PD torque ``fallback_pd`` uses
        — and, for a ``pd_residual`` network, the prior its correction is added to (required then)."""
        if self.residual:
            if fallback is None:
                raise ValueError("a pd_residual network adds its output to the PD's torque: pass it as fallback")
            self._prior[:] = fallback
        self.features[:] = features
        return self._infer(fallback)

    def _infer(self, fallback: np.ndarray | None) -> np.ndarray:
        r = self.backend.step(self.features)
        self.last_result = r
        n = self.monitor.steps
        if n == self._cycles.size:
            self._grow()
        net = self._net
        if r.ok:
            knee, ankle = r.outputs.tolist()
            self.raw_output[0] = knee
            self.raw_output[1] = ankle
            if self.residual:
                pk, pa = self._prior.tolist()
                res = self._res
                if res is not None:  # the expert's order: bound, slew from the last correction, then the envelope
                    bk, ba, sk, sa, ek, ea = res
                    knee = -bk if knee < -bk else (bk if knee > bk else knee)
                    ankle = -ba if ankle < -ba else (ba if ankle > ba else ankle)
                    ck, ca = self._correction.tolist()
                    knee = ck - sk if knee < ck - sk else (ck + sk if knee > ck + sk else knee)
                    ankle = ca - sa if ankle < ca - sa else (ca + sa if ankle > ca + sa else ankle)
                    self._correction[0] = knee
                    self._correction[1] = ankle
                    knee += pk
                    ankle += pa
                    ck, ca = max(abs(pk), ek), max(abs(pa), ea)
                    knee = -ck if knee < -ck else (ck if knee > ck else knee)
                    ankle = -ca if ankle < -ca else (ca if ankle > ca else ankle)
                else:
                    knee += pk
                    ankle += pa
            # Two outputs: scalar saturation is cheaper than numpy calls on 2-element arrays.
            lk, la = self._lim_knee, self._lim_ankle
            knee = -lk if knee < -lk else (lk if knee > lk else knee)
            ankle = -la if ankle < -la else (la if ankle > la else ankle)
            if self._rate_limited:  # within reach of the torque applied last step (0 after a reset)
                sk, sa = self._step_knee, self._step_ankle
                ok, oa = self._applied.tolist()
                knee = ok - sk if knee < ok - sk else (ok + sk if knee > ok + sk else knee)
                ankle = oa - sa if ankle < oa - sa else (oa + sa if ankle > oa + sa else ankle)
            net[0] = knee
            net[1] = ankle
            fired = r.fired_columns
            self._cycles[n] = r.cycles
            self._fired[n] = fired
            self._fired_total += fired
            self._nonzero += r.nonzero_deltas
            self._results += 1
            out = self.monitor.apply(r.latency_s, net, fallback, True, r.round_trip_s)
        else:
            self._cycles[n] = -1
            self._fired[n] = -1
            out = self.monitor.apply(math.inf, net, fallback, False, r.round_trip_s)
        if self._rate_limited:
            # What the motor got (held, fallback or stopped included) is where the next command slews from.
            self._applied[0] = out[0]
            self._applied[1] = out[1]
        return out

    def _grow(self) -> None:
        n = self._cycles.size
        self._cycles = np.concatenate([self._cycles, np.zeros(n, dtype=np.int64)])
        self._fired = np.concatenate([self._fired, np.zeros(n, dtype=np.int64)])

    def close(self) -> None:
        """Release the backend (a serial port, a board process)."""
        self.backend.close()

    # ------------------------------------------------------------------------------------------ records
    @property
    def steps(self) -> int:
        return self.monitor.steps

    @property
    def cycles(self) -> np.ndarray:
        """Accelerator cycles of every step since :meth:`reset` (-1: no cycle count, or a lost step; a view)."""
        return self._cycles[: self.steps]

    @property
    def fired_columns(self) -> np.ndarray:
        """Weight columns fetched per step since :meth:`reset` (-1 for a lost step; a view)."""
        return self._fired[: self.steps]

    @property
    def latencies_s(self) -> np.ndarray:
        """Latency of every step since :meth:`reset` (inf for a lost step; a view)."""
        return self.monitor.latencies_s

    def sparsity(self) -> float:
        """Fraction of zero Δx and Δh entries since :meth:`reset`, over the steps that produced a result."""
        n = self._results
        return 1.0 - self._nonzero / (n * self._delta_elements) if n else 0.0

    def macs_per_step(self) -> float:
        """Mean multiply-accumulates per step since :meth:`reset`: fetched columns · 3H + the output layer H·O."""
        n = self._results
        return self._fired_total * self._h3 / n + self._macs_out if n else 0.0

    def latency_stats(self) -> dict[str, Any]:
        """Latency (mean/p50/p99/p99.9/max µs), deadline misses, what the policy did, and the backend's counters."""
        s: dict[str, Any] = self.monitor.stats()
        cyc = self.cycles
        cyc = cyc[cyc >= 0]
        s["mean_cycles"] = round(float(cyc.mean()), 2) if cyc.size else 0.0
        s["max_cycles"] = int(cyc.max()) if cyc.size else 0
        return s

    def episode_stats(self) -> dict[str, Any]:
        """Counters of the episode so far, in the `legloop eval` JSON schema."""
        s = self.latency_stats()
        out: dict[str, Any] = {
            "sparsity": round(self.sparsity(), 6),
            "macs_per_step": round(self.macs_per_step(), 1),
            "dense_macs_per_step": self.dense_macs_per_step,
            "latency_us": {
                "mean": s["mean_us"],
                "p50": s["p50_us"],
                "p99": s["p99_us"],
                "p99_9": s["p99_9_us"],
                "max": s["max_us"],
            },
            "latency_source": "measured" if self.backend.kind == "cpu" else "modelled",
            "budget_us": s["budget_us"],
            "deadline_policy": self.policy,
            "deadline_misses": s["misses"],
            "deadline_steps": s["steps"],
            "deadline_held": s["held"],
            "deadline_fallbacks": s["fallbacks"],
            "deadline_stopped": s["stopped"],
            "lost_steps": s["lost"],
        }
        out |= self.backend.episode_stats()
        return out
