"""`legloop eval`: closed-loop episodes of one controller over seeds, written to DIR/metrics.json.

Learned controllers take a checkpoint: ``--controller gru|deltagru|edgedrnn --checkpoint CKPT`` (edgedrnn: the
checkpoint exported to the EdgeDRNN model, with ``--budget-us``, ``--deadline-policy`` and ``--governor``);
``--controller rl --checkpoint DIR`` runs a residual RL policy of ``legloop rl train`` (PD + its correction).
``--controller board`` runs the same export on a board over serial: ``--port DEV`` for a real one, or
``--emulate [python|c|qemu]`` for a virtual one started for the run, which takes the fault options (the Python
emulator injects them itself; the C firmware, on the host or QEMU, gets a fault proxy in front: ``hil.fault_proxy``).
With ``--replay LOG.csv`` a learned controller runs open loop over a recorded log (AMPRO schema) instead of the
simulator, and DIR/metrics.json holds per-joint torque R² / NRMSE against the logged PD torque.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controllers.features import FEATURE_SETS
from experiments.cli import CliError, Subparsers
from experiments.rundir import OutputExistsError, prepare_out, provenance, write_json
from experiments.tables import Column, count_of
from hil.governors import GOVERNORS, check_board_governor


def _columns(learned: bool) -> list[Column]:
    cols = [
        Column("seed", "seed"),
        Column("speed", "speed m/s", ".1f"),
        Column("fell", "fell"),
        Column("time_to_fall_s", "fall at s", ".1f"),
        Column("distance_m", "dist m", ".1f"),
        Column("strides", "strides"),
        Column("stride_time_cv", "stride CV", ".3f"),
        Column("knee_rmse_rad", "knee RMSE rad", ".3f"),
        Column("ankle_rmse_rad", "ankle RMSE rad", ".3f"),
        Column("floquet_max", "Floquet max", ".2f"),
        Column("mos_min_m", "MoS min m", ".3f"),
        Column("prosthesis_peak_load_bw", "peak load BW", ".2f"),
        Column("max_push_survived_n", "push N", ".0f"),
    ]
    if learned:
        cols += [
            Column("sparsity", "sparsity", ".3f"),
            Column("macs_per_step", "MACs/step", ",.0f"),
            Column("latency_p99_us", "p99 µs", ".1f"),
            Column("latency_max_us", "max µs", ".1f"),
            Column("misses", "over budget (steps)"),
        ]
    return cols


def episode_rows(episodes: list[dict]) -> list[dict]:
    """Episodes with the derived cells of the table (latency percentiles, misses with their denominator)."""
    rows = []
    for e in episodes:
        r = dict(e)
        lat = e.get("latency_us")
        if isinstance(lat, dict):
            r["latency_p99_us"], r["latency_max_us"] = lat["p99"], lat["max"]
            r["misses"] = count_of(e.get("deadline_misses"), e.get("deadline_steps"))
        rows.append(r)
    return rows


def table_notes(episodes: list[dict], learned: bool) -> list[str]:
    """What the table's units, budget, policy and missing cells mean."""
    from hil.deadline import POLICY_HELP

    notes = ["RMSE against the AMPRO PD's desired trajectory (a PD runs in shadow); MoS: margin of stability (Hof)"]
    if any(e.get("floquet_max") is None for e in episodes):
        notes.append(
            "Floquet –: fewer than 30 prosthetic strides (episode too short or fell); stability is the fall count"
        )
    if any(e.get("max_push_survived_n") is None for e in episodes):
        notes.append("push –: push trials not run (--no-pushes)")
    if learned and episodes:
        e = episodes[0]
        policy = e.get("deadline_policy")
        source = "measured wall time of the CPU kernel" if e.get("latency_source") == "measured" else "modelled"
        notes.append(
            f"latency: {source}; budget {e.get('budget_us')} µs per step; policy {policy!r}: "
            f"{POLICY_HELP.get(str(policy), '')}; over budget = steps later than the budget / steps run"
        )
        notes.append("sparsity: fraction of zero Δx, Δh entries; MACs/step: fetched weight columns · 3H + output layer")
    return notes


