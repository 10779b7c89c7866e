"""Long differential fuzz of the board protocol's frame decoder (the CI test runs the same check on 10^5 frames).

    .venv/bin/python benchmarks/fuzz_protocol.py [--frames 10000000] [--workers 1] [--seed 0]

Random and mutated frames (bit flips before and after COBS, truncations, insertions, deletions, lost and extra
delimiters, garbage, oversize runs, length fields that lie under a good CRC) are fed to
:class:`firmware_bridge.protocol.FrameDecoder` in random chunk sizes; every verdict must equal the plain reference
receiver's (:mod:`firmware_bridge.protocol_reference`), so the decoder never raises, stays bounded, and never accepts a
frame whose CRC or length is wrong. A failure prints the seed that reproduces it and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from firmware_bridge.protocol import PROTOCOL_MAX_PAYLOAD
from firmware_bridge.protocol_reference import fuzz_check

BATCH = 2000
PAYLOADS = (128, 300, 1024, PROTOCOL_MAX_PAYLOAD)


def _batch(seed: int) -> dict[str, int]:
    max_payload = PAYLOADS[seed % len(PAYLOADS)]
    max_chunk = (3, 16, 256, 4096)[(seed // len(PAYLOADS)) % 4]  # 1..3-byte feeds: byte-wise coverage
    return fuzz_check(seed, BATCH, max_payload, max_chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000_000, help="frames to generate")
    parser.add_argument("--workers", type=int, default=1, help="processes (the machine may be shared)")
    parser.add_argument("--seed", type=int, default=0, help="first batch seed (batch k uses seed + k)")
    args = parser.parse_args(argv)
    batches = -(-args.frames // BATCH)
    seeds = range(args.seed, args.seed + batches)
    totals: dict[str, int] = {}
    t0 = time.perf_counter()
    done = 0
    report_every = max(1, batches // 20)
    try:
        if args.workers > 1:
            with ProcessPoolExecutor(args.workers) as pool:
                results = pool.map(_batch, seeds, chunksize=4)
                for k, counts in enumerate(results, 1):
                    done = _tally(totals, counts, k, batches, report_every, t0)
        else:
            for k, seed in enumerate(seeds, 1):
                done = _tally(totals, _batch(seed), k, batches, report_every, t0)
    except AssertionError as exc:
        print(f"MISMATCH: {exc}", file=sys.stderr)
        return 1
    dt = time.perf_counter() - t0
    print(f"{done:,} frames in {dt:.1f} s ({done / dt:,.0f} frames/s, {args.workers} worker(s), pid {os.getpid()})")
    print("verdicts: " + ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items())))
    print("decoder == reference on every verdict; buffer within bounds throughout")
    return 0


def _tally(totals: dict[str, int], counts: dict[str, int], k: int, batches: int, every: int, t0: float) -> int:
    for key, v in counts.items():
        totals[key] = totals.get(key, 0) + v
    done = k * BATCH
    if k % every == 0 or k == batches:
        dt = time.perf_counter() - t0
        print(f"  {done:>12,} frames  {dt:8.1f} s  {done / dt:10,.0f} frames/s", flush=True)
    return done


if __name__ == "__main__":
    sys.exit(main())
