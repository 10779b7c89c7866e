"""A faulty cable: the Python emulator's seeded link faults between a host and a board that injects none (the C
firmware on a pty or under QEMU).

    python -m hil.fault_proxy --upstream DEV [--fault-drop P] ... [--fault-seed S] [--exit-with-parent]

opens a new pseudo-terminal for the host, prints ``DEVICE /dev/pts/N`` on stdout (the line the emulator prints, so
:func:`hil.board_process.start_board` with a :class:`FaultProxyLauncher` finds it), opens the board's device ``DEV``
(raw mode, locked against other hosts like a host's own open) and relays bytes both ways until SIGTERM/SIGINT, the
parent's exit (``--exit-with-parent``), or the board's device going away (exit code 1: the host then sees its link
go down, as with a board process that died). ``hil.board_backend`` puts one in front of ``BoardLink(emulate="c" |
"qemu", faults=...)``.

Faults: the options of :func:`hil.board_emulator.add_fault_arguments`, with the emulator's semantics, seeded draws
(:class:`hil.board_emulator.FaultInjector`) and counters, at most one fault per request:

=============  ======================================================================  ================
fault          what the proxy does                                                     host counter
=============  ======================================================================  ================
drop           the request frame is not forwarded (the board never sees it)            timeouts
corrupt        the response is decoded, 1–3 bits flipped (never the length field),     crc_errors
               and encoded again
truncate       a prefix of the encoded response, then the delimiter                    truncated
duplicate      the response is sent twice                                              duplicates
delay          the response is held back by a sample of ``--fault-delay-ms`` (later    none, or timeouts
               responses are not held back by it)                                      + stale
=============  ======================================================================  ================

Each good frame from the host gets one :meth:`FaultInjector.decide` (so ``--fault-scope step`` draws for STEP only),
in arrival order; a fault other than drop is remembered by sequence number and applied to the board's response with
that number when it comes back (CORRUPT and TRUNCATE draw their bits / cut there). With one request outstanding — what
a host does — the draws come in exactly the emulator's order, so a seed replays the same fault sequence on either
board. (If a board answered a request only after the host had sent the next one, that request's decision would be
drawn before the late response's corrupt/truncate draws: the emulator, which answers at once, never interleaves them.)

``--die-after N``: after the N-th RESULT the board sent back, nothing from the host reaches the board any more (the
link goes silent, the board stays alive). ``--reset-after`` is refused: a reboot happens on the board, the protocol
has no request that causes one, and a proxy cannot fake one (the board keeps its state and boot id).

Reporting, so that the host's code for the emulator (``SerialBoardBackend.episode_stats`` → ``link.injected``)
reports the proxy's injections unchanged:

- every STATS_REPLY the board sends is rewritten: the proxy adds what it injected so far to ``fault_drop``,
  ``fault_corrupt``, ``fault_truncate``, ``fault_duplicate`` and ``fault_delay`` (modulo 2^32) and encodes the frame
  again with a correct CRC (``resets`` stays the board's own);
- every INFO gets :attr:`Capability.FAULT_INJECTION` set in its capabilities (the rest of the payload, trailing
  bytes of a newer minor version included, is kept), re-encoded with a correct CRC.

Both rewrites happen before a fault hits the frame (a corrupted STATS_REPLY under ``--fault-scope all`` carries the
counts before its own corruption, as the emulator's does). Frames of another protocol version are not rewritten.

Bytes the proxy does not understand keep flowing, so the board's and the host's resync behaviour is unchanged: the
stream is cut at every 0x00 delimiter; a chunk that is not a good frame (garbage, a damaged frame, a frame of
unknown type) is forwarded as it came; a run longer than the largest frame is forwarded at once and up to its next
delimiter; an incomplete chunk is held until its delimiter arrives, or forwarded as it is when its sender pauses for
:data:`PARTIAL_FLUSH_S` (its remainder then follows unjudged: the proxy cannot drop or fault what it already
forwarded, and draws nothing for it).

The proxy keeps its own handle on the host-side pty's slave open for its lifetime, like the emulator (a host's
close/reopen of the device would otherwise stall, and the master would see a hang-up between hosts).
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import heapq
import os
import select
import signal
import struct
import sys
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.protocol import (
    FRAME_OVERHEAD,
    PROTOCOL_MAX_PAYLOAD,
    VERSION,
    Capability,
    Frame,
    Info,
    MsgType,
    ProtocolError,
    StatsReply,
    classify_chunk,
    cobs_encode,
    encode_frame,
    frame_bytes,
    max_encoded_size,
)
from hil.board_emulator import (
    CORRUPT,
    DELAY,
    DEVICE_PREFIX,
    DROP,
    DUPLICATE,
    NONE,
    TRUNCATE,
    EmulatorOptions,
    FaultConfig,
    FaultInjector,
    add_fault_arguments,
    faults_from_args,
    open_pty,
    write_all,
)
from hil.board_process import BoardLauncher, PythonEmulatorLauncher

# An incomplete chunk is forwarded as it is once its sender has been quiet this long (garbage without a delimiter,
# a frame cut short by its sender). Long enough that a board whose UART trickles bytes (QEMU: ~15 kB/s) is not cut.
PARTIAL_FLUSH_S = 0.1
# The largest chunk between two delimiters that can be a frame: anything longer is passed on unjudged.
MAX_CHUNK = max_encoded_size(FRAME_OVERHEAD + PROTOCOL_MAX_PAYLOAD)
_CAPS = struct.Struct("<H")  # INFO.capabilities at payload offset 2
_FAULT_FIELDS = ("fault_drop", "fault_corrupt", "fault_truncate", "fault_duplicate", "fault_delay")


class UpstreamError(Exception):
    """The board's device cannot be used (no such device, not a terminal, in use); the message says which."""


