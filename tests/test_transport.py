"""pyserial transport: loop://, socket:// and pty round trips, clear errors for a missing or busy port and a dead
peer, and the link counters on injected garbage (each kind of bad input lands in exactly one counter)."""

from __future__ import annotations

import os
import time
import tty

import numpy as np
import pytest

from firmware_bridge import protocol as P
from firmware_bridge.board_client import BoardClient
from firmware_bridge.transport import (
    DEFAULT_MARGIN_S,
    LinkCounters,
    LinkDown,
    PortInUse,
    PortNotFound,
    SerialTransport,
)
from hil.board_emulator import InProcessBoard

SLACK_S = 5.0  # a loaded 2-core machine (pytest -n 2, numba compiling beside): where a test only needs "an answer"


@pytest.fixture
def pty_pair():
    """A raw pty: (master fd held by the test, slave path)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.close(slave)
    yield master, path
    try:
        os.close(master)
    except OSError:
        pass


def _only(c: LinkCounters, **expected: int) -> None:
    got = {k: v for k, v in c.as_dict().items() if k not in ("frames_sent", "frames_received") and v}
    assert got == expected, c


# ------------------------------------------------------------------------------------------------ round trips


def test_loop_url_round_trip() -> None:
    with SerialTransport("loop://", initial_seq=65535) as t:
        payload = bytes(range(256)) * 2
        frame = t.request(P.MsgType.PING, payload, timeout_s=SLACK_S)  # loop:// hands back our own request
        assert frame is not None and frame.msg_type == P.MsgType.PING and frame.payload == payload
        assert frame.seq == 65535 and t.next_seq == 0  # wraps at 2^16
        assert t.counters.frames_sent == t.counters.frames_received == 1
        _only(t.counters)


def test_socket_url_round_trip_with_the_emulator() -> None:
    with InProcessBoard(link="tcp") as board, BoardClient.open(board.url, control_timeout_s=SLACK_S) as client:
        info = client.hello()
        assert info.version_major == P.VERSION and info.boot_id == board.board.boot_id
        assert client.ping(b"\x00hello\x00") > 0
        assert client.stats().frames_rx == 3  # HELLO, PING and this STATS
        _only(client.counters)


def test_pty_round_trip_with_the_emulator() -> None:
    with InProcessBoard(link="pty") as board, BoardClient.open(board.url, control_timeout_s=SLACK_S) as client:
        for n in (0, 1, 246, 247, 254, 255, 1000, 1024):  # 246/247: the frame crosses 254 decoded bytes
            assert client.ping(bytes(n)) > 0
            assert client.ping(bytes(range(1, 256))[: n % 255] * 4) > 0
        _only(client.counters)


def test_spy_url_round_trip(tmp_path) -> None:
    log = tmp_path / "spy.txt"
    with InProcessBoard(link="pty") as board:
        with BoardClient.open(f"spy://{board.url}?file={log}", control_timeout_s=SLACK_S) as client:
            assert client.hello().firmware.startswith("legloop")
        assert log.stat().st_size > 0  # spy:// logged the exchange


def test_deadline_is_wire_time_plus_margin() -> None:
    with SerialTransport("loop://", baudrate=115200) as t:
        assert t.exchange_time(10, 22) == pytest.approx((20 + 32) * 10 / 115200 + DEFAULT_MARGIN_S)
        assert t.wire_time(52) == pytest.approx(4.514e-3, rel=1e-3)


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_device_path_names_it_and_suggests_the_emulator() -> None:
    with pytest.raises(PortNotFound, match=r"/dev/ttyLEGLOOP-missing: no such device.*legloop board emulate"):
        SerialTransport("/dev/ttyLEGLOOP-missing")


def test_port_in_use_names_the_path(pty_pair) -> None:
    _, path = pty_pair
    with SerialTransport(path):
        with pytest.raises(PortInUse, match=f"{path} is in use by another process"):
            SerialTransport(path)
    SerialTransport(path).close()  # free again after the first host closed it


def test_closed_transport_raises_link_down() -> None:
    t = SerialTransport("loop://")
    t.close()
    t.close()  # idempotent
    with pytest.raises(LinkDown, match="closed"):
        t.send(P.MsgType.PING)


def test_peer_gone_on_a_pty_raises_link_down_within_milliseconds(pty_pair) -> None:
    master, path = pty_pair
    with SerialTransport(path) as t:
        seq = t.send(P.MsgType.PING)
        os.close(master)
        t0 = time.monotonic()
        with pytest.raises(LinkDown, match=path):
            t.receive(seq, time.monotonic() + 5.0)
        assert time.monotonic() - t0 < 0.2
        with pytest.raises(LinkDown):
            t.send(P.MsgType.PING)


def test_peer_gone_on_a_socket_raises_link_down() -> None:
    board = InProcessBoard(link="tcp")
    with SerialTransport(board.url) as t:
        assert t.request(P.MsgType.PING, timeout_s=SLACK_S) is not None
        board.close()
        t0 = time.monotonic()
        with pytest.raises(LinkDown):
            t.request(P.MsgType.PING, timeout_s=5.0)
        assert time.monotonic() - t0 < 1.0


# ------------------------------------------------------------------------------------------------ counters


def test_counters_on_injected_garbage_loopback() -> None:
    """loop:// echoes what we write: inject bad frames and stray responses, check each lands in one counter."""
    with SerialTransport("loop://", initial_seq=100, max_payload=256) as t:
        good = t.request(P.MsgType.PING, timeout_s=SLACK_S)  # seq 100, answered by its own echo
        assert good is not None and good.seq == 100

        t.write_raw(bytes(P.encode_frame(P.MsgType.PONG, 100)))  # a second answer to 100
        t.write_raw(bytes(P.encode_frame(P.MsgType.PONG, 7)))  # a number never sent
        t.write_raw(b"\x55" * 1000 + b"\x00")  # a run longer than any frame of <= 256 bytes of payload
        t.drain(0.05)
        _only(t.counters, duplicates=1, seq_gaps=1, resyncs=1)

        before = t.counters.copy()
        t.write_raw(b"\x11\x22\x33\x00")  # a fragment: truncated, and it ends the wait of the next request
        assert t.request(P.MsgType.PING, timeout_s=SLACK_S) is None
        t.drain(0.05)  # ... whose own echo then arrives late: stale
        _only(t.counters - before, truncated=1, stale=1)

        before = t.counters.copy()
        bad = bytearray(P.frame_bytes(P.MsgType.PONG, t.next_seq))
        bad[-1] ^= 0x40
        t.write_raw(bytes(P.cobs_encode(bytes(bad))) + b"\x00")
        assert t.request(P.MsgType.PING, timeout_s=SLACK_S) is None
        t.drain(0.05)
        _only(t.counters - before, crc_errors=1, stale=1)

        before = t.counters.copy()
        long = bytearray(P.frame_bytes(P.MsgType.PONG, 5, b"abc")[:-2]) + b"extra"  # more bytes than the header says
        crc = P.crc16(bytes(long))
        t.write_raw(bytes(P.cobs_encode(bytes(long) + crc.to_bytes(2, "little"))) + b"\x00")
        t.drain(0.05)
        _only(t.counters - before, malformed=1)

        before = t.counters.copy()
        t.write_raw(bytes(P.encode_frame(P.MsgType.PONG, t.next_seq, version=2)))  # another protocol version
        assert t.request(P.MsgType.PING, timeout_s=SLACK_S) is None
        t.drain(0.05)
        _only(t.counters - before, malformed=1, stale=1)


