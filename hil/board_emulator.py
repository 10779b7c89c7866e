"""A virtual EdgeDRNN board: the legloop board protocol served on a pseudo-terminal by the bit-exact model.

    python -m hil.board_emulator [--baud N] [--clock-mhz F] [--fault-drop P] ... [--fault-seed S]

prints ``DEVICE /dev/pts/N`` on stdout and serves until SIGTERM/SIGINT (``legloop board emulate`` runs this in its
own process). The board starts EMPTY, like a real one: the host sends HELLO, CONFIGURE, the model image (LOAD_*),
RESET_STATE, then STEPs. It runs :class:`hil.edgedrnn.model.EdgeDRNNModel` (integer delta-GRU + cycle model) and the
integer output layer (int32 MAC of int8 Q1.7 weights × int16 Q8.8 h plus the int32 bias, wrapping like int32 — the
same arithmetic as ``backend_kernel``), and answers with the raw int32 accumulators. No floating point on the
"board" side of the wire.

Wire time (``--baud N``): a pty delivers bytes instantly, so the emulator writes each response no earlier than
request-complete + wire(request) + modelled compute (cycles / clock) + wire(response) at N baud, 8N1. Without
``--baud`` it answers at full speed.

Faults (seeded by ``--fault-seed``, counted on this side and reported by STATS), at most one per request so that each
maps to exactly one host counter:

=============  ===========================================================  ==========================
fault          what the emulator does                                       host counter
=============  ===========================================================  ==========================
drop           the request is lost before the board sees it (no answer)     timeouts
corrupt        1–3 bit flips in the decoded response, before COBS           crc_errors
truncate       a prefix of the encoded response, then the delimiter         truncated
duplicate      the response is sent twice                                   duplicates
delay          the response is held back by a sample of ``--fault-delay-ms``  none, or timeouts + stale
=============  ===========================================================  ==========================

Corruption never touches the header's length field: a receiver cannot tell a frame whose length field lies from a
truncated one, and the fault classes are meant to stay disjoint. CRC-16/CCITT-FALSE detects every error of up to 3
bits in frames of up to 4094 bytes, so each corrupted response is a CRC error. A held-back response does not hold
back later ones (it models a response the board emitted late, not a stuck UART). ``--reset-after N``: after the N-th
answered STEP the board reboots once (new boot id, unconfigured, no model; STEP then gets ERROR not_configured).
``--die-after N``: after the N-th answered STEP it goes silent (alive, reading, never answering).
Faults hit STEP requests only unless ``--fault-scope all``; control requests are retried by the host.

The emulator keeps its own handle on the pty's slave side open for its lifetime: otherwise each host close/reopen
of the device stalls (``../shared/facts/hil.md``), and the master would see a hang-up between hosts.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import os
import random
import re
import secrets
import select
import signal
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from firmware_bridge.protocol import (
    PROTOCOL_MAX_PAYLOAD,
    RESULT_HEAD,
    VERSION,
    VERSION_MINOR,
    BoardStatus,
    Capability,
    Configure,
    ConfigureAck,
    Error,
    ErrorCode,
    FieldValueError,
    Frame,
    FrameDecoder,
    FrameErrorKind,
    GovernorOptions,
    GovernorPolicy,
    Info,
    LoadBegin,
    LoadBeginAck,
    LoadChunk,
    LoadChunkAck,
    LoadEndAck,
    MsgType,
    PayloadLengthError,
    ResultFlags,
    SetGovernor,
    SetGovernorAck,
    SetThresholds,
    SetThresholdsAck,
    StatsReply,
    cobs_encode,
    crc32,
    encode_frame,
    frame_bytes,
    model_image_size,
    weight_image_size,
)

FIRMWARE = "legloop-pyemu 1.0"
DEFAULT_CLOCK_MHZ = 125.0
DEFAULT_MAX_PAYLOAD = 1024
DEFAULT_MAX_IMAGE_BYTES = 16 << 20
MAX_LAYERS = 4
MAX_HIDDEN = 1024
MAX_OUTPUTS = 64
TIMER_HZ = 1_000_000_000  # compute ticks are perf_counter_ns nanoseconds
DEVICE_PREFIX = "DEVICE "


# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class DelaySpec:
    """A delay distribution in milliseconds: ``"2"`` (fixed), ``"uniform:0.5,3"``, ``"exp:1"`` (mean 1 ms)."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def parse(cls, text: str) -> DelaySpec:
        t = str(text).strip().lower()
        try:
            if re.fullmatch(r"[0-9.eE+-]+", t):
                spec = cls("fixed", float(t))
            elif t.startswith("uniform:"):
                lo, hi = (float(v) for v in t[len("uniform:") :].split(","))
                spec = cls("uniform", lo, hi)
            elif t.startswith("exp:"):
                spec = cls("exp", float(t[len("exp:") :]))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"--fault-delay-ms {text!r}: expected a number of ms, 'uniform:LO,HI' or 'exp:MEAN' (e.g. 2, "
                f"uniform:0.5,3, exp:1)"
            ) from None
        values = (spec.a, spec.b)
        if any(not np.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"--fault-delay-ms {text!r}: delays must be finite and >= 0 ms")
        if spec.kind == "uniform" and spec.b < spec.a:
            raise ValueError(f"--fault-delay-ms {text!r}: uniform needs LO <= HI")
        return spec

    def sample_s(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.kind == "fixed":
            return self.a * 1e-3
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b) * 1e-3
        return rng.expovariate(1.0 / self.a) * 1e-3 if self.a > 0 else 0.0

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.a:g}"
        if self.kind == "uniform":
            return f"uniform:{self.a:g},{self.b:g}"
        return f"exp:{self.a:g}"


