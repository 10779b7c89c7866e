"""The board in the loop: ``--controller board`` against the in-process EdgeDRNN model, under link faults, with a
board that dies or reboots mid-run, and on bad input — real emulator processes on real pseudo-terminals, real MuJoCo
physics, real files.

The checkpoint is a hand-built damper network (``CheckpointFactory.damper``) so that the walker keeps walking for the
whole run: a random network would fall within seconds and leave most of a 60 s run untested.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main as cli_main
from experiments.evaluate import EvalConfig, run_episode
from firmware_bridge.board_client import BoardClient
from hil.board_backend import LINK_EVENT_BOARD_RESET, LINK_EVENT_CRC, LINK_EVENT_LOST, BoardLink
from hil.board_emulator import EmulatorOptions, FaultConfig
from hil.board_process import start_board
from hil.deadline import SOURCE_HELD, SOURCE_LATE, SOURCE_ON_TIME
from hil.learned import LearnedController
from hil.runlog import read_runlog
from hil.spec import ControllerSpec

# A step timeout far above a healthy round trip (~0.2 ms) on a loaded CI machine, so the only lost steps are the
# injected ones, and short enough that 1 % dropped steps of a 60 s run cost ~10 s, not minutes.
FAULT_STEP_TIMEOUT_MS = 100.0


@pytest.fixture(scope="module")
def damper(tmp_path_factory) -> Path:
    from conftest import CheckpointFactory

    return CheckpointFactory(tmp_path_factory.mktemp("ckpt")).damper()


def _record(spec: ControllerSpec, seconds: float, log_base: Path | None = None) -> dict[str, np.ndarray]:
    """One episode of seed 0; per step the network's torque, the applied torque, cycles and fired columns."""
    cfg = EvalConfig(seconds=seconds, seeds=[0])
    made: list[LearnedController] = []
    rows: dict[str, list] = {"net": [], "applied": []}
    stats: dict = {}
    with spec.factory() as factory:

        def make(env):
            c = factory(env)
            made.append(c)
            return c

        def observe(k, obs, torque):
            rows["net"].append(made[-1].raw_output.copy())
            rows["applied"].append(torque.copy())

        fell, _, _ = run_episode(
            make, 0, seconds, cfg.env_kwargs(), record=False, stats_out=stats, observers=[observe], log_base=log_base
        )
        ctrl = made[-1]
        out = {k: np.array(v) for k, v in rows.items()}
        out |= {"cycles": ctrl.cycles.copy(), "fired": ctrl.fired_columns.copy()}
    out["fell"] = np.array(fell)
    out["stats"] = stats  # type: ignore[assignment]
    return out


def test_board_emulate_is_bit_identical_to_edgedrnn_in_process(damper: Path, tmp_path: Path) -> None:
    # Policy 'none' on both: a round trip stretched past the 5 ms period by a loaded machine must not make the board
    # run hold a torque the in-process run applies (what this test is about is the arithmetic over the wire).
    # A generous step timeout: no step may be lost to the machine's load either.
    link = BoardLink(emulate="python", step_timeout_s=2.0)
    local = _record(ControllerSpec("edgedrnn", checkpoint=str(damper), policy="none"), 10.0)
    board = _record(ControllerSpec("board", checkpoint=str(damper), policy="none", board=link), 10.0, tmp_path / "log")
    assert not local["fell"] and len(local["net"]) == 2000  # 10 s at 200 Hz, walking all the way
    assert len(board["net"]) == 2000
    # Bit-identical: exact equality of float64 torques and of the integer step records.
    np.testing.assert_array_equal(board["net"], local["net"])
    np.testing.assert_array_equal(board["applied"], local["applied"])
    np.testing.assert_array_equal(board["cycles"], local["cycles"])
    np.testing.assert_array_equal(board["fired"], local["fired"])
    assert (local["cycles"] > 0).all() and len(np.unique(local["fired"])) > 5  # the records vary: a real comparison
    link_stats = board["stats"]["link"]
    assert link_stats["steps"] == 2000 and link_stats["steps_lost"] == 0 and link_stats["timeouts"] == 0
    assert 0 < link_stats["round_trip_us"]["p50"] <= link_stats["round_trip_us"]["max"]
    assert link_stats["injected"] == dict.fromkeys(("drop", "corrupt", "truncate", "duplicate", "delayed", "resets"), 0)
    # The run log names the board and has a source and a round trip for every step.
    header, cols = read_runlog(tmp_path / "log")
    assert header["backend"]["kind"] == "board" and header["backend"]["firmware"].startswith("legloop-pyemu")
    assert len(cols["time"]) == 2000 and (cols["round_trip_us"] > 0).all()
    assert set(np.unique(cols["torque_source"])) <= {SOURCE_ON_TIME, SOURCE_LATE}
    np.testing.assert_array_equal(cols["cycles"], local["cycles"])


