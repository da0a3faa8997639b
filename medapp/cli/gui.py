"""`medapp gui [PATH...] [--screenshot OUT.png]`: open the desktop window (bare `medapp` does the same).

medapp never imports the window: the front end registers itself under the entry-point group `medapp.frontends`
(name `gui`, `ui.app:main` in pyproject), and this handler finds it there. An installation without the window (a
headless server) then fails with one clear sentence instead of an ImportError.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

GROUP = "medapp.frontends"
NAME = "gui"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="open the desktop window (the default)",
        description="Open the desktop viewer with the model panels. PATHs (DICOM files, folders, DICOMDIRs, slides, "
        "images) are opened at start; without any, a welcome page offers pydicom's example CT and MR.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders to open")
    parser.add_argument("--screenshot", type=Path, metavar="OUT.png",
                        help="render the window after loading PATH, save it as a PNG and exit")
    parser.set_defaults(handler=run, paths=[], screenshot=None)


def load_frontend() -> Any:
    """The `main(argv) -> int` of the installed window, found through its entry point."""
    from importlib.metadata import entry_points

    from medapp.errors import UserError

    found = [ep for ep in entry_points(group=GROUP) if ep.name == NAME]
    if not found:
        raise UserError(
            f"the desktop window is not installed (no '{NAME}' entry point in group '{GROUP}'); reinstall medapp "
            "with its window (pip install -e .) or use the command-line subcommands (medapp --help)"
        )
    try:
        return found[0].load()
    except ImportError as exc:
        raise UserError(
            f"the desktop window could not be loaded ({found[0].value}): {exc}. Is PySide6 installed in this "
            "environment?"
        ) from exc


def run(args: argparse.Namespace) -> int:
    if args.screenshot is not None:
        from medapp.outputs import check_output

        check_output(args.screenshot, args.paths)  # a screenshot never replaces a file it shows
    main = load_frontend()
    argv = [str(p) for p in args.paths]
    if args.screenshot is not None:
        argv += ["--screenshot", str(args.screenshot)]
    return int(main(argv) or 0)
