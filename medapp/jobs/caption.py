"""Caption a folder (or a list) of images, DICOMs and slides through the engine in batches, resumably.

Why it is shaped this way:

* **Items, not files.** A plain image or DICOM is one item; a slide is an overview at thumbnail level plus the top-N
  tissue tiles (`dicom_io.tissue.tissue_tiles`, a saturation threshold), each its own row. Every item has a stable
  key (relative path, region: ``""``, ``"overview"`` or ``"x,y,w,h"``), so a rerun skips exactly the rows already
  written (resume) whatever order the folder lists in. Files that failed are skipped on resume too (so a rerun adds
  nothing) unless `retry_errors` asks to try them again.
* **A bad file never stops the batch.** Opening or rendering errors (`dicom_io.InputError`, a region outside a
  slide) become an error row and an `on_error` call, and the batch goes on. Model errors do stop it: they would
  fail for every item.
* **Rows are written as they are produced** by `reports.captions.CaptionWriter` (append + flush per row), so a crash
  or a cancel loses at most the batch in flight, and resume picks up from there. Each batch is audited just before
  its rows are written, for the same reason.
* **Row errors carry the cause, not the path** (`_row_error`): absolute paths of clinical files often hold
  patient names, and the row's file column already names the file relative to the batch root.
* **Files are not opened twice.** Listing opens only slides (their tiles decide the items) and leaves them in the
  view cache, which rendering reuses while they are among its last few entries; every other file is classified
  from its header and opened once, when it is rendered (an unreadable one becomes an error row then).
* Images are rendered one batch at a time (through `medapp.view`, so exactly as the viewer shows them), so memory
  stays flat for large folders.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.jobs.progress import EtaClock, Progress, ProgressCallback
from medapp.protocols import AuditSink, CaptionSink, Engine

__all__ = [
    "CAPTION_PROMPT", "BatchPlan", "CaptionItem", "CaptionSummary", "caption_batch", "list_items", "input_files",
    "plan_batch", "render_item",
]

# The captioning instruction the Dragonfly-Med authors use in their own example (ROCO).
CAPTION_PROMPT = "Provide a brief description of the given image."
_SKIP_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class CaptionItem:
    """One image to caption; its row key is (`file`, `region`) as in `reports.captions.CaptionRow`.

    `file` is the path relative to the batch root (POSIX form), `region` is "" for a whole image, "overview" for a
    slide's overview and "x,y,w,h" (level-0 pixels) for a tissue tile. Only slides are opened while listing, so
    "dicom" / "image" come from a header sniff ("image": anything that is neither DICOM nor a slide) and an
    unreadable one is found when it is rendered; `error` marks a slide that could not be opened (an error row)."""

    file: str
    path: Path
    kind: str  # "image" | "dicom" | "slide-overview" | "slide-tile" | "error"
    region: str = ""
    box: tuple[int, int, int, int] | None = None  # the tile's (x, y, w, h) at level 0
    error: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.region)


@dataclass
class CaptionSummary:
    total: int = 0  # items found
    skipped: int = 0  # already in the output (resume)
    done: int = 0  # captioned in this run
    failed: int = 0  # error rows written in this run
    cancelled: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    seconds: float = 0.0


def input_files(source: str | Path | Sequence[str | Path]) -> tuple[Path, list[Path]]:
    """(root for relative keys, files in a stable order). A folder is walked recursively; hidden files skipped."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.exists():
            raise UserError(f"{root}: no such file or folder")
        if root.is_file():
            return root.parent, [root]
        files: list[Path] = []
        errors: list[OSError] = []  # os.walk skips unreadable folders silently: collect, then say so
        for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(
                Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and f not in _SKIP_NAMES
            )
        for err in errors:
            if err.filename is None or Path(err.filename) == root:
                reason = "permission denied" if isinstance(err, PermissionError) else err.strerror or "unreadable"
                raise UserError(f"{root}: cannot list this folder: {reason}")
        if not files:
            raise UserError(f"{root}: the folder holds no files to caption")
        return root, files
    paths = [Path(p) for p in source]
    if not paths:
        raise UserError("no files to caption")
    try:
        root = Path(os.path.commonpath([os.path.abspath(p.parent) for p in paths]))
    except ValueError:  # different drives on Windows
        root = Path()
    return root, paths


