"""A prosthesis controller that runs its delta-GRU on the EdgeDRNN model, with a deadline policy.

Per control step (:meth:`EdgeDRNNController.act`)::

    sensors ─┬─> AmproPD.update_reference (ampro features, and the fallback_pd policy)
             └─> features ─> EdgeDRNNBackend.step (z-score → Q8.8 → integer delta-GRU → ARM output layer,
                             modelled cycles and latency) ─> clip ±peak ─> DeadlineMonitor (hold | fallback_pd | stop)

The threshold governor (optional) rewrites Θx/Θh between steps to keep the modelled latency under the budget.
Per step the controller records latency (in the monitor), cycles and fired columns in preallocated arrays; the
statistics are computed on demand (:meth:`latency_stats`, :meth:`sparsity`, :meth:`macs_per_step`), never in the
loop.
"""

from __future__ import annotations

import json
import os

import numpy as np

from controllers.features import check_feature_set, feature_size, features_from_obs
from controllers.learned import torque_limits_of
from controllers.pd import AmproPD
from envs.anthropometry import WalkerParams
from firmware_bridge.bundle import Bundle
from firmware_bridge.export import bundle_from_checkpoint
from hil.deadline import DEFAULT_CAPACITY, FALLBACK_PD, DeadlineMonitor, check_policy, pd_torque
from hil.edgedrnn import kernel as kn
from hil.edgedrnn.backend import DEFAULT_BUDGET_S, EdgeDRNNBackend
from hil.edgedrnn.governor import ThresholdGovernor