@dataclass(frozen=True)
class FaultConfig:
    """Seeded fault injection of the emulator (see the module docstring). Probabilities are per request."""

    drop: float = 0.0
    corrupt: float = 0.0
    truncate: float = 0.0
    duplicate: float = 0.0
    delay: float = 1.0  # probability that a response without another fault is held back, when delay_ms is set
    delay_ms: DelaySpec | None = None
    reset_after: int | None = None
    die_after: int | None = None
    seed: int = 0
    scope: str = "step"  # "step": faults hit STEP requests only; "all": every request

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "truncate", "duplicate", "delay"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0.0 <= v <= 1.0):
                raise ValueError(f"--fault-{name} {v!r}: a probability must be in 0..1")
        total = self.drop + self.corrupt + self.truncate + self.duplicate
        if total > 1.0 + 1e-12:
            raise ValueError(
                f"--fault-drop + --fault-corrupt + --fault-truncate + --fault-duplicate = {total:g}: at most one "
                f"fault hits a request, so their sum must be <= 1"
            )
        for name in ("reset_after", "die_after"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"--{name.replace('_', '-')} {v!r}: expected a number of steps >= 1")
        if self.scope not in ("step", "all"):
            raise ValueError(f"--fault-scope {self.scope!r}: expected 'step' or 'all'")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--fault-seed {self.seed!r}: expected an integer >= 0")

    @property
    def active(self) -> bool:
        return bool(self.drop or self.corrupt or self.truncate or self.duplicate or (self.delay_ms and self.delay))

    def argv(self) -> list[str]:
        """Command-line options that reproduce this configuration."""
        out: list[str] = []
        for name in ("drop", "corrupt", "truncate", "duplicate"):
            v = getattr(self, name)
            if v:
                out += [f"--fault-{name}", repr(float(v))]
        if self.delay_ms is not None:
            out += ["--fault-delay-ms", str(self.delay_ms), "--fault-delay", repr(float(self.delay))]
        if self.reset_after is not None:
            out += ["--reset-after", str(self.reset_after)]
        if self.die_after is not None:
            out += ["--die-after", str(self.die_after)]
        if self.seed:
            out += ["--fault-seed", str(self.seed)]
        if self.scope != "step":
            out += ["--fault-scope", self.scope]
        return out


@dataclass(frozen=True)
class EmulatorOptions:
    """Everything that configures an emulated board process."""

    baud: float | None = None  # None: full speed
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    faults: FaultConfig = FaultConfig()

    def __post_init__(self) -> None:
        if self.baud is not None and not (isinstance(self.baud, int | float) and self.baud > 0):
            raise ValueError(f"--baud {self.baud!r}: expected a positive number of bits per second (e.g. 921600)")
        if not (isinstance(self.clock_mhz, int | float) and 0 < self.clock_mhz <= 4000):
            raise ValueError(f"--clock-mhz {self.clock_mhz!r}: expected 0 < MHz <= 4000")
        if not 128 <= int(self.max_payload) <= PROTOCOL_MAX_PAYLOAD:
            raise ValueError(f"--max-payload {self.max_payload!r}: expected 128..{PROTOCOL_MAX_PAYLOAD} bytes")
        if not 1 <= int(self.max_image_bytes) <= 0xFFFFFFFF:
            raise ValueError(f"--max-image-bytes {self.max_image_bytes!r}: expected 1..4294967295")

    def argv(self) -> list[str]:
        out: list[str] = []
        if self.baud is not None:
            out += ["--baud", f"{self.baud:g}"]
        if self.clock_mhz != DEFAULT_CLOCK_MHZ:
            out += ["--clock-mhz", repr(float(self.clock_mhz))]
        if self.max_payload != DEFAULT_MAX_PAYLOAD:
            out += ["--max-payload", str(self.max_payload)]
        if self.max_image_bytes != DEFAULT_MAX_IMAGE_BYTES:
            out += ["--max-image-bytes", str(self.max_image_bytes)]
        return out + self.faults.argv()


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options (shared by ``python -m hil.board_emulator`` and ``legloop board emulate``)."""
    parser.add_argument(
        "--baud", type=float, default=None, help="line rate to emulate, bits/s at 8N1 (None: answer at full speed)"
    )
    parser.add_argument("--clock-mhz", type=float, default=DEFAULT_CLOCK_MHZ, help="accelerator clock (MHz)")
    parser.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD, help="largest frame payload (bytes)")
    parser.add_argument(
        "--max-image-bytes", type=int, default=DEFAULT_MAX_IMAGE_BYTES, help="largest model image the board holds"
    )
    add_fault_arguments(parser)


# The fault-injection options: (flag, type, default, metavar, help). One table for the parser and for
# :func:`given_fault_flags`, so a default is stated once.
FAULT_OPTIONS: tuple[tuple[str, type, Any, str, str], ...] = (
    ("--fault-drop", float, 0.0, "P", "lose the request (host: timeout)"),
    ("--fault-corrupt", float, 0.0, "P", "flip bits (host: crc_errors)"),
    ("--fault-truncate", float, 0.0, "P", "cut the response (host: truncated)"),
    ("--fault-duplicate", float, 0.0, "P", "send twice (host: duplicates)"),
    ("--fault-delay-ms", str, None, "DIST", "hold responses back: MS, uniform:LO,HI or exp:MEAN (host: late, or "
     "timeouts + stale)"),
    ("--fault-delay", float, 1.0, "P", "share of the other responses that are delayed"),
    ("--reset-after", int, None, "N", "reboot once after N answered steps"),
    ("--die-after", int, None, "N", "go silent after N answered steps"),
    ("--fault-seed", int, 0, "S", "seed of the fault draws"),
)  # fmt: skip
FAULT_SCOPES = ("step", "all")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The fault-injection options (shared by the emulator and ``legloop eval --controller board --emulate``)."""
    g = parser.add_argument_group("faults (seeded, at most one per request, counted and reported by STATS)")
    for flag, tp, default, metavar, text in FAULT_OPTIONS:
        g.add_argument(flag, type=tp, default=default, metavar=metavar, help=text)
    g.add_argument("--fault-scope", choices=FAULT_SCOPES, default=FAULT_SCOPES[0], help="requests the faults hit")


