"""Deadline policies and the learned-controller front end on the EdgeDRNN backend: per-step records, policies,
governor, eval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from controllers.base import Controller
from controllers.checkpoint import CheckpointError
from controllers.features import features_from_obs
from controllers.pd import AmproPD
from experiments.evaluate import EvalConfig, evaluate, summarize_episodes
from firmware_bridge.export import ExportError, bundle_from_checkpoint
from hil.deadline import DeadlineMonitor, pd_torque
from hil.edgedrnn.backend import EdgeDRNNBackend
from hil.learned import LearnedController
from hil.spec import ControllerSpec

torch.set_num_threads(1)


def _features(T: int, norm: tuple[np.ndarray, np.ndarray], seed: int = 0) -> np.ndarray:
    mean, std = norm
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / 200.0
    z = np.sin(2 * np.pi * 0.9 * t + rng.uniform(0, 6, (1, 5))) + 0.3 * rng.standard_normal((T, 5)) * (t > 1)
    f = z * std + mean
    f[:, 0] = (np.arange(T) // 100) % 2
    return f


# ------------------------------------------------------------------------------------------ deadline monitor


def test_hold_policy_holds_the_last_applied_torque() -> None:
    mon = DeadlineMonitor(budget_s=10e-6, policy="hold", capacity=16)
    np.testing.assert_array_equal(mon.apply(20e-6, np.array([1.0, 2.0])), [0.0, 0.0])  # nothing applied yet
    np.testing.assert_array_equal(mon.apply(5e-6, np.array([3.0, 4.0])), [3.0, 4.0])
    np.testing.assert_array_equal(mon.apply(10e-6, np.array([5.0, 6.0])), [5.0, 6.0])  # on the budget = met
    np.testing.assert_array_equal(mon.apply(11e-6, np.array([7.0, 8.0])), [5.0, 6.0])
    np.testing.assert_array_equal(mon.apply(12e-6, np.array([9.0, 9.0])), [5.0, 6.0])
    s = mon.stats()
    assert (s["steps"], s["misses"], s["held"], s["stopped"]) == (5, 3, 3, False)


def test_fallback_and_stop_policies() -> None:
    fb = DeadlineMonitor(10e-6, "fallback_pd")
    np.testing.assert_array_equal(fb.apply(20e-6, np.ones(2), np.array([-1.0, -2.0])), [-1.0, -2.0])
    np.testing.assert_array_equal(fb.apply(1e-6, np.ones(2), np.array([-1.0, -2.0])), [1.0, 1.0])
    assert fb.fallbacks == 1 and fb.misses == 1
    with pytest.raises(ValueError, match="needs the PD torque"):
        fb.apply(20e-6, np.ones(2))
    st = DeadlineMonitor(10e-6, "stop")
    np.testing.assert_array_equal(st.apply(1e-6, np.ones(2)), [1.0, 1.0])
    np.testing.assert_array_equal(st.apply(20e-6, np.ones(2)), [0.0, 0.0])
    np.testing.assert_array_equal(st.apply(1e-6, np.ones(2)), [0.0, 0.0])  # the stop latches
    s = st.stats()
    assert s["stopped"] and s["stopped_at_step"] == 1 and s["misses"] == 1
    st.reset()
    assert not st.stopped and st.steps == 0
    with pytest.raises(ValueError, match="unknown deadline policy"):
        DeadlineMonitor(policy="ignore")


def test_period_policy_counts_budget_misses_but_applies_results_within_the_period() -> None:
    mon = DeadlineMonitor(21e-6, "period", period_s=5e-3)
    np.testing.assert_array_equal(mon.apply(10e-6, np.array([1.0, 2.0])), [1.0, 2.0])
    np.testing.assert_array_equal(mon.apply(60e-6, np.array([3.0, 4.0])), [3.0, 4.0])  # late for 21 µs, not for 5 ms
    np.testing.assert_array_equal(mon.apply(6e-3, np.array([5.0, 6.0])), [3.0, 4.0])  # missed the period: held
    s = mon.stats()
    assert (s["misses"], s["held"], s["policy"]) == (2, 1, "period")
    with pytest.raises(ValueError, match="needs the control period"):
        DeadlineMonitor(21e-6, "period")


def test_latency_statistics_and_growth() -> None:
    mon = DeadlineMonitor(21e-6, capacity=16)
    lat = np.random.default_rng(0).uniform(1e-6, 30e-6, 1000)
    for v in lat:
        mon.apply(float(v), np.zeros(2))
    np.testing.assert_array_equal(mon.latencies_s, lat)  # grew past its 16 preallocated samples
    s = mon.stats()
    assert s["misses"] == int((lat > 21e-6).sum())
    assert s["p50_us"] == pytest.approx(np.percentile(lat, 50) * 1e6, abs=1e-4)
    assert s["p99_us"] == pytest.approx(np.percentile(lat, 99) * 1e6, abs=1e-4)
    assert s["max_us"] == pytest.approx(lat.max() * 1e6, abs=1e-4)
    assert sum(mon.histogram(1.0)["counts"]) == 1000


def test_pd_torque_is_the_pd_law_without_a_second_reference_update() -> None:
    pd, ref = AmproPD(0.005), AmproPD(0.005)
    rng = np.random.default_rng(1)
    out = np.zeros(2)
    for _ in range(50):
        obs = np.array([0.3, 0.5, 0.05, -0.2, 0.1, 0.3, 500.0]) + 0.05 * rng.standard_normal(7)
        expect = pd.act(obs)
        ref.update_reference(obs)
        np.testing.assert_allclose(pd_torque(ref, obs, out), expect, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------- EdgeDRNN controller


def test_controller_equals_the_backend_when_deadlines_are_met(make_checkpoint) -> None:
    ck = make_checkpoint(theta_x=4 / 256, theta_h=0.05, qat=True)
    c = LearnedController.from_checkpoint(ck, "edgedrnn", budget_s=1.0, capacity=16)
    assert isinstance(c, Controller) and c.name == "edgedrnn"
    be = EdgeDRNNBackend(bundle_from_checkpoint(ck))
    feats = _features(300, make_checkpoint.norm("ampro"))
    for f in feats:
        got = c.act_features(f)
        r = be.step(f)
        np.testing.assert_array_equal(got, np.clip(r.outputs, [-142, -168], [142, 168]))
    assert c.steps == 300 and c.cycles.size == 300  # records grew past the 16 preallocated steps
    assert c.cycles[0] > c.cycles[1:].min()  # the first step fetches every bias column
    s = c.latency_stats()
    assert s["misses"] == 0 and s["mean_us"] == pytest.approx(c.cycles.mean() / 125.0, abs=1e-3)
    assert 0.3 < c.sparsity() < 1.0
    assert c.macs_per_step() == pytest.approx(c.fired_columns.mean() * 3 * 16 + 16 * 2)
    assert c.macs_per_step() < c.dense_macs_per_step
    c.reset()
    assert c.steps == 0 and c.sparsity() == 0.0


@pytest.mark.parametrize("policy", ["hold", "fallback_pd", "stop"])
def test_policies_in_the_controller(policy: str, make_checkpoint) -> None:
    ck = make_checkpoint(theta_x=4 / 256, theta_h=0.05, qat=True)
    observations = []
    rng = np.random.default_rng(3)
    for t in range(200):
        obs = np.array([0.3 + 0.2 * np.sin(t / 20), 0.5, 0.05, -0.2, 0.1, 0.3, 500.0 if t < 80 else 5.0])
        obs[1:4] += 0.2 * rng.standard_normal(3) * (t % 7 == 0)  # occasional bursts of activity
        observations.append(obs)
    free = LearnedController.from_checkpoint(ck, "edgedrnn", dt=0.005, budget_s=1.0)
    net = [free.act(obs).copy() for obs in observations]
    # A budget at the median modelled latency: about half the steps miss (the policy does not change the network).
    budget = float(np.median(free.latencies_s))
    missed = list(free.latencies_s > budget)
    c = LearnedController.from_checkpoint(ck, "edgedrnn", dt=0.005, budget_s=budget, policy=policy)
    shadow = AmproPD(0.005)
    applied, fallback = [], []
    for obs in observations:
        applied.append(c.act(obs).copy())
        shadow.update_reference(obs)
        fallback.append(pd_torque(shadow, obs, np.zeros(2)).copy())
    np.testing.assert_array_equal(c.latencies_s, free.latencies_s)
    assert 0 < sum(missed) < 200
    s = c.latency_stats()
    assert s["misses"] == sum(missed) and s["policy"] == policy
    last = np.zeros(2)
    for t in range(200):
        if policy == "stop" and t >= s["stopped_at_step"] >= 0:
            expect = np.zeros(2)
        elif not missed[t]:
            expect = net[t]
        elif policy == "hold":
            expect = last
        else:
            expect = fallback[t]
        np.testing.assert_allclose(applied[t], expect, rtol=0, atol=1e-12)
        last = applied[t]
    if policy == "stop":
        assert s["stopped"] and s["stopped_at_step"] == int(np.argmax(missed))


def test_ampro_features_follow_the_reference(make_checkpoint) -> None:
    c = LearnedController.from_checkpoint(make_checkpoint(qat=True), "edgedrnn", dt=0.005)
    pd = AmproPD(0.005)
    f = np.zeros(5)
    for t in range(50):
        obs = np.array([0.3 + 0.01 * t, 0.5, 0.05, -0.2, 0.1, 0.3, 500.0 if t < 30 else 0.0], np.float32)
        c.act(obs)
        pd.update_reference(obs)
        np.testing.assert_array_equal(
            c.features, features_from_obs("ampro", obs, pd.domain, pd.knee_des, pd.knee_vel_des, f)
        )


def test_governor_acts_under_a_tight_budget(make_checkpoint) -> None:
    ck = make_checkpoint("big.pt", hidden=128, qat=True)
    feats = _features(300, make_checkpoint.norm("ampro"))
    plain = LearnedController.from_checkpoint(ck, "edgedrnn", budget_s=21e-6)
    gov = LearnedController.from_checkpoint(ck, "edgedrnn", budget_s=21e-6, governor=True)
    for f in feats:
        plain.act_features(f)
        gov.act_features(f)
    sp, sg = plain.episode_stats(), gov.episode_stats()
    assert sp["governor_actions"] == 0 and sg["governor_actions"] > 0
    assert sg["deadline_misses"] < sp["deadline_misses"]  # dense 2L-128H misses 21 µs; raising Θ buys the deadline back
    assert gov.sparsity() > plain.sparsity()


def test_bad_checkpoints(make_checkpoint) -> None:
    ck = make_checkpoint(qat=True)
    with pytest.raises(CheckpointError, match="feature set"):
        LearnedController.from_checkpoint(ck, "edgedrnn", feature_set="sensors")
    big = make_checkpoint("bigtheta.pt", theta_h=2.5, qat=True)
    with pytest.raises(ExportError, match="10-bit"):
        LearnedController.from_checkpoint(big, "edgedrnn")


def test_eval_episodes_report_latency(make_checkpoint) -> None:
    ck = make_checkpoint(theta_x=4 / 256, theta_h=0.05, qat=True)
    cfg = EvalConfig(seconds=0.5, seeds=(0,), randomize=False)
    spec = ControllerSpec("edgedrnn", checkpoint=str(ck), budget_s=3e-6, governor=True)
    eps = evaluate(spec.factory(), cfg, pushes=False)
    ep = eps[0]
    assert set(ep["latency_us"]) >= {"mean", "p99", "max"}
    assert ep["latency_us"]["max"] >= ep["latency_us"]["p99"] >= ep["latency_us"]["mean"] > 0
    assert isinstance(ep["deadline_misses"], int) and isinstance(ep["governor_actions"], int)
    assert 0 <= ep["sparsity"] <= 1 and ep["macs_per_step"] > 0
    s = summarize_episodes(eps)
    assert s["deadline_misses"] == ep["deadline_misses"] and s["max_latency_us"] == ep["latency_us"]["max"]
    assert "mean_latency_us" in s and "mean_deadline_policy" not in s
