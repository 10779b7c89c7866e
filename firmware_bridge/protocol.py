"""The legloop board protocol: byte-level codec for the host ↔ board serial link (pure encode/decode, no I/O).

The normative description, with worked examples a C programmer can implement from, is ``docs/protocol.md``; this
module is its reference implementation and the tests check the page's examples against it.

Layers, bottom up:

* **Framing** — every frame travels COBS-encoded (Consistent Overhead Byte Stuffing) and is followed by one 0x00
  delimiter, so a receiver resynchronises by discarding up to the next 0x00.
* **Frame** — the decoded bytes are ``header | payload | CRC``: header ``<BBHH`` = protocol version, message type,
  sequence number, payload length; CRC-16/CCITT-FALSE over header+payload, little-endian. All integers are
  little-endian.
* **Messages** — one small dataclass per message type with ``encode() -> payload bytes`` and
  ``decode(payload) -> message`` that check lengths and ranges and raise :class:`ProtocolError` subclasses naming
  the expected value.

:class:`FrameDecoder` turns any byte chunks into :class:`Frame` objects or typed :class:`FrameError` verdicts; it
never raises on input bytes, never loops without consuming input, and never holds more than one maximum-size
encoded frame.

Speed: a STEP/RESULT exchange costs a few µs of codec per side in CPython — CRC-16 comes from
``binascii.crc_hqx`` (the same polynomial, unreflected, with the 0xFFFF seed passed in; a table-driven
pure-Python version is kept as :func:`crc16_ccitt_false_table` for reference and tests), and COBS for frames up to
254 bytes swaps zeros and codes in place with ``bytes.find`` instead of per-byte Python.

This module must not import ``hil`` (imports point down the ladder experiments → hil → firmware_bridge).
"""

from __future__ import annotations

import binascii
import enum
import struct
import typing
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

# ------------------------------------------------------------------------------------------------- constants

VERSION = 1  # protocol major version: the header's version byte
VERSION_MINOR = 1  # INFO; minor versions only add types, bits and trailing fields (1.1: SET_GOVERNOR)

HEADER = struct.Struct("<BBHH")  # version, type, seq, payload length
HEADER_SIZE = HEADER.size  # 6
CRC_SIZE = 2
FRAME_OVERHEAD = HEADER_SIZE + CRC_SIZE  # 8 decoded bytes around the payload
PROTOCOL_MAX_PAYLOAD = 4096  # no board may advertise more; hosts size their receive buffer from it
MIN_MAX_PAYLOAD = 128  # no board may advertise less (INFO, STATS and ERROR must fit)
SEQ_MODULO = 1 << 16
THETA_MAX = 511  # Θ register: 10-bit signed, non-negative
K = 8  # EdgeDRNN processing elements: the input is padded to a multiple of K columns, H is a multiple of K
FIRMWARE_MAX = 32  # bytes of the firmware version string in INFO
ERROR_TEXT_MAX = 64  # bytes of the text in ERROR
CRC16_INIT = 0xFFFF
CRC16_POLY = 0x1021


class MsgType(enum.IntEnum):
    """Message types. A response's type is its request's type | 0x80; ERROR (0xFF) may answer any request."""

    HELLO = 0x01
    CONFIGURE = 0x02
    LOAD_BEGIN = 0x03
    LOAD_CHUNK = 0x04
    LOAD_END = 0x05
    RESET_STATE = 0x06
    STEP = 0x07
    SET_THRESHOLDS = 0x08
    STATS = 0x09
    PING = 0x0A
    SET_GOVERNOR = 0x0B  # protocol 1.1
    INFO = 0x81
    CONFIGURE_ACK = 0x82
    LOAD_BEGIN_ACK = 0x83
    LOAD_CHUNK_ACK = 0x84
    LOAD_END_ACK = 0x85
    RESET_STATE_ACK = 0x86
    RESULT = 0x87
    SET_THRESHOLDS_ACK = 0x88
    STATS_REPLY = 0x89
    PONG = 0x8A
    SET_GOVERNOR_ACK = 0x8B
    ERROR = 0xFF


RESPONSE_BIT = 0x80
REQUEST_TYPES = frozenset(t for t in MsgType if t < RESPONSE_BIT)
RESPONSE_TYPES = frozenset(t for t in MsgType if t >= RESPONSE_BIT)


def response_type(request: int) -> int:
    """The success response type of a request type (``request | 0x80``)."""
    return request | RESPONSE_BIT


class ErrorCode(enum.IntEnum):
    """Codes of an ERROR message (what the board could not do)."""

    UNKNOWN_TYPE = 1  # the message type is not a request this board knows
    BAD_LENGTH = 2  # the payload length is wrong for the type (or the configuration, for STEP)
    BAD_VERSION = 3  # the header's version byte is not the board's protocol major version
    BAD_VALUE = 4  # a field is out of range (geometry, thresholds, reserved bits, image size, chunk offset)
    NOT_CONFIGURED = 5  # the request needs CONFIGURE first (also the first sign of a board that rebooted)
    NO_MODEL = 6  # the request needs a model loaded (LOAD_BEGIN … LOAD_END)
    TOO_LARGE = 7  # the configuration exceeds the board's limits (layers, hidden, input, outputs, image bytes)
    BAD_CRC32 = 8  # LOAD_END: the image's CRC-32 differs from LOAD_BEGIN's
    LOAD_ORDER = 9  # LOAD_CHUNK/LOAD_END without LOAD_BEGIN, a gap before a chunk, or LOAD_END before all bytes
    INTERNAL = 10  # the board failed for a reason of its own (the text says which)


