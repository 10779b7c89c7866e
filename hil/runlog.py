"""Run logs: every control step of a closed-loop run, streamed to disk while the run goes, readable after a crash.

A run log is two files side by side:

``NAME.npy``   float64 [steps, columns] — NumPy's ``.npy`` format (numpy, pandas via numpy, MATLAB's npy-matlab,
               Julia's NPZ.jl read it). The file is created at full size for the planned steps, NaN-filled, and
               memory-mapped: a step is one row store into the page cache (no ``write`` call, no formatting, ~2 µs);
               the rows reach the disk when the kernel writes them back, a process killed mid-run included, and at
               every flush (at least once a second, :data:`FLUSH_S`). When the run ends the file is rewritten to the
               rows actually run.
``NAME.json``  the header: format, column names and units, what ran (controller spec, backend, model hash, seeds,
               env options, versions, the walker's MJCF), how many rows are flushed, and — once the run ended — how
               it ended.

Why not CSV: formatting one row of 30 floats costs ~12–25 µs in Python, a third of a control step, and a text
file cut mid-write needs care to read; the columns carry the AMPRO log's names (``position_actual_knee``,
``torque_pd_knee``, …, :mod:`controllers.features`), so :func:`read_runlog` gives a log that replay and training can
use, and ``legloop`` can export it as AMPRO CSV off the hot path.

A run killed mid-run leaves the ``.npy`` at its planned size with NaN after the last written row and a header whose
``rows_flushed`` is the last flush; :func:`read_runlog` returns the rows up to the last one with a finite ``time``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.files import atomic_write_text

FORMAT = "legloop-runlog/1"
FLUSH_S = 1.0  # flush rows and header at least this often (wall clock)
_CHECK_EVERY = 64  # rows between clock reads

# The planar walker's joints (simulation truth): with the header's MJCF a report can render any logged step.
QPOS_JOINTS = ("rootx", "rootz", "rooty", "hip_s", "knee_s", "ankle_s", "hip_p", "knee_p", "ankle_p")
# Columns of a closed-loop run log (name, unit). AMPRO log names where the AMPRO schema has the quantity.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "s"),
    ("ishumanswing", "1: prosthesis in stance (the AMPRO PD's domain)"),
    ("tau", "PD phase"),
    ("position_actual_knee", "rad"),
    ("velocity_actual_knee", "rad/s"),
    ("position_actual_ankle", "rad"),
    ("velocity_actual_ankle", "rad/s"),
    ("thigh_angle", "rad"),
    ("thigh_velocity", "rad/s"),
    ("load", "N"),
    ("position_desired_knee", "rad"),
    ("velocity_desired_knee", "rad/s"),
    ("position_desired_ankle", "rad"),
    ("velocity_desired_ankle", "rad/s"),
    ("torque_pd_knee", "N·m (the PD law on the same sensors)"),
    ("torque_pd_ankle", "N·m"),
    ("torque_actual_knee", "N·m (commanded to the motor)"),
    ("torque_actual_ankle", "N·m"),
    ("torque_source", "0 controller, 1 late, 2 held, 3 fallback PD, 4 stopped, 5 safe (non-finite)"),
    ("latency_us", "µs (modelled, measured or board-reported compute; NaN: lost)"),
    ("round_trip_us", "µs (wall clock across a link; 0 in process)"),
    ("cycles", "accelerator cycles (-1: none)"),
    ("fired_columns", "weight columns fetched (-1: none)"),
    ("nonzero_deltas", "non-zero Δx, Δh entries (-1: none); sparsity = 1 − this / header delta_elements"),
    ("link_events", "bit mask, hil.board_backend.LINK_EVENT_*"),
    ("foot_force_prosthesis", "N (simulation truth)"),
    ("foot_force_sound", "N (simulation truth)"),
    ("hip_x", "m (simulation truth)"),
    *((f"qpos_{j}", "m" if j in ("rootx", "rootz") else "rad") for j in QPOS_JOINTS),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
SOURCE_SAFE = 5  # the rollout's safe action (after hil.deadline's SOURCE_* codes 0..4)


class RunLogError(ValueError):
    """A run log that cannot be read: the message names the file and what is wrong."""


class RunLog:
    """Writer of one run log (see the module docstring).

    Parameters
    ----------
    base
        Path without suffix: ``base.npy`` and ``base.json`` are written.
    max_steps
        Rows planned (the file's size); :meth:`append` beyond it raises.
    header
        What ran: merged into the JSON header (must be JSON-serialisable).
    columns
        Column names and units (default :data:`COLUMNS`).
    """

    def __init__(
        self,
        base: str | os.PathLike,
        max_steps: int,
        header: dict[str, Any],
        columns: Sequence[tuple[str, str]] = COLUMNS,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"a run log needs max_steps >= 1, got {max_steps}")
        self.base = Path(base)
        self.npy = self.base.with_suffix(".npy")
        self.json = self.base.with_suffix(".json")
        self.columns = tuple(columns)
        self.max_steps = int(max_steps)
        self.n = 0
        self.closed = False
        self.header: dict[str, Any] = {
            "format": FORMAT,
            "columns": [name for name, _ in self.columns],
            "units": dict(self.columns),
            "dtype": "<f8",
            "rows_planned": self.max_steps,
            "rows_flushed": 0,
            "complete": False,
            "ended": None,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        } | dict(header)
        self.npy.parent.mkdir(parents=True, exist_ok=True)
        shape = (self.max_steps, len(self.columns))
        self._mm = np.lib.format.open_memmap(self.npy, mode="w+", dtype=np.float64, shape=shape)
        self._mm[:] = np.nan
        self._mm.flush()
        self._write_header()
        self._next_flush = time.perf_counter() + FLUSH_S

    def append(self, row: Sequence[float]) -> None:
        """One step's values in column order (a tuple of floats: one row store, no I/O)."""
        n = self.n
        if n >= self.max_steps:
            raise IndexError(f"run log {self.npy} is full ({self.max_steps} rows planned)")
        self._mm[n] = row
        self.n = n + 1
        if (n & (_CHECK_EVERY - 1)) == 0 and time.perf_counter() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Push the rows to the disk and record how many are there."""
        self._mm.flush()
        self.header["rows_flushed"] = self.n
        self._write_header()
        self._next_flush = time.perf_counter() + FLUSH_S

    def close(self, ended: str, summary: dict[str, Any] | None = None) -> None:
        """The run ended (``completed``, ``fell``, ``aborted: …``): trim the file to the rows run, finish the header."""
        if self.closed:
            return
        self._mm.flush()
        del self._mm
        _shrink_npy(self.npy, self.n)
        self.header |= {
            "rows_flushed": self.n,
            "rows": self.n,
            "complete": True,
            "ended": ended,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if summary:
            self.header["summary"] = summary
        self._write_header()
        self.closed = True

    def _write_header(self) -> None:
        atomic_write_text(self.json, json.dumps(_jsonable(self.header), indent=1, allow_nan=False) + "\n")


def _shrink_npy(path: Path, rows: int) -> None:
    """Cut a 2-D ``.npy`` to its first ``rows`` rows in place: rewrite the shape in the header (padded to the same
    length, so the data do not move) and truncate the file — no copy of the rows through memory, which at the end
    of a long run would be the largest allocation of the episode. The header is rewritten first: a process killed
    between the two steps leaves a file longer than its header says, which ``np.load`` reads."""
    with open(path, "r+b") as f:
        major, minor = np.lib.format.read_magic(f)
        if (major, minor) != (1, 0):
            raise RunLogError(f"{path}: .npy version {major}.{minor}, expected 1.0 (written by open_memmap)")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
        if not 0 <= rows <= shape[0] or len(shape) != 2:
            raise RunLogError(f"{path}: cannot cut shape {shape} to {rows} rows")
        text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": (rows, shape[1])})
        # Version 1.0: 6-byte magic, 2-byte version, 2-byte little-endian length, then the header text ending "\n".
        room = offset - 10
        header = text.encode("latin1")
        header += b" " * (room - len(header) - 1) + b"\n"
        f.seek(10)
        f.write(header)
        f.flush()
        f.truncate(offset + rows * shape[1] * dtype.itemsize)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Path):
        return str(value)
    return value


def read_runlog(base: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, columns) of a run log; a run that was killed gives the rows up to the last one written.

    ``base`` is the path with or without ``.npy`` / ``.json``. Raises :class:`RunLogError` for a missing or
    unreadable log, naming the file.
    """
    p = Path(base)
    if p.suffix in (".npy", ".json"):
        p = p.with_suffix("")
    hdr_path, npy_path = p.with_suffix(".json"), p.with_suffix(".npy")
    if not hdr_path.is_file() or not npy_path.is_file():
        raise RunLogError(f"no run log at {p} (expected {hdr_path.name} and {npy_path.name})")
    try:
        header = json.loads(hdr_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunLogError(f"{hdr_path}: not a readable run-log header ({exc})") from None
    if header.get("format") != FORMAT:
        raise RunLogError(f"{hdr_path}: format {header.get('format')!r}, expected {FORMAT!r}")
    try:
        data = np.load(npy_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise RunLogError(f"{npy_path}: not a readable .npy ({exc})") from None
    names = header["columns"]
    if data.ndim != 2 or data.shape[1] != len(names):
        raise RunLogError(f"{npy_path}: shape {data.shape} does not match the header's {len(names)} columns")
    if header.get("complete"):
        rows = int(header.get("rows", data.shape[0]))
    else:
        t = np.asarray(data[:, names.index("time")]) if "time" in names else np.asarray(data[:, 0])
        finite = np.flatnonzero(np.isfinite(t))
        rows = int(finite[-1]) + 1 if finite.size else 0
    block = np.array(data[:rows])
    return header, {name: block[:, i] for i, name in enumerate(names)}
