"""The C firmware serving the board protocol (``docs/protocol.md``) over a real pseudo-terminal.

With the host client (``firmware_bridge.board_client``) against the AddressSanitizer + UBSan host build (kind
``"c"``) and the QEMU boards (kind ``"qemu"``: Cortex-M3 image on mps2-an385, Cortex-M7 on mps2-an500):
  - HELLO on an empty board;
  - configure + load + steps bit-identical to ``EdgeDRNNBackend`` (int32 outputs, cycles, fired columns,
    non-zero deltas, RESULT flags) for a random net, with threshold changes and a reset mid-run; and the RTL
    test-bench vectors through the protocol (needs LEGLOOP_CONFORMANCE_DIR);
  - the spec's ERROR codes (step before configure, bad CRC-32, a net beyond the build's MAX_HIDDEN, another
    protocol version, and the rest of §5.11's table);
  - bad requests (damaged, truncated, garbage) discarded and counted exactly as the Python reference receiver
    judges the same byte stream, and the next good frame answered;
  - the preload path (an image put in the store before boot: LOAD_BEGIN then LOAD_END, no chunks).
Tests skip with the reason when a compiler or QEMU is missing.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from firmware_bridge import c_firmware as cf
from firmware_bridge import protocol as P
from firmware_bridge.board_client import BoardClient, BoardError
from firmware_bridge.bundle import Bundle
from firmware_bridge.protocol_reference import fuzz_stream, reference_receive
from firmware_bridge.rtl_hex import parse_hex_activations
from firmware_bridge.weight_image import read_image
from hil import board_process
from hil.edgedrnn import EdgeDRNNBackend, EdgeDRNNModel
from hil.edgedrnn.synthetic import image_of, random_layers, smooth_inputs
from hil.firmware_process import CFirmwareLauncher, QemuLauncher, load_preloaded, start_firmware

E = P.ErrorCode


BUILD_MAX_HIDDEN = 128  # the default build
BUILD_MAX_PAYLOAD = 1024


def _need(*needs: str) -> None:
    reason = cf.toolchain().missing(*needs)
    if reason:
        pytest.skip(reason)


def _launcher(kind: str, **kw: object):
    if kind == "asan":
        _need("host")
        return CFirmwareLauncher(sanitize=True, **kw)
    _need("qemu")
    return QemuLauncher(cpu=kind.removeprefix("qemu-"), **kw)


def _client(board, kind: str) -> BoardClient:
    # These tests are about bits, not deadlines: a wide margin, so that no step of a sanitized or emulated board on
    # a busy machine is lost to the deadline (benchmarks/bench_firmware.py measures the timing).
    return BoardClient.open(board.path, margin_s=0.5, control_timeout_s=5.0)


def _stop_clean(board) -> None:
    code = board.stop()
    tail = board.output_tail(50)
    assert "Sanitizer" not in tail and "runtime error" not in tail, tail
    assert code in (0, -15), f"exit {code}:\n{tail}"


@pytest.fixture(params=["asan", "qemu-m3", "qemu-m7"])
def kind(request) -> str:
    return request.param


# ------------------------------------------------------------------------------------------------ the model


def _bundle(seed: int, layers: int, inputs: int, hidden: int, outputs: int) -> Bundle:
    rng = np.random.default_rng(seed)
    w_out = rng.integers(-128, 128, (outputs, hidden), dtype=np.int8)
    b_out = rng.integers(-(2**20), 2**20, outputs).astype(np.int64)
    b_out[0] = 2**31 - 1 - 3000  # near INT32_MAX: some steps wrap (RESULT flag OUTPUT_WRAPPED)
    return Bundle(
        image=image_of(random_layers(rng, layers, inputs, hidden, 1.5)),
        layers=layers,
        input_size=inputs,
        hidden=hidden,
        theta_x=0,
        theta_h=0,
        out_weight=w_out,
        out_bias=b_out.astype(np.int32),
        input_mean=np.zeros(inputs, np.float32),
        input_std=np.ones(inputs, np.float32),
    )


def _model_image(b: Bundle) -> bytes:
    return P.build_model_image(b.image, b.out_weight, b.out_bias)


def _exact_out(b: Bundle, h: np.ndarray) -> np.ndarray:
    return b.out_bias.astype(np.int64) + b.out_weight.astype(np.int64) @ h.astype(np.int64)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + 2**31) % 2**32 - 2**31).astype(np.int64)


# ---------------------------------------------------------------------------------------------- sessions


def test_hello_on_an_empty_board(kind: str) -> None:
    board = start_firmware(_launcher(kind))
    try:
        with _client(board, kind) as c:
            info = c.hello()
            assert (info.version_major, info.version_minor) == (1, 1)
            assert info.status == 0 and info.model_hash == 0 and info.boot_id != 0
            assert info.capabilities == P.Capability.CYCLE_MODEL | P.Capability.COMPUTE_TIMER | P.Capability.GOVERNOR
            assert info.max_hidden == BUILD_MAX_HIDDEN and info.max_layers == 4 and info.max_payload == 1024
            assert info.timer_hz == (10**9 if kind == "asan" else 25_000_000)
            assert info.firmware.startswith("legloop-fw")
            st = c.stats()
            assert (st.frames_rx, st.errors_sent, st.steps) == (2, 0, 0)
    finally:
        _stop_clean(board)


def test_boot_id_changes_at_every_start() -> None:
    ids = set()
    for _ in range(3):
        board = start_firmware(_launcher("asan"))
        try:
            with _client(board, "asan") as c:
                ids.add(c.hello().boot_id)
        finally:
            _stop_clean(board)
    assert len(ids) == 3


def _run_session(c: BoardClient, b: Bundle, X: np.ndarray, schedule: dict[int, tuple]) -> dict[str, np.ndarray]:
    """Steps through the board; ``schedule[t]`` = ("theta", tx, th) or ("reset",) before step t."""
    rows: dict[str, list] = {k: [] for k in ("out", "cycles", "fired", "deltas", "flags", "ticks")}
    for t, x in enumerate(X):
        for action in schedule.get(t, ()):
            if action[0] == "theta":
                c.set_thresholds(action[1], action[2])
            else:
                c.reset_state()
        r = c.step(x)
        assert r is not None, f"step {t} lost: {c.counters}"
        rows["out"].append(r.outputs.astype(np.int64))
        rows["cycles"].append(r.cycles)
        rows["fired"].append(r.fired_columns)
        rows["deltas"].append(r.nonzero_deltas)
        rows["flags"].append(r.flags)
        rows["ticks"].append(r.compute_ticks)
    return {k: np.array(v) for k, v in rows.items()}


def _reference(b: Bundle, X: np.ndarray, schedule: dict[int, tuple], theta: tuple[int, int]) -> dict[str, np.ndarray]:
    be = EdgeDRNNBackend(b)
    m = be.model
    m.theta_x, m.theta_h = theta
    rows: dict[str, list] = {k: [] for k in ("out", "exact", "cycles", "fired", "deltas", "first")}
    first = True
    for t, x in enumerate(X):
        for action in schedule.get(t, ()):
            if action[0] == "theta":
                m.theta_x, m.theta_h = action[1], action[2]
            else:
                be.reset()
                first = True
        r = be.step(x / 256.0)
        rows["out"].append(np.rint(r.outputs * 32768.0).astype(np.int64))
        rows["exact"].append(_exact_out(b, r.h))
        rows["cycles"].append(r.cycles)
        rows["fired"].append(m.fired_columns)
        rows["deltas"].append(m.nonzero_deltas)
        rows["first"].append(first)
        first = False
    return {k: np.array(v) for k, v in rows.items()}


@pytest.mark.parametrize("preload", [False, True], ids=["upload", "preload"])
def test_steps_bit_identical_to_the_python_model(kind: str, preload: bool) -> None:
    if preload and kind == "qemu-m3":
        pytest.skip("the preload path is exercised on the host build and the M7 board")
    L, I, H, O = 2, 5, 32, 3
    b = _bundle(11, L, I, H, O)
    image = _model_image(b)
    rng = np.random.default_rng(5)
    T = 240 if kind == "asan" else 120
    X = np.clip(smooth_inputs(rng, T, I, period=30.0, amplitude=1.5) + rng.normal(0, 40, (T, I)), -32768, 32767)
    X = X.astype(np.int16)
    schedule = {40: (("theta", 0, 0),), 70: (("reset",),), 90: (("theta", 16, 4),)}
    ref = _reference(b, X, schedule, (3, 2))
    board = start_firmware(_launcher(kind, preload=image if preload else None))
    try:
        with _client(board, kind) as c:
            c.hello()
            c.configure(layers=L, input_size=I, hidden=H, outputs=O, theta_x=3, theta_h=2)
            h = load_preloaded(c, image) if preload else c.load_model(image)
            assert h == P.crc32(image) == c.hello().model_hash
            c.reset_state()
            got = _run_session(c, b, X, schedule)
            st = c.stats()
    finally:
        _stop_clean(board)
    np.testing.assert_array_equal(got["out"], ref["out"])
    np.testing.assert_array_equal(got["out"], _wrap32(ref["exact"]))
    np.testing.assert_array_equal(got["cycles"], ref["cycles"])
    np.testing.assert_array_equal(got["fired"], ref["fired"])
    np.testing.assert_array_equal(got["deltas"], ref["deltas"])
    wrapped = (ref["exact"] != _wrap32(ref["exact"])).any(axis=1)
    assert wrapped.any() and not wrapped.all()
    np.testing.assert_array_equal(got["flags"] & P.ResultFlags.OUTPUT_WRAPPED != 0, wrapped)
    np.testing.assert_array_equal(got["flags"] & P.ResultFlags.FIRST_STEP != 0, ref["first"])
    assert (got["ticks"] > 0).all()
    assert st.steps == T and st.errors_sent == 0 and st.crc_errors == st.truncated == st.malformed == 0


# ------------------------------------------------------------------------------------------- conformance

TB_LAYERS, TB_INPUT, TB_HIDDEN = 2, 5, 16


@pytest.mark.parametrize("target", ["asan", "qemu-m3"])
def test_conformance_vectors_through_the_protocol(conformance_dir: Path, target: str) -> None:
    d = conformance_dir / "edgedrnn"
    if not d.is_dir():
        pytest.skip(f"{d} does not exist")
    weights = read_image(d / "edgedrnn_tb_params.txt")
    stim = parse_hex_activations((d / "edgedrnn_tb_stim.txt").read_text(), 8)
    rtl = np.loadtxt(d / "edgedrnn_tb_cycles_th0.csv", delimiter=",", skiprows=1, dtype=np.int64)
    model = EdgeDRNNModel(weights, TB_LAYERS, TB_INPUT, TB_HIDDEN, 0, 0).run(stim)
    rng = np.random.default_rng(3)
    w_out = rng.integers(-128, 128, (2, TB_HIDDEN), dtype=np.int8)
    b_out = np.array([12345, -6789], dtype=np.int32)
    image = P.build_model_image(weights, w_out, b_out)
    assert not stim[:, TB_INPUT:].any()  # the padding columns are zero: the protocol sends the 5 real inputs
    board = start_firmware(_launcher(target))
    try:
        with _client(board, target) as c:
            c.hello()
            c.configure(layers=TB_LAYERS, input_size=TB_INPUT, hidden=TB_HIDDEN, outputs=2, theta_x=0, theta_h=0)
            c.load_model(image)
            c.reset_state()
            rows = []
            for x in stim[:, :TB_INPUT].astype(np.int16):
                r = c.step(x)
                assert r is not None
                rows.append((r.cycles, r.fired_columns, r.nonzero_deltas, *r.outputs))
    finally:
        _stop_clean(board)
    got = np.array(rows, dtype=np.int64)
    assert len(got) == 1000
    np.testing.assert_array_equal(got[:, 0], model.cycles)
    np.testing.assert_array_equal(got[:, 1], rtl[:, 2])  # fired columns as the RTL counted them
    np.testing.assert_array_equal(got[:, 1], model.fired_columns)
    np.testing.assert_array_equal(got[:, 2], model.nonzero_deltas)
    np.testing.assert_array_equal(got[:, 3:], _wrap32(b_out.astype(np.int64) + model.h.astype(np.int64) @ w_out.T))


# ------------------------------------------------------------------------------------------------ errors


class Raw:
    """Hand-made frames on the board's device (any version, any payload), answers decoded by the codec."""

    def __init__(self, path: str) -> None:
        self.s = serial.Serial(path, timeout=5)
        self.s.reset_input_buffer()
        self.dec = P.FrameDecoder()
        self.seq = 100

    def request(self, t: int, payload: bytes = b"", version: int = 1) -> P.Frame:
        self.seq += 1
        self.s.write(P.encode_frame(t, self.seq, payload, version=version))
        return self.answer(self.seq)

    def answer(self, seq: int) -> P.Frame:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for item in self.dec.feed(self.s.read(max(1, self.s.in_waiting))):
                assert isinstance(item, P.Frame), item
                assert item.seq == seq, f"answer to {item.seq}, awaited {seq}"
                return item
        raise AssertionError(f"no answer to seq {seq}")

    def error(self, t: int, payload: bytes = b"", version: int = 1) -> int:
        f = self.request(t, payload, version)
        assert f.msg_type == P.MsgType.ERROR, f"expected ERROR, got {P.decode_message(f)}"
        err = P.Error.decode(f.payload)
        assert err.request_type == t and err.text
        return err.code

    def ok(self, t: int, payload: bytes = b"") -> P.Message:
        f = self.request(t, payload)
        assert f.msg_type == t | 0x80, f"expected the {P.MsgType(t).name} response, got {P.decode_message(f)}"
        return P.decode_message(f)


