"""The on-disk data set of a run directory: the contract between data collection and training.

Layout::

    DIR/manifest.json            format "legloop-dataset/1", the column list, one entry per episode (metadata)
    DIR/episodes/ep_00000.npz    one episode: 1-D float64 arrays named by column, one element per control step
    DIR/csv/ep_00000.csv         (optional, `legloop collect --export-csv`) the same episode in the AMPRO CSV schema

A simulated episode holds exactly :data:`EPISODE_COLUMNS`: the AMPRO names the simulator can fill plus legloop's
sensor and prior-torque columns (data sets collected before the prior columns lack those two). Row k is control
step k: the sensors the controller saw, the expert PD's reference and torque for them, and the torque applied
before the plant advanced to step k+1.

=====================================  ==========================================================================
column                                 meaning (unit)
=====================================  ==========================================================================
ishumanswing                           PD domain flag: 1 = prosthesis stance, 0 = prosthesis swing (AMPRO's)
domainindex                            PD domain index: 0 = stance, 1 = swing (legloop's; the public log has 0)
tau                                    PD phase: stance from the hip position, swing time / swing duration
time_stance, time_swing                time since the current domain began (s), 0 in the other domain
position_actual_knee/ankle             joint encoders (rad), as the controller saw them (with sensor noise)
velocity_actual_knee/ankle             joint velocities (rad/s)
position_desired_knee/ankle            PD reference (rad)
velocity_desired_knee/ankle            PD reference rate (rad/s)
torque_pd_knee/ankle                   the expert PD's torque (N·m): the training label
torque_desired_knee/ankle              = torque_pd (as in the AMPRO log)
torque_actual_knee/ankle               torque applied to the plant (N·m): the PD's, or the learner's under DAgger
control_signal_knee/ankle              applied torque × 0.21930 (knee) / 0.15038 (ankle)
force_toe                              = load (N)
time                                   time of the step (s)
thigh_angle, thigh_velocity, load      thigh IMU (rad, rad/s) and axial load cell (N)
torque_prior_knee/ankle                the PD's own torque (N·m): = torque_pd with the PD as expert, the PD inside
                                       an RL expert otherwise (the ``pd_residual`` target subtracts it)
=====================================  ==========================================================================

Manifest episode entries carry: name, file, seed, speed (m/s), slope_deg, body_mass (kg), body_height (m),
friction, noise_scale, control_dt (s), fell, steps, driver ("pd" or the learner checkpoint), beta, stage.

:func:`load_dataset` also reads AMPRO CSV logs of a real prosthesis (no simulator needed), so training code sees one
kind of :class:`Episode` whatever the source.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controllers.features import PRIOR_COLUMNS
from envs.files import atomic_writer
from experiments.ampro_log import LEGLOOP_COLUMNS, SIMULATED_COLUMNS, read_csv, write_csv
from experiments.rundir import write_json

FORMAT = "legloop-dataset/1"
MANIFEST = "manifest.json"
EPISODES_DIR = "episodes"
# Exactly the arrays of a simulated episode's npz, in this order.
EPISODE_COLUMNS: tuple[str, ...] = SIMULATED_COLUMNS + LEGLOOP_COLUMNS + PRIOR_COLUMNS
DEFAULT_CONTROL_DT = 0.005  # s: AMPRO3's 200 Hz, assumed for a CSV log without a `time` column
# Fixed zip member timestamp: the same episode gives the same bytes (runs can be compared by hash).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class DatasetError(ValueError):
    """A data source that cannot be used: missing, empty, or malformed."""


@dataclass
class Episode:
    """One episode: equal-length float64 column arrays (one element per control step) and its metadata."""

    columns: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


# ---------------------------------------------------------------------------------------------------- writing
def _check_columns(columns: Mapping[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    out = {}
    n = None
    for name, v in columns.items():
        a = np.ascontiguousarray(v, dtype=np.float64)
        if a.ndim != 1:
            raise DatasetError(f"{where}: column {name!r} must be 1-D, got shape {a.shape}")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise DatasetError(f"{where}: column {name!r} has {a.shape[0]} rows, the others {n}")
        out[name] = a
    if not out or not n:
        raise DatasetError(f"{where}: an episode needs at least one column with at least one row")
    return out


def _json_value(v: Any) -> Any:
    """Metadata value as plain JSON (numpy scalars and paths converted)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v


def save_npz(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    """Write float64 columns as a compressed .npz atomically, byte-identical for identical data."""
    with atomic_writer(path) as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, a in columns.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)


def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a run directory; raises :class:`DatasetError` when missing or malformed."""
    path = Path(run_dir) / MANIFEST
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no manifest (not a legloop data set directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("episodes"), list):
        raise DatasetError(f"{path}: not a {FORMAT} manifest")
    return m


def write_manifest(run_dir: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write DIR/manifest.json atomically, episodes sorted by name (deterministic whatever the completion order)."""
    m = {"format": FORMAT, **{k: _json_value(v) for k, v in manifest.items() if k != "format"}}
    m["episodes"] = sorted(m.get("episodes", []), key=lambda e: e["name"])
    path = Path(run_dir) / MANIFEST
    write_json(path, m)
    return path


