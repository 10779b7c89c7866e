"""Frames over a pyserial port: send a request, receive the response to its sequence number before a deadline.

One interface, :class:`Transport`; one implementation, :class:`SerialTransport`, over
``serial.serial_for_url`` — so a device path (``/dev/ttyACM0``, the ``/dev/pts/N`` of ``legloop board emulate``),
``loop://``, ``socket://host:port`` and ``spy://…`` all work. On a plain POSIX port it polls and reads the file
descriptor itself (pyserial's ``read`` re-arms ``select`` per call and setting ``timeout`` re-applies termios, which
costs tens of µs per step); other URL handlers go through pyserial's ``read``/``write``.

Deadlines come from wire time: at 8N1 a byte takes 10 bit times, so a request/response exchange cannot finish before
``wire(request) + wire(response)``; the transport waits that long plus a margin (:data:`DEFAULT_MARGIN_S`).

Every way a response can go wrong lands in exactly one :class:`LinkCounters` field. While a request is waiting, a
damaged frame (CRC, truncated, malformed) ends the wait at once as lost — in a request/response link with one
request outstanding it is that request's response — so a damaged response is counted once, not also as a timeout.
Errors: :class:`PortNotFound`, :class:`PortInUse`, :class:`LinkDown` (EOF/EIO/hang-up: raised within milliseconds,
never a hang), all :class:`LinkError`.
"""

from __future__ import annotations

import abc
import errno
import os
import queue
import select
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import cast

import serial

from .protocol import (
    PROTOCOL_MAX_PAYLOAD,
    VERSION,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    encode_frame,
    wire_size,
    wire_time,
)

DEFAULT_BAUDRATE = 921600
# Margin on top of the wire time of an exchange. 4 ms covers a full-speed USB frame each way (1 ms) plus a Python
# host's wake-up tail on a shared machine (p99.9 ≈ 2.5 ms, ../shared/facts/hil.md), and stays under the 5 ms period
# of a 200 Hz loop: a STEP answer later than that is useless to the loop anyway. Raise it for an FTDI adapter at its
# default 16 ms latency timer (or lower the timer to 1 ms).
DEFAULT_MARGIN_S = 0.004
EMULATE_HINT = "start a virtual board with `legloop board emulate` and use the device path it prints"

# per-sequence-number state
_UNUSED, _IN_FLIGHT, _ANSWERED, _ABANDONED = 0, 1, 2, 3


class LinkError(Exception):
    """The link cannot be used (the message names the port)."""


class PortNotFound(LinkError):
    """The device path does not exist."""


class PortInUse(LinkError):
    """Another process holds the port (exclusive open failed)."""


class LinkDown(LinkError):
    """The other side went away (EOF, EIO, hang-up, closed port)."""


@dataclass
class LinkCounters:
    """Host-side link counters; each injected fault maps to exactly one field.

    ``crc_errors``  a complete frame whose CRC-16 does not match
    ``truncated``   a delimited frame shorter than its header says, or shorter than a header
    ``malformed``   bad COBS or more bytes than the header says; a good frame of another protocol version or of an
                    unexpected type for its sequence number
    ``timeouts``    nothing answered a request before its deadline
    ``duplicates``  a response whose sequence number was already answered
    ``stale``       a response to a request that was already given up (timed out or lost), arriving late
    ``seq_gaps``    a response whose sequence number matches no request this host sent (a board bug, or a previous
                    session's leftovers)
    ``resyncs``     bytes skipped to regain sync: a run longer than the largest frame, or a partial frame dropped
                    at a timeout
    ``retries``     requests sent again after a loss (control requests only; STEP is never retried)
    """

    frames_sent: int = 0
    frames_received: int = 0  # frames with a good CRC, whatever came of them
    crc_errors: int = 0
    truncated: int = 0
    malformed: int = 0
    timeouts: int = 0
    duplicates: int = 0
    stale: int = 0
    seq_gaps: int = 0
    resyncs: int = 0
    retries: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def copy(self) -> LinkCounters:
        return LinkCounters(**asdict(self))

    def __sub__(self, other: LinkCounters) -> LinkCounters:
        a, b = asdict(self), asdict(other)
        return LinkCounters(**{k: a[k] - b[k] for k in a})

    @property
    def lost(self) -> int:
        """Requests that got no usable answer: timeouts + damaged responses."""
        return self.timeouts + self.crc_errors + self.truncated + self.malformed


