"""`medapp caption DIR -o captions.csv`: caption every image, DICOM and slide in a folder, resumably.

Rows are appended (and flushed) as they are produced, so an interrupted run loses at most one batch and `--resume`
continues it (without loading the model when nothing is left). A file that cannot be read becomes an error row (the
cause, not the path) and a warning on stderr; the batch goes on. The exit status is 0 when the batch ran (error rows
included) and 2 only for problems with the command itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medapp.cli._caption_ray import add_ray_arg
from medapp.cli._common import add_model_args, non_negative_int, positive_int


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "caption",
        help="caption a folder of images, DICOMs and slides (CSV/JSONL, contact sheet)",
        description="Caption every image, DICOM file and whole-slide image under DIR with Dragonfly-Med, in batches. "
        "A slide gives an overview row plus rows for its top tissue tiles. Runs offline.",
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder to caption (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="CAPTIONS.csv", help="CSV table to write")
    parser.add_argument("--jsonl", type=Path, metavar="FILE", help="also write the rows as JSON Lines")
    parser.add_argument("--sheet", type=Path, metavar="FILE.pdf", help="also draw a contact-sheet PDF")
    parser.add_argument("--resume", action="store_true", help="continue an existing table: skip rows already there")
    parser.add_argument("--retry-errors", action="store_true", help="with --resume, try failed files again")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="images per model call (setting "
                        "batch_size)")
    parser.add_argument("--tiles", type=non_negative_int, metavar="N", help="tissue tiles per slide (setting "
                        "tissue_tiles)")
    parser.add_argument("--prompt", metavar="TEXT", help="instruction sent with every image (default: the "
                        "Dragonfly-Med captioning prompt)")
    add_model_args(parser)
    from medapp.cli.caption_slides import add_slide_level_args

    add_slide_level_args(parser)  # --slide-level: whole-slide descriptions (medapp.slide_level)
    add_ray_arg(parser)  # --ray [ADDRESS]: the same captioning spread over Ray (medapp.jobs.caption_ray)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if getattr(args, "slide_level", False):
        from medapp.cli.caption_slides import run_slide_level

        return run_slide_level(args)

    from medapp.cli._common import audit_log, load_settings, model_holder, user_text
    from medapp.jobs.caption_folder import CaptionRequest, caption_folder

    request = CaptionRequest(
        folder=args.folder,
        csv_path=args.output,
        jsonl_path=args.jsonl,
        contact_sheet=args.sheet,
        prompt=user_text(args.prompt, "the prompt") if args.prompt is not None else None,
        resume=args.resume,
        retry_errors=args.retry_errors,
        batch_size=args.batch_size,
        tissue_tiles=args.tiles,
        max_new_tokens=args.max_new_tokens,
    )
    if not args.folder.is_dir():  # before the settings are read: a typo in DIR is the likelier problem
        from medapp.errors import UserError

        raise UserError(f"{args.folder}: not a folder")
    if args.ray is not None:  # before anything is opened: Ray installed, ADDRESS an address
        from medapp.cli._caption_ray import check_ray_args

        check_ray_args(args)
    settings = load_settings(args)
    runner = None
    if args.ray is not None:  # the actors load the model from its folder; this process never loads it
        from medapp.cli._caption_ray import ray_runner

        runner = ray_runner(args, settings)
    with tqdm(desc="captioning", unit="img", file=sys.stderr) as bar:
        def on_plan(total: int, already: int) -> None:
            # a resumed table counts its earlier rows ("8/10"), but the rate and ETA come from this run's rows
            bar.total, bar.initial, bar.n = total, already, already
            bar.refresh()

        def on_progress(p: Any) -> None:
            bar.total = p.overall_total
            bar.n = p.overall_done
            bar.refresh()

        summary = caption_folder(
            request,
            lambda: model_holder(args, settings).get(),
            settings=settings,
            on_progress=on_progress,
            on_plan=on_plan,
            # the row holds the cause only; the terminal is the user's own, so name the file here
            on_error=lambda file, message: tqdm.write(f"medapp: skipped {file}: {message}", file=sys.stderr),
            audit=audit_log(settings),
            runner=runner,
        )
    parts = [f"captioned {summary.done}", f"failed {summary.failed}"]
    if summary.skipped:
        parts.append(f"skipped {summary.skipped} already in {args.output.name}")
    print(f"{', '.join(parts)} -> {args.output}")
    return 0