def test_timeout_and_a_partial_frame_at_the_deadline(pty_pair) -> None:
    master, path = pty_pair
    with SerialTransport(path, baudrate=921600, margin_s=0.02) as t:
        deadline_s = t.exchange_time(0, 0)
        t0 = time.monotonic()
        assert t.request(P.MsgType.PING) is None  # nobody answers
        elapsed = time.monotonic() - t0
        assert deadline_s <= elapsed < deadline_s + SLACK_S
        _only(t.counters, timeouts=1)
        os.read(master, 1000)  # the request

        # half of a late response is in the buffer at the deadline: dropped, and its tail is skipped
        before = t.counters.copy()
        seq = t.next_seq
        late = bytes(P.encode_frame(P.MsgType.PONG, seq, b"late"))
        os.write(master, late[:5])
        assert t.request(P.MsgType.PING) is None
        _only(t.counters - before, timeouts=1, resyncs=1)
        os.write(master, late[5:] + late)  # the tail is skipped, not judged; the whole copy after it is stale
        before = t.counters.copy()
        t.drain(0.05)
        _only(t.counters - before, stale=1)


def test_every_verdict_maps_to_one_counter() -> None:
    counters = LinkCounters()
    assert counters.lost == 0 and set(counters.as_dict()) >= {
        "crc_errors",
        "truncated",
        "malformed",
        "timeouts",
        "duplicates",
        "stale",
        "seq_gaps",
        "resyncs",
        "retries",
    }


def test_step_round_trip_has_no_per_step_surprises() -> None:
    """A STEP round trip over the in-process emulator returns a reused reply and counts nothing bad."""
    rng = np.random.default_rng(0)
    from firmware_bridge.weight_image import build_image

    L, I, H, O = 1, 3, 8, 2
    net = build_image(
        [rng.integers(-50, 50, (3 * H, I), dtype=np.int8)],
        [rng.integers(-50, 50, (3 * H, H), dtype=np.int8)],
        [rng.integers(-50, 50, 3 * H, dtype=np.int8)],
    )
    image = P.build_model_image(net, rng.integers(-50, 50, (O, H), dtype=np.int8), np.array([1, -1], np.int32))
    with (
        InProcessBoard(link="pty") as board,
        BoardClient.open(board.url, control_timeout_s=SLACK_S, step_timeout_s=SLACK_S) as client,
    ):
        client.hello()
        client.configure(L, I, H, O)
        client.load_model(image)
        reply = client.step(np.array([1, 2, 3], np.int16))
        assert reply is not None and reply.flags & P.ResultFlags.FIRST_STEP
        assert client.step(np.array([1, 2, 3], np.int16)) is reply and reply.flags == 0  # reused, not reallocated
        _only(client.counters)
