"""Progress bars: redrawn often on a terminal, rarely into a log file (experiments.progress)."""

from __future__ import annotations

import io
import sys
import time

import pytest

from experiments.progress import LOG_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _redraws(text: str) -> int:
    return text.count("\r")


def test_a_bar_into_a_log_redraws_only_at_the_log_interval(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's captured stderr is not a terminal, as a `2> log` redirect is not
    bar = progress_bar(2000, "work", "step")
    t0 = time.perf_counter()
    for _ in range(2000):
        bar.update(1)
        time.sleep(0.0002)  # ~0.4 s of work: a terminal bar redraws a few times
    bar.close()
    assert time.perf_counter() - t0 < LOG_INTERVAL_S
    err = capsys.readouterr().err
    assert "2000/2000" in err  # the final state is written on close
    assert _redraws(err) <= 3  # the first draw, the last, and close: nothing in between


def test_a_bar_on_a_terminal_redraws_often(monkeypatch: pytest.MonkeyPatch) -> None:
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = progress_bar(2000, "work", "step")
    for _ in range(2000):
        bar.update(1)
        time.sleep(0.0002)
    bar.close()
    assert _redraws(term.getvalue()) >= 3


def test_a_disabled_bar_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(10, "work", "step", enabled=False)
    bar.update(10)
    bar.close()
    assert capsys.readouterr().err == ""