class Capability(enum.IntFlag):
    """INFO capabilities bitfield."""

    CYCLE_MODEL = 0x0001  # RESULT.cycles is the EdgeDRNN cycle model's count of the step
    COMPUTE_TIMER = 0x0002  # RESULT.compute_ticks is measured with a timer of INFO.timer_hz
    FAULT_INJECTION = 0x0004  # an emulator that injects faults; STATS fault counters are meaningful
    WIRE_TIME_EMULATION = 0x0008  # an emulator that holds responses back to honour a baud rate
    GOVERNOR = 0x0010  # protocol 1.1: SET_GOVERNOR is implemented (the board governs its thresholds)


class BoardStatus(enum.IntFlag):
    """INFO status bitfield."""

    CONFIGURED = 0x01
    MODEL_LOADED = 0x02
    LOAD_IN_PROGRESS = 0x04


class ResultFlags(enum.IntFlag):
    """RESULT status flags."""

    FIRST_STEP = 0x0001  # the first step after a reset: the bias column was fetched
    OUTPUT_WRAPPED = 0x0002  # an output accumulator wrapped (the exact sum does not fit int32)
    GOVERNED = 0x0004  # the board's governor chose this step's thresholds (SET_GOVERNOR)
    THETA_RAISED = 0x0008  # … and some layer ran above the thresholds in force (CONFIGURE / SET_THRESHOLDS)
    OVER_BUDGET = 0x0010  # … and some layer did not fit even at Θx = Θh = 511: the step may exceed the budget


class GovernorPolicy(enum.IntEnum):
    """SET_GOVERNOR.policy: who chooses the thresholds of each step."""

    OFF = 0  # the thresholds in force, every step (protocol 1.0 behaviour)
    SPLIT = 1  # hil.edgedrnn.predictive's split bound: layer by layer, each priced exactly against the budget
    WORST = 2  # its worst bound: the whole step priced by an upper bound before it runs, in one invocation


class GovernorOptions(enum.IntFlag):
    """SET_GOVERNOR.options."""

    REPORT_THETA = 0x01  # RESULT appends (u16 Θx, u16 Θh) per layer: the thresholds each layer ran with


# ------------------------------------------------------------------------------------------------- errors


class ProtocolError(ValueError):
    """A message or frame field is invalid (the message names the field and the expected value)."""


class PayloadLengthError(ProtocolError):
    """A payload has the wrong length for its message type (a board answers BAD_LENGTH)."""


class FieldValueError(ProtocolError):
    """A field is out of range or a reserved field is non-zero (a board answers BAD_VALUE)."""


# ------------------------------------------------------------------------------------------------- CRCs


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table.append(crc)
    return tuple(table)


CRC16_TABLE = _crc16_table()


