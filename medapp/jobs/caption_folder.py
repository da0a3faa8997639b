"""Caption a folder into files: the one workflow behind `medapp caption` and the window's batch dialog.

`caption_batch` (medapp.jobs.caption) captions items into a writer; this module is everything around it that both
front ends need and used to spell out twice: refuse to overwrite a table unless resuming, list the items with the
settings' tissue-tile rule, open the CSV/JSONL writer, skip loading the model when a resumed run has nothing left,
and draw the contact sheet from the table once the batch ran to the end (not after a Stop: the sheet would
describe an unfinished table). Front ends only differ in how they show progress.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.jobs.caption import CAPTION_PROMPT, CaptionSummary, caption_batch, list_items

__all__ = ["CAPTION_MAX_NEW_TOKENS", "CaptionRequest", "caption_folder"]

# Captions are short: without an explicit limit the answer limit from the settings is capped at this.
CAPTION_MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class CaptionRequest:
    """What to caption and where to write it (immutable, so a worker thread can hold it without locks).

    `None` for `batch_size`, `tissue_tiles` or `max_new_tokens` means "from the settings" (`max_new_tokens`
    capped at `CAPTION_MAX_NEW_TOKENS`). `resume=False` refuses to touch a non-empty table.
    """

    folder: Path
    csv_path: Path
    jsonl_path: Path | None = None
    contact_sheet: Path | None = None
    prompt: str | None = None
    resume: bool = False
    retry_errors: bool = False
    batch_size: int | None = None
    tissue_tiles: int | None = None
    max_new_tokens: int | None = None
    resume_hint: str = "pass --resume to continue it"  # how this front end says "resume" in the refusal


def _check_outputs(request: CaptionRequest) -> None:
    from medapp.outputs import check_outputs

    if not Path(request.folder).is_dir():
        raise UserError(f"{request.folder}: not a folder")
    outputs = [Path(p) for p in (request.csv_path, request.jsonl_path, request.contact_sheet) if p is not None]
    for out in outputs:
        if not out.parent.is_dir():
            raise UserError(f"{out}: the folder {out.parent} does not exist")
    check_outputs(outputs, [request.folder])  # not an input, not inside the folder, not one file twice: before any write
    if not request.resume:
        for table in (request.csv_path, request.jsonl_path):
            if table is not None and Path(table).exists() and Path(table).stat().st_size > 0:
                raise UserError(f"{table}: already exists; {request.resume_hint}, or choose another file")


def caption_folder(
    request: CaptionRequest,
    get_engine: Callable[[], Any],
    *,
    settings: Any = None,
    on_progress: Callable[[Any], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    on_contact_sheet: Callable[[Path], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    audit: Any = None,
    runner: Callable[..., CaptionSummary] | None = None,
) -> CaptionSummary:
    """Caption `request.folder` into its table (and JSONL), then draw the contact sheet; returns the summary.

    `get_engine()` is called only when there is something to caption, so resuming a finished run never loads
    the model. `runner`, when given, captions the items instead of `caption_batch` in this process and is called
    with the same arguments minus the engine (the Ray pipeline, `medapp.jobs.caption_ray`); `get_engine` is then
    never called. `on_progress(Progress)` follows each batch, `on_error(file, message)` each unreadable file (the
    table row holds the cause only), `on_contact_sheet(path)` fires before the sheet is drawn, `on_plan(total,
    already_done)` once the folder is listed and the table read (before any model load, so a front end can say
    "8 of 10 already done" instead of a bare "loading"). `settings` (a
    `medapp.settings.Settings` or None for the defaults) fills whatever the request leaves open.
    """
    from reports.captions import CaptionWriter, read_caption_rows

    _check_outputs(request)
    if settings is None:
        from medapp.settings import Settings

        settings = Settings()
    tiles = settings.tissue_tiles if request.tissue_tiles is None else request.tissue_tiles
    batch_size = request.batch_size or settings.batch_size
    max_new_tokens = request.max_new_tokens or min(settings.max_new_tokens, CAPTION_MAX_NEW_TOKENS)
    items = list_items(request.folder, tissue_tiles=tiles, tile_px=settings.tissue_tile_px)
    thumbnails: dict[tuple[str, str], Any] | None = None
    if request.contact_sheet is not None:  # previews for rows done in an earlier run: plain images by path
        thumbnails = {it.key: it.path for it in items if it.kind == "image"}

    with CaptionWriter(request.csv_path, request.jsonl_path) as writer:
        done = writer.done_keys(include_errors=not request.retry_errors) if request.resume else set()
        if on_plan is not None:
            on_plan(len(items), sum(1 for it in items if it.key in done))
        if all(it.key in done for it in items):
            summary = CaptionSummary(total=len(items), skipped=len(items))  # nothing left: no model load
        else:
            run = runner if runner is not None else functools.partial(caption_batch, get_engine())
            summary = run(
                items,
                writer,
                prompt=request.prompt or CAPTION_PROMPT,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                resume=request.resume,
                retry_errors=request.retry_errors,
                thumbnails=thumbnails,
                on_progress=on_progress,
                on_error=on_error,
                cancel=cancel,
                audit=audit,
            )
    if request.contact_sheet is not None and not summary.cancelled:
        from reports.contact_sheet import render_contact_sheet

        if on_contact_sheet is not None:
            on_contact_sheet(request.contact_sheet)
        rows = read_caption_rows(request.csv_path)
        model = next((r.model for r in reversed(rows) if r.model), "")
        render_contact_sheet(rows, request.contact_sheet, thumbnails=thumbnails, model=model)
    return summary
