"""The auxiliary gait-phase output of training (`[aux]`): a training-only head on the top hidden state, supervised by
the PD's domain and phase in simulation. It must train, be validated as a config key, stay out of the deployed
network (two torque outputs), and leave a weight-0 training exactly as it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.checkpoint import load_checkpoint
from controllers.deltagru import DeltaGRU
from experiments.train_config import CONFIG_DIR, AuxConfig, ConfigError, config_from_dict, load_config
from experiments.train_data import Prepared, Scaling, Series, TrainError, WindowSampler, aux_targets
from experiments.train_stages import StageSpec, make_aux_head, train_stage, validate

torch.set_num_threads(1)

TINY = CONFIG_DIR / "train_tiny.toml"
STAGES = ["bc", "dagger1", "delta", "delta_dagger1"]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"aux": {"weight": -1.0}}, "aux.weight"),
        ({"aux": {"weight": True}}, "aux.weight must be a number"),
        ({"aux": {"wieght": 1.0}}, "aux.wieght"),
        ({"aux": 1.0}, "aux must be a table"),
    ],
)
def test_bad_aux_config_names_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        config_from_dict(raw)


def test_aux_off_by_default_and_absent_from_the_config_record() -> None:
    cfg = load_config()
    assert cfg.aux == AuxConfig() and cfg.aux.weight == 0.0
    # Off, the table is not in the record (run dirs and sweep ids from before it still match); on, it is.
    assert "aux" not in cfg.to_dict() and cfg.full_dict()["aux"] == {"weight": 0.0}
    on = cfg.replace(aux=AuxConfig(weight=0.5))
    assert on.to_dict()["aux"] == {"weight": 0.5}
    assert config_from_dict(on.to_dict()) == on


def test_sensors_config_loads_with_the_aux_output() -> None:
    cfg = load_config(CONFIG_DIR / "train_sensors.toml")
    assert cfg.feature_set == "sensors" and cfg.aux.weight == 1.0 and cfg.data.max_slope_deg == 3.0
    # Everything else that the study did not change is the configuration it started from: the default of the time,
    # the paper's 2L-128H (train_default_h128.toml since the default became 2L-64H).
    default = load_config(CONFIG_DIR / "train_default_h128.toml")
    assert (cfg.model, cfg.optim, cfg.bc, cfg.delta) == (default.model, default.optim, default.bc, default.delta)


# ------------------------------------------------------------------------------------------------ data
def _synthetic(n_eps: int = 4, T: int = 400, seed: int = 0) -> list[Series]:
    """Episodes whose stance flag and phase can be read from the input history only (a sawtooth seen through a
    sine): what the head has to learn from a hidden state."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_eps):
        period = rng.integers(80, 120)
        t = np.arange(T) + rng.integers(0, period)
        cyc = (t % period) / period
        stance = (cyc < 0.6).astype(np.float64)
        tau = np.where(stance > 0, cyc / 0.6, (cyc - 0.6) / 0.4)
        x = np.stack([np.sin(2 * np.pi * cyc), rng.normal(scale=0.05, size=T)], axis=-1).astype(np.float32)
        y = np.stack([np.cos(2 * np.pi * cyc), stance], axis=-1).astype(np.float32)
        a = aux_targets({"ishumanswing": stance, "tau": tau})
        out.append(Series(f"ep{i}", x, y, a))
    return out


def test_aux_targets_and_missing_columns() -> None:
    a = aux_targets({"ishumanswing": np.array([1.0, 0.0]), "tau": np.array([0.25, 1.0])})
    np.testing.assert_allclose(a, [[1.0, -0.5], [-1.0, 1.0]])
    with pytest.raises(TrainError, match="tau"):
        aux_targets({"ishumanswing": np.zeros(3)})


def test_window_sampler_draws_the_same_windows_with_aux_targets() -> None:
    series = _synthetic()
    prep = Prepared.build(series, Scaling.fit(series))
    assert prep.aux is not None and len(prep.aux) == len(series)
    plain = list(WindowSampler(prep, 50, 10, 40, 8).epoch(np.random.default_rng(3)))
    with_aux = list(WindowSampler(prep, 50, 10, 40, 8, aux=True).epoch(np.random.default_rng(3)))
    assert len(plain) == len(with_aux)
    for (x0, y0, m0), (x1, y1, m1) in zip(plain, with_aux, strict=True):
        assert torch.equal(x0, x1) and torch.equal(m0, m1) and torch.equal(y0, y1[..., :2])
        assert y1.shape[-1] == 4
    # A set without aux targets cannot feed the head.
    bare = Prepared.build([Series(s.name, s.x, s.y) for s in series], Scaling.fit(series))
    assert bare.aux is None
    with pytest.raises(TrainError, match="gait-phase targets"):
        WindowSampler(bare, 50, 10, 40, 8, aux=True)