def crc16_ccitt_false_table(data: bytes, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE, table-driven in Python (reference for :func:`crc16`; poly 0x1021, init 0xFFFF)."""
    table = CRC16_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def crc16(data: bytes | bytearray | memoryview, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0. ``crc16(b"123456789") == 0x29B1``.

    ``binascii.crc_hqx`` is the same unreflected 0x1021 CRC with the seed passed in, computed in C.
    """
    return binascii.crc_hqx(data, crc)


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/ISO-HDLC (zlib's): the model hash. ``crc32(b"123456789") == 0xCBF43926``."""
    return zlib.crc32(data) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------------- COBS


class CobsError(ProtocolError):
    """Bytes that are not a COBS encoding (a 0x00 inside, or the last block runs past the end)."""


def cobs_encode(data: bytes | bytearray | memoryview) -> bytearray:
    """COBS-encode ``data`` (no delimiter appended). Canonical: a final run of 254 bytes gets no trailing 0x01.

    The result has no 0x00 byte and ``len(data) + 1 + len(data) // 254`` bytes at most.
    """
    data = bytes(data) if not isinstance(data, bytes | bytearray) else data
    n = len(data)
    if n <= 254:
        # No run can exceed 254 bytes, so every code fits one byte: copy the data one position to the right and
        # write each run's code over the zero that ends it (the zero's position becomes the next code's).
        out = bytearray(b"\x00")
        out += data
        last = 0
        find = data.find
        pos = find(0)
        while pos >= 0:
            out[last] = pos + 1 - last
            last = pos + 1
            pos = find(0, last)
        out[last] = n + 1 - last
        return out
    out = bytearray()
    # Annotated: for a bytes | bytearray receiver mypy would join the block type to Sequence[int].
    blocks: Sequence[bytes | bytearray] = data.split(b"\x00")
    final = len(blocks) - 1
    for i, block in enumerate(blocks):
        size = len(block)
        pos = 0
        while size - pos >= 254:
            out.append(0xFF)
            out += block[pos : pos + 254]
            pos += 254
        rest = size - pos
        if rest or size == 0 or i != final:
            out.append(rest + 1)
            out += block[pos:]
    return out


def _cobs_decode(enc: bytes | bytearray) -> tuple[bytearray, bool]:
    """Lenient COBS decode of a non-empty chunk without 0x00: (decoded bytes, complete).

    ``complete`` is False when the last block's code promises more bytes than remain: the decoded bytes are then
    the prefix that was there (what a truncated frame looks like).
    """
    n = len(enc)
    if n <= 255:
        # In-place: the decoded frame is enc[1:] with each later code byte replaced by the zero it stands for. Valid
        # up to 255 encoded bytes: only a leading 0xFF code can be complete there, and it has no implied zero.
        out = bytearray(enc[1:])
        i = enc[0] - 1
        m = n - 1
        while i < m:
            c = out[i]
            if c == 0:  # not COBS (a chunk from FrameDecoder never holds 0x00); stop rather than spin
                return out, False
            out[i] = 0
            i += c
        return out, i == m
    out = bytearray()
    i = 0
    while i < n:
        code = enc[i]
        j = i + code
        if j > n or code == 0:
            out += enc[i + 1 : n]
            return out, False
        out += enc[i + 1 : j]
        i = j
        if code != 0xFF and i < n:
            out.append(0)
    return out, True


def cobs_decode(enc: bytes | bytearray | memoryview) -> bytes:
    """Strict COBS decode of one encoded frame without its delimiter; raises :class:`CobsError` if invalid."""
    enc = bytes(enc)
    if not enc:
        raise CobsError("empty input is not a COBS encoding (the shortest encoding, of b'', is b'\\x01')")
    if 0 in enc:
        raise CobsError(f"COBS data contains 0x00 at offset {enc.index(0)}; 0x00 is the frame delimiter")
    out, complete = _cobs_decode(enc)
    if not complete:
        raise CobsError("the last COBS block runs past the end of the data (truncated)")
    return bytes(out)


def max_encoded_size(decoded_size: int) -> int:
    """Largest COBS encoding of ``decoded_size`` bytes, delimiter not included."""
    return decoded_size + 1 + decoded_size // 254


# ------------------------------------------------------------------------------------------------- frames


def _frame_body(msg_type: int, seq: int, payload: bytes | bytearray | memoryview, version: int) -> bytearray:
    n = len(payload)
    if n > 0xFFFF:
        raise PayloadLengthError(f"payload of {n} bytes does not fit the u16 length field")
    body = bytearray(HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, n))
    body += payload
    crc = binascii.crc_hqx(body, CRC16_INIT)
    body.append(crc & 0xFF)
    body.append(crc >> 8)
    return body


def frame_bytes(
    msg_type: int, seq: int, payload: bytes | bytearray | memoryview = b"", version: int = VERSION
) -> bytes:
    """The decoded frame ``header | payload | CRC-16`` (before COBS); fields are taken modulo their width."""
    return bytes(_frame_body(msg_type, seq, payload, version))


def encode_frame(
    msg_type: int, seq: int, payload: bytes | bytearray | memoryview = b"", version: int = VERSION
) -> bytearray:
    """A frame as it goes on the wire: COBS(header | payload | CRC-16) followed by the 0x00 delimiter."""
    n = len(payload)
    if n > 254 - FRAME_OVERHEAD:
        out = cobs_encode(_frame_body(msg_type, seq, payload, version))
        out.append(0)
        return out
    # Small frame (the control loop's STEP/RESULT): one pass. Lay out placeholder | header | payload | CRC | 0x00,
    # then write each run's COBS code over the zero that starts it; the final 0x00 is the delimiter.
    hdr = HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, n)
    crc = binascii.crc_hqx(payload, binascii.crc_hqx(hdr, CRC16_INIT))
    out = bytearray(1)
    out += hdr
    out += payload
    out.append(crc & 0xFF)
    out.append(crc >> 8)
    out.append(0)
    end = len(out) - 1
    find = out.find
    last = 0
    pos = find(0, 1)
    while pos < end:
        out[last] = pos - last
        last = pos
        pos = find(0, pos + 1)
    out[last] = end - last
    return out


def wire_size(payload_size: int) -> int:
    """Upper bound of the bytes a frame with ``payload_size`` bytes of payload occupies on the wire (+ delimiter)."""
    return max_encoded_size(FRAME_OVERHEAD + payload_size) + 1


def wire_time(nbytes: int, baudrate: float) -> float:
    """Seconds ``nbytes`` take on a UART at 8N1 (10 bits per byte: start, 8 data, stop)."""
    return nbytes * 10.0 / baudrate


@typing.final  # receivers tell a verdict apart with `type(item) is Frame`: a subclass would pass for a FrameError
class Frame:
    """A decoded frame with a good CRC and a consistent length (the version and type are not judged here).

    ``wire_size`` is the number of bytes it took on the wire, delimiter included.
    """

    __slots__ = ("msg_type", "payload", "seq", "version", "wire_size")

    def __init__(self, version: int, msg_type: int, seq: int, payload: bytes, wire_size: int = 0) -> None:
        self.version = version
        self.msg_type = msg_type
        self.seq = seq
        self.payload = payload
        self.wire_size = wire_size

    def __repr__(self) -> str:
        try:
            name = MsgType(self.msg_type).name
        except ValueError:
            name = f"0x{self.msg_type:02X}"
        return f"Frame(v{self.version} {name} seq={self.seq} payload={len(self.payload)} bytes)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and (self.version, self.msg_type, self.seq, self.payload) == (
            other.version,
            other.msg_type,
            other.seq,
            other.payload,
        )

    __hash__ = None  # type: ignore[assignment]