LEARNED = ("gru", "deltagru", "edgedrnn", "board")
EMULATE_KINDS = ("python", "c", "qemu")
POLICIES = ("hold", "fallback_pd", "stop", "period", "none")


def threshold_arg(text: str) -> float:
    """``--theta-x/--theta-h``: a normalised threshold (``0.375``) or a fraction of two integers (``96/256``, as
    the docs and train.json quote them, the denominator EdgeDRNN's Q8.8 one)."""
    num, slash, den = text.partition("/")
    try:
        value = int(num) / int(den) if slash else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a normalised threshold like 0.375 or a fraction like 96/256, got {text!r}"
        ) from None
    return value


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CliError(f"--seeds must be comma-separated integers like 0,1,2; got {text!r}") from None
    if not seeds:
        raise CliError("--seeds must name at least one seed, e.g. 0,1,2")
    return seeds


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "eval",
        help="run closed-loop episodes and write DIR/metrics.json",
        description=__doc__,
    )
    p.add_argument(
        "--controller",
        default="pd",
        choices=["pd", "zero", "damped", *LEARNED, "rl"],
        help="pd: AMPRO-style PD baseline; zero: zero-torque prosthesis; damped: passive damper; "
        "gru / deltagru: a checkpoint on the CPU with Θ = 0 / its thresholds; edgedrnn: on the EdgeDRNN model; "
        "board: on a board over serial (--port DEV, or --emulate); rl: a residual RL policy (legloop rl train DIR)",
    )
    p.add_argument(
        "--checkpoint",
        help="learned controllers: a checkpoint (.pt with its .json), or a training run directory: gru runs its "
        "float GRU (DIR/gru.pt), deltagru and edgedrnn its delta-GRU (DIR/controller.pt); rl: the run directory of "
        "legloop rl train (or one of its checkpoints/step_N)",
    )
    p.add_argument(
        "--features",
        choices=FEATURE_SETS,
        help="require the checkpoint to use this feature set (default: any)",
    )
    p.add_argument("--budget-us", type=float, default=21.0, help="learned controllers: latency budget per step, µs")
    p.add_argument(
        "--deadline-policy",
        choices=POLICIES,
        default=None,
        help="learned controllers: on a missed budget hold the last torque, use the PD's torque, stop (zero torque), "
        "'period': count the miss but apply the late result if it arrived within the control period, or 'none': "
        "report only. Default: hold on edgedrnn, none on the CPU (gru, deltagru), whose measured time varies "
        "with the machine's load",
    )
    p.add_argument(
        "--governor",
        nargs="?",
        const="reactive",
        choices=GOVERNORS,
        default=None,
        help="edgedrnn: run-time threshold governor; alone: 'reactive' (raises Θ after a step near the budget), "
        "'predictive' (prices each step with the cycle model before it runs and writes the smallest Θ that fits), "
        "'predictive-worst' (the same, counting every column that can fire: never late when a Θ fits), "
        "'predictive-split' (a host that runs the step layer by layer: each layer priced exactly, never late when a Θ "
        "fits), 'predictive-oracle' (priced by trial steps on the model's whole state: a ceiling no real host "
        "reaches). board: 'predictive-worst' or 'predictive-split', run on the board itself (protocol 1.1 "
        "SET_GOVERNOR)",
    )
    p.add_argument(
        "--clock-mhz", type=float, default=125.0, help="edgedrnn, board --emulate python: accelerator clock, MHz"
    )
    for which, trained in (("x", "inputs"), ("h", "hidden state")):
        p.add_argument(
            f"--theta-{which}",
            type=threshold_arg,
            default=None,
            metavar="Θ",
            help=f"deltagru, edgedrnn, board: run with this delta threshold on the {trained} instead of the "
            "checkpoint's, in its normalised units (0.375 = 96/256, i.e. 96 LSB of EdgeDRNN's Q8.8 register; 0: every "
            "change fires), or as a fraction, e.g. 96/256 — EdgeDRNN's thresholds are registers, so a trained network "
            "can be tried at others",
        )
    p.add_argument("--replay", metavar="LOG.csv", help="learned controllers: open-loop replay of a recorded log")
    p.add_argument("--gain-scale", type=float, default=1.0, help="multiply the PD gains (e.g. 0.2 for 'gains / 5')")
    p.add_argument("--speed", type=float, default=1.0, help="target walking speed, m/s (0.6-1.5)")
    p.add_argument("--seconds", type=float, default=60.0, help="episode length, s")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--slope", type=float, default=0.0, help="ground slope in degrees, uphill positive")
    p.add_argument("--no-randomize", action="store_true", help="turn domain randomisation off")
    p.add_argument("--no-pushes", action="store_true", help="skip the push-robustness trials (faster)")
    p.add_argument(
        "--actuation-delay-ms",
        type=float,
        default=0.0,
        help="torque-to-motor latency added to any controller, ms (1 ms physics-step granularity)",
    )
    p.add_argument("--jitter-ms", type=float, default=0.0, help="plus a uniform [0, J] ms delay per period (seeded)")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="pace the loop at the control rate on the wall clock and report its lateness (default: as fast as "
        "the computer goes)",
    )
    p.add_argument(
        "--no-log", action="store_true", help="do not write per-step run logs (DIR/runlogs/seed_<seed>.npy + .json)"
    )
    p.add_argument("--out", required=True, help="output directory (metrics.json goes there)")
    p.add_argument("--force", action="store_true", help="overwrite an existing DIR/metrics.json")
    _board_arguments(p)
    p.set_defaults(func=run)


