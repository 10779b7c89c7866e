"""Simulated device logs: a PD walk recorded as a real prosthesis would log it, for testing `legloop train --data`.

One episode of the walker under the AMPRO PD (:func:`experiments.collect.collect_episode`: randomised body,
friction, slope and noise level, as `legloop collect`), with the sensor noise **and** the encoder / load-cell
quantisation on, written in the AMPRO CSV schema by the simulator's export (:func:`experiments.dataset.export_csv`).
Like a device, the PD acts on the sensors as measured: the logged ``torque_pd_*`` is the PD law applied to the logged
(noisy, quantised) ``position_actual_*`` / ``velocity_actual_*`` and the logged reference, bit for bit, and the
domain and phase were switched on the noisy load cell and IMU. :func:`split_log` cuts a log into a training head and
a held-out tail (contiguous, in time order), the way a user checks a network trained on one part of a recording::

    python -m experiments.device_log --seconds 60 --seed 0 --out runs/devlog   # log.csv, head.csv (70 %), tail.csv
    legloop train --data runs/devlog/head.csv --out runs/devlog/train
    legloop eval --controller deltagru --checkpoint runs/devlog/train --replay runs/devlog/tail.csv \
        --out runs/devlog/eval

What it cannot imitate: a real device's velocities are differences of quantised encoder counts (here a noisy
velocity sensor), and real logs have clock jitter and dropped rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.ampro_log import read_csv, write_csv

DEFAULT_SECONDS = 60.0
DEFAULT_HEAD_FRACTION = 0.7


def simulate_log(
    path: str | os.PathLike,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    speed: float = 1.0,
    *,
    sensor_noise: bool = True,
    quantise: bool = True,
    randomize: bool = True,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Simulate one PD walk of `seconds` s (env seed `seed`) and write it as an AMPRO CSV log at `path`.

    Returns the path and the episode's metadata (body, slope, noise scale, ``fell``, ``steps``). A walk that falls
    ends early: the log is then shorter than asked (``meta["fell"]``).
    """
    from experiments.collect import EpisodeTask, collect_episode
    from experiments.dataset import Episode, export_csv

    task = EpisodeTask(
        index=0,
        seed=seed,
        speed=speed,
        seconds=seconds,
        randomize=randomize,
        sensor_noise=sensor_noise,
        env_options={"quantise_sensors": quantise},
    )
    _, columns, meta = collect_episode(task)
    meta = meta | {"sensor_noise": sensor_noise, "quantise_sensors": quantise}
    return export_csv(Episode(columns, meta, Path(path).stem), path, overwrite=overwrite), meta


def split_log(
    path: str | os.PathLike,
    head_fraction: float = DEFAULT_HEAD_FRACTION,
    head_path: str | os.PathLike | None = None,
    tail_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Cut a CSV log in time: its first `head_fraction` of the rows to `head_path` (default ``<stem>_head.csv``),
    the rest to `tail_path` (``<stem>_tail.csv``). Every column is kept, values bit-exact."""
    if not 0.0 < head_fraction < 1.0:
        raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction}")
    p = Path(path)
    cols = read_csv(p)
    n = len(next(iter(cols.values())))
    cut = round(head_fraction * n)
    if not 2 <= cut <= n - 2:
        raise ValueError(f"{p}: {n} rows are too few to split at {head_fraction:g}")
    head = Path(head_path) if head_path is not None else p.with_name(f"{p.stem}_head.csv")
    tail = Path(tail_path) if tail_path is not None else p.with_name(f"{p.stem}_tail.csv")
    write_csv(head, {k: v[:cut] for k, v in cols.items()}, overwrite=overwrite)
    write_csv(tail, {k: v[cut:] for k, v in cols.items()}, overwrite=overwrite)
    return head, tail


def pd_law_residual(columns: dict[str, np.ndarray]) -> float:
    """Largest |logged PD torque − the AMPRO PD law on the logged signals| (N·m) over both joints, default gains,
    saturated at the motor peaks: 0 for a log whose torque was computed from the signals it logged."""
    from controllers.pd import PDParams

    p = PDParams()
    c = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}
    knee = -p.kp_knee * (c["position_actual_knee"] - c["position_desired_knee"]) - p.kd_knee * (
        c["velocity_actual_knee"] - c["velocity_desired_knee"]
    )
    ankle = -p.kp_ankle * (c["position_actual_ankle"] - c["position_desired_ankle"]) - p.kd_ankle * (
        c["velocity_actual_ankle"] - c["velocity_desired_ankle"]
    )
    knee = np.clip(knee, -p.knee_limit, p.knee_limit)
    ankle = np.clip(ankle, -p.ankle_limit, p.ankle_limit)
    return float(max(np.abs(knee - c["torque_pd_knee"]).max(), np.abs(ankle - c["torque_pd_ankle"]).max()))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.device_log",
        description="simulate a device log (AMPRO CSV, sensor noise and quantisation on) and split it head/tail",
    )
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of the walk, s")
    ap.add_argument("--seed", type=int, default=0, help="env seed (body, slope, noise level)")
    ap.add_argument("--speed", type=float, default=1.0, help="walking speed, m/s")
    ap.add_argument("--head", type=float, default=DEFAULT_HEAD_FRACTION, help="fraction of rows in head.csv")
    ap.add_argument("--out", required=True, help="output folder: log.csv, head.csv, tail.csv")
    ap.add_argument("--force", action="store_true", help="replace existing files")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log, meta = simulate_log(out / "log.csv", args.seconds, args.seed, args.speed, overwrite=args.force)
    head, tail = split_log(log, args.head, out / "head.csv", out / "tail.csv", overwrite=args.force)
    rows = meta["steps"]
    print(
        f"{log}: {rows} rows ({rows * meta['control_dt']:g} s{', fell' if meta['fell'] else ''}; slope "
        f"{meta['slope_deg']:.1f}°, noise ×{meta['noise_scale']:.2f}, quantised); PD-law residual "
        f"{pd_law_residual(read_csv(log)):.2g} N·m; {head} and {tail} ({args.head:g} / {1 - args.head:g})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
