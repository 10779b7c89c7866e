"""Checkpoint files: byte-reproducible, written with the umask's mode, never overwritten unless asked."""

from __future__ import annotations

import json
import os
import stat

import pytest

from controllers.checkpoint import load_checkpoint, save_checkpoint


def test_same_weights_give_the_same_bytes(make_checkpoint) -> None:
    a, b = make_checkpoint("a.pt"), make_checkpoint("b.pt")
    assert a.read_bytes() == b.read_bytes()
    meta_a, meta_b = (json.loads(p.with_suffix(".json").read_text()) for p in (a, b))
    assert meta_a["weights_sha256"] == meta_b["weights_sha256"]
    load_checkpoint(a)


def test_mode_follows_the_umask_and_overwrite_is_refused(make_checkpoint) -> None:
    old = os.umask(0o022)
    try:
        pt = make_checkpoint("c.pt")
    finally:
        os.umask(old)
    for p in (pt, pt.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p.name
    before = pt.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        make_checkpoint("c.pt", seed=1)
    assert pt.read_bytes() == before
    m = make_checkpoint.model(seed=1)
    save_checkpoint(pt, m, make_checkpoint.meta(m), overwrite=True)
    assert pt.read_bytes() != before
    assert sorted(p.name for p in pt.parent.iterdir()) == ["c.json", "c.pt"]
