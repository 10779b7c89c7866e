"""The virtual board in real processes on real ptys: start/stop, an empty board's HELLO, bit-identical steps against
the in-process EdgeDRNN model + output layer, every fault counted exactly on both sides, reboot and death of the
board, wire-time emulation; and the board's answers to every kind of bad request (in-process, on a pty)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
import tty
import zlib
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main as cli_main
from firmware_bridge import protocol as P
from firmware_bridge.board_client import (
    BoardClient,
    BoardError,
    BoardReset,
    ModelMismatch,
    VersionMismatch,
    outputs_from_acc,
    quantize_features,
)
from firmware_bridge.transport import LinkDown, SerialTransport
from firmware_bridge.weight_image import build_image
from hil.board_emulator import DelaySpec, EmulatorOptions, FaultConfig, InProcessBoard
from hil.board_process import (
    LAUNCHERS,
    BoardStartError,
    PythonEmulatorLauncher,
    register_launcher,
    start_board,
)
from hil.edgedrnn.model import EdgeDRNNModel

CONTROL_S = 2.0  # per attempt of a control request: a loaded CI machine must never time out a healthy exchange
STEP_S = 0.25  # STEP deadline in the exact-count tests: far above a healthy round trip, far below the delay fault
L, I, H, O = 2, 5, 16, 2


class Net:
    """A random 2-layer net as the host has it: weight image, output layer, model image."""

    def __init__(self, seed: int = 0, layers: int = L, inputs: int = I, hidden: int = H, outputs: int = O) -> None:
        rng = np.random.default_rng(seed)
        self.geometry = (layers, inputs, hidden, outputs)
        w_ih = [rng.integers(-48, 48, (3 * hidden, inputs if k == 0 else hidden), dtype=np.int8) for k in range(layers)]
        w_hh = [rng.integers(-48, 48, (3 * hidden, hidden), dtype=np.int8) for _ in range(layers)]
        bias = [rng.integers(-32, 32, 3 * hidden, dtype=np.int8) for _ in range(layers)]
        self.weights = build_image(w_ih, w_hh, bias)
        self.w_out = rng.integers(-128, 128, (outputs, hidden), dtype=np.int8)
        self.b_out = rng.integers(-(2**20), 2**20, outputs).astype(np.int32)
        self.image = P.build_model_image(self.weights, self.w_out, self.b_out)
        self.inputs = np.cumsum(rng.integers(-40, 41, (400, inputs)), axis=0).clip(-4000, 4000).astype(np.int16)


def expected_outputs(h: np.ndarray, w_out: np.ndarray, b_out: np.ndarray) -> tuple[np.ndarray, bool]:
    """The output layer as the ARM core computes it: int32 MAC of Q1.7 × Q8.8 plus the bias, wrapping like int32."""
    exact = w_out.astype(np.int64) @ h.astype(np.int64) + b_out.astype(np.int64)
    wrapped = (exact + 2**31) % 2**32 - 2**31
    return wrapped.astype(np.int32), bool((wrapped != exact).any())


def _session(client: BoardClient, net: Net, theta: tuple[int, int] = (0, 0)) -> None:
    client.hello()
    client.configure(*net.geometry, *theta)
    client.load_model(net.image)
    client.reset_state()


@pytest.fixture(scope="module")
def net() -> Net:
    return Net()


# ------------------------------------------------------------------------------------------------ processes


def test_process_start_stop_and_hello_on_an_empty_board() -> None:
    board = start_board("python")
    path = board.path
    try:
        assert board.alive and os.path.exists(path)
        with BoardClient.open(path, control_timeout_s=CONTROL_S) as client:
            info = client.hello()
        assert (info.version_major, info.version_minor) == (P.VERSION, P.VERSION_MINOR)
        assert info.status == 0 and info.model_hash == 0 and not info.configured and not info.model_loaded
        assert info.boot_id != 0 and info.clock_hz == 125_000_000 and info.timer_hz == 1_000_000_000
        caps = P.Capability(info.capabilities)
        assert P.Capability.CYCLE_MODEL in caps and P.Capability.FAULT_INJECTION in caps
        assert P.Capability.WIRE_TIME_EMULATION not in caps
        assert (info.max_payload, info.max_layers, info.max_hidden) == (1024, 4, 1024)
        assert info.firmware.startswith("legloop-pyemu")
    finally:
        assert board.stop() == 0
    # The pty's number may already belong to another test's pty (pytest -n), so its path is not checked.
    assert not board.alive
    with start_board("python") as again:
        with BoardClient.open(again.path, control_timeout_s=CONTROL_S) as client:
            assert client.hello().boot_id != info.boot_id  # a new boot id at every start


class _BadOptionsLauncher(PythonEmulatorLauncher):
    """A launcher kind whose board refuses its command line: start_board must report the board's own message."""

    kind = "python-bad-options"

    def argv(self, options: EmulatorOptions) -> list[str]:
        return [*super().argv(options), "--fault-drop", "7"]