class EdgeDRNNController:
    """Controller interface over an EdgeDRNN deployment bundle.

    Parameters
    ----------
    bundle
        The exported network (:func:`firmware_bridge.export.bundle_from_model`).
    dt
        Control period, s (the AMPRO reference's swing phase is time-based); default the bundle's ``control_dt``.
    feature_set
        ``ampro`` or ``sensors``; default the one recorded in the bundle's metadata.
    budget_s, policy, governor
        Latency budget, deadline policy (``hold`` | ``fallback_pd`` | ``stop``) and the optional threshold governor
        (True for the default policy around the budget, or a :class:`ThresholdGovernor`).
    walker, torque_limits
        Reference PD's body parameters and the torque saturation (default the motor peak torques, 142 / 168 N·m).
    clock_hz, t_sys_s, burst_latency
        Cycle-model parameters of the accelerator (125 MHz, T_sys 0, λ 0 by default).
    capacity
        Steps of per-step records preallocated (doubled when exceeded).
    """

    def __init__(
        self,
        bundle: Bundle,
        dt: float | None = None,
        feature_set: str | None = None,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        policy: str = "hold",
        governor: bool | ThresholdGovernor = False,
        walker: WalkerParams | None = None,
        torque_limits: tuple[float, float] | None = None,
        clock_hz: float = 125e6,
        t_sys_s: float = 0.0,
        burst_latency: int = 0,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        meta = json.loads(bundle.metadata) if bundle.metadata else {}
        self.feature_set = check_feature_set(feature_set or meta.get("feature_set", ""))
        n_in = feature_size(self.feature_set)
        if bundle.input_size != n_in:
            raise ValueError(f"bundle has {bundle.input_size} inputs; feature set {self.feature_set!r} has {n_in}")
        if bundle.n_outputs != 2:
            raise ValueError(
                f"a prosthesis controller needs 2 outputs [knee, ankle], the bundle has {bundle.n_outputs}"
            )
        self.name = "edgedrnn"
        self.bundle = bundle
        self.dt = float(dt if dt is not None else meta.get("control_dt", 0.005))
        self.policy = check_policy(policy)
        self.backend = EdgeDRNNBackend(
            bundle,
            budget_s=budget_s,
            governor=governor if governor else None,
            clock_hz=clock_hz,
            burst_latency=burst_latency,
            t_sys_s=t_sys_s,
        )
        self.monitor = DeadlineMonitor(budget_s, self.policy, 2, capacity, period_s=self.dt)
        needs_reference = self.feature_set == "ampro" or self.policy == FALLBACK_PD
        self.reference: AmproPD | None = AmproPD(self.dt, walker=walker) if needs_reference else None
        self.torque_limits = torque_limits_of(walker, torque_limits)
        model = self.backend.model
        H = bundle.hidden
        self._stats = model._stats  # the kernel's per-step results (a view, read after each step)
        self._delta_elements = model.delta_elements
        self._dense_columns = self._delta_elements  # Σ_l (I_l + H): columns of a dense step
        self.dense_macs_per_step = 3 * H * self._dense_columns + H * bundle.n_outputs
        self._macs_out = H * bundle.n_outputs
        self._h3 = 3 * H
        cap = max(16, int(capacity))
        self._cycles = np.zeros(cap, dtype=np.int64)
        self._fired = np.zeros(cap, dtype=np.int64)
        self.features = np.zeros(n_in, dtype=np.float64)  # raw features of the last step (backend wants float64)
        # Network torque before saturation and policy: the backend's own output array, updated in place.
        self.raw_output = self.backend.result.outputs
        self._net = np.zeros(2, dtype=np.float64)
        self._lim_knee, self._lim_ankle = (float(v) for v in self.torque_limits)
        self._fallback = np.zeros(2, dtype=np.float64)
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        dt: float | None = None,
        budget_s: float = DEFAULT_BUDGET_S,
        policy: str = "hold",
        governor: bool = False,
        *,
        feature_set: str | None = None,
        clip_theta: bool = False,
        **kwargs,
    ) -> EdgeDRNNController:
        """Export ``path`` to a bundle in memory and run it (raises ``CheckpointError`` / ``ExportError``)."""
        bundle = bundle_from_checkpoint(path, feature_set=feature_set, clip_theta=clip_theta)
        return cls(bundle, dt, feature_set, budget_s=budget_s, policy=policy, governor=governor, **kwargs)

    # ------------------------------------------------------------------------------------------ control
    def reset(self) -> None:
        """New episode: zero the accelerator state, restore Θ, clear the records and the deadline monitor."""
        self.backend.reset()
        self.monitor.reset()
        if self.reference is not None:
            self.reference.reset()
        gov = self.backend.governor
        self._gov_base = gov.actions if gov is not None else 0
        self._nonzero = 0
        self._fired_total = 0

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Torques [knee, ankle] N·m for one sensor vector, after the deadline policy (array reused each step)."""
        ref = self.reference
        fallback = None
        if ref is not None:
            ref.update_reference(observation)
            if self.policy == FALLBACK_PD:
                fallback = pd_torque(ref, observation, self._fallback)
            features_from_obs(self.feature_set, observation, ref.domain, ref.knee_des, ref.knee_vel_des, self.features)
        else:
            features_from_obs(self.feature_set, observation, 0.0, 0.0, 0.0, self.features)
        return self._infer(fallback)

    def act_features(self, features: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
        """Torques from raw features (offline replay); ``fallback`` is the PD torque used by ``fallback_pd``."""
        self.features[:] = features
        return self._infer(fallback)

    def _infer(self, fallback: np.ndarray | None) -> np.ndarray:
        r = self.backend.step(self.features)
        # Two outputs: scalar saturation is cheaper than numpy calls on 2-element arrays.
        knee, ankle = r.outputs.tolist()
        lk, la = self._lim_knee, self._lim_ankle
        net = self._net
        net[0] = -lk if knee < -lk else (lk if knee > lk else knee)
        net[1] = -la if ankle < -la else (la if ankle > la else ankle)
        n = self.monitor.steps
        if n == self._cycles.size:
            self._grow()
        fired = r.fired_columns
        self._cycles[n] = r.cycles
        self._fired[n] = fired
        self._fired_total += fired
        self._nonzero += self._stats[kn.ST_DELTAS]
        return self.monitor.apply(r.latency_s, net, fallback)

    def _grow(self) -> None:
        for name in ("_cycles", "_fired"):
            old = getattr(self, name)
            new = np.zeros(2 * old.size, dtype=old.dtype)
            new[: old.size] = old
            setattr(self, name, new)

    # ------------------------------------------------------------------------------------------ records
    @property
    def steps(self) -> int:
        return self.monitor.steps

    @property
    def cycles(self) -> np.ndarray:
        """Modelled accelerator cycles of every step since :meth:`reset` (a view)."""
        return self._cycles[: self.steps]

    @property
    def fired_columns(self) -> np.ndarray:
        """Weight columns fetched per step (bias included) since :meth:`reset` (a view)."""
        return self._fired[: self.steps]

    @property
    def latencies_s(self) -> np.ndarray:
        return self.monitor.latencies_s

    @property
    def governor_actions(self) -> int:
        gov = self.backend.governor
        return gov.actions - self._gov_base if gov is not None else 0

    def sparsity(self) -> float:
        """Fraction of zero Δx and Δh entries since :meth:`reset` (bias column excluded)."""
        steps = self.steps
        return 1.0 - self._nonzero / (steps * self._delta_elements) if steps else 0.0

    def macs_per_step(self) -> float:
        """Mean MACs per step since :meth:`reset`: fetched columns (bias included) · 3H + the ARM output layer."""
        steps = self.steps
        return self._fired_total * self._h3 / steps + self._macs_out if steps else 0.0

    def latency_stats(self) -> dict[str, float | int | bool]:
        """Modelled latency (mean/p50/p99/max µs), deadline misses and what the policy and governor did."""
        s = self.monitor.stats()
        s["governor_actions"] = self.governor_actions
        s["mean_cycles"] = round(float(self.cycles.mean()), 2) if self.steps else 0.0
        s["max_cycles"] = int(self.cycles.max()) if self.steps else 0
        return s

    def episode_stats(self) -> dict[str, object]:
        """Counters of the episode so far, in the `legloop eval` JSON schema."""
        s = self.latency_stats()
        return {
            "sparsity": round(self.sparsity(), 6),
            "macs_per_step": round(self.macs_per_step(), 1),
            "dense_macs_per_step": self.dense_macs_per_step,
            "latency_us": {"mean": s["mean_us"], "p50": s["p50_us"], "p99": s["p99_us"], "max": s["max_us"]},
            "deadline_misses": s["misses"],
            "governor_actions": s["governor_actions"],
            "deadline_policy": self.policy,
            "deadline_stopped": s["stopped"],
        }
