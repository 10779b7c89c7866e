"""Benchmark: STEP round trips over a pseudo-terminal to the board emulator, at full speed and at emulated baud rates.

The paper's network, 2 layers of 128 units, 5 inputs, 2 outputs (random Q1.7 weights scaled by 1/√fan-in, smooth
inputs, Θx = Θh = 24 so that ~11 % of the columns fire: a trained controller's sparsity regime), runs in
``python -m hil.board_emulator`` (its own process). For each link mode the host configures the board, uploads the
model over the wire (timed), resets it and measures the round trip of ``BoardClient.step`` (send STEP, wait for
RESULT, parse) with ``perf_counter_ns``: p50, p99, p99.9 and max in µs, lost steps, and the wire time of the exchange
at that baud. The goal is p99 ≤ 500 µs at full speed. It also measures the codec's own cost per round trip (host:
encode STEP + decode RESULT; board: decode STEP + encode RESULT) without any I/O.

    .venv/bin/python benchmarks/bench_link.py [--steps 5000] [--modes full,921600,115200] [--realtime]

``--realtime`` runs the host and the board process under SCHED_FIFO (root or CAP_SYS_NICE): both sleep in poll/select
between exchanges, so this changes who runs first on a wake-up, not how much CPU is used — on a shared machine it
separates the link's own latency from waiting for a CPU, as a real HIL host on a PREEMPT_RT kernel would.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np

from firmware_bridge import protocol as P
from firmware_bridge.board_client import BoardClient
from firmware_bridge.weight_image import build_image
from hil.board_emulator import EmulatorOptions
from hil.board_process import start_board

LAYERS, INPUTS, HIDDEN, OUTPUTS = 2, 5, 128, 2
THETA = 24  # ~89 % of the delta columns stay silent on these inputs: a trained controller's regime
GOAL_P99_US = 500.0
NOMINAL_BAUD = 921600  # the deadline's wire-time part at full speed (a pty ignores the rate)
RT_PRIORITY = 10


def random_net(seed: int = 0) -> tuple[bytes, np.ndarray]:
    """Model image of a random 2L-128H net and a smooth Q8.8 input sequence."""
    rng = np.random.default_rng(seed)

    def q17(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return np.clip(np.rint(rng.normal(0, 1 / np.sqrt(fan_in), shape) * 128), -128, 127).astype(np.int8)

    w_ih = [q17((3 * HIDDEN, INPUTS if k == 0 else HIDDEN), INPUTS if k == 0 else HIDDEN) for k in range(LAYERS)]
    w_hh = [q17((3 * HIDDEN, HIDDEN), HIDDEN) for _ in range(LAYERS)]
    bias = [q17((3 * HIDDEN,), 25) for _ in range(LAYERS)]
    image = P.build_model_image(
        build_image(w_ih, w_hh, bias), q17((OUTPUTS, HIDDEN), HIDDEN), np.zeros(OUTPUTS, np.int32)
    )
    t = np.arange(20000)[:, None] * 0.005  # 200 Hz
    f = rng.uniform(0.5, 1.5, INPUTS)
    X = np.sin(2 * np.pi * f * t + rng.uniform(0, 6, INPUTS)) * 256
    return image, np.rint(X).astype(np.int16)


def codec_cost_us(repeats: int = 20000) -> float:
    """µs per STEP round trip spent in the codec on both ends (best of 5)."""
    x = np.array([256, -128, 0, 512, 1], dtype=np.int16)
    acc = np.array([123456, -654321], dtype=np.int32)
    host_dec = P.FrameDecoder()
    board_dec = P.FrameDecoder(1024)

    def one() -> None:
        wire = P.encode_frame(P.MsgType.STEP, 7, x.tobytes())  # host
        req = board_dec.feed(wire)[0]  # board
        np.frombuffer(req.payload, "<i2")
        resp = P.encode_frame(P.MsgType.RESULT, req.seq, P.pack_result(600, 0, 14, 12, 0, acc))  # board
        f = host_dec.feed(resp)[0]  # host
        P.RESULT_HEAD.unpack_from(f.payload)
        np.frombuffer(f.payload, "<i4", OUTPUTS, P.RESULT_HEAD.size)

    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            one()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best * 1e6


def _realtime(pid: int) -> None:
    os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))


def run_mode(mode: str, image: bytes, X: np.ndarray, steps: int, warmup: int, realtime: bool) -> dict:
    baud = None if mode == "full" else float(mode)
    with start_board("python", EmulatorOptions(baud=baud)) as board:
        if realtime:
            _realtime(board.pid)
        with BoardClient.open(board.path, baudrate=baud or NOMINAL_BAUD) as client:
            client.hello()
            client.configure(LAYERS, INPUTS, HIDDEN, OUTPUTS, THETA, THETA)
            t0 = time.perf_counter()
            client.load_model(image)
            load_s = time.perf_counter() - t0
            client.reset_state()
            for x in X[:warmup]:
                client.step(x)
            gc.collect()
            gc.freeze()  # the setup's objects: not the loop's business
            before = client.counters.copy()
            rtt = np.empty(steps)
            cycles = np.empty(steps)
            fired = np.empty(steps)
            lost = 0
            clock = client.info.clock_hz
            perf = time.perf_counter_ns
            for k in range(steps):
                x = X[warmup + k]
                t = perf()
                reply = client.step(x)
                rtt[k] = (perf() - t) * 1e-3
                if reply is None:
                    lost += 1
                    cycles[k] = fired[k] = np.nan
                else:
                    cycles[k] = reply.cycles
                    fired[k] = reply.fired_columns
            client.transport.drain(0.2)  # count the late answers to the last lost steps too
            delta = client.counters - before
            deadline_us = client.step_timeout_s * 1e6
    wire_bytes = P.wire_size(2 * INPUTS) + P.wire_size(14 + 4 * OUTPUTS)
    return {
        "mode": mode,
        "baud": baud,
        "p50": float(np.percentile(rtt, 50)),
        "p99": float(np.percentile(rtt, 99)),
        "p999": float(np.percentile(rtt, 99.9)),
        "max": float(rtt.max()),
        "lost": lost,
        "counters": {k: v for k, v in delta.as_dict().items() if v and k not in ("frames_sent", "frames_received")},
        "wire_us": P.wire_time(wire_bytes, baud) * 1e6 if baud else 0.0,
        "deadline_us": deadline_us,
        "load_s": load_s,
        "model_us": float(np.nanmean(cycles)) / clock * 1e6,
        "fired": float(np.nanmean(fired)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="measured steps per mode")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured steps first")
    parser.add_argument("--modes", default="full,921600,115200", help="'full' and/or baud rates, comma-separated")
    parser.add_argument("--realtime", action="store_true", help="SCHED_FIFO for host and board (see above)")
    args = parser.parse_args(argv)
    if args.realtime:
        try:
            _realtime(0)
        except (PermissionError, AttributeError) as exc:
            raise SystemExit(f"--realtime needs root or CAP_SYS_NICE on Linux: {exc}") from None
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    image, X = random_net()
    if args.warmup + args.steps > len(X):
        raise SystemExit(f"--warmup + --steps must be <= {len(X)}")
    step_bytes, result_bytes = P.wire_size(2 * INPUTS), P.wire_size(14 + 4 * OUTPUTS)
    print(
        f"link benchmark: {LAYERS}L-{HIDDEN}H, {INPUTS} inputs, {OUTPUTS} outputs, Θx = Θh = {THETA}; "
        f"model image {len(image):,} bytes; STEP {step_bytes} B + RESULT {result_bytes} B on the wire; "
        f"{args.steps} steps per mode; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"scheduling {'SCHED_FIFO' if args.realtime else 'normal'}"
    )
    codec = codec_cost_us()
    rows = [run_mode(m, image, X, args.steps, args.warmup, args.realtime) for m in modes]
    print()
    head = (
        f"{'link':>13} {'wire µs':>8} {'p50 µs':>8} {'p99 µs':>8} {'p99.9 µs':>9} {'max µs':>9} {'lost':>5} "
        f"{'deadline µs':>11} {'load s':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        link = "pty, full" if r["baud"] is None else f"{r['baud']:,.0f} baud"
        print(
            f"{link:>13} {r['wire_us']:8.0f} {r['p50']:8.0f} {r['p99']:8.0f} {r['p999']:9.0f} {r['max']:9.0f} "
            f"{r['lost']:5d} {r['deadline_us']:11.0f} {r['load_s']:7.2f}"
        )
    print()
    print(f"codec per STEP round trip (both ends, no I/O): {codec:.1f} µs")
    r0 = rows[0]
    print(
        f"modelled accelerator latency per step: {r0['model_us']:.1f} µs mean ({r0['fired']:.0f} columns fired of "
        f"{2 * (1 + 8 + HIDDEN) + HIDDEN} on average); it is not added to the full-speed round trip"
    )
    for r in rows:
        if r["counters"]:
            print(f"{r['mode']}: link counters during the measured steps: {r['counters']}")
    full = next((r for r in rows if r["baud"] is None), None)
    if full is not None:
        verdict = "met" if full["p99"] <= GOAL_P99_US else "NOT met"
        print(f"goal p99 <= {GOAL_P99_US:.0f} µs at full speed: {verdict} (p99 {full['p99']:.0f} µs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