def given_fault_flags(args: argparse.Namespace) -> list[str]:
    """The fault options of :func:`add_fault_arguments` set to something other than their default, by flag."""
    given = [flag for flag, _, default, _, _ in FAULT_OPTIONS if getattr(args, _dest(flag)) != default]
    return given + (["--fault-scope"] if args.fault_scope != FAULT_SCOPES[0] else [])


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    """Validated :class:`EmulatorOptions` from parsed arguments (``ValueError`` with a one-line message)."""
    return EmulatorOptions(
        baud=args.baud,
        clock_mhz=args.clock_mhz,
        max_payload=args.max_payload,
        max_image_bytes=args.max_image_bytes,
        faults=faults_from_args(args),
    )


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    """Validated :class:`FaultConfig` from the options of :func:`add_fault_arguments` (``ValueError``)."""
    delay = DelaySpec.parse(args.fault_delay_ms) if args.fault_delay_ms is not None else None
    return FaultConfig(
        drop=args.fault_drop,
        corrupt=args.fault_corrupt,
        truncate=args.fault_truncate,
        duplicate=args.fault_duplicate,
        delay=args.fault_delay,
        delay_ms=delay,
        reset_after=args.reset_after,
        die_after=args.die_after,
        seed=args.fault_seed,
        scope=args.fault_scope,
    )


# ------------------------------------------------------------------------------------------------ the board


