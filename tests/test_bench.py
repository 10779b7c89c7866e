"""`legloop bench --quick`: every figure of every section is produced (no timing is asserted: CI machines vary)."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.bench_suite import SECTIONS, SERIAL_CASES, SKIPPED
from experiments.cli import main
from experiments.cmd_bench import SECTIONS as CLI_SECTIONS

PLANT = {
    "raw physics (mj_step)",
    "env.step (+ human, sensors)",
    "closed loop, PD",
    "closed loop, CPU delta-GRU",
    "closed loop, EdgeDRNN model",
    "closed loop, EdgeDRNN model (wall clock)",
    "closed loop, board: Python emulator on a pty",
    "closed loop, board: C firmware on a pty",
    "closed loop, board: firmware on QEMU Cortex-M3",
}
INFERENCE = {
    "torch eager (nn.GRU + Linear)",
    "onnxruntime (exported ONNX)",
    "legloop kernel, dense (Θ = 0)",
    "legloop kernel, delta",
}


def _has(row: dict, *keys: str) -> bool:
    return all(isinstance(row.get(k), (int, float)) for k in keys)


def test_bench_quick_produces_every_figure(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert CLI_SECTIONS == SECTIONS and list(doc["sections"]) == list(SECTIONS)
    m = doc["machine"]
    assert m["cpu"] and m["cores"] >= 1
    assert all(m["versions"][k] for k in ("python", "numpy", "torch", "mujoco", "numba"))
    s = doc["sections"]

    plant = {r["figure"]: r for r in s["plant"]["rows"]}
    assert set(plant) == PLANT
    for name, r in plant.items():
        if r.get("available") is False:
            # Only a firmware board may be missing (no compiler / QEMU here), and the row says which package to get.
            assert "C firmware" in name or "QEMU" in name, name
            assert "install" in r["note"], r["note"]
        else:
            assert _has(r, "us", "ratio", "rtf"), name

    rows = s["inference"]["rows"]
    assert {(r["network"], r["method"]) for r in rows} == {(f"2L-{h}H", m) for h in (64, 128, 256) for m in INFERENCE}
    assert all(_has(r, "median_us", "p99_us", "speedup_vs_ort", "sparsity") for r in rows)
    assert all(r["sparsity"] > 0.5 for r in rows if r["method"] == "legloop kernel, delta")

    assert [r["case"] for r in s["edgedrnn"]["rows"]] == ["sparse", "dense"]
    assert all(_has(r, "hw_mean_us", "wall_median_us", "ratio_step", "ratio_run") for r in s["edgedrnn"]["rows"])

    serial = {r["implementation"]: r for r in s["serial"]["rows"]}
    assert set(serial) == {label for label, _, _ in SERIAL_CASES}
    for name, r in serial.items():
        if r.get("available") is False:
            assert "C firmware" in name or "QEMU" in name, name
        else:
            assert _has(r, "median_us", "p99_us", "p99_9_us", "max_us") and r["steps"] == 500, name
            assert 0 < r["median_us"] <= r["p99_us"] <= r["max_us"]
    # At 115200 baud the wire alone (STEP + RESULT, 52 bytes at 10 bits each) takes 4.5 ms; a pty at full speed not.
    slow, fast = serial["Python emulator, 115200 baud"], serial["Python emulator, full speed"]
    assert slow["median_us"] > 4500 > fast["median_us"]
    assert s["train"]["status"] == SKIPPED and "--quick" in s["train"]["reason"]

    pools = s["sweep"]["rows"]
    assert pools[0]["workers"] == 1 and all(_has(r, "tasks_per_min", "scaling", "wall_s") and r["tasks"] for r in pools)

    # The printed tables carry units and ratios.
    for text in ("µs/step", "× raw physics", "real-time factor", "× onnxruntime", "wall/modelled", "tasks/min",
                 "round trip p50 µs", "p99 % of 5 ms"):  # fmt: skip
        assert text in printed