class Transport(abc.ABC):
    """Frames to and from a board: what :class:`firmware_bridge.board_client.BoardClient` needs from a link."""

    counters: LinkCounters
    baudrate: float
    margin_s: float
    url: str

    @abc.abstractmethod
    def send(self, msg_type: int, payload: bytes | bytearray | memoryview = b"", *, version: int = VERSION) -> int:
        """Send one request; returns its sequence number. ``version``: the header's version byte (to probe)."""

    @abc.abstractmethod
    def receive(self, seq: int | None, deadline: float, *, any_version: bool = False) -> Frame | None:
        """The frame answering ``seq`` by ``deadline`` (``time.monotonic()``), or None if it was lost."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the port (idempotent)."""

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire at this transport's baud rate (8N1)."""
        return wire_time(nbytes, self.baudrate)

    def exchange_time(self, request_payload: int, response_payload: int) -> float:
        """Deadline of an exchange: wire time of both frames (largest COBS size) plus the margin."""
        return wire_time(wire_size(request_payload) + wire_size(response_payload), self.baudrate) + self.margin_s

    def request(
        self,
        msg_type: int,
        payload: bytes | bytearray | memoryview = b"",
        *,
        response_payload: int = 0,
        timeout_s: float | None = None,
        any_version: bool = False,
        version: int = VERSION,
    ) -> Frame | None:
        """Send a request and wait for its response; None when lost (timeout or damaged response).

        The deadline is ``timeout_s`` if given, else :meth:`exchange_time` for the payload sizes. ``any_version``
        accepts a response of another protocol version (HELLO); ``version`` sets the request's version byte.
        """
        t0 = time.monotonic()
        if timeout_s is None:
            timeout_s = self.exchange_time(len(payload), response_payload)
        seq = self.send(msg_type, payload, version=version)
        return self.receive(seq, t0 + timeout_s, any_version=any_version)

    def drain(self, duration_s: float) -> None:
        """Read for ``duration_s``, counting whatever arrives (late, duplicate or damaged frames)."""
        self.receive(None, time.monotonic() + duration_s)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialTransport(Transport):
    """:class:`Transport` over any pyserial URL.

    Parameters
    ----------
    url
        Device path or pyserial URL (``loop://``, ``socket://host:port``, ``spy://…``).
    baudrate
        Line rate; it sets the wire-time part of every deadline (a pseudo-terminal ignores it).
    margin_s
        Added to the wire time of an exchange to make its deadline (see :data:`DEFAULT_MARGIN_S`).
    exclusive
        Lock a device path against other processes (``flock``), so two hosts cannot share a board.
    initial_seq
        First sequence number; random by default so a previous session's late responses do not match.
    max_payload
        Largest response payload accepted (bounds the receive buffer).
    """

    def __init__(
        self,
        url: str,
        baudrate: float = DEFAULT_BAUDRATE,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        exclusive: bool = True,
        initial_seq: int | None = None,
        max_payload: int = PROTOCOL_MAX_PAYLOAD,
    ) -> None:
        if not baudrate > 0:
            raise ValueError(f"baudrate must be > 0, got {baudrate}")
        if not margin_s >= 0:
            raise ValueError(f"margin_s must be >= 0, got {margin_s}")
        self.url = str(url)
        self.baudrate = float(baudrate)
        self.margin_s = float(margin_s)
        self.counters = LinkCounters()
        self._decoder = FrameDecoder(max_payload)
        self._pending: deque[Frame | FrameError] = deque()
        self._state = bytearray(1 << 16)
        self._seq = (int.from_bytes(os.urandom(2), "little") if initial_seq is None else int(initial_seq)) & 0xFFFF
        self._closed = False
        self._ser = _open(self.url, baudrate, exclusive)
        # Fast path on a plain POSIX port: poll + os.read/os.write on its descriptor. URL handlers (loop, socket,
        # spy) keep pyserial's read/write so their semantics (and spy's logging) hold.
        self._fd: int | None = None
        if type(self._ser) is serial.Serial and hasattr(self._ser, "fd"):
            self._fd = self._ser.fd
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN | select.POLLERR | select.POLLHUP)
            self._wpoll = select.poll()
            self._wpoll.register(self._fd, select.POLLOUT | select.POLLERR | select.POLLHUP)
        self._timeout_set: float | None = None
        try:
            self._ser.reset_input_buffer()  # a pty keeps what a board sent while nobody listened
        except (serial.SerialException, OSError, NotImplementedError):
            pass

    # ------------------------------------------------------------------------------------------- properties

    @property
    def serial(self) -> serial.SerialBase:
        """The underlying pyserial object."""
        return self._ser

    @property
    def next_seq(self) -> int:
        """The sequence number the next request will carry."""
        return self._seq

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------------------------------------ I/O

    def send(self, msg_type: int, payload: bytes | bytearray | memoryview = b"", *, version: int = VERSION) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        self._state[seq] = _IN_FLIGHT
        self._write(encode_frame(msg_type, seq, payload, version))
        self.counters.frames_sent += 1
        return seq

    def write_raw(self, data: bytes | bytearray) -> None:
        """Write bytes as they are (tests: garbage, hand-made frames)."""
        self._write(data)

    def receive(self, seq: int | None, deadline: float, *, any_version: bool = False) -> Frame | None:
        pending = self._pending
        while True:
            while pending:
                item = pending.popleft()
                verdict = self._judge(item, seq, any_version)
                if verdict is not None:
                    return cast(Frame, verdict) if verdict is not _LOST else None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if seq is not None:
                    self.counters.timeouts += 1
                    self._state[seq] = _ABANDONED
                    # A partial frame now is most likely this response arriving late: drop it and skip to its end.
                    if self._decoder.discard_partial():
                        self.counters.resyncs += 1
                return None
            data = self._read(remaining)
            if data:
                pending.extend(self._decoder.feed(data))

    def _judge(self, item: Frame | FrameError, seq: int | None, any_version: bool) -> Frame | object | None:
        """Count one receive verdict; return the awaited frame, _LOST, or None to keep waiting."""
        c = self.counters
        if type(item) is Frame:
            c.frames_received += 1
            s = item.seq
            if s == seq:
                if item.version != VERSION and not any_version:
                    c.malformed += 1
                    self._state[s] = _ABANDONED
                    return _LOST
                self._state[s] = _ANSWERED
                return item
            state = self._state[s]
            if state == _ANSWERED:
                c.duplicates += 1
            elif state == _ABANDONED:
                c.stale += 1
                self._state[s] = _ANSWERED
            else:
                c.seq_gaps += 1
            return None
        kind = item.kind
        if kind is FrameErrorKind.RESYNC:
            c.resyncs += 1
            return None
        if kind is FrameErrorKind.CRC:
            c.crc_errors += 1
        elif kind is FrameErrorKind.TRUNCATED:
            c.truncated += 1
        else:
            c.malformed += 1
        if seq is None:
            return None
        self._state[seq] = _ABANDONED
        return _LOST

    def _read(self, timeout: float) -> bytes:
        if self._closed:
            raise LinkDown(f"{self.url}: the port is closed")
        fd = self._fd
        if fd is not None:
            events = self._poll.poll(timeout * 1000.0)
            if not events:
                return b""
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return b""
            except OSError as exc:
                raise LinkDown(f"{self.url}: read failed ({exc.strerror or exc}): the board went away") from None
            if not data:
                raise LinkDown(f"{self.url}: end of file: the board went away")
            return data
        ser = self._ser
        try:
            if self._timeout_set != timeout:
                ser.timeout = timeout
                self._timeout_set = timeout
            data = ser.read(1)
            if data:
                n = ser.in_waiting
                if n:
                    data += ser.read(n)
            return data
        except (serial.SerialException, OSError) as exc:
            raise LinkDown(f"{self.url}: read failed ({exc}): the board went away") from None

    def _write(self, data: bytes | bytearray) -> None:
        if self._closed:
            raise LinkDown(f"{self.url}: the port is closed")
        fd = self._fd
        if fd is None:
            try:
                self._ser.write(data)
            except (serial.SerialException, OSError, queue.Full) as exc:
                raise LinkDown(
                    f"{self.url}: write failed ({exc or type(exc).__name__}): the board does not read"
                ) from None
            return
        view = memoryview(data)
        give_up = None
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise LinkDown(f"{self.url}: write failed ({exc.strerror or exc}): the board went away") from None
            # Output buffer full: the board is not reading. Wait a little, then call the link down.
            now = time.monotonic()
            if give_up is None:
                give_up = now + 1.0
            elif now > give_up:
                raise LinkDown(f"{self.url}: write blocked for 1 s: the board does not read")
            events = self._wpoll.poll(50)
            if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events):
                raise LinkDown(f"{self.url}: hang-up while writing: the board went away")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._ser.close()
        except (serial.SerialException, OSError):
            pass

    def __repr__(self) -> str:
        return f"SerialTransport({self.url!r}, baudrate={self.baudrate:g}, margin_s={self.margin_s})"


