"""Benchmark: the C reference firmware's cost per delta-GRU step on the emulated Cortex-M3/M7, its size, its build.

Two-layer random nets (8 inputs, 2 outputs) of 64 and 128 units, two regimes:
  dense   Θ = 0 and white-noise inputs (every delta fires)
  sparse  slowly varying smooth inputs, Θx = Θh tuned on the Python model to ~90 % zero deltas
Each case runs through the firmware's test runner under ``qemu-system-arm -icount shift=0``: every instruction
then advances virtual time by 1 ns and SysTick (25 MHz) counts one tick per 40 instructions, so
``instructions = ticks × 40`` (±40 per reading; an instruction count, not Cortex-M cycles). The M3 image runs on
mps2-an385, the M7 image on mps2-an500. The results are also checked bit for bit against the Python model.

Also: ``arm-none-eabi-size`` of the M3 images for LEGLOOP_MAX_HIDDEN = 64, 128, 256 (the protocol firmware
``legloop-fw.elf`` and the runner), with the model image each net needs, and the host build's time.

Round trips over the protocol (``--rtt-steps``, default 5000): a STEP → RESULT exchange through
``firmware_bridge.board_client`` on the board's pty, timed by the host, for the C host firmware (kind ``c``), the
QEMU M3 board (kind ``qemu``, model preloaded by QEMU's loader) and the Python emulator (``python -m
hil.board_emulator``, a separate process), same nets and inputs, bit-identical outputs checked between them.
``--taskset CPU`` pins the boards (QEMU and the firmware process) to that CPU; nothing is pinned by default.
``--rt`` runs this process and the boards (with QEMU's threads) under SCHED_FIFO (root): on a shared machine the
tail of the round trip is mostly the wait for a CPU, which this takes out.

    .venv/bin/python benchmarks/bench_firmware.py [--steps 300] [--rtt-steps 5000] [--skip-instr]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware_bridge import c_firmware as cf
from firmware_bridge import protocol as P
from firmware_bridge.board_client import BoardClient
from hil.edgedrnn import EdgeDRNNModel
from hil.edgedrnn.synthetic import noisy_inputs, random_bundle, smooth_inputs
from hil.firmware_process import CFirmwareLauncher, QemuLauncher, load_preloaded, start_firmware

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


def _store_bytes(max_hidden: int, max_input: int = 64, max_outputs: int = 8, layers: int = 4) -> int:
    """proto.h's default LEGLOOP_MAX_IMAGE_BYTES + the 16-byte preload header."""
    h = max_hidden
    return 16 + 3 * h * (1 + max_input + h) + (layers - 1) * 3 * h * (1 + 2 * h) + max_outputs * (h + 4)


def _sizes(root: Path) -> list[tuple[int, str, int, int, int]]:
    rows = []
    for h in (64, 128, 256):
        d = cf.build(root / f"size-h{h}", ["qemu-m3"], max_hidden=h) / "qemu-m3"
        for elf in ("legloop-fw.elf", "edgedrnn-runner.elf"):
            out = subprocess.run(["arm-none-eabi-size", str(d / elf)], capture_output=True, text=True, check=True)
            text, data, bss = (int(v) for v in out.stdout.splitlines()[1].split()[:3])
            rows.append((h, elf, text, data, bss))
    return rows