def _next_name(run_dir: Path, manifest: Mapping[str, Any]) -> str:
    used = {e["name"] for e in manifest["episodes"]}
    used |= {p.stem for p in (run_dir / EPISODES_DIR).glob("ep_*.npz")}
    i = 0
    while f"ep_{i:05d}" in used:
        i += 1
    return f"ep_{i:05d}"


def dataset_exists(run_dir: str | os.PathLike) -> bool:
    """True when DIR already holds a data set (a manifest or episode files)."""
    d = Path(run_dir)
    ep_dir = d / EPISODES_DIR
    return (d / MANIFEST).exists() or (ep_dir.is_dir() and any(ep_dir.glob("*.npz")))


def write_episode(run_dir: str | os.PathLike, columns: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write one episode to DIR/episodes/<name>.npz and list it in DIR/manifest.json; returns the npz path.

    The name is ``meta["name"]`` when given (an episode of that name is replaced), else the next free ``ep_NNNNN``.
    Both files are written atomically; the manifest is read, updated and rewritten, so a directory has one writer
    at a time (:func:`experiments.collect.collect` writes from its parent process only).
    """
    run_dir = Path(run_dir)
    (run_dir / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = (
        read_manifest(run_dir) if (run_dir / MANIFEST).exists() else {"format": FORMAT, "episodes": []}
    )
    name = str(meta.get("name") or _next_name(run_dir, manifest))
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise DatasetError(f"invalid episode name {name!r}")
    cols = _check_columns(columns, f"episode {name}")
    path = run_dir / EPISODES_DIR / f"{name}.npz"
    entry = {k: _json_value(v) for k, v in meta.items()}
    entry |= {"name": name, "file": f"{EPISODES_DIR}/{name}.npz", "steps": len(next(iter(cols.values())))}
    try:
        json.dumps(entry, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"episode {name}: metadata is not plain JSON ({exc})") from None
    save_npz(path, cols)
    manifest["episodes"] = [e for e in manifest["episodes"] if e.get("name") != name] + [entry]
    manifest.setdefault("columns", list(cols))
    write_manifest(run_dir, manifest)
    return path


# ---------------------------------------------------------------------------------------------------- reading
def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            cols = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: episode file is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: corrupt episode file ({type(exc).__name__}: {exc})") from None
    return _check_columns(cols, str(path))


def _require(ep: Episode, require: Sequence[str], where: str) -> None:
    missing = [c for c in require if c not in ep.columns]
    if missing:
        raise DatasetError(f"{where}: episode {ep.name!r} lacks required column(s) {', '.join(map(repr, missing))}")


def _infer_dt(columns: Mapping[str, np.ndarray]) -> float:
    t = columns.get("time")
    if t is not None and len(t) > 1:
        dt = float(np.median(np.diff(t)))
        if np.isfinite(dt) and dt > 0:
            return dt
    return DEFAULT_CONTROL_DT


def _csv_episode(path: Path, require: Sequence[str]) -> Episode:
    cols = read_csv(path, require=require)
    meta = {
        "source": str(path),
        "format": "ampro-csv",
        "control_dt": _infer_dt(cols),
        "steps": len(cols[next(iter(cols))]),
    }
    return Episode(columns=cols, meta=meta, name=path.stem)


def _episodes_from_manifest(run_dir: Path, require: Sequence[str]) -> list[Episode]:
    manifest = read_manifest(run_dir)
    out = []
    for entry in manifest["episodes"]:
        name = entry.get("name")
        if not name:
            raise DatasetError(f"{run_dir / MANIFEST}: an episode entry has no name")
        path = run_dir / entry.get("file", f"{EPISODES_DIR}/{name}.npz")
        cols = _load_npz(path)
        n = len(next(iter(cols.values())))
        if entry.get("steps", n) != n:
            raise DatasetError(f"{path}: {n} steps, the manifest says {entry['steps']} (corrupt or replaced file)")
        meta = dict(entry) | {"source": str(run_dir)}
        meta.setdefault("control_dt", _infer_dt(cols))
        ep = Episode(columns=cols, meta=meta, name=name)
        _require(ep, require, str(path))
        out.append(ep)
    return out


def _episodes_from_npz_dir(folder: Path, require: Sequence[str]) -> list[Episode]:
    # A bare episodes/ folder: metadata from the manifest beside it when there is one.
    by_name: dict[str, dict[str, Any]] = {}
    if (folder.parent / MANIFEST).exists():
        by_name = {e.get("name"): e for e in read_manifest(folder.parent)["episodes"]}
    out = []
    for path in sorted(folder.glob("*.npz")):
        cols = _load_npz(path)
        meta = dict(by_name.get(path.stem, {})) | {"source": str(folder)}
        meta.setdefault("control_dt", _infer_dt(cols))
        meta.setdefault("steps", len(next(iter(cols.values()))))
        ep = Episode(columns=cols, meta=meta, name=path.stem)
        _require(ep, require, str(path))
        out.append(ep)
    return out


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def load_source(source: str | os.PathLike, require: Sequence[str] = ()) -> list[Episode]:
    """Episodes of one source: a run directory (manifest.json), an episodes/ folder, a folder of AMPRO CSV logs,
    one AMPRO CSV log, or one episode .npz. Raises :class:`DatasetError` (or ampro_log.LogFormatError) on problems."""
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory (expected a run directory, episodes/ or a CSV log)")
    if path.is_file():
        if _is_csv(path):
            return [_csv_episode(path, require)]
        if path.suffix == ".npz":
            cols = _load_npz(path)
            ep = Episode(
                cols,
                {"source": str(path), "control_dt": _infer_dt(cols), "steps": len(cols[next(iter(cols))])},
                path.stem,
            )
            _require(ep, require, str(path))
            return [ep]
        raise DatasetError(f"{path}: not a data source (expected a .csv log, an .npz episode or a directory)")
    if (path / MANIFEST).exists():
        episodes = _episodes_from_manifest(path, require)
    elif any(path.glob("*.npz")):
        episodes = _episodes_from_npz_dir(path, require)
    elif (path / EPISODES_DIR).is_dir():
        episodes = _episodes_from_npz_dir(path / EPISODES_DIR, require)
    else:
        episodes = [_csv_episode(p, require) for p in sorted(path.iterdir()) if p.is_file() and _is_csv(p)]
    if not episodes:
        raise DatasetError(f"{path}: no episodes found (no manifest.json, no .npz episodes, no .csv logs)")
    return episodes


def load_dataset(sources: Sequence[str | os.PathLike], require: Sequence[str] = ()) -> list[Episode]:
    """All episodes of `sources`, in order (sources as given; episodes by name within a source).

    `require` lists columns every episode must have, e.g. ``FEATURE_COLUMNS[name] + TARGET_COLUMNS``; a missing one
    raises an error naming the file and the column. A CSV log's ``control_dt`` is inferred from its ``time`` column
    when present, else 0.005 s (AMPRO3's 200 Hz).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise DatasetError("no data sources given (pass a run directory, an episodes/ folder or an AMPRO CSV log)")
    episodes: list[Episode] = []
    for s in sources:
        episodes.extend(load_source(s, require))
    return episodes


def sources_imply_ampro(sources: Sequence[str | os.PathLike]) -> bool:
    """True when any source is an AMPRO CSV log (or a folder of them): such data implies the ``ampro`` feature set,
    since a real AMPRO log has none of the extra sensors the ``sensors`` set needs."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    for s in sources:
        p = Path(s)
        if _is_csv(p) and not p.is_dir():
            return True
        if (
            p.is_dir()
            and not (p / MANIFEST).exists()
            and not any(p.glob("*.npz"))
            and not (p / EPISODES_DIR).is_dir()
            and any(_is_csv(c) for c in p.iterdir())
        ):
            return True
    return False


# ---------------------------------------------------------------------------------------------------- splitting
def split_episodes(
    episodes: Sequence[Episode], val_fraction: float, seed: int = 0
) -> tuple[list[Episode], list[Episode]]:
    """Deterministic train/validation split by whole episodes: round(val_fraction · n) episodes (at least 1 and
    at most n − 1 when 0 < val_fraction) chosen by a generator seeded with `seed`; both lists keep the input order.

    A single episode (e.g. one real log) is split in time instead: its last `val_fraction` of the rows become the
    validation episode (names ``<name>[train]`` and ``<name>[val]``).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    eps = list(episodes)
    n = len(eps)
    if n == 0:
        raise DatasetError("no episodes to split")
    if val_fraction == 0.0:
        return eps, []
    if n == 1:
        ep = eps[0]
        cut = len(ep) - max(1, round(val_fraction * len(ep)))
        if cut < 1:
            raise DatasetError(f"episode {ep.name!r} has {len(ep)} rows: too short to split")
        head = {k: v[:cut] for k, v in ep.columns.items()}
        tail = {k: v[cut:] for k, v in ep.columns.items()}
        return (
            [Episode(head, dict(ep.meta) | {"steps": cut}, f"{ep.name}[train]")],
            [Episode(tail, dict(ep.meta) | {"steps": len(ep) - cut}, f"{ep.name}[val]")],
        )
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    val_idx = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return [e for i, e in enumerate(eps) if i not in val_idx], [e for i, e in enumerate(eps) if i in val_idx]


# ---------------------------------------------------------------------------------------------------- export
def export_csv(episode: Episode, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write an episode as an AMPRO CSV log (AMPRO columns, absent ones as 0, then legloop's); round-trips exactly."""
    return write_csv(path, episode.columns, overwrite=overwrite)
