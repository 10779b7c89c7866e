"""Reading run directories for the report: the documented file formats only, never the code that wrote them.

What a report reads (all JSON or NumPy ``.npy``, so a run made on another machine reads the same):

``legloop eval --out DIR``     ``DIR/metrics.json`` (``controller``, ``config``, ``episodes``, ``summary``,
                               ``provenance``) and ``DIR/runlogs/seed_<seed>.npy`` + ``.json`` (the per-step run log:
                               a float64 [rows, columns] array and its header, format ``legloop-runlog/1``).
                               A closed-loop run may carry its open-loop replay in ``DIR/replay/metrics.json``.
``legloop eval --replay``      ``DIR/metrics.json`` with ``joints`` {knee, ankle}{r2, nrmse, rmse_nm}.
``legloop train --out DIR``    ``DIR/train.json``, ``DIR/stages/<stage>.json`` (each with its per-epoch history),
                               ``DIR/train_config.json``, ``DIR/controller.json`` / ``DIR/gru.json`` (weights hash).
``legloop demo --out DIR``     ``DIR/demo.json``, its training run ``DIR/train`` and closed-loop runs
                               ``DIR/runs/<label>/`` (eval layout); a demo from before ``runs/`` existed still gives
                               the table from ``demo.json`` alone.
``legloop sweep --out DIR``    ``DIR/sweep.json`` only (schema ``legloop.sweep/1``, docs/sweep.md: every task's
                               parameters and key metrics), read by :mod:`experiments.report.sweep`.

Anything missing or from an older format becomes a note (:attr:`ControllerRun.notes`) saying what is left out; a
directory that is no run at all, or a file that cannot be read, raises :class:`ReportInputError` naming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from experiments.report.sweep import SweepRun

RUNLOG_FORMAT = "legloop-runlog/1"


def governor_of(value: Any) -> str | None:
    """The governor a run's config names: a name, or the bool of runs made before there were two (True = reactive)."""
    if value is True:
        return "reactive"
    return str(value) if value else None


class ReportInputError(ValueError):
    """A path that is not a readable run: the message names it and says what was expected (one line)."""


@dataclass
class RunLog:
    """One seed's per-step run log: its header and its columns (rows up to the last one written)."""

    path: Path
    header: dict[str, Any]
    cols: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.cols.get("time", ()))

    @property
    def dt(self) -> float:
        """Control period, s (from the header, else from the time column)."""
        dt = self.header.get("control_dt")
        if isinstance(dt, (int, float)) and dt > 0:
            return float(dt)
        t = self.cols.get("time")
        return float(np.median(np.diff(t))) if t is not None and t.size > 1 else 0.005

    def has(self, *names: str) -> bool:
        return all(n in self.cols for n in names)


@dataclass
class ControllerRun:
    """One controller's closed-loop run: one row of the report's table and one line in each figure."""

    label: str
    path: Path
    metrics: dict[str, Any]
    episodes: list[dict[str, Any]]
    runlogs: dict[int, RunLog] = field(default_factory=dict)
    replay: dict[str, Any] | None = None
    replay_path: Path | None = None
    checkpoint_meta: dict[str, Any] | None = None  # the checkpoint's JSON sidecar (weights_sha256, model), if found
    notes: list[str] = field(default_factory=list)  # what is missing and what that leaves out

    @property
    def name(self) -> str:
        """The controller kind (pd, gru, deltagru, edgedrnn, …) as the spec recorded it."""
        spec = (self.metrics.get("config") or {}).get("controller")
        if isinstance(spec, dict) and spec.get("name"):
            return str(spec["name"])
        return str(self.metrics.get("controller", self.label)).split("+")[0].split("@")[0].split("*")[0]

    @property
    def learned(self) -> bool:
        return any(isinstance(e.get("latency_us"), dict) or "sparsity" in e for e in self.episodes) or (
            self.name in ("gru", "deltagru", "edgedrnn")
        )

    @property
    def is_pd(self) -> bool:
        """The full-gain AMPRO PD: the reference every other controller is compared with."""
        spec = (self.metrics.get("config") or {}).get("controller")
        scale = spec.get("gain_scale", 1.0) if isinstance(spec, dict) else 1.0
        return self.name == "pd" and scale in (None, 1.0)


