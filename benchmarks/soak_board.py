"""Soak: a long ``--realtime`` closed-loop run on the emulated board — memory, file descriptors and run logs.

    python benchmarks/soak_board.py --checkpoint CKPT [--minutes 30] [--episode-s 120] [--out DIR]

Runs ``--controller board --emulate python`` episodes back to back, paced at the control rate on the wall clock,
through one board process and one link (as ``legloop eval`` does over its seeds), until ``--minutes`` of wall time
have passed. Every 10 s it samples the resident memory (RSS) and the open file descriptors of this process and of
the emulator process. At the end it prints, and writes to ``DIR/soak.json``:

- RSS growth after the first minute, % (goal < 5 %), for the host and for the emulator: the largest, the trend per
  hour, and the same for the host's anonymous memory (RssAnon: the heap), apart from the run log's mapped file;
- the bytes the host's C allocator has handed out and not got back (glibc ``mallinfo2``: ``uordblks + hblkhd``) —
  what a leak grows. RSS also holds memory that was freed but that the allocator keeps for reuse (after a large
  short-lived buffer, e.g. reading back a 120 s log, the heap stays ~10 MB larger until the next episode reuses it),
  so a leak is growth here, and RSS above it is the allocator's cache;
- open file descriptors at the start and the end (goal: equal);
- per episode: steps run vs rows in its run log (goal: equal, i.e. no log data lost), loop lateness p99/max;
- link round trip p50/p99/p99.9/max and lost steps over the whole soak.

A benchmark, not a test: it takes as long as you ask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of ``pid`` in KiB: ``VmRSS`` (all), ``RssAnon`` (the heap: what a leak grows) or ``RssFile``
    (mapped files: the run log's memory-mapped .npy is resident while an episode writes it, and goes with it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def malloc_in_use_kib() -> int | None:
    """Bytes allocated through this process's C allocator and not freed (glibc ``mallinfo2``), KiB; None elsewhere."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip

    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = MallInfo2
    info = fn()
    return int(info.uordblks + info.hblkhd) // 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _log_rows(base: Path) -> tuple[dict, int]:
    """(header, rows with a finite time) of an episode's run log, read through a memory map: the soak must not hold
    (nor allocate) a copy of a 120 s log (~7 MB) while it measures the next episode's memory."""
    import numpy as np

    from hil.runlog import COLUMN_NAMES

    header = json.loads(base.with_suffix(".json").read_text())
    data = np.load(base.with_suffix(".npy"), mmap_mode="r")
    rows = int(np.isfinite(data[:, COLUMN_NAMES.index("time")]).sum())
    del data
    return header, rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--episode-s", type=float, default=120.0)
    p.add_argument("--out", default="soak")
    p.add_argument("--watchdog-periods", type=int, default=2000)
    args = p.parse_args()

    import numpy as np

    from experiments.evaluate import EvalConfig, run_episode
    from experiments.rundir import write_json
    from hil.board_backend import BoardLink, SerialBoardBackend
    from hil.spec import ControllerSpec

    out = Path(args.out)
    (out / "runlogs").mkdir(parents=True, exist_ok=True)
    # A watchdog of ~10 s of silence: on a shared machine a board process can be descheduled for longer than the
    # default 20 periods, and a soak measures memory, descriptors and logs over the whole time, not that.
    link = BoardLink(emulate="python", watchdog_periods=args.watchdog_periods)
    spec = ControllerSpec("board", checkpoint=args.checkpoint, board=link)
    cfg = EvalConfig(seconds=args.episode_s)
    samples: list[dict[str, float]] = []
    episodes: list[dict] = []
    # Each episode's round trips go to disk, not to a list: the soak must not grow by what it keeps.
    (out / "round_trips").mkdir(exist_ok=True)
    t_start = time.monotonic()
    end = t_start + args.minutes * 60.0
    me = os.getpid()
    with spec.factory() as factory:
        made: list = []

        def make(env):
            c = factory(env)
            made[:] = [c]  # the current episode's controller only: the soak must not keep what it measures
            return c

        next_sample = t_start

        def sample(k, obs, torque):
            nonlocal next_sample
            if k % 200 == 0 and time.monotonic() >= next_sample:
                next_sample += 10.0
                proc = made[-1].backend.process
                s = {"t_s": time.monotonic() - t_start, "rss_kib": rss_kib(me), "fds": open_fds(me),
                     "anon_kib": rss_kib(me, "RssAnon"), "file_kib": rss_kib(me, "RssFile"),
                     "malloc_kib": malloc_in_use_kib()}  # fmt: skip
                if proc is not None:
                    s |= {"board_rss_kib": rss_kib(proc.pid), "board_fds": open_fds(proc.pid)}
                samples.append(s)

        seed = 0
        while time.monotonic() < end:
            stats: dict = {}
            base = out / "runlogs" / f"seed_{seed}"
            seconds = min(args.episode_s, max(1.0, end - time.monotonic()))
            fell, walked, _ = run_episode(
                make, seed, seconds, cfg.env_kwargs(), record=False, stats_out=stats, observers=[sample],
                realtime=True, log_base=base, log_header={"soak": True},
            )  # fmt: skip
            backend: SerialBoardBackend = made[-1].backend
            np.save(out / "round_trips" / f"seed_{seed}.npy", backend.round_trips_s())
            header, log_rows = _log_rows(base)
            # control steps applied (an aborted episode's last step applied nothing, and is not logged)
            steps = round(walked / header["control_dt"])
            ep = {
                "seed": seed,
                "seconds": seconds,
                "fell": fell,
                "walked_s": walked,
                "ended": stats["ended"],
                "steps": steps,
                "link_steps": stats["link"]["steps"],
                "log_rows": log_rows,
                "lateness_us": stats["realtime"]["lateness_us"],
                "periods_missed": stats["realtime"]["periods_missed"],
                "steps_lost": stats["link"]["steps_lost"],
            }
            episodes.append(ep)
            print(json.dumps(ep), flush=True)
            seed += 1
    rtt = np.concatenate([np.load(out / "round_trips" / f"seed_{e['seed']}.npy") for e in episodes]) * 1e6
    lost = int(np.isnan(rtt).sum())
    rtt = rtt[np.isfinite(rtt)]
    pct = np.percentile(rtt, [50, 99, 99.9])
    after = [s for s in samples if s["t_s"] >= 60.0] or samples

    def growth(key: str) -> float | None:
        """Largest growth over the value at one minute, %."""
        vals = [s[key] for s in after if key in s]
        return round(100.0 * (max(vals) - vals[0]) / vals[0], 2) if vals else None

    def trend(key: str) -> float | None:
        """Least-squares slope after the first minute, % of the one-minute value per hour."""
        pts = [(s["t_s"], s[key]) for s in after if key in s]
        if len(pts) < 3:
            return None
        t, v = np.array(pts, dtype=float).T
        return round(float(np.polyfit(t, v, 1)[0]) * 3600.0 * 100.0 / v[0], 2)

    result = {
        "minutes": args.minutes,
        "wall_s": round(time.monotonic() - t_start, 1),
        "episodes": episodes,
        "steps": int(rtt.size + lost),
        "steps_lost": lost,
        "round_trip_us": dict(
            zip(("p50", "p99", "p99_9", "max"), [round(float(v), 1) for v in (*pct, rtt.max())], strict=True)
        ),
        "rss_growth_after_1min_pct": growth("rss_kib"),
        "rss_anon_growth_after_1min_pct": growth("anon_kib"),
        "rss_trend_pct_per_hour": trend("rss_kib"),
        "rss_anon_trend_pct_per_hour": trend("anon_kib"),
        "rss_first_last_kib": [after[0]["rss_kib"], after[-1]["rss_kib"]] if after else None,
        "rss_anon_first_last_kib": [after[0]["anon_kib"], after[-1]["anon_kib"]] if after else None,
        "malloc_in_use_growth_after_1min_pct": growth("malloc_kib") if after and after[0]["malloc_kib"] else None,
        "malloc_in_use_trend_pct_per_hour": trend("malloc_kib") if after and after[0]["malloc_kib"] else None,
        "malloc_in_use_first_last_kib": [after[0]["malloc_kib"], after[-1]["malloc_kib"]] if after else None,
        "board_rss_growth_after_1min_pct": growth("board_rss_kib"),
        "fds_first_last": [samples[0]["fds"], samples[-1]["fds"]] if samples else None,
        "board_fds_first_last": [samples[0].get("board_fds"), samples[-1].get("board_fds")] if samples else None,
        "log_rows_equal_steps": all(e["log_rows"] == e["steps"] for e in episodes),
        "samples": samples,
    }
    write_json(out / "soak.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "episodes")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
