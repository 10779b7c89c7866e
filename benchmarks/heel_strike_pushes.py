"""Falls on the PD's hardest condition (issue #16's second gain bar): fast downhill walking, pushes at heel strike.

    python benchmarks/heel_strike_pushes.py pd rl=runs/rl deltagru=runs/distil [--speed 1.2] [--slope -3]
        [--seeds 5,6,7,8,9] [--magnitudes 100,150,200,250,300] [--seconds 20] [--every 2] [--json OUT.json]

Each controller is ``NAME`` or ``NAME=CHECKPOINT`` (``pd``; ``rl=DIR`` of ``legloop rl train``; ``deltagru=DIR`` or
``edgedrnn=DIR`` of ``legloop train``); all run the same episodes in this process, one after another.

One episode per seed and magnitude: the walker at ``--speed`` on the randomised slope centred on ``--slope`` (faded in
over the first 3 s, as ``legloop eval --slope``), randomised body and sensor noise, for ``--seconds``. From
``--start`` s on, every ``--every``-th heel strike of the prosthetic foot (its contact force rising through 50 N after
at least 0.15 s below 20 N: :class:`envs.walker_env.HeelStrikePusher`, which `legloop rl train` can train under)
triggers a 0.1-s trunk push of the episode's magnitude, forward and backward in turn — the push lands as the
prosthesis takes the body's weight, where the controller switches to stance. Time-scheduled pushes (``legloop
eval``'s push trials) land at every phase; these find the one phase.

Printed per controller: falls per magnitude (of the seeds), all falls (of seeds × magnitudes), pushes delivered
before the falls, and the wall time. Seeds default to the evaluation's (5–9, never used in training or selection).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.walker_env import HeelStrikePusher, ProstheticWalkerEnv
from experiments.evaluate import EvalConfig
from hil.spec import ControllerSpec

PUSH_S = 0.1


def episode(factory: Any, seed: int, magnitude: float, a: argparse.Namespace) -> dict[str, Any]:
    """One seed at one magnitude: fell, when, and the pushes delivered."""
    env = ProstheticWalkerEnv(**EvalConfig(speed=a.speed, slope_deg=a.slope).env_kwargs())
    obs, _ = env.reset(seed=seed)
    ctrl = factory(env)
    ctrl.reset()
    peak = env.peak_torque
    pusher = HeelStrikePusher(magnitude, every=a.every, start_s=a.start, duration_s=PUSH_S)
    fell = False
    for _ in range(round(a.seconds / env.dt)):
        obs, _, fell, _, _ = env.step(ctrl.act(obs) / peak)
        if fell:
            break
        pusher.after_step(env)
    env.close()
    return {"seed": seed, "magnitude_n": magnitude, "fell": bool(fell), "time_s": round(env.time, 3),
            "pushes": pusher.pushes}  # fmt: skip


def _nth(n: int) -> str:
    return "every" if n == 1 else f"every {n}{'nd' if n == 2 else 'rd' if n == 3 else 'th'}"


def parse_controller(arg: str) -> tuple[str, ControllerSpec]:
    name, _, ckpt = arg.partition("=")
    label = name if not ckpt else f"{name}:{Path(ckpt).name}"
    return label, ControllerSpec(name, checkpoint=ckpt or None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("controllers", nargs="+", help="NAME or NAME=CHECKPOINT (pd, rl=DIR, deltagru=DIR, ...)")
    p.add_argument("--speed", type=float, default=1.2, help="m/s (default: 1.2)")
    p.add_argument("--slope", type=float, default=-3.0, help="centre of the randomised slope, degrees (default: -3)")
    p.add_argument("--seeds", default="5,6,7,8,9", help="comma-separated (default: the evaluation's 5-9)")
    p.add_argument("--magnitudes", default="100,150,200,250,300", help="push magnitudes, N (one per episode)")
    p.add_argument("--seconds", type=float, default=20.0, help="episode length, s (default: 20)")
    p.add_argument("--start", type=float, default=3.0, help="no pushes before this time, s (default: 3)")
    p.add_argument("--every", type=int, default=2, help="push at every N-th prosthetic heel strike (default: 2)")
    p.add_argument("--json", type=Path, help="also write the episodes here")
    a = p.parse_args(argv)
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
        mags = [float(m) for m in a.magnitudes.split(",")]
        specs = [parse_controller(c) for c in a.controllers]
    except ValueError as exc:
        p.error(str(exc))
    if a.every < 1 or a.seconds <= a.start:
        p.error("--every must be >= 1 and --seconds longer than --start")
    print(f"falls at {a.speed:g} m/s on the randomised slope centred on {a.slope:+g}°, {a.seconds:g}-s episodes; "
          f"{PUSH_S:g}-s trunk pushes at {_nth(a.every)} prosthetic heel strike from {a.start:g} s, alternating "
          f"forward / backward; seeds {a.seeds} (one episode per seed per magnitude)")  # fmt: skip
    head = ["controller", *[f"{m:g} N" for m in mags], f"falls (of {len(seeds) * len(mags)})", "pushes", "wall s"]
    rows, out = [], {}
    for label, spec in specs:
        t0 = time.perf_counter()
        with spec.factory() as factory:
            eps = [episode(factory, s, m, a) for m in mags for s in seeds]
        per_mag = [sum(e["fell"] for e in eps if e["magnitude_n"] == m) for m in mags]
        rows.append([label, *[f"{n}/{len(seeds)}" for n in per_mag], str(sum(per_mag)),
                     str(sum(e["pushes"] for e in eps)), f"{time.perf_counter() - t0:.0f}"])  # fmt: skip
        out[label] = eps
        print(f"  {label}: {sum(per_mag)} falls", flush=True)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print("pushes: delivered over all episodes, before any fall; wall s: this machine, one process")
    if a.json is not None:
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "episodes": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
