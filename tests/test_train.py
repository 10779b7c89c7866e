"""Tests of the training pipeline (`legloop train`): end to end on a tiny config, determinism, resume, bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.checkpoint import load_checkpoint
from controllers.features import FEATURE_COLUMNS, TARGET_COLUMNS
from experiments.cli import main
from experiments.train_config import CONFIG_DIR, ConfigError, config_from_dict, load_config

torch.set_num_threads(1)

TINY = CONFIG_DIR / "train_tiny.toml"
STAGES = ["bc", "dagger1", "delta", "delta_dagger1"]
collect_mod = pytest.importorskip("experiments.collect", reason="experiments.collect (data collection) not available")
dataset_mod = pytest.importorskip("experiments.dataset", reason="experiments.dataset not available")


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from experiments.train import run_training

    out = tmp_path_factory.mktemp("train") / "run"
    res = run_training(load_config(TINY), out, progress=False)
    return out, res


# ------------------------------------------------------------------------------------------------ pipeline
def test_pipeline_end_to_end_leaves_controller_with_metadata(tiny_run) -> None:
    out, res = tiny_run
    cfg = load_config(TINY)
    assert res.controller == out / "controller.pt"
    model, meta = load_checkpoint(out / "controller.pt", feature_set="ampro")
    assert meta.feature_set == "ampro"
    assert model.hidden_size == cfg.model.hidden_size and model.num_layers == cfg.model.num_layers
    assert model.theta_x == pytest.approx(cfg.delta.theta_x) and model.theta_h == pytest.approx(cfg.delta.theta_h)
    assert model.qat is True
    assert len(meta.input_norm.mean) == 5 and meta.target_scale.shape == (2,) and (meta.target_scale > 0).all()
    assert meta.control_dt == pytest.approx(0.005)
    t = meta.training
    assert t["stage"] == "delta_dagger1"
    assert [s["name"] for s in t["stages"]] == STAGES
    assert set(t["val_r2"]) == {"knee", "ankle"} and all(np.isfinite(v) for v in t["val_r2"].values())
    assert 0.0 <= t["val_sparsity"] <= 1.0
    # The per-layer zero fractions account for the overall sparsity: fetched columns are the non-zero Δ entries.
    layers = t["stages"][-1]["val_sparsity_layers"]
    H, sizes = model.hidden_size, [model.input_size] + [model.hidden_size] * (model.num_layers - 1)
    fired = sum((1 - x) * i + (1 - h) * H for x, h, i in zip(layers["dx"], layers["dh"], sizes, strict=True))
    assert 1.0 - fired / sum(i + H for i in sizes) == pytest.approx(t["val_sparsity"], abs=2e-3)
    # DAgger grew the training set with the learner-driven episode.
    assert t["stages"][1]["train_episodes"] == t["stages"][0]["train_episodes"] + cfg.dagger.episodes
    for stage in STAGES:
        assert (out / "stages" / f"{stage}.pt").exists() and (out / "stages" / f"{stage}.json").exists()
    assert _same_weights(out / "stages" / "delta_dagger1.pt", out / "controller.pt")
    # The last round was driven by the delta network.
    delta_manifest = json.loads((out / "data" / "delta_dagger1" / "manifest.json").read_text())
    assert delta_manifest["collect"]["driver"]["checkpoint"].endswith("delta.pt")
    assert any((out / "tb").iterdir()), "no TensorBoard event file"
    dagger_manifest = json.loads((out / "data" / "dagger1" / "manifest.json").read_text())
    assert dagger_manifest["collect"]["driver"]["checkpoint"].endswith("bc.pt")
    assert dagger_manifest["collect"]["beta"] == pytest.approx(cfg.dagger.beta(1))
    summary = json.loads((out / "train.json").read_text())
    assert [s["name"] for s in summary["stages"]] == STAGES
    # The final network's fit per data set: who drove each (β: the expert's share), and the validation episodes'
    # figure is the last stage's own (the same network on the same episodes).
    fit = summary["fit_by_data_set"]
    assert list(fit) == ["data", "dagger1", "delta_dagger1", "val"]
    assert [fit[k]["beta"] for k in fit] == pytest.approx([1.0, cfg.dagger.beta(1), cfg.dagger.beta(2), 1.0])
    assert fit["dagger1"]["episodes"] == fit["delta_dagger1"]["episodes"] == cfg.dagger.episodes
    assert fit["val"]["r2"] == t["val_r2"]
    assert fit["data"]["r2"] != fit["val"]["r2"]
    if res.export_error is None:
        assert all(Path(p).exists() for p in res.exported.values())


def test_run_directory_also_leaves_the_float_gru_and_resolves_per_controller(tiny_run) -> None:
    from controllers.checkpoint import learned_checkpoint

    out, res = tiny_run
    # The float GRU is the last stage before the delta fine-tune: no thresholds, no QAT, weights of that stage.
    assert res.gru == out / "gru.pt" and (out / "gru.json").exists()
    gru, meta = load_checkpoint(res.gru, feature_set="ampro")
    assert (gru.theta_x, gru.theta_h, gru.qat) == (0.0, 0.0, False)
    assert meta.training["stage"] == "dagger1"
    assert _same_weights(out / "stages" / "dagger1.pt", res.gru)
    assert json.loads((out / "train.json").read_text())["gru"] == str(res.gru)
    assert learned_checkpoint("gru", out) == res.gru
    assert learned_checkpoint("deltagru", out) == learned_checkpoint("edgedrnn", out) == out / "controller.pt"
    assert learned_checkpoint("gru", out / "controller.pt") == out / "controller.pt"  # a file is used as given


def test_same_seed_gives_identical_weights(tiny_run, tmp_path: Path) -> None:
    from experiments.train import run_training

    out, _ = tiny_run
    run_training(load_config(TINY), tmp_path / "again", progress=False)
    for name in [*(f"stages/{s}.pt" for s in STAGES), "controller.pt"]:
        assert _same_weights(out / name, tmp_path / "again" / name), name


def test_resume_skips_finished_stages(tiny_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from experiments import train

    out, _ = tiny_run
    run = tmp_path / "resume"
    shutil.copytree(out, run)
    # An interrupted run: the delta stage and the deliverable never got written.
    for f in ("stages/delta_dagger1.pt", "stages/delta_dagger1.json", "controller.pt", "controller.json"):
        (run / f).unlink()
    trained: list[str] = []
    real = train.train_stage

    def spy(model, spec, *args, **kwargs):
        trained.append(spec.name)
        return real(model, spec, *args, **kwargs)

    monkeypatch.setattr(train, "train_stage", spy)
    bc_bytes = (run / "stages" / "bc.pt").read_bytes()
    train.run_training(load_config(TINY), run, progress=False)
    assert trained == ["delta_dagger1"]
    assert (run / "stages" / "bc.pt").read_bytes() == bc_bytes
    assert _same_weights(run / "controller.pt", out / "controller.pt")  # resumed = uninterrupted
    # --restart recomputes every stage.
    trained.clear()
    train.run_training(load_config(TINY), run, restart=True, force=True, progress=False)
    assert trained == STAGES


def test_refuses_existing_controller_and_changed_config(tiny_run, tmp_path: Path, capsys) -> None:
    out, _ = tiny_run
    before = (out / "controller.pt").read_bytes()
    assert main(["train", "--config", str(TINY), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "controller.pt").read_bytes() == before

    from experiments.train import run_training
    from experiments.train_data import TrainError

    other = load_config(TINY).replace(seed=1)
    with pytest.raises(TrainError, match="another configuration"):
        run_training(other, out, force=True, progress=False)
    assert (out / "controller.pt").read_bytes() == before


# ------------------------------------------------------------------------------------------------ logs
def _sim_csv(tiny_run, path: Path, drop: str | None = None) -> Path:
    """An AMPRO CSV log made from a simulated episode (optionally without one column)."""
    out, _ = tiny_run
    ep = dataset_mod.load_dataset([str(out / "data" / "pd")])[0]
    if drop is None:
        return dataset_mod.export_csv(ep, path)
    # Written by hand: export_csv fills absent AMPRO columns with zeros, a real log would just lack them.
    names = [k for k in ep.columns if k != drop]
    np.savetxt(
        path, np.stack([ep.columns[k] for k in names], axis=1), delimiter=",", header=",".join(names), comments=""
    )
    return path


def test_csv_missing_column_is_a_clear_error_and_overwrites_nothing(tiny_run, tmp_path: Path, capsys) -> None:
    csv = _sim_csv(tiny_run, tmp_path / "log.csv", drop="torque_pd_knee")
    out = tmp_path / "run"
    out.mkdir()
    (out / "controller.pt").write_bytes(b"an earlier controller")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rc = main(["train", "--config", str(TINY), "--data", str(csv), "--out", str(out), "--force", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "torque_pd_knee" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_missing_data_source_is_a_clear_error(tmp_path: Path, capsys) -> None:
    rc = main(["train", "--config", str(TINY), "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_training_on_a_csv_log_skips_simulation(tiny_run, tmp_path: Path) -> None:
    from experiments.train import run_training

    csv = _sim_csv(tiny_run, tmp_path / "log.csv")
    # A CSV log implies the ampro features even when the config says otherwise.
    cfg = load_config(TINY).replace(feature_set="sensors")
    res = run_training(cfg, tmp_path / "run", sources=[str(csv)], progress=False)
    _, meta = load_checkpoint(res.controller)
    assert meta.feature_set == "ampro"
    assert [s["name"] for s in meta.training["stages"]] == ["bc", "delta"]
    assert not (tmp_path / "run" / "data").exists()
    for c in FEATURE_COLUMNS["ampro"] + TARGET_COLUMNS:
        assert c in dataset_mod.load_dataset([str(csv)])[0].columns


# ------------------------------------------------------------------------------------------------ config
def test_default_and_tiny_configs_load() -> None:
    cfg = load_config()
    assert (cfg.optim.window, cfg.optim.batch_size, cfg.optim.lr, cfg.optim.loss) == (100, 32, 5e-4, "l1")
    assert cfg.optim.grad_clip == 200.0 and cfg.delta.qat and cfg.delta.theta_x == pytest.approx(6 / 256)
    assert load_config(TINY).model.hidden_size == 16
    assert cfg.model.hidden_size == 64 and cfg.model.num_layers == 2


def test_size_configs_are_the_default_but_for_the_hidden_size() -> None:
    default = load_config().full_dict()
    for hidden in (128, 256):
        sized = load_config(CONFIG_DIR / f"train_default_h{hidden}.toml").full_dict()
        assert sized["model"].pop("hidden_size") == hidden
        assert sized == default | {"model": {k: v for k, v in default["model"].items() if k != "hidden_size"}}


def test_distil_config_is_the_default_but_for_inputs_target_pushes_in_the_data_and_sparsity() -> None:
    default = load_config().full_dict()
    distil = load_config(CONFIG_DIR / "train_distil.toml").full_dict()
    pushes = {"push_fraction": 0.5, "push_min_n": 100.0, "push_max_n": 400.0}
    sparser = {"theta_x": 16 / 256, "theta_h": 128 / 256, "l1_weight": 4.0}
    # trained at a staler ĥ than it runs at (docs/rl.md, eighth round)
    sparser |= {"run_theta_x": 20 / 256, "run_theta_h": 64 / 256}
    io = {"feature_set": "ampro_plus", "target": "pd_residual"}
    assert default["data"]["push_fraction"] == 0.0 and default["feature_set"] == "ampro"
    assert distil == default | io | {"data": default["data"] | pushes, "delta": default["delta"] | sparser}


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"data": {"push_fraction": 1.5}}, "data.push_fraction must be in"),
        ({"data": {"push_min_n": 500.0}}, "data.push_min_n / push_max_n"),
        ({"model": {"hiden_size": 16}}, "model.hiden_size"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"model": {"hidden_size": 20}}, "model.hidden_size"),
        ({"model": {"hidden_size": "big"}}, "model.hidden_size must be an integer"),
        ({"optim": {"lr": True}}, "optim.lr must be a number"),
        ({"data": {"speeds": [1.0, 3.0]}}, "data.speeds"),
        ({"optim": {"window": 10, "warmup": 10}}, "optim.warmup"),
        ({"delta": 3}, "delta must be a table"),
        ({"feature_set": "eeg"}, "feature_set"),
        ({"optim": {"l1_weight": -1.0}}, "optim.l1_weight"),
        ({"model": {"input_gain": [1.0, 2.0]}}, "model.input_gain must be empty or one multiplier per 'ampro' feature"),
        ({"model": {"input_gain": [1.0, 1.0, 1.0, 1.0, 0.0]}}, "model.input_gain must be multipliers in (0, 16]"),
    ],
)
def test_bad_config_names_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config_from_dict(raw)


def test_input_gain_scales_the_z_scores_in_the_checkpoints_normalisation() -> None:
    """model.input_gain multiplies each feature's z-score (std / gain in the stored normaliser, so every backend
    applies it); off, the key stays out of run specs and sweep task ids."""
    from experiments.train_data import Scaling, Series

    rng = np.random.default_rng(0)
    series = [Series("a", rng.normal(size=(200, 5)).astype(np.float32), rng.normal(size=(200, 2)).astype(np.float32))]
    plain, gained = Scaling.fit(series), Scaling.fit(series, [1.0, 1.0, 1.0, 1.0, 3.0])
    np.testing.assert_array_equal(gained.norm.mean, plain.norm.mean)
    np.testing.assert_allclose(gained.norm(series[0].x)[:, 4], 3.0 * plain.norm(series[0].x)[:, 4], rtol=1e-5)
    np.testing.assert_array_equal(gained.norm(series[0].x)[:, :4], plain.norm(series[0].x)[:, :4])
    assert "input_gain" not in config_from_dict({}).to_dict()["model"]
    on = config_from_dict({"model": {"input_gain": [1.0, 1.0, 1.0, 1.0, 3.0]}})
    assert on.to_dict()["model"]["input_gain"] == [1.0, 1.0, 1.0, 1.0, 3.0] and config_from_dict(on.to_dict()) == on


def test_bad_config_file_via_cli(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[bc]\nepochs = 2\nepoks = 3\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bc.epoks" in err and str(bad) in err
    assert not (tmp_path / "r").exists()
    bad.write_text("seed = [")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_run_thresholds_change_only_what_the_final_network_runs_at(tiny_run, tmp_path: Path, capsys) -> None:
    """`[delta] run_theta_x/run_theta_h`: the same training (weights identical for the seed), the final checkpoint
    and its export at the run thresholds, the stage checkpoints at the trained ones, train.json saying both; unset,
    the keys stay out of the run's config (older run directories and sweep task ids still match)."""
    from experiments.train import run_training

    out, _ = tiny_run
    cfg = load_config(TINY)
    assert "run_theta_x" not in cfg.to_dict()["delta"] and "run_theta_h" not in cfg.to_dict()["delta"]
    run_cfg = config_from_dict(cfg.full_dict() | {"delta": cfg.full_dict()["delta"] | {"run_theta_h": 0.03125}})
    assert run_cfg.to_dict()["delta"]["run_theta_h"] == 0.03125 and "run_theta_x" not in run_cfg.to_dict()["delta"]
    res = run_training(run_cfg, tmp_path / "run", progress=False)
    # The CLI says which thresholds its validation figures are at (the trained ones), and which the network runs at.
    toml = TINY.read_text().replace("dagger_epochs = 1\n", "dagger_epochs = 1\nrun_theta_h = 0.03125\n", 1)
    assert "run_theta_h" in toml
    (tmp_path / "run.toml").write_text(toml)
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert re.search(
        r"controller\.pt runs at Θx 4/256, Θh 8/256 \(validation there: R² knee -?[0-9.]+, ankle -?[0-9.]+, "
        r"sparsity [0-9.]+\): the stage lines above are at the trained thresholds",
        said,
    ), said
    assert _same_weights(res.controller, tmp_path / "cli" / "controller.pt")
    assert _same_weights(out / "controller.pt", res.controller)
    final, meta = load_checkpoint(res.controller)
    stage, _ = load_checkpoint(tmp_path / "run" / "stages" / f"{STAGES[-1]}.pt")
    assert (final.theta_x, final.theta_h) == (cfg.delta.theta_x, 0.03125)  # Θx unset: the trained one
    assert (stage.theta_x, stage.theta_h) == (cfg.delta.theta_x, cfg.delta.theta_h)
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    run = meta.training["run_thresholds"]
    assert summary["run_thresholds"] == run
    assert (run["theta_x"], run["theta_h"]) == (cfg.delta.theta_x, 0.03125)
    trained = meta.training["stages"][-1]  # the last stage's validation, at the trained thresholds
    assert 0.0 <= run["val_sparsity"] < trained["val_sparsity"]  # a lower Θh fires more columns
    assert set(run["val_r2"]) == {"knee", "ankle"}
    assert "run_thresholds" not in json.loads((out / "train.json").read_text())
    with np.load(res.exported["bundle"]) as bundle:  # the export runs at them too: Θ in Q8.8 LSB
        assert (int(bundle["theta_x"]), int(bundle["theta_h"])) == (round(cfg.delta.theta_x * 256), 8)
    with pytest.raises(ConfigError, match=re.escape("delta.run_theta_h must be in [0, 511/256]")):
        config_from_dict({"delta": {"run_theta_h": 2.5}})