def test_error_codes_of_the_spec() -> None:
    board = start_firmware(_launcher("asan"))
    try:
        r = Raw(board.path)
        T = P.MsgType
        assert r.error(T.STEP, b"\x00\x00") == E.NOT_CONFIGURED
        assert r.error(T.RESET_STATE) == E.NOT_CONFIGURED
        assert r.error(T.LOAD_BEGIN, bytes(8)) == E.NOT_CONFIGURED
        assert r.error(T.SET_THRESHOLDS, bytes(4)) == E.NOT_CONFIGURED
        assert r.request(T.HELLO, b"ignored", version=2).msg_type == T.INFO  # HELLO: any version, any payload
        assert r.error(T.STATS, version=2) == E.BAD_VERSION
        assert r.error(T.STEP, b"\x00\x00", version=0) == E.BAD_VERSION  # before the state
        assert r.error(0x55) == E.UNKNOWN_TYPE
        assert r.error(T.INFO) == E.UNKNOWN_TYPE  # a response type is not a request
        assert r.error(T.STATS, b"x") == E.BAD_LENGTH
        assert r.error(T.PING, bytes(BUILD_MAX_PAYLOAD + 1)) == E.BAD_LENGTH  # fits max_encoded, not the table
        cfg = P.Configure(2, 0, 5, 16, 2, 0, 3, 2)
        assert r.error(T.CONFIGURE, cfg.encode()[:11]) == E.BAD_LENGTH
        bad = {"flags": 1, "reserved": 1, "theta_x": 512, "theta_h": 600, "layers": 0, "hidden": 12, "input_size": 0}
        for field, value in {**bad, "outputs": 0}.items():
            m = P.Configure(2, 0, 5, 16, 2, 0, 3, 2)
            setattr(m, field, value)
            assert r.error(T.CONFIGURE, P.Configure._STRUCT.pack(*m._values())) == E.BAD_VALUE, field
        for field, value in {"layers": 5, "hidden": BUILD_MAX_HIDDEN + 8, "input_size": 65, "outputs": 9}.items():
            m = P.Configure(2, 0, 5, 16, 2, 0, 3, 2)
            setattr(m, field, value)
            assert r.error(T.CONFIGURE, m.encode()) == E.TOO_LARGE, field
        ack = r.ok(T.CONFIGURE, cfg.encode())
        total = ack.model_image_bytes
        assert total == P.model_image_size(2, 5, 16, 2) and ack.weight_image_bytes == P.weight_image_size(2, 5, 16)
        assert r.error(T.STEP, bytes(10)) == E.NO_MODEL
        assert r.error(T.RESET_STATE) == E.NO_MODEL
        assert r.error(T.LOAD_CHUNK, b"\x00\x00\x00\x00\x01") == E.LOAD_ORDER  # no LOAD_BEGIN
        assert r.error(T.LOAD_END) == E.LOAD_ORDER
        assert r.error(T.LOAD_BEGIN, P.LoadBegin(total + 1, 0).encode()) == E.BAD_VALUE
        assert r.error(T.SET_THRESHOLDS, P.SetThresholds._STRUCT.pack(512, 0)) == E.BAD_VALUE
        assert r.ok(T.SET_THRESHOLDS, P.SetThresholds(3, 2).encode()).theta_x == 3
        image = _model_image(_bundle(1, 2, 5, 16, 2))
        assert r.ok(T.LOAD_BEGIN, P.LoadBegin(total, P.crc32(image) ^ 1).encode()).total == total  # wrong CRC-32
        assert r.error(T.LOAD_CHUNK, P.LoadChunk(10, b"x").encode()) == E.LOAD_ORDER  # a gap
        assert r.error(T.LOAD_CHUNK, b"\x00\x00\x00\x00") == E.BAD_LENGTH  # no data
        for off in range(0, total, 1000):
            assert r.ok(T.LOAD_CHUNK, P.LoadChunk(off, image[off : off + 1000]).encode()).offset == off
        assert r.ok(T.LOAD_CHUNK, P.LoadChunk(0, image[:10]).encode()).length == 10  # sent again: harmless
        assert r.error(T.LOAD_CHUNK, P.LoadChunk(total - 5, bytes(10)).encode()) == E.BAD_VALUE  # past the end
        assert r.error(T.LOAD_END, b"x") == E.BAD_LENGTH
        assert r.error(T.LOAD_END) == E.BAD_CRC32
        assert r.ok(T.HELLO).status == P.BoardStatus.CONFIGURED | P.BoardStatus.LOAD_IN_PROGRESS
        assert r.error(T.STEP, bytes(10)) == E.NO_MODEL  # the image is never used before a good LOAD_END
        assert r.ok(T.LOAD_BEGIN, P.LoadBegin(total, P.crc32(image)).encode()).total == total
        assert r.error(T.LOAD_END) == E.LOAD_ORDER  # LOAD_BEGIN restarts the count: bytes missing
        for off in range(0, total, 1020):
            r.ok(T.LOAD_CHUNK, P.LoadChunk(off, image[off : off + 1020]).encode())
        assert r.ok(T.LOAD_END).model_hash == P.crc32(image)
        assert r.ok(T.LOAD_END).model_hash == P.crc32(image)  # repeated (its ACK was lost): the same answer
        assert r.error(T.LOAD_CHUNK, P.LoadChunk(0, b"x").encode()) == E.LOAD_ORDER  # the load is over
        assert r.error(T.STEP, bytes(12)) == E.BAD_LENGTH
        assert r.ok(T.STEP, bytes(10)).flags & P.ResultFlags.FIRST_STEP
        assert r.ok(T.RESET_STATE) is not None
        info = r.ok(T.HELLO)
        assert info.status == P.BoardStatus.CONFIGURED | P.BoardStatus.MODEL_LOADED
        assert info.model_hash == P.crc32(image)
        big = P.Configure(2, 0, 5, BUILD_MAX_HIDDEN + 8, 2)  # beyond the build's MAX_HIDDEN: refused, nothing changes
        assert r.error(T.CONFIGURE, big.encode()) == E.TOO_LARGE
        assert r.ok(T.HELLO).model_hash == P.crc32(image)
        r.ok(T.CONFIGURE, cfg.encode())  # an accepted CONFIGURE discards the model
        assert r.ok(T.HELLO).status == P.BoardStatus.CONFIGURED
        st = r.ok(T.STATS)
        assert st.malformed == 4  # 2 of another version (HELLO excepted), 2 unknown types; no bad frame was sent
        assert st.crc_errors == st.truncated == st.resyncs == 0
        r.s.close()
    finally:
        _stop_clean(board)


