"""The host's typed API to a board that speaks the legloop protocol (``docs/protocol.md``).

    with BoardClient.open("/dev/pts/5", baudrate=921600) as board:
        info = board.hello()                         # version, limits, boot id, model hash
        board.configure(layers=2, input_size=5, hidden=128, outputs=2, theta_x=6, theta_h=6)
        board.load_model(model_image)                # weight image ‖ out weights ‖ out bias, chunked + CRC-32
        board.reset_state()
        reply = board.step(features_q88)             # StepReply, or None when the response was lost

Division of work (so the in-process EdgeDRNN model and a board give bit-identical torques): the host z-scores and
quantises features (:func:`quantize_features`, as ``hil.edgedrnn.kernel.backend_kernel`` does), the board runs the
integer delta-GRU and output layer and returns raw int32 accumulators, the host scales them
(:func:`outputs_from_acc`).

STEP is never retried — a late torque is useless, the caller's deadline policy decides what a lost step means. The
control requests (everything else) are retried up to ``retries`` times on loss, each retry counted. A board that
rebooted (a new boot id in HELLO, or ERROR not_configured after this client configured it) raises
:class:`BoardReset`; :meth:`BoardClient.resync` configures and loads it again.
"""

from __future__ import annotations

import time

import numpy as np

from .protocol import (
    RESULT_HEAD,
    VERSION,
    Capability,
    Configure,
    ConfigureAck,
    Error,
    ErrorCode,
    Frame,
    GovernorOptions,
    GovernorPolicy,
    Hello,
    Info,
    LoadBegin,
    LoadBeginAck,
    LoadChunk,
    LoadChunkAck,
    LoadEnd,
    LoadEndAck,
    Message,
    MsgType,
    Ping,
    Pong,
    ProtocolError,
    ResetState,
    ResetStateAck,
    SetGovernor,
    SetGovernorAck,
    SetThresholds,
    SetThresholdsAck,
    Stats,
    StatsReply,
    crc32,
    model_image_size,
    weight_image_size,
)
from .transport import DEFAULT_BAUDRATE, DEFAULT_MARGIN_S, LinkCounters, LinkError, SerialTransport, Transport

DEFAULT_CONTROL_TIMEOUT_S = 0.5  # per attempt; control requests are not time-critical (LOAD_END hashes the image)
DEFAULT_RETRIES = 3


class BoardError(Exception):
    """The board answered ERROR. ``code`` (:class:`ErrorCode`), ``request_type`` and ``text`` are the board's."""

    def __init__(self, error: Error, url: str = "") -> None:
        self.code = error.code
        self.request_type = error.request_type
        self.text = error.text
        where = f"{url}: " if url else ""
        super().__init__(f"{where}board error {error}")


class BoardReset(Exception):
    """The board rebooted since this client configured it: its state (configuration, model) is gone.

    ``old_boot_id``/``new_boot_id`` when known (a HELLO saw the change; 0 = unknown).
    """

    def __init__(self, message: str, old_boot_id: int = 0, new_boot_id: int = 0, info: Info | None = None) -> None:
        super().__init__(message)
        self.old_boot_id = old_boot_id
        self.new_boot_id = new_boot_id
        self.info = info


class VersionMismatch(Exception):
    """The board speaks another protocol major version."""


class ModelMismatch(ValueError):
    """The model does not fit the board, or the board holds another model than the one sent."""


class GovernorUnsupported(Exception):
    """The board cannot govern its thresholds the way the host asked (protocol 1.0 firmware, or another policy)."""


class NoResponse(LinkError):
    """A control request got no valid answer after all retries."""


