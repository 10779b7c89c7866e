"""Data collection: determinism across worker counts, label consistency, falls kept, DAgger β-mixing, the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from envs.walker_env import Push
from experiments.ampro_log import ANKLE_CONTROL_FACTOR, KNEE_CONTROL_FACTOR, read_csv
from experiments.collect import DriverSpec, collect
from experiments.dataset import EPISODE_COLUMNS, load_dataset, read_manifest
from experiments.rundir import OutputExistsError

SECONDS = 2.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("collect")
    out = {}
    for workers in (1, 2):
        paths = collect(base / f"w{workers}", 2, SECONDS, seed0=7, workers=workers, progress=False)
        out[workers] = (base / f"w{workers}", paths)
    return out


def test_same_files_whatever_the_workers(runs) -> None:
    (d1, p1), (d2, p2) = runs[1], runs[2]
    assert [p.name for p in p1] == [p.name for p in p2] == ["ep_00000.npz", "ep_00001.npz"]
    for a, b in zip(p1, p2, strict=True):
        assert a.read_bytes() == b.read_bytes()
    m1, m2 = read_manifest(d1), read_manifest(d2)
    assert m1["episodes"] == m2["episodes"] and m1["columns"] == list(EPISODE_COLUMNS)


def test_episode_contents_are_consistent(runs) -> None:
    d, _ = runs[1]
    eps = load_dataset([d])
    assert [e.meta["seed"] for e in eps] == [7, 8] and [e.meta["speed"] for e in eps] == [0.8, 1.0]
    for ep in eps:
        c = ep.columns
        n = round(SECONDS / 0.005)
        assert list(c) == list(EPISODE_COLUMNS) and len(ep) == n and ep.meta["steps"] == n
        assert not ep.meta["fell"] and ep.meta["driver"] == "pd" and ep.meta["stage"] == "pd"
        assert 60 < ep.meta["body_mass"] < 90 and ep.meta["control_dt"] == 0.005
        np.testing.assert_allclose(c["time"], np.arange(n) * 0.005)
        np.testing.assert_array_equal(c["torque_desired_knee"], c["torque_pd_knee"])
        np.testing.assert_array_equal(c["torque_actual_ankle"], c["torque_pd_ankle"])  # the PD drives
        np.testing.assert_array_equal(c["control_signal_knee"], c["torque_actual_knee"] * KNEE_CONTROL_FACTOR)
        np.testing.assert_array_equal(c["control_signal_ankle"], c["torque_actual_ankle"] * ANKLE_CONTROL_FACTOR)
        np.testing.assert_array_equal(c["force_toe"], c["load"])
        np.testing.assert_array_equal(c["ishumanswing"] + c["domainindex"], 1.0)
        assert set(np.unique(c["ishumanswing"])) == {0.0, 1.0}  # 2 s of walking has both domains
        # The AMPRO PD law, exactly, on the logged signals.
        tk = -100 * (c["position_actual_knee"] - c["position_desired_knee"]) - 20 * (
            c["velocity_actual_knee"] - c["velocity_desired_knee"]
        )
        np.testing.assert_allclose(c["torque_pd_knee"], np.clip(tk, -142, 142), atol=1e-9)
        swing = c["ishumanswing"] == 0
        assert np.all(c["time_stance"][swing] == 0) and np.all(c["time_swing"][~swing] == 0)


def test_fell_episode_is_kept_and_marked(tmp_path) -> None:
    shove = {"pushes": (Push(0.3, 1500.0, 0.3),)}
    (path,) = collect(tmp_path / "d", 1, 5.0, workers=1, progress=False, env_options=shove)
    (ep,) = load_dataset([tmp_path / "d"])
    assert path.exists() and ep.meta["fell"] is True
    assert 0 < len(ep) < 1000 and ep.meta["steps"] == len(ep)


def test_push_trains_per_episode(runs, tmp_path) -> None:
    """``pushes``: each episode draws its own push train from its seed (here: every episode, 1500 N for 0.3 s
    between 0.5 and 1.9 s — a fall, so the pushes provably reached the walker); the manifest says what they were
    drawn from."""
    from controllers.residual import RandomPushes

    shoves = RandomPushes(probability=1.0, count=2, start_s=0.5, end_s=1.9, min_n=1500.0, max_n=1500.0,
                          duration_s=0.3, pattern="train")  # fmt: skip
    collect(tmp_path / "p", 2, SECONDS, seed0=7, workers=1, progress=False, pushes=shoves)
    eps = load_dataset([tmp_path / "p"])
    assert all(ep.meta["fell"] for ep in eps) and all(100 <= len(ep) < 400 for ep in eps)  # walked ≥ 0.5 s, fell
    assert read_manifest(tmp_path / "p")["collect"]["pushes"]["max_n"] == 1500.0
    # No pushes drawn (probability 0): the very episodes of the unpushed collection, byte for byte.
    calm = RandomPushes(probability=0.0)
    paths = collect(tmp_path / "c", 2, SECONDS, seed0=7, workers=1, progress=False, pushes=calm)
    for a, b in zip(paths, runs[1][1], strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_heel_strike_pushes_per_episode(tmp_path) -> None:
    """``pushes`` with ``heel_strike`` 1: every episode is pushed at its prosthetic heel strikes (here far beyond what
    the PD survives, so the pushes provably reached the walker); the manifest says how many and how hard."""
    from controllers.residual import RandomPushes

    shoves = RandomPushes(probability=1.0, count=1, start_s=0.5, end_s=4.0, min_n=1500.0, max_n=1500.0,
                          duration_s=0.3, heel_strike=1.0, every=1)  # fmt: skip
    collect(tmp_path / "h", 1, 5.0, seed0=7, workers=1, progress=False, pushes=shoves)
    (ep,) = load_dataset([tmp_path / "h"])
    assert ep.meta["fell"] and ep.meta["heel_strike_pushes"] >= 1 and abs(ep.meta["heel_strike_push_n"]) == 1500.0
    # The train config's key for it is left out of run specs and sweep task ids while off (older runs still match).
    from experiments.train_config import config_from_dict

    assert "push_heel_strike" not in config_from_dict({}).to_dict()["data"]
    on = config_from_dict({"data": {"push_heel_strike": 0.5}})
    assert on.to_dict()["data"]["push_heel_strike"] == 0.5 and config_from_dict(on.to_dict()) == on


def test_refuses_existing_data_set_unless_overwrite(runs, tmp_path) -> None:
    d = tmp_path / "d"
    collect(d, 2, 0.05, workers=1, progress=False)
    with pytest.raises(OutputExistsError, match="--force"):
        collect(d, 1, 0.05, workers=1, progress=False)
    collect(d, 1, 0.05, workers=1, progress=False, overwrite=True)
    assert [e.name for e in load_dataset([d])] == ["ep_00000"]  # the stale ep_00001 is gone
    assert sorted(p.name for p in (d / "episodes").iterdir()) == ["ep_00000.npz"]


def test_bad_arguments(tmp_path) -> None:
    for kw, msg in [({"n_episodes": 0}, "n_episodes"), ({"beta": 1.5}, "beta"), ({"workers": 0}, "workers")]:
        args = {"out_dir": tmp_path / "x", "n_episodes": 1, "seconds": 1.0} | kw
        with pytest.raises(ValueError, match=msg):
            collect(**args, progress=False)


class _ConstantLearner:
    """Stands in for a learned controller (experiments.collect.load_driver): a constant torque, counting its calls."""

    calls = 0

    def __init__(self, torque: tuple[float, float]) -> None:
        self.torque = np.array(torque)

    @classmethod
    def load(cls, spec: DriverSpec, env) -> _ConstantLearner:
        assert env.dt == 0.005 and spec.use_thresholds
        return cls((500.0, -3.0) if spec.checkpoint == "big" else (2.0, -3.0))

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        _ConstantLearner.calls += 1
        return self.torque


def test_dagger_beta_mixing_with_a_stand_in_learner(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("experiments.collect.load_driver", _ConstantLearner.load)
    _ConstantLearner.calls = 0
    collect(tmp_path / "mix", 1, 1.0, workers=1, progress=False, driver=DriverSpec("small"), beta=0.5, stage="dagger1")
    (ep,) = load_dataset([tmp_path / "mix"])
    c = ep.columns
    assert _ConstantLearner.calls == len(ep)  # the learner runs every step, driving or not
    learner = (c["torque_actual_knee"] == 2.0) & (c["torque_actual_ankle"] == -3.0)
    pd = (c["torque_actual_knee"] == c["torque_pd_knee"]) & (c["torque_actual_ankle"] == c["torque_pd_ankle"])
    assert np.all(learner | pd) and 0.35 < learner.mean() < 0.65
    assert ep.meta["driver"] == "small" and ep.meta["beta"] == 0.5 and ep.meta["stage"] == "dagger1"
    assert ep.meta["pd_fraction"] == pytest.approx(1 - learner.mean(), abs=0.02)
    # β = 0: the learner alone drives; its torque is clipped to the motor peak, and that is what is recorded.
    collect(tmp_path / "big", 1, 0.2, workers=1, progress=False, driver=DriverSpec("big"), beta=0.0)
    (ep,) = load_dataset([tmp_path / "big"])
    assert np.all(ep.columns["torque_actual_knee"] == 142.0)
    assert np.all(ep.columns["control_signal_knee"] == 142.0 * KNEE_CONTROL_FACTOR)


def test_dagger_with_a_real_checkpoint(tmp_path, make_checkpoint) -> None:
    ckpt = make_checkpoint(
        layers=1, gain=1.0, norm=(np.zeros(5), np.ones(5)), target_scale=(5.0, 5.0), target_offset=(0.0, 0.0)
    )
    collect(tmp_path / "d", 1, 0.5, workers=1, progress=False, driver=DriverSpec(str(ckpt)), beta=0.0)
    (ep,) = load_dataset([tmp_path / "d"])
    assert ep.meta["driver"] == str(ckpt) and ep.meta["pd_fraction"] == 0.0
    assert not np.array_equal(ep.columns["torque_actual_knee"], ep.columns["torque_pd_knee"])


def test_cli_collect_with_csv_export(tmp_path, capsys) -> None:
    from experiments.cli import main

    out = tmp_path / "run"
    args = ["collect", "--episodes", "1", "--seconds", "0.5", "--workers", "1", "--quiet", "--export-csv"]
    assert main([*args, "--out", str(out)]) == 0
    (ep,) = load_dataset([out])
    back = read_csv(out / "csv" / "ep_00000.csv")
    for c in EPISODE_COLUMNS:
        np.testing.assert_array_equal(back[c], ep.columns[c], err_msg=c)
    assert main([*args, "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--force"]) == 0
    assert main(["collect", "--episodes", "1", "--seconds", "1", "--speeds", "2.0", "--out", str(tmp_path / "x")]) == 2
