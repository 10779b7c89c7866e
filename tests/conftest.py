"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def conformance_dir() -> Path:
    """The shared conformance-vector folder named by ``LEGLOOP_CONFORMANCE_DIR`` (skips when unset)."""
    value = os.environ.get("LEGLOOP_CONFORMANCE_DIR")
    if not value:
        pytest.skip(
            "LEGLOOP_CONFORMANCE_DIR is not set: conformance vectors come from ../shared/conformance (set by .ci/run)"
        )
    return Path(value)
