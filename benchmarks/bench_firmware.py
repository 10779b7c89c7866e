"""Benchmark: the C reference firmware's cost per delta-GRU step on the emulated Cortex-M3/M7, its size, its build.

Two-layer random nets (8 inputs, 2 outputs) of 64 and 128 units, two regimes:
  dense   Θ = 0 and white-noise inputs (every delta fires)
  sparse  slowly varying smooth inputs, Θx = Θh tuned on the Python model to ~90 % zero deltas
Each case runs through the firmware's test runner under ``qemu-system-arm -icount shift=0``: every instruction
then advances virtual time by 1 ns and SysTick (25 MHz) counts one tick per 40 instructions, so
``instructions = ticks × 40`` (±40 per reading; an instruction count, not Cortex-M cycles). The M3 image runs on
mps2-an385, the M7 image on mps2-an500. The results are also checked bit for bit against the Python model.

Also: ``arm-none-eabi-size`` of the M3 images for LEGLOOP_MAX_HIDDEN = 64, 128, 256, and the host build's time.

    .venv/bin/python benchmarks/bench_firmware.py [--steps 300]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware_bridge import c_firmware as cf
from hil.edgedrnn import EdgeDRNNModel
from hil.edgedrnn.synthetic import noisy_inputs, random_bundle, smooth_inputs

LAYERS, INPUTS, OUTPUTS = 2, 8, 2
TARGET_SPARSITY = 0.90
INSTR_PER_TICK = 1_000_000_000 // 25_000_000  # -icount shift=0: 1 ns per instruction; SysTick at 25 MHz
BOARDS = {"M3": ("qemu-m3", "mps2-an385"), "M7": ("qemu-m7", "mps2-an500")}


def _tune_theta(model: EdgeDRNNModel, X: np.ndarray) -> tuple[int, float]:
    """Smallest Θ (Θx = Θh) whose sparsity over X reaches the target."""
    best = (511, 1.0)
    for theta in (0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128):
        model.theta_x = model.theta_h = theta
        model.reset()
        s = model.run(X).sparsity
        if s >= TARGET_SPARSITY:
            return theta, s
        best = (theta, s)
    return best


def _sizes(root: Path) -> list[tuple[int, str, int, int, int]]:
    rows = []
    for h in (64, 128, 256):
        d = cf.build(root / f"size-h{h}", ["qemu-m3"], max_hidden=h) / "qemu-m3"
        for elf in ("legloop-fw.elf", "edgedrnn-runner.elf"):
            out = subprocess.run(["arm-none-eabi-size", str(d / elf)], capture_output=True, text=True, check=True)
            text, data, bss = (int(v) for v in out.stdout.splitlines()[1].split()[:3])
            rows.append((h, elf, text, data, bss))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    reason = cf.toolchain().missing("host", "qemu")
    if reason:
        raise SystemExit(reason)

    with tempfile.TemporaryDirectory(prefix="legloop-fw-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        cf.build(root / "fresh", ["host"], jobs=1)
        host_build_s = time.perf_counter() - t0
        cf.build(root, ["host", "qemu"])

        rows = []
        for hidden in (64, 128):
            rng = np.random.default_rng(args.seed + hidden)
            bundle = random_bundle(rng, LAYERS, INPUTS, hidden, outputs=OUTPUTS)
            model = EdgeDRNNModel.from_bundle(bundle)
            cases = {
                "dense": (noisy_inputs(rng, args.steps, INPUTS), None),
                "sparse": (smooth_inputs(rng, args.steps, INPUTS, period=400.0), "tune"),
            }
            for name, (X, tune) in cases.items():
                theta, _ = _tune_theta(model, X) if tune else (0, 0.0)
                model.theta_x = model.theta_h = theta
                model.reset()
                ref = model.run(X)
                case = cf.encode_case(
                    bundle.image,
                    LAYERS,
                    INPUTS,
                    hidden,
                    X,
                    theta_x=theta,
                    theta_h=theta,
                    out_weight=bundle.out_weight,
                    out_bias=bundle.out_bias,
                )
                _, data = cf.run_host(root / "host" / "edgedrnn-runner", case)
                host = cf.decode_results(data, LAYERS, hidden, OUTPUTS)
                per_core = {}
                for core, (folder, machine) in BOARDS.items():
                    rc, data = cf.run_qemu(root / folder / "edgedrnn-runner.elf", case, machine, timeout=600)
                    res = cf.decode_results(data, LAYERS, hidden, OUTPUTS)
                    assert rc == 0 and res.status == 0, res.status_name
                    assert np.array_equal(res.h, ref.h) and np.array_equal(res.cycles, ref.cycles), "not bit-exact"
                    per_core[core] = (res.ticks_step[1:] * INSTR_PER_TICK, res.ticks_output[1:] * INSTR_PER_TICK)
                rows.append((hidden, name, theta, ref.sparsity, ref.cycles[1:], host.ticks_step[1:], per_core))

        print(f"C firmware, {LAYERS} layers, {INPUTS} inputs, {OUTPUTS} outputs, {args.steps} steps (first excluded)")
        head = (
            f"{'net':<9}{'case':<8}{'theta':>6}{'sparsity':>9}{'hw cyc':>8}{'host ns':>9}"
            f"{'M3 instr/step':>15}{'M3 p99':>10}{'M7 instr/step':>15}{'M7 p99':>10}{'out layer M3/M7':>17}"
        )
        print(head)
        print("-" * len(head))
        for hidden, name, theta, sp, cyc, host_ns, pc in rows:
            m3, m3o = pc["M3"]
            m7, m7o = pc["M7"]
            print(
                f"{f'2L-{hidden}H':<9}{name:<8}{theta:>6}{100 * sp:>8.1f}%{cyc.mean():>8.0f}{np.median(host_ns):>9.0f}"
                f"{m3.mean():>15,.0f}{np.percentile(m3, 99):>10,.0f}{m7.mean():>15,.0f}{np.percentile(m7, 99):>10,.0f}"
                f"{f'{m3o.mean():,.0f} / {m7o.mean():,.0f}':>17}"
            )
        print("instr/step: mean of edgedrnn_step (all layers); p99 over steps; out layer: edgedrnn_output, 2 outputs;")
        print("hw cyc: the modelled EdgeDRNN accelerator cycles of the same steps; host ns: median, this machine.\n")

        print("arm-none-eabi-size, Cortex-M3 images (-O2), by LEGLOOP_MAX_HIDDEN (MAX_INPUT 64, MAX_OUTPUTS 8)")
        print(f"{'max H':>6}  {'image':<22}{'text':>8}{'data':>7}{'bss':>9}")
        for h, elf, text, data, bss in _sizes(root):
            print(f"{h:>6}  {elf:<22}{text:>8}{data:>7}{bss:>9}")
        print(f"\nhost build (make host: 3 binaries, -O2, one job): {host_build_s:.2f} s")


if __name__ == "__main__":
    main()