@pytest.mark.parametrize("kind", ["c", "qemu"])
def test_the_c_firmware_on_the_host_and_on_qemu_is_bit_identical_to_edgedrnn(damper: Path, kind: str) -> None:
    from firmware_bridge import c_firmware

    reason = c_firmware.toolchain().missing("host" if kind == "c" else "qemu")
    if reason:
        pytest.skip(reason)
    # As above: policy 'none' and a wide step timeout, so the comparison is of arithmetic, not of this machine's load
    # (QEMU's emulated UART and Cortex-M3 take ~1 ms per step).
    link = BoardLink(emulate=kind, step_timeout_s=2.0)
    local = _record(ControllerSpec("edgedrnn", checkpoint=str(damper), policy="none"), 10.0)
    board = _record(ControllerSpec("board", checkpoint=str(damper), policy="none", board=link), 10.0)
    assert len(local["net"]) == len(board["net"]) == 2000
    for what in ("net", "applied", "cycles", "fired"):
        np.testing.assert_array_equal(board[what], local[what], err_msg=what)
    stats = board["stats"]["link"]
    assert stats["steps_lost"] == 0 and "injected" not in stats  # the firmware injects no faults


def _eval(args: list[str], out: Path) -> int:
    return cli_main(["eval", "--no-pushes", "--seeds", "0", "--out", str(out), *args])


