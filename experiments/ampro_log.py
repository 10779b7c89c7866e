"""The AMPRO log schema: reading and writing prosthesis logs as CSV, one row per control step.

The 39 AMPRO3 columns (``shared/facts/ampro.md``) come first, in the order of the public AMPRO3 log; legloop appends
the sensors the AMPRO schema lacks (:data:`LEGLOOP_COLUMNS`: time in s, thigh IMU angle in rad and rate in rad/s,
load cell in N). A real AMPRO log has no legloop columns, and that is fine for the ``ampro`` feature set, which only
reads AMPRO columns.

Units: angles rad, velocities rad/s, torques N·m, forces N, times s; ``control_signal = torque × factor``
(:data:`CONTROL_SIGNAL_FACTOR`, knee 0.21930, ankle 0.15038).

What the simulator fills (:data:`SIMULATED_COLUMNS`) and what it does not (:data:`NOT_SIMULATED_COLUMNS`, written as
0): the AMPRO controller's impedance/QP torques and Vahid's hip-position estimator, the raw IMU channels, the heel
force sensor and ``action_type`` have no counterpart in legloop's plant or PD. ``force_toe`` carries legloop's axial
load cell.

Values are written with Python's shortest round-trip float repr (integral columns as integers), so a log written
here and read back gives bit-identical float64 arrays.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from envs.files import atomic_write_text

AMPRO_COLUMNS: tuple[str, ...] = (
    "action_type",
    "control_signal_ankle",
    "control_signal_knee",
    "domainindex",
    "force_heel",
    "force_toe",
    "imu_position_ankle",
    "imu_position_knee",
    "imu_velocity_ankle",
    "imu_velocity_knee",
    "ishumanswing",
    "position_actual_ankle",
    "position_actual_knee",
    "position_desired_ankle",
    "position_desired_knee",
    "tau",
    "time_stance",
    "time_swing",
    "torque_actual_ankle",
    "torque_actual_knee",
    "torque_desired_ankle",
    "torque_desired_knee",
    "torque_imped_ankle",
    "torque_imped_knee",
    "torque_pd_ankle",
    "torque_pd_knee",
    "torque_qp_ankle",
    "torque_qp_knee",
    "vahid_kdR_ns",
    "vahid_knee_torque",
    "vahid_lambdaR_ns",
    "vahid_xhip_actual",
    "vahid_xhip_desired",
    "vahid_zhip_actual",
    "vahid_zhip_desired",
    "velocity_actual_ankle",
    "velocity_actual_knee",
    "velocity_desired_ankle",
    "velocity_desired_knee",
)
# Extra columns legloop writes after the AMPRO ones: time (s), thigh IMU angle (rad) and rate (rad/s), load cell (N).
LEGLOOP_COLUMNS: tuple[str, ...] = ("time", "thigh_angle", "thigh_velocity", "load")

KNEE_CONTROL_FACTOR = 0.21930  # control_signal_knee = torque_knee (N·m) × factor
ANKLE_CONTROL_FACTOR = 0.15038  # control_signal_ankle = torque_ankle (N·m) × factor
CONTROL_SIGNAL_FACTOR = {"knee": KNEE_CONTROL_FACTOR, "ankle": ANKLE_CONTROL_FACTOR}

# AMPRO columns the simulator fills (see experiments.dataset for their meaning in a sim episode).
SIMULATED_COLUMNS: tuple[str, ...] = (
    "ishumanswing",
    "domainindex",
    "tau",
    "time_stance",
    "time_swing",
    "position_actual_knee",
    "position_actual_ankle",
    "velocity_actual_knee",
    "velocity_actual_ankle",
    "position_desired_knee",
    "position_desired_ankle",
    "velocity_desired_knee",
    "velocity_desired_ankle",
    "torque_pd_knee",
    "torque_pd_ankle",
    "torque_desired_knee",
    "torque_desired_ankle",
    "torque_actual_knee",
    "torque_actual_ankle",
    "control_signal_knee",
    "control_signal_ankle",
    "force_toe",
)
# AMPRO columns with no counterpart in the simulation: written as 0 by write_csv when absent.
NOT_SIMULATED_COLUMNS: tuple[str, ...] = tuple(c for c in AMPRO_COLUMNS if c not in SIMULATED_COLUMNS)


class LogFormatError(ValueError):
    """A log file that cannot be used: missing column, non-numeric value, ragged rows, empty file."""


def _column_text(values: np.ndarray) -> list[str]:
    """One column as strings: integers when every value is integral (flags, zeros), else the shortest float repr."""
    if values.size and np.all(np.isfinite(values)):
        ints = np.round(values)
        # -0.0 would come back as +0.0 through "0": keep repr for it so the round trip stays bit-exact.
        if (
            np.array_equal(ints, values)
            and np.all(np.abs(values) < 2**53)
            and not np.any(np.signbit(values[values == 0]))
        ):
            return [str(v) for v in ints.astype(np.int64).tolist()]
    # repr of the whole list formats every float with the shortest round-trip repr in C: faster than a loop.
    return repr(values.tolist())[1:-1].split(", ") if values.size else []


def write_csv(path: str | os.PathLike, columns: Mapping[str, np.ndarray], overwrite: bool = False) -> Path:
    """Write one log in the AMPRO CSV schema; returns the path.

    Columns are written in the order: the 39 :data:`AMPRO_COLUMNS` (absent ones as 0, see
    :data:`NOT_SIMULATED_COLUMNS`), then the :data:`LEGLOOP_COLUMNS` that are present, then any other given columns in
    sorted order (so a real log with extra columns survives a round trip). All columns must be 1-D and of equal
    length. Refuses to replace an existing file unless `overwrite`; the write is atomic (temp file + rename).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --force) to replace it")
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in columns.items()}
    if not arrays:
        raise ValueError(f"{path}: no columns to write")
    lengths = {name: a.shape for name, a in arrays.items()}
    bad = [n for n, s in lengths.items() if len(s) != 1]
    if bad:
        raise ValueError(f"{path}: column {bad[0]!r} is not 1-D (shape {lengths[bad[0]]})")
    n = next(iter(arrays.values())).shape[0]
    ragged = [name for name, a in arrays.items() if a.shape[0] != n]
    if ragged:
        raise ValueError(f"{path}: column {ragged[0]!r} has {arrays[ragged[0]].shape[0]} rows, expected {n}")
    extra = sorted(c for c in arrays if c not in AMPRO_COLUMNS and c not in LEGLOOP_COLUMNS)
    names = [*AMPRO_COLUMNS, *(c for c in LEGLOOP_COLUMNS if c in arrays), *extra]
    zeros = ["0"] * n
    text_cols = [_column_text(arrays[c]) if c in arrays else zeros for c in names]
    buf = io.StringIO()
    buf.write(",".join(names))
    buf.write("\n")
    if n:
        buf.write("\n".join(map(",".join, zip(*text_cols, strict=True))))
        buf.write("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, buf.getvalue(), overwrite=overwrite)


def _parse_column(path: Path, name: str, cells: Sequence[str]) -> np.ndarray:
    """One column of strings → float64; on failure, name the file, column, line and value."""
    try:
        return np.asarray(cells, dtype=np.str_).astype(np.float64)
    except ValueError:
        pass
    for i, cell in enumerate(cells):
        try:
            float(cell)
        except ValueError:
            # Line numbers are 1-based and count the header.
            raise LogFormatError(
                f"{path}: column {name!r}, line {i + 2}: non-numeric value {cell!r} (expected a number)"
            ) from None
    raise LogFormatError(f"{path}: column {name!r} could not be parsed as numbers")  # pragma: no cover


def read_csv(path: str | os.PathLike, require: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read a log in the AMPRO CSV schema (or any numeric CSV with a header) into float64 column arrays.

    `require` lists columns that must be present, e.g. for a feature set
    ``controllers.features.FEATURE_COLUMNS[name] + TARGET_COLUMNS``; a missing one raises :class:`LogFormatError`
    naming the file and the column. Every required column must be numeric. Columns not required are kept when they
    are numeric and dropped with a warning when they are not; with no `require`, every column must be numeric.
    A 100k-row, 40-column log reads in about a second (numpy's C parser; the csv module only on the error path).
    """
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"{path}: no such log file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            line = f.readline()
            header = next(csv.reader([line]), [])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise LogFormatError(f"{path}: not a CSV text file ({exc})") from None
        if not line:
            raise LogFormatError(f"{path}: empty file (expected a header line with the AMPRO column names)")
        names = [h.strip() for h in header]
        if not any(names):
            raise LogFormatError(f"{path}: empty header line (expected the AMPRO column names)")
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise LogFormatError(f"{path}: column {n!r} appears more than once in the header")
            seen.add(n)
        missing = [c for c in require if c not in seen]
        if missing:
            raise LogFormatError(
                f"{path}: missing required column(s) {', '.join(repr(c) for c in missing)} "
                f"(the file has {len(names)} columns: {', '.join(names[:6])}{', …' if len(names) > 6 else ''})"
            )
        try:
            # Fast path: numpy's C parser. Any problem (text, ragged rows, empty cells) falls back to the slow path,
            # which finds the offending cell and names it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data" is reported below as our own error
                data = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2, comments=None, quotechar='"')
        except (ValueError, UnicodeDecodeError):
            data = None
    if data is not None:
        if data.shape[0] == 0:
            raise LogFormatError(f"{path}: no data rows after the header")
        if data.shape[1] != len(names):
            raise LogFormatError(f"{path}: the data rows have {data.shape[1]} fields, the header has {len(names)}")
        return {name: np.ascontiguousarray(data[:, j]) for j, name in enumerate(names)}
    return _read_csv_slow(path, names, require)


def _read_csv_slow(path: Path, names: list[str], require: Sequence[str]) -> dict[str, np.ndarray]:
    """The csv-module reader: exact error locations, and non-required text columns dropped with a warning."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            next(reader)
            rows = [r for r in reader if r]  # csv yields [] for blank lines: skip them
    except (csv.Error, UnicodeDecodeError) as exc:
        raise LogFormatError(f"{path}: malformed CSV ({exc})") from None
    if not rows:
        raise LogFormatError(f"{path}: no data rows after the header")
    width = len(names)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise LogFormatError(f"{path}: line {i + 2} has {len(r)} fields, the header has {width}")
    cells = list(zip(*rows, strict=True))
    required = set(require)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        if not require or name in required:
            out[name] = _parse_column(path, name, cells[j])
        else:
            try:
                out[name] = _parse_column(path, name, cells[j])
            except LogFormatError as exc:
                warnings.warn(f"dropping non-numeric column: {exc}", stacklevel=3)
    return out