@dataclass
class Stage:
    """One training stage: its summary (losses, val R², sparsity, seconds) and per-epoch history."""

    name: str
    summary: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass
class TrainingRun:
    """A `legloop train` run directory."""

    path: Path
    train: dict[str, Any]
    stages: list[Stage]
    config: dict[str, Any] | None
    checkpoints: dict[str, dict[str, Any]]  # file name (controller.pt, gru.pt) → its JSON sidecar
    notes: list[str] = field(default_factory=list)


@dataclass
class ReplayRun:
    """An open-loop replay (`legloop eval --replay`) that no closed-loop run claimed."""

    path: Path
    metrics: dict[str, Any]


@dataclass
class ReportInput:
    """Everything the report reads, in the order given on the command line."""

    controllers: list[ControllerRun] = field(default_factory=list)
    trainings: list[TrainingRun] = field(default_factory=list)
    replays: list[ReplayRun] = field(default_factory=list)
    demos: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    sweeps: list[SweepRun] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ file readers
def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or :class:`ReportInputError` naming the file and the problem."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_runlog(base: Path) -> RunLog:
    """A run log (``base.npy`` + ``base.json``) as :mod:`hil.runlog` documents it; a killed run gives the rows up to
    the last one with a finite ``time``. Raises :class:`ReportInputError` naming the file."""
    hdr_path, npy_path = base.with_suffix(".json"), base.with_suffix(".npy")
    if not hdr_path.is_file() or not npy_path.is_file():
        raise ReportInputError(f"no run log at {base} (expected {hdr_path.name} and {npy_path.name})")
    header = read_json(hdr_path)
    if header.get("format") != RUNLOG_FORMAT:
        raise ReportInputError(f"{hdr_path}: format {header.get('format')!r}, expected {RUNLOG_FORMAT!r}")
    names = header.get("columns")
    if not isinstance(names, list) or not names:
        raise ReportInputError(f"{hdr_path}: no column names")
    try:
        data = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ReportInputError(f"{npy_path}: not a readable .npy ({exc})") from None
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ReportInputError(f"{npy_path}: shape {data.shape} does not match the header's {len(names)} columns")
    if header.get("complete"):
        rows = min(int(header.get("rows", data.shape[0])), data.shape[0])
    else:
        t = np.asarray(data[:, names.index("time")] if "time" in names else data[:, 0])
        finite = np.flatnonzero(np.isfinite(t))
        rows = int(finite[-1]) + 1 if finite.size else 0
    block = np.array(data[:rows], dtype=np.float64)
    return RunLog(base, header, {str(n): block[:, i] for i, n in enumerate(names)})


def _checkpoint_meta(path_text: str | None, run_dir: Path) -> dict[str, Any] | None:
    """The JSON sidecar of a checkpoint (``X.pt`` → ``X.json``) when it is on this machine, else None."""
    if not path_text:
        return None
    p = Path(path_text)
    candidates = [p] if p.is_absolute() else [p, run_dir / p]
    for c in candidates:
        if c.is_dir():
            c = c / "controller.pt"
        side = c.with_suffix(".json")
        if side.is_file():
            try:
                return read_json(side)
            except ReportInputError:
                return None
    return None