def test_unknown_kind_and_a_board_that_fails_to_start() -> None:
    with pytest.raises(KeyError, match=r"unknown board kind 'fpga'; known: \['c', 'python', 'qemu'"):
        start_board("fpga")
    register_launcher(_BadOptionsLauncher())
    try:
        with pytest.raises(BoardStartError, match=r"(?s)exited with code 2 .*a probability must be in 0\.\.1"):
            start_board("python-bad-options", startup_timeout_s=60)
    finally:
        LAUNCHERS.pop("python-bad-options")


def test_steps_are_bit_identical_to_the_in_process_model(net: Net) -> None:
    theta = (2, 3)
    ref = EdgeDRNNModel(net.weights, L, I, H, *theta)
    # a third output whose bias sits at the top of int32 exercises the wrapping MAC and the OUTPUT_WRAPPED flag
    w_out = np.vstack([net.w_out, np.full((1, H), 127, np.int8)])
    b_out = np.append(net.b_out, np.int32(2**31 - 1))
    image = P.build_model_image(net.weights, w_out, b_out)
    with (
        start_board("python") as board,
        BoardClient.open(board.path, control_timeout_s=CONTROL_S, step_timeout_s=STEP_S) as client,
    ):
        client.hello()
        client.configure(L, I, H, 3, *theta)
        h = client.load_model(image)
        assert h == zlib.crc32(image) and client.hello().model_hash == h and client.info.model_loaded
        wrapped_seen = 0
        for t, x in enumerate(net.inputs):
            if t == 150:
                client.set_thresholds(0, 9)
                ref.theta_x, ref.theta_h = 0, 9
            if t == 300:
                client.reset_state()
                ref.reset()
            reply = client.step(x)
            assert reply is not None, f"step {t} lost: {client.counters}"
            want, wrapped = expected_outputs(ref.step(x), w_out, b_out)
            assert reply.outputs.tolist() == want.tolist(), t
            assert (reply.cycles, reply.fired_columns, reply.nonzero_deltas) == (
                ref.cycles,
                ref.fired_columns,
                ref.nonzero_deltas,
            ), t
            assert bool(reply.flags & P.ResultFlags.FIRST_STEP) == (t in (0, 300)), t
            assert bool(reply.flags & P.ResultFlags.OUTPUT_WRAPPED) == wrapped, t
            assert reply.compute_ticks > 0
            wrapped_seen += wrapped
        assert 0 < wrapped_seen < len(net.inputs)
        stats = client.stats()
        assert stats.steps == len(net.inputs) and stats.errors_sent == 0
        assert client.counters.lost == 0


def test_host_quantisation_and_scaling_match_the_backend_formulas() -> None:
    mean = np.array([0.5, -1.0, 0.0, 2.0])
    std = np.array([2.0, 0.5, 1.0, 1e-3])
    f = np.array([0.5 + 2.0 * (0.5 / 256), np.nan, 1e9, 2.0 - 1e-3 * (1.5 / 256)])
    q = quantize_features(f, mean, std)
    assert q.dtype == np.int16 and q.tolist() == [0, 0, 32767, -2]  # half to even, NaN → 0, saturation
    y = outputs_from_acc(np.array([32768, -16384], np.int32), np.array([2.0, 1.0]), np.array([0.5, 0.0]))
    assert y.tolist() == [2.5, -0.5]