class StepReply:
    """What a board answered to one STEP (this object is reused by the next step: :meth:`copy` to keep it).

    ``outputs`` int32 [O]: the output layer's accumulators in 2^-15 units (see :func:`outputs_from_acc`);
    ``cycles``, ``fired_columns`` (bias included), ``nonzero_deltas`` (bias excluded): the step on the accelerator;
    ``compute_ticks``: the board's own timer (INFO.timer_hz), 0 if none; ``flags``: :class:`ResultFlags`;
    ``seq``: the sequence number; ``rtt_s``: request-to-response time measured by the host; ``thetas``: uint16
    [L, 2], the (Θx, Θh) each layer ran with when the board governs with REPORT_THETA (else an empty array).
    """

    __slots__ = (
        "compute_ticks", "cycles", "fired_columns", "flags", "nonzero_deltas", "outputs", "rtt_s", "seq", "thetas",
    )  # fmt: skip

    def __init__(self, outputs: np.ndarray, thetas: np.ndarray | None = None) -> None:
        self.outputs = outputs
        self.thetas = thetas if thetas is not None else np.zeros((0, 2), dtype=np.uint16)
        self.seq = 0
        self.cycles = 0
        self.compute_ticks = 0
        self.fired_columns = 0
        self.nonzero_deltas = 0
        self.flags = 0
        self.rtt_s = 0.0

    def copy(self) -> StepReply:
        r = StepReply(self.outputs.copy(), self.thetas.copy())
        for name in self.__slots__:
            if name not in ("outputs", "thetas"):
                setattr(r, name, getattr(self, name))
        return r

    def latency_s(self, clock_hz: float) -> float:
        """Modelled accelerator latency of the step: cycles / clock."""
        return self.cycles / clock_hz

    def __repr__(self) -> str:
        return (
            f"StepReply(seq={self.seq}, outputs={self.outputs.tolist()}, cycles={self.cycles}, "
            f"fired_columns={self.fired_columns}, nonzero_deltas={self.nonzero_deltas}, flags={self.flags}, "
            f"compute_ticks={self.compute_ticks}, rtt_s={self.rtt_s:.6f})"
        )