# ------------------------------------------------------------------------------------------------ run kinds
def load_eval_run(path: Path, metrics: dict[str, Any], label: str | None = None) -> ControllerRun:
    """A `legloop eval` run directory (its metrics.json already read) with its run logs and replay, if any."""
    episodes = metrics.get("episodes")
    if not isinstance(episodes, list):
        raise ReportInputError(f"{path / 'metrics.json'}: no 'episodes' list (not a `legloop eval` result)")
    episodes = [e for e in episodes if isinstance(e, dict)]
    run = ControllerRun(label or str(metrics.get("controller") or path.name), path, metrics, episodes)
    if not episodes:
        run.notes.append("the run has no episodes: nothing to compare")
        return run
    config = metrics.get("config") or {}
    logs_dir = path / str(config.get("run_logs") or "runlogs")
    if not logs_dir.is_dir():
        why = "the run was made with --no-log" if config.get("run_logs", "?") is None else "an older run format"
        run.notes.append(
            f"no run logs in {logs_dir.name}/ ({why}): the per-step figures (gait cycle, timing, sparsity, return "
            "map, filmstrip) leave this controller out"
        )
    else:
        for e in episodes:
            seed = e.get("seed")
            if not isinstance(seed, int):
                continue
            try:
                log = read_runlog(logs_dir / f"seed_{seed}")
            except ReportInputError as exc:
                run.notes.append(f"seed {seed}: {exc}")
                continue
            if log.rows == 0:
                run.notes.append(f"seed {seed}: the run log {log.path.name} has no rows")
                continue
            run.runlogs[seed] = log
    replay_dir = path / "replay"
    if (replay_dir / "metrics.json").is_file():
        rep = read_json(replay_dir / "metrics.json")
        if isinstance(rep.get("joints"), dict):
            run.replay, run.replay_path = rep, replay_dir
    ckpt = config.get("checkpoint") or (config.get("controller") or {}).get("checkpoint")
    run.checkpoint_meta = _checkpoint_meta(ckpt, path)
    for key in ("floquet_max", "mos_min_m", "stride_time_cv", "knee_rmse_rad"):
        if all(key not in e for e in episodes):
            run.notes.append(f"metrics.json has no {key!r} (an older format): its column shows –")
    return run


def load_training_run(path: Path) -> TrainingRun:
    """A `legloop train` run directory: train.json, the per-stage histories, the config and checkpoint hashes."""
    train = read_json(path / "train.json")
    notes: list[str] = []
    stages: list[Stage] = []
    for summary in train.get("stages") or []:
        if not isinstance(summary, dict) or "name" not in summary:
            continue
        name = str(summary["name"])
        history: list[dict[str, Any]] = []
        stage_file = path / "stages" / f"{name}.json"
        if stage_file.is_file():
            meta = read_json(stage_file)
            for s in (meta.get("training") or {}).get("stages") or []:
                if isinstance(s, dict) and s.get("name") == name:
                    history = [h for h in s.get("history") or [] if isinstance(h, dict)]
        if not history:
            notes.append(f"stage {name}: no per-epoch history (stages/{name}.json missing or older)")
        stages.append(Stage(name, summary, history))
    if not stages:
        notes.append("train.json lists no stages")
    config = read_json(path / "train_config.json") if (path / "train_config.json").is_file() else None
    checkpoints = {}
    for name in ("controller.pt", "gru.pt"):
        side = path / name.replace(".pt", ".json")
        if side.is_file():
            checkpoints[name] = read_json(side)
    return TrainingRun(path, train, stages, config, checkpoints, notes)


def _demo_runs(path: Path, demo: dict[str, Any]) -> list[ControllerRun]:
    """The closed-loop runs of a demo: DIR/runs/<label>/ in the table's order; an older demo without them gives
    runs built from demo.json's episodes (table only, no per-step figures)."""
    order = [str(r.get("controller")) for r in demo.get("comparison") or [] if isinstance(r, dict)]
    runs_dir = path / "runs"
    runs: list[ControllerRun] = []
    if runs_dir.is_dir():
        found = {d.name: d for d in runs_dir.iterdir() if (d / "metrics.json").is_file()}
        for label in [x for x in order if x in found] + sorted(set(found) - set(order)):
            runs.append(load_eval_run(found[label], read_json(found[label] / "metrics.json"), label))
        return runs
    for label, res in (demo.get("controllers") or {}).items():
        if not isinstance(res, dict):
            continue
        metrics = {"controller": label, "config": demo.get("config") or {}, "episodes": res.get("episodes") or []}
        run = ControllerRun(label, path, metrics, [e for e in metrics["episodes"] if isinstance(e, dict)])
        run.notes.append(
            "an older demo without runs/<label>/ run directories: the table comes from demo.json; the per-step "
            "figures leave this controller out"
        )
        if isinstance(res.get("replay"), dict):
            run.replay, run.replay_path = res["replay"], path / "demo.json"
        runs.append(run)
    return runs


