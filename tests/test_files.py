"""envs.files: atomic writes keep the old file on failure, leave no temporary file, honour the umask, can refuse."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from envs.files import atomic_write_bytes, atomic_write_text, atomic_writer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_open_would_give_them(tmp_path: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_writer(tmp_path / "a.json", "w") as f:
            json.dump({"a": 1}, f)
        with open(tmp_path / "plain", "w") as f:  # the reference: what a normal open() gives
            f.write("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "plain") == expected
    for name in ("a.bin", "a.txt", "a.json"):
        assert _mode(tmp_path / name) == expected, name


def test_writes_and_replaces(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    assert atomic_write_text(p, "één\n") == p
    assert p.read_bytes() == "één\n".encode()
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    with atomic_writer(p, "w", newline="") as f:
        f.write("a,b\r\n")
    assert p.read_bytes() == b"a,b\r\n"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["f.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"old content")
    with pytest.raises(RuntimeError, match="mid-write"), atomic_writer(p) as f:
        f.write(b"half of the new")
        raise RuntimeError("mid-write")
    assert p.read_bytes() == b"old content"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["f.bin"]
    # and a failure before anything existed leaves nothing at all
    with pytest.raises(KeyboardInterrupt), atomic_writer(tmp_path / "new.bin") as f:
        f.write(b"x")
        raise KeyboardInterrupt
    assert sorted(q.name for q in tmp_path.iterdir()) == ["f.bin"]


def test_overwrite_false_refuses_an_existing_file(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    atomic_write_text(p, "first", overwrite=False)  # a new file is fine
    with pytest.raises(FileExistsError, match=r"f\.txt") as info:
        atomic_write_text(p, "second", overwrite=False)
    assert info.value.filename == str(p)
    assert p.read_text() == "first"
    # A file that appears while the new one is being written is not replaced either.
    q = tmp_path / "g.txt"
    with pytest.raises(FileExistsError, match=r"g\.txt"), atomic_writer(q, "w", overwrite=False) as f:
        f.write("mine")
        q.write_text("theirs")
    assert q.read_text() == "theirs"
    assert sorted(r.name for r in tmp_path.iterdir()) == ["f.txt", "g.txt"]


def test_bad_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_writer(tmp_path / "f", "a"):
        pass
    assert not any(tmp_path.iterdir())
