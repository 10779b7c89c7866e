"""libFuzzer over the C firmware's frame receiver and request handlers (``firmware/test/fuzz_proto.c``).

A CI-sized run: 10^5 executions from the seed corpus the Python codec writes (valid frames of every type, whole
sessions, refusals, garbage), with AddressSanitizer and UBSan. The target asserts that no frame with a bad CRC or
length is accepted, that every accepted frame gets exactly one well-formed response echoing its sequence number,
and that the STATS counters match the verdicts; libFuzzer fails on any crash, assertion, sanitizer report or
hang. ``benchmarks/fuzz_firmware.py`` is the long run (≥ 10^6) with a coverage report.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from firmware_bridge import c_firmware as cf

RUNS = 100_000


def test_fuzz_frame_parser_and_handlers(tmp_path) -> None:
    reason = cf.libfuzzer_missing() or cf.toolchain().missing()
    if reason:
        pytest.skip(reason)
    exe = cf.cached_build(["fuzz"]) / "fuzz" / "fuzz-proto"
    seed = tmp_path / "seed"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    cf.fuzz_seed_corpus(seed)
    cmd = [
        str(exe),
        f"-runs={RUNS}",
        "-max_len=600",
        "-timeout=10",  # seconds per input: a hang fails the run
        "-seed=1",
        "-print_final_stats=1",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
        str(seed),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    log = proc.stderr
    assert proc.returncode == 0, f"fuzzing failed ({proc.returncode}):\n{log[-4000:]}"
    runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", log).group(1))
    assert runs >= RUNS
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    assert cov and int(cov[-1][0]) > 200, f"coverage too low: {cov[-1:]}"  # the seeds alone reach ~210 edges