def quantize_features(
    features: np.ndarray, mean: np.ndarray, std: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Float features → Q8.8 int16 exactly as the in-process EdgeDRNN backend does it.

    ``rint((f − mean) / std · 256)`` in float64 (round half to even), NaN → 0, saturate to int16.
    """
    v = np.rint((np.asarray(features, dtype=np.float64) - mean) / std * 256.0)
    v[np.isnan(v)] = 0.0
    np.clip(v, -32768.0, 32767.0, out=v)
    if out is None:
        return v.astype(np.int16)
    out[...] = v
    return out


def outputs_from_acc(
    acc: np.ndarray, out_scale: np.ndarray, out_offset: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """int32 output accumulators (2^-15 units) → float64 ``acc / 32768 · out_scale + out_offset``."""
    v = np.asarray(acc, dtype=np.float64) / 32768.0 * np.asarray(out_scale, dtype=np.float64) + np.asarray(
        out_offset, dtype=np.float64
    )
    if out is None:
        return v
    out[...] = v
    return out


class BoardClient:
    """Typed requests to a board over a :class:`Transport`.

    Parameters
    ----------
    transport
        The link (e.g. :class:`SerialTransport`); the client closes it on :meth:`close`.
    control_timeout_s
        Deadline of each attempt of a control request (HELLO, CONFIGURE, LOAD_*, …).
    retries
        Extra attempts of a control request after a loss. STEP is never retried.
    step_timeout_s
        Deadline of a STEP; default: the transport's wire time of STEP + RESULT plus its margin.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        control_timeout_s: float = DEFAULT_CONTROL_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        step_timeout_s: float | None = None,
    ) -> None:
        if not control_timeout_s > 0:
            raise ValueError(f"control_timeout_s must be > 0, got {control_timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.transport = transport
        self.control_timeout_s = float(control_timeout_s)
        self.retries = int(retries)
        self._step_timeout_override = step_timeout_s
        self.info: Info | None = None
        self.boot_id = 0
        self.config: Configure | None = None
        self.model_image: bytes | None = None
        self.model_hash = 0
        self.steps_lost = 0
        self._configured = False
        self._loaded = False
        self._n_in = 0
        self._n_out = 0
        self._result_len = 0
        self._step_timeout = 0.0
        self._reply = StepReply(np.zeros(0, dtype=np.int32))
        self.governor: SetGovernorAck | None = None  # what the board governs with (None: off)
        self._n_theta = 0  # layers whose (Θx, Θh) a RESULT carries

    @classmethod
    def open(
        cls,
        url: str,
        baudrate: float = DEFAULT_BAUDRATE,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        exclusive: bool = True,
        **kwargs: object,
    ) -> BoardClient:
        """A client on a new :class:`SerialTransport` (``kwargs`` go to the client)."""
        return cls(SerialTransport(url, baudrate, margin_s=margin_s, exclusive=exclusive), **kwargs)  # type: ignore[arg-type]

    @property
    def configured(self) -> bool:
        """This client configured the board and no reboot was seen since."""
        return self._configured

    @property
    def loaded(self) -> bool:
        """This client loaded :attr:`model_image` into the board and no reboot was seen since."""
        return self._loaded

    @property
    def counters(self) -> LinkCounters:
        """The transport's link counters."""
        return self.transport.counters

    @property
    def step_timeout_s(self) -> float:
        """Deadline of one STEP exchange (0 before :meth:`configure`); settable (a deadline policy may change it)."""
        return self._step_timeout

    @step_timeout_s.setter
    def step_timeout_s(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"step_timeout_s must be > 0, got {value}")
        self._step_timeout = self._step_timeout_override = float(value)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> BoardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- control

    def _control(self, msg: Message, expect: type[Message], *, any_version: bool = False) -> Message:
        """A control request with retries: the first valid ``expect`` answer; ERROR raises; nothing → NoResponse."""
        payload = msg.encode()
        t = self.transport
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                t.counters.retries += 1
            frame = t.request(msg.TYPE, payload, timeout_s=self.control_timeout_s, any_version=any_version)
            if frame is None:
                continue
            if frame.version != VERSION:  # only with any_version (HELLO): the frame layer is the same in all versions
                major = frame.payload[0] if frame.msg_type == MsgType.INFO and frame.payload else frame.version
                raise VersionMismatch(
                    f"{t.url}: the board speaks protocol version {major}; this host speaks {VERSION}. "
                    f"Use a host and firmware of the same major version."
                )
            reply = self._interpret(frame, expect)
            if reply is not None:
                return reply
        raise NoResponse(
            f"{t.url}: no valid answer to {msg.name()} after {attempts} attempt(s) of {self.control_timeout_s:g} s "
            f"(counters: {_nonzero(t.counters)}); is a board running there?"
        )

    def _interpret(self, frame: Frame, expect: type[Message]) -> Message | None:
        if frame.msg_type == MsgType.ERROR:
            try:
                err = Error.decode(frame.payload)
            except ProtocolError:
                self.transport.counters.malformed += 1
                return None
            self._raise_board_error(err)
        if frame.msg_type != expect.TYPE:
            self.transport.counters.malformed += 1
            return None
        try:
            return expect.decode(frame.payload)
        except ProtocolError:
            self.transport.counters.malformed += 1
            return None

    def _raise_board_error(self, err: Error) -> None:
        url = self.transport.url
        if err.code == ErrorCode.NOT_CONFIGURED and self.config is not None:
            # This client configured the board, so it lost that configuration: it rebooted. Every request that
            # needs the session says so again until resync().
            self._forget_session()
            raise BoardReset(
                f"{url}: the board answered not_configured to {_type_name(err.request_type)} after this client "
                f"configured it: it rebooted (boot id was 0x{self.boot_id:08X}); call resync()",
                old_boot_id=self.boot_id,
            )
        if err.code == ErrorCode.BAD_VERSION:
            raise VersionMismatch(f"{url}: the board refuses protocol version {VERSION}: {err.text}")
        raise BoardError(err, url)

    def _forget_session(self) -> None:
        self._configured = False
        self._loaded = False

    def hello(self, *, accept_new_boot: bool = False) -> Info:
        """Ask the board who it is. Raises :class:`VersionMismatch` for another major version and
        :class:`BoardReset` when the boot id changed since the last HELLO (unless ``accept_new_boot``)."""
        t = self.transport
        info: Info = self._control(Hello(), Info, any_version=True)  # type: ignore[assignment]
        if info.version_major != VERSION:
            raise VersionMismatch(
                f"{t.url}: the board speaks protocol version {info.version_major}.{info.version_minor}; this host "
                f"speaks {VERSION}.x. Use a host and firmware of the same major version."
            )
        old = self.boot_id
        self.info = info
        self.boot_id = info.boot_id
        if old and info.boot_id != old and not accept_new_boot:
            self._forget_session()
            raise BoardReset(
                f"{t.url}: the board rebooted (boot id 0x{old:08X} -> 0x{info.boot_id:08X}); call resync()",
                old_boot_id=old,
                new_boot_id=info.boot_id,
                info=info,
            )
        return info

    def check_fits(self, layers: int, input_size: int, hidden: int, outputs: int) -> int:
        """Raise :class:`ModelMismatch` naming the limit if the network does not fit the board (HELLO first);
        return the model image size in bytes."""
        info = self.info or self.hello()
        size = model_image_size(layers, input_size, hidden, outputs)
        checks = (
            ("layers", layers, info.max_layers),
            ("hidden", hidden, info.max_hidden),
            ("input_size", input_size, info.max_input),
            ("outputs", outputs, info.max_outputs),
            ("model image bytes", size, info.max_image_bytes),
            ("STEP payload bytes (2 x input_size)", 2 * input_size, info.max_payload),
            ("RESULT payload bytes (14 + 4 x outputs)", 14 + 4 * outputs, info.max_payload),
        )
        for what, need, limit in checks:
            if need > limit:
                raise ModelMismatch(
                    f"{self.transport.url}: the model does not fit the board: {what} is {need}, the board "
                    f"takes at most {limit} (INFO of '{info.firmware}')"
                )
        return size

    def configure(
        self, layers: int, input_size: int, hidden: int, outputs: int, theta_x: int = 0, theta_h: int = 0
    ) -> ConfigureAck:
        """Set the network geometry and thresholds (Θ in Q8.8 LSB, 0..511). Discards the board's model."""
        self.check_fits(layers, input_size, hidden, outputs)
        msg = Configure(
            layers=layers, input_size=input_size, hidden=hidden, outputs=outputs, theta_x=theta_x, theta_h=theta_h
        )
        ack: ConfigureAck = self._control(msg, ConfigureAck)  # type: ignore[assignment]
        want = (weight_image_size(layers, input_size, hidden), model_image_size(layers, input_size, hidden, outputs))
        got = (ack.weight_image_bytes, ack.model_image_bytes)
        if got != want:
            raise ModelMismatch(
                f"{self.transport.url}: the board expects a model image of {got[1]} bytes (weights {got[0]}); "
                f"this host computes {want[1]} (weights {want[0]}) for layers={layers}, input_size={input_size}, "
                f"hidden={hidden}, outputs={outputs}"
            )
        self.config = msg
        self._configured = True
        self._loaded = False
        self.model_hash = 0
        self._n_in = int(input_size)
        self._n_out = int(outputs)
        self.governor = None  # an accepted CONFIGURE switches the board's governor off
        self._result_shape(0)
        return ack

    def _result_shape(self, n_theta: int) -> None:
        """RESULT's length (outputs, and the thresholds of ``n_theta`` layers) and the STEP deadline that follows."""
        self._n_theta = n_theta
        self._result_len = RESULT_HEAD.size + 4 * self._n_out + 4 * n_theta
        self._reply = StepReply(np.zeros(self._n_out, dtype=np.int32), np.zeros((n_theta, 2), dtype=np.uint16))
        self._step_timeout = (
            float(self._step_timeout_override)
            if self._step_timeout_override is not None
            else self.transport.exchange_time(2 * self._n_in, self._result_len)
        )

    def set_governor(self, policy: str | int, budget_cycles: int = 0, *, report_theta: bool = False) -> SetGovernorAck:
        """Ask the board to govern each step's thresholds (protocol 1.1, ``docs/protocol.md`` §5.12).

        ``policy``: ``"worst"`` or ``"split"`` (or :class:`GovernorPolicy`), ``"off"`` to stop; ``budget_cycles``:
        accelerator cycles a step may take; ``report_theta``: every RESULT then carries the (Θx, Θh) of each layer
        (:attr:`StepReply.thetas`). Raises :class:`GovernorUnsupported` for a board that cannot (protocol 1.0
        firmware: no GOVERNOR capability, ERROR unknown_type; or a policy it does not know).
        """
        if self.config is None or not self._configured:
            raise RuntimeError("configure() the board before set_governor()")
        try:
            policy = GovernorPolicy[policy.upper()] if isinstance(policy, str) else GovernorPolicy(policy)
        except (KeyError, ValueError):
            known = ", ".join(p.name.lower() for p in GovernorPolicy)
            raise GovernorUnsupported(f"unknown governor policy {policy!r}; the protocol has {known}") from None
        info = self.info
        url = self.transport.url
        board = f"'{info.firmware}', protocol {info.version_major}.{info.version_minor}" if info else "the board"
        if policy != GovernorPolicy.OFF and info is not None and not info.capabilities & Capability.GOVERNOR:
            raise GovernorUnsupported(
                f"{url}: {board} does not govern thresholds on the board (no GOVERNOR capability; SET_GOVERNOR is "
                f"protocol 1.1): update its firmware, or run the governor in process (--controller edgedrnn)"
            )
        options = int(GovernorOptions.REPORT_THETA) if report_theta else 0
        msg = SetGovernor(policy=int(policy), options=options, budget_cycles=int(budget_cycles))
        try:
            ack: SetGovernorAck = self._control(msg, SetGovernorAck)  # type: ignore[assignment]
        except BoardError as exc:
            if exc.code in (ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_VALUE):
                what = "SET_GOVERNOR" if exc.code == ErrorCode.UNKNOWN_TYPE else f"governor policy {int(policy)}"
                raise GovernorUnsupported(f"{url}: {board} does not support {what}: {exc.text}") from None
            raise
        self.governor = ack if ack.policy != GovernorPolicy.OFF else None
        on = self.governor is not None and bool(ack.options & GovernorOptions.REPORT_THETA)
        self._result_shape(self.config.layers if on else 0)
        return ack

    def load_model(self, image: bytes | bytearray | memoryview, *, preloaded: bool = False) -> int:
        """Upload a model image (weight image ‖ out weights ‖ out bias) in acknowledged chunks; returns its hash.

        After LOAD_END the board's HELLO must report the same CRC-32 as the bytes sent (else :class:`ModelMismatch`).
        ``preloaded``: the board already holds the image in its store (a firmware flashed or started with it,
        ``docs/protocol.md`` §5.3): LOAD_BEGIN and LOAD_END only, no chunks; the board checks the CRC-32 of what
        it holds.
        """
        if self.config is None or not self._configured:
            raise RuntimeError("configure() the board before load_model()")
        image = bytes(image)
        cfg = self.config
        expected = model_image_size(cfg.layers, cfg.input_size, cfg.hidden, cfg.outputs)
        if len(image) != expected:
            raise ModelMismatch(
                f"model image has {len(image)} bytes; expected {expected} for layers={cfg.layers}, "
                f"input_size={cfg.input_size}, hidden={cfg.hidden}, outputs={cfg.outputs} "
                f"(weight image {weight_image_size(cfg.layers, cfg.input_size, cfg.hidden)} + {cfg.outputs}x"
                f"{cfg.hidden} int8 + {cfg.outputs} int32)"
            )
        assert self.info is not None
        h = crc32(image)
        self._loaded = False
        self.model_hash = 0
        self._control(LoadBegin(total=len(image), crc32=h), LoadBeginAck)
        chunk = self.info.max_payload - 4
        for off in range(0, 0 if preloaded else len(image), chunk):
            part = image[off : off + chunk]
            ack: LoadChunkAck = self._control(LoadChunk(offset=off, data=part), LoadChunkAck)  # type: ignore[assignment]
            if (ack.offset, ack.length) != (off, len(part)):
                raise ProtocolError(
                    f"LOAD_CHUNK_ACK says offset {ack.offset} length {ack.length}; sent offset {off} length {len(part)}"
                )
        done: LoadEndAck = self._control(LoadEnd(), LoadEndAck)  # type: ignore[assignment]
        if done.model_hash != h:
            raise ModelMismatch(f"LOAD_END_ACK reports model hash 0x{done.model_hash:08X}; sent 0x{h:08X}")
        info = self.hello()
        if info.model_hash != h or not info.model_loaded:
            raise ModelMismatch(
                f"{self.transport.url}: after loading, the board reports model hash 0x{info.model_hash:08X} "
                f"(loaded={info.model_loaded}); expected 0x{h:08X}"
            )
        self.model_image = image
        self.model_hash = h
        self._loaded = True
        return h

    def reset_state(self) -> None:
        """Zero the board's recurrent state (thresholds are kept)."""
        self._control(ResetState(), ResetStateAck)

    def set_thresholds(self, theta_x: int, theta_h: int) -> None:
        """New Θx, Θh (Q8.8 LSB, 0..511) from the next step on."""
        ack: SetThresholdsAck = self._control(SetThresholds(theta_x, theta_h), SetThresholdsAck)  # type: ignore[assignment]
        if self.config is not None:
            self.config.theta_x, self.config.theta_h = ack.theta_x, ack.theta_h

    def stats(self) -> StatsReply:
        """The board's own counters."""
        return self._control(Stats(), StatsReply)  # type: ignore[return-value]

    def ping(self, data: bytes = b"") -> float:
        """Round trip of a PING carrying ``data`` (echoed); returns seconds."""
        t0 = time.perf_counter()
        pong: Pong = self._control(Ping(bytes(data)), Pong)  # type: ignore[assignment]
        if pong.data != bytes(data):
            raise ProtocolError(f"PONG carries {len(pong.data)} bytes that differ from the PING's {len(data)}")
        return time.perf_counter() - t0

    def resync(self) -> Info:
        """After a :class:`BoardReset`: HELLO (accepting the new boot id), CONFIGURE, LOAD, RESET_STATE again."""
        info = self.hello(accept_new_boot=True)
        if self.config is not None:
            c = self.config
            gov = self.governor
            self.configure(c.layers, c.input_size, c.hidden, c.outputs, c.theta_x, c.theta_h)
            if gov is not None:
                self.set_governor(gov.policy, gov.budget_cycles, report_theta=bool(gov.options & 1))
            if self.model_image is not None:
                self.load_model(self.model_image)
                self.reset_state()
            info = self.info or info
        return info

    # ---------------------------------------------------------------------------------------------- step

    def step(self, features_q88: np.ndarray) -> StepReply | None:
        """One STEP: Q8.8 features int16 [input_size] → :class:`StepReply` (reused), or None if the response was
        lost (timeout, CRC error, truncated or malformed frame; counted in :attr:`counters`). Never retried.

        Raises :class:`BoardReset` if the board answers not_configured (it rebooted), :class:`BoardError` for any
        other ERROR, :class:`LinkDown` if the link dies.
        """
        x = features_q88
        if type(x) is not np.ndarray or x.dtype != np.int16 or x.shape != (self._n_in,):
            x = self._coerce(x)
        t = self.transport
        t0 = time.monotonic()
        seq = t.send(MsgType.STEP, x.tobytes())
        frame = t.receive(seq, t0 + self._step_timeout)
        if frame is None:
            self.steps_lost += 1
            return None
        p = frame.payload
        if frame.msg_type == MsgType.RESULT and len(p) == self._result_len:
            r = self._reply
            r.cycles, r.compute_ticks, r.fired_columns, r.nonzero_deltas, r.flags = RESULT_HEAD.unpack_from(p)
            r.outputs[:] = np.frombuffer(p, "<i4", self._n_out, RESULT_HEAD.size)
            if self._n_theta:
                r.thetas.flat[:] = np.frombuffer(p, "<u2", 2 * self._n_theta, RESULT_HEAD.size + 4 * self._n_out)
            r.seq = seq
            r.rtt_s = time.monotonic() - t0
            return r
        if frame.msg_type == MsgType.ERROR:
            self.steps_lost += 1
            try:
                err = Error.decode(p)
            except ProtocolError:
                t.counters.malformed += 1
                return None
            self._raise_board_error(err)
        t.counters.malformed += 1
        self.steps_lost += 1
        return None

    def _coerce(self, x: object) -> np.ndarray:
        if not self._configured:
            raise RuntimeError("configure() the board before step()")
        a = np.asarray(x)
        if a.shape != (self._n_in,):
            raise ValueError(f"features must be int16 Q8.8 of shape ({self._n_in},), got shape {a.shape}")
        if a.dtype != np.int16:
            if not np.issubdtype(a.dtype, np.integer) or (a.size and (a.min() < -32768 or a.max() > 32767)):
                raise ValueError(f"features must be int16 Q8.8 (quantize_features() makes them), got {a.dtype}")
            a = a.astype(np.int16)
        return np.ascontiguousarray(a)

    def __repr__(self) -> str:
        return f"BoardClient({self.transport!r}, boot_id=0x{self.boot_id:08X})"


def _type_name(t: int) -> str:
    try:
        return MsgType(t).name
    except ValueError:
        return f"type 0x{t:02X}"


def _nonzero(c: LinkCounters) -> str:
    items = [f"{k}={v}" for k, v in c.as_dict().items() if v]
    return ", ".join(items) or "all zero"


__all__ = [
    "DEFAULT_CONTROL_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "BoardClient",
    "BoardError",
    "BoardReset",
    "ModelMismatch",
    "NoResponse",
    "StepReply",
    "VersionMismatch",
    "outputs_from_acc",
    "quantize_features",
]
