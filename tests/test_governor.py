"""The predictive threshold governor (hil.edgedrnn.predictive): exact pricing of what the host knows, the worst and
split bounds as guarantees, thresholds within [trained, 511], reset, and the ``--governor`` names through the spec."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.evaluate import EvalConfig, evaluate
from hil.edgedrnn import EdgeDRNNBackend, EdgeDRNNError, EdgeDRNNModel
from hil.edgedrnn.predictive import PredictiveGovernor, max_cycles_within
from hil.edgedrnn.synthetic import image_of, noisy_inputs, random_bundle, random_layers, smooth_inputs
from hil.governors import GOVERNORS, governor_name
from hil.learned import LearnedController
from hil.spec import ControllerSpec

L, I, H = 2, 8, 64
BASE_X, BASE_H = 8, 24
# 2L-64H at 125 MHz: 2.7 µs with nothing fired, ~41 µs dense; the smooth stretches of the inputs below stay under
# 12 µs at the trained thresholds, the burst averages ~29 µs.
BUDGET = 12e-6


@pytest.fixture(scope="module")
def net() -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    img = image_of(random_layers(rng, L, I, H))
    X = smooth_inputs(rng, 400, I, 150.0)
    X[150:200] = noisy_inputs(rng, 50, I)  # a burst (an impact): every delta fires at the trained Θ
    X[300] = -X[299]  # one jump after a calm stretch: nothing in the history announces it
    return img, X


def _run(img: bytes, X: np.ndarray, bound: str, budget: float = BUDGET):
    model = EdgeDRNNModel(img, L, I, H, BASE_X, BASE_H)
    gov = PredictiveGovernor(model, budget, BASE_X, BASE_H, bound=bound)
    rec = []
    for x in X:
        tx, th = gov.before(model, x)
        model.step(x)
        gov.after(model)
        layer_actual = model.layer_mac_cycles + model.layer_act_cycles
        rec.append((tx, th, gov.priced_cycles, model.cycles, *gov.priced_layer_cycles, *layer_actual))
    return model, gov, np.array(rec)


def test_budget_in_cycles_matches_the_backends_verdict() -> None:
    # The backend's verdict is cycles · (1/clock) + T_sys ≤ budget; in that float arithmetic 2625 cycles at 125 MHz
    # come to 21.000000000000002 µs, a miss, so the governor may use 2624.
    c = max_cycles_within(21e-6, 125e6, 0.0)
    assert c == 2624 and c * (1 / 125e6) <= 21e-6 < (c + 1) * (1 / 125e6)
    c = max_cycles_within(21e-6, 100e6, 1e-6)
    assert c * (1 / 100e6) + 1e-6 <= 21e-6 < (c + 1) * (1 / 100e6) + 1e-6


def test_estimate_prices_layer_one_exactly_and_keeps_the_priced_step_in_budget(net) -> None:
    img, X = net
    fixed = EdgeDRNNModel(img, L, I, H, BASE_X, BASE_H).run(X)
    assert (fixed.latency_s > BUDGET).sum() >= 40  # the burst misses at the trained thresholds
    _, gov, rec = _run(img, X, "estimate")
    tx, th, priced, actual, p1, _, a1, _ = rec.T
    np.testing.assert_array_equal(p1, a1)  # layer 1's delta vector is known before the step: priced exactly
    limit = gov.max_cycles
    assert gov.counters()["infeasible"] == 0
    assert (priced <= limit).all()  # the chosen Θ fits the priced (known + estimated) cost
    assert (p1 <= limit).all()
    assert (tx >= BASE_X).all() and (th >= BASE_H).all() and (tx <= 511).all() and (th <= 511).all()
    # It raises Θ far more in the burst than on the smooth stretch (where the slack of its estimate costs a little).
    assert np.median(tx[150:200]) > np.median(tx[20:140]) + 8
    assert (actual > limit).sum() < (fixed.latency_s > BUDGET).sum() / 3
    # An estimate, not a bound: the jump at step 300 is under-priced (the counter says so).
    assert gov.counters()["underestimates"] > 0 and actual[300] > priced[300]


def test_worst_bound_is_never_exceeded_so_no_step_is_late(net) -> None:
    img, X = net
    _, gov, rec = _run(img, X, "worst")
    _, _, priced, actual, *_ = rec.T
    assert (actual <= priced).all()  # the bound bounds the step (monotone chain, |h| ≤ 256)
    assert gov.counters()["underestimates"] == 0 and gov.counters()["infeasible"] == 0
    assert (actual <= gov.max_cycles).all()


def test_the_hosts_mirrors_are_the_accelerators_memories(net) -> None:
    # The governor reads back only h; its own x̂/ĥ bookkeeping must reproduce the model's delta memories exactly.
    img, X = net
    model, gov, _ = _run(img, X, "estimate")
    st, mirror = model.state, gov.mirrors()
    np.testing.assert_array_equal(mirror["x_hat"], st["x_hat"])
    np.testing.assert_array_equal(mirror["h_hat"], st["h_hat"])
    np.testing.assert_array_equal(mirror["h"], st["h"])


def test_reset_forgets_the_mirrors_and_prices_the_bias_column_again(net) -> None:
    img, X = net
    model = EdgeDRNNModel(img, L, I, H, BASE_X, BASE_H)
    gov = PredictiveGovernor(model, BUDGET, BASE_X, BASE_H)
    choices = []
    for _ in range(2):
        model.reset()
        gov.reset()
        assert gov.theta == (BASE_X, BASE_H)
        assert not gov.mirrors()["h"].any()
        run = []
        for x in X[:220]:
            run.append(gov.before(model, x))
            model.step(x)
            if len(run) == 1:  # the first step fetches every bias column: layer 1's price includes it
                assert gov.priced_layer_cycles[0] == model.layer_mac_cycles[0] + model.layer_act_cycles[0]
            gov.after(model)
        choices.append(run)
    assert choices[0] == choices[1]  # same inputs after a reset: the same thresholds
    assert gov.counters()["steps"] == 440  # counters are lifetime (the backend reports per-episode differences)


def test_split_backend_meets_the_budget_on_every_step() -> None:
    b = random_bundle(np.random.default_rng(4), input_size=8, hidden=64, theta_x=BASE_X, theta_h=BASE_H)
    feats = np.random.default_rng(5).normal(size=(300, 8)) * np.where(np.arange(300) % 50 < 5, 3.0, 0.2)[:, None]
    plain = EdgeDRNNBackend(b, budget_s=BUDGET)
    split = EdgeDRNNBackend(b, budget_s=BUDGET, governor="predictive-split")
    lat_plain, lat_split = [], []
    for f in feats:
        lat_plain.append(plain.step(f).latency_s)
        lat_split.append(split.step(f).latency_s)
    assert max(lat_plain) > BUDGET
    assert max(lat_split) <= BUDGET and split.misses == 0
    assert isinstance(split.governor, PredictiveGovernor)
    c = split.governor.counters()
    assert c["underestimates"] == 0 and c["infeasible"] == 0 and c["raised_steps"] > 0
    st = split.episode_stats()
    assert st["governor"] == "predictive-split" and 0 < st["governor_raised_steps"] <= c["raised_steps"]
    assert split.describe()["governor"] == "predictive-split"


def test_governor_names_and_back_compat() -> None:
    assert governor_name(True) == "reactive" and governor_name(False) is None and governor_name("none") is None
    assert set(GOVERNORS) >= {"reactive", "predictive", "predictive-worst", "predictive-split"}
    with pytest.raises(ValueError, match="expected one of"):
        governor_name("psychic")
    spec = ControllerSpec("edgedrnn", checkpoint="x.pt", governor=True)
    assert spec.governor == "reactive" and spec.to_dict()["governor"] == "reactive"
    assert ControllerSpec("edgedrnn", checkpoint="x.pt").governor is None
    with pytest.raises(ValueError, match="EdgeDRNN model only"):
        ControllerSpec("deltagru", checkpoint="x.pt", governor="predictive")
    model = EdgeDRNNModel(image_of(random_layers(np.random.default_rng(1), 1, 4, 16)), 1, 4, 16)
    with pytest.raises(EdgeDRNNError, match="bound must be one of"):
        PredictiveGovernor(model, BUDGET, bound="hopeful")
    with pytest.raises(EdgeDRNNError, match=r"0\.\.511"):
        PredictiveGovernor(model, BUDGET, 600)
    with pytest.raises(EdgeDRNNError, match="through EdgeDRNNBackend"):
        PredictiveGovernor(model, BUDGET, bound="split").before(model, np.zeros(4, dtype=np.int16))
    other = EdgeDRNNModel(image_of(random_layers(np.random.default_rng(1), 1, 4, 32)), 1, 4, 32)
    with pytest.raises(EdgeDRNNError, match="prices a model"):
        PredictiveGovernor(model, BUDGET).check_model(other)


def test_closed_loop_with_the_split_governor_is_never_late(make_checkpoint) -> None:
    ck = make_checkpoint("big.pt", hidden=128, theta_x=4 / 256, theta_h=0.05, qat=True)
    cfg = EvalConfig(seconds=1.0, seeds=(0,), randomize=False)
    spec = ControllerSpec("edgedrnn", checkpoint=str(ck), budget_s=6e-6, governor="predictive-split", policy="hold")
    made: list[LearnedController] = []
    with spec.factory() as factory:

        def make(env):
            c = factory(env)
            made.append(c)
            return c

        ep = evaluate(make, cfg, pushes=False)[0]
    assert ep["governor"] == "predictive-split" and ep["governor_raised_steps"] > 0
    assert ep["deadline_misses"] == 0 and ep["latency_us"]["max"] <= 6.0
    assert (made[0].latencies_s <= 6e-6).all() and made[0].latencies_s.size == ep["deadline_steps"]


def test_sweeps_take_a_governor_name_and_the_old_bool(tmp_path) -> None:
    from experiments.sweep_config import SweepConfigError, load_sweep

    ck = tmp_path / "c.pt"
    ck.write_bytes(b"")  # never read while expanding
    cfg = tmp_path / "s.toml"
    head = f'[defaults]\ncontroller = "edgedrnn"\ncheckpoint = "{ck}"\n'
    cfg.write_text(head + '[[grid]]\ngovernor = [true, "predictive-split", ""]\n')
    govs = sorted(str(t.params["governor"]) for t in load_sweep(cfg).tasks)
    assert govs == ["None", "predictive-split", "reactive"]
    cfg.write_text(head + 'governor = "psychic"\n')
    with pytest.raises(SweepConfigError, match="predictive-split"):
        load_sweep(cfg)