class FrameErrorKind(enum.Enum):
    """What was wrong with a delimited chunk of bytes (each maps to one receive counter)."""

    CRC = "crc"  # a complete frame (length as the header says) whose CRC-16 does not match
    TRUNCATED = "truncated"  # fewer bytes than a header + CRC, or than the header's length says
    MALFORMED = "malformed"  # more bytes than the header says, or a broken COBS block in a long-enough frame
    RESYNC = "resync"  # bytes discarded to regain sync: a run longer than the largest frame, or a dropped partial


class FrameError:
    """A receive verdict other than a good frame; ``nbytes`` = encoded bytes it covered (delimiter excluded)."""

    __slots__ = ("detail", "kind", "nbytes")

    def __init__(self, kind: FrameErrorKind, detail: str, nbytes: int) -> None:
        self.kind = kind
        self.detail = detail
        self.nbytes = nbytes

    def __repr__(self) -> str:
        return f"FrameError({self.kind.value}: {self.detail})"


def classify_chunk(chunk: bytes | bytearray) -> Frame | FrameError:
    """The verdict on one non-empty delimited chunk (COBS-encoded bytes between two 0x00), in the spec's order.

    1. Decode COBS leniently (a short final block yields the bytes that were there).
    2. Fewer than 8 bytes, or fewer than 8 + the header's length → TRUNCATED.
    3. More bytes than 8 + the header's length, or a short final COBS block → MALFORMED.
    4. CRC-16 over header+payload differs from the last two bytes → CRC.
    5. Otherwise a :class:`Frame` (whatever its version and type).
    """
    dec, complete = _cobs_decode(chunk)
    n = len(dec)
    if n < FRAME_OVERHEAD:
        return FrameError(FrameErrorKind.TRUNCATED, f"{n} decoded bytes, shorter than header + CRC (8)", len(chunk))
    version, msg_type, seq, length = HEADER.unpack_from(dec)
    expected = FRAME_OVERHEAD + length
    if n < expected:
        return FrameError(
            FrameErrorKind.TRUNCATED, f"{n} decoded bytes; the header says {expected} (payload {length})", len(chunk)
        )
    if n > expected:
        return FrameError(
            FrameErrorKind.MALFORMED, f"{n} decoded bytes; the header says {expected} (payload {length})", len(chunk)
        )
    if not complete:
        return FrameError(FrameErrorKind.MALFORMED, "the last COBS block runs past the delimiter", len(chunk))
    crc = binascii.crc_hqx(memoryview(dec)[: n - 2], CRC16_INIT)
    got = dec[n - 2] | (dec[n - 1] << 8)
    if crc != got:
        return FrameError(FrameErrorKind.CRC, f"CRC-16 0x{got:04X}, computed 0x{crc:04X}", len(chunk))
    return Frame(version, msg_type, seq, bytes(dec[HEADER_SIZE : n - 2]), len(chunk) + 1)


