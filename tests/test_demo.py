"""`legloop demo --quick`: the whole seed experiment end to end on a tiny network (a smoke run, not a result)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from experiments.cli import main
from experiments.cmd_demo import CONTROLLERS

torch.set_num_threads(1)


def test_quick_demo_runs_every_controller_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    demo = json.loads((out / "demo.json").read_text())
    labels = [label for label, *_ in CONTROLLERS]
    assert [r["controller"] for r in demo["comparison"]] == labels
    for label in labels:
        assert label in printed
    rows = {r["controller"]: r for r in demo["comparison"]}
    # Learned rows carry imitation and sparsity; EdgeDRNN rows the modelled latency against the 21 µs budget.
    for label in labels[1:]:
        assert rows[label]["r2_knee"] is not None
    for label in ("edgedrnn", "edgedrnn+gov", "edgedrnn+worst", "edgedrnn+split", "edgedrnn@5ms", "board@5ms"):
        eps = demo["controllers"][label]["episodes"]
        assert all(e["latency_us"]["mean"] > 0 for e in eps)
    # The predictive governors price every step (worst: an upper bound; split: each layer) before it runs: none late.
    for label in ("edgedrnn+worst", "edgedrnn+split"):
        assert all(e["deadline_misses"] == 0 for e in demo["controllers"][label]["episodes"]), label
    # The emulated board ran the same export as the EdgeDRNN row, over the wire, with a link record. Its replay is
    # the same network's unless a round trip outlasted the 5 ms period or timed out (loaded machine): 'period' held the
    # last torque, and the replay says so.
    board = demo["controllers"]["board@5ms"]["episodes"][0]
    assert board["link"]["round_trip_us"]["p50"] > 0 and board["link"]["steps"] > 0
    r2 = {label: (rows[label]["r2_knee"], rows[label]["r2_ankle"]) for label in ("board@5ms", "edgedrnn@5ms")}
    lat = demo["controllers"]["board@5ms"]["replay"]["latency"]
    late = lat["late_round_trips"] + lat["lost"]  # late or lost (a step timeout on a loaded machine): torque held
    assert r2["board@5ms"] == r2["edgedrnn@5ms"] or late > 0, (r2, late)
    # The float GRU and the delta-GRU are different networks of the same run.
    assert Path(demo["training"]["gru"]).name == "gru.pt"
    assert Path(demo["training"]["controller"]).name == "controller.pt"
    # Each closed-loop row is a `legloop eval` run directory, and the demo ends in `legloop report`'s page of them.
    for label in labels:
        run = json.loads((out / "runs" / label / "metrics.json").read_text())
        assert set(run) == {"controller", "config", "episodes", "summary", "provenance"}
        assert run["episodes"] == demo["controllers"][label]["episodes"]
        assert (out / "runs" / label / "runlogs" / "seed_0.npy").is_file()
        assert (out / "runs" / label / "replay" / "metrics.json").is_file() == (label != "pd")
    html = (out / "report" / "report.html").read_text()
    assert '<figure id="fig-link">' in html  # the board's round trips are drawn (not a "missing" figure)
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert [c["label"] for c in summary["controllers"]] == labels
    assert f"report: {out / 'report' / 'report.html'}" in printed and summary["headline"] in printed
    before = (out / "demo.json").read_bytes()
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "demo.json").read_bytes() == before


@pytest.mark.parametrize("speed", ["0.1", "3"])
def test_demo_rejects_a_speed_outside_the_walker_range(tmp_path: Path, speed: str, capsys) -> None:
    assert main(["demo", "--quick", "--speed", speed, "--out", str(tmp_path / "d")]) == 2
    assert "--speed" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
