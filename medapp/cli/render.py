"""`medapp render PATH -o OUT.png [--frame N] [--window C,W | --preset NAME] [--region X,Y,W,H] [--level L]`.

Writes exactly the display image medapp shows and sends to the model (`medapp.view.render_view`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="write the display image of a file as PNG",
        description="Write exactly the image medapp displays and sends to the model. For slides, --region is in "
        "level-0 pixels and --level picks the pyramid level it is read at.",
    )
    parser.add_argument("path", help="DICOM file, folder/DICOMDIR (first series), slide or image")
    parser.add_argument("-o", "--output", required=True, help="output PNG path")
    parser.add_argument("--frame", type=int, default=0, help="frame / slice index (default 0)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--window", metavar="C,W", help="window centre,width in modality units (HU for CT)")
    group.add_argument("--preset", metavar="NAME", help="window preset, e.g. ct-lung, ct-bone, ct-brain")
    parser.add_argument("--region", metavar="X,Y,W,H", help="crop region (slides: level-0 pixels)")
    parser.add_argument("--level", type=int, help="pyramid level (slides only)")
    parser.set_defaults(handler=run)


def _region(text: str | None) -> tuple[int, int, int, int] | None:
    from medapp.errors import UserError

    if text is None:
        return None
    parts = text.split(",")
    try:
        values = tuple(int(p.strip()) for p in parts)
    except ValueError:
        raise UserError(f"--region must be four integers X,Y,W,H (got {text!r})") from None
    if len(values) != 4:
        raise UserError(f"--region must be four integers X,Y,W,H (got {text!r})")
    return values  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    from dicom_io import PRESETS, Window
    from medapp.errors import UserError
    from medapp.view import ViewState, render_view

    window = None
    if args.window is not None:
        try:
            w = Window.parse(args.window)
        except ValueError as exc:
            raise UserError(f"--window: {exc}") from None
        window = (w.center, w.width)
    if args.preset is not None:
        try:
            from dicom_io import preset

            preset(args.preset)
        except KeyError:
            raise UserError(f"unknown preset {args.preset!r}; available: {', '.join(PRESETS)}") from None
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise UserError(f"output must be a .png file (got {out.name})")
    state = ViewState(Path(args.path), frame=args.frame, window=window, preset=args.preset,
                      region=_region(args.region), level=args.level)  # fmt: skip
    image = render_view(state)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        image.save(tmp, format="PNG")
        tmp.replace(out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"{out} {image.width}x{image.height}")
    return 0
