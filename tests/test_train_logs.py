"""Training from a device's log (`legloop train --data LOG.csv`): a simulated noisy, quantised log in the AMPRO schema,
trained on its first 70 % with a budget of gradient steps, replayed on the last 30 % (`legloop eval --replay`).

Also: the validation tail is contiguous and never trained on, early stopping and plateau stops, the too-few-data
warning, and the stage record (steps run, why the stage stopped).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from controllers.deltagru import DeltaGRU
from experiments.cli import main
from experiments.train_config import LOGS_CONFIG, ConfigError, config_from_dict, load_config
from experiments.train_data import Prepared, Scaling, Series, episode_series, split_tails

torch.set_num_threads(1)

collect_mod = pytest.importorskip("experiments.collect", reason="experiments.collect (the simulator) not available")
dataset_mod = pytest.importorskip("experiments.dataset", reason="experiments.dataset not available")

from experiments.ampro_log import read_csv  # noqa: E402
from experiments.device_log import pd_law_residual, simulate_log, split_log  # noqa: E402
from experiments.train import DataSizeWarning, data_size_warning  # noqa: E402

LOG_SECONDS = 25.0
LOG_SEED = 3
# A small network and budget: seconds, not the default's minute. The floor R² > 0.8 is far above what a model that
# learned nothing reaches (the mean torque: R² ≈ 0; see test_floor_is_above_a_model_that_learned_nothing).
SMALL = """
seed = 0
workers = 1
[model]
hidden_size = 32
num_layers = 1
[optim]
window = 40
warmup = 10
batch_size = 64
lr = 0.003
[delta]
theta_x = 0.0234375
theta_h = 0.375
l1_weight = 1.0
[logs]
bc_steps = 120
delta_steps = 40
eval_every = 20
patience = 5
"""
R2_FLOOR = 0.8


@pytest.fixture(scope="module")
def device_log(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("devlog")
    log, meta = simulate_log(d / "log.csv", LOG_SECONDS, LOG_SEED)
    assert not meta["fell"], "the test log's walk fell: choose another LOG_SEED"
    head, tail = split_log(log, 0.7, d / "head.csv", d / "tail.csv")
    return {"dir": d, "log": log, "head": head, "tail": tail, "meta": meta}


@pytest.fixture(scope="module")
def trained(device_log: dict[str, Any]) -> dict[str, Any]:
    """`legloop train --data head.csv` with the small config, the arrays its stages were given, its stdout."""
    from experiments import train

    d = device_log["dir"]
    cfg_path = d / "small.toml"
    cfg_path.write_text(SMALL)
    out = d / "run"
    seen: list[tuple[str, Prepared, Prepared]] = []
    real = train.train_stage_budget

    def spy(model, spec, train_p, val_p, *args, **kwargs):
        seen.append((spec.name, train_p, val_p))
        return real(model, spec, train_p, val_p, *args, **kwargs)

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setattr(train, "train_stage_budget", spy)
        rc = main(["train", "--config", str(cfg_path), "--data", str(device_log["head"]), "--out", str(out), "--quiet"])
    assert rc == 0
    summary = json.loads((out / "train.json").read_text())
    assert summary["data"]["warnings"] == []  # this network suits this much log
    return {"out": out, "seen": seen, "stdout": stdout.getvalue(), "summary": summary}


# ------------------------------------------------------------------------------------------------ the log
def test_device_log_is_noisy_quantised_and_logs_the_pd_torque_of_its_own_signals(device_log) -> None:
    cols = read_csv(device_log["log"])
    n = round(LOG_SECONDS / 0.005)
    assert len(cols["time"]) == n
    meta = device_log["meta"]
    assert meta["noise_scale"] > 0 and meta["quantise_sensors"]
    # The torque a device logs is its PD law on the signals it measured and logged: bit for bit.
    assert pd_law_residual(cols) == 0.0
    # Encoder angles on the 14-bit grid (float32 sensor values: within float32 rounding of a multiple).
    step = 2 * np.pi / 2**14
    for c in ("position_actual_knee", "position_actual_ankle"):
        k = cols[c] / step
        assert np.abs(k - np.round(k)).max() < 1e-3, c
    # The same walk without noise and quantisation logs other signals.
    clean, _ = simulate_log(device_log["dir"] / "clean.csv", 1.0, LOG_SEED, sensor_noise=False, quantise=False)
    c2 = read_csv(clean)
    m = len(c2["time"])
    assert not np.array_equal(c2["velocity_actual_knee"], cols["velocity_actual_knee"][:m])
    # head + tail is the log, in order.
    head, tail = read_csv(device_log["head"]), read_csv(device_log["tail"])
    assert len(head["time"]) == round(0.7 * n)
    for c in cols:
        assert np.array_equal(np.concatenate([head[c], tail[c]]), cols[c]), c


# ------------------------------------------------------------------------------------------------ training
def test_trained_on_the_head_replays_the_unseen_tail(trained, device_log, tmp_path: Path) -> None:
    for ctrl in ("deltagru", "gru"):
        out = tmp_path / ctrl
        argv = ["eval", "--controller", ctrl, "--checkpoint", str(trained["out"]), "--replay", str(device_log["tail"])]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main([*argv, "--out", str(out)]) == 0
        m = json.loads((out / "metrics.json").read_text())
        r2 = {j: m["joints"][j]["r2"] for j in ("knee", "ankle")}
        assert min(r2.values()) > R2_FLOOR, (ctrl, r2)
    assert m["rows"] == len(read_csv(device_log["tail"])["time"])


def test_floor_is_above_a_model_that_learned_nothing(device_log) -> None:
    """The mean torque of the training head, predicted on the tail: R² ≈ 0, far below the floor."""
    head, tail = read_csv(device_log["head"]), read_csv(device_log["tail"])
    for c in ("torque_pd_knee", "torque_pd_ankle"):
        y = tail[c]
        r2 = 1 - np.sum((y - head[c].mean()) ** 2) / np.sum((y - y.mean()) ** 2)
        assert r2 < 0.05 < R2_FLOOR


def test_validation_tail_is_contiguous_and_never_trained_on(trained, device_log) -> None:
    cols = read_csv(device_log["head"])
    n = len(cols["time"])
    cut = n - round(0.2 * n)
    (split,) = trained["summary"]["data"]["split"]
    assert split == {"name": "head", "rows": n, "train_rows": [0, cut], "val_rows": [cut, n]}
    assert trained["summary"]["data"]["train_steps"] == cut and trained["summary"]["data"]["val_steps"] == n - cut
    # What the stages were given: exactly the head's rows before the cut, and the tail after it, in order.
    ep = dataset_mod.load_dataset([str(device_log["head"])])[0]
    (series,) = episode_series([ep], "ampro")
    assert [name for name, _, _ in trained["seen"]] == ["bc", "delta"]
    for _, train_p, val_p in trained["seen"]:
        (tx,), (vx,) = train_p.x, val_p.x
        (ty,), (vy,) = train_p.y_raw, val_p.y_raw
        assert len(tx) == cut and len(vx) == n - cut
        assert np.array_equal(ty, series.y[:cut]) and np.array_equal(vy, series.y[cut:])
        # No validation row appears among the training rows (the log is noisy: rows are unique).
        train_rows = {r.tobytes() for r in np.concatenate([tx, ty], axis=1)}
        assert not any(r.tobytes() in train_rows for r in np.concatenate([vx, vy], axis=1))


def test_split_tails_of_several_logs() -> None:
    rng = np.random.default_rng(0)
    series = [Series(f"log{i}", rng.normal(size=(n, 5)).astype(np.float32), np.zeros((n, 2), np.float32))
              for i, n in enumerate((100, 51))]  # fmt: skip
    heads, tails, spans = split_tails(series, 0.2)
    assert [len(s) for s in heads] == [80, 41] and [len(s) for s in tails] == [20, 10]
    for s, h, t in zip(series, heads, tails, strict=True):
        assert np.array_equal(np.concatenate([h.x, t.x]), s.x)
    assert spans[1] == {"name": "log1", "rows": 51, "train_rows": [0, 41], "val_rows": [41, 51]}
    from experiments.train_data import TrainError

    with pytest.raises(TrainError, match="too short"):
        split_tails([Series("tiny", series[0].x[:3], series[0].y[:3])], 0.2)


def test_stage_record_says_how_many_steps_ran_and_why_it_stopped(trained) -> None:
    cfg = load_config(trained["out"] / ".." / "small.toml")
    stages = trained["summary"]["stages"]
    assert [s["name"] for s in stages] == ["bc", "delta"]
    for s, budget in zip(stages, (cfg.logs.bc_steps, cfg.logs.delta_steps), strict=True):
        assert s["mode"] == "steps" and s["budget_steps"] == budget
        assert 1 <= s["steps"] <= budget and s["stopped"] in ("budget", "early_stop", "plateau")
        assert (s["steps"] == budget) == (s["stopped"] == "budget")
        assert s["samples"] == s["steps"] * cfg.optim.batch_size and s["epochs_equivalent"] > 1
        assert 1 <= s["best_step"] <= s["steps"]
    # The stage table of `legloop train` shows the steps and the reason.
    lines = trained["stdout"].splitlines()
    assert "steps" in lines[0] and "stopped" in lines[0]
    for s in stages:
        row = next(line.split() for line in lines if line.startswith(s["name"] + " "))
        assert row[2] == str(s["steps"]) and row[3] == s["stopped"]
    # The checkpoint holds the best weights seen, whose validation record the stage reports.
    best = next(h for h in _history(trained["out"], "delta") if h["step"] == stages[1]["best_step"])
    assert best["r2"] == stages[1]["val_r2"]


def _history(out: Path, stage: str) -> list[dict[str, Any]]:
    from controllers.checkpoint import load_checkpoint

    _, meta = load_checkpoint(out / "stages" / f"{stage}.pt")
    return next(s for s in meta.training["stages"] if s["name"] == stage)["history"]


# ------------------------------------------------------------------------------------------------ early stopping
def _synthetic(rng: np.random.Generator, n: int, sign: float) -> Series:
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = sign * np.stack([x[:, 1] - 0.5 * x[:, 2], x[:, 3] + x[:, 4]], axis=-1).astype(np.float32)
    return Series("syn", x, y)


def _budget_stage(val_sign: float, lr: float, steps: int = 200) -> tuple[dict[str, Any], DeltaGRU, Prepared, Scaling]:
    from experiments.train_stages import StageSpec, train_stage_budget, validate

    rng = np.random.default_rng(0)
    train_s, val_s = _synthetic(rng, 2000, 1.0), _synthetic(rng, 400, val_sign)
    cfg = config_from_dict(
        {
            "model": {"hidden_size": 16, "num_layers": 1},
            "optim": {"window": 20, "warmup": 2, "batch_size": 16, "lr": lr},
            "logs": {"bc_steps": steps, "eval_every": 5, "patience": 3, "min_improvement": 0.01},
        }
    )
    scaling = Scaling.fit([train_s])
    train_p, val_p = Prepared.build([train_s], scaling), Prepared.build([val_s], scaling)
    torch.manual_seed(0)
    model = DeltaGRU(5, 16, 1, 2)
    rec = train_stage_budget(
        model, StageSpec("bc", 0, 1, lr, steps=steps), train_p, val_p, scaling, cfg, progress=False
    )
    # The model left in place is the best one seen, not the last.
    assert validate(model, val_p, scaling, "l1")["loss"] == pytest.approx(rec["val_loss"], abs=1e-6)
    return rec, model, val_p, scaling


def test_early_stopping_when_the_validation_loss_rises() -> None:
    # Validation targets are the training law with the sign flipped: the better it fits training, the worse there.
    rec, *_ = _budget_stage(val_sign=-1.0, lr=3e-3)
    assert rec["stopped"] == "early_stop"
    assert rec["steps"] < rec["budget_steps"]
    assert rec["best_step"] == 5  # the first validation was the best
    assert rec["steps"] == rec["best_step"] + 3 * 5  # patience 3 validations, every 5 steps
    losses = [h["val_loss"] for h in rec["history"]]
    assert losses[-1] > losses[0]


def test_plateau_stop_when_nothing_changes() -> None:
    rec, *_ = _budget_stage(val_sign=1.0, lr=1e-9)
    assert rec["stopped"] == "plateau" and rec["steps"] == 20  # first validation, then 3 without improvement


def test_runs_the_whole_budget_while_improving() -> None:
    rec, *_ = _budget_stage(val_sign=1.0, lr=3e-3, steps=30)
    assert rec["stopped"] == "budget" and rec["steps"] == 30 and rec["best_step"] == 30


# ------------------------------------------------------------------------------------------------ data size
def test_too_few_data_warning_says_what_to_do(device_log, tmp_path: Path) -> None:
    from experiments.train import run_training

    assert data_size_warning(10_000, 2, 5_001, 0.005) is None
    msg = data_size_warning(10_000, 2, 4_999, 0.005)
    assert msg is not None and "smaller network" in msg and "record more" in msg and "5000 training steps" in msg
    # A network far too big for 17 s of log warns before training; the run goes on and records the warning.
    raw = load_config(LOGS_CONFIG).to_dict()
    raw["model"] = {"hidden_size": 64, "num_layers": 2}
    raw["optim"] |= {"window": 20, "warmup": 2, "batch_size": 4}
    raw["logs"] |= {"bc_steps": 1, "delta_steps": 1}
    cfg = config_from_dict(raw)
    with pytest.warns(DataSizeWarning, match="parameters per output"):
        res = run_training(cfg, tmp_path / "big", sources=[str(device_log["head"])], progress=False)
    assert "smaller network" in res.summary["data"]["warnings"][0]


# ------------------------------------------------------------------------------------------------ config
def test_data_without_config_uses_the_log_training_default(device_log, tmp_path: Path, monkeypatch) -> None:
    from experiments import train

    got: dict[str, Any] = {}

    def fake(cfg, out, **kwargs):
        got["cfg"] = cfg
        raise train.TrainError("stop here")

    monkeypatch.setattr(train, "run_training", fake)
    assert main(["train", "--data", str(device_log["head"]), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert got["cfg"] == load_config(LOGS_CONFIG)
    assert main(["train", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert got["cfg"] == load_config()  # the simulator's default is unchanged


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"logs": {"bc_step": 3}}, "logs.bc_step"),
        ({"logs": {"bc_steps": 0}}, "logs.bc_steps"),
        ({"logs": {"val_fraction": 0.0}}, "logs.val_fraction"),
        ({"logs": {"lr_final": 0.0}}, "logs.lr_final"),
        ({"logs": {"patience": -1}}, "logs.patience"),
    ],
)
def test_bad_logs_config_names_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        config_from_dict(raw)