class FrameDecoder:
    """Incremental receiver: feed it byte chunks of any size, get frames and typed errors back, in order.

    Never raises on input bytes; each call does work linear in its input; the partial-frame buffer never exceeds
    :attr:`max_encoded` (the largest COBS encoding of a frame with ``max_payload`` bytes of payload). A run of bytes
    longer than that without a delimiter is discarded up to the next 0x00 and reported once as RESYNC. Empty chunks
    (consecutive 0x00 bytes) are ignored: a sender may precede a frame with a 0x00 to flush a receiver.

    Parameters
    ----------
    max_payload
        The largest payload this receiver accepts (a board: its INFO.max_payload; a host: the protocol maximum).
    """

    def __init__(self, max_payload: int = PROTOCOL_MAX_PAYLOAD) -> None:
        if not 0 <= max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be 0..65535, got {max_payload}")
        self.max_payload = int(max_payload)
        self.max_encoded = max_encoded_size(FRAME_OVERHEAD + self.max_payload)
        self._buf = bytearray()
        self._skipping = False  # discarding up to the next delimiter
        self.skipped_bytes = 0  # bytes discarded by resyncs, for diagnostics

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (≤ :attr:`max_encoded`)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (no verdict); the next byte starts a new frame."""
        self._buf.clear()
        self._skipping = False

    def discard_partial(self) -> int:
        """Drop a partial frame and skip up to the next delimiter (e.g. after a timeout); returns bytes dropped."""
        n = len(self._buf)
        if n:
            self._buf.clear()
            self._skipping = True
            self.skipped_bytes += n
        return n

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | FrameError]:
        """Consume ``data``; return the verdicts of every chunk it completes (often an empty list)."""
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)
        n = len(data)
        # Fast path, the usual read of a request/response link: exactly one whole frame and its delimiter.
        if n > 1 and not self._buf and not self._skipping and data.find(0) == n - 1 and n - 1 <= self.max_encoded:
            return [classify_chunk(data[:-1])]
        out: list[Frame | FrameError] = []
        start = 0
        buf = self._buf
        limit = self.max_encoded
        while start < n:
            z = data.find(0, start)
            if z < 0:
                rest = n - start
                if self._skipping:
                    self.skipped_bytes += rest
                elif len(buf) + rest > limit:
                    dropped = len(buf) + rest
                    buf.clear()
                    self._skipping = True
                    self.skipped_bytes += dropped
                    out.append(FrameError(FrameErrorKind.RESYNC, f"over {limit} bytes without a delimiter", dropped))
                else:
                    buf += data[start:] if start else data
                break
            if self._skipping:
                self.skipped_bytes += z - start
                self._skipping = False
                start = z + 1
                continue
            chunk: bytes | bytearray
            if buf:
                buf += data[start:z]
                chunk = bytes(buf)
                buf.clear()
            else:
                chunk = data[start:z]
            start = z + 1
            if not chunk:
                continue
            if len(chunk) > limit:
                self.skipped_bytes += len(chunk)
                out.append(FrameError(FrameErrorKind.RESYNC, f"{len(chunk)} bytes between delimiters", len(chunk)))
                continue
            out.append(classify_chunk(chunk))
        return out


# ------------------------------------------------------------------------------------------------- messages

_RANGES = {
    "B": (0, 0xFF),
    "H": (0, 0xFFFF),
    "I": (0, 0xFFFFFFFF),
    "b": (-0x80, 0x7F),
    "h": (-0x8000, 0x7FFF),
    "i": (-0x80000000, 0x7FFFFFFF),
}

MESSAGES: dict[int, type[Message]] = {}


class Message:
    """Base of the message dataclasses: a fixed struct of integer fields (``FIELDS``) plus optional checks.

    Subclasses with variable payloads override :meth:`encode`/:meth:`decode`. ``encode`` validates every field and
    returns the payload bytes; ``decode`` checks the payload length and the fields and returns the message.
    """

    TYPE: ClassVar[int]
    FIELDS: ClassVar[str] = ""  # struct format characters, one per dataclass field, in order
    _STRUCT: ClassVar[struct.Struct]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._STRUCT = struct.Struct("<" + cls.FIELDS)
        if "TYPE" in cls.__dict__:
            MESSAGES[cls.TYPE] = cls

    @classmethod
    def name(cls) -> str:
        return MsgType(cls.TYPE).name

    def _values(self) -> list[int]:
        return [getattr(self, f.name) for f in fields(self)][: len(self.FIELDS)]  # type: ignore[arg-type]

    def _check_fields(self) -> None:
        for f, fmt in zip(fields(self), self.FIELDS, strict=False):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise FieldValueError(f"{self.name()}.{f.name} must be an integer, got {v!r}")
            lo, hi = _RANGES[fmt]
            if not lo <= v <= hi:
                raise FieldValueError(f"{self.name()}.{f.name}={v} out of range {lo}..{hi}")
        self._check()

    def _check(self) -> None:
        """Extra range checks of a message type (raise :class:`FieldValueError`)."""

    def encode(self) -> bytes:
        """The payload bytes (validated)."""
        self._check_fields()
        return self._STRUCT.pack(*self._values())

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Message:
        """Parse and validate a payload of this message type."""
        size = cls._STRUCT.size
        if len(payload) != size:
            raise PayloadLengthError(f"{cls.name()} payload must be {size} bytes, got {len(payload)}")
        msg = cls(*cls._STRUCT.unpack(payload))
        msg._check_fields()
        return msg


def _check_theta(msg: Message, *names: str) -> None:
    for name in names:
        v = getattr(msg, name)
        if v > THETA_MAX:
            raise FieldValueError(
                f"{msg.name()}.{name}={v} does not fit the 10-bit signed threshold register: expected 0..{THETA_MAX}"
            )


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise FieldValueError(f"{what} must be ASCII, got {raw!r}") from None


@dataclass
class Hello(Message):
    """HELLO (host → board): who are you? Empty payload (a board ignores any payload)."""

    TYPE: ClassVar[int] = MsgType.HELLO

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Hello:
        return cls()  # forward compatible: later hosts may send something here


@dataclass
class Info(Message):
    """INFO (board → host): the answer to HELLO. 34 bytes + the firmware version string."""

    TYPE: ClassVar[int] = MsgType.INFO
    FIELDS: ClassVar[str] = "BBHIIIIHBBHHIBB"
    version_major: int = VERSION
    version_minor: int = VERSION_MINOR
    capabilities: int = 0
    boot_id: int = 0  # random at every board start, never 0
    model_hash: int = 0  # CRC-32 of the loaded model image, 0 when none
    clock_hz: int = 0  # accelerator clock
    timer_hz: int = 0  # unit of RESULT.compute_ticks, 0 = no timer
    max_payload: int = MIN_MAX_PAYLOAD
    max_layers: int = 0
    max_outputs: int = 0
    max_hidden: int = 0
    max_input: int = 0
    max_image_bytes: int = 0  # largest model image (weights + output layer) the board holds
    status: int = 0  # BoardStatus bits
    firmware_len: int = 0  # derived from `firmware` on encode
    firmware: str = ""

    FIXED: ClassVar[int] = 34

    def _check(self) -> None:
        if not MIN_MAX_PAYLOAD <= self.max_payload <= PROTOCOL_MAX_PAYLOAD:
            raise FieldValueError(
                f"INFO.max_payload={self.max_payload}: expected {MIN_MAX_PAYLOAD}..{PROTOCOL_MAX_PAYLOAD}"
            )
        raw = self.firmware.encode("ascii", "replace")
        if len(raw) > FIRMWARE_MAX:
            raise FieldValueError(f"INFO.firmware has {len(raw)} bytes; at most {FIRMWARE_MAX}")

    def encode(self) -> bytes:
        self.firmware_len = len(self.firmware.encode("ascii", "replace"))
        self._check_fields()
        return self._STRUCT.pack(*self._values()) + self.firmware.encode("ascii", "replace")

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Info:
        payload = bytes(payload)
        if len(payload) < cls.FIXED:
            raise PayloadLengthError(f"INFO payload must be at least {cls.FIXED} bytes, got {len(payload)}")
        values = cls._STRUCT.unpack_from(payload)
        n = values[-1]
        if len(payload) < cls.FIXED + n:
            raise PayloadLengthError(
                f"INFO payload has {len(payload)} bytes; its firmware string needs {cls.FIXED + n}"
            )
        # Bytes after the string come from a newer minor version: ignored.
        # mypy cannot see that the struct's values stop before `firmware`.
        msg = cls(*values, firmware=_ascii(payload[cls.FIXED : cls.FIXED + n], "INFO.firmware"))  # type: ignore[misc]
        msg._check_fields()
        return msg

    @property
    def configured(self) -> bool:
        return bool(self.status & BoardStatus.CONFIGURED)

    @property
    def model_loaded(self) -> bool:
        return bool(self.status & BoardStatus.MODEL_LOADED)


@dataclass
class Configure(Message):
    """CONFIGURE (host → board): network geometry and thresholds; discards any loaded model. 12 bytes."""

    TYPE: ClassVar[int] = MsgType.CONFIGURE
    FIELDS: ClassVar[str] = "BBHHBBHH"
    layers: int = 1
    flags: int = 0  # none defined in version 1: must be 0
    input_size: int = 1
    hidden: int = K
    outputs: int = 1
    reserved: int = 0
    theta_x: int = 0
    theta_h: int = 0

    def _check(self) -> None:
        if self.flags:
            raise FieldValueError(f"CONFIGURE.flags=0x{self.flags:02X}: protocol 1 defines no flags (expected 0)")
        if self.reserved:
            raise FieldValueError(f"CONFIGURE.reserved={self.reserved}: expected 0")
        _check_theta(self, "theta_x", "theta_h")


@dataclass
class ConfigureAck(Message):
    """CONFIGURE_ACK (board → host): the byte counts the board expects for this geometry. 8 bytes."""

    TYPE: ClassVar[int] = MsgType.CONFIGURE_ACK
    FIELDS: ClassVar[str] = "II"
    weight_image_bytes: int = 0
    model_image_bytes: int = 0


@dataclass
class LoadBegin(Message):
    """LOAD_BEGIN (host → board): size and CRC-32 of the model image to come; unloads the current model. 8 bytes."""

    TYPE: ClassVar[int] = MsgType.LOAD_BEGIN
    FIELDS: ClassVar[str] = "II"
    total: int = 0
    crc32: int = 0


@dataclass
class LoadBeginAck(Message):
    """LOAD_BEGIN_ACK (board → host): echoes the total. 4 bytes."""

    TYPE: ClassVar[int] = MsgType.LOAD_BEGIN_ACK
    FIELDS: ClassVar[str] = "I"
    total: int = 0


@dataclass
class LoadChunk(Message):
    """LOAD_CHUNK (host → board): ``offset`` u32 then 1..max_payload-4 bytes of the model image."""

    TYPE: ClassVar[int] = MsgType.LOAD_CHUNK
    FIELDS: ClassVar[str] = "I"
    offset: int = 0
    data: bytes = b""

    def _check(self) -> None:
        if not self.data:
            raise PayloadLengthError("LOAD_CHUNK carries at least 1 byte of image data")

    def encode(self) -> bytes:
        self._check_fields()
        return self._STRUCT.pack(self.offset) + bytes(self.data)

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> LoadChunk:
        if len(payload) < 5:
            raise PayloadLengthError(f"LOAD_CHUNK payload must be at least 5 bytes (offset + data), got {len(payload)}")
        payload = bytes(payload)
        msg = cls(cls._STRUCT.unpack_from(payload)[0], payload[4:])
        msg._check_fields()
        return msg


@dataclass
class LoadChunkAck(Message):
    """LOAD_CHUNK_ACK (board → host): offset and length of the chunk stored. 6 bytes."""

    TYPE: ClassVar[int] = MsgType.LOAD_CHUNK_ACK
    FIELDS: ClassVar[str] = "IH"
    offset: int = 0
    length: int = 0


@dataclass
class LoadEnd(Message):
    """LOAD_END (host → board): all bytes sent; check the CRC-32 and use the image. Empty."""

    TYPE: ClassVar[int] = MsgType.LOAD_END


@dataclass
class LoadEndAck(Message):
    """LOAD_END_ACK (board → host): the model is loaded; its hash (CRC-32). 4 bytes."""

    TYPE: ClassVar[int] = MsgType.LOAD_END_ACK
    FIELDS: ClassVar[str] = "I"
    model_hash: int = 0


@dataclass
class ResetState(Message):
    """RESET_STATE (host → board): zero the recurrent state (thresholds unchanged). Empty."""

    TYPE: ClassVar[int] = MsgType.RESET_STATE


@dataclass
class ResetStateAck(Message):
    """RESET_STATE_ACK (board → host). Empty."""

    TYPE: ClassVar[int] = MsgType.RESET_STATE_ACK


@dataclass
class Step(Message):
    """STEP (host → board): one time step's Q8.8 features, int16 [input_size]. 2·I bytes."""

    TYPE: ClassVar[int] = MsgType.STEP
    features: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))

    def encode(self) -> bytes:
        x = np.asarray(self.features)
        if x.ndim != 1 or x.size == 0:
            raise FieldValueError(f"STEP.features must be a non-empty 1-D int16 array, got shape {x.shape}")
        if x.dtype != np.int16:
            if not np.issubdtype(x.dtype, np.integer) or x.min() < -32768 or x.max() > 32767:
                raise FieldValueError(f"STEP.features must be int16 Q8.8, got {x.dtype}")
        return x.astype("<i2", copy=False).tobytes()

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Step:
        if len(payload) == 0 or len(payload) % 2:
            raise PayloadLengthError(f"STEP payload must be a non-zero even number of bytes, got {len(payload)}")
        return cls(np.frombuffer(bytes(payload), dtype="<i2").astype(np.int16))


