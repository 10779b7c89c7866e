"""The on-disk data set: episodes + manifest, loading from run dirs, episodes/ folders and AMPRO CSV logs, splits."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from controllers.features import FEATURE_COLUMNS, TARGET_COLUMNS, features_from_columns
from experiments.ampro_log import AMPRO_COLUMNS, LogFormatError, read_csv, write_csv
from experiments.dataset import (
    EPISODE_COLUMNS,
    DatasetError,
    Episode,
    export_csv,
    load_dataset,
    read_manifest,
    sources_imply_ampro,
    split_episodes,
    write_episode,
)


def sim_columns(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {c: rng.standard_normal(n) for c in EPISODE_COLUMNS}
    cols["ishumanswing"] = (np.arange(n) % 20 < 12).astype(float)
    cols["time"] = np.arange(n) * 0.005
    return cols


def meta(seed: int, **kw) -> dict:
    return {"seed": seed, "speed": 1.0, "slope_deg": 0.0, "body_mass": 75.0, "control_dt": 0.005, "fell": False} | kw


def test_write_and_load_run_dir(tmp_path) -> None:
    run = tmp_path / "run"
    p0 = write_episode(run, sim_columns(50, 0), meta(0))
    p1 = write_episode(run, sim_columns(30, 1), meta(np.int64(1), fell=True))  # numpy scalars are fine
    assert p0 == run / "episodes" / "ep_00000.npz" and p1.name == "ep_00001.npz"
    with np.load(p0) as z:
        assert sorted(z.files) == sorted(EPISODE_COLUMNS)
        assert all(z[k].dtype == np.float64 and z[k].ndim == 1 for k in z.files)
    m = read_manifest(run)
    assert m["format"] == "legloop-dataset/1"
    assert [(e["name"], e["steps"], e["fell"], e["seed"]) for e in m["episodes"]] == [
        ("ep_00000", 50, False, 0),
        ("ep_00001", 30, True, 1),
    ]
    eps = load_dataset([run], require=FEATURE_COLUMNS["ampro"] + TARGET_COLUMNS)
    assert [e.name for e in eps] == ["ep_00000", "ep_00001"] and [len(e) for e in eps] == [50, 30]
    assert eps[1].meta["fell"] is True and eps[0].meta["control_dt"] == 0.005
    np.testing.assert_array_equal(eps[0].columns["tau"], sim_columns(50, 0)["tau"])
    # The episodes/ folder alone, and one npz, load too (metadata from the manifest beside the folder).
    by_folder = load_dataset([run / "episodes"])
    assert [e.meta["seed"] for e in by_folder] == [0, 1]
    assert len(load_dataset([p1])[0]) == 30
    assert features_from_columns("sensors", eps[0].columns).shape == (50, 7)


def test_npz_bytes_are_deterministic(tmp_path) -> None:
    a = write_episode(tmp_path / "a", sim_columns(), meta(0))
    b = write_episode(tmp_path / "b", sim_columns(), meta(0))
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_write_episode_by_name_replaces(tmp_path) -> None:
    write_episode(tmp_path, sim_columns(10), meta(0, name="ep_00003"))
    write_episode(tmp_path, sim_columns(12), meta(5, name="ep_00003"))
    m = read_manifest(tmp_path)
    assert [(e["name"], e["steps"], e["seed"]) for e in m["episodes"]] == [("ep_00003", 12, 5)]
    with pytest.raises(DatasetError, match="plain JSON"):
        write_episode(tmp_path, sim_columns(10), meta(0, extra=object()))
    with pytest.raises(DatasetError, match="'tau' has 9 rows"):
        write_episode(tmp_path, sim_columns(10) | {"tau": np.zeros(9)}, meta(0))


def test_missing_required_column_in_npz(tmp_path) -> None:
    cols = sim_columns()
    del cols["thigh_angle"]
    write_episode(tmp_path, cols, meta(0))
    with pytest.raises(DatasetError, match=r"ep_00000.*'thigh_angle'"):
        load_dataset([tmp_path], require=FEATURE_COLUMNS["sensors"])
    assert len(load_dataset([tmp_path], require=FEATURE_COLUMNS["ampro"])) == 1


def test_sim_episode_exports_to_ampro_csv_exactly(tmp_path) -> None:
    write_episode(tmp_path / "run", sim_columns(40), meta(0))
    (ep,) = load_dataset([tmp_path / "run"])
    path = export_csv(ep, tmp_path / "ep.csv")
    assert path.read_text().splitlines()[0].split(",")[:39] == list(AMPRO_COLUMNS)
    back = read_csv(path)
    for c in EPISODE_COLUMNS:
        np.testing.assert_array_equal(back[c].view(np.int64), ep.columns[c].view(np.int64), err_msg=c)
    with pytest.raises(FileExistsError):
        export_csv(ep, path)


def test_load_csv_sources(tmp_path) -> None:
    cols = {c: np.linspace(0, 1, 30) for c in FEATURE_COLUMNS["ampro"] + TARGET_COLUMNS}
    log_a = write_csv(tmp_path / "logs" / "a.csv", cols | {"time": np.arange(30) * 0.002})
    write_csv(tmp_path / "logs" / "b.csv", cols)
    (ep,) = load_dataset([log_a], require=FEATURE_COLUMNS["ampro"] + TARGET_COLUMNS)
    assert ep.name == "a" and len(ep) == 30 and ep.meta["control_dt"] == pytest.approx(0.002)
    eps = load_dataset([tmp_path / "logs"])
    assert [e.name for e in eps] == ["a", "b"] and eps[1].meta["control_dt"] == 0.005  # no time column: 200 Hz
    assert sources_imply_ampro([log_a]) and sources_imply_ampro([tmp_path / "logs"])
    write_episode(tmp_path / "run", sim_columns(), meta(0))
    assert not sources_imply_ampro([tmp_path / "run"])
    assert sources_imply_ampro([tmp_path / "run", log_a])
    with pytest.raises(LogFormatError, match=r"a\.csv.*'thigh_angle'"):
        load_dataset([log_a], require=FEATURE_COLUMNS["sensors"])


def test_bad_sources(tmp_path) -> None:
    with pytest.raises(DatasetError, match="no data sources"):
        load_dataset([])
    with pytest.raises(DatasetError, match="no such file or directory"):
        load_dataset([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no episodes found"):
        load_dataset([tmp_path / "empty"])
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DatasetError, match="not a data source"):
        load_dataset([tmp_path / "x.txt"])
    run = tmp_path / "run"
    write_episode(run, sim_columns(), meta(0))
    (run / "episodes" / "ep_00000.npz").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="corrupt episode file"):
        load_dataset([run])
    (run / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="corrupt manifest"):
        load_dataset([run])
    (run / "manifest.json").write_text(json.dumps({"format": "legloop-dataset/1", "episodes": [{"name": "ep_9"}]}))
    with pytest.raises(DatasetError, match="missing"):
        load_dataset([run])


def test_split_is_deterministic_and_disjoint() -> None:
    eps = [Episode({"tau": np.zeros(5)}, {"seed": i}, f"ep_{i:05d}") for i in range(10)]
    train, val = split_episodes(eps, 0.2, seed=3)
    again = split_episodes(eps, 0.2, seed=3)
    assert [e.name for e in train] == [e.name for e in again[0]] and [e.name for e in val] == [e.name for e in again[1]]
    assert len(val) == 2 and len(train) == 8
    assert sorted(e.name for e in train + val) == [e.name for e in eps]
    assert [e.name for e in train] == sorted(e.name for e in train)  # input order kept
    assert split_episodes(eps, 0.0, 0) == (eps, [])
    assert len(split_episodes(eps[:2], 0.01, 0)[1]) == 1  # at least one validation episode
    assert len(split_episodes(eps[:2], 0.99, 0)[0]) == 1  # at least one training episode
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(eps, 1.0, 0)


def test_single_episode_splits_in_time() -> None:
    ep = Episode({"tau": np.arange(100.0)}, {"control_dt": 0.005}, "log")
    (train,), (val,) = split_episodes([ep], 0.25, seed=0)
    assert train.name == "log[train]" and val.name == "log[val]"
    assert train.columns["tau"].tolist() == list(range(75)) and val.columns["tau"].tolist() == list(range(75, 100))
