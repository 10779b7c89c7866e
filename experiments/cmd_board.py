"""`legloop board emulate`: a virtual EdgeDRNN board on a pseudo-terminal, in its own process, until Ctrl-C.

    legloop board emulate [--baud N] [--clock-mhz F] [--fault-drop P] [--fault-corrupt P] [--fault-truncate P]
        [--fault-duplicate P] [--fault-delay-ms DIST] [--reset-after N] [--die-after N] [--fault-seed S]

prints the device path to connect a host to (``BoardClient.open(PATH)``, or any serial tool at 8N1). The board
starts empty: the host configures it and uploads the model over the wire (``docs/protocol.md``).
"""

from __future__ import annotations

import argparse
import signal
import time

from experiments.cli import CliError, Subparsers
from hil.board_process import DEFAULT_STARTUP_TIMEOUT_S


def register(subparsers: Subparsers) -> None:
    """Add ``board`` (with sub-command ``emulate``) to the ``legloop`` parser."""
    from hil.board_emulator import add_emulator_arguments

    parser = subparsers.add_parser("board", help="serial boards: a virtual EdgeDRNN board", description=__doc__)
    sub = parser.add_subparsers(dest="board_command", metavar="SUBCOMMAND", required=True)
    emu = sub.add_parser(
        "emulate",
        help="serve the board protocol on a new pseudo-terminal with the EdgeDRNN model (until Ctrl-C)",
        description="Start a virtual EdgeDRNN board on a pseudo-terminal in its own process and print its device "
        "path. Without --baud it answers at full speed; with --baud it holds each response back by the wire time a "
        "real UART at that rate would take. Faults are seeded and at most one hits a request.",
    )
    add_emulator_arguments(emu)
    emu.add_argument(
        "--startup-timeout",
        type=float,
        default=DEFAULT_STARTUP_TIMEOUT_S,
        help="seconds to wait for the board process to start (a cold numba cache compiles its kernels first)",
    )
    emu.set_defaults(func=_emulate)


def _emulate(args: argparse.Namespace) -> int:
    from hil.board_emulator import options_from_args
    from hil.board_process import BoardStartError, start_board

    try:
        options = options_from_args(args)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not args.startup_timeout > 0:
        raise CliError(f"--startup-timeout {args.startup_timeout}: expected seconds > 0")
    try:
        board = start_board("python", options, startup_timeout_s=args.startup_timeout)
    except BoardStartError as exc:
        raise CliError(str(exc)) from None
    # "Ctrl-C here" must stop it even when this process was started with SIGINT ignored (inherited from a parent that
    # ignores it: nohup, a background job, a test runner's worker), where Python keeps SIG_IGN.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    baud = f"{options.baud:g} baud emulated" if options.baud else "full speed"
    faults = " ".join(options.faults.argv()) or "no faults"
    try:  # from the first line on: a Ctrl-C may come as soon as the device path is out
        print(
            f"virtual board on {board.path}  (pid {board.pid}; {baud}; {options.clock_mhz:g} MHz; {faults})", flush=True
        )
        print(f"connect: BoardClient.open({board.path!r}); stop: Ctrl-C here, or kill {board.pid}", flush=True)
        while board.alive:
            time.sleep(0.2)
    except KeyboardInterrupt:
        board.stop()
        print("board stopped", flush=True)
        return 0
    code = board.returncode
    if code in (0, -2, -15):  # stopped by a signal from outside (kill PID)
        print(f"board process {board.pid} ended", flush=True)
        return 0
    raise CliError(f"board process {board.pid} exited with code {code}:\n{board.output_tail()}")
