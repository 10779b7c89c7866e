"""The conformance fixtures skip, naming the path, where the vectors are not there (a clone without ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

USES_VECTORS = """
def test_reads_vectors(edgedrnn_tb):
    assert (edgedrnn_tb / "edgedrnn_tb_params.txt").exists()
"""


@pytest.mark.parametrize("value", ["", "missing/shared/conformance", "empty"])
def test_missing_vectors_skip_with_the_path(pytester: pytest.Pytester, monkeypatch, value: str) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(USES_VECTORS)
    (pytester.path / "empty").mkdir()
    monkeypatch.setenv("LEGLOOP_CONFORMANCE_DIR", value)
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1)
    if value:
        result.stdout.fnmatch_lines([f"*{value}*does not exist*../shared/conformance*"])
    else:
        result.stdout.fnmatch_lines(["*LEGLOOP_CONFORMANCE_DIR is not set*../shared/conformance*"])