@dataclass
class Result(Message):
    """RESULT (board → host): the step's int32 output accumulators and its timing. 14 + 4·O bytes."""

    TYPE: ClassVar[int] = MsgType.RESULT
    FIELDS: ClassVar[str] = "IIHHH"
    cycles: int = 0
    compute_ticks: int = 0
    fired_columns: int = 0
    nonzero_deltas: int = 0
    flags: int = 0
    outputs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    FIXED: ClassVar[int] = 14

    def encode(self) -> bytes:
        self._check_fields()
        o = np.asarray(self.outputs)
        if o.ndim != 1 or o.size == 0:
            raise FieldValueError(f"RESULT.outputs must be a non-empty 1-D int32 array, got shape {o.shape}")
        if o.dtype != np.int32 and (o.min() < -(2**31) or o.max() >= 2**31):
            raise FieldValueError("RESULT.outputs must fit int32")
        return self._STRUCT.pack(*self._values()) + o.astype("<i4").tobytes()

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Result:
        n = len(payload)
        if n < cls.FIXED + 4 or (n - cls.FIXED) % 4:
            raise PayloadLengthError(f"RESULT payload must be 14 + 4·O bytes with O >= 1, got {n}")
        payload = bytes(payload)
        # The struct fills the five header fields, then `outputs`: mypy cannot count a star-arg.
        return cls(*cls._STRUCT.unpack_from(payload), np.frombuffer(payload, "<i4", offset=cls.FIXED).astype(np.int32))  # type: ignore[call-arg]


