"""benchmarks/governor_sizes.py: the bar, merging a size's inputs, and rows that were not run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

# benchmarks/ is a folder of scripts, not an installed package: load the script by its path.
_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "governor_sizes.py"
_spec = importlib.util.spec_from_file_location("governor_sizes", _PATH)
assert _spec is not None and _spec.loader is not None
governor_sizes = importlib.util.module_from_spec(_spec)
sys.modules["governor_sizes"] = governor_sizes  # its dataclasses resolve their annotations through it
_spec.loader.exec_module(governor_sizes)
Bar, document, load, main, merge = (
    governor_sizes.Bar,
    governor_sizes.document,
    governor_sizes.load,
    governor_sizes.main,
    governor_sizes.merge,
)


def _row(clock: float, gov: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "clock_mhz": clock,
        "governor": gov,
        "episodes": 15,
        "falls": 0,
        "steps": 60000,
        "within": 60000,
        "within_frac": 1.0,
        "p99_9_us": 20.0,
        "max_us": 20.9,
        "knee_ratio": 1.0,
        "r2_knee": 0.99,
        "r2_ankle": 0.98,
    }
    row.update(kw)
    return row


def test_bar_names_each_miss() -> None:
    bar = Bar()
    assert bar.misses(_row(125, "predictive-split")) == []
    late = _row(125, "reactive", within=59999, within_frac=59999 / 60000, knee_ratio=1.21, r2_ankle=0.969, falls=1)
    assert bar.misses(late) == ["late steps", "knee", "R²", "falls"]


def test_table_merges_a_label_and_lists_missing_rows(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"header": "A", "rows": [_row(125, "none", within=59000, within_frac=59000 / 60000)]}))
    b.write_text(json.dumps({"header": "B", "rows": [_row(125, "predictive-worst")]}))
    docs = merge([load(f"2L-64H={a}"), load(f"2L-64H={b}"), load(f"2L-256H={tmp_path / 'missing.json'}")])
    assert [label for label, _ in docs] == ["2L-64H", "2L-256H"]
    text = document(docs, [125.0], ["none", "predictive-worst"], Bar())
    lines = [line for line in text.splitlines() if line.startswith("| 2L-")]
    assert len(lines) == 4
    assert "98.33 % (59,000/60,000)" in lines[0] and "late steps" in lines[0]
    assert "100 % (60,000/60,000)" in lines[1] and "**meets all**" in lines[1]
    assert all("not run" in line for line in lines[2:])
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_main_writes_the_table(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"header": "A", "rows": [_row(100, "predictive-split")]}))
    out = tmp_path / "sizes.md"
    assert main(["--input", f"2L-64H={a}", "--clocks", "100", "--out", str(out)]) == 0
    assert "| 2L-64H | 100 | predictive-split | 100 % (60,000/60,000)" in out.read_text()
