"""`legloop edgedrnn simulate`: run a weight image and an input sequence on the EdgeDRNN model, like the RTL bench.

    legloop edgedrnn simulate --image W.bin|W.txt --layers L --input-size I --hidden H --theta-x N --theta-h N
        [--clock-mhz 125] [--burst-latency 0] [--t-sys-us 0] [--saturate]
        --inputs X.npy|X.txt --out R.npz [--force]

Inputs are Q8.8: an ``.npy`` int16 [T, I] or [T, I_padded], or the test bench's hex-beat text (one 128-bit beat = 8
values per line, I_padded/8 beats per step). The result ``.npz`` holds ``h`` (int16 [T, H], last layer), ``cycles``
(int64 [T]) and ``fired_columns`` (int64 [T], bias columns included) plus per-layer detail and the parameters.
Heavy imports (numba) happen inside the command, so ``legloop --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from experiments.cli import CliError, Subparsers


def register(subparsers: Subparsers) -> None:
    """Add ``edgedrnn`` (with sub-command ``simulate``) to the ``legloop`` parser."""
    parser = subparsers.add_parser(
        "edgedrnn", help="the EdgeDRNN accelerator model", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="edgedrnn_command", metavar="SUBCOMMAND", required=True)
    sim = sub.add_parser(
        "simulate",
        help="run a weight image on an input sequence; write h, cycles and fired columns",
        description="Run a weight image on an input sequence with the bit-exact, cycle-timed EdgeDRNN model.",
    )
    sim.add_argument("--image", required=True, type=Path, help="weight image: .bin raw bytes or .txt hex beats")
    sim.add_argument("--layers", required=True, type=int, help="GRU layers (1..4)")
    sim.add_argument("--input-size", required=True, type=int, help="network inputs (padded or not)")
    sim.add_argument("--hidden", required=True, type=int, help="hidden units per layer (multiple of 8)")
    sim.add_argument("--theta-x", required=True, type=int, help="input delta threshold, Q8.8 LSB (0..511)")
    sim.add_argument("--theta-h", required=True, type=int, help="hidden delta threshold, Q8.8 LSB (0..511)")
    sim.add_argument("--clock-mhz", type=float, default=125.0, help="accelerator clock (default 125)")
    sim.add_argument("--burst-latency", type=int, default=0, help="extra cycles per weight burst λ (default 0)")
    sim.add_argument("--t-sys-us", type=float, default=0.0, help="system overhead added to latency (default 0)")
    sim.add_argument("--saturate", action="store_true", help="saturate on overflow instead of wrapping like the RTL")
    sim.add_argument("--inputs", required=True, type=Path, help="Q8.8 inputs: .npy int16 [T, I] or hex-beat .txt")
    sim.add_argument("--out", required=True, type=Path, help="result file (.npz)")
    sim.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    sim.set_defaults(func=_simulate)


def _read_inputs(path: Path, input_size: int, input_padded: int) -> np.ndarray:
    from controllers.fixedpoint import Q88_MAX, Q88_MIN
    from firmware_bridge.errors import ImageError
    from firmware_bridge.rtl_hex import parse_hex_activations

    if not path.is_file():
        raise CliError(f"--inputs {path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CliError(f"--inputs {path}: not a readable .npy file ({exc})") from None
        if x.ndim != 2 or x.shape[1] not in (input_size, input_padded):
            raise CliError(
                f"--inputs {path}: shape {x.shape}; expected int16 [T, {input_padded}] "
                f"(input size {input_size} padded to a multiple of 8)"
            )
        if not np.issubdtype(x.dtype, np.integer):
            raise CliError(f"--inputs {path}: dtype {x.dtype}; expected int16 Q8.8")
        if x.dtype != np.int16:
            if x.size and (x.min() < Q88_MIN or x.max() > Q88_MAX):
                raise CliError(f"--inputs {path}: values outside int16; expected int16 Q8.8")
            x = x.astype(np.int16)
        return x
    if path.suffix.lower() in (".txt", ".hex", ".mem"):
        try:
            return parse_hex_activations(path.read_text(encoding="ascii"), input_padded)
        except (ImageError, UnicodeDecodeError) as exc:
            raise CliError(f"--inputs {path}: {exc}") from None
    raise CliError(f"--inputs {path}: unknown format {path.suffix!r}; expected .npy or hex-beat .txt")


def _simulate(args: argparse.Namespace) -> int:
    from envs.files import atomic_writer
    from firmware_bridge.bundle import check_theta
    from firmware_bridge.errors import ImageError
    from firmware_bridge.weight_image import ImageLayout, read_image
    from hil.edgedrnn.model import EdgeDRNNError, EdgeDRNNModel

    if not args.clock_mhz > 0:
        raise CliError(f"--clock-mhz must be > 0, got {args.clock_mhz}")
    if args.burst_latency < 0:
        raise CliError(f"--burst-latency must be >= 0 cycles, got {args.burst_latency}")
    try:
        theta_x = check_theta(args.theta_x, "--theta-x")
        theta_h = check_theta(args.theta_h, "--theta-h")
        layout = ImageLayout(args.layers, args.input_size, args.hidden)
    except ImageError as exc:
        raise CliError(str(exc)) from None
    out: Path = args.out
    if out.suffix != ".npz":
        raise CliError(f"--out {out}: expected a .npz file name")
    if out.exists() and not args.force:
        raise CliError(f"--out {out} exists; pass --force to overwrite it")
    if not out.parent.is_dir():
        raise CliError(f"--out {out}: directory {out.parent} does not exist")
    if not args.image.is_file():
        raise CliError(f"--image {args.image}: no such file")
    try:
        image = read_image(args.image)
        model = EdgeDRNNModel(
            image,
            args.layers,
            args.input_size,
            args.hidden,
            theta_x,
            theta_h,
            clock_hz=args.clock_mhz * 1e6,
            burst_latency=args.burst_latency,
            t_sys_s=args.t_sys_us * 1e-6,
            saturate=args.saturate,
        )
    except (ImageError, EdgeDRNNError, UnicodeDecodeError) as exc:
        raise CliError(f"--image {args.image}: {exc}") from None
    x = _read_inputs(args.inputs, args.input_size, layout.input_padded)
    if x.shape[0] == 0:
        raise CliError(f"--inputs {args.inputs}: no time steps")
    res = model.run(x)
    with atomic_writer(out) as f:
        np.savez(
            f,
            h=res.h,
            cycles=res.cycles,
            fired_columns=res.fired_columns,
            latency_s=res.latency_s,
            nonzero_deltas=res.nonzero_deltas,
            layer_fired=res.layer_fired,
            layer_mac_cycles=res.layer_mac_cycles,
            layer_act_cycles=res.layer_act_cycles,
            theta_x=np.int64(theta_x),
            theta_h=np.int64(theta_h),
            clock_hz=np.float64(model.clock_hz),
            burst_latency=np.int64(model.burst_latency),
            t_sys_s=np.float64(model.t_sys_s),
        )
    _summary(model, res, out)
    return 0


def _summary(model, res, out: Path) -> None:
    c = res.cycles
    us = res.latency_s * 1e6
    print(
        f"EdgeDRNN model: {model.layers} layer(s) x {model.hidden} units, input {model.input_size} "
        f"(padded {model.input_padded}), theta_x={model.theta_x} theta_h={model.theta_h} LSB, "
        f"{model.clock_hz / 1e6:g} MHz, burst latency {model.burst_latency}, "
        f"{'saturating' if model.saturate else 'wrapping'} arithmetic"
    )
    print(
        f"steps {len(c)} | cycles mean {c.mean():.1f} p99 {np.percentile(c, 99):.0f} max {c.max()} "
        f"(floor {model.floor_cycles}, dense {model.dense_cycles})"
    )
    print(f"latency mean {us.mean():.3f} us p99 {np.percentile(us, 99):.3f} us max {us.max():.3f} us")
    print(
        f"fired columns mean {res.fired_columns.mean():.1f} | delta sparsity {100 * res.sparsity:.1f} % "
        f"of {res.delta_elements} delta elements per step"
    )
    print(f"wrote {out}")
