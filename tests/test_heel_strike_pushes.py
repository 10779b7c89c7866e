"""benchmarks/heel_strike_pushes.py: pushes triggered by prosthetic heel strikes, on the real walker."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

# benchmarks/ is a folder of scripts, not an installed package: load the script by its path.
_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "heel_strike_pushes.py"
_spec = importlib.util.spec_from_file_location("heel_strike_pushes", _PATH)
assert _spec is not None and _spec.loader is not None
hsp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hsp)


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**({"speed": 1.0, "slope": 0.0, "seconds": 8.0, "start": 2.0, "every": 1} | kw))


def test_pushes_follow_the_prosthetic_heel_strikes() -> None:
    """With a 0-N push the count is the heel strikes after the start (one per prosthetic stride, ~1 s at 1 m/s);
    every 2nd halves it; a push far beyond what anyone survives ends the episode."""
    _, spec = hsp.parse_controller("pd")
    factory = spec.factory()
    every = hsp.episode(factory, 3, 0.0, _args())
    assert not every["fell"] and every["time_s"] >= 8.0 - 1e-9
    assert 4 <= every["pushes"] <= 8  # 6 s of pushing at ~1 stride/s
    second = hsp.episode(factory, 3, 0.0, _args(every=2))
    assert second["pushes"] == every["pushes"] // 2
    hard = hsp.episode(factory, 3, 1500.0, _args())
    assert hard["fell"] and hard["pushes"] >= 1 and hard["time_s"] < 8.0


def test_command_line_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["pd", "--seeds", "3", "--magnitudes", "0", "--seconds", "4", "--speed", "1.0", "--slope", "0"]
    assert hsp.main(argv) == 0
    out = capsys.readouterr().out
    assert "falls at 1 m/s on the randomised slope centred on +0°" in out and "falls (of 1)" in out
    assert "pd" in out.splitlines()[-2]
