"""`medapp render PATH -o OUT.png [--frame N] [--window C,W | --preset NAME] [--region X,Y,W,H] [--level L]`.

Writes exactly the display image medapp shows and sends to the model (`medapp.view.render_view`): the view flags
are the ones `ask` and `report` take (`medapp.cli._common.add_view_args`), presets resolve with the user's
overrides from the settings file, and a slide region is read and sized by the same rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medapp.cli._common import add_view_args, non_negative_int


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="write the display image of a file as PNG",
        description="Write exactly the image medapp displays and sends to the model. For slides, --region is in "
        "level-0 pixels and --level picks the pyramid level it is read at (default: the level the model input "
        "uses); slide images are at most 2048 pixels on their longest side.",
    )
    parser.add_argument("path", type=Path, help="DICOM file, folder/DICOMDIR (first series), slide or image")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output PNG path")
    add_view_args(parser)
    parser.add_argument("--level", type=non_negative_int, help="pyramid level (slides only)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from medapp.cli._common import load_settings, parse_window
    from medapp.errors import UserError
    from medapp.inputs import parse_region
    from medapp.outputs import check_output
    from medapp.view import ViewState, render_view, resolve_window, view_warnings

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise UserError(f"output must be a .png file (got {out.name})")
    check_output(out, [args.path])
    settings = load_settings(args)
    window = parse_window(args.window)
    state = ViewState(
        args.path,
        frame=args.frame or 0,
        window=(window.center, window.width) if window is not None else None,
        preset=args.preset,
        region=parse_region(args.region) if args.region else None,
        level=args.level,
    )
    resolve_window(state, settings)  # an unknown preset fails before the file is opened
    image = render_view(state, settings)
    _write_png(image, out)
    for warning in view_warnings(state):  # e.g. a rescale or window that renders flat: say why the PNG looks so
        print(f"medapp: warning: {' '.join(warning.split())}", file=sys.stderr)
    print(f"{out} {image.width}x{image.height}")
    return 0


def _write_png(image: Any, out: Path) -> None:
    """Atomically (temp file, fsync, rename: `reports.atomic`), so an interrupted run never leaves half a PNG."""
    import io

    from medapp.errors import UserError
    from reports.atomic import atomic_write_bytes

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, buf.getvalue())
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