def _key(root: Path, path: Path) -> str:
    """The row's file column: the path relative to the batch root, symlinks not followed (a linked slide keeps the
    name the user sees), POSIX separators so a table moves between systems."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def list_items(
    source: str | Path | Sequence[str | Path], *, tissue_tiles: int = 4, tile_px: int = 512
) -> list[CaptionItem]:
    """Every item of the batch, in order, found with as little reading as possible.

    Only slides are opened here (their tissue tiles decide the items), through the view cache so that
    `load_image` can reuse the open slide for the overview and the tiles. Every other file becomes one item after a
    header sniff (`dicom_io.slide.is_slide`, `is_dicom`) and is opened once, when it is rendered; a file that
    turns out unreadable then becomes an error row. A slide that cannot be opened is a `kind="error"` item."""
    from dicom_io.errors import InputError
    from dicom_io.slide import is_slide
    from medapp.view import open_cached

    root, files = input_files(source)
    items: list[CaptionItem] = []
    seen_wsi: set[tuple[str, tuple]] = set()
    for path in files:
        key = _key(root, path)
        if not is_slide(path):
            items.append(CaptionItem(key, path, "dicom" if _is_dicom_file(path) else "image"))
            continue
        try:
            slide = open_cached(path)  # stays in the view cache for load_image; never closed here
            if getattr(slide, "kind", "") != "slide":
                items.append(CaptionItem(key, path, "error", error="not a whole-slide image after all"))
                continue
            if _is_dicom_file(path):
                # DICOM-WSI keeps one pyramid level per file and each file opens the whole slide: caption it once
                identity = (os.path.abspath(path.parent), tuple(map(tuple, slide.level_dimensions)))
                if identity in seen_wsi:
                    continue
                seen_wsi.add(identity)
            items.append(CaptionItem(key, path, "slide-overview", "overview"))
            if tissue_tiles > 0:
                from dicom_io.tissue import tissue_tiles as find_tiles

                for x, y, level, w, h in find_tiles(slide, tile_px, tissue_tiles):
                    ds = slide.level_downsamples[level]
                    box = (int(x), int(y), round(w * ds), round(h * ds))
                    items.append(CaptionItem(key, path, "slide-tile", ",".join(map(str, box)), box))
        except InputError as exc:
            items.append(CaptionItem(key, path, "error", error=_row_error(exc, path, key)))
        except Exception as exc:  # noqa: BLE001 — a reader bug on one odd slide must not end the batch; say what it was
            items.append(CaptionItem(key, path, "error", error=_row_error(exc, path, key, "cannot open")))
    return items


def _is_dicom_file(path: Path) -> bool:
    from dicom_io.reading import is_dicom

    return is_dicom(path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _row_error(exc: BaseException, path: Path, key: str, doing: str = "") -> str:
    """The error text of a row: the cause only, never the absolute path.

    Paths of clinical files often carry patient names or accession numbers and a caption table is shared; the
    row's `file` column already names the file by its key relative to the batch root. `dicom_io.InputError` keeps
    its cause apart from the path (`.cause`); for anything else the message is kept with every spelling of the
    path replaced by the key, prefixed by what failed and the exception type."""
    from dicom_io.errors import InputError

    if isinstance(exc, InputError):
        text = exc.cause
    else:
        text = f"{doing} ({type(exc).__name__}: {exc})" if doing else f"{type(exc).__name__}: {exc}"
    spellings = {str(path), os.path.abspath(path)}
    if isinstance(exc, InputError) and exc.path is not None:
        spellings |= {str(exc.path), os.path.abspath(exc.path)}
    for spelling in sorted(spellings, key=len, reverse=True):  # longest first: an absolute path contains the rest
        text = text.replace(spelling, key)
    return _one_line(text) or type(exc).__name__


def render_item(item: CaptionItem) -> tuple[Any, str | None]:
    """(the image the model sees, None) or (None, the row's error text) for one item.

    Public so that every runner of the workflow (this one, the Ray pipeline in `medapp.jobs.caption_ray`) renders
    and words errors identically: a bad file is an error row, never an exception, and the text holds no path."""
    from dicom_io.errors import InputError
    from medapp.inputs import load_image

    if item.kind == "error":
        return None, item.error or "unreadable"
    try:
        return load_image(item.path, region=item.box).image, None  # the view cache keeps a slide open
    except (InputError, UserError) as exc:
        return None, _row_error(exc, item.path, item.file)
    except Exception as exc:  # noqa: BLE001 — e.g. a decoder bug on one odd file: report it, keep the batch going
        return None, _row_error(exc, item.path, item.file, "cannot render")


@dataclass
class BatchPlan:
    """What a captioning run starts from: the cleaned prompt, the summary so far, the items still to caption."""

    prompt: str
    summary: CaptionSummary
    todo: list[CaptionItem]
    done_keys: set[tuple[str, str]]  # rows already in the table (resume), never written again


def plan_batch(
    source: str | Path | Sequence[str | Path] | Sequence[CaptionItem],
    writer: CaptionSink,
    *,
    prompt: str,
    batch_size: int,
    resume: bool,
    retry_errors: bool,
    tissue_tiles: int,
    tile_px: int,
) -> BatchPlan:
    """The checks and the to-do list every runner of the workflow starts from (this process, or Ray), so both refuse
    the same arguments, send the same sanitised prompt to the tokenizer and skip the same finished rows."""
    from medapp.text import clean_text

    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    cleaned = clean_text(prompt).text.strip()  # the prompt reaches the tokenizer: no surrogates, no controls
    if not cleaned:
        raise UserError("the caption prompt is empty")
    given = list(source) if not isinstance(source, (str, os.PathLike)) else None
    if given and all(isinstance(it, CaptionItem) for it in given):
        items: list[CaptionItem] = given  # type: ignore[assignment]
    else:
        items = list_items(source, tissue_tiles=tissue_tiles, tile_px=tile_px)  # type: ignore[arg-type]
    summary = CaptionSummary(total=len(items))
    done_keys = set(writer.done_keys(include_errors=not retry_errors)) if resume else set()
    todo = [it for it in items if it.key not in done_keys]
    summary.skipped = len(items) - len(todo)
    return BatchPlan(cleaned, summary, todo, done_keys)


def _batches(items: Sequence[CaptionItem], size: int) -> Iterator[list[CaptionItem]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def caption_batch(
    engine: Engine,
    source: str | Path | Sequence[str | Path] | Sequence[CaptionItem],
    writer: CaptionSink,
    *,
    prompt: str = CAPTION_PROMPT,
    batch_size: int = 4,
    max_new_tokens: int = 128,
    tissue_tiles: int = 4,
    tile_px: int = 512,
    resume: bool = True,
    retry_errors: bool = False,
    thumbnails: dict[tuple[str, str], Any] | None = None,
    on_progress: ProgressCallback | None = None,
    on_error: Callable[[str, str], None] | None = None,
    cancel: threading.Event | None = None,
    audit: AuditSink | None = None,
) -> CaptionSummary:
    """Caption every item of `source` into `writer` (a `reports.captions.CaptionWriter`).

    With `resume` (the default) items whose (file, region) the writer already holds are skipped, failed ones too
    unless `retry_errors`. `on_progress(Progress)` is called after each batch (done counts error rows too),
    `on_error(file, message)` for each bad file, and `cancel` stops after the current batch's token (unfinished
    rows are not written, so a resume redoes them). `thumbnails`, if given, is filled with a small copy of each
    image sent, keyed like the rows (for a contact sheet).

    `audit` gets one "caption" entry per batch (its input hashes and counts; `n_skipped`, the rows resume
    skipped, on the run's first entry only), written before that batch's rows, so a killed run never leaves
    captions without an audit entry. A batch with nothing done or failed, e.g. a resume with nothing left, is
    not audited: the model was not used.
    """
    from medapp.hashing import image_sha256

    started = time.monotonic()
    plan = plan_batch(source, writer, prompt=prompt, batch_size=batch_size, resume=resume, retry_errors=retry_errors,
                      tissue_tiles=tissue_tiles, tile_px=tile_px)
    prompt, summary, todo = plan.prompt, plan.summary, plan.todo
    clock = EtaClock(len(todo))
    info = engine.info

    def fail(item: CaptionItem, message: str) -> None:
        writer.add(item.file, region=item.region, model=info.model_id, error=message)
        summary.failed += 1
        summary.errors.append((item.file, message))
        if on_error is not None:
            on_error(item.file, message)

    first_entry = True
    for batch in _batches(todo, batch_size):
        if cancel is not None and cancel.is_set():
            summary.cancelled = True
            break
        batch_started = time.monotonic()
        failed_before = summary.failed
        ready: list[tuple[CaptionItem, Any]] = []
        for item in batch:
            image, error = render_item(item)
            if error is not None:
                fail(item, error)
                continue
            ready.append((item, image))
        finished: list[tuple[CaptionItem, Any, str, str]] = []  # item, image, caption, input hash
        if ready:
            generations = engine.caption_batch(
                [image for _, image in ready], prompt, max_new_tokens=max_new_tokens, batch_size=batch_size,
                cancel=cancel,
            )
            for (item, image), generation in zip(ready, generations, strict=False):
                if generation.stop_reason == "cancelled":
                    summary.cancelled = True
                    continue
                finished.append((item, image, generation.text.strip(), image_sha256(image)))
            if len(generations) < len(ready):
                summary.cancelled = True
        n_failed = summary.failed - failed_before
        if audit is not None and (finished or n_failed):
            # before the rows: a kill between the two leaves an audited batch that resume redoes, never
            # captions on disk that no audit entry accounts for; an audit failure stops the batch (fail closed)
            audit.record(
                "caption",
                inputs=[digest for *_, digest in finished],
                model_sha256=info.checkpoint_sha256,
                n_inputs=len(batch),
                n_done=len(finished),
                n_failed=n_failed,
                n_skipped=summary.skipped if first_entry else None,
                cancelled=summary.cancelled,
                batch_size=batch_size,
                resumed=summary.skipped > 0,
                seconds=round(time.monotonic() - batch_started, 3),
            )
            first_entry = False
        for item, image, caption, digest in finished:
            writer.add(item.file, caption, region=item.region, model=info.model_id, input_sha256=digest)
            if thumbnails is not None:
                thumb = image.copy()
                thumb.thumbnail((256, 256))
                thumbnails[item.key] = thumb
            summary.done += 1
        if on_progress is not None:
            done = summary.done + summary.failed
            on_progress(Progress(done, len(todo), clock.eta(done), batch[-1].file, summary.failed,
                                 summary.skipped))
        if summary.cancelled:
            break
    summary.seconds = time.monotonic() - started
    return summary