def load_inputs(paths: list[Path]) -> ReportInput:
    """Read every run directory given; raises :class:`ReportInputError` for one that is not a run."""
    inp = ReportInput()
    seen: set[Path] = set()
    for p in paths:
        if p.exists() and p.resolve() in seen:
            continue  # the same run named twice (e.g. by a shell glob) is one run
        if not p.exists():
            raise ReportInputError(f"{p}: no such directory")
        if not p.is_dir():
            raise ReportInputError(f"{p}: not a directory (give a run directory, not a file)")
        seen.add(p.resolve())
        inp.sources.append(p)
        found = False
        if (p / "demo.json").is_file():
            demo = read_json(p / "demo.json")
            inp.demos.append((p, demo))
            inp.controllers += _demo_runs(p, demo)
            if (p / "train" / "train.json").is_file():
                inp.trainings.append(load_training_run(p / "train"))
            found = True
        if (p / "train.json").is_file():
            inp.trainings.append(load_training_run(p))
            found = True
        if (p / "sweep.json").is_file():
            from experiments.report.sweep import load_sweep  # it reads with this module's readers

            inp.sweeps.append(load_sweep(p))
            found = True
        if (p / "metrics.json").is_file() and not (p / "demo.json").is_file():
            metrics = read_json(p / "metrics.json")
            if isinstance(metrics.get("episodes"), list):
                inp.controllers.append(load_eval_run(p, metrics))
            elif isinstance(metrics.get("joints"), dict):
                inp.replays.append(ReplayRun(p, metrics))
            else:
                raise ReportInputError(
                    f"{p / 'metrics.json'}: neither closed-loop episodes nor replay joints: not a `legloop eval` result"
                )
            found = True
        if not found:
            raise ReportInputError(
                f"{p}: not a run directory (expected metrics.json from `legloop eval`, train.json from `legloop "
                "train`, demo.json from `legloop demo` or sweep.json from `legloop sweep`)"
            )
    # The PD is the reference row: first in every table and legend, the others in the order given.
    inp.controllers.sort(key=lambda r: not r.is_pd)
    _attach_replays(inp)
    _unique_labels(inp.controllers)
    return inp


def _replay_key(cfg: dict[str, Any], controller: str, checkpoint: str | None) -> tuple[Any, ...]:
    return (
        controller,
        Path(checkpoint).name if checkpoint else None,
        cfg.get("deadline_policy"),
        governor_of(cfg.get("governor")),
    )


def _attach_replays(inp: ReportInput) -> None:
    """Give each stand-alone replay to the closed-loop run of the same controller, checkpoint, policy and governor."""
    left: list[ReplayRun] = []
    for rep in inp.replays:
        m = rep.metrics
        key = _replay_key(m.get("config") or {}, str(m.get("controller")), m.get("checkpoint"))
        for run in inp.controllers:
            cfg = run.metrics.get("config") or {}
            spec = cfg.get("controller") or {}
            policy = spec.get("policy") if isinstance(spec, dict) else None
            run_key = (run.name, Path(str(cfg.get("checkpoint"))).name if cfg.get("checkpoint") else None, policy,
                       governor_of(cfg.get("governor")))  # fmt: skip
            if run.replay is None and run_key == key:
                run.replay, run.replay_path = m, rep.path
                break
        else:
            left.append(rep)
    inp.replays = left


def _variant(run: ControllerRun) -> str:
    """What sets a run apart from other runs of the same controller: deadline policy, governor, gain scale."""
    spec = (run.metrics.get("config") or {}).get("controller") or {}
    parts = []
    if isinstance(spec, dict):
        if spec.get("policy"):
            parts.append(str(spec["policy"]))
        if spec.get("governor"):
            parts.append(f"governor {governor_of(spec['governor'])}")
        if spec.get("gain_scale") not in (None, 1.0):
            parts.append(f"gains ×{spec['gain_scale']:g}")
    return ", ".join(parts)


def _unique_labels(runs: list[ControllerRun]) -> None:
    """Two runs under one label (`legloop eval` labels a run by its controller) get what sets them apart appended:
    their deadline policy or governor, else their directory name."""
    for attempt in (_variant, lambda r: r.path.name):
        seen: dict[str, int] = {}
        for r in runs:
            seen[r.label] = seen.get(r.label, 0) + 1
        for r in runs:
            if seen[r.label] > 1 and attempt(r):
                r.label = f"{r.label} ({attempt(r)})"


def finite(x: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, not a number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None