class UpstreamGone(Exception):
    """The board's device went away (end of file, I/O error: the board process exited)."""


def check_faults(faults: FaultConfig) -> None:
    """Raise ``ValueError`` for fault options a proxy cannot honour (``--reset-after``)."""
    if faults.reset_after is not None:
        raise ValueError(
            f"--reset-after {faults.reset_after}: the fault proxy cannot reboot the board behind it (the protocol has "
            f"no reboot request); emulated reboots need the Python emulator (--emulate python)"
        )


@dataclass
class ProxyStats:
    """What the proxy saw and did. The ``fault_*`` names are those of :class:`StatsReply` (added to the board's)."""

    requests: int = 0  # good frames from the host
    responses: int = 0  # good frames from the board
    steps: int = 0  # RESULT frames from the board
    raw_bytes: int = 0  # bytes relayed without being judged a good frame (garbage, damaged or partial frames)
    fault_drop: int = 0
    fault_corrupt: int = 0
    fault_truncate: int = 0
    fault_duplicate: int = 0
    fault_delay: int = 0


class _Chunker:
    """Cuts a byte stream at 0x00 delimiters: whole chunks (delimiter included) to judge, or bytes to pass on."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.passing = False  # forwarding unjudged bytes up to the next delimiter
        self.last = 0.0  # time of the last bytes fed

    def feed(self, data: bytes, now: float) -> list[tuple[bytes, bool]]:
        """(bytes, whole) pieces in stream order: ``whole`` = a delimited chunk to judge, else bytes to pass on."""
        self.last = now
        out: list[tuple[bytes, bool]] = []
        start, n = 0, len(data)
        while start < n:
            z = data.find(0, start)
            if z < 0:
                rest = data[start:]
                if self.passing:
                    out.append((rest, False))
                elif len(self.buf) + len(rest) > MAX_CHUNK:
                    out.append((bytes(self.buf) + rest, False))
                    self.buf.clear()
                    self.passing = True
                else:
                    self.buf += rest
                break
            piece = data[start : z + 1]
            start = z + 1
            if self.passing:
                out.append((piece, False))
                self.passing = False
            elif self.buf:
                self.buf += piece
                out.append((bytes(self.buf), len(self.buf) <= MAX_CHUNK + 1))
                self.buf.clear()
            else:
                out.append((piece, len(piece) <= MAX_CHUNK + 1))
        return out

    def flush(self, now: float) -> bytes:
        """An incomplete chunk whose sender has paused for :data:`PARTIAL_FLUSH_S` (else b"")."""
        if not self.buf or now - self.last < PARTIAL_FLUSH_S:
            return b""
        data = bytes(self.buf)
        self.buf.clear()
        self.passing = True
        return data

    def due(self) -> float | None:
        """When :meth:`flush` would forward the incomplete chunk (None: nothing held)."""
        return self.last + PARTIAL_FLUSH_S if self.buf else None


class FaultProxy:
    """The proxy's state, without I/O: bytes from the host in → bytes for the board; bytes from the board in →
    (due time, bytes) for the host. :func:`relay` drives it on two file descriptors."""

    def __init__(self, faults: FaultConfig) -> None:
        check_faults(faults)
        self.faults = faults
        self.injector = FaultInjector(faults)
        self.stats = ProxyStats()
        self.dead = False  # --die-after reached: nothing from the host reaches the board any more
        self._pending: dict[int, tuple[int, float]] = {}  # seq -> (fault, delay s) for the response to come
        self._up = _Chunker()
        self._down = _Chunker()
        self._queue: list[tuple[float, int, bytes]] = []  # (due, order, bytes) for the host, held back
        self._order = 0

    # --------------------------------------------------------------------------------------- host -> board

    def from_host(self, data: bytes, now: float) -> bytes:
        """Bytes for the board out of bytes the host wrote."""
        out = bytearray()
        for piece, whole in self._up.feed(data, now):
            if self.dead:
                continue
            item = classify_chunk(piece[:-1]) if whole and len(piece) > 1 else None
            if type(item) is not Frame:
                self.stats.raw_bytes += len(piece)
                out += piece
                continue
            self.stats.requests += 1
            fault, delay = self.injector.decide(item.msg_type)
            if fault == DROP:
                self.stats.fault_drop += 1
                continue
            if fault == NONE:
                self._pending.pop(item.seq, None)
            else:
                self._pending[item.seq] = (fault, delay)
            out += piece
        return bytes(out)

    def flush_host(self, now: float) -> bytes:
        """An incomplete chunk from the host whose sender paused: for the board as it is."""
        data = self._up.flush(now)
        if self.dead:
            return b""
        self.stats.raw_bytes += len(data)
        return data

    # --------------------------------------------------------------------------------------- board -> host

    def from_board(self, data: bytes, now: float) -> None:
        """Take bytes the board wrote; what goes to the host is queued (:meth:`due_output`)."""
        for piece, whole in self._down.feed(data, now):
            item = classify_chunk(piece[:-1]) if whole and len(piece) > 1 else None
            if type(item) is not Frame:
                self.stats.raw_bytes += len(piece)
                self._emit(piece, now)
                continue
            self._response(item, piece, now)

    def flush_board(self, now: float) -> None:
        data = self._down.flush(now)
        if data:
            self.stats.raw_bytes += len(data)
            self._emit(data, now)

    def _response(self, frame: Frame, encoded: bytes, now: float) -> None:
        st = self.stats
        inj = self.injector
        st.responses += 1
        fault, delay = self._pending.pop(frame.seq, (NONE, 0.0))
        payload = self._rewrite(frame)
        out: bytes | bytearray = encoded
        if fault == CORRUPT:
            st.fault_corrupt += 1
            body = frame.payload if payload is None else payload
            out = cobs_encode(inj.corrupt(frame_bytes(frame.msg_type, frame.seq, body, frame.version)))
            out.append(0)
        elif payload is not None:
            out = encode_frame(frame.msg_type, frame.seq, payload, frame.version)
        if fault == TRUNCATE:
            st.fault_truncate += 1
            out = inj.truncate(out)
        due = now
        if fault == DELAY:
            st.fault_delay += 1
            due += delay
        copies = 1
        if fault == DUPLICATE:
            st.fault_duplicate += 1
            copies = 2
        for _ in range(copies):
            self._emit(bytes(out), due)
        if frame.msg_type == MsgType.RESULT:
            st.steps += 1
            if self.faults.die_after is not None and st.steps >= self.faults.die_after:
                self.dead = True

    def _rewrite(self, frame: Frame) -> bytes | None:
        """The payload with the proxy's reporting applied (STATS_REPLY, INFO of this version), or None."""
        if frame.version != VERSION:
            return None
        if frame.msg_type == MsgType.STATS_REPLY:
            try:
                reply: StatsReply = StatsReply.decode(frame.payload)  # type: ignore[assignment]
            except ProtocolError:
                return None
            for name in _FAULT_FIELDS:
                setattr(reply, name, (getattr(reply, name) + getattr(self.stats, name)) & 0xFFFFFFFF)
            return reply.encode()
        if frame.msg_type == MsgType.INFO and len(frame.payload) >= Info.FIXED:
            p = bytearray(frame.payload)
            (caps,) = _CAPS.unpack_from(p, 2)
            _CAPS.pack_into(p, 2, caps | Capability.FAULT_INJECTION)
            return bytes(p)
        return None

    def _emit(self, data: bytes, due: float) -> None:
        heapq.heappush(self._queue, (due, self._order, data))
        self._order += 1

    def next_due(self) -> float | None:
        """The earliest time something must happen without new input (output due, an incomplete chunk to flush)."""
        times = [t for t in (self._up.due(), self._down.due()) if t is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    def due_output(self, now: float) -> list[bytes]:
        """Everything for the host that is due by ``now``, in order (each element one write)."""
        out = []
        q = self._queue
        while q and q[0][0] <= now:
            out.append(heapq.heappop(q)[2])
        return out


# ------------------------------------------------------------------------------------------------ I/O


def open_upstream(path: str) -> int:
    """The board's device opened read/write, non-blocking, raw, locked against other hosts, its input flushed."""
    if not os.path.exists(path):
        raise UpstreamError(f"--upstream {path}: no such device (start the board first and pass the device it prints)")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise UpstreamError(f"--upstream {path}: cannot open: {exc.strerror or exc}") from None
    try:
        if not os.isatty(fd):
            raise UpstreamError(f"--upstream {path}: not a terminal (expected a serial device or a pty)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UpstreamError(f"--upstream {path} is in use by another process (exclusive open failed)") from None
            raise
        tty.setraw(fd)  # no echo, no line editing, no CR/LF mapping, no XON/XOFF, no signals from bytes
        termios.tcflush(fd, termios.TCIFLUSH)  # what the board sent while nobody listened is not for this host
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read(fd: int) -> bytes | None:
    """Bytes from ``fd``; None if nothing was there; b"" at end of file or an I/O error (the other end is gone)."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def relay(
    host_fd: int,
    board_fd: int,
    proxy: FaultProxy,
    *,
    stop_fd: int | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Relay between the host's side (a pty master) and the board's device until ``stop_fd`` is readable,
    ``alive()`` returns False, the host's side reaches end of file, or a signal handler raises. Raises
    :class:`UpstreamGone` when the board's device does."""
    watch = [host_fd, board_fd] if stop_fd is None else [host_fd, board_fd, stop_fd]
    check_every = 0.5 if alive is not None else None
    for fd in (host_fd, board_fd):
        os.set_blocking(fd, False)
    while True:
        due = proxy.next_due()
        timeout = check_every
        if due is not None:
            wait = max(0.0, due - time.monotonic())
            timeout = wait if timeout is None else min(wait, timeout)
        ready, _, _ = select.select(watch, [], [], timeout)
        if alive is not None and not alive():
            return
        if stop_fd is not None and stop_fd in ready:
            return
        if host_fd in ready:
            data = _read(host_fd)
            if data == b"":
                return
            if data:
                out = proxy.from_host(data, time.monotonic())
                if out:
                    write_all(board_fd, out)
        if board_fd in ready:
            data = _read(board_fd)
            if data == b"":
                raise UpstreamGone("the board's device went away (end of file or I/O error: the board exited?)")
            if data:
                proxy.from_board(data, time.monotonic())
        now = time.monotonic()
        partial = proxy.flush_host(now)
        if partial:
            write_all(board_fd, partial)
        proxy.flush_board(now)
        for chunk in proxy.due_output(now):
            write_all(host_fd, chunk)


# ------------------------------------------------------------------------------------------------ launching


class FaultProxyLauncher(BoardLauncher):
    """``python -m hil.fault_proxy --upstream DEV`` (kind ``"proxy"``) for :func:`hil.board_process.start_board`,
    with the fault options of the :class:`EmulatorOptions` it is started with (anything else is refused: the proxy
    relays at full speed and models no board)."""

    kind = "proxy"

    def __init__(self, upstream: str) -> None:
        self.upstream = str(upstream)

    def argv(self, options: EmulatorOptions) -> list[str]:
        faults = options.faults
        check_faults(faults)
        if options.argv() != faults.argv():
            raise ValueError(
                "the fault proxy takes fault options only (no --baud, clock or board limits: it relays at full speed "
                "and the board behind it reports its own)"
            )
        return [
            sys.executable,
            "-m",
            "hil.fault_proxy",
            "--upstream",
            self.upstream,
            *faults.argv(),
            "--exit-with-parent",
        ]

    def env(self) -> dict[str, str]:
        return PythonEmulatorLauncher().env()  # this checkout on PYTHONPATH, unbuffered


class _Shutdown(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the relay loop."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hil.fault_proxy",
        description="Relay the legloop board protocol between a new pseudo-terminal (the host's) and a board's device, "
        "injecting the emulator's seeded link faults.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--upstream", required=True, metavar="DEV", help="the board's device (e.g. its /dev/pts/N)")
    add_fault_arguments(parser)
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    args = parser.parse_args(argv)
    try:
        proxy = FaultProxy(faults_from_args(args))
        board_fd = open_upstream(args.upstream)
    except (ValueError, UpstreamError) as exc:
        print(f"fault proxy: error: {exc}", file=sys.stderr)
        return 2

    def _stop(signum: int, frame: object) -> None:
        raise _Shutdown

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    master = slave = -1
    code = 0
    try:
        master, slave, path = open_pty()
        print(f"{DEVICE_PREFIX}{path}", flush=True)
        parent = os.getppid()
        alive = (lambda: os.getppid() == parent) if args.exit_with_parent else None
        relay(master, board_fd, proxy, alive=alive)
    except _Shutdown:
        pass
    except UpstreamGone as exc:
        print(f"fault proxy: {args.upstream}: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in (master, slave, board_fd):
            if fd >= 0:
                os.close(fd)
    return code


if __name__ == "__main__":
    sys.exit(main())
