"""`legloop bench`: every speed figure of the project, each measured side by side with its baseline in the same run.

Sections (:data:`SECTIONS`):

* ``plant``     — a closed-loop control step against the raw `mj_step` physics it contains, and the real-time factor
  per backend: PD, CPU delta-GRU, EdgeDRNN model (:func:`experiments.bench.bench_plant`) and the emulated boards
  (:data:`BOARD_KINDS`: Python emulator, C firmware, QEMU; wall clock, beside the in-process model's wall clock; a
  board that cannot run here is a row saying why);
* ``inference`` — one batch-1 step of 2-layer GRUs of 64, 128 and 256 units: torch eager, onnxruntime on the
  exported ONNX, the project's dense CPU kernel (Θ = 0) and its delta kernel at ~90 % temporal sparsity; median and
  p99 µs per step and the speed-up over onnxruntime;
* ``edgedrnn``  — the EdgeDRNN model's wall time per step against the hardware latency it models, same steps;
* ``serial``    — STEP round trip per board implementation over a pty (:data:`SERIAL_CASES`): p50/p99/p99.9/max;
* ``train``     — wall time of the default `legloop train` per stage (skipped with ``--quick``);
* ``sweep``     — tasks per minute of short evaluation tasks with a pool of 1 and of all cores.

Figures are collected into one JSON document with the machine they ran on (:func:`machine`). Times of the in-process
sections are best-of-rounds or per-step distributions of interleaved rounds, so that a shared, noisy machine affects
a figure and its baseline alike.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from experiments.tables import Column, table

SECTIONS = ("plant", "inference", "edgedrnn", "serial", "train", "sweep")
SCHEMA = "legloop.bench/1"
OK, SKIPPED, UNAVAILABLE = "ok", "skipped", "not available"

# Hooks: board implementations to time. Each entry: name → a callable(quick: bool) returning either a dict of the
# row's figures or raising :class:`Unavailable` with the reason. The board emulator / firmware register here.
# Emulated boards in the closed loop (plant section) and on the link (serial section).
BOARD_KINDS = ("python", "c", "qemu")
BOARD_LABELS = {
    "python": "closed loop, board: Python emulator on a pty",
    "c": "closed loop, board: C firmware on a pty",
    "qemu": "closed loop, board: firmware on QEMU Cortex-M3",
}
# (label, kind, emulated baud) of the serial section's rows.
SERIAL_CASES = (
    ("Python emulator, full speed", "python", None),
    ("Python emulator, 921600 baud", "python", 921600.0),
    ("Python emulator, 115200 baud", "python", 115200.0),
    ("C firmware (host process)", "c", None),
    ("firmware on QEMU Cortex-M3", "qemu", None),
)


class Unavailable(Exception):
    """A figure that cannot be measured here; the message says why."""


# ------------------------------------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    """CPU model, cores, load and the versions of what the figures depend on."""
    import importlib.metadata as md

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "torch", "mujoco", "numba", "onnxruntime", "ray"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


# ------------------------------------------------------------------------------------------------------ plant
def _random_checkpoint(path: Path, hidden: int, feats: np.ndarray, target_sparsity: float = 0.9) -> tuple[Path, float]:
    """A random-weight 2-layer ``hidden``-unit delta-GRU checkpoint (ampro features normalised on ``feats``), with
    Θh chosen so its kernel runs near ``target_sparsity`` on them; returns (path, Θh)."""
    import torch

    from controllers.checkpoint import CheckpointMeta, save_checkpoint
    from controllers.deltagru import DeltaGRU
    from controllers.features import Normalizer
    from controllers.gru_kernel import DeltaGRUKernel

    torch.manual_seed(0)
    norm = Normalizer.fit(feats)
    x = ((feats - norm.mean) / norm.std).astype(np.float32)
    best = (1.0, 0.0)
    for th in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0):
        m = DeltaGRU(feats.shape[1], hidden, 2, 2, theta_x=4 / 256, theta_h=th)
        k = DeltaGRUKernel.from_module(m)
        for row in x:
            k.step(row)
        if abs(k.sparsity() - target_sparsity) < abs(best[0] - target_sparsity):
            best = (k.sparsity(), th)
    model = DeltaGRU(feats.shape[1], hidden, 2, 2, theta_x=4 / 256, theta_h=best[1])
    meta = CheckpointMeta(
        model=model.config(),
        feature_set="ampro",
        input_norm=norm,
        target_scale=np.array([40.0, 20.0], np.float32),
        target_offset=np.zeros(2, np.float32),
    )
    return save_checkpoint(path, model, meta, overwrite=True), best[1]


def _pd_features(seconds: float = 4.0) -> np.ndarray:
    """ampro features of a PD walk (what a trained network's inputs look like)."""
    from controllers.features import feature_size, features_from_obs
    from controllers.pd import AmproPD
    from envs.walker_env import ProstheticWalkerEnv
    from hil.rollout import rollout

    env = ProstheticWalkerEnv()
    obs, _ = env.reset(seed=0)
    pd = AmproPD(env.dt, walker=env.walker)
    steps = round(seconds / env.dt)
    feats = np.zeros((steps, feature_size("ampro")), np.float32)

    def record(k: int, o: np.ndarray, torque: np.ndarray) -> None:
        features_from_obs("ampro", o, float(pd.domain), pd.knee_des, pd.knee_vel_des, feats[k])

    rollout(env, pd, obs, steps, [record])
    return feats


def bench_plant_section(quick: bool) -> dict[str, Any]:
    from experiments.bench import bench_plant
    from hil.spec import ControllerSpec

    steps, rounds = (400, 3) if quick else (2000, 15)
    with tempfile.TemporaryDirectory(prefix="legloop-bench-") as d:
        ckpt, theta_h = _random_checkpoint(Path(d) / "net.pt", 128, _pd_features())
        specs = {"deltagru": ControllerSpec("deltagru", str(ckpt)), "edgedrnn": ControllerSpec("edgedrnn", str(ckpt))}
        factories: dict[str, Any] = {name: spec.factory() for name, spec in specs.items()}
        unavailable: list[dict[str, Any]] = []
        cannot_run: tuple[type[Exception], ...] = (Unavailable, *_board_start_errors())
        try:
            for kind in BOARD_KINDS:
                try:
                    factories[f"board-{kind}"] = _board_spec(str(ckpt), kind).factory()
                except cannot_run as exc:
                    unavailable.append({"figure": BOARD_LABELS[kind], "us": None, "note": str(exc), "available": False})
            r = bench_plant(steps, rounds, controllers=factories)
        finally:
            for f in factories.values():
                f.close()
    us = r["us_per_control_step"]
    rtf = 1.0 / (r["control_hz"] * 1e-6)
    rows = [
        {"figure": "raw physics (mj_step)", "us": us["physics"], "ratio": 1.0, "rtf": rtf / us["physics"]},
        {"figure": "env.step (+ human, sensors)", "us": us["env"], "ratio": r["env_over_physics"],
         "rtf": rtf / us["env"]},
        {"figure": "closed loop, PD", "us": us["loop"], "ratio": r["loop_over_physics"], "rtf": r["real_time_factor"]},
    ]  # fmt: skip
    for name, c in r["controllers"].items():
        if name.startswith("loop:board-"):
            continue
        label = {"loop:deltagru": "closed loop, CPU delta-GRU", "loop:edgedrnn": "closed loop, EdgeDRNN model"}[name]
        rows.append({"figure": label, "us": c["us_per_control_step"], "ratio": c["over_physics"],
                     "rtf": c["real_time_factor"], "note": f"2L-128H, sparsity {c['sparsity']:.2f}; + PD"})  # fmt: skip
    # Across a link the loop waits for the board: these rows are wall clock, beside the in-process model's wall clock.
    e = r["controllers"]["loop:edgedrnn"]
    rows.append({"figure": "closed loop, EdgeDRNN model (wall clock)", "us": e["wall_us_per_control_step"],
                 "ratio": e["wall_us_per_control_step"] / us["physics"], "rtf": e["wall_real_time_factor"],
                 "note": "wall clock, the baseline of the board rows"})  # fmt: skip
    for kind in BOARD_KINDS:
        c = r["controllers"].get(f"loop:board-{kind}")
        if c is not None:
            w = c["wall_us_per_control_step"]
            note = f"wall clock; {w / e['wall_us_per_control_step']:.1f}x the in-process model"
            rows.append({"figure": BOARD_LABELS[kind], "us": w, "ratio": w / us["physics"],
                         "rtf": c["wall_real_time_factor"], "note": note})  # fmt: skip
    rows += unavailable
    return {
        "status": OK,
        "rows": rows,
        "detail": r | {"theta_h": theta_h},
        "notes": [
            f"best of {rounds} interleaved rounds x {steps} control steps (thread CPU time) on one walking trajectory; "
            f"{r['control_hz']:g} Hz control, {r['frame_skip']} physics steps per control step",
            "learned rows: a random-weight 2L-128H network (Θh set for ~90 % sparsity on PD-walk features) runs its "
            "full step every period beside the PD, whose torque is applied, so the row includes the PD's cost",
        ],
    }


def _board_start_errors() -> tuple[type[Exception], ...]:
    """A board that cannot start here (no compiler, a build or start-up failure): a row saying why, not a crash."""
    from firmware_bridge.c_firmware import FirmwareError
    from firmware_bridge.transport import LinkError
    from hil.board_process import BoardStartError

    return (FirmwareError, BoardStartError, LinkError)


def _board_spec(checkpoint: str, kind: str, baud: float | None = None) -> Any:
    """The ``board`` controller spec of an emulated board of ``kind``; :class:`Unavailable` when it cannot run here."""
    from hil.board_backend import BoardLink
    from hil.spec import ControllerSpec

    if kind in ("c", "qemu"):
        from firmware_bridge.c_firmware import toolchain

        reason = toolchain().missing("host" if kind == "c" else "qemu")
        if reason:
            raise Unavailable(reason)
    return ControllerSpec("board", checkpoint, board=BoardLink(emulate=kind, baud=baud))


PLANT_COLUMNS = [
    Column("figure", "figure"),
    Column("us", "µs/step", ".1f"),
    Column("ratio", "× raw physics", ".2f"),
    Column("rtf", "real-time factor ×", ".0f"),
    Column("note", "note"),
]


# ------------------------------------------------------------------------------------------------------ inference
def gait_like_inputs(steps: int, n_in: int, seed: int = 0) -> np.ndarray:
    """Smooth z-scored-looking signals: ~0.85 Hz gait harmonics at 200 Hz plus a little noise, float32 [T, I]."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None] / 200.0
    phase = rng.uniform(0, 2 * np.pi, size=(1, n_in))
    x = np.sin(2 * np.pi * 0.85 * t + phase) + 0.3 * np.sin(2 * np.pi * 1.7 * t + 2 * phase)
    x += 0.01 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def _per_step(fn: Callable[[int], object], steps: int, out: list[float]) -> None:
    clock = time.perf_counter_ns
    for t in range(steps):
        t0 = clock()
        fn(t)
        out.append((clock() - t0) * 1e-3)


def bench_inference(quick: bool, sizes: tuple[int, ...] = (64, 128, 256)) -> dict[str, Any]:
    import torch
    from torch import nn

    from controllers.checkpoint import CheckpointMeta
    from controllers.deltagru import DeltaGRU
    from controllers.features import Normalizer
    from controllers.gru_kernel import DeltaGRUKernel

    try:
        import onnxruntime as ort

        from firmware_bridge.export import onnx_bytes
    except ModuleNotFoundError as exc:
        ort = None
        ort_reason = f"needs the Python package {exc.name!r} (pip install 'legloop[train]')"
    steps, rounds = (300, 3) if quick else (2000, 7)
    n_in, n_out, layers = 5, 2, 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    try:
        xs = gait_like_inputs(steps, n_in)
        for H in sizes:
            torch.manual_seed(0)
            gru = nn.GRU(n_in, H, layers, batch_first=True)
            fc = nn.Linear(H, n_out)
            with torch.no_grad():
                for i in range(layers):
                    getattr(gru, f"bias_hh_l{i}")[2 * H :].zero_()  # b_hn = 0, as the accelerator has it
            dense = DeltaGRU.from_gru(gru, fc, bhn_zero=True)
            theta_h, _ = _tune(gru, fc, xs[: min(500, steps)])
            delta = DeltaGRU.from_gru(gru, fc, theta_x=4 / 256, theta_h=theta_h)
            k_dense, k_delta = DeltaGRUKernel.from_module(dense), DeltaGRUKernel.from_module(delta)
            xt = [torch.from_numpy(xs[t]).view(1, 1, n_in) for t in range(steps)]
            state: dict[str, Any] = {}
            methods: dict[str, Callable[[int], object]] = {}

            def torch_step(t: int, gru: Any = gru, fc: Any = fc, xt: list = xt, state: dict = state) -> None:
                out, state["h"] = gru(xt[t], state["h"])
                fc(out)

            methods["torch eager (nn.GRU + Linear)"] = torch_step
            if ort is not None:
                meta = CheckpointMeta(
                    model=dense.config(),
                    feature_set="ampro",
                    input_norm=Normalizer(np.zeros(n_in, np.float32), np.ones(n_in, np.float32)),
                    target_scale=np.ones(n_out, np.float32),
                    target_offset=np.zeros(n_out, np.float32),
                )
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                sess = ort.InferenceSession(onnx_bytes(dense, meta), opts, providers=["CPUExecutionProvider"])
                xo = [xs[t].reshape(1, 1, n_in) for t in range(steps)]

                def ort_step(t: int, sess: Any = sess, xo: list = xo, state: dict = state) -> None:
                    _, state["h_ort"] = sess.run(None, {"features": xo[t], "h0": state["h_ort"]})

                methods["onnxruntime (exported ONNX)"] = ort_step

            def dense_step(t: int, k: DeltaGRUKernel = k_dense) -> object:
                return k.step(xs[t])

            def delta_step(t: int, k: DeltaGRUKernel = k_delta) -> object:
                return k.step(xs[t])

            methods["legloop kernel, dense (Θ = 0)"] = dense_step
            methods["legloop kernel, delta"] = delta_step
            times: dict[str, list[float]] = {m: [] for m in methods}
            with torch.no_grad():
                for r in range(rounds + 1):  # round 0 warms up (numba cache, onnxruntime's first runs)
                    for name, fn in methods.items():
                        state["h"] = torch.zeros(layers, 1, H)
                        state["h_ort"] = np.zeros((layers, 1, H), np.float32)
                        k_dense.reset()
                        k_delta.reset()
                        _per_step(fn, steps if r else min(steps, 50), times[name] if r else [])
            ref = statistics.median(times["onnxruntime (exported ONNX)"]) if ort is not None else None
            for name, ts in times.items():
                med = statistics.median(ts)
                sparsity = k_delta.sparsity() if "delta" in name else 0.0
                rows.append({
                    "network": f"2L-{H}H", "method": name, "median_us": med,
                    "p99_us": float(np.percentile(ts, 99)), "speedup_vs_ort": ref / med if ref else None,
                    "sparsity": sparsity, "theta_h": theta_h if "delta" in name else None,
                })  # fmt: skip
            if ort is None:
                rows.append({"network": f"2L-{H}H", "method": "onnxruntime (exported ONNX)", "median_us": None,
                             "note": ort_reason, "available": False})  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return {
        "status": OK,
        "rows": rows,
        "notes": [
            f"batch 1, one step, input {n_in}, output {n_out}, float32, one thread; per-step times of {rounds} "
            f"interleaved rounds x {steps} steps of gait-like inputs (median, p99); × onnxruntime = its median / this",
            "onnxruntime runs the exported controller (z-score in, de-normalise out: a few more flops); delta: "
            "Θx = 4/256, Θh chosen for ~90 % sparsity on these inputs",
        ],
    }


def _tune(gru: Any, fc: Any, xs: np.ndarray, target: float = 0.9) -> tuple[float, float]:
    from controllers.deltagru import DeltaGRU
    from controllers.gru_kernel import DeltaGRUKernel

    best = (0.0, 0.0)
    for th in (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5):
        k = DeltaGRUKernel.from_module(DeltaGRU.from_gru(gru, fc, theta_x=4 / 256, theta_h=th))
        for x in xs:
            k.step(x)
        if abs(k.sparsity() - target) < abs(best[1] - target):
            best = (th, k.sparsity())
    return best


INFERENCE_COLUMNS = [
    Column("network", "network"),
    Column("method", "method"),
    Column("median_us", "median µs", ".2f"),
    Column("p99_us", "p99 µs", ".2f"),
    Column("speedup_vs_ort", "× onnxruntime", ".1f"),
    Column("sparsity", "sparsity", ".2f"),
    Column("note", "note"),
]


# ------------------------------------------------------------------------------------------------------ edgedrnn
def bench_edgedrnn(quick: bool) -> dict[str, Any]:
    """2-layer 128-unit random network, 8 inputs: a sparse case (smooth inputs, Θ for ~90 %) and a dense one (Θ = 0,
    white noise); wall time of ``EdgeDRNNBackend.step`` (the closed loop's path) and of the batch ``run`` against the
    modelled latency of the same steps (125 MHz)."""
    from controllers.fixedpoint import Q88_ONE
    from hil.edgedrnn import EdgeDRNNBackend, EdgeDRNNModel
    from hil.edgedrnn.synthetic import noisy_inputs, random_bundle, smooth_inputs

    steps, repeats = (800, 2) if quick else (4000, 3)
    rng = np.random.default_rng(0)
    bundle = random_bundle(rng, 2, 8, 128, outputs=2)
    model = EdgeDRNNModel.from_bundle(bundle)
    cases = {"sparse": smooth_inputs(rng, steps, 8, period=400.0), "dense": noisy_inputs(rng, steps, 8)}
    model.run(cases["dense"][:8])  # compile / load the numba cache outside the timings
    rows = []
    clock = time.perf_counter_ns
    for name, X in cases.items():
        theta = 0
        if name == "sparse":
            for th in (0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128):
                model.theta_x = model.theta_h = th
                model.reset()
                theta = th
                if model.run(X).sparsity >= 0.9:
                    break
        model.theta_x = model.theta_h = theta
        best_run = np.inf
        for _ in range(repeats):
            model.reset()
            t0 = time.perf_counter()
            res = model.run(X)
            best_run = min(best_run, time.perf_counter() - t0)
        bundle.theta_x = bundle.theta_h = theta
        backend = EdgeDRNNBackend(bundle)
        feats = X.astype(np.float64) / Q88_ONE  # mean 0, std 1: the backend's quantiser gives back X exactly
        best_wall = None
        lat = np.zeros(steps)
        for _ in range(repeats):
            wall = np.zeros(steps)
            backend.reset()
            for t in range(steps):
                t0 = clock()
                r = backend.step(feats[t])
                wall[t] = (clock() - t0) * 1e-9
                lat[t] = r.latency_s
            if best_wall is None or wall.sum() < best_wall.sum():
                best_wall = wall
        assert best_wall is not None
        backend.close()
        hw = res.latency_s
        rows.append({
            "case": name, "theta": theta, "sparsity": res.sparsity,
            "hw_mean_us": float(hw.mean() * 1e6), "hw_p99_us": float(np.percentile(hw, 99) * 1e6),
            "wall_median_us": float(np.median(best_wall) * 1e6),
            "wall_p99_us": float(np.percentile(best_wall, 99) * 1e6),
            "ratio_step": float(np.median(best_wall / lat)), "ratio_run": float(best_run / hw.sum()),
        })  # fmt: skip
    return {
        "status": OK,
        "rows": rows,
        "notes": [
            f"2L-128H random weights, 8 inputs, 125 MHz; {steps} steps, best of {repeats}; wall/model = median over "
            "steps of EdgeDRNNBackend.step's wall time / that step's modelled latency; batch = EdgeDRNNModel.run's "
            "total / the modelled total",
        ],
    }


EDGEDRNN_COLUMNS = [
    Column("case", "case"),
    Column("theta", "Θ LSB"),
    Column("sparsity", "sparsity", ".2f"),
    Column("hw_mean_us", "modelled mean µs", ".2f"),
    Column("hw_p99_us", "modelled p99 µs", ".2f"),
    Column("wall_median_us", "model wall median µs", ".2f"),
    Column("wall_p99_us", "model wall p99 µs", ".2f"),
    Column("ratio_step", "wall/modelled ×", ".2f"),
    Column("ratio_run", "batch wall/modelled ×", ".3f"),
]


# ------------------------------------------------------------------------------------------------------ serial
def bench_serial(quick: bool) -> dict[str, Any]:
    """STEP round trips of the loop's board backend (quantise, send, wait, parse, scale) over a pty, per board."""
    from controllers.checkpoint import load_checkpoint
    from firmware_bridge.export import bundle_from_model
    from hil.board_backend import SerialBoardBackend

    steps = 500 if quick else 5000
    feats = _pd_features(seconds=max(4.0, (steps + 100) * 0.005)).astype(np.float64)
    rows: list[dict[str, Any]] = []
    cannot_run: tuple[type[Exception], ...] = (Unavailable, *_board_start_errors())
    with tempfile.TemporaryDirectory(prefix="legloop-bench-") as d:
        ckpt, _ = _random_checkpoint(Path(d) / "net.pt", 128, feats.astype(np.float32))
        model, meta = load_checkpoint(ckpt)
        bundle = bundle_from_model(model, meta)
        for label, kind, baud in SERIAL_CASES:
            try:
                link = _board_spec(str(ckpt), kind, baud).board
                backend = SerialBoardBackend(bundle, link)
            except cannot_run as exc:
                rows.append({"implementation": label, "median_us": None, "note": str(exc), "available": False})
                continue
            try:
                for x in feats[:100]:
                    backend.step(x)
                backend.reset()
                for x in feats[100 : 100 + steps]:
                    backend.step(x)
                rtt = backend.round_trips_s() * 1e6
                lost = int(np.isnan(rtt).sum())
                rtt = rtt[np.isfinite(rtt)]
                p50, p99, p999 = np.percentile(rtt, [50, 99, 99.9])
                rows.append({
                    "implementation": label, "median_us": float(p50), "p99_us": float(p99), "p99_9_us": float(p999),
                    "max_us": float(rtt.max()), "lost": lost, "steps": steps,
                    "period_pct_p99": 100.0 * p99 / 5000.0,
                    "note": f"{backend.info.firmware}; step timeout {backend.client.step_timeout_s * 1e3:.1f} ms"
                    if backend.client else "",
                })  # fmt: skip
            finally:
                backend.close()
    return {
        "status": OK,
        "rows": rows,
        "notes": [
            f"{steps} STEPs of a 2L-128H delta-GRU (random weights, ~90 % sparsity) on a PD walk's features, one "
            "after another as fast as answered; the round trip is what SerialBoardBackend.step measures: send STEP "
            "→ RESULT received and checked; goals: p99 ≤ 500 µs for the emulator at full speed, ≤ 150 µs for the "
            "C firmware (10 % / 3 % of the 5 ms period)",
        ],
    }


SERIAL_COLUMNS = [
    Column("implementation", "implementation"),
    Column("median_us", "round trip p50 µs", ".1f"),
    Column("p99_us", "p99 µs", ".1f"),
    Column("p99_9_us", "p99.9 µs", ".1f"),
    Column("max_us", "max µs", ".1f"),
    Column("period_pct_p99", "p99 % of 5 ms", ".1f"),
    Column("lost", "lost steps"),
    Column("note", "note"),
]


# ------------------------------------------------------------------------------------------------------ train
def bench_train(quick: bool) -> dict[str, Any]:
    if quick:
        return {"status": SKIPPED, "reason": "--quick (the default training takes minutes)", "rows": []}
    from experiments.train import run_training
    from experiments.train_config import load_config

    d = tempfile.mkdtemp(prefix="legloop-bench-train-")
    try:
        t0 = time.perf_counter()
        res = run_training(load_config(None), d, restart=True, force=True, progress=False)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)
    s = res.summary
    rows = []
    if "pd" in s["collect_seconds"]:
        rows.append({"stage": "pd data", "seconds": s["collect_seconds"]["pd"]})
    for st in s["stages"]:
        seconds = st["seconds"] + st.get("collect_seconds", 0.0)
        r2 = (st.get("val_r2") or {}).get("knee")
        sparsity = st.get("val_sparsity")
        rows.append({"stage": st["name"], "seconds": seconds, "val_r2_knee": r2, "val_sparsity": sparsity})
    rows.append({"stage": "total", "seconds": wall})
    for r in rows:
        r["share_pct"] = 100.0 * r["seconds"] / wall
    return {"status": OK, "rows": rows, "notes": ["default config (train_default.toml), DAgger stages include their "
                                                  "data collection; share = of the total wall time"]}  # fmt: skip


TRAIN_COLUMNS = [
    Column("stage", "stage"),
    Column("seconds", "wall s", ".1f"),
    Column("share_pct", "share %", ".0f"),
    Column("val_r2_knee", "val R² knee", ".4f"),
    Column("val_sparsity", "val sparsity", ".3f"),
]


# ------------------------------------------------------------------------------------------------------ sweep
def bench_sweep(quick: bool) -> dict[str, Any]:
    """The same short PD evaluation tasks through `legloop sweep`'s pool with 1 worker and with all cores."""
    from experiments.sweep import PoolExecutor, run_sweep
    from experiments.sweep_config import expand

    n, seconds = (4, 5.0) if quick else (16, 30.0)
    cores = os.cpu_count() or 1
    raw = {"defaults": {"seconds": seconds}, "grid": [{"controller": "pd", "seed": list(range(n))}]}
    rows = []
    for workers in dict.fromkeys((1, cores)):
        d = tempfile.mkdtemp(prefix="legloop-bench-sweep-")
        try:
            cfg = expand(raw, Path(d) / "bench.toml")
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            t0 = time.perf_counter()
            executor = PoolExecutor(workers)
            executor.warm_up()
            t1 = time.perf_counter()

            def this_executor(e: PoolExecutor = executor) -> PoolExecutor:
                return e

            res = run_sweep(cfg, d, this_executor, progress=False)
            t2 = time.perf_counter()
        finally:
            shutil.rmtree(d, ignore_errors=True)
        done = res.document["counts"]["done"]
        rows.append({"pool": f"{workers} worker{'s' if workers > 1 else ''}", "workers": workers, "tasks": done,
                     "start_s": t1 - t0, "wall_s": t2 - t1, "tasks_per_min": 60.0 * done / (t2 - t1),
                     "load": load})  # fmt: skip
    for r in rows:
        r["scaling"] = r["tasks_per_min"] / rows[0]["tasks_per_min"]
    return {
        "status": OK,
        "rows": rows,
        "notes": [
            f"{n} PD evaluation tasks of {seconds:g} s simulated each through run_sweep (task files, sweep.json "
            "included); pool start = spawning the workers and their imports, timed apart; tasks/min on the warm pool",
            "scaling needs idle cores: load = the 1-minute load average when the row started",
        ],
    }


SWEEP_COLUMNS = [
    Column("pool", "pool"),
    Column("tasks", "tasks"),
    Column("start_s", "pool start s", ".1f"),
    Column("wall_s", "tasks wall s", ".1f"),
    Column("tasks_per_min", "tasks/min", ".1f"),
    Column("scaling", "× pool of 1", ".2f"),
    Column("load", "load", ".1f"),
]

RUNNERS: dict[str, tuple[str, Callable[[bool], dict[str, Any]], list[Column]]] = {
    "plant": ("plant: closed-loop step vs raw physics, real-time factor per backend", bench_plant_section,
              PLANT_COLUMNS),
    "inference": ("inference: one batch-1 step of 2-layer GRUs", bench_inference, INFERENCE_COLUMNS),
    "edgedrnn": ("EdgeDRNN model: wall time vs the hardware latency it models", bench_edgedrnn, EDGEDRNN_COLUMNS),
    "serial": ("serial round trip per board implementation", bench_serial, SERIAL_COLUMNS),
    "train": ("training: default `legloop train` per stage", bench_train, TRAIN_COLUMNS),
    "sweep": ("sweep throughput: local pool of 1 vs all cores", bench_sweep, SWEEP_COLUMNS),
}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ suite
def run_bench(sections: tuple[str, ...] = SECTIONS, quick: bool = False,
              say: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run ``sections`` in order; a section that raises is recorded with its error and the others still run."""
    doc: dict[str, Any] = {"schema": SCHEMA, "quick": quick, "machine": machine(), "sections": {}}
    t_all = time.perf_counter()
    for name in sections:
        title, fn, _ = RUNNERS[name]
        if say is not None:
            say(f"{name} …")
        t0 = time.perf_counter()
        try:
            result = fn(quick)
        except Exception as exc:
            result = {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "rows": []}
        result["title"] = title
        result["wall_s"] = round(time.perf_counter() - t0, 2)
        doc["sections"][name] = result
    doc["wall_s"] = round(time.perf_counter() - t_all, 2)
    doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return doc


def format_bench(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    lines = [
        f"legloop bench{' --quick' if doc['quick'] else ''}: {m['cpu']}, {m['cores']} cores, load {m['load_average']}"
        f" → {m.get('load_average_after')}",
        "  " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
    ]
    for name, sec in doc["sections"].items():
        lines.append("")
        lines.append(f"== {sec['title']} ({sec['wall_s']:.0f} s)")
        if sec["status"] not in (OK,) and not sec["rows"]:
            lines.append(f"  {sec['status']}: {sec.get('reason', '')}")
            continue
        lines.append(table(sec["rows"], RUNNERS[name][2], sec.get("notes", [])))
    return "\n".join(lines)
