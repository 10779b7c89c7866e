"""Start a board as a separate OS process and find its serial device: the Python emulator now, C firmware later.

    with start_board("python", EmulatorOptions(baud=921600)) as board:
        client = BoardClient.open(board.path, baudrate=921600)

A board process announces its device by printing a line on stdout; each kind of board has a
:class:`BoardLauncher` that builds the command line and recognises that line. Kinds are registered by name:
``"python"`` (``python -m hil.board_emulator``, prints ``DEVICE /dev/pts/N``) is built in; the C firmware as a host
process (``"c"``) and the same firmware under QEMU (``"qemu"``, which prints ``char device redirected to
/dev/pts/N``) plug in with :func:`register_launcher`::

    class QemuLauncher(BoardLauncher):
        kind = "qemu"
        device_pattern = re.compile(r"char device redirected to (/dev/\\S+)")
        def argv(self, options): return ["qemu-system-arm", "-M", "mps2-an385", ..., "-serial", "pty"]

    register_launcher(QemuLauncher())

After start-up the process's stdout and stderr are drained by two daemon threads (a full pipe would block the
board), keeping the last lines for error messages.
"""

from __future__ import annotations

import abc
import collections
import importlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

from .board_emulator import DEVICE_PREFIX, EmulatorOptions

# A cold numba cache compiles the EdgeDRNN and governor (split, worst) kernels at the first start (> 60 s seen at
# load 4).
DEFAULT_STARTUP_TIMEOUT_S = 120.0
_ROOT = Path(__file__).resolve().parents[1]


class BoardStartError(RuntimeError):
    """The board process did not announce a device (it exited, or timed out); the message has its output."""


class BoardLauncher(abc.ABC):
    """How to start one kind of board process and read its device path.

    Subclasses set :attr:`kind` and :attr:`device_pattern` (a regex whose group 1 is the path) and implement
    :meth:`argv`; :meth:`env` may add environment variables.
    """

    kind: ClassVar[str]
    device_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^" + re.escape(DEVICE_PREFIX) + r"(\S+)\s*$")

    @abc.abstractmethod
    def argv(self, options: EmulatorOptions) -> list[str]:
        """The command line of a board with ``options`` (a kind may refuse options it cannot honour)."""

    def env(self) -> dict[str, str]:
        """The environment of the process."""
        return dict(os.environ)

    def device_from_line(self, line: str) -> str | None:
        """The device path if ``line`` announces it."""
        m = self.device_pattern.search(line)
        return m.group(1) if m else None


class PythonEmulatorLauncher(BoardLauncher):
    """``python -m hil.board_emulator`` with this interpreter and this checkout on ``PYTHONPATH``."""

    kind = "python"

    def argv(self, options: EmulatorOptions) -> list[str]:
        return [sys.executable, "-m", "hil.board_emulator", *options.argv(), "--exit-with-parent"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


LAUNCHERS: dict[str, BoardLauncher] = {}


def register_launcher(launcher: BoardLauncher) -> None:
    """Make ``launcher.kind`` available to :func:`start_board` (replaces a launcher of the same kind)."""
    LAUNCHERS[launcher.kind] = launcher


register_launcher(PythonEmulatorLauncher())

# Kinds whose launcher lives in a module imported on first use (the C firmware pulls in its build machinery).
LAZY_KINDS = {"c": "hil.firmware_process", "qemu": "hil.firmware_process"}


def board_kinds() -> list[str]:
    """Every board kind :func:`start_board` knows: ``python`` (the emulator), ``c``, ``qemu`` and any registered."""
    return sorted(set(LAUNCHERS) | set(LAZY_KINDS))


def launcher_for(kind: str) -> BoardLauncher:
    """The launcher of ``kind``, importing the module that provides it if need be (``KeyError`` if none does)."""
    if kind not in LAUNCHERS and kind in LAZY_KINDS:
        importlib.import_module(LAZY_KINDS[kind])
    try:
        return LAUNCHERS[kind]
    except KeyError:
        raise KeyError(f"unknown board kind {kind!r}; known: {board_kinds()}") from None


class BoardProcess:
    """A running board process: its device :attr:`path`, :attr:`pid`, and how to end it.

    A context manager: leaving the block calls :meth:`stop`.
    """

    def __init__(self, proc: subprocess.Popen[bytes], path: str, kind: str, lines: list[str]) -> None:
        self.proc = proc
        self.path = path
        self.kind = kind
        self._tail: collections.deque[str] = collections.deque(lines, maxlen=200)
        self._threads = [
            threading.Thread(target=self._drain, args=(proc.stdout, ""), daemon=True),
            threading.Thread(target=self._drain, args=(proc.stderr, "stderr: "), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output_tail(self, n: int = 20) -> str:
        """The last ``n`` lines the process printed (stdout and stderr)."""
        return "\n".join(list(self._tail)[-n:])

    def _drain(self, stream: object, prefix: str) -> None:
        try:
            for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
                self._tail.append(prefix + raw.decode(errors="replace").rstrip())
        except (OSError, ValueError):
            pass

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            except ProcessLookupError:
                pass
        return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL now (a board that dies mid-exchange); :meth:`wait` reaps it."""
        if self.proc.poll() is None:
            self.proc.kill()

    def wait(self, timeout_s: float | None = None) -> int:
        return self.proc.wait(timeout_s)

    def __enter__(self) -> BoardProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self.returncode}"
        return f"BoardProcess(kind={self.kind!r}, path={self.path!r}, pid={self.pid}, {state})"


def start_board(
    kind: str | BoardLauncher = "python",
    options: EmulatorOptions | None = None,
    *,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    cwd: str | os.PathLike | None = None,
) -> BoardProcess:
    """Start a board process of ``kind`` (a registered kind, or a launcher instance) and wait until it prints its
    device path.

    Raises :class:`BoardStartError` (with the process's output) if it exits first or stays silent for
    ``startup_timeout_s``, and ``KeyError`` for an unknown kind.
    """
    launcher = launcher_for(kind) if isinstance(kind, str) else kind
    kind = launcher.kind
    options = options or EmulatorOptions()
    argv = launcher.argv(options)
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=launcher.env(), cwd=cwd
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    buf = b""
    deadline = time.monotonic() + startup_timeout_s
    out_fd = proc.stdout.fileno()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                proc.wait()
                raise BoardStartError(
                    f"{kind} board did not announce a device within {startup_timeout_s:g} s: {' '.join(argv)}"
                    + _format_output(lines, proc)
                )
            ready, _, _ = select.select([out_fd], [], [], min(remaining, 0.1))
            if ready:
                chunk = os.read(out_fd, 4096)
                if not chunk:
                    proc.wait(5)
                    raise BoardStartError(
                        f"{kind} board exited with code {proc.returncode} before announcing a device: "
                        f"{' '.join(argv)}" + _format_output(lines, proc)
                    )
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode(errors="replace").rstrip()
                    lines.append(line)
                    path = launcher.device_from_line(line)
                    if path:
                        if buf:
                            lines.append(buf.decode(errors="replace"))
                        return BoardProcess(proc, path, kind, lines)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


def _format_output(lines: list[str], proc: subprocess.Popen[bytes]) -> str:
    err = b""
    if proc.poll() is not None and proc.stderr is not None:
        try:
            err = proc.stderr.read() or b""
        except (OSError, ValueError):
            pass
    text = "\n".join(lines[-20:] + err.decode(errors="replace").strip().splitlines()[-20:])
    return f"\n--- its output ---\n{text}" if text else ""