RESULT_HEAD = struct.Struct("<IIHHH")  # cycles, compute_ticks, fired_columns, nonzero_deltas, flags


def pack_result(
    cycles: int, compute_ticks: int, fired_columns: int, nonzero_deltas: int, flags: int, outputs: np.ndarray
) -> bytes:
    """RESULT payload without the dataclass (hot path; the caller guarantees ranges and int32 outputs)."""
    return (
        RESULT_HEAD.pack(cycles, compute_ticks, fired_columns, nonzero_deltas, flags)
        + outputs.astype("<i4", copy=False).tobytes()
    )


@dataclass
class SetThresholds(Message):
    """SET_THRESHOLDS (host → board): Θx, Θh in Q8.8 LSB (0..511), from the next step on. 4 bytes."""

    TYPE: ClassVar[int] = MsgType.SET_THRESHOLDS
    FIELDS: ClassVar[str] = "HH"
    theta_x: int = 0
    theta_h: int = 0

    def _check(self) -> None:
        _check_theta(self, "theta_x", "theta_h")


@dataclass
class SetThresholdsAck(SetThresholds):
    """SET_THRESHOLDS_ACK (board → host): the thresholds now in force. 4 bytes."""

    TYPE: ClassVar[int] = MsgType.SET_THRESHOLDS_ACK


@dataclass
class SetGovernor(Message):
    """SET_GOVERNOR (host → board, protocol 1.1): the board governs each step's thresholds. 8 bytes.

    ``policy`` (:class:`GovernorPolicy`), ``options`` (:class:`GovernorOptions`), a reserved u16 (0) and the budget
    in accelerator cycles per step (≥ 1 unless the policy is OFF).
    """

    TYPE: ClassVar[int] = MsgType.SET_GOVERNOR
    FIELDS: ClassVar[str] = "BBHI"
    policy: int = GovernorPolicy.OFF
    options: int = 0
    reserved: int = 0
    budget_cycles: int = 0

    def _check(self) -> None:
        if self.policy not in tuple(GovernorPolicy):
            names = ", ".join(f"{p.value} {p.name.lower()}" for p in GovernorPolicy)
            raise FieldValueError(f"governor policy {self.policy} unsupported: this protocol has {names}")
        if self.options & ~int(GovernorOptions.REPORT_THETA):
            raise FieldValueError(f"SET_GOVERNOR.options={self.options}: only bit 0 (REPORT_THETA) is defined")
        if self.reserved:
            raise FieldValueError(f"SET_GOVERNOR.reserved={self.reserved}: expected 0")
        if self.policy != GovernorPolicy.OFF and self.budget_cycles < 1:
            raise FieldValueError("SET_GOVERNOR.budget must be >= 1 cycle")


@dataclass
class SetGovernorAck(Message):
    """SET_GOVERNOR_ACK (board → host): the policy, options and budget now in force (budget 0 when off). 8 bytes."""

    TYPE: ClassVar[int] = MsgType.SET_GOVERNOR_ACK
    FIELDS: ClassVar[str] = "BBHI"
    policy: int = GovernorPolicy.OFF
    options: int = 0
    reserved: int = 0
    budget_cycles: int = 0


@dataclass
class Stats(Message):
    """STATS (host → board): read the board's counters. Empty."""

    TYPE: ClassVar[int] = MsgType.STATS


