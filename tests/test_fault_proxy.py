"""The fault proxy (``hil.fault_proxy``): the Python emulator's link faults on the C firmware — real firmware and proxy
processes on real pseudo-terminals, real MuJoCo physics, real files.

The fault sequences expected here come from :class:`hil.board_emulator.FaultInjector` itself: the proxy must draw
exactly what the emulator draws for the same seed, so a seed's faults can be predicted step by step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main as cli_main
from firmware_bridge.board_client import BoardClient
from firmware_bridge.protocol import Capability, MsgType, encode_frame, frame_bytes
from hil.board_backend import (
    LINK_EVENT_CRC,
    LINK_EVENT_DUPLICATE,
    LINK_EVENT_LOST,
    LINK_EVENT_STALE,
    LINK_EVENT_TIMEOUT,
    LINK_EVENT_TRUNCATED,
    BoardLink,
)
from hil.board_emulator import (
    CORRUPT,
    DELAY,
    DROP,
    DUPLICATE,
    TRUNCATE,
    DelaySpec,
    EmulatorOptions,
    FaultConfig,
    FaultInjector,
)
from hil.board_process import BoardStartError, start_board
from hil.deadline import SOURCE_HELD
from hil.fault_proxy import PARTIAL_FLUSH_S, FaultProxyLauncher
from hil.runlog import read_runlog

# As in test_board_loop, far above a healthy round trip (~0.2 ms) so that the only lost steps are the injected ones;
# twice its 50 ms, because an exchange here wakes three processes (host, proxy, firmware) on a shared machine, and
# one stall past the timeout would be a timeout nobody injected. 1 % dropped steps of a 60 s run cost 12 s.
FAULT_STEP_TIMEOUT_MS = 100.0
OUTPUTS = 2  # the damper network's torques: a RESULT has 14 + 4 * 2 payload bytes


@pytest.fixture(scope="module")
def damper(tmp_path_factory) -> Path:
    from conftest import CheckpointFactory

    return CheckpointFactory(tmp_path_factory.mktemp("ckpt")).damper()


@pytest.fixture(scope="module")
def c_compiler() -> None:
    from firmware_bridge import c_firmware

    reason = c_firmware.toolchain().missing("host")
    if reason:
        pytest.skip(reason)


def _eval(args: list[str], out: Path) -> int:
    return cli_main(["eval", "--no-pushes", "--seeds", "0", "--out", str(out), *args])


def _expected_faults(cfg: FaultConfig, steps: int) -> np.ndarray:
    """The fault of each STEP that the emulator's injector draws for ``cfg`` (with the corrupt and truncate draws
    a RESULT of this network consumes in between, as the emulator and the proxy make them)."""
    inj = FaultInjector(cfg)
    payload = bytes(14 + 4 * OUTPUTS)
    decoded, encoded = frame_bytes(MsgType.RESULT, 0, payload), encode_frame(MsgType.RESULT, 0, payload)
    out = np.zeros(steps, dtype=np.int64)
    for k in range(steps):
        fault, _ = inj.decide(MsgType.STEP)
        if fault == CORRUPT:
            inj.corrupt(decoded)
        elif fault == TRUNCATE:
            inj.truncate(encoded)
        out[k] = fault
    return out


def _episode(out: Path) -> tuple[dict, dict, dict[str, np.ndarray]]:
    ep = json.loads((out / "metrics.json").read_text())["episodes"][0]
    header, cols = read_runlog(out / "runlogs" / "seed_0")
    return ep, header, cols


# ------------------------------------------------------------------------------------------------ the C firmware


def test_a_60s_run_on_the_c_firmware_with_corrupt_dropped_and_truncated_frames(
    c_compiler: None, damper: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "faults"
    code = _eval(
        [
            "--controller", "board", "--emulate", "c", "--checkpoint", str(damper), "--seconds", "60",
            "--fault-corrupt", "0.01", "--fault-drop", "0.01", "--fault-truncate", "0.005", "--fault-seed", "3",
            "--step-timeout-ms", str(FAULT_STEP_TIMEOUT_MS),
        ],
        out,
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    ep, header, cols = _episode(out)
    # It was the C firmware, behind the proxy, that answered.
    backend = header["backend"]
    assert backend["firmware"].startswith("legloop-fw") and "FAULT_INJECTION" in backend["capabilities"]
    assert backend["fault_proxy_upstream"] and backend["fault_proxy_upstream"] != backend["device"]
    assert ep["ended"] == "completed" and not ep["fell"]
    link = ep["link"]
    inj = link["injected"]
    assert link["steps"] == 12000, link
    # Every injected fault was detected and counted as what it is, and nothing else went wrong on the link.
    assert inj["drop"] > 60 and inj["corrupt"] > 60 and inj["truncate"] > 20  # ~1 %, ~1 %, ~0.5 % of 12000
    assert inj["duplicate"] == inj["delayed"] == inj["resets"] == 0
    assert (link["timeouts"], link["crc_errors"], link["truncated"]) == (
        inj["drop"],
        inj["corrupt"],
        inj["truncate"],
    ), link
    assert link["malformed"] == link["duplicates"] == link["seq_gaps"] == link["stale"] == 0, link
    lost = inj["drop"] + inj["corrupt"] + inj["truncate"]
    assert link["steps_lost"] == lost == ep["lost_steps"]
    # Each lost step went through the deadline policy (hold), and the log shows where every torque came from.
    assert ep["deadline_policy"] == "hold" and ep["deadline_held"] >= lost and ep["deadline_misses"] >= lost
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
    # The emulator's injector with this seed predicts which step got which fault: the proxy drew the same.
    cfg = FaultConfig(drop=0.01, corrupt=0.01, truncate=0.005, seed=3)
    want = _expected_faults(cfg, 12000)
    np.testing.assert_array_equal(np.flatnonzero(is_lost), np.flatnonzero(np.isin(want, (DROP, CORRUPT, TRUNCATE))))
    np.testing.assert_array_equal(np.flatnonzero(events & LINK_EVENT_TIMEOUT), np.flatnonzero(want == DROP))
    np.testing.assert_array_equal(np.flatnonzero(events & LINK_EVENT_TRUNCATED), np.flatnonzero(want == TRUNCATE))
    printed = capsys.readouterr().out
    assert f"{lost}/12000 steps lost" in printed and f"injected: drop {inj['drop']}" in printed


def test_duplicated_and_delayed_responses_are_counted_by_the_host_as_injected(
    c_compiler: None, damper: Path, tmp_path: Path, capsys
) -> None:
    # Responses held back 150 ms (> the 100 ms step timeout): each is a timeout, then a stale answer some steps later.
    # Seed 121 at 0.5 % each puts 6 duplicates and 7 delays in 1000 steps, the last delay at step 368 and the last
    # duplicate at 940. An answer still on its way when the episode ends would be counted after it: the last one
    # comes 50 ms after its step's timeout, and the 631 steps after it take longer than that even on a fast host
    # (seed 2 at 1 %, last delay at 776, left 223 steps: a host at ~0.1 ms per step sometimes ended first).
    out = tmp_path / "dup"
    args = ["--controller", "board", "--emulate", "c", "--checkpoint", str(damper), "--seconds", "5"]
    faults = ["--fault-duplicate", "0.005", "--fault-delay-ms", "150", "--fault-delay", "0.005", "--fault-seed", "121"]
    code = _eval([*args, *faults, "--step-timeout-ms", str(FAULT_STEP_TIMEOUT_MS)], out)
    assert code == 0, capsys.readouterr().err
    ep, _, cols = _episode(out)
    link, inj = ep["link"], ep["link"]["injected"]
    assert ep["ended"] == "completed" and link["steps"] == 1000
    assert inj["duplicate"] == 6 and inj["delayed"] == 7 and inj["drop"] == inj["corrupt"] == inj["truncate"] == 0
    assert link["duplicates"] == inj["duplicate"]
    assert link["stale"] == link["timeouts"] == link["steps_lost"] == inj["delayed"]
    assert link["crc_errors"] == link["truncated"] == link["malformed"] == link["seq_gaps"] == 0
    # Step by step: a delayed answer loses its own step; a duplicate is seen on the next step's exchange.
    want = _expected_faults(FaultConfig(duplicate=0.005, delay=0.005, delay_ms=DelaySpec.parse("150"), seed=121), 1000)
    events = cols["link_events"].astype(np.int64)
    np.testing.assert_array_equal(np.flatnonzero(events & LINK_EVENT_LOST), np.flatnonzero(want == DELAY))
    np.testing.assert_array_equal(np.flatnonzero(events & LINK_EVENT_DUPLICATE), np.flatnonzero(want == DUPLICATE) + 1)
    assert ((events & LINK_EVENT_STALE) != 0).sum() == inj["delayed"]


def test_a_seed_replays_exactly_on_the_proxy_and_matches_the_emulator(
    c_compiler: None, damper: Path, tmp_path: Path, capsys
) -> None:
    faults = ["--fault-drop", "0.03", "--fault-corrupt", "0.03", "--fault-truncate", "0.03", "--fault-seed", "11"]
    common = ["--controller", "board", "--checkpoint", str(damper), "--seconds", "2", *faults]
    common += ["--step-timeout-ms", str(FAULT_STEP_TIMEOUT_MS)]
    logs = {}
    for name, board in (("c1", ["--emulate", "c"]), ("c2", ["--emulate", "c"]), ("python", ["--emulate", "python"])):
        assert _eval([*common, *board], tmp_path / name) == 0, capsys.readouterr().err
        ep, _, cols = _episode(tmp_path / name)
        assert ep["link"]["steps"] == 400
        logs[name] = (ep["link"]["injected"], cols["link_events"].astype(np.int64))
    inj, events = logs["c1"]
    assert ((events & LINK_EVENT_LOST) != 0).sum() == inj["drop"] + inj["corrupt"] + inj["truncate"] > 20
    for other in ("c2", "python"):  # the same faults on the same steps, on the proxy again and on the emulator
        assert logs[other][0] == inj, other
        np.testing.assert_array_equal(logs[other][1], events, err_msg=other)


def test_bytes_the_proxy_does_not_understand_reach_the_board_as_they_are(c_compiler: None) -> None:
    from hil.firmware_process import start_firmware

    with (
        start_firmware("c") as fw,
        start_board(FaultProxyLauncher(fw.path), EmulatorOptions(faults=FaultConfig(drop=0.5, seed=1))) as proxy,
        BoardClient.open(proxy.path) as client,
    ):
        info = client.hello()
        assert info.firmware.startswith("legloop-fw") and info.capabilities & Capability.FAULT_INJECTION
        before = client.stats()
        t = client.transport
        t.write_raw(b"\x02\x11\x00")  # a chunk too short to be a frame: truncated
        t.write_raw(b"\x01" * 2000 + b"\x00")  # a run longer than any frame: a resync
        t.write_raw(bytes(encode_frame(MsgType.PING, 7, b"abc"))[:5])  # a sender that stops mid-frame ...
        time.sleep(PARTIAL_FLUSH_S * 3)
        t.write_raw(b"\x00")  # ... and ends it: the board sees the prefix, a truncated frame
        after = client.stats()
        # --fault-scope step: control requests are never dropped, STATS_REPLY carries no faults yet.
        assert (after.truncated - before.truncated, after.resyncs - before.resyncs) == (2, 1)
        assert after.crc_errors == before.crc_errors and after.malformed == before.malformed
        assert after.fault_drop == 0


# ------------------------------------------------------------------------------------------------ bad input


def test_an_unknown_upstream_device_is_a_clear_error() -> None:
    with pytest.raises(BoardStartError, match=r"/dev/legloop-nonexistent: no such device"):
        start_board(FaultProxyLauncher("/dev/legloop-nonexistent"), EmulatorOptions(faults=FaultConfig(drop=0.1)))
    with pytest.raises(BoardStartError, match=r"/dev/null: not a terminal"):
        start_board(FaultProxyLauncher("/dev/null"))


def test_an_upstream_in_use_is_a_clear_error(c_compiler: None) -> None:
    from hil.firmware_process import start_firmware

    with start_firmware("c") as fw, BoardClient.open(fw.path):
        with pytest.raises(BoardStartError, match="in use by another process"):
            start_board(FaultProxyLauncher(fw.path))


def test_what_a_proxy_cannot_do_is_refused_before_anything_starts(damper: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="cannot reboot"):
        BoardLink(emulate="c", faults=FaultConfig(reset_after=5))
    with pytest.raises(ValueError, match="cannot reboot"):
        FaultProxyLauncher("/dev/null").argv(EmulatorOptions(faults=FaultConfig(reset_after=5)))
    with pytest.raises(ValueError, match="fault options only"):
        FaultProxyLauncher("/dev/null").argv(EmulatorOptions(baud=115200))
    with pytest.raises(ValueError, match="a real board injects no faults"):
        BoardLink(port="/dev/ttyACM0", faults=FaultConfig(drop=0.1))
    assert BoardLink(emulate="qemu", faults=FaultConfig(die_after=10)).proxied
    assert not BoardLink(emulate="c").proxied and not BoardLink(emulate="python", faults=FaultConfig(drop=0.1)).proxied
    out = tmp_path / "bad"
    args = ["--controller", "board", "--emulate", "c", "--checkpoint", str(damper), "--reset-after", "5"]
    assert _eval(args, out) == 2
    assert "cannot reboot" in capsys.readouterr().err and not out.exists()
