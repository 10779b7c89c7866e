"""Run directories: where every command leaves its results, never overwriting earlier ones by accident."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from envs.files import atomic_write_text


class OutputExistsError(Exception):
    """The output already exists and the user did not ask to overwrite it."""


def prepare_out(path: str | os.PathLike, files: tuple[str, ...], force: bool, *, create: bool = True) -> Path:
    """Create the output folder (``create=False``: only check); refuse if any of `files` already exists there unless
    `force`."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} exists and is not a directory")
    taken = [f for f in files if (out / f).exists()]
    if taken and not force:
        raise OutputExistsError(f"{out / taken[0]} already exists; choose another --out or pass --force to overwrite")
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves a half-written file."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def provenance() -> dict[str, Any]:
    """Versions and machine, so a result file describes how it was made."""
    import mujoco
    import numpy as np

    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "mujoco": mujoco.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