class _Refuse(Exception):
    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class EmulatedBoard:
    """The board's protocol state machine (no I/O): a decoded request frame in, a response (type, payload) out.

    Parameters
    ----------
    clock_hz
        Accelerator clock reported in INFO (and used for the modelled compute time under wire-time emulation).
    max_payload, max_image_bytes, max_input
        Limits reported in INFO and enforced.
    capabilities
        Extra :class:`Capability` bits (fault injection, wire-time emulation) of the serving loop.
    """

    _gov: _BoardGovernor | None  # SET_GOVERNOR: the split or worst governor around the model (None: off)
    _gov_policy: GovernorPolicy
    _gov_options: int
    _gov_budget: int

    def __init__(
        self,
        *,
        clock_hz: float = DEFAULT_CLOCK_MHZ * 1e6,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_input: int | None = None,
        capabilities: int = 0,
    ) -> None:
        self.clock_hz = float(clock_hz)
        self.max_payload = int(max_payload)
        self.max_image_bytes = int(max_image_bytes)
        self.max_input = int(max_input if max_input is not None else min(1024, self.max_payload // 2))
        self.max_outputs = min(MAX_OUTPUTS, (self.max_payload - RESULT_HEAD.size) // 4)
        self.capabilities = int(Capability.CYCLE_MODEL | Capability.COMPUTE_TIMER | Capability.GOVERNOR | capabilities)
        self.stats = StatsReply()
        self.boot_id = 0
        self._handlers = {
            MsgType.HELLO: self._hello,
            MsgType.CONFIGURE: self._configure,
            MsgType.LOAD_BEGIN: self._load_begin,
            MsgType.LOAD_CHUNK: self._load_chunk,
            MsgType.LOAD_END: self._load_end,
            MsgType.RESET_STATE: self._reset_state,
            MsgType.STEP: self._step,
            MsgType.SET_THRESHOLDS: self._set_thresholds,
            MsgType.STATS: self._stats,
            MsgType.PING: self._ping,
            MsgType.SET_GOVERNOR: self._set_governor,
        }
        self.reboot(count=False)

    # --------------------------------------------------------------------------------------------- state

    def reboot(self, *, count: bool = True) -> None:
        """Power-on state: a new boot id, no configuration, no model. Counters are kept (the emulator's own)."""
        old = self.boot_id
        while self.boot_id in (0, old):
            self.boot_id = secrets.randbits(32)
        self.config: Configure | None = None
        self.model: Any = None
        self.model_hash = 0
        self._load_buf: bytearray | None = None
        self._load_total = 0
        self._load_next = 0
        self._load_crc = 0
        self._first = False
        self.last_cycles = 0
        self._governor_off()
        if count:
            self.stats.resets += 1

    @property
    def status(self) -> int:
        s = 0
        if self.config is not None:
            s |= BoardStatus.CONFIGURED
        if self.model is not None:
            s |= BoardStatus.MODEL_LOADED
        if self._load_buf is not None and self.model is None:
            s |= BoardStatus.LOAD_IN_PROGRESS
        return s

    def info(self) -> Info:
        return Info(
            version_major=VERSION,
            version_minor=VERSION_MINOR,
            capabilities=self.capabilities,
            boot_id=self.boot_id,
            model_hash=self.model_hash,
            clock_hz=round(self.clock_hz),
            timer_hz=TIMER_HZ,
            max_payload=self.max_payload,
            max_layers=MAX_LAYERS,
            max_outputs=self.max_outputs,
            max_hidden=MAX_HIDDEN,
            max_input=self.max_input,
            max_image_bytes=self.max_image_bytes,
            status=self.status,
            firmware=FIRMWARE,
        )

    # ------------------------------------------------------------------------------------------ dispatch

    def handle(self, frame: Frame) -> tuple[int, bytes]:
        """Process one good frame; returns the response's (type, payload). Counts frames and errors."""
        st = self.stats
        st.frames_rx += 1
        t = frame.msg_type
        if frame.version != VERSION and t != MsgType.HELLO:
            st.malformed += 1
            return self._error(ErrorCode.BAD_VERSION, t, f"board speaks protocol {VERSION}, frame has {frame.version}")
        handler = self._handlers.get(t)  # type: ignore[call-overload]
        if handler is None:
            st.malformed += 1
            return self._error(ErrorCode.UNKNOWN_TYPE, t, f"unknown request type 0x{t:02X}")
        try:
            return handler(frame.payload)
        except _Refuse as exc:
            return self._error(exc.code, t, exc.text)
        except PayloadLengthError as exc:
            return self._error(ErrorCode.BAD_LENGTH, t, str(exc))
        except FieldValueError as exc:
            return self._error(ErrorCode.BAD_VALUE, t, str(exc))
        except Exception as exc:  # a bug here must not kill the board: report it, keep serving
            return self._error(ErrorCode.INTERNAL, t, f"{type(exc).__name__}: {exc}")

    def _error(self, code: ErrorCode, request_type: int, text: str) -> tuple[int, bytes]:
        self.stats.errors_sent += 1
        return MsgType.ERROR, Error(int(code), request_type & 0xFF, text).encode()

    def _need_config(self) -> Configure:
        if self.config is None:
            raise _Refuse(ErrorCode.NOT_CONFIGURED, "not configured: send CONFIGURE first")
        return self.config

    def _need_model(self) -> Configure:
        cfg = self._need_config()
        if self.model is None:
            raise _Refuse(ErrorCode.NO_MODEL, "no model: send LOAD_BEGIN, LOAD_CHUNK..., LOAD_END first")
        return cfg

    @staticmethod
    def _empty(payload: bytes, what: str) -> None:
        if payload:
            raise PayloadLengthError(f"{what} payload must be empty, got {len(payload)} bytes")

    # ------------------------------------------------------------------------------------------ handlers

    def _hello(self, payload: bytes) -> tuple[int, bytes]:
        return MsgType.INFO, self.info().encode()

    def _configure(self, payload: bytes) -> tuple[int, bytes]:
        c: Configure = Configure.decode(payload)  # type: ignore[assignment]
        if c.layers < 1:
            raise FieldValueError("layers must be >= 1")
        if c.layers > MAX_LAYERS:
            raise _Refuse(ErrorCode.TOO_LARGE, f"layers={c.layers}; this board takes 1..{MAX_LAYERS}")
        if c.hidden < 8 or c.hidden % 8:
            raise FieldValueError(f"hidden={c.hidden} must be a multiple of 8, >= 8")
        if c.hidden > MAX_HIDDEN:
            raise _Refuse(ErrorCode.TOO_LARGE, f"hidden={c.hidden}; this board takes at most {MAX_HIDDEN}")
        if c.input_size < 1:
            raise FieldValueError("input_size must be >= 1")
        if c.input_size > self.max_input:
            raise _Refuse(ErrorCode.TOO_LARGE, f"input_size={c.input_size}; this board takes <= {self.max_input}")
        if c.outputs < 1:
            raise FieldValueError("outputs must be >= 1")
        if c.outputs > self.max_outputs:
            raise _Refuse(ErrorCode.TOO_LARGE, f"outputs={c.outputs}; this board takes <= {self.max_outputs}")
        size = model_image_size(c.layers, c.input_size, c.hidden, c.outputs)
        if size > self.max_image_bytes:
            raise _Refuse(ErrorCode.TOO_LARGE, f"model image {size} bytes > board's {self.max_image_bytes}")
        self._discard_session()
        self.config = c
        return MsgType.CONFIGURE_ACK, ConfigureAck(
            weight_image_bytes=weight_image_size(c.layers, c.input_size, c.hidden), model_image_bytes=size
        ).encode()

    def _discard_session(self) -> None:
        """Forget configuration, model and load state (an accepted CONFIGURE starts from here)."""
        self.config = None
        self.model = None
        self.model_hash = 0
        self._governor_off()
        self._load_buf = None
        self._load_total = self._load_next = self._load_crc = 0

    def _load_begin(self, payload: bytes) -> tuple[int, bytes]:
        c = self._need_config()
        m: LoadBegin = LoadBegin.decode(payload)  # type: ignore[assignment]
        want = model_image_size(c.layers, c.input_size, c.hidden, c.outputs)
        if m.total != want:
            raise FieldValueError(f"LOAD_BEGIN total {m.total} bytes; this configuration needs {want}")
        self.model = None
        self.model_hash = 0
        self._load_buf = bytearray(m.total)
        self._load_total = m.total
        self._load_next = 0
        self._load_crc = m.crc32
        return MsgType.LOAD_BEGIN_ACK, LoadBeginAck(m.total).encode()

    def _load_chunk(self, payload: bytes) -> tuple[int, bytes]:
        self._need_config()
        if self._load_buf is None or self.model is not None:
            raise _Refuse(ErrorCode.LOAD_ORDER, "LOAD_CHUNK without LOAD_BEGIN")
        m: LoadChunk = LoadChunk.decode(payload)
        n = len(m.data)
        if m.offset > self._load_next:
            raise _Refuse(ErrorCode.LOAD_ORDER, f"chunk at {m.offset} leaves a gap: next byte due is {self._load_next}")
        if m.offset + n > self._load_total:
            raise FieldValueError(f"chunk {m.offset}+{n} runs past the image's {self._load_total} bytes")
        self._load_buf[m.offset : m.offset + n] = m.data
        self._load_next = max(self._load_next, m.offset + n)
        return MsgType.LOAD_CHUNK_ACK, LoadChunkAck(m.offset, n).encode()

    def _load_end(self, payload: bytes) -> tuple[int, bytes]:
        c = self._need_config()
        if self._load_buf is None:
            raise _Refuse(ErrorCode.LOAD_ORDER, "LOAD_END without LOAD_BEGIN")
        if self.model is None and self._load_next < self._load_total:
            raise _Refuse(ErrorCode.LOAD_ORDER, f"LOAD_END after {self._load_next} of {self._load_total} bytes")
        self._empty(payload, "LOAD_END")
        if self.model is not None:  # a repeated LOAD_END (its answer was lost): same answer
            return MsgType.LOAD_END_ACK, LoadEndAck(self.model_hash).encode()
        h = crc32(self._load_buf)
        if h != self._load_crc:
            raise _Refuse(ErrorCode.BAD_CRC32, f"image CRC-32 0x{h:08X}, LOAD_BEGIN said 0x{self._load_crc:08X}")
        from hil.edgedrnn.model import EdgeDRNNModel  # numba: imported when a model is first loaded
        from hil.output_layer import output_layer

        n_w = weight_image_size(c.layers, c.input_size, c.hidden)
        buf = bytes(self._load_buf)
        model = EdgeDRNNModel(buf[:n_w], c.layers, c.input_size, c.hidden, c.theta_x, c.theta_h, clock_hz=self.clock_hz)
        o, h_ = c.outputs, c.hidden
        self._w_out = np.frombuffer(buf, np.int8, o * h_, n_w).reshape(o, h_).copy()
        self._b_out = np.frombuffer(buf, "<i4", o, n_w + o * h_).astype(np.int64)
        self._acc = np.zeros(o, dtype="<i4")
        self._output_layer = output_layer
        self._x = np.zeros(c.input_size, dtype=np.int16)
        self.model = model
        self.model_hash = h
        self._first = True
        if self._gov_policy != GovernorPolicy.OFF:
            self._gov = _BoardGovernor(model, self._w_out, self._gov_budget, self._gov_policy)
        # What exists now lives until the next load: keep the collector from walking it (numba's and numpy's heap
        # too) in the middle of a STEP.
        gc.collect()
        gc.freeze()
        return MsgType.LOAD_END_ACK, LoadEndAck(h).encode()

    def _reset_state(self, payload: bytes) -> tuple[int, bytes]:
        self._need_model()
        self._empty(payload, "RESET_STATE")
        self.model.reset()
        if self._gov is not None:
            self._gov.reset()
        self._first = True
        return MsgType.RESET_STATE_ACK, b""

    def _step(self, payload: bytes) -> tuple[int, bytes]:
        c = self._need_model()
        if len(payload) != 2 * c.input_size:
            raise PayloadLengthError(f"STEP payload must be {2 * c.input_size} bytes (input_size {c.input_size})")
        t0 = time.perf_counter_ns()
        x = self._x
        x[:] = np.frombuffer(payload, "<i2")
        model = self.model
        acc = self._acc
        gov = self._gov
        h = model.step(x) if gov is None else gov.step(x)
        wrapped = self._output_layer(self._w_out, h, self._b_out, acc)
        ticks = (time.perf_counter_ns() - t0) & 0xFFFFFFFF
        flags = ResultFlags.OUTPUT_WRAPPED if wrapped else 0
        tail = b""
        if gov is not None:
            flags |= gov.flags
            if self._gov_options & GovernorOptions.REPORT_THETA:
                tail = gov.thetas()
        if self._first:
            flags |= ResultFlags.FIRST_STEP
            self._first = False
        cycles = model.cycles
        self.last_cycles = cycles
        self.stats.steps += 1
        head = RESULT_HEAD.pack(
            min(cycles, 0xFFFFFFFF), ticks, min(model.fired_columns, 0xFFFF), min(model.nonzero_deltas, 0xFFFF), flags
        )
        return MsgType.RESULT, head + acc.tobytes() + tail

    def _set_thresholds(self, payload: bytes) -> tuple[int, bytes]:
        c = self._need_config()
        m: SetThresholds = SetThresholds.decode(payload)  # type: ignore[assignment]
        c.theta_x, c.theta_h = m.theta_x, m.theta_h
        if self.model is not None:
            self.model.theta_x = m.theta_x
            self.model.theta_h = m.theta_h
        if self._gov is not None:
            self._gov.set_floor(m.theta_x, m.theta_h)
        return MsgType.SET_THRESHOLDS_ACK, SetThresholdsAck(m.theta_x, m.theta_h).encode()

    def _governor_off(self) -> None:
        self._gov = None
        self._gov_policy = GovernorPolicy.OFF
        self._gov_options = 0
        self._gov_budget = 0

    def _set_governor(self, payload: bytes) -> tuple[int, bytes]:
        c = self._need_config()
        m: SetGovernor = SetGovernor.decode(payload)  # type: ignore[assignment]
        on = m.policy != GovernorPolicy.OFF
        if (
            on
            and m.options & GovernorOptions.REPORT_THETA
            and RESULT_HEAD.size + 4 * (c.outputs + c.layers) > self.max_payload
        ):
            raise _Refuse(
                ErrorCode.TOO_LARGE,
                f"a RESULT with thresholds needs {RESULT_HEAD.size + 4 * (c.outputs + c.layers)} bytes > max_payload",
            )
        if not on:
            if self.model is not None:  # a governed step leaves its (last layer's) thresholds in the model
                self.model.theta_x, self.model.theta_h = c.theta_x, c.theta_h
            self._governor_off()
        else:
            if self.model is not None and (self._gov is None or m.policy != self._gov_policy):
                # on from off, or another policy: a fresh governor from the model's state (as the C firmware), its
                # floor the thresholds in force (a governed step left its own in the model)
                self.model.theta_x, self.model.theta_h = c.theta_x, c.theta_h
                self._gov = _BoardGovernor(self.model, self._w_out, m.budget_cycles, m.policy, from_state=True)
            elif self._gov is not None:
                self._gov.budget_cycles = m.budget_cycles
            self._gov_policy = GovernorPolicy(m.policy)
            self._gov_options = m.options
            self._gov_budget = m.budget_cycles
        ack = SetGovernorAck(self._gov_policy, self._gov_options, 0, self._gov_budget)
        return MsgType.SET_GOVERNOR_ACK, ack.encode()

    def _stats(self, payload: bytes) -> tuple[int, bytes]:
        self._empty(payload, "STATS")
        st = self.stats
        for f in fields(st):
            setattr(st, f.name, getattr(st, f.name) & 0xFFFFFFFF)
        return MsgType.STATS_REPLY, st.encode()

    def _ping(self, payload: bytes) -> tuple[int, bytes]:
        return MsgType.PONG, bytes(payload)


class _BoardGovernor:
    """The board's SET_GOVERNOR policy SPLIT or WORST: :class:`hil.edgedrnn.predictive.PredictiveGovernor`
    (``bound="split"`` / ``"worst"``) around the emulator's model, fed the Q8.8 input through its compiled kernel
    (``governed_split_kernel`` / ``governed_backend_kernel``; an identity z-score).

    ``from_state``: switched on mid-session, the governor's mirrors are taken from the model's state and the
    estimate's history is flat (h_{t-2} = h_{t-1}), as the C firmware's ``edgedrnn_governor_start``.
    """

    def __init__(
        self, model: Any, w_out: np.ndarray, budget_cycles: int, policy: int, *, from_state: bool = False
    ) -> None:
        from hil.edgedrnn import kernel as kn
        from hil.edgedrnn.predictive import PredictiveGovernor, governed_backend_kernel, governed_split_kernel

        self.model = model
        self.split = policy == GovernorPolicy.SPLIT
        self._kernel = governed_split_kernel if self.split else governed_backend_kernel
        self._kn = kn
        self.pg = PredictiveGovernor(
            model,
            max(budget_cycles, 1) / model.clock_hz,
            model.theta_x,
            model.theta_h,
            bound="split" if self.split else "worst",
        )
        self.budget_cycles = budget_cycles
        width = max(model.input_size, w_out.shape[0])
        fp = np.zeros((kn.FP_ROWS, width), dtype=np.float64)
        fp[kn.FP_STD] = 1.0  # features = x / 256 quantize back to x exactly
        self._f = np.zeros(model.input_size, dtype=np.float64)
        image, state, h_out = model.kernel_buffers()
        self._args: tuple[Any, ...] = (fp, image, w_out, state, h_out, self.pg.buffer)
        if not self.split:  # the fused kernel's oracle buffers (1-element dummies for the worst bound)
            self._args = (*self._args, self.pg.trial, self.pg.h_trial)
        self._h = h_out
        self.flags = 0
        if from_state:
            self._mirror_state()

    @property
    def budget_cycles(self) -> int:
        from hil.edgedrnn.predictive import G_MAX_CYCLES

        return int(self.pg.buffer[G_MAX_CYCLES])

    @budget_cycles.setter
    def budget_cycles(self, value: int) -> None:
        from hil.edgedrnn.predictive import G_MAX_CYCLES

        self.pg.buffer[G_MAX_CYCLES] = int(value)

    def set_floor(self, theta_x: int, theta_h: int) -> None:
        from hil.edgedrnn.predictive import G_BASE_H, G_BASE_X

        self.pg.theta_x_base, self.pg.theta_h_base = int(theta_x), int(theta_h)
        self.pg.buffer[G_BASE_X], self.pg.buffer[G_BASE_H] = int(theta_x), int(theta_h)

    def reset(self) -> None:
        self.pg.reset()

    def _mirror_state(self) -> None:
        from hil.edgedrnn.predictive import G_FIRST, buffer_layout

        m = self.model
        kn = self._kn
        L, H, I = m.layers, m.hidden, m.input_padded
        o_xhat, o_hhat, o_h1, o_h2, _, _ = buffer_layout(L, H, I)
        g = self.pg.buffer
        state = m.kernel_buffers()[1]
        mem = kn.state_views(state)[2]
        W = max(I, H)
        g[o_xhat:o_hhat].reshape(L, W)[:] = mem[:, 0, :W]
        g[o_hhat:o_h1].reshape(L, H)[:] = mem[:, 1, :H]
        g[o_h1:o_h2].reshape(L, H)[:] = mem[:, 2, :H]
        g[o_h2 : o_h2 + L * H].reshape(L, H)[:] = mem[:, 2, :H]
        g[G_FIRST] = state[kn.CFG_FIRST]

    def step(self, x: np.ndarray) -> np.ndarray:
        """One governed step on the Q8.8 input ``x``; returns the last layer's h (the model's buffer)."""
        pg = self.pg
        before = pg.counters()
        np.divide(x, 256.0, out=self._f)
        self._kernel(self._f, *self._args)
        after = pg.counters()
        flags = int(ResultFlags.GOVERNED)
        if after["raised_steps"] != before["raised_steps"]:
            flags |= ResultFlags.THETA_RAISED
        if after["infeasible"] != before["infeasible"]:
            flags |= ResultFlags.OVER_BUDGET
        self.flags = flags
        return self._h

    def thetas(self) -> bytes:
        """(u16 Θx, u16 Θh) per layer, as RESULT carries them with REPORT_THETA."""
        from hil.edgedrnn.predictive import G_LAYER_TH, G_LAYER_TX, G_THETA_H, G_THETA_X

        g = self.pg.buffer
        L = self.model.layers
        out = np.empty((L, 2), dtype="<u2")
        if self.split:
            out[:, 0] = g[G_LAYER_TX : G_LAYER_TX + L]
            out[:, 1] = g[G_LAYER_TH : G_LAYER_TH + L]
        else:  # one pair for the whole step
            out[:, 0] = g[G_THETA_X]
            out[:, 1] = g[G_THETA_H]
        return out.tobytes()


# ------------------------------------------------------------------------------------------------ faults

NONE, DROP, CORRUPT, TRUNCATE, DUPLICATE, DELAY = range(6)


class FaultInjector:
    """Seeded decisions: at most one fault per request, drawn in a fixed order so a seed replays exactly."""

    def __init__(self, cfg: FaultConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        c = cfg
        self._edges = (
            c.drop,
            c.drop + c.corrupt,
            c.drop + c.corrupt + c.truncate,
            c.drop + c.corrupt + c.truncate + c.duplicate,
        )
        self._active = cfg.active

    def decide(self, msg_type: int) -> tuple[int, float]:
        """(fault, delay in s) for a request of ``msg_type``."""
        if not self._active or (self.cfg.scope == "step" and msg_type != MsgType.STEP):
            return NONE, 0.0
        u = self.rng.random()
        e = self._edges
        if u < e[0]:
            return DROP, 0.0
        if u < e[1]:
            return CORRUPT, 0.0
        if u < e[2]:
            return TRUNCATE, 0.0
        if u < e[3]:
            return DUPLICATE, 0.0
        spec = self.cfg.delay_ms
        if spec is not None and self.cfg.delay > 0 and self.rng.random() < self.cfg.delay:
            return DELAY, spec.sample_s(self.rng)
        return NONE, 0.0

    def corrupt(self, decoded: bytes) -> bytes:
        """Flip 1–3 distinct bits anywhere but the header's length field (bytes 4–5)."""
        bits = [b for b in range(8 * len(decoded)) if not 32 <= b < 48]
        out = bytearray(decoded)
        for b in self.rng.sample(bits, self.rng.randint(1, 3)):
            out[b >> 3] ^= 1 << (b & 7)
        return bytes(out)

    def truncate(self, encoded: bytes | bytearray) -> bytes:
        """A non-empty strict prefix of the encoded frame (delimiter excluded), then the delimiter."""
        body = encoded[:-1]
        return bytes(body[: self.rng.randint(1, len(body) - 1)]) + b"\x00"


# ------------------------------------------------------------------------------------------------ serving


class _Shutdown(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the serving loop."""


def serve(
    fd: int,
    board: EmulatedBoard,
    *,
    baud: float | None = None,
    faults: FaultConfig | None = None,
    stop_fd: int | None = None,
    alive: Any = None,
) -> None:
    """Serve the protocol on ``fd`` (a pty master, a socket, …) until ``stop_fd`` is readable, ``fd`` reaches end
    of file, ``alive()`` returns False, or a signal handler raises.

    Responses are written as one ``os.write`` each (no partial frames on a pty). With ``baud`` a response waits for
    request-complete + wire(request) + modelled compute + wire(response).
    """
    faults = faults or FaultConfig()
    inj = FaultInjector(faults)
    st = board.stats
    decoder = FrameDecoder(board.max_payload)
    queue: list[tuple[float, int, bytes]] = []  # (due, order, bytes) of responses held back
    order = 0
    dead = False
    steps_seen = 0
    reset_done = False
    watch = [fd] if stop_fd is None else [fd, stop_fd]
    inv_baud = 10.0 / baud if baud else 0.0
    check_every = 0.5 if alive is not None else None
    try:
        os.set_blocking(fd, False)
    except OSError:
        pass

    while True:
        if queue:
            wait = max(0.0, queue[0][0] - time.monotonic())
            timeout: float | None = wait if check_every is None else min(wait, check_every)
        else:
            timeout = check_every
        ready, _, _ = select.select(watch, [], [], timeout)
        if alive is not None and not alive():
            return
        if stop_fd is not None and stop_fd in ready:
            return
        if fd in ready:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                data = None
            except OSError:
                return  # the other side is gone for good (EIO on a pty master without any slave)
            if data == b"":
                return
            if data:
                t_rx = time.monotonic()
                for item in decoder.feed(data):
                    if type(item) is not Frame:
                        kind = item.kind
                        if kind is FrameErrorKind.CRC:
                            st.crc_errors += 1
                        elif kind is FrameErrorKind.TRUNCATED:
                            st.truncated += 1
                        elif kind is FrameErrorKind.MALFORMED:
                            st.malformed += 1
                        else:
                            st.resyncs += 1
                        continue
                    if dead:
                        continue
                    fault, delay = inj.decide(item.msg_type)
                    if fault == DROP:
                        st.fault_drop += 1
                        continue
                    rtype, payload = board.handle(item)
                    out: bytes | bytearray
                    if fault == CORRUPT:
                        st.fault_corrupt += 1
                        out = cobs_encode(inj.corrupt(frame_bytes(rtype, item.seq, payload)))
                        out.append(0)
                    else:
                        out = encode_frame(rtype, item.seq, payload)
                    if fault == TRUNCATE:
                        st.fault_truncate += 1
                        out = inj.truncate(out)
                    due = t_rx
                    if inv_baud:
                        compute = board.last_cycles / board.clock_hz if rtype == MsgType.RESULT else 0.0
                        due += (item.wire_size + len(out)) * inv_baud + compute
                    if fault == DELAY:
                        st.fault_delay += 1
                        due += delay
                    copies = 1
                    if fault == DUPLICATE:
                        st.fault_duplicate += 1
                        copies = 2
                    for k in range(copies):
                        if not queue and due <= time.monotonic():
                            write_all(fd, out)
                        else:
                            heapq.heappush(queue, (due + k * len(out) * inv_baud, order, bytes(out)))
                            order += 1
                    if rtype == MsgType.RESULT:
                        steps_seen += 1
                        if faults.reset_after is not None and not reset_done and steps_seen >= faults.reset_after:
                            board.reboot()
                            reset_done = True
                        if faults.die_after is not None and steps_seen >= faults.die_after:
                            dead = True
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            write_all(fd, heapq.heappop(queue)[2])


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Write a whole frame; if nobody reads for 50 ms (full pty buffer) the rest is lost, as on a real wire."""
    view = memoryview(data)
    give_up = time.monotonic() + 0.05
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            if time.monotonic() > give_up:
                return
            select.select([], [fd], [], 0.01)
        except OSError:
            return


def warm_up() -> None:
    """Load the numba kernels once before announcing the device, so the first STEP is not a compile."""
    from hil.edgedrnn.model import EdgeDRNNModel
    from hil.output_layer import output_layer

    model = EdgeDRNNModel(bytes(weight_image_size(1, 1, 8)), 1, 1, 8)
    h = model.step(np.zeros(1, dtype=np.int16))
    output_layer(np.zeros((1, 8), np.int8), h, np.zeros(1, np.int64), np.zeros(1, np.int32))  # the types STEP uses
    for policy in (GovernorPolicy.SPLIT, GovernorPolicy.WORST):  # SET_GOVERNOR's kernels
        _BoardGovernor(model, np.zeros((1, 8), np.int8), 1000, policy).step(np.zeros(1, dtype=np.int16))


def open_pty() -> tuple[int, int, str]:
    """A raw-mode pseudo-terminal: (master fd, slave fd kept open by the caller, slave path)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing, no CR/LF mapping, no XON/XOFF, no signals from bytes
    return master, slave, os.ttyname(slave)


class InProcessBoard:
    """The emulator served by a thread of this process, on a pty (``url`` = its device path) or on TCP
    (``url`` = ``socket://127.0.0.1:PORT``, one connection). For tests and notebooks; a board that must survive the
    host, or be killed, runs in its own process (:mod:`hil.board_process`).

    ``board`` is the :class:`EmulatedBoard` (its ``stats`` can be read directly). A context manager.
    """

    def __init__(self, options: EmulatorOptions | None = None, *, link: str = "pty") -> None:
        opts = options or EmulatorOptions()
        warm_up()
        caps = Capability.FAULT_INJECTION | (Capability.WIRE_TIME_EMULATION if opts.baud else 0)
        self.options = opts
        self.board = EmulatedBoard(
            clock_hz=opts.clock_mhz * 1e6,
            max_payload=opts.max_payload,
            max_image_bytes=opts.max_image_bytes,
            capabilities=int(caps),
        )
        self._stop_r, self._stop_w = os.pipe()
        self._fds: list[int] = []
        self._sock: socket.socket | None = None
        if link == "pty":
            master, slave, path = open_pty()
            self._fds = [master, slave]
            self.url = path
            target: Callable[..., None] = self._serve_fd
            args: tuple = (master,)
        elif link == "tcp":
            self._sock = socket.create_server(("127.0.0.1", 0))
            self.url = f"socket://127.0.0.1:{self._sock.getsockname()[1]}"
            target = self._serve_tcp
            args = ()
        else:
            raise ValueError(f"link must be 'pty' or 'tcp', got {link!r}")
        self._thread = threading.Thread(target=target, args=args, daemon=True, name="in-process-board")
        self._thread.start()

    def _serve_fd(self, fd: int) -> None:
        serve(fd, self.board, baud=self.options.baud, faults=self.options.faults, stop_fd=self._stop_r)

    def _serve_tcp(self) -> None:
        assert self._sock is not None
        watch: list[socket.socket | int] = [self._sock, self._stop_r]
        ready, _, _ = select.select(watch, [], [])
        if self._stop_r in ready:
            return
        conn, _ = self._sock.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            serve(conn.fileno(), self.board, baud=self.options.baud, faults=self.options.faults, stop_fd=self._stop_r)

    def close(self) -> None:
        """Stop the serving thread and close the pty or socket."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        self._thread.join(5.0)
        for fd in (*self._fds, self._stop_r, self._stop_w):
            os.close(fd)
        self._fds = []
        self._stop_w = -1
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> InProcessBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hil.board_emulator",
        description="Serve the legloop board protocol on a new pseudo-terminal with the EdgeDRNN model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_emulator_arguments(parser)
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    args = parser.parse_args(argv)
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"board emulator: error: {exc}", file=sys.stderr)
        return 2

    def _stop(signum: int, frame: object) -> None:
        raise _Shutdown

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    master = slave = -1
    try:
        warm_up()
        caps = Capability.FAULT_INJECTION | (Capability.WIRE_TIME_EMULATION if opts.baud else 0)
        board = EmulatedBoard(
            clock_hz=opts.clock_mhz * 1e6,
            max_payload=opts.max_payload,
            max_image_bytes=opts.max_image_bytes,
            capabilities=int(caps),
        )
        master, slave, path = open_pty()
        print(f"{DEVICE_PREFIX}{path}", flush=True)
        parent = os.getppid()
        alive = (lambda: os.getppid() == parent) if args.exit_with_parent else None
        serve(master, board, baud=opts.baud, faults=opts.faults, alive=alive)
    except _Shutdown:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
