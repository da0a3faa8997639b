"""`medapp caption SLIDE_OR_FOLDER --slide-level -o OUTDIR`: describe whole slides (medapp.slide_level).

Hooked into `medapp caption` (`add_slide_level_args` adds the flags, `run_slide_level` runs when --slide-level is
given) rather than a subcommand of its own, because it is captioning at a different scale: the same input folders,
the same model options. Each slide gets OUTDIR/<slide>/ with slide.json, heatmap.png, slide.pdf and the score cache.
Always resumable: a slide already complete for the same model and settings is skipped, an interrupted one
continues from its scores and finished captions.

Module level imports only argparse (every subcommand module is imported for `medapp --help`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medapp.cli._common import positive_int

__all__ = ["add_slide_level_args", "run_slide_level"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value:g}")
    return value


def add_slide_level_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("slide-level description (--slide-level; DIR may also be one slide file)")
    group.add_argument("--slide-level", action="store_true", help="describe each whole slide: score its tissue tiles "
                       "against the overview, read the top regions in full and write one cited description; -o is "
                       "then an output FOLDER (one subfolder per slide: slide.json, heatmap.png, slide.pdf)")
    group.add_argument("--top-k", type=positive_int, metavar="K", help="regions read per slide (default 8); with "
                       "--slide-level, --batch-size is regions per model call, --max-new-tokens the caption length and "
                       "--prompt the region instruction")
    group.add_argument("--magnification", type=_positive_float, metavar="X", help="objective magnification of the "
                       "candidate tiles (default 20; 10x ≈ 1.0 µm/px, 20x ≈ 0.5, 40x ≈ 0.25)")


def _settings(args: argparse.Namespace) -> Any:
    """The slide-level settings: defaults, with the flags that were given."""
    from medapp.slide_level.settings import SlideLevelSettings

    return SlideLevelSettings().updated(
        top_k=args.top_k, magnification=args.magnification, caption_batch_size=args.batch_size,
        caption_max_new_tokens=args.max_new_tokens, region_prompt=args.prompt,
    )


def _preflight(path: Path, magnification: float) -> None:
    """A slide's magnification problems (none stated, or less than asked for) as a `UserError` naming the file."""
    from dicom_io.slide import Slide
    from medapp.errors import UserError
    from medapp.slide_level.candidates import base_magnification

    with Slide(path) as slide:
        base = base_magnification(slide)
        if magnification > base * 1.001:
            raise UserError(f"{path}: scanned at {base:g}x, so it cannot be read at {magnification:g}x; choose "
                            f"--magnification {base:g} or less")


def run_slide_level(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medapp.cli._common import audit_log, load_settings, model_holder
    from medapp.errors import UserError
    from medapp.slide_level.folder import describe_slides, output_folder
    from medapp.slide_level.job import describe_slide

    source, outdir = Path(args.folder), Path(args.output)
    if not source.exists():
        raise UserError(f"{source}: no such slide or folder")
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: exists and is not a folder (with --slide-level, -o names an output folder)")
    if not outdir.parent.is_dir():
        raise UserError(f"{outdir}: the folder {outdir.parent} does not exist")
    app_settings = load_settings(args)
    settings = _settings(args)
    if source.is_file():
        from dicom_io.slide import is_slide

        if not is_slide(source):
            raise UserError(f"{source}: not a whole-slide image (--slide-level reads slide pyramids)")
        _preflight(source, settings.magnification)  # before the model loads: a bad slide fails in a second
    outdir.mkdir(exist_ok=True)
    engine = model_holder(args, app_settings).get()
    audit = audit_log(app_settings)
    bars: dict[str, Any] = {}

    def on_progress(key: str, p: Any) -> None:
        bar = bars.get(p.item)
        if bar is None:
            for old in bars.values():
                old.close()
            bars.clear()
            bar = bars[p.item] = tqdm(total=p.total, desc=p.item, unit="", file=sys.stderr, leave=False)
        bar.total, bar.n = p.total, p.done
        bar.refresh()

    try:
        if source.is_file():  # one slide: its problems are the command's problems (exit 2, file named)
            outcome = describe_slide(engine, source, output_folder(outdir, source.name), settings=settings,
                                     file_key=source.name, on_progress=lambda p: on_progress(source.name, p),
                                     audit=audit)
            outcomes, errors = [outcome], []
        else:
            summary = describe_slides(
                engine, source, outdir, settings=settings, on_progress=on_progress, audit=audit,
                on_error=lambda key, message: tqdm.write(f"medapp: skipped {key}: {message}", file=sys.stderr),
            )
            outcomes, errors = summary.outcomes, summary.errors
    finally:
        for bar in bars.values():
            bar.close()
    for outcome in outcomes:
        what = {"done": f"{outcome.regions} regions described", "skipped": "already complete, skipped",
                "cancelled": "interrupted (rerun to continue)"}[outcome.status]
        print(f"{outcome.folder}: {what}")
    if errors:
        print(f"{len(errors)} slide(s) could not be described", file=sys.stderr)
    return 0
