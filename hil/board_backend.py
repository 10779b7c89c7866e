"""The serial-board backend: the loop's inference on a board that speaks the legloop protocol (``docs/protocol.md``).

The board is a real one on a serial port (``BoardLink(port="/dev/ttyACM0")``) or a virtual one this backend starts
for the run and stops at :meth:`SerialBoardBackend.close` (``BoardLink(emulate="python")``: the bit-exact Python
emulator on a pseudo-terminal, with wire-time emulation and fault injection; ``"c"``: the reference C firmware as a
host process; ``"qemu"``: the same firmware on an emulated Cortex-M3 under QEMU).

=====================================  ========================================================================
``BoardLink(...)``                     what the backend starts, and what the host opens
=====================================  ========================================================================
``port=DEV``                           nothing; the host opens ``DEV`` (no fault options: a real board's cable
                                       is what it is)
``emulate="python"``                   ``python -m hil.board_emulator`` (faults, ``reset_after`` and wire time
                                       injected by the emulator); the host opens the emulator's pty
``emulate="c"`` / ``"qemu"``           the firmware; the host opens its pty
``emulate="c"`` / ``"qemu"``,          the firmware, then ``python -m hil.fault_proxy --upstream <its pty>``
``faults=...``                         (:mod:`hil.fault_proxy`: the emulator's drop / corrupt / truncate /
                                       duplicate / delay / ``die_after`` with the same seeded draws and STATS
                                       reporting; ``reset_after`` is refused); the host opens the proxy's pty.
                                       :meth:`SerialBoardBackend.close` stops the proxy, then the firmware
=====================================  ========================================================================

Start-up, once per run: HELLO (protocol version, capacity) → CONFIGURE (geometry, Θx/Θh) → the model image in
acknowledged chunks, checked by CRC-32 (QEMU's slow UART: preloaded by QEMU's loader, then checked the same way) →
RESET_STATE. Per control step, exactly as :class:`hil.edgedrnn.backend.EdgeDRNNBackend` does it in process: z-score
and Q8.8 on the host, the integer delta-GRU and output layer on the board, the raw int32 accumulators scaled on the
host — so the two give bit-identical torques, cycles and fired columns.

What a step reports (:class:`hil.backend.StepResult`): ``latency_s`` is the board's modelled accelerator time
(cycles / its clock: what the 21 µs budget is about), ``round_trip_s`` the measured wall-clock request-to-response
time (what the control period is about; the deadline monitor checks both). A step whose answer is lost — dropped,
corrupted (CRC), truncated, malformed, or later than the step timeout — is ``ok=False``: no torque from it reaches the
motors, the deadline policy decides what does. STEP is never retried: a late torque is useless.

Failures:

=================================  ==============================================================================
what happens                        what the backend does
=================================  ==============================================================================
``watchdog_periods`` steps in a     :class:`hil.rollout.LoopAborted` ("the board stopped answering"): the run ends,
row get no answer                   its metrics say ``ended: aborted`` and why, the run log is closed
the link goes down (the board       :class:`hil.rollout.LoopAborted` at once (the process's exit code when this
process died, the cable)            backend started it)
the board rebooted mid-run          ``on_reset="resync"`` (default): the step is lost, the board is configured and
(state lost: a new boot id, or      loaded again and its state zeroed — the network restarts from zero state, as
ERROR not_configured)               after an episode start — and the run goes on, counted in ``board_resets``;
                                    ``on_reset="stop"``: :class:`hil.rollout.LoopAborted`
=================================  ==============================================================================

Link events of each step (:attr:`StepResult.events`, the run log's ``link_events`` column) are a bit mask of
``LINK_EVENT_*``: what the host's counters saw during that step's exchange (a duplicate or a stale answer of an
earlier step is seen, and flagged, on the step during which it arrives).

:meth:`SerialBoardBackend.episode_stats` gives ``link`` {crc_errors, truncated, malformed, resyncs, timeouts,
seq_gaps, duplicates, stale, retries, steps_lost, board_resets, round_trip_us {mean, p50, p99, p99_9, max}} since the
episode started and, from a board that injects faults (the Python emulator, or a firmware behind the fault proxy,
which adds its injections to the board's STATS counters and sets INFO's FAULT_INJECTION bit), ``link.injected``
{drop, corrupt, truncate, duplicate, delayed, resets} from its STATS counters over the same span.

Governor (``governor="predictive-worst"`` or ``"predictive-split"``, protocol 1.1): the board itself chooses every
step's thresholds against the budget in cycles (SET_GOVERNOR, ``docs/protocol.md`` §5.12: the largest cycle count whose
cycles / clock fits ``budget_s``) — the worst governor of :mod:`hil.edgedrnn.predictive` (policy WORST: the step
priced by an upper bound, run in one invocation) or its split governor (policy SPLIT: layer by layer), where the
layers' h are.
Sent after CONFIGURE (and again by a resync), with REPORT_THETA so that :meth:`SerialBoardBackend.episode_stats`
gives ``governor_actions`` (steps whose per-layer thresholds differ from the previous step's),
``governor_raised_steps`` (RESULT flag THETA_RAISED) and ``governor_over_budget_steps`` (OVER_BUDGET), as the
in-process backend does. A board without the GOVERNOR capability is refused before any step
(:class:`firmware_bridge.board_client.GovernorUnsupported`); the other governors run in process only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from firmware_bridge.board_client import BoardClient, BoardReset, NoResponse
from firmware_bridge.bundle import Bundle
from firmware_bridge.protocol import Capability, Info, ResultFlags, build_model_image
from firmware_bridge.transport import DEFAULT_BAUDRATE, LinkCounters, LinkDown, LinkError
from hil.backend import StepResult
from hil.board_emulator import EmulatorOptions, FaultConfig
from hil.deadline import DEFAULT_BUDGET_S
from hil.governors import check_board_governor
from hil.rollout import LoopAborted

if TYPE_CHECKING:
    from hil.board_process import BoardProcess

# StepResult.events bits: what the link saw during a step's exchange.
LINK_EVENT_LOST = 1  # no usable answer: the step produced no result
LINK_EVENT_TIMEOUT = 2
LINK_EVENT_CRC = 4
LINK_EVENT_TRUNCATED = 8
LINK_EVENT_MALFORMED = 16
LINK_EVENT_DUPLICATE = 32
LINK_EVENT_STALE = 64
LINK_EVENT_SEQ_GAP = 128
LINK_EVENT_RESYNC = 256  # bytes skipped to regain frame sync
LINK_EVENT_BOARD_RESET = 512  # the board rebooted (state lost) and was configured again
LINK_EVENT_NAMES = (
    "lost",
    "timeout",
    "crc_error",
    "truncated",
    "malformed",
    "duplicate",
    "stale",
    "seq_gap",
    "resync",
    "board_reset",
)
# Counters whose change during a step sets an event bit, in the order of the bits above (after LOST).
_EVENT_COUNTERS = ("timeouts", "crc_errors", "truncated", "malformed", "duplicates", "stale", "seq_gaps", "resyncs")

ON_RESET = ("resync", "stop")
EMULATE_KINDS = ("python", "c", "qemu")
DEFAULT_WATCHDOG_PERIODS = 20  # 100 ms of silence at 200 Hz
# Kinds whose UART is slow enough (QEMU's emulated PL011 moves ~15 kB/s) that the image is preloaded, not uploaded.
_PRELOAD_KINDS = ("qemu",)
# Extra time a STEP may take on an emulated Cortex-M (its UART and its integer GRU are slow) before it counts as lost.
_QEMU_STEP_MARGIN_S = 0.05


def budget_cycles(budget_s: float, clock_hz: float) -> int:
    """The largest cycle count c with ``c / clock_hz ≤ budget_s`` in float arithmetic (the latency test the host
    applies to RESULT.cycles): the budget SET_GOVERNOR carries. ``hil.edgedrnn.predictive.max_cycles_within`` with
    T_sys = 0, without importing the model."""
    inv = 1.0 / clock_hz
    c = max(0, math.floor(budget_s * clock_hz))
    while c > 0 and c * inv > budget_s:
        c -= 1
    while (c + 1) * inv <= budget_s:
        c += 1
    return c


def link_events_text(events: int) -> str:
    """``"lost|crc_error"`` for a bit mask of ``LINK_EVENT_*`` (empty for 0)."""
    return "|".join(name for bit, name in enumerate(LINK_EVENT_NAMES) if events >> bit & 1)


@dataclass(frozen=True)
class BoardLink:
    """Where the board is and how to talk to it (picklable: part of :class:`hil.spec.ControllerSpec`).

    Parameters
    ----------
    port
        A real board: a device path or a pyserial URL (``/dev/ttyACM0``, ``socket://host:port``, ``spy://…``).
    emulate
        Or a virtual board started for the run: ``python`` (the emulator), ``c`` (the C firmware on a pty) or
        ``qemu`` (the firmware on QEMU's Cortex-M3 board).
    baud
        With ``port``: the line rate, bits/s (default 921600; native-USB boards ignore it). With ``emulate="python"``:
        the wire time the emulator honours (None: full speed). The host's step timeout follows it.
    faults
        The emulator's seeded fault injection: by the emulator itself (``emulate="python"``) or, for ``"c"`` and
        ``"qemu"``, by a fault proxy between the host and the firmware (:mod:`hil.fault_proxy`; no ``reset_after``:
        the proxy cannot reboot the firmware). Refused with ``port``.
    watchdog_periods
        Control steps in a row without an answer after which the run is aborted.
    on_reset
        A board that reboots mid-run: ``resync`` (configure, load and go on) or ``stop`` (abort the run).
    step_timeout_s
        How long a STEP may take before it counts as lost (default: the wire time of STEP + RESULT at ``baud``
        plus 4 ms; QEMU 50 ms more). A lost step costs this much wall time.
    control_timeout_s
        Per attempt of a control request (HELLO, CONFIGURE, LOAD_*, STATS; retried 3 times).
    """

    port: str | None = None
    emulate: str | None = None
    baud: float | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    watchdog_periods: int = DEFAULT_WATCHDOG_PERIODS
    on_reset: str = "resync"
    step_timeout_s: float | None = None
    control_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming what is wrong and what was expected."""
        if (self.port is None) == (self.emulate is None):
            raise ValueError(
                "a board is either on a port or emulated: give port (e.g. /dev/ttyACM0) or emulate "
                f"({', '.join(EMULATE_KINDS)}), not {'both' if self.port else 'neither'}"
            )
        if self.emulate is not None and self.emulate not in EMULATE_KINDS:
            raise ValueError(f"unknown board to emulate {self.emulate!r}; expected one of {', '.join(EMULATE_KINDS)}")
        if self.baud is not None and not (isinstance(self.baud, int | float) and 0 < self.baud <= 100e6):
            raise ValueError(f"baud must be a line rate in (0, 1e8] bits/s (e.g. 921600), got {self.baud!r}")
        if self.emulate in ("c", "qemu") and self.baud is not None:
            raise ValueError(f"the {self.emulate!r} board answers at full speed; emulated wire time (baud) is python's")
        if self.injects and self.emulate is None:
            raise ValueError(
                "a real board injects no faults; fault options need a virtual board (emulate='python', or 'c' / "
                "'qemu' behind the fault proxy)"
            )
        if self.faults.reset_after is not None and self.emulate in ("c", "qemu"):
            raise ValueError(
                f"the {self.emulate!r} board injects no faults of its own, and the fault proxy in front of it cannot "
                f"reboot it: reset_after needs emulate='python'"
            )
        if isinstance(self.watchdog_periods, bool) or not (
            isinstance(self.watchdog_periods, int) and 1 <= self.watchdog_periods <= 100_000
        ):
            raise ValueError(f"watchdog_periods must be an integer in 1..100000, got {self.watchdog_periods!r}")
        if self.on_reset not in ON_RESET:
            raise ValueError(f"on_reset must be one of {', '.join(ON_RESET)}, got {self.on_reset!r}")
        if self.step_timeout_s is not None and not 0 < self.step_timeout_s <= 10:
            raise ValueError(f"step_timeout_s must be in (0, 10] s, got {self.step_timeout_s}")
        if not 0 < self.control_timeout_s <= 60:
            raise ValueError(f"control_timeout_s must be in (0, 60] s, got {self.control_timeout_s}")

    @property
    def injects(self) -> bool:
        """Whether :attr:`faults` asks for anything to be injected."""
        f = self.faults
        return f.active or f.reset_after is not None or f.die_after is not None

    @property
    def proxied(self) -> bool:
        """Whether a fault proxy runs between the host and the board (a firmware with faults to inject)."""
        return self.emulate in ("c", "qemu") and self.injects

    @property
    def where(self) -> str:
        return f"board at {self.port}" if self.port is not None else f"emulated {self.emulate} board"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = {k: (str(v) if k == "delay_ms" and v is not None else v) for k, v in asdict(self.faults).items()}
        return d


LINK_FAULT_KEYS = ("drop", "corrupt", "truncate", "duplicate", "delay", "delay_ms", "seed", "timeout_ms")
# A sweep is not paced: its worker pool keeps every core busy, so a healthy board process can wait for a CPU for
# longer than the real-time default (wire + 4 ms) and its step would count as lost. A sweep's link waits this long
# for an answer (``timeout_ms=`` overrides it); a dropped frame costs that much wall time.
SWEEP_STEP_TIMEOUT_S = 0.1


def link_from_text(text: str) -> BoardLink | None:
    """A sweep's ``link_faults`` parameter → the emulated board it runs on: ``""`` no board (None); ``"board"`` the
    Python emulator without faults; ``"drop=0.01,corrupt=0.01,truncate=0.005,seed=3"`` (keys: drop, corrupt,
    truncate, duplicate — probabilities; delay_ms — ``2``, ``uniform:0.5,3`` or ``exp:1``; delay; seed) the emulator
    with those faults. The step timeout is :data:`SWEEP_STEP_TIMEOUT_S` unless ``timeout_ms=`` says otherwise.
    Raises ``ValueError`` naming the bad part."""
    from hil.board_emulator import DelaySpec

    text = text.strip()
    if not text:
        return None
    if text == "board":
        return BoardLink(emulate="python", step_timeout_s=SWEEP_STEP_TIMEOUT_S)
    kw: dict[str, Any] = {}
    timeout_s = SWEEP_STEP_TIMEOUT_S
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        key = key.strip()
        if not sep or key not in LINK_FAULT_KEYS:
            raise ValueError(
                f"link_faults {text!r}: {part.strip()!r} is not KEY=VALUE with KEY one of {', '.join(LINK_FAULT_KEYS)} "
                '(e.g. "drop=0.01,corrupt=0.01,seed=3"), or "board" for the emulated board without faults'
            )
        try:
            if key == "timeout_ms":
                timeout_s = float(value) / 1e3
            elif key == "delay_ms":
                kw[key] = DelaySpec.parse(value)
            elif key == "seed":
                kw[key] = int(value)
            else:
                kw[key] = float(value)
        except ValueError as exc:
            raise ValueError(f"link_faults {text!r}: {key}={value!r}: {exc}") from None
    return BoardLink(emulate="python", faults=FaultConfig(**kw), step_timeout_s=timeout_s)


class SerialBoardBackend:
    """:class:`hil.backend.InferenceBackend` on a board over the legloop protocol.

    Parameters
    ----------
    bundle
        The deployment bundle (:func:`firmware_bridge.export.bundle_from_model`): weights, thresholds, the host's
        normalisation and output scaling.
    link
        Where the board is (:class:`BoardLink`).
    budget_s
        Latency budget of the board's modelled compute (``StepResult.deadline_met``).
    clock_hz
        The accelerator clock an emulated Python board models; a real board reports its own (INFO.clock_hz), and
        that is the clock latencies are computed with.
    governor
        ``"predictive-worst"`` / ``"predictive-split"``: the board governs its thresholds against ``budget_s`` (module
        docstring); None: the bundle's thresholds every step.

    Raises (before any step) ``firmware_bridge.transport.LinkError`` (no such port, port in use),
    ``firmware_bridge.board_client.VersionMismatch`` / ``ModelMismatch`` (another protocol version; a model that
    does not fit the board, or a board that holds another model than the one sent), ``NoResponse`` (nothing
    answers), ``hil.board_process.BoardStartError`` (an emulated board did not start),
    ``firmware_bridge.c_firmware.FirmwareError`` (no compiler / QEMU to build the firmware),
    ``firmware_bridge.board_client.GovernorUnsupported`` (a governor asked of a board that has none).
    """

    kind = "board"
    info: Info
    clock_hz: float
    injects_faults: bool
    result: StepResult
    dead: str | None
    _answering: bool
    _inv_clock: float
    _mean: np.ndarray
    _std: np.ndarray
    _scale: np.ndarray
    _offset: np.ndarray
    _z: np.ndarray
    _q: np.ndarray
    _acc: np.ndarray
    _rtt: np.ndarray
    _thetas: np.ndarray
    _gov_steps: int

    def __init__(
        self,
        bundle: Bundle,
        link: BoardLink,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        clock_hz: float = 125e6,
        capacity: int = 1 << 15,
        governor: str | None = None,
    ) -> None:
        if not budget_s > 0:
            raise ValueError(f"budget_s must be > 0, got {budget_s}")
        self._gov_policy = check_board_governor(governor)
        self.governor = governor
        self.governor_budget_cycles = 0
        self.bundle = bundle
        self.link = link
        self.budget_s = float(budget_s)
        self.input_size = bundle.input_size
        self.n_outputs = bundle.n_outputs
        self.hidden_size = bundle.hidden
        # Δx and Δh entries per step, as the EdgeDRNN model counts them: layer 1 has I + H, every later one 2H.
        self.delta_elements = bundle.input_size + bundle.hidden + (bundle.layers - 1) * 2 * bundle.hidden
        self.dense_macs = 3 * bundle.hidden * self.delta_elements + bundle.hidden * bundle.n_outputs
        self.image = build_model_image(bundle.image, bundle.out_weight, bundle.out_bias)
        self.path = link.port or link.where
        self.process: BoardProcess | None = None
        self.proxy: BoardProcess | None = None  # the fault proxy in front of a firmware board, when faults are asked
        self.client: BoardClient | None = None
        try:
            self._connect(clock_hz)
        except BaseException:
            self.close()
            raise
        assert self.client is not None and self.client.info is not None
        self.info = self.client.info
        self.clock_hz = float(self.info.clock_hz) if self.info.clock_hz else float(clock_hz)
        self._inv_clock = 1.0 / self.clock_hz
        self.injects_faults = bool(Capability(self.info.capabilities) & Capability.FAULT_INJECTION)
        # Per-step work buffers: nothing is allocated in step().
        self._mean = np.asarray(bundle.input_mean, dtype=np.float64).copy()
        self._std = np.asarray(bundle.input_std, dtype=np.float64).copy()
        self._scale = np.asarray(bundle.out_scale, dtype=np.float64).copy()
        self._offset = np.asarray(bundle.out_offset, dtype=np.float64).copy()
        self._z = np.zeros(self.input_size, dtype=np.float64)
        self._q = np.zeros(self.input_size, dtype=np.int16)
        self._acc = np.zeros(self.n_outputs, dtype=np.float64)
        self._rtt = np.zeros(max(16, int(capacity)), dtype=np.float64)
        self.result = StepResult(outputs=np.zeros(self.n_outputs, dtype=np.float64), cycles=0)
        self._thetas = np.zeros((bundle.layers, 2), dtype=np.uint16)  # the last governed step's per-layer Θ
        self._gov_steps = 0  # governed steps answered (lifetime): the first one changes nothing
        self.dead: str | None = None  # why the board can no longer be used, once it cannot
        self._answering = True  # False once the link went down or the watchdog tripped: do not ask it anything
        self.reset()

    # ------------------------------------------------------------------------------------------ start-up
    def _connect(self, clock_hz: float) -> None:
        link = self.link
        b = self.bundle
        baud = link.baud
        path = link.port
        if link.emulate is not None:
            from hil.board_process import launcher_for, start_board

            kind = link.emulate
            if kind == "python":
                options = EmulatorOptions(baud=baud, clock_mhz=clock_hz / 1e6, faults=link.faults)
                self.process = start_board("python", options)
            else:
                launcher = launcher_for(kind)
                # A firmware build holds networks up to its MAX_HIDDEN (128 by default): build one for a larger net.
                kw: dict[str, Any] = {"max_hidden": b.hidden} if b.hidden > 128 else {}
                if kind in _PRELOAD_KINDS:
                    kw["preload"] = self.image
                launcher = type(launcher)(**kw) if kw else launcher
                self.process = start_board(launcher)
            path = self.process.path
            if link.proxied:
                from hil.fault_proxy import FaultProxyLauncher

                self.proxy = start_board(FaultProxyLauncher(path), EmulatorOptions(faults=link.faults))
                path = self.proxy.path
        assert path is not None
        client = BoardClient.open(
            path,
            baudrate=baud or DEFAULT_BAUDRATE,
            control_timeout_s=link.control_timeout_s,
            step_timeout_s=link.step_timeout_s,
        )
        self.client = client
        self.path = path
        client.hello()
        client.configure(b.layers, b.input_size, b.hidden, b.n_outputs, b.theta_x, b.theta_h)
        if self._gov_policy is not None:
            assert client.info is not None
            clock = float(client.info.clock_hz) if client.info.clock_hz else float(clock_hz)
            self.governor_budget_cycles = budget_cycles(self.budget_s, clock)
            client.set_governor(self._gov_policy, self.governor_budget_cycles, report_theta=True)
        if link.emulate == "qemu" and link.step_timeout_s is None:
            # Wire time + margin is set by configure(); the emulated core's integer GRU needs more.
            client.step_timeout_s = client.step_timeout_s + _QEMU_STEP_MARGIN_S
        client.load_model(self.image, preloaded=link.emulate in _PRELOAD_KINDS)

    # ------------------------------------------------------------------------------------------ episode
    def reset(self) -> None:
        """New episode: zero the board's recurrent state and restart the per-episode counters."""
        client = self._live_client()
        try:
            client.reset_state()
        except BoardReset:
            if self.link.on_reset == "stop":
                raise
            client.resync()
        except LinkError as exc:
            self.dead = str(exc)
            raise
        self._c0 = client.counters.copy()
        self._injected0 = self._board_stats()
        self._steps = 0
        self._silent = 0
        self.gov_raised = 0
        self.gov_over = 0
        self.gov_actions = 0
        self.steps_lost = 0
        self.board_resets = 0
        self.result.outputs.fill(0.0)

    def _live_client(self) -> BoardClient:
        if self.client is None:
            raise RuntimeError("the board backend is closed")
        if self.dead is not None:
            raise LoopAborted(f"the board at {self.path} cannot be used: {self.dead}")
        return self.client

    def _board_stats(self) -> dict[str, int] | None:
        """The board's injected-fault counters (None for a board that injects none)."""
        if not self.injects_faults or self.client is None:
            return None
        s = self.client.stats()
        return {
            "drop": s.fault_drop,
            "corrupt": s.fault_corrupt,
            "truncate": s.fault_truncate,
            "duplicate": s.fault_duplicate,
            "delayed": s.fault_delay,
            "resets": s.resets,
        }

    # ------------------------------------------------------------------------------------------ control step
    def step(self, features: np.ndarray) -> StepResult:
        """One control period on the board; ``ok=False`` when its answer was lost (see the module docstring)."""
        client = self.client
        if client is None or self.dead is not None:
            self._live_client()
        assert client is not None
        f = features
        if type(f) is not np.ndarray or f.shape != (self.input_size,):
            f = np.asarray(features, dtype=np.float64)
            if f.shape != (self.input_size,):
                raise ValueError(f"features must have shape ({self.input_size},), got {f.shape}")
        # Q8.8 exactly as the in-process backend: rint((f − mean) / std · 256), NaN → 0, saturated to int16.
        z = self._z
        np.subtract(f, self._mean, out=z)
        np.divide(z, self._std, out=z)
        np.multiply(z, 256.0, out=z)
        np.rint(z, out=z)
        np.nan_to_num(z, copy=False, nan=0.0, posinf=32767.0, neginf=-32768.0)
        np.clip(z, -32768.0, 32767.0, out=z)
        q = self._q
        q[:] = z
        c = client.counters
        before = (c.timeouts, c.crc_errors, c.truncated, c.malformed, c.duplicates, c.stale, c.seq_gaps, c.resyncs)
        r = self.result
        events = 0
        try:
            reply = client.step(q)
        except BoardReset as exc:
            reply = None
            events = LINK_EVENT_BOARD_RESET
            self._board_reset(exc)
        except LinkDown as exc:
            self._link_down(exc)
        after = (c.timeouts, c.crc_errors, c.truncated, c.malformed, c.duplicates, c.stale, c.seq_gaps, c.resyncs)
        if after != before:
            bit = 2
            for a, b in zip(after, before, strict=True):
                if a != b:
                    events |= bit
                bit <<= 1
        n = self._steps
        if n == self._rtt.size:
            self._rtt = np.concatenate([self._rtt, np.zeros(n, dtype=np.float64)])
        self._steps = n + 1
        if reply is None:
            self._rtt[n] = math.nan
            self.steps_lost += 1
            self._silent += 1
            r.ok = False
            r.events = events | LINK_EVENT_LOST
            r.round_trip_s = 0.0
            if self._silent >= self.link.watchdog_periods:
                self._watchdog()
            return r
        self._silent = 0
        self._rtt[n] = reply.rtt_s
        # acc · 2^-15 · scale + offset, in the in-process backend's order of operations.
        acc = self._acc
        acc[:] = reply.outputs
        np.divide(acc, 32768.0, out=acc)
        np.multiply(acc, self._scale, out=acc)
        np.add(acc, self._offset, out=r.outputs)
        cycles = reply.cycles
        r.ok = True
        r.cycles = cycles
        r.latency_s = latency = cycles * self._inv_clock
        r.deadline_met = latency <= self.budget_s
        r.fired_columns = reply.fired_columns
        r.nonzero_deltas = reply.nonzero_deltas
        r.round_trip_s = reply.rtt_s
        r.events = events
        if self._gov_policy is not None:
            flags = reply.flags
            if flags & ResultFlags.THETA_RAISED:
                self.gov_raised += 1
            if flags & ResultFlags.OVER_BUDGET:
                self.gov_over += 1
            th = reply.thetas
            if th.shape == self._thetas.shape:
                if self._gov_steps and not np.array_equal(th, self._thetas):
                    self.gov_actions += 1
                self._thetas[:] = th
                self._gov_steps += 1
        return r

    def _board_reset(self, exc: BoardReset) -> None:
        self.board_resets += 1
        if self.link.on_reset == "stop":
            self.dead = f"it rebooted mid-run (state lost): {exc}"
            raise LoopAborted(
                f"the board at {self.path} rebooted at step {self._steps} (its state is lost); on_reset='stop' "
                f"ends the run (on_reset='resync' configures it again and goes on)"
            )
        assert self.client is not None
        try:
            self.client.resync()
        except (LinkError, BoardReset) as again:
            self.dead = f"it rebooted and could not be configured again: {again}"
            raise LoopAborted(
                f"the board at {self.path} rebooted at step {self._steps}; configuring it again failed: {again}"
            ) from None

    def _exited(self) -> str:
        """Which process this backend started has exited, and how ("" if none has)."""
        out = []
        for what, proc in (("the board process", self.process), ("the fault proxy", self.proxy)):
            if proc is not None and proc.returncode is not None:
                out.append(f"{what} exited with code {proc.returncode}")
        return "; ".join(out)

    def _gone(self, why: str) -> str:
        """The board can no longer be asked anything: remember why (returned, for the message that ends the run)."""
        self.dead = why
        self._answering = False
        return why

    def _link_down(self, exc: LinkDown) -> None:
        exited = self._exited()
        why = self._gone(f"{exc} ({exited})" if exited else str(exc))
        raise LoopAborted(f"the link to the board went down at step {self._steps}: {why}")

    def _watchdog(self) -> None:
        n = self.link.watchdog_periods
        exited = self._exited()
        why = self._gone(f"it did not answer {n} control steps in a row" + (f"; {exited}" if exited else ""))
        raise LoopAborted(f"watchdog: the board at {self.path} stopped answering: {why} (watchdog_periods={n})")

    # ------------------------------------------------------------------------------------------ records
    @property
    def governor_thetas(self) -> np.ndarray:
        """uint16 [L, 2]: the (Θx, Θh) each layer ran with at the last governed step (a copy; zeros before one)."""
        return self._thetas.copy()

    def round_trips_s(self) -> np.ndarray:
        """Round trip of every step since :meth:`reset` (NaN for a lost step; a view)."""
        return self._rtt[: self._steps]

    def episode_stats(self) -> dict[str, Any]:
        """``link``: the host's counters since :meth:`reset`, round-trip percentiles and, from an emulator or through
        a fault proxy, what was injected (``link.injected``; None when the board could not be asked)."""
        assert self.client is not None
        d: LinkCounters = self.client.counters - self._c0
        rtt = self.round_trips_s()
        rtt = rtt[np.isfinite(rtt)] * 1e6
        if rtt.size:
            p50, p99, p999 = np.percentile(rtt, [50, 99, 99.9])
            trip = {"mean": float(rtt.mean()), "p50": float(p50), "p99": float(p99), "p99_9": float(p999)}
            trip["max"] = float(rtt.max())
        else:
            trip = dict.fromkeys(("mean", "p50", "p99", "p99_9", "max"), 0.0)
        counts = d.as_dict()
        link: dict[str, Any] = {k: counts[k] for k in (*_EVENT_COUNTERS, "retries", "frames_sent", "frames_received")}
        link |= {
            "steps": self._steps,
            "steps_lost": self.steps_lost,
            "board_resets": self.board_resets,
            "round_trip_us": {k: round(v, 2) for k, v in trip.items()},
        }
        out: dict[str, Any] = {}
        if self._gov_policy is not None:
            out = {
                "governor": self.governor,
                "governor_actions": self.gov_actions,
                "governor_raised_steps": self.gov_raised,
                "governor_over_budget_steps": self.gov_over,
            }
        if self.injects_faults:
            injected: dict[str, int] | None = None
            if self._answering and self._injected0 is not None:
                try:
                    now = self._board_stats()
                except (LinkError, NoResponse, BoardReset) as exc:
                    link["injected_unavailable"] = str(exc)
                else:
                    assert now is not None
                    injected = {k: (now[k] - self._injected0[k]) & 0xFFFFFFFF for k in now}
            else:
                link["injected_unavailable"] = self.dead or "the board's counters were not read"
            link["injected"] = injected
        return out | {"link": link}

    def describe(self) -> dict[str, Any]:
        info = self.info
        b = self.bundle
        return {
            "kind": self.kind,
            "link": self.link.to_dict(),
            "device": self.path,
            "fault_proxy_upstream": self.process.path if self.proxy is not None and self.process else None,
            "firmware": info.firmware,
            "protocol": f"{info.version_major}.{info.version_minor}",
            "boot_id": f"0x{info.boot_id:08X}",
            "model_hash": f"0x{self.client.model_hash:08X}" if self.client else None,
            "capabilities": [c.name for c in Capability if c & info.capabilities],
            "layers": b.layers,
            "hidden": b.hidden,
            "inputs": b.input_size,
            "outputs": b.n_outputs,
            "theta_x_lsb": b.theta_x,
            "theta_h_lsb": b.theta_h,
            "clock_hz": self.clock_hz,
            "budget_s": self.budget_s,
            "governor": self.governor,
            "governor_budget_cycles": self.governor_budget_cycles if self.governor else None,
            "step_timeout_s": self.client.step_timeout_s if self.client else None,
        }

    def close(self) -> None:
        """Close the port and stop what this backend started: the fault proxy first, then the board (idempotent)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.process is not None:
            self.process.stop()
            self.process = None