def test_bad_requests_are_discarded_and_counted_like_the_reference_receiver() -> None:
    """A stream of good, damaged, truncated, concatenated frames and garbage (protocol_reference.fuzz_stream):
    the board's counters equal the reference receiver's verdicts on the same bytes."""
    stream = fuzz_stream(random.Random(7), 1500, BUILD_MAX_PAYLOAD) + b"\x00"  # the last frame's end, if lost
    verdicts = reference_receive(stream, BUILD_MAX_PAYLOAD)
    kinds = [v[0] for v in verdicts]
    good = [v for v in verdicts if v[0] == "frame"]
    requests = {int(t) for t in P.REQUEST_TYPES}
    refused = sum(
        1 for _, ver, t, _, _ in good if (ver != 1 and t != P.MsgType.HELLO) or (ver == 1 and t not in requests)
    )
    board = start_firmware(_launcher("asan"))
    try:
        r = Raw(board.path)
        got = bytearray()
        stop = threading.Event()

        def drain() -> None:  # the board's answers must not fill the pty while we write
            while not stop.is_set():
                got.extend(r.s.read(max(1, r.s.in_waiting)))

        t = threading.Thread(target=drain, daemon=True)
        r.s.timeout = 0.05
        t.start()
        for i in range(0, len(stream), 4096):
            r.s.write(stream[i : i + 4096])
        time.sleep(0.3)
        stop.set()
        t.join()
        r.s.timeout = 5
        r.dec = P.FrameDecoder()
        st = r.ok(P.MsgType.STATS)
        answers = [x for x in P.FrameDecoder().feed(bytes(got)) if isinstance(x, P.Frame)]
        r.s.close()
    finally:
        _stop_clean(board)
    tail = stream.split(b"\x00")[-1]
    assert len(tail) <= P.max_encoded_size(8 + BUILD_MAX_PAYLOAD), "the reference counts a long tail as a resync"
    assert st.frames_rx == len(good) + 1  # + the STATS request
    assert st.crc_errors == kinds.count("crc") > 50
    assert st.truncated == kinds.count("truncated") > 50
    assert st.malformed == kinds.count("malformed") + refused and kinds.count("malformed") > 20
    assert st.resyncs == kinds.count("resync") > 5
    assert len(answers) == len(good)  # every good frame answered, once, in order
    assert [a.seq for a in answers] == [g[3] for g in good]


