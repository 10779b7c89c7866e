"""The `legloop` command line: one entry point, one module per sub-command.

Each sub-command lives in `experiments/cmd_<name>.py` and exposes `register(subparsers)`, which adds its parser and
sets `func` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, imported lazily so `legloop --help` does not pay for torch or numba.
_COMMANDS = ("demo", "eval", "bench", "edgedrnn", "collect", "train", "board")


class CliError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legloop",
        description="Closed-loop testbed for robotic prosthesis controllers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"experiments.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"experiments.cmd_{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"legloop {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run through the package module so sub-commands and this entry point share one CliError class.
    from experiments.cli import main as _main

    sys.exit(_main())