class _PythonEmulator:
    """``python -m hil.board_emulator`` in its own process (the wire branch's board), as a context manager."""

    def __init__(self, taskset: str | None) -> None:
        cmd = [sys.executable, "-m", "hil.board_emulator", "--exit-with-parent"]
        if taskset:
            cmd = ["taskset", "-c", taskset, *cmd]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.match(r"DEVICE (\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"the Python emulator did not name its device: {line!r}")
        self.path = m.group(1)

    def __enter__(self) -> _PythonEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _realtime(pid: int, prio: int = 20) -> None:
    """SCHED_FIFO for a process, its threads and its children's threads (QEMU under its pty holder)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(c) for c in task.read_text().split()]
    for p in pids:
        for tid in Path(f"/proc/{p}/task").iterdir():
            os.sched_setscheduler(int(tid.name), os.SCHED_FIFO, os.sched_param(prio))


def _rtt_case(path: str, bundle, X: np.ndarray, theta: int, *, preloaded: bool) -> dict:
    """One board: configure, load, reset, then len(X) steps; host-timed round trips and the board's compute."""
    image = P.build_model_image(bundle.image, bundle.out_weight, bundle.out_bias)
    with BoardClient.open(path, margin_s=1.0, control_timeout_s=10.0) as c:
        info = c.hello()
        c.configure(LAYERS, INPUTS, bundle.hidden, OUTPUTS, theta, theta)
        t0 = time.perf_counter()
        load_preloaded(c, image) if preloaded else c.load_model(image)
        load_s = time.perf_counter() - t0
        c.reset_state()
        Xq = X.astype(np.int16)
        for x in Xq[:50]:  # warm-up (page faults, the emulator's first numba calls)
            c.step(x)
        c.reset_state()
        rtt = np.empty(len(Xq))
        ticks = np.empty(len(Xq))
        outs = np.empty((len(Xq), OUTPUTS), np.int64)
        lost = 0
        for t, x in enumerate(Xq):
            t1 = time.perf_counter()
            r = c.step(x)
            rtt[t] = time.perf_counter() - t1
            if r is None:
                lost += 1
                outs[t] = 0
                continue
            ticks[t] = r.compute_ticks / info.timer_hz if info.timer_hz else np.nan
            outs[t] = r.outputs
    us = rtt * 1e6
    return {
        "p50": np.percentile(us, 50),
        "p99": np.percentile(us, 99),
        "p999": np.percentile(us, 99.9),
        "max": us.max(),
        "compute_us": np.nanmedian(ticks) * 1e6,
        "lost": lost,
        "load_s": load_s,
        "outs": outs,
    }


def _round_trips(args: argparse.Namespace) -> None:
    print(
        f"Round trip of one STEP -> RESULT over the pty, {args.rtt_steps} steps after 50 warm-up steps, "
        f"host-timed (time.perf_counter around BoardClient.step); {LAYERS} layers, {INPUTS} inputs, "
        f"{OUTPUTS} outputs; boards {'pinned to CPU ' + args.taskset if args.taskset else 'not pinned'}"
    )
    head = (
        f"{'net':<9}{'case':<12}{'board':<16}{'p50 us':>9}{'p99 us':>9}{'p99.9 us':>10}{'max us':>9}"
        f"{'compute us':>12}{'lost':>6}{'load s':>8}"
    )
    print(head)
    print("-" * len(head))
    boards = [("C host", "c"), ("QEMU M3", "qemu"), ("Python emulator", "python")]
    for hidden in (64, 128):
        rng = np.random.default_rng(args.seed + 1000 + hidden)
        bundle = random_bundle(rng, LAYERS, INPUTS, hidden, outputs=OUTPUTS)
        image = P.build_model_image(bundle.image, bundle.out_weight, bundle.out_bias)
        model = EdgeDRNNModel.from_bundle(bundle)
        cases = {
            "sparse": (smooth_inputs(rng, args.rtt_steps, INPUTS, period=400.0), True),
            "dense": (noisy_inputs(rng, args.rtt_steps, INPUTS), False),
        }
        for name, (X, tune) in cases.items():
            theta, sp = _tune_theta(model, X[:1000]) if tune else (0, 0.0)
            ref = None
            for label, kind in boards:
                if kind == "c":
                    ctx = start_firmware(CFirmwareLauncher())
                elif kind == "qemu":
                    ctx = start_firmware(QemuLauncher(taskset=args.taskset, preload=image))
                else:
                    ctx = _PythonEmulator(args.taskset)
                with ctx as board:
                    if kind == "c" and args.taskset:
                        subprocess.run(["taskset", "-p", "-c", args.taskset, str(board.pid)], capture_output=True)
                    if args.rt:
                        _realtime(board.proc.pid)
                    res = _rtt_case(board.path, bundle, X, theta, preloaded=kind == "qemu")
                if ref is None:
                    ref = res["outs"]
                elif not res["lost"]:
                    assert np.array_equal(res["outs"], ref), f"{label} differs from the C host firmware"
                case = f"{name}" + (f" {100 * sp:.0f}%" if tune else "")
                print(
                    f"{f'2L-{hidden}H':<9}{case:<12}{label:<16}{res['p50']:>9.0f}{res['p99']:>9.0f}"
                    f"{res['p999']:>10.0f}{res['max']:>9.0f}{res['compute_us']:>12.1f}{res['lost']:>6}"
                    f"{res['load_s']:>8.2f}"
                )
    print("compute us: the board's own timer around the step and output layer (RESULT.compute_ticks), median;")
    print("QEMU's timer counts virtual time of the emulated 25 MHz board, not the host's. load s: model upload")
    print("(QEMU: preloaded by its loader, LOAD_BEGIN/LOAD_END only; see --qemu-upload for the chunked upload).\n")


def _qemu_upload(seed: int) -> None:
    """Seconds to upload a 2L-128H model image in LOAD_CHUNKs over QEMU's UART (the reason for the preload)."""
    rng = np.random.default_rng(seed)
    bundle = random_bundle(rng, LAYERS, INPUTS, 128, outputs=OUTPUTS)
    image = P.build_model_image(bundle.image, bundle.out_weight, bundle.out_bias)
    with start_firmware(QemuLauncher()) as board, BoardClient.open(board.path, control_timeout_s=10.0) as c:
        c.hello()
        c.configure(LAYERS, INPUTS, 128, OUTPUTS, 0, 0)
        t0 = time.perf_counter()
        c.load_model(image)
        dt = time.perf_counter() - t0
    print(
        f"QEMU M3, chunked upload of a 2L-128H model image ({len(image):,} bytes, 1020-byte chunks): {dt:.2f} s "
        f"({len(image) / dt / 1e3:.1f} kB/s)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rtt-steps", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--taskset", default=None, help="pin the board processes to this CPU list")
    parser.add_argument("--rt", action="store_true", help="SCHED_FIFO for this process and the boards (root)")
    parser.add_argument("--skip-instr", action="store_true", help="only the round trips and the upload time")
    parser.add_argument("--qemu-upload", action="store_true", help="also time a chunked 2L-128H upload on QEMU")
    args = parser.parse_args()
    reason = cf.toolchain().missing("host", "qemu")
    if reason:
        raise SystemExit(reason)
    if args.rt:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
    if args.rtt_steps:
        _round_trips(args)
    if args.qemu_upload:
        _qemu_upload(args.seed)
    if args.skip_instr:
        return

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

        print("arm-none-eabi-size, Cortex-M3 images (-O2), by LEGLOOP_MAX_HIDDEN (MAX_INPUT 64, MAX_OUTPUTS 8);")
        print("legloop-fw.elf = the protocol firmware (its model image store is outside bss: 'store' = its bytes,")
        print("the largest image of the build); model image = what a 2L net of that H with 8 inputs, 2 outputs needs")
        print(f"{'max H':>6}  {'image':<22}{'text':>8}{'data':>7}{'bss':>9}{'store':>10}{'model image':>13}")
        for h, elf, text, data, bss in _sizes(root):
            store = _store_bytes(h) if elf == "legloop-fw.elf" else 0
            model = P.model_image_size(LAYERS, INPUTS, h, OUTPUTS)
            print(f"{h:>6}  {elf:<22}{text:>8}{data:>7}{bss:>9}{store or '':>10}{model:>13,}")
        print(f"\nhost build (make host: 3 binaries, -O2, one job): {host_build_s:.2f} s")


if __name__ == "__main__":
    main()