def test_the_next_good_frame_after_damaged_requests_is_answered() -> None:
    board = start_firmware(_launcher("asan"))
    try:
        r = Raw(board.path)
        good = bytes(P.encode_frame(P.MsgType.PING, 1, b"abc"))
        body = bytearray(P.frame_bytes(P.MsgType.PING, 2, b"abc"))
        body[7] ^= 0x04  # a bit error in the payload, as the wire does it: the COBS structure survives
        corrupt = bytes(P.cobs_encode(body)) + b"\x00"
        truncated = good[:-4] + b"\x00"
        r.s.write(b"\x13\x37 line noise \x00" + bytes(corrupt) + truncated + b"\xff" * 1100 + b"\x00" + good)
        f = r.answer(1)
        assert (f.msg_type, f.payload) == (P.MsgType.PONG, b"abc")
        st = r.ok(P.MsgType.STATS)
        assert (st.crc_errors, st.truncated, st.resyncs, st.frames_rx) == (1, 2, 1, 2)
        r.s.close()
    finally:
        _stop_clean(board)


def test_preload_of_another_size_is_not_used() -> None:
    b = _bundle(2, 1, 3, 8, 1)
    image = _model_image(b)
    board = start_firmware(_launcher("asan", preload=image[:-1]))
    try:
        with _client(board, "asan") as c:
            c.hello()
            c.configure(layers=1, input_size=3, hidden=8, outputs=1)
            with pytest.raises(BoardError) as exc:
                load_preloaded(c, image)
            assert exc.value.code == E.LOAD_ORDER  # nothing of that size was preloaded: bytes are missing
            c.load_model(image)  # the normal upload still works
            c.reset_state()
            assert c.step(np.array([256, 0, -256], np.int16)) is not None
    finally:
        _stop_clean(board)


@pytest.mark.parametrize("kind", ["c", "qemu"])
def test_board_process_starts_the_firmware_kinds(kind: str) -> None:
    """hil.board_process.start_board knows the firmware kinds (hil.firmware_process registers them, imported on
    first use)."""
    from hil.board_emulator import EmulatorOptions
    from hil.board_process import start_board

    assert {"c", "qemu"} <= set(board_process.LAUNCHERS)
    _need("host" if kind == "c" else "qemu")
    with pytest.raises(ValueError, match="wire time"):
        start_board(kind, EmulatorOptions(baud=115200))
    with start_board(kind) as board, _client(board, "asan") as c:
        assert c.ping(b"\x00abc") > 0
        assert c.hello().firmware.startswith("legloop-fw")