_LOST = object()


def _open(url: str, baudrate: float, exclusive: bool) -> serial.SerialBase:
    """``serial_for_url`` with errors that name the port and say what to do."""
    is_url = "://" in url
    # A write that cannot complete in 1 s means the other side stopped reading (loop:// has a 4 KiB queue, a socket
    # a full window): fail instead of hanging.
    kwargs = {"baudrate": int(baudrate), "timeout": 0, "write_timeout": 1.0}
    if not is_url:
        kwargs["exclusive"] = exclusive
    if not is_url and not os.path.exists(url):
        raise PortNotFound(f"{url}: no such device; {EMULATE_HINT}")
    try:
        return serial.serial_for_url(url, **kwargs)
    except serial.SerialException as exc:
        err = getattr(exc, "errno", None)
        text = str(exc)
        if err == errno.ENOENT or "No such file" in text:
            raise PortNotFound(f"{url}: no such device; {EMULATE_HINT}") from None
        if err in (errno.EWOULDBLOCK, errno.EAGAIN) or "exclusively lock" in text:
            raise PortInUse(
                f"{url} is in use by another process (exclusive open failed): close the other host first"
            ) from None
        if err == errno.EACCES:
            raise LinkError(f"{url}: permission denied (add yourself to the 'dialout' group)") from None
        raise LinkError(f"{url}: cannot open: {text}") from None
    except ValueError as exc:
        raise LinkError(f"{url}: {exc}") from None
