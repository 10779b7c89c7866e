"""The AMPRO CSV log schema: exact round trips, clear errors for missing columns and non-numeric values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from controllers.features import FEATURE_COLUMNS, TARGET_COLUMNS
from experiments.ampro_log import (
    AMPRO_COLUMNS,
    ANKLE_CONTROL_FACTOR,
    KNEE_CONTROL_FACTOR,
    LEGLOOP_COLUMNS,
    NOT_SIMULATED_COLUMNS,
    SIMULATED_COLUMNS,
    LogFormatError,
    read_csv,
    write_csv,
)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.int64)


def test_schema_constants() -> None:
    assert len(AMPRO_COLUMNS) == 39 and len(set(AMPRO_COLUMNS)) == 39
    assert list(AMPRO_COLUMNS) == sorted(AMPRO_COLUMNS)  # the public log's (alphabetical) order
    assert AMPRO_COLUMNS[0] == "action_type" and AMPRO_COLUMNS[-1] == "velocity_desired_knee"
    assert LEGLOOP_COLUMNS == ("time", "thigh_angle", "thigh_velocity", "load")
    assert set(SIMULATED_COLUMNS) | set(NOT_SIMULATED_COLUMNS) == set(AMPRO_COLUMNS)
    assert not set(SIMULATED_COLUMNS) & set(NOT_SIMULATED_COLUMNS)
    assert (KNEE_CONTROL_FACTOR, ANKLE_CONTROL_FACTOR) == (0.21930, 0.15038)
    for name in ("ampro", "sensors"):
        assert set(FEATURE_COLUMNS[name]) <= set(SIMULATED_COLUMNS) | set(LEGLOOP_COLUMNS)
    assert set(TARGET_COLUMNS) <= set(SIMULATED_COLUMNS)


def test_round_trip_is_bit_exact_and_fills_missing_columns(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    cols = {c: rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n) for c in SIMULATED_COLUMNS}
    cols["ishumanswing"] = (rng.random(n) < 0.5).astype(float)
    cols["tau"][:3] = (-0.0, 5e-324, 1.7976931348623157e308)  # signed zero, subnormal, max: all survive
    cols["time"] = np.arange(n) * 0.005
    cols["load"] = rng.standard_normal(n).astype(np.float32).astype(np.float64)
    path = write_csv(tmp_path / "log.csv", cols)
    header = path.read_text().splitlines()[0].split(",")
    assert header == [*AMPRO_COLUMNS, "time", "load"]  # legloop columns after AMPRO's, only those present
    back = read_csv(path)
    for c, v in cols.items():
        np.testing.assert_array_equal(bits(back[c]), bits(v), err_msg=c)
    for c in NOT_SIMULATED_COLUMNS:
        assert np.all(back[c] == 0.0), c
    assert path.read_text().splitlines()[1].split(",")[AMPRO_COLUMNS.index("ishumanswing")] in ("0", "1")


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(allow_nan=False, allow_infinity=True)))
def test_round_trip_property(tmp_path_factory, values: np.ndarray) -> None:
    path = tmp_path_factory.mktemp("rt") / "x.csv"
    back = read_csv(write_csv(path, {"torque_pd_knee": values, "time": values[::-1].copy()}))
    np.testing.assert_array_equal(bits(back["torque_pd_knee"]), bits(values))
    np.testing.assert_array_equal(bits(back["time"]), bits(values[::-1]))


def test_write_refuses_to_overwrite(tmp_path) -> None:
    path = write_csv(tmp_path / "a.csv", {"tau": np.zeros(3)})
    with pytest.raises(FileExistsError, match=r"a\.csv"):
        write_csv(path, {"tau": np.ones(3)})
    write_csv(path, {"tau": np.ones(3)}, overwrite=True)
    assert np.all(read_csv(path)["tau"] == 1.0)


def test_write_rejects_ragged_columns(tmp_path) -> None:
    with pytest.raises(ValueError, match="torque_pd_ankle"):
        write_csv(tmp_path / "a.csv", {"tau": np.zeros(3), "torque_pd_ankle": np.zeros(4)})


def test_missing_required_column_is_named(tmp_path) -> None:
    cols = {c: np.zeros(4) for c in AMPRO_COLUMNS if c != "position_desired_knee"}
    path = tmp_path / "log.csv"
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join("0" * len(cols)) for _ in range(4)) + "\n")
    require = FEATURE_COLUMNS["ampro"] + TARGET_COLUMNS
    with pytest.raises(LogFormatError, match=r"log\.csv.*'position_desired_knee'"):
        read_csv(path, require=require)
    with pytest.raises(LogFormatError, match=r"'thigh_angle'"):  # a real AMPRO log cannot feed 'sensors'
        read_csv(write_csv(tmp_path / "full.csv", {"tau": np.zeros(2)}), require=FEATURE_COLUMNS["sensors"])


def test_non_numeric_value_is_located(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("tau,torque_pd_knee\n0.1,2\n0.2,oops\n")
    with pytest.raises(LogFormatError, match=r"bad\.csv: column 'torque_pd_knee', line 3: non-numeric value 'oops'"):
        read_csv(path)
    path.write_text("tau,torque_pd_knee\n0.1,2\n0.2,\n")
    with pytest.raises(LogFormatError, match=r"line 3: non-numeric value ''"):
        read_csv(path, require=["torque_pd_knee"])


def test_non_numeric_unrequired_column_is_dropped_with_warning(tmp_path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("tau,note\n0.1,start\n0.2,walk\n")
    with pytest.warns(UserWarning, match="note"):
        cols = read_csv(path, require=["tau"])
    assert list(cols) == ["tau"] and cols["tau"].tolist() == [0.1, 0.2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("tau,time\n", "no data rows"),
        ("tau,time\n1,2\n3\n", "line 3 has 1 fields"),
        ("tau,tau\n1,2\n", "appears more than once"),
    ],
)
def test_malformed_files(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(LogFormatError, match=message):
        read_csv(path)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(LogFormatError, match="no such log file"):
        read_csv(tmp_path / "nope.csv")


def test_reads_real_ampro_style_rows(tmp_path) -> None:
    # Two rows as in the public AMPRO3 log: integers, E notation, CRLF line ends.
    row = (
        "1,1.58463025093,-0.959482550621,0,0,0,0,0,0,0,1,-0.150542676449,0.416450202465,0,0.372697800398,"
        "0.183959215879,0,0,10.4737501144,-4.40496015549,10.5377902985,-4.37524032593,0,0,10.5377902985,"
        "-4.37524032593,0,0,20,0,10,-0.0540021210909,-0.0550500005484,0.811816334724,0.81536179781,"
        "1.97226090677E-05,0,0,0"
    )
    path = tmp_path / "rachel.csv"
    path.write_bytes((",".join(AMPRO_COLUMNS) + "\r\n" + row + "\r\n" + row + "\r\n").encode())
    cols = read_csv(path, require=FEATURE_COLUMNS["ampro"] + TARGET_COLUMNS)
    assert len(cols) == 39 and cols["velocity_actual_ankle"][0] == 1.97226090677e-05
    assert cols["control_signal_knee"][0] == pytest.approx(cols["torque_desired_knee"][0] * KNEE_CONTROL_FACTOR, 1e-4)
