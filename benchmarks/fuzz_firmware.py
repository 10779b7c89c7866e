"""Long fuzzing run of the C firmware's protocol layer (``firmware/test/fuzz_proto.c``), with a coverage report.

    python benchmarks/fuzz_firmware.py [--runs 1000000] [--corpus DIR] [--max-len 600]

Runs libFuzzer (AddressSanitizer + UBSan) from the Python codec's seed corpus (plus ``--corpus`` if it exists,
which keeps what this run finds), prints executions, wall time, edges ("cov") and features ("ft"), then replays
the final corpus through a source-coverage build and prints llvm-cov's line/branch/function coverage of
``proto.c`` and ``proto_codec.c``. Needs clang with its libFuzzer runtime and llvm-cov/llvm-profdata.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge import c_firmware as cf


def _tool(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def coverage_report(corpus: Path, tmp: Path) -> str:
    profdata_tool = _tool("llvm-profdata", "llvm-profdata-14")
    cov_tool = _tool("llvm-cov", "llvm-cov-14")
    if profdata_tool is None or cov_tool is None:
        return "(llvm-profdata / llvm-cov not found: no source coverage)"
    exe = cf.cached_build(["fuzz-cov"]) / "fuzz" / "fuzz-proto-cov"
    raw = tmp / "cov.profraw"
    env = dict(os.environ, LLVM_PROFILE_FILE=str(raw))
    files = sorted(str(p) for p in corpus.iterdir() if p.is_file())
    subprocess.run([str(exe), "-runs=0", *files], env=env, capture_output=True, check=False)  # replay only
    data = tmp / "cov.profdata"
    subprocess.run([profdata_tool, "merge", "-sparse", str(raw), "-o", str(data)], check=True)
    src = cf.FIRMWARE_DIR / "src"
    report = subprocess.run(
        [cov_tool, "report", str(exe), f"-instr-profile={data}", str(src / "proto.c"), str(src / "proto_codec.c")],
        capture_output=True,
        text=True,
        check=True,
    )
    return report.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--max-len", type=int, default=600)
    ap.add_argument("--corpus", type=Path, default=None, help="corpus folder to grow (default: a temp folder)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    reason = cf.libfuzzer_missing() or cf.toolchain().missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    exe = cf.cached_build(["fuzz"]) / "fuzz" / "fuzz-proto"
    with tempfile.TemporaryDirectory(prefix="legloop-fuzz-") as tmp_s:
        tmp = Path(tmp_s)
        seed = tmp / "seed"
        cf.fuzz_seed_corpus(seed)
        corpus = args.corpus or tmp / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(exe),
            f"-runs={args.runs}",
            f"-max_len={args.max_len}",
            "-timeout=10",
            f"-seed={args.seed}",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp}/",
            str(corpus),
            str(seed),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        log = proc.stderr
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
        cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
        print(f"libFuzzer: exit {proc.returncode}, {runs.group(1) if runs else '?'} executions in {wall:.1f} s")
        if cov:
            print(
                f"coverage: {cov[0][0]} edges / {cov[0][1]} features after the seeds, "
                f"{cov[-1][0]} edges / {cov[-1][1]} features at the end"
            )
        print(f"corpus: {sum(1 for _ in corpus.iterdir())} inputs")
        if proc.returncode != 0:
            print(log[-4000:])
            return 1
        print(coverage_report(corpus, tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
