"""The `medapp` command: one argparse entry point, one module per subcommand.

Every subcommand module offers `register(subparsers)`, which adds its parser and sets `handler=run`. Registration
imports only argparse; each handler imports what it needs when it runs, so `medapp --help` stays fast.
Errors the user can act on (`UserError`, `dicom_io.InputError`, `models.errors.ModelError`) become one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from medapp import __version__

SUBCOMMANDS = ("gui", "info", "render", "ask", "report", "caption", "deid", "model", "audit", "pacs")


def _user_error_types() -> tuple[type[BaseException], ...]:
    from dicom_io.errors import InputError
    from medapp.errors import UserError
    from models.errors import ModelError
    from reports.errors import ReportError

    return (UserError, InputError, ModelError, ReportError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medapp",
        description="Dragonfly-Med assistant for radiology and pathology images. "
        "Without a subcommand the desktop window opens.",
    )
    parser.add_argument("--version", action="version", version=f"medapp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:  # every subcommand exists: a missing module is a broken install, not a skip
        importlib.import_module(f"medapp.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        try:
            args = parser.parse_args(["gui"])  # bare `medapp` opens the window
        except SystemExit:
            parser.print_help()
            return 2
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("medapp: interrupted", file=sys.stderr)
        return 130
    except _user_error_types() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"medapp: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
