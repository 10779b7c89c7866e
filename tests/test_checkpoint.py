"""Checkpoint files: byte-reproducible, written with the umask's mode, never overwritten unless asked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from controllers.deltagru import DeltaGRU
from controllers.features import Normalizer


def _save(path: Path, overwrite: bool = False) -> Path:
    torch.manual_seed(0)
    m = DeltaGRU(5, 16, 2, 2)
    meta = CheckpointMeta(
        model={},
        feature_set="ampro",
        input_norm=Normalizer(np.zeros(5, np.float32), np.ones(5, np.float32)),
        target_scale=np.ones(2, np.float32),
        target_offset=np.zeros(2, np.float32),
        created="fixed",
    )
    return save_checkpoint(path, m, meta, overwrite=overwrite)


def test_same_weights_give_the_same_bytes(tmp_path: Path) -> None:
    a, b = _save(tmp_path / "a.pt"), _save(tmp_path / "b.pt")
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
    load_checkpoint(a)


def test_mode_follows_the_umask_and_overwrite_is_refused(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        pt = _save(tmp_path / "c.pt")
    finally:
        os.umask(old)
    for p in (pt, pt.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p.name
    before = pt.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        _save(pt)
    assert pt.read_bytes() == before
    _save(pt, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.pt"]