@dataclass
class StatsReply(Message):
    """STATS_REPLY (board → host): counters since the board process started, u32 each (wrapping). 52 bytes."""

    TYPE: ClassVar[int] = MsgType.STATS_REPLY
    FIELDS: ClassVar[str] = "I" * 13
    frames_rx: int = 0  # frames with a good CRC (any type)
    crc_errors: int = 0
    truncated: int = 0
    malformed: int = 0  # incl. good-CRC frames of a wrong version or unknown type
    resyncs: int = 0
    steps: int = 0  # STEP requests answered with RESULT
    errors_sent: int = 0  # ERROR responses sent
    fault_drop: int = 0  # the rest: faults injected by an emulator (0 on a real board)
    fault_corrupt: int = 0
    fault_truncate: int = 0
    fault_duplicate: int = 0
    fault_delay: int = 0
    resets: int = 0  # emulated reboots (--reset-after)


@dataclass
class Ping(Message):
    """PING (host → board): 0..max_payload arbitrary bytes, echoed by PONG."""

    TYPE: ClassVar[int] = MsgType.PING
    data: bytes = b""

    def encode(self) -> bytes:
        return bytes(self.data)

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Ping:
        return cls(bytes(payload))


@dataclass
class Pong(Ping):
    """PONG (board → host): the PING's bytes."""

    TYPE: ClassVar[int] = MsgType.PONG


@dataclass
class Error(Message):
    """ERROR (board → host): ``code`` u8, ``request_type`` u8 (the type it answers), ASCII text (0..64 bytes)."""

    TYPE: ClassVar[int] = MsgType.ERROR
    FIELDS: ClassVar[str] = "BB"
    code: int = ErrorCode.INTERNAL
    request_type: int = 0
    text: str = ""

    def encode(self) -> bytes:
        self._check_fields()
        raw = self.text.encode("ascii", "replace")[:ERROR_TEXT_MAX]
        return self._STRUCT.pack(self.code, self.request_type) + raw

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Error:
        payload = bytes(payload)
        if not 2 <= len(payload) <= 2 + ERROR_TEXT_MAX:
            raise PayloadLengthError(f"ERROR payload must be 2..{2 + ERROR_TEXT_MAX} bytes, got {len(payload)}")
        code, req = cls._STRUCT.unpack_from(payload)
        return cls(code, req, payload[2:].decode("ascii", "replace"))

    @property
    def code_name(self) -> str:
        try:
            return ErrorCode(self.code).name.lower()
        except ValueError:
            return f"code {self.code}"

    def __str__(self) -> str:
        try:
            req = MsgType(self.request_type).name
        except ValueError:
            req = f"type 0x{self.request_type:02X}"
        return f"{self.code_name} (answering {req}): {self.text}"


def decode_message(frame: Frame) -> Message:
    """The message object of a frame (raises :class:`ProtocolError` for an unknown type or a bad payload)."""
    cls = MESSAGES.get(frame.msg_type)
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{frame.msg_type:02X}")
    return cls.decode(frame.payload)


# ------------------------------------------------------------------------------------------------- model image


def weight_image_size(layers: int, input_size: int, hidden: int) -> int:
    """EdgeDRNN weight image bytes: Σ_l 3H·(1 + I_l + H), I_1 = input padded to a multiple of 8, I_l = H after."""
    i_pad = -(-int(input_size) // K) * K
    h = int(hidden)
    return sum(3 * h * (1 + (i_pad if layer == 0 else h) + h) for layer in range(int(layers)))


def model_image_size(layers: int, input_size: int, hidden: int, outputs: int) -> int:
    """Model image bytes: weight image + output weights int8 [O×H] + output bias int32 [O]."""
    return weight_image_size(layers, input_size, hidden) + outputs * hidden + 4 * outputs


def build_model_image(weight_image: bytes | np.ndarray, out_weight: np.ndarray, out_bias: np.ndarray) -> bytes:
    """The bytes the host uploads: weight image ‖ output weights int8 [O×H] row-major ‖ output bias int32 LE [O]."""
    w = np.asarray(out_weight)
    b = np.asarray(out_bias)
    if w.ndim != 2 or w.dtype != np.int8:
        raise FieldValueError(f"out_weight must be int8 [O, H] (Q1.7), got {w.dtype} {w.shape}")
    if b.shape != (w.shape[0],) or not np.issubdtype(b.dtype, np.integer):
        raise FieldValueError(f"out_bias must be int32 [{w.shape[0]}], got {b.dtype} {b.shape}")
    if b.size and (b.min() < -(2**31) or b.max() >= 2**31):
        raise FieldValueError("out_bias must fit int32")
    img = np.asarray(weight_image).tobytes() if isinstance(weight_image, np.ndarray) else bytes(weight_image)
    return img + np.ascontiguousarray(w).tobytes() + b.astype("<i4").tobytes()


def split_model_image(
    image: bytes | bytearray | memoryview, layers: int, input_size: int, hidden: int, outputs: int
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Inverse of :func:`build_model_image`: (weight image bytes, out_weight int8 [O, H], out_bias int32 [O])."""
    image = bytes(image)
    expected = model_image_size(layers, input_size, hidden, outputs)
    if len(image) != expected:
        raise FieldValueError(f"model image has {len(image)} bytes; expected {expected}")
    n_w = weight_image_size(layers, input_size, hidden)
    w = np.frombuffer(image, dtype=np.int8, count=outputs * hidden, offset=n_w).reshape(outputs, hidden).copy()
    b = np.frombuffer(image, dtype="<i4", count=outputs, offset=n_w + outputs * hidden).astype(np.int32)
    return image[:n_w], w, b
