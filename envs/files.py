"""Atomic file writes: a reader sees the old file or the whole new one, never a half-written one.

Every result file of the project (checkpoints, JSON, data set episodes, CSV logs, exports) is written through this
module. envs is the bottom of the import ladder, so every package may import it.

How: the data goes to a temporary file in the target's directory (same file system, so the rename is atomic),
which is flushed and fsync'ed, then renamed over the target with ``os.replace``. On any exception the temporary file
is removed and the target is left as it was. The temporary file is created with mode ``0o666`` and ``O_EXCL``, as
``open()`` creates files, so the kernel applies the process umask (and a default ACL) to it exactly as to a plain
``open()``: ``tempfile.mkstemp`` would have left every result file at 0600. Nothing here reads or changes the umask,
which is process-wide state another thread could be relying on at that moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_MODES = ("w", "wt", "wb")


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path`` (mode 0o666 minus the umask), as (descriptor, path)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary file name beside {path}", str(path))


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    # A hard link fails if the target exists, atomically; then the temporary name goes.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:
        # A file system without hard links: check, then rename (a writer racing us in between would be replaced).
        if path.exists():
            raise _exists_error(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike,
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    overwrite: bool = True,
) -> Iterator[IO[Any]]:
    """Open a file for writing that appears at ``path`` only when the ``with`` block ends without an exception.

    For writers that stream: ``with atomic_writer(p) as f: torch.save(state, f)``, ``np.savez(f, ...)``,
    ``json.dump(obj, f)`` (``mode="w"``). ``mode`` is ``"wb"`` (default) or ``"w"``/``"wt"``; text mode takes
    ``encoding`` (default UTF-8) and ``newline`` as :func:`open` does. ``overwrite=False`` raises
    :class:`FileExistsError` naming the path if it exists, before writing and again (atomically) when committing.
    """
    if mode not in _MODES:
        raise ValueError(f"atomic_writer mode must be one of {_MODES}, got {mode!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise _exists_error(path)
    fd, tmp = _create_temp(path)
    try:
        if "b" in mode:
            f = os.fdopen(fd, mode)
        else:
            f = os.fdopen(fd, mode, encoding=encoding or "utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`); returns the path."""
    with atomic_writer(path, "wb", overwrite=overwrite) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically, encoded as given with no newline translation; returns the path."""
    return atomic_write_bytes(path, text.encode(encoding), overwrite=overwrite)
