"""The `legloop` command line: one entry point, one module per sub-command.

Each sub-command lives in `experiments/cmd_<name>.py` and exposes `register(subparsers)`, which adds its parser and
sets `func` (called with the parsed namespace, returns an exit code). Sub-command modules import their heavy
dependencies (torch, numba, MuJoCo) inside `func`, so `legloop --help` stays fast. A sub-command whose module cannot
be imported because an optional package is missing still appears, and says what to install when run; any other
import error is a broken install and is raised, never hidden.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING, TypeAlias

COMMANDS = ("demo", "eval", "report", "sweep", "bench", "edgedrnn", "board", "collect", "train", "rl")

if TYPE_CHECKING:
    # argparse has no public name for the object add_subparsers returns.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


class CliError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in --help, and descriptions shown as written (module docstrings keep their layout)."""


class Parser(argparse.ArgumentParser):
    """The parser class of every (sub-)command: always :class:`HelpFormatter`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def _missing(name: str, exc: ModuleNotFoundError) -> object:
    """A stand-in sub-command for one whose optional dependency is not installed."""

    def register(sub: Subparsers) -> None:
        p = sub.add_parser(name, help=f"(unavailable: needs the package {exc.name!r})")
        p.set_defaults(func=lambda args: _fail(name, exc))

    return type("Missing", (), {"register": staticmethod(register)})


def _fail(name: str, exc: ModuleNotFoundError) -> int:
    raise CliError(
        f"this command needs the Python package {exc.name!r}, which is not installed; "
        f"install legloop with its extras (`pip install -e '.[dev,train]'` or `make setup`)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="legloop", description="Closed-loop testbed for robotic prosthesis controllers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name in COMMANDS:
        try:
            module: object = importlib.import_module(f"experiments.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] in ("experiments", "envs", "controllers", "hil",
                                                              "firmware_bridge"):  # fmt: skip
                raise  # a module of legloop itself is missing: a broken install, never a missing feature
            module = _missing(name, exc)
        module.register(sub)  # type: ignore[attr-defined]
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