FAULTS = {
    "drop": (FaultConfig(drop=0.1, seed=1), {"timeouts": "fault_drop"}),
    "corrupt": (FaultConfig(corrupt=0.15, seed=2), {"crc_errors": "fault_corrupt"}),
    "truncate": (FaultConfig(truncate=0.15, seed=3), {"truncated": "fault_truncate"}),
    "duplicate": (FaultConfig(duplicate=0.15, seed=4), {"duplicates": "fault_duplicate"}),
    "delay": (
        FaultConfig(delay=0.08, delay_ms=DelaySpec.parse("uniform:400,450"), seed=5),
        {"timeouts": "fault_delay", "stale": "fault_delay"},
    ),
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_each_fault_is_counted_exactly_on_both_sides(kind: str, net: Net) -> None:
    faults, mapping = FAULTS[kind]
    steps = 120
    with (
        start_board("python", EmulatorOptions(faults=faults)) as board,
        BoardClient.open(board.path, control_timeout_s=CONTROL_S, step_timeout_s=STEP_S) as client,
    ):
        _session(client, net)
        answered = sum(client.step(x) is not None for x in net.inputs[:steps])
        client.transport.drain(0.6 if kind == "delay" else 0.05)  # late and second copies still on their way
        stats = client.stats()
        c = client.counters
    injected = {k: getattr(stats, k) for k in ("fault_drop", "fault_corrupt", "fault_truncate", "fault_duplicate")}
    injected["fault_delay"] = stats.fault_delay
    name = f"fault_{kind}"
    assert injected[name] > 0, "the seed injected nothing: pick another"
    assert all(v == 0 for k, v in injected.items() if k != name), injected
    for host_counter, board_counter in mapping.items():
        assert getattr(c, host_counter) == getattr(stats, board_counter), (c, stats)
    others = {
        k: v for k, v in c.as_dict().items() if v and k not in mapping and k not in ("frames_sent", "frames_received")
    }
    assert others == {}, c
    lost = stats.fault_drop + stats.fault_corrupt + stats.fault_truncate + stats.fault_delay
    assert answered == steps - lost
    assert stats.frames_rx == c.frames_sent - stats.fault_drop
    assert stats.crc_errors == stats.truncated == stats.malformed == stats.resyncs == 0


def test_faults_on_every_request_are_survived_by_retries(net: Net) -> None:
    faults = FaultConfig(drop=0.15, corrupt=0.1, seed=11, scope="all")
    with (
        start_board("python", EmulatorOptions(faults=faults, max_payload=256)) as board,
        BoardClient.open(board.path, control_timeout_s=0.3, step_timeout_s=STEP_S, retries=10) as client,
    ):
        _session(client, net)  # 12 LOAD_CHUNKs of 252 bytes, some lost and sent again
        for x in net.inputs[:40]:
            client.step(x)
        stats = client.stats()
        c = client.counters
    assert c.timeouts == stats.fault_drop > 0 and c.crc_errors == stats.fault_corrupt > 0
    assert c.retries > 0 and c.retries <= c.timeouts + c.crc_errors


def test_reset_after_is_detected_as_board_reset_and_resync_recovers(net: Net) -> None:
    with (
        start_board("python", EmulatorOptions(faults=FaultConfig(reset_after=5))) as board,
        BoardClient.open(board.path, control_timeout_s=CONTROL_S, step_timeout_s=STEP_S) as client,
    ):
        _session(client, net)
        boot = client.boot_id
        for x in net.inputs[:5]:
            assert client.step(x) is not None
        with pytest.raises(BoardReset, match=r"not_configured.*rebooted"):
            client.step(net.inputs[5])
        with pytest.raises(BoardReset):
            client.step(net.inputs[5])  # still the same verdict until the loop re-synchronises
        info = client.resync()
        assert info.boot_id != boot and client.boot_id == info.boot_id and info.model_loaded
        ref = EdgeDRNNModel(net.weights, L, I, H)
        for x in net.inputs[:20]:  # the reloaded board starts from a reset state again
            want, _ = expected_outputs(ref.step(x), net.w_out, net.b_out)
            assert client.step(x).outputs.tolist() == want.tolist()
        assert client.stats().resets == 1


def test_a_changed_boot_id_in_hello_raises_board_reset(net: Net) -> None:
    with (
        start_board("python", EmulatorOptions(faults=FaultConfig(reset_after=1))) as board,
        BoardClient.open(board.path, control_timeout_s=CONTROL_S) as client,
    ):
        _session(client, net)
        client.step(net.inputs[0])
        with pytest.raises(BoardReset, match="boot id") as err:
            client.hello()
        assert err.value.old_boot_id != err.value.new_boot_id != 0


def test_die_after_gives_timeouts_and_killing_the_board_gives_link_down(net: Net) -> None:
    board = start_board("python", EmulatorOptions(faults=FaultConfig(die_after=3)))
    try:
        with BoardClient.open(board.path, control_timeout_s=CONTROL_S, step_timeout_s=0.1) as client:
            _session(client, net)
            got = [client.step(x) is not None for x in net.inputs[:6]]
            assert got == [True, True, True, False, False, False]
            assert client.counters.timeouts == 3 and board.alive
            client.step_timeout_s = 10.0  # a long wait, cut short by the board's death
            timer = threading.Timer(0.3, board.kill)
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(LinkDown, match=board.path):
                client.step(net.inputs[6])
            assert time.monotonic() - t0 < 0.3 + 0.5  # LinkDown within milliseconds of the kill, not at 10 s
            timer.join()
    finally:
        board.kill()
        board.wait(5)


def test_baud_115200_costs_at_least_the_wire_time(net: Net) -> None:
    wire = P.wire_time(P.wire_size(2 * I) + P.wire_size(14 + 4 * O), 115200)
    assert wire == pytest.approx(4.51e-3, rel=1e-2)
    with (
        start_board("python", EmulatorOptions(baud=115200)) as board,
        BoardClient.open(board.path, baudrate=115200, control_timeout_s=CONTROL_S, step_timeout_s=0.5) as client,
    ):
        _session(client, net)
        assert P.Capability.WIRE_TIME_EMULATION in P.Capability(client.info.capabilities)
        rtts = []
        for x in net.inputs[:40]:
            reply = client.step(x)
            assert reply is not None
            rtts.append(reply.rtt_s)
    # the emulator sends no earlier than wire(request) + compute + wire(response) after the request arrived
    assert min(rtts) >= wire


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_emulate_prints_the_device_and_stops_on_ctrl_c() -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    # Started with SIGINT ignored, as under nohup, in a background job or in some test runners' workers (Python then
    # keeps SIG_IGN): Ctrl-C must still stop it (it hung here under pytest-xdist before the CLI set its handler).
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "board", "emulate", "--fault-seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("virtual board on /dev/pts/"), line
        path = line.split()[3]
        with BoardClient.open(path, control_timeout_s=CONTROL_S) as client:
            assert client.hello().status == 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "board stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault-drop", "1.5"], "--fault-drop 1.5: a probability must be in 0..1"),
        (["--fault-drop", "0.6", "--fault-truncate", "0.6"], "their sum must be <= 1"),
        (["--fault-delay-ms", "gauss:1"], "--fault-delay-ms 'gauss:1': expected"),
        (["--fault-delay-ms", "uniform:3,1"], "LO <= HI"),
        (["--reset-after", "0"], "--reset-after 0: expected a number of steps >= 1"),
        (["--baud", "-9600"], "--baud -9600.0: expected a positive"),
        (["--max-payload", "64"], "--max-payload 64: expected 128..4096"),
    ],
)
def test_cli_bad_values_are_one_line_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["board", "emulate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ board answers


@pytest.fixture(scope="module")
def board():
    with InProcessBoard(EmulatorOptions(max_payload=512, max_image_bytes=40_000), link="pty") as b:
        yield b


@pytest.fixture
def link(board: InProcessBoard):
    board.board.reboot(count=False)  # every test starts from an empty board
    with SerialTransport(board.url) as t:
        yield t


def _ask(t: SerialTransport, msg_type: int, payload: bytes = b"", version: int = P.VERSION) -> P.Message:
    frame = t.request(msg_type, payload, timeout_s=CONTROL_S, any_version=True, version=version)
    assert frame is not None
    return P.decode_message(frame)


def _error(reply: P.Message) -> tuple[str, str]:
    assert isinstance(reply, P.Error), reply
    return reply.code_name, reply.text


def _configure(**kw: int) -> bytes:
    args = {"layers": L, "input_size": I, "hidden": H, "outputs": O} | kw
    return struct.pack("<BBHHBBHH", args["layers"], 0, args["input_size"], args["hidden"], args["outputs"], 0, 0, 0)


def test_board_refuses_requests_out_of_order(link: SerialTransport, net: Net) -> None:
    t = link
    assert _error(_ask(t, P.MsgType.STEP, bytes(10)))[0] == "not_configured"
    assert _error(_ask(t, P.MsgType.LOAD_BEGIN, bytes(8)))[0] == "not_configured"
    assert _error(_ask(t, P.MsgType.SET_THRESHOLDS, bytes(4)))[0] == "not_configured"
    assert isinstance(_ask(t, P.MsgType.CONFIGURE, _configure()), P.ConfigureAck)
    assert _error(_ask(t, P.MsgType.STEP, bytes(10)))[0] == "no_model"
    assert _error(_ask(t, P.MsgType.RESET_STATE))[0] == "no_model"
    assert _error(_ask(t, P.MsgType.LOAD_CHUNK, bytes(5)))[0] == "load_order"
    assert _error(_ask(t, P.MsgType.LOAD_END))[0] == "load_order"
    total = len(net.image)
    assert _error(_ask(t, P.MsgType.LOAD_BEGIN, struct.pack("<II", total + 1, 0))) == (
        "bad_value",
        f"LOAD_BEGIN total {total + 1} bytes; this configuration needs {total}",
    )
    assert isinstance(_ask(t, P.MsgType.LOAD_BEGIN, struct.pack("<II", total, zlib.crc32(net.image))), P.LoadBeginAck)
    assert _error(_ask(t, P.MsgType.LOAD_CHUNK, struct.pack("<I", 100) + net.image[100:200]))[0] == "load_order"
    assert isinstance(_ask(t, P.MsgType.LOAD_CHUNK, struct.pack("<I", 0) + net.image[:500]), P.LoadChunkAck)
    assert _error(_ask(t, P.MsgType.LOAD_END))[1] == f"LOAD_END after 500 of {total} bytes"
    for off in range(0, total, 400):  # overlapping with the first chunk: a resend is harmless
        chunk = net.image[off : off + 400]
        assert _ask(t, P.MsgType.LOAD_CHUNK, struct.pack("<I", off) + chunk) == P.LoadChunkAck(off, len(chunk))
    assert _error(_ask(t, P.MsgType.LOAD_CHUNK, struct.pack("<I", total - 4) + bytes(5)))[0] == "bad_value"
    ack = _ask(t, P.MsgType.LOAD_END)
    assert isinstance(ack, P.LoadEndAck) and ack.model_hash == zlib.crc32(net.image)
    assert _ask(t, P.MsgType.LOAD_END) == ack  # repeated: same answer
    assert isinstance(_ask(t, P.MsgType.STEP, bytes(10)), P.Result)
    assert _error(_ask(t, P.MsgType.STEP, bytes(12)))[0] == "bad_length"
    assert isinstance(_ask(t, P.MsgType.CONFIGURE, _configure()), P.ConfigureAck)
    assert _error(_ask(t, P.MsgType.STEP, bytes(10)))[0] == "no_model"  # CONFIGURE discarded the model


def test_board_checks_the_image_crc32(link: SerialTransport, net: Net) -> None:
    t = link
    _ask(t, P.MsgType.CONFIGURE, _configure())
    _ask(t, P.MsgType.LOAD_BEGIN, struct.pack("<II", len(net.image), zlib.crc32(net.image) ^ 1))
    for off in range(0, len(net.image), 500):
        _ask(t, P.MsgType.LOAD_CHUNK, struct.pack("<I", off) + net.image[off : off + 500])
    code, text = _error(_ask(t, P.MsgType.LOAD_END))
    assert code == "bad_crc32" and "LOAD_BEGIN said" in text
    assert _error(_ask(t, P.MsgType.STEP, bytes(10)))[0] == "no_model"
    info = _ask(t, P.MsgType.HELLO)
    assert info.model_hash == 0 and info.status == P.BoardStatus.CONFIGURED | P.BoardStatus.LOAD_IN_PROGRESS


def test_board_answers_bad_frames_and_fields(link: SerialTransport) -> None:
    t = link
    assert _error(_ask(t, 0x42)) == ("unknown_type", "unknown request type 0x42")
    assert _error(_ask(t, P.MsgType.PING, version=2))[0] == "bad_version"
    assert isinstance(_ask(t, P.MsgType.HELLO, version=2), P.Info)  # HELLO is answered whatever the version
    assert _error(_ask(t, P.MsgType.CONFIGURE, bytes(11)))[0] == "bad_length"
    assert _error(_ask(t, P.MsgType.STATS, b"x"))[0] == "bad_length"
    assert _error(_ask(t, P.MsgType.CONFIGURE, _configure(hidden=12)))[0] == "bad_value"
    assert _error(_ask(t, P.MsgType.CONFIGURE, _configure(layers=0)))[0] == "bad_value"
    assert _error(_ask(t, P.MsgType.CONFIGURE, _configure(layers=5)))[0] == "too_large"
    assert _error(_ask(t, P.MsgType.CONFIGURE, _configure(hidden=2048)))[0] == "too_large"
    assert _error(_ask(t, P.MsgType.CONFIGURE, _configure(input_size=300)))[0] == "too_large"
    code, text = _error(_ask(t, P.MsgType.CONFIGURE, _configure(hidden=128)))
    assert code == "too_large" and "40000" in text  # the 2L-128H image does not fit this board
    flags = struct.pack("<BBHHBBHH", 1, 1, 1, 8, 1, 0, 0, 0)
    assert _error(_ask(t, P.MsgType.CONFIGURE, flags))[0] == "bad_value"
    _ask(t, P.MsgType.CONFIGURE, _configure())
    assert _error(_ask(t, P.MsgType.SET_THRESHOLDS, struct.pack("<HH", 512, 0)))[0] == "bad_value"
    assert _ask(t, P.MsgType.SET_THRESHOLDS, struct.pack("<HH", 7, 8)) == P.SetThresholdsAck(7, 8)
    assert _ask(t, P.MsgType.PING, b"\x00" * 512) == P.Pong(b"\x00" * 512)
    # bad frames are not answered, only counted
    before = _ask(t, P.MsgType.STATS)
    frame = bytearray(P.frame_bytes(P.MsgType.PING, 1))
    frame[-1] ^= 1
    t.write_raw(bytes(P.cobs_encode(bytes(frame))) + b"\x00" + b"\x05\x01\x00" + b"\x44" * 700 + b"\x00")
    after = _ask(t, P.MsgType.STATS)
    assert (after.crc_errors - before.crc_errors, after.truncated - before.truncated) == (1, 1)
    assert after.resyncs - before.resyncs == 1
    assert after.errors_sent - before.errors_sent == 0


def test_client_checks_that_the_model_fits_and_matches(board: InProcessBoard, net: Net) -> None:
    board.board.reboot(count=False)
    with BoardClient.open(board.url, control_timeout_s=CONTROL_S) as client:
        with pytest.raises(ModelMismatch, match=r"model image bytes is 151560, the board takes at most 40000"):
            client.configure(2, 5, 128, 2)
        with pytest.raises(ModelMismatch, match="outputs is 100, the board takes at most 64"):
            client.configure(1, 5, 8, 100)
        client.configure(*net.geometry)
        with pytest.raises(ModelMismatch, match=f"model image has 10 bytes; expected {len(net.image)}"):
            client.load_model(bytes(10))
        client.set_thresholds(511, 0)
        assert (client.config.theta_x, client.config.theta_h) == (511, 0)
        with pytest.raises(BoardError, match=r"board error no_model \(answering RESET_STATE\)") as err:
            client.reset_state()
        assert err.value.code == P.ErrorCode.NO_MODEL


def test_a_board_of_another_major_version_is_refused_clearly() -> None:
    """A stand-in board of protocol 2 (a thread answering HELLO on a pty) must be refused by name."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def v2_board() -> None:
        dec = P.FrameDecoder()
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for f in dec.feed(data):
                if isinstance(f, P.Frame):
                    info = P.Info(version_major=2, boot_id=1, max_payload=256).encode()
                    os.write(master, bytes(P.encode_frame(P.MsgType.INFO, f.seq, info, version=2)))

    threading.Thread(target=v2_board, daemon=True).start()
    try:
        with BoardClient.open(path, control_timeout_s=CONTROL_S) as client:
            with pytest.raises(VersionMismatch, match="board speaks protocol version 2; this host speaks 1"):
                client.hello()
    finally:
        os.close(master)
        os.close(slave)
