"""`medapp caption DIR -o captions.csv`: caption every image, DICOM and slide in a folder, resumably.

Rows are appended (and flushed) as they are produced, so an interrupted run loses at most one batch and `--resume`
continues it (without loading the model when nothing is left). A file that cannot be read becomes an error row (the
cause, not the path) and a warning on stderr; the batch goes on. The exit status is 0 when the batch ran (error rows
included) and 2 only for problems with the command itself.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from medapp.cli._caption_ray import add_ray_arg
from medapp.cli._common import add_model_args, non_negative_int, positive_int


# Captions are short; without --max-new-tokens the answer limit from the settings is capped at this.
CAPTION_MAX_NEW_TOKENS = 128


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
    add_ray_arg(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medapp.cli._common import audit_log, load_settings, model_holder
    from medapp.errors import UserError
    from medapp.jobs.caption import CAPTION_PROMPT, CaptionSummary, caption_batch, list_items
    from medapp.outputs import check_outputs
    from reports.captions import CaptionWriter, read_caption_rows

    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: not a folder")
    outputs = [p for p in (args.output, args.jsonl, args.sheet) if p is not None]
    for out in outputs:
        if not out.parent.is_dir():
            raise UserError(f"{out}: the folder {out.parent} does not exist")
    check_outputs(outputs, [args.folder])  # not an input, not inside DIR, not one file twice: before any write
    if args.ray is not None:
        from medapp.cli._caption_ray import check_ray_args, ray_runner

        check_ray_args(args)
    if not args.resume:
        for out in (args.output, args.jsonl):
            if out is not None and out.exists() and out.stat().st_size > 0:
                raise UserError(f"{out}: already exists; pass --resume to continue it, or choose another file")
    settings = load_settings(args)
    tiles = settings.tissue_tiles if args.tiles is None else args.tiles
    batch_size = args.batch_size or settings.batch_size
    items = list_items(args.folder, tissue_tiles=tiles, tile_px=settings.tissue_tile_px)
    thumbnails: dict[tuple[str, str], Any] | None = None
    if args.sheet is not None:  # previews for rows done in an earlier run: plain images by path
        thumbnails = {it.key: it.path for it in items if it.kind == "image"}

    with CaptionWriter(args.output, args.jsonl) as writer:
        done = writer.done_keys(include_errors=not args.retry_errors) if args.resume else set()
        if all(it.key in done for it in items):
            # nothing left (a finished run resumed): do not spend a minute loading the model for no rows
            summary = CaptionSummary(total=len(items), skipped=len(items))
        else:
            # --ray: the actors load the model from its folder; without it, this process loads it
            runner = ray_runner(args, settings) if args.ray is not None else functools.partial(
                caption_batch, model_holder(args, settings).get())
            with tqdm(total=len(items), desc="captioning", unit="img", file=sys.stderr) as bar:
                def on_progress(p: Any) -> None:
                    bar.total = p.total
                    bar.n = p.done
                    bar.refresh()

                summary = runner(
                    items,
                    writer,
                    prompt=args.prompt or CAPTION_PROMPT,
                    batch_size=batch_size,
                    max_new_tokens=args.max_new_tokens or min(settings.max_new_tokens, CAPTION_MAX_NEW_TOKENS),
                    resume=args.resume,
                    retry_errors=args.retry_errors,
                    thumbnails=thumbnails,
                    on_progress=on_progress,
                    # the row holds the cause only; the terminal is the user's own, so name the file here
                    on_error=lambda file, message: tqdm.write(f"medapp: skipped {file}: {message}", file=sys.stderr),
                    audit=audit_log(settings),
                )
    if args.sheet is not None:
        from reports.contact_sheet import render_contact_sheet

        rows = read_caption_rows(args.output)
        model = next((r.model for r in reversed(rows) if r.model), "")
        render_contact_sheet(rows, args.sheet, thumbnails=thumbnails, model=model)
    parts = [f"captioned {summary.done}", f"failed {summary.failed}"]
    if summary.skipped:
        parts.append(f"skipped {summary.skipped} already in {args.output.name}")
    print(f"{', '.join(parts)} -> {args.output}")
    return 0
