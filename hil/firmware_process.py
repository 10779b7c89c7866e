"""Start the C reference firmware as a board process: kind ``"c"`` (the host build on a pty it creates) and kind
``"qemu"`` (the Cortex-M image on QEMU's MPS2 board, UART0 on a pty; Cortex-M3 on ``mps2-an385`` by default,
``cpu="m7"`` for the Cortex-M7 image on ``mps2-an500``).

    with start_firmware("c") as board:                    # or "qemu", or start_firmware(QemuLauncher(cpu="m7"))
        client = BoardClient.open(board.path)

The launchers are ``hil.board_process`` :class:`~hil.board_process.BoardLauncher` subclasses, registered there when
this module is imported, so ``start_board("c")`` / ``start_board("qemu")`` work too (they refuse emulator options
the firmware cannot honour: a baud rate to emulate, faults to inject). :func:`start_firmware` does the same
start-up for a launcher *instance* (another CPU, the sanitizer build, a preloaded image).

Builds happen on demand through :func:`firmware_bridge.c_firmware.cached_build` into the firmware cache
(``~/.cache/legloop/firmware/<hash of sources + flags>``); a missing compiler or QEMU raises
:class:`~firmware_bridge.c_firmware.FirmwareError` naming the package to install.

QEMU specifics: each reopen of QEMU's pty stalls ~1 s unless some handle on it stays open, so the ``"qemu"`` kind
runs QEMU under a small holder (``python -m hil.firmware_process hold -- qemu-system-arm …``) that opens the pty as
soon as QEMU names it and keeps it until QEMU exits; QEMU gets SIGTERM when the holder does and dies with it
(``PR_SET_PDEATHSIG``). ``taskset`` pins QEMU to CPUs (nothing is pinned by default). ``preload`` puts a model
image into the board's image store with QEMU's loader before the CPU starts (``docs/porting.md``): the host then
sends LOAD_BEGIN and LOAD_END without LOAD_CHUNKs (:func:`load_preloaded`) — QEMU's UART moves ~15 kB/s, so a
151 KB 2L-128H image would otherwise take ~10 s to upload.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from firmware_bridge import c_firmware as cf
from firmware_bridge.protocol import crc32
from hil.board_process import BoardLauncher, BoardProcess, BoardStartError, register_launcher, start_board

if TYPE_CHECKING:
    from firmware_bridge.board_client import BoardClient

PRELOAD_MAGIC = 0x4C504C4C  # proto.h PROTO_PRELOAD_MAGIC
PRELOAD_ADDR = 0x20100000  # mps2.ld: the IMAGE region (app_image_store)
DEFAULT_STARTUP_TIMEOUT_S = 60.0  # a cold cache builds the firmware first
_ROOT = Path(__file__).resolve().parents[1]


class FirmwareStartError(BoardStartError):
    """The firmware process did not announce its device (it exited, or timed out); the message has its output."""


def preload_blob(image: bytes) -> bytes:
    """The bytes a loader puts at the image store: magic, size, ~size, 0, then the model image (``proto.h``)."""
    n = len(image)
    return struct.pack("<IIII", PRELOAD_MAGIC, n, ~n & 0xFFFFFFFF, 0) + bytes(image)


def _refuse_emulator_options(kind: str, options: object) -> None:
    """The firmware serves at full speed without fault injection: refuse options that ask for more."""
    if options is None:
        return
    if getattr(options, "baud", None) is not None:
        raise ValueError(f"the {kind!r} board does not emulate wire time (baud); use the 'python' emulator")
    faults = getattr(options, "faults", None)
    if faults is not None and (faults.active or faults.reset_after is not None or faults.die_after is not None):
        raise ValueError(
            f"the {kind!r} board injects no faults; put a fault proxy in front of it (hil.fault_proxy, which "
            f"BoardLink(emulate={kind!r}, faults=...) starts) or use the 'python' emulator for fault runs"
        )


class FirmwareLauncher(BoardLauncher):
    """Base of the firmware launchers."""

    kind: ClassVar[str]
    device_pattern: ClassVar[re.Pattern[str]]

    def argv(self, options: object = None) -> list[str]:
        raise NotImplementedError


class CFirmwareLauncher(FirmwareLauncher):
    """``legloop-fw-host`` (kind ``"c"``): the firmware as a POSIX process on a pty it creates.

    ``sanitize`` runs the AddressSanitizer + UBSan build; ``max_hidden`` and ``make_vars`` (``MAX_PAYLOAD``, …)
    choose the build's capacity; ``preload`` (model image bytes) fills the image store before serving.
    """

    kind = "c"
    device_pattern = re.compile(r"^device: (\S+)\s*$")

    def __init__(
        self,
        *,
        sanitize: bool = False,
        max_hidden: int | None = None,
        preload: bytes | None = None,
        make_vars: dict[str, object] | None = None,
    ) -> None:
        self.sanitize = sanitize
        self.max_hidden = max_hidden
        self.preload = preload
        self.make_vars = dict(make_vars or {})

    def executable(self) -> Path:
        target, folder = ("sanitize", "asan") if self.sanitize else ("host", "host")
        root = cf.cached_build([target], max_hidden=self.max_hidden, **self.make_vars)
        return root / folder / "legloop-fw-host"

    def argv(self, options: object = None) -> list[str]:
        _refuse_emulator_options(self.kind, options)
        cmd = [str(self.executable())]
        if self.preload is not None:
            cmd += ["--preload", str(_image_file(self.preload, raw=True))]
        return cmd

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.sanitize:
            env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        return env


class QemuLauncher(FirmwareLauncher):
    """The MPS2 image under ``qemu-system-arm`` (kind ``"qemu"``), UART0 on a pty.

    ``cpu``: ``"m3"`` (``mps2-an385``) or ``"m7"`` (``mps2-an500``). ``taskset``: CPU list for ``taskset -c``
    (e.g. ``"1"``), None = not pinned. ``icount``: ``-icount shift=0`` (SysTick then counts instructions:
    RESULT.compute_ticks × 40 = instructions of the step). ``preload``: model image bytes for QEMU's loader.
    """

    kind = "qemu"
    device_pattern = re.compile(r"char device redirected to (/dev/\S+)")

    def __init__(
        self,
        cpu: str = "m3",
        *,
        taskset: str | None = None,
        icount: bool = False,
        preload: bytes | None = None,
        max_hidden: int | None = None,
        make_vars: dict[str, object] | None = None,
    ) -> None:
        if cpu not in cf.QEMU_MACHINES:
            raise ValueError(f"cpu must be one of {sorted(cf.QEMU_MACHINES)}, got {cpu!r}")
        self.cpu = cpu
        self.machine = cf.QEMU_MACHINES[cpu]
        self.taskset = taskset
        self.icount = icount
        self.preload = preload
        self.max_hidden = max_hidden
        self.make_vars = dict(make_vars or {})

    def elf(self) -> Path:
        root = cf.cached_build([f"qemu-{self.cpu}"], max_hidden=self.max_hidden, **self.make_vars)
        return root / f"qemu-{self.cpu}" / "legloop-fw.elf"

    def qemu_argv(self) -> list[str]:
        cmd = [*cf.qemu_command(self.elf(), self.machine, icount=self.icount), "-serial", "pty"]
        if self.preload is not None:
            blob = _image_file(self.preload, raw=False)
            cmd += ["-device", f"loader,file={blob},addr={PRELOAD_ADDR:#x},force-raw=on"]
        if self.taskset:
            tool = shutil.which("taskset")
            if tool is None:
                raise cf.FirmwareError("taskset not found (util-linux); start without taskset= or install it")
            cmd = [tool, "-c", str(self.taskset), *cmd]
        return cmd

    def argv(self, options: object = None) -> list[str]:
        _refuse_emulator_options(self.kind, options)
        return [sys.executable, "-m", "hil.firmware_process", "hold", "--", *self.qemu_argv()]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


def _image_file(image: bytes, *, raw: bool) -> Path:
    """A content-addressed file in the firmware cache: the image itself (``raw``) or its preload blob."""
    image = bytes(image)
    folder = cf.cache_root() / "preload"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{crc32(image):08x}-{len(image)}{'.img' if raw else '.blob'}"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(image if raw else preload_blob(image))
        tmp.replace(path)
    return path


LAUNCHERS: dict[str, FirmwareLauncher] = {"c": CFirmwareLauncher(), "qemu": QemuLauncher()}


# ------------------------------------------------------------------------------------------------ processes


FirmwareProcess = BoardProcess  # a firmware board is a board process like any other


def start_firmware(
    launcher: str | FirmwareLauncher = "c", *, startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
) -> BoardProcess:
    """Build if needed, start the firmware board and wait until it names its device (:func:`start_board` on a
    firmware launcher; raises :class:`FirmwareStartError` with the process's output if it does not)."""
    if isinstance(launcher, str):
        try:
            launcher = LAUNCHERS[launcher]
        except KeyError:
            raise KeyError(f"unknown firmware kind {launcher!r}; known: {sorted(LAUNCHERS)}") from None
    try:
        return start_board(launcher, startup_timeout_s=startup_timeout_s)
    except BoardStartError as exc:
        raise FirmwareStartError(str(exc)) from None


def load_preloaded(client: BoardClient, image: bytes) -> int:
    """Make a preloaded image the model through the protocol: LOAD_BEGIN (total, CRC-32), LOAD_END — no chunks.

    ``client`` is a configured :class:`firmware_bridge.board_client.BoardClient`. The board checks the CRC-32 of
    what its store holds at LOAD_END (ERROR load_order if nothing of that size was preloaded, bad_crc32 if the
    bytes differ). Returns the model hash (:meth:`BoardClient.load_model` with ``preloaded=True``).
    """
    return client.load_model(image, preloaded=True)


for _launcher in LAUNCHERS.values():
    register_launcher(_launcher)


# ------------------------------------------------------------------------------------------ the pty holder


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _hold(cmd: list[str]) -> int:
    """Run ``cmd`` (QEMU), relay its output, and keep a handle on the pty it names until it exits."""
    pattern = QemuLauncher.device_pattern
    child = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
    )

    def forward(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    keep = -1
    assert child.stdout is not None
    try:
        for raw in iter(child.stdout.readline, b""):
            line = raw.decode(errors="replace")
            m = pattern.search(line)
            if m and keep < 0:
                keep = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            sys.stdout.write(line)
            sys.stdout.flush()
        return child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if keep >= 0:
            os.close(keep)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 3 and args[0] == "hold" and args[1] == "--":
        return _hold(args[2:])
    print("usage: python -m hil.firmware_process hold -- COMMAND...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