def _board_arguments(p: argparse.ArgumentParser) -> None:
    from hil.board_backend import DEFAULT_WATCHDOG_PERIODS, ON_RESET
    from hil.board_emulator import add_fault_arguments

    g = p.add_argument_group("board (--controller board)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="DEV", help="a real board: device path or pyserial URL (e.g. /dev/ttyACM0)")
    where.add_argument(
        "--emulate",
        nargs="?",
        const="python",
        choices=EMULATE_KINDS,
        metavar="KIND",
        help="a virtual board started for the run: python (the emulator, default), c (the C firmware on a pty), "
        "qemu (the firmware on an emulated Cortex-M3); with fault options, c and qemu get a fault proxy in front",
    )
    g.add_argument(
        "--baud",
        type=float,
        default=None,
        help="--port: the line rate, bits/s (None: 921600); --emulate python: the wire time to emulate "
        "(None: full speed)",
    )
    g.add_argument(
        "--watchdog-periods",
        type=int,
        default=DEFAULT_WATCHDOG_PERIODS,
        metavar="N",
        help="end the run when the board leaves N control steps in a row unanswered",
    )
    g.add_argument(
        "--on-reset",
        choices=ON_RESET,
        default="resync",
        help="a board that reboots mid-run: configure it again and go on (its state restarts from zero), or stop",
    )
    g.add_argument(
        "--step-timeout-ms",
        type=float,
        default=None,
        metavar="MS",
        help="a STEP answered later than this is lost (None: the wire time of the exchange + 4 ms)",
    )
    add_fault_arguments(p)


def _board_link(args: argparse.Namespace) -> Any:
    """The :class:`hil.board_backend.BoardLink` of ``--controller board`` (None for other controllers)."""
    from hil.board_backend import DEFAULT_WATCHDOG_PERIODS, BoardLink
    from hil.board_emulator import faults_from_args, given_fault_flags

    board_flags = [
        ("--port", args.port is not None),
        ("--emulate", args.emulate is not None),
        ("--baud", args.baud is not None),
        ("--watchdog-periods", args.watchdog_periods != DEFAULT_WATCHDOG_PERIODS),
        ("--on-reset", args.on_reset != "resync"),
        ("--step-timeout-ms", args.step_timeout_ms is not None),
    ]
    faults_given = given_fault_flags(args)
    board_flags += [(flag, True) for flag in faults_given]
    if args.controller != "board":
        for flag, given in board_flags:
            if given:
                raise CliError(f"{flag} applies to --controller board, not {args.controller!r}")
        return None
    if args.port is None and args.emulate is None:
        raise CliError(
            "--controller board needs a board: --port DEV (a real one) or --emulate [python|c|qemu] (a virtual one)"
        )
    if args.emulate is None and faults_given:
        raise CliError(
            f"{faults_given[0]}: a real board (--port) injects no faults; fault injection needs --emulate "
            f"(python, or c / qemu behind the fault proxy)"
        )
    elif args.emulate != "python" and args.reset_after is not None:
        raise CliError(
            f"--reset-after: --emulate {args.emulate} injects no faults of its own, and the fault proxy in front of it "
            f"cannot reboot it; emulated reboots need --emulate python"
        )
    if args.step_timeout_ms is not None and not 0 < args.step_timeout_ms <= 10_000:
        raise CliError(f"--step-timeout-ms must be in (0, 10000] ms, got {args.step_timeout_ms}")
    try:
        return BoardLink(
            port=args.port,
            emulate=args.emulate,
            baud=args.baud,
            faults=faults_from_args(args),
            watchdog_periods=args.watchdog_periods,
            on_reset=args.on_reset,
            step_timeout_s=args.step_timeout_ms * 1e-3 if args.step_timeout_ms is not None else None,
        )
    except ValueError as exc:
        raise CliError(str(exc).replace("watchdog_periods", "--watchdog-periods")) from None


def _check_learned_args(args: argparse.Namespace) -> None:
    learned = args.controller in LEARNED
    if (learned or args.controller == "rl") and not args.checkpoint:
        raise CliError(f"--controller {args.controller} needs --checkpoint CKPT")
    # Options of the networks: an RL policy takes a checkpoint but none of these; the built-ins take neither.
    network_flags = [
        ("--replay", args.replay),
        ("--features", args.features),
        ("--governor", args.governor),
        ("--deadline-policy", args.deadline_policy is not None),
        ("--budget-us", args.budget_us != 21.0),
        ("--clock-mhz", args.clock_mhz != 125.0),
        ("--theta-x", args.theta_x is not None),
        ("--theta-h", args.theta_h is not None),
    ]
    if args.controller == "rl":
        for flag, given in network_flags:
            if given:
                raise CliError(f"{flag} applies to the networks ({', '.join(LEARNED)}), not to --controller rl")
    elif not learned:
        for flag, given in [("--checkpoint", args.checkpoint), *network_flags]:
            if given:
                raise CliError(f"{flag} applies to learned controllers ({', '.join(LEARNED)}), not {args.controller!r}")
    elif args.controller != "edgedrnn":
        if args.governor and args.controller != "board":
            raise CliError("--governor applies to --controller edgedrnn only (board: predictive-worst or "
                           "predictive-split, on the board)")  # fmt: skip
        if args.governor and args.controller == "board":
            try:
                check_board_governor(args.governor)
            except ValueError as exc:
                raise CliError(f"--governor: {exc}") from None
        if args.clock_mhz != 125.0 and not (args.controller == "board" and args.emulate == "python"):
            raise CliError("--clock-mhz applies to --controller edgedrnn and board --emulate python (a real board "
                           "reports its clock)")  # fmt: skip
    thresholds_given = args.theta_x is not None or args.theta_h is not None
    if args.controller == "gru" and thresholds_given:
        raise CliError("--theta-x / --theta-h apply to --controller deltagru, edgedrnn and board (gru runs Θ = 0)")
    if args.replay and thresholds_given:
        raise CliError("--theta-x / --theta-h apply to closed-loop runs, not to --replay")
    if not 0.0 < args.budget_us <= 1e6:
        raise CliError(f"--budget-us must be in (0, 1e6] µs, got {args.budget_us}")
    if not 0.0 < args.clock_mhz <= 10_000.0:
        raise CliError(f"--clock-mhz must be in (0, 10000] MHz, got {args.clock_mhz}")


def _learned_errors() -> tuple[type[Exception], ...]:
    from controllers.checkpoint import CheckpointError
    from firmware_bridge.errors import ImageError
    from firmware_bridge.export import ExportError

    return (CheckpointError, ExportError, ImageError)


def _rl_errors() -> tuple[type[Exception], ...]:
    from controllers.rl_policy import RLCheckpointError

    return (RLCheckpointError,)


def _board_errors() -> tuple[type[Exception], ...]:
    """What setting up a board can raise: each message names what was expected."""
    from firmware_bridge.board_client import BoardError, BoardReset, GovernorUnsupported, VersionMismatch
    from firmware_bridge.c_firmware import FirmwareError
    from firmware_bridge.protocol import ProtocolError
    from firmware_bridge.transport import LinkError
    from hil.board_process import BoardStartError

    return (
        LinkError, BoardError, BoardReset, VersionMismatch, GovernorUnsupported, BoardStartError, FirmwareError,
        ProtocolError,
    )  # fmt: skip


def run_replay(args: argparse.Namespace) -> int:
    """Open-loop replay of a log: metrics.json (and replay.npz with the torques) in --out."""
    import numpy as np

    from envs.files import atomic_writer
    from experiments.replay import ReplayError, replay_log

    try:
        metrics, pred, target = replay_log(
            args.controller,
            args.checkpoint,
            args.replay,
            feature_set=args.features,
            budget_s=args.budget_us * 1e-6,
            policy=args.deadline_policy,
            governor=args.governor,
            board=_board_link(args),
            clock_hz=args.clock_mhz * 1e6,
        )
    except (ReplayError, ValueError, *_learned_errors(), *_board_errors()) as exc:  # type: ignore[misc]
        raise CliError(str(exc)) from None
    except KeyError as exc:  # features_from_columns names the missing log column
        raise CliError(str(exc.args[0]) if exc.args else str(exc)) from None
    try:
        out = prepare_out(args.out, ("metrics.json", "replay.npz"), args.force)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    metrics["config"] = {
        "budget_us": args.budget_us,
        "deadline_policy": args.deadline_policy,
        "governor": args.governor,
    }
    metrics["provenance"] = provenance()
    with atomic_writer(out / "replay.npz") as f:
        np.savez(f, torque_pred=pred, torque_pd=target)
    write_json(out / "metrics.json", metrics)
    for joint, m in metrics["joints"].items():
        print(f"{joint:>5}: R² {m['r2']}, NRMSE {m['nrmse']}, RMSE {m['rmse_nm']} N·m")
    print(f"sparsity {metrics['sparsity']:.3f}, {metrics['macs_per_step']:.0f} MACs/step")
    if "latency" in metrics:
        lat = metrics["latency"]
        print(
            f"latency mean {lat['mean_us']} µs, p99 {lat['p99_us']} µs, max {lat['max_us']} µs; "
            f"{lat['misses']}/{lat['steps']} deadline misses (budget {lat['budget_us']} µs)"
        )
    print(f"{args.controller} replay of {metrics['rows']} rows; wrote {out / 'metrics.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from experiments.evaluate import EvalConfig, evaluate, summarize_episodes
    from experiments.tables import table
    from hil.spec import ControllerSpec

    _check_learned_args(args)
    if args.replay:
        return run_replay(args)
    if not 0.6 <= args.speed <= 1.5:
        raise CliError(f"--speed must be within 0.6..1.5 m/s, got {args.speed}")
    if not 0.0 < args.seconds <= 3600.0:
        raise CliError(f"--seconds must be in (0, 3600], got {args.seconds}")
    if not 0.0 < args.gain_scale <= 10.0:
        raise CliError(f"--gain-scale must be in (0, 10], got {args.gain_scale}")
    for flag, value in (("--actuation-delay-ms", args.actuation_delay_ms), ("--jitter-ms", args.jitter_ms)):
        if not 0.0 <= value <= 1000.0:
            raise CliError(f"{flag} must be in [0, 1000] ms, got {value}")
    seeds = parse_seeds(args.seeds)
    learned = args.controller in LEARNED
    board = _board_link(args)
    # The factory loads (and for edgedrnn exports) the checkpoint: a bad one fails here, before --out is touched;
    # for a board it also connects, configures and uploads, so a board that is not there fails here too.
    errors: tuple[type[Exception], ...] = _learned_errors() if learned else ()
    if args.controller == "rl":
        errors += _rl_errors()
    if board is not None:
        errors += _board_errors()
    try:
        # --out is checked before a board is started: a run that could not write its results must not start.
        prepare_out(args.out, ("metrics.json", "runlogs"), args.force, create=False)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    try:
        spec = ControllerSpec(
            args.controller,
            checkpoint=args.checkpoint,
            feature_set=args.features,
            gain_scale=args.gain_scale,
            policy=args.deadline_policy,
            budget_s=args.budget_us * 1e-6,
            governor=args.governor,
            clock_hz=args.clock_mhz * 1e6,
            board=board,
            theta_x=args.theta_x,
            theta_h=args.theta_h,
        )
        if board is not None:
            print(f"legloop eval: connecting to the {board.where} …", file=sys.stderr)
        factory = spec.factory()
    except (ValueError, *errors) as exc:  # type: ignore[misc]
        raise CliError(str(exc)) from None
    try:
        out = prepare_out(args.out, ("metrics.json", "runlogs"), args.force)
    except OutputExistsError as exc:
        raise CliError(str(exc)) from None
    if args.force and (out / "runlogs").is_dir():
        # A forced re-run must not leave run logs of seeds it did not run beside the new ones.
        for stale in (out / "runlogs").glob("seed_*.*"):
            stale.unlink()
    cfg = EvalConfig(
        speed=args.speed,
        seconds=args.seconds,
        seeds=seeds,
        randomize=not args.no_randomize,
        slope_deg=args.slope,
        actuation_delay_s=args.actuation_delay_ms * 1e-3,
        actuation_jitter_s=args.jitter_ms * 1e-3,
        realtime=args.realtime,
        log_dir=None if args.no_log else str(out / "runlogs"),
    )
    name = spec.display_name
    print(
        f"legloop eval: {name} at {args.speed} m/s, {args.seconds:g} s x {len(seeds)} seeds"
        f"{'' if args.no_pushes else ' + push trials'}",
        file=sys.stderr,
    )
    limits = factory.meta.command_limits if learned else None
    if spec.theta_x is not None or spec.theta_h is not None:
        given = [f"Θ{w} {v:g}" for w, v in (("x", spec.theta_x), ("h", spec.theta_h)) if v is not None]
        print(f"  thresholds overridden: {', '.join(given)} (the checkpoint's are not used)", file=sys.stderr)
    if learned and limits:  # a network distilled from a limited RL expert: its torque is bounded as the expert's
        print(f"  command limits from the checkpoint: {limits.describe()}", file=sys.stderr)
    res_limits = factory.meta.residual_limits if learned else None
    if res_limits is not None:  # ... and its correction as the expert's residual
        print(f"  residual limits from the checkpoint (its expert's): {res_limits.describe()}", file=sys.stderr)
    log_header = {
        "controller": spec.to_dict(),
        "checkpoint": str(factory.checkpoint_path or ""),
        "provenance": provenance(),
    }
    with factory:
        episodes = evaluate(
            factory,
            cfg,
            pushes=not args.no_pushes,
            progress=lambda msg: print("  " + msg, file=sys.stderr),
            log_header=log_header,
        )
    config = {
        "speed": cfg.speed,
        "seconds": cfg.seconds,
        "seeds": seeds,
        "randomize": cfg.randomize,
        "slope_deg": cfg.slope_deg,
        "pushes": not args.no_pushes,
        "actuation_delay_ms": args.actuation_delay_ms,
        "jitter_ms": args.jitter_ms,
        "realtime": args.realtime,
        "run_logs": None if args.no_log else "runlogs",
    }
    if args.controller == "rl":
        config["checkpoint"] = str(factory.checkpoint_path)
    if learned:
        config["checkpoint"] = str(factory.checkpoint_path)
        config |= {"budget_us": args.budget_us, "deadline_policy": episodes[0].get("deadline_policy")}
        if limits:
            config["command_limits"] = limits.to_dict()
        if res_limits is not None:
            config["residual_limits"] = res_limits.to_dict()
    if args.controller == "edgedrnn":
        config |= {"governor": args.governor, "clock_mhz": args.clock_mhz}
    if board is not None:
        config["board"] = board.to_dict()
    config["controller"] = spec.to_dict()
    result: dict[str, Any] = {
        "controller": name,
        "config": config,
        "episodes": episodes,
        "summary": summarize_episodes(episodes),
        "provenance": provenance(),
    }
    write_json(out / "metrics.json", result)
    print(table(episode_rows(episodes), _columns(learned), table_notes(episodes, learned)))
    for e in episodes:
        rt = e.get("realtime")
        if rt:
            lt = rt["lateness_us"]
            print(
                f"seed {e['seed']} real time: loop lateness p50 {lt['p50']} µs, p99 {lt['p99']} µs, "
                f"p99.9 {lt['p99_9']} µs, max {lt['max']} µs; {rt['periods_missed']}/{rt['steps']} periods missed"
            )
        link = e.get("link")
        if link:
            print(f"seed {e['seed']} link: {link_summary(link)}")
    s = result["summary"]
    logs = "" if args.no_log else f" and run logs in {out / 'runlogs'}"
    print(f"\n{name}: {s['falls']}/{s['episodes']} fell; wrote {out / 'metrics.json'}{logs}")
    aborted = [e for e in episodes if e.get("ended") == "aborted"]
    if aborted:
        e = aborted[0]
        print(
            f"legloop eval: the run was aborted at seed {e['seed']}: {e.get('aborted_reason')}"
            + (f"; seeds not run: {e['seeds_not_run']}" if e.get("seeds_not_run") else ""),
            file=sys.stderr,
        )
        return 1
    return 0


def link_summary(link: dict[str, Any]) -> str:
    """One line: round trip percentiles (µs), lost steps / steps, what the host counted and what was injected."""
    rt = link["round_trip_us"]
    counted = ", ".join(
        f"{k} {link[k]}"
        for k in ("timeouts", "crc_errors", "truncated", "malformed", "duplicates", "stale", "seq_gaps", "resyncs")
        if link.get(k)
    )
    text = (
        f"round trip p50 {rt['p50']} µs, p99 {rt['p99']} µs, p99.9 {rt['p99_9']} µs, max {rt['max']} µs; "
        f"{link['steps_lost']}/{link['steps']} steps lost ({counted or 'no link errors'})"
    )
    if link.get("board_resets"):
        text += f"; board rebooted {link['board_resets']}x"
    injected = link.get("injected")
    if injected:
        text += "; injected: " + (", ".join(f"{k} {v}" for k, v in injected.items() if v) or "none")
    elif "injected_unavailable" in link:
        text += f"; injected: unknown ({link['injected_unavailable']})"
    return text
