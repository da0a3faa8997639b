"""The `medapp` command: one argparse entry point, one module per subcommand.

Every subcommand module offers `register(subparsers)`, which adds its parser and sets `handler=run`. Registration
imports only argparse; each handler imports what it needs when it runs, so `medapp --help` stays fast.
Errors the user can act on (`UserError`, `dicom_io.InputError`, `models.errors.ModelError`, `ReportError`) become
one line on stderr and exit status 2; running out of memory is one preformatted line and exit 2; anything else is a
bug: `medapp: internal error: <cause> (details: <crash log>)` and exit 3, with the traceback in a crash log that holds
no patient data (`medapp.crash`). A user never sees a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from medapp import __version__
from medapp.crash import OUT_OF_MEMORY, describe, user_error_types

SUBCOMMANDS = ("gui", "info", "render", "ask", "report", "caption", "deid", "model", "audit", "eval", "pacs")


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
    # Imported before the handler runs, so reporting an error never needs an import (or much memory) of its own.
    user_errors = user_error_types()
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("medapp: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        sys.stderr.write("medapp: " + OUT_OF_MEMORY + "\n")
        return 2
    except Exception as exc:  # noqa: BLE001 — the one place every other error becomes a sentence
        failure = describe(exc, context=args.command, user_errors=user_errors)
        print(f"medapp: {failure.message}", file=sys.stderr)
        return failure.exit_status
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