def test_a_60s_run_with_corrupt_dropped_and_truncated_frames(damper: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "faults"
    code = _eval(
        [
            "--controller", "board", "--emulate", "--checkpoint", str(damper), "--seconds", "60",
            "--fault-corrupt", "0.01", "--fault-drop", "0.01", "--fault-truncate", "0.005", "--fault-seed", "3",
            "--step-timeout-ms", str(FAULT_STEP_TIMEOUT_MS),
        ],
        out,
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    ep = json.loads((out / "metrics.json").read_text())["episodes"][0]
    assert ep["ended"] == "completed" and not ep["fell"]
    link = ep["link"]
    inj = link["injected"]
    assert link["steps"] == 12000
    # Every injected fault was detected and counted as what it is, and nothing else went wrong on the link.
    assert inj["drop"] > 60 and inj["corrupt"] > 60 and inj["truncate"] > 20  # ~1 %, ~1 %, ~0.5 % of 12000
    assert (link["timeouts"], link["crc_errors"], link["truncated"]) == (inj["drop"], inj["corrupt"], inj["truncate"])
    assert link["malformed"] == link["duplicates"] == link["seq_gaps"] == link["stale"] == 0
    lost = inj["drop"] + inj["corrupt"] + inj["truncate"]
    assert link["steps_lost"] == lost == ep["lost_steps"]
    # Each lost step went through the deadline policy (hold), and the log shows where every torque came from.
    assert ep["deadline_policy"] == "hold" and ep["deadline_held"] >= lost and ep["deadline_misses"] >= lost
    _, cols = read_runlog(out / "runlogs" / "seed_0")
    events = cols["link_events"].astype(np.int64)
    source = cols["torque_source"]
    is_lost = (events & LINK_EVENT_LOST) != 0
    assert is_lost.sum() == lost and ((events & LINK_EVENT_CRC) != 0).sum() == inj["corrupt"]
    assert (source[is_lost] == SOURCE_HELD).all()  # no torque of a lost (e.g. corrupted) frame was applied ...
    applied = np.stack([cols["torque_actual_knee"], cols["torque_actual_ankle"]], axis=1)
    idx = np.flatnonzero(is_lost)
    idx = idx[idx > 0]
    np.testing.assert_array_equal(applied[idx], applied[idx - 1])  # ... the previous period's torque was held
    assert np.isnan(cols["latency_us"][is_lost]).all() and np.isfinite(cols["latency_us"][~is_lost]).all()
    printed = capsys.readouterr().out
    assert f"{lost}/12000 steps lost" in printed and f"injected: drop {inj['drop']}" in printed
    # The report draws where in the gait they fell: every lost step between the first and last heel strike.
    assert cli_main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-render"]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert '<figure id="fig-link-phase">' in html
    shown = re.search(r"board: (\d+)/(\d+) steps lost", html)
    assert shown is not None and 0 < int(shown[1]) <= lost and 11000 < int(shown[2]) < 12000


def _kill_when_running(board, log_json: Path, after_s: float, killed: list[float]) -> None:
    deadline = time.monotonic() + 120
    while not log_json.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(after_s)
    board.kill()
    killed.append(time.monotonic())


def test_killing_the_board_mid_run_ends_the_run_with_metrics_and_a_readable_log(
    damper: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "killed"
    board = start_board("python")
    killed: list[float] = []
    killer = threading.Thread(
        target=_kill_when_running, args=(board, out / "runlogs" / "seed_0.json", 1.5, killed), daemon=True
    )
    killer.start()
    try:
        args = ["--controller", "board", "--port", board.path, "--checkpoint", str(damper), "--seconds", "300"]
        code = _eval(args, out)
        ended = time.monotonic()
    finally:
        board.kill()
        killer.join(5)
    err = capsys.readouterr().err
    assert code == 1 and "aborted" in err
    assert killed and ended - killed[0] < 10.0  # watchdog (20 periods) or link-down, then the files are written
    ep = json.loads((out / "metrics.json").read_text())["episodes"][0]
    assert ep["ended"] == "aborted" and "board" in ep["aborted_reason"]
    assert ep["link"]["injected"] is None and ep["link"]["injected_unavailable"]
    header, cols = read_runlog(out / "runlogs" / "seed_0")
    assert header["ended"].startswith("aborted") and 100 < len(cols["time"]) < 60000
    assert np.isfinite(cols["time"]).all()


def test_a_board_that_goes_silent_trips_the_watchdog(damper: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "silent"
    # A wide step timeout: on a loaded machine a healthy step must not time out (the counts below are exact).
    args = ["--controller", "board", "--emulate", "--checkpoint", str(damper), "--seconds", "20"]
    args += ["--step-timeout-ms", str(FAULT_STEP_TIMEOUT_MS)]
    assert _eval([*args, "--die-after", "300", "--watchdog-periods", "10"], out) == 1
    ep = json.loads((out / "metrics.json").read_text())["episodes"][0]
    assert ep["ended"] == "aborted" and "watchdog" in ep["aborted_reason"]
    assert "10 control steps" in ep["aborted_reason"]
    assert ep["link"]["steps"] == 310 and ep["link"]["timeouts"] == 10
    assert "watchdog" in capsys.readouterr().err


@pytest.mark.parametrize("on_reset", ["resync", "stop"])
def test_a_board_that_reboots_mid_run_is_detected(damper: Path, tmp_path: Path, on_reset: str) -> None:
    out = tmp_path / on_reset
    args = ["--controller", "board", "--emulate", "--checkpoint", str(damper), "--seconds", "5"]
    args += ["--step-timeout-ms", str(FAULT_STEP_TIMEOUT_MS)]  # exact counts below: no step lost to the load
    code = _eval([*args, "--reset-after", "400", "--on-reset", on_reset], out)
    ep = json.loads((out / "metrics.json").read_text())["episodes"][0]
    _, cols = read_runlog(out / "runlogs" / "seed_0")
    resets = np.flatnonzero(cols["link_events"].astype(np.int64) & LINK_EVENT_BOARD_RESET)
    if on_reset == "resync":
        # The board lost its state at its 400th answered step; the host saw it at the next, configured and loaded
        # it again, and the run went on: one lost step, counted as a reboot on both sides.
        assert code == 0 and ep["ended"] == "completed" and ep["link"]["steps"] == 1000
        assert ep["link"]["board_resets"] == 1 and ep["link"]["injected"]["resets"] == 1
        assert ep["link"]["steps_lost"] == 1 and list(resets) == [400]
    else:
        assert code == 1 and ep["ended"] == "aborted" and "rebooted" in ep["aborted_reason"]
        # The step that found the board rebooted applied no torque: the log ends with the 400 steps before it.
        assert ep["link"]["board_resets"] == 1 and list(resets) == [] and len(cols["time"]) == 400
        assert ep["link"]["injected"]["resets"] == 1  # the board still answers: its counters were read


# ------------------------------------------------------------------------------------------------ bad input


def test_an_unknown_port_is_a_clear_error_and_writes_nothing(damper: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "none"
    assert _eval(["--controller", "board", "--port", "/dev/legloop-nonexistent", "--checkpoint", str(damper)], out) == 2
    err = capsys.readouterr().err
    assert "/dev/legloop-nonexistent" in err and "no such device" in err and "legloop board emulate" in err
    assert not out.exists()


def test_a_port_in_use_and_a_model_that_does_not_fit_are_clear_errors(damper: Path, tmp_path: Path, capsys) -> None:
    with start_board("python") as board, BoardClient.open(board.path) as holder:
        holder.hello()
        assert _eval(["--controller", "board", "--port", board.path, "--checkpoint", str(damper)], tmp_path / "a") == 2
        assert "in use" in capsys.readouterr().err
    with start_board("python", EmulatorOptions(max_image_bytes=1000)) as small:  # the damper's image is 2824 bytes
        assert _eval(["--controller", "board", "--port", small.path, "--checkpoint", str(damper)], tmp_path / "b") == 2
        err = capsys.readouterr().err
        assert "does not fit the board" in err and "takes at most 1000" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--controller", "board"], "needs a board: --port DEV"),
        (["--controller", "board", "--port", "/dev/null", "--fault-drop", "0.1"], "injects no faults"),
        (["--controller", "board", "--emulate", "c", "--reset-after", "5"], "injects no faults"),
        (["--controller", "board", "--emulate", "--fault-drop", "0.7", "--fault-corrupt", "0.7"], "must be <= 1"),
        (["--controller", "board", "--emulate", "--watchdog-periods", "0"], "--watchdog-periods"),
        (["--controller", "board", "--emulate", "c", "--baud", "115200"], "full speed"),
        (["--controller", "edgedrnn", "--emulate"], "applies to --controller board"),
        (["--controller", "pd", "--port", "/dev/ttyACM0"], "applies to --controller board"),
        (["--controller", "pd", "--fault-scope", "all"], "--fault-scope applies to --controller board"),
        (["--controller", "board", "--port", "/dev/null", "--fault-seed", "4"], "--fault-seed: a real board"),
        (["--controller", "board", "--port", "/dev/ttyACM0", "--clock-mhz", "200"], "reports its clock"),
    ],
)
def test_bad_board_options_are_refused_before_anything_starts(
    damper: Path, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    out = tmp_path / "bad"
    ckpt = [] if args[1] == "pd" else ["--checkpoint", str(damper)]
    assert _eval([*args, *ckpt], out) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_result_is_not_overwritten_and_no_board_is_started(damper: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "metrics.json").write_text('{"precious": true}')
    assert _eval(["--controller", "board", "--emulate", "--checkpoint", str(damper)], out) == 2
    assert "already exists" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == {"precious": True}


def test_board_link_and_spec_validate_their_options() -> None:
    with pytest.raises(ValueError, match="not both"):
        BoardLink(port="/dev/ttyACM0", emulate="python")
    with pytest.raises(ValueError, match="unknown board to emulate"):
        BoardLink(emulate="fpga")
    with pytest.raises(ValueError, match="a real board injects no faults"):
        BoardLink(port="/dev/ttyACM0", faults=FaultConfig(drop=0.1))
    with pytest.raises(ValueError, match="on_reset"):
        BoardLink(emulate="python", on_reset="retry")
    with pytest.raises(ValueError, match="needs a board"):
        ControllerSpec("board", checkpoint="x.pt")
    with pytest.raises(ValueError, match="applies to controller 'board' only"):
        ControllerSpec("edgedrnn", checkpoint="x.pt", board=BoardLink(emulate="python"))
    spec = ControllerSpec("board", checkpoint="x.pt", board=BoardLink(emulate="python", faults=FaultConfig(drop=0.1)))
    d = spec.to_dict()
    assert d["board"]["emulate"] == "python" and d["board"]["faults"]["drop"] == 0.1
    json.dumps(d)  # JSON-ready for metrics and run logs


def test_a_replay_with_lost_steps_gives_the_percentiles_of_the_answered_ones(damper: Path, tmp_path: Path) -> None:
    from experiments.ampro_log import write_csv
    from experiments.collect import EpisodeTask, collect_episode
    from experiments.replay import replay_log

    _, columns, _ = collect_episode(EpisodeTask(0, 0, 1.0, 2.0, randomize=False))
    log = write_csv(tmp_path / "walk.csv", columns)
    link = BoardLink(emulate="python", faults=FaultConfig(drop=0.05, seed=2), step_timeout_s=0.05)
    metrics, _, _ = replay_log("board", damper, log, board=link)
    lost = metrics["link"]["steps_lost"]
    assert lost > 0  # a lost step has no latency (inf): it must not turn the percentiles into NaN
    assert metrics["latency_percentiles_steps"] == metrics["rows"] - lost
    assert all(math.isfinite(v) for v in metrics["latency_percentiles_us"].values())
    json.dumps(metrics, allow_nan=False)  # what run directories are written with