def test_aux_head_learns_the_phase_and_stays_out_of_the_network() -> None:
    series = _synthetic()
    train_s, val_s = series[:3], series[3:]
    scaling = Scaling.fit(train_s)
    train_p, val_p = Prepared.build(train_s, scaling), Prepared.build(val_s, scaling)
    cfg = load_config(TINY)
    cfg = cfg.replace(optim=dataclasses.replace(cfg.optim, window=100, warmup=20, batch_size=8, lr=5e-3))
    torch.manual_seed(0)
    model = DeltaGRU(2, 16, 1, 2)
    keys = set(model.state_dict())
    head = make_aux_head(model)
    before = validate(model, val_p, scaling, "l1", head)["aux"]
    spec = StageSpec("bc", 0, 15, 5e-3, aux_weight=1.0)
    rec = train_stage(model, spec, train_p, val_p, scaling, cfg, progress=False, aux_head=head)
    after = rec["val_aux"]
    assert rec["aux_weight"] == 1.0 and "train_aux_loss" in rec["history"][0]
    losses = [h["train_aux_loss"] for h in rec["history"]]
    assert losses[-1] < 0.5 * losses[0], losses
    assert after["stance_accuracy"] > max(0.85, before["stance_accuracy"]), (before, after)
    assert after["tau_rmse"] < before["tau_rmse"], (before, after)
    # The head is separate: the network's parameters and outputs are what they were (2 torques).
    assert set(model.state_dict()) == keys and model.output_size == 2
    assert model(torch.zeros(1, 5, 2)).shape == (1, 5, 2)


# ------------------------------------------------------------------------------------------------ pipeline
collect_mod = pytest.importorskip("experiments.collect", reason="experiments.collect (data collection) not available")


def _tiny(weight: float | None, feature_set: str = "ampro"):
    cfg = load_config(TINY).replace(feature_set=feature_set)
    return cfg if weight is None else cfg.replace(aux=AuxConfig(weight=weight))


def test_aux_weight_zero_trains_exactly_as_without_the_table(tmp_path: Path) -> None:
    from experiments.train import run_training

    run_training(_tiny(None), tmp_path / "plain", progress=False)
    run_training(_tiny(0.0), tmp_path / "zero", progress=False)
    for name in [*(f"stages/{s}.pt" for s in STAGES), "controller.pt"]:
        assert _same_weights(tmp_path / "plain" / name, tmp_path / "zero" / name), name
    assert not list((tmp_path / "zero" / "stages").glob("*.aux.pt"))


def test_sensors_training_with_aux_output(tmp_path: Path) -> None:
    from experiments.train import run_training
    from experiments.train_data import TrainError as PipelineError

    out = tmp_path / "aux"
    res = run_training(_tiny(1.0, "sensors"), out, progress=False)
    model, meta = load_checkpoint(out / "controller.pt", feature_set="sensors")
    assert model.output_size == 2 and not any(k.startswith("aux") for k in _state(out / "controller.pt"))
    assert meta.training["config"]["aux"] == {"weight": 1.0}
    for stage, rec in zip(STAGES, meta.training["stages"], strict=True):
        assert rec["name"] == stage and rec["aux_weight"] == 1.0
        assert 0.0 <= rec["val_aux"]["stance_accuracy"] <= 1.0 and rec["val_aux"]["tau_rmse"] >= 0.0
        assert (out / "stages" / f"{stage}.aux.pt").exists()
    if res.export_error is None:
        from firmware_bridge.bundle import load_bundle

        assert load_bundle(res.exported["bundle"]).n_outputs == 2
    # Resuming the last stage picks the head up from its file: the same weights as the uninterrupted run.
    for f in ("stages/delta_dagger1.pt", "stages/delta_dagger1.json", "controller.pt", "controller.json"):
        (out / f).unlink()
    before = _state(out / "stages" / "delta_dagger1.aux.pt")
    run_training(_tiny(1.0, "sensors"), out, progress=False)
    after = _state(out / "stages" / "delta_dagger1.aux.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The labels come from the simulator's PD: with --data logs the option is refused.
    with pytest.raises(PipelineError, match=r"\[aux\]"):
        run_training(_tiny(1.0, "sensors"), tmp_path / "logs", sources=[str(out / "data" / "pd")], progress=False)
