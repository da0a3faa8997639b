"""Caption a folder (or a list) of images, DICOMs and slides through the engine in batches, resumably.

Why it is shaped this way:

* **Items, not files.** A plain image or DICOM is one item; a slide is an overview at thumbnail level plus the top-N
  tissue tiles (`dicom_io.tissue.tissue_tiles`, a saturation / optical-density threshold), each its own row. Every
  item has a stable key (``relative/path``, ``relative/path#overview``, ``relative/path#tile-X-Y``), so a rerun
  can skip exactly the rows already written (resume) whatever order the folder lists in.
* **A bad file never stops the batch.** Opening or rendering errors (`dicom_io.InputError`, a region outside a
  slide) become an error row and an `on_error` call, and the batch goes on. Model errors do stop it: they would
  fail for every item.
* **Rows are written as they are produced** by `reports.captions.CaptionWriter` (append + flush per row), so a crash
  or a cancel loses at most the batch in flight, and resume picks up from there.
* Images are rendered one batch at a time, so memory stays flat for large folders.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.jobs.progress import EtaClock, Progress, ProgressCallback

__all__ = ["CAPTION_PROMPT", "CaptionItem", "CaptionSummary", "caption_batch", "list_items", "input_files"]

# The captioning instruction the Dragonfly-Med authors use in their own example (ROCO).
CAPTION_PROMPT = "Provide a brief description of the given image."
_SKIP_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class CaptionItem:
    """One image to caption. `region` is (x, y, w, h) at slide level 0 for tiles; `error` marks a file that could
    not even be listed (it becomes an error row)."""

    key: str
    path: Path
    kind: str  # "image" | "dicom" | "series" | "slide-overview" | "slide-tile" | "error"
    region: tuple[int, int, int, int] | None = None
    error: str | None = None


@dataclass
class CaptionSummary:
    total: int = 0  # items found
    skipped: int = 0  # already in the output (resume)
    done: int = 0  # captioned in this run
    failed: int = 0  # error rows written in this run
    cancelled: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)  # (key, message)
    seconds: float = 0.0


def input_files(source: str | Path | Sequence[str | Path]) -> tuple[Path, list[Path]]:
    """(root for relative keys, files in a stable order). A folder is walked recursively; hidden files skipped."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.exists():
            raise UserError(f"{root}: no such file or folder")
        if root.is_file():
            return root.parent, [root]
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(
                Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and f not in _SKIP_NAMES
            )
        if not files:
            raise UserError(f"{root}: the folder holds no files to caption")
        return root, files
    paths = [Path(p) for p in source]
    if not paths:
        raise UserError("no files to caption")
    try:
        root = Path(os.path.commonpath([p.resolve().parent for p in paths]))
    except ValueError:  # different drives on Windows
        root = Path()
    return root, paths


def _key(root: Path, path: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = path
    return rel.as_posix()


def list_items(
    source: str | Path | Sequence[str | Path], *, tissue_tiles: int = 4, tile_px: int = 512
) -> list[CaptionItem]:
    """Every item of the batch, in order. Files that cannot be opened become `kind="error"` items."""
    import dicom_io
    from dicom_io.errors import InputError

    root, files = input_files(source)
    items: list[CaptionItem] = []
    for path in files:
        key = _key(root, path)
        try:
            opened = dicom_io.open_path(path)
        except InputError as exc:
            items.append(CaptionItem(key, path, "error", error=_one_line(exc)))
            continue
        try:
            kind = getattr(opened, "kind", "")
            if kind == "slide":
                items.append(CaptionItem(f"{key}#overview", path, "slide-overview"))
                if tissue_tiles > 0:
                    from dicom_io.tissue import tissue_tiles as find_tiles

                    for x, y, level, w, h in find_tiles(opened, tile_px, tissue_tiles):
                        ds = opened.level_downsamples[level]
                        region = (int(x), int(y), round(w * ds), round(h * ds))
                        items.append(CaptionItem(f"{key}#tile-{int(x)}-{int(y)}", path, "slide-tile", region))
            elif kind in ("dicom", "image", "series"):
                items.append(CaptionItem(key, path, kind))
            else:
                items.append(CaptionItem(key, path, "error", error=f"{path}: not a single image, DICOM or slide"))
        except InputError as exc:
            items.append(CaptionItem(key, path, "error", error=_one_line(exc)))
        finally:
            close = getattr(opened, "close", None)
            if callable(close):
                close()
    return items


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _batches(items: Sequence[CaptionItem], size: int) -> Iterator[list[CaptionItem]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class _Opener:
    """Keeps the last opened file so the tiles of one slide are read from one open handle."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.obj: Any = None

    def get(self, path: Path) -> Any:
        import dicom_io

        if path != self.path:
            self.close()
            self.obj, self.path = dicom_io.open_path(path), path
        return self.obj

    def close(self) -> None:
        close = getattr(self.obj, "close", None)
        if callable(close):
            close()
        self.obj = self.path = None


def caption_batch(
    engine: Any,
    source: str | Path | Sequence[str | Path] | Sequence[CaptionItem],
    writer: Any,
    *,
    prompt: str = CAPTION_PROMPT,
    batch_size: int = 4,
    max_new_tokens: int = 128,
    tissue_tiles: int = 4,
    tile_px: int = 512,
    resume: bool = True,
    on_progress: ProgressCallback | None = None,
    on_error: Callable[[str, str], None] | None = None,
    cancel: threading.Event | None = None,
    audit: Any = None,
    progress: ProgressCallback | None = None,
) -> CaptionSummary:
    """Caption every item of `source` into `writer` (a `reports.captions.CaptionWriter`).

    With `resume` (the default) rows whose key the writer already holds are skipped. `on_progress(Progress)` is
    called after each batch (done counts error rows too), `on_error(key, message)` for each bad file, and `cancel`
    is checked between batches. `progress` is an alias of `on_progress` (the GUI's worker passes that name).
    """
    from dicom_io.errors import InputError

    from medapp.hashing import image_sha256
    from medapp.inputs import load_image

    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    on_progress = on_progress or progress
    started = time.monotonic()
    if source and not isinstance(source, (str, os.PathLike)) and isinstance(next(iter(source)), CaptionItem):
        items = list(source)  # type: ignore[arg-type]
    else:
        items = list_items(source, tissue_tiles=tissue_tiles, tile_px=tile_px)  # type: ignore[arg-type]
    summary = CaptionSummary(total=len(items))
    done_keys = set(writer.done_keys()) if resume else set()
    todo = [it for it in items if it.key not in done_keys]
    summary.skipped = len(items) - len(todo)
    clock = EtaClock(len(todo))
    opener = _Opener()
    sent_hashes: list[str] = []
    info = engine.info

    def fail(item: CaptionItem, message: str) -> None:
        writer.write_error(item.key, message, kind=item.kind)
        summary.failed += 1
        summary.errors.append((item.key, message))
        if on_error is not None:
            on_error(item.key, message)

    try:
        for batch in _batches(todo, batch_size):
            if cancel is not None and cancel.is_set():
                summary.cancelled = True
                break
            ready: list[tuple[CaptionItem, Any]] = []
            for item in batch:
                if item.kind == "error":
                    fail(item, item.error or "unreadable")
                    continue
                try:
                    opened = opener.get(item.path)
                    loaded = load_image(item.path, region=item.region, opened=opened)
                except (InputError, UserError) as exc:
                    opener.close()
                    fail(item, _one_line(exc))
                    continue
                ready.append((item, loaded))
            if ready:
                images = [loaded.image for _, loaded in ready]
                generations = engine.caption_batch(
                    images, prompt, max_new_tokens=max_new_tokens, batch_size=batch_size
                )
                for (item, loaded), generation, image in zip(ready, generations, images, strict=True):
                    digest = image_sha256(image)
                    sent_hashes.append(digest)
                    writer.write_caption(
                        item.key,
                        generation.text.strip(),
                        kind=item.kind,
                        modality=loaded.modality or "",
                        region=item.region,
                        image_sha256=digest,
                        model_id=info.model_id,
                        stop_reason=str(generation.stop_reason),
                    )
                    summary.done += 1
            if on_progress is not None:
                finished = summary.done + summary.failed
                on_progress(Progress(finished, len(todo), clock.eta(finished), batch[-1].key, summary.failed))
    finally:
        opener.close()
        summary.seconds = time.monotonic() - started
        if audit is not None:
            audit.record(
                "caption",
                inputs=sent_hashes,
                model_sha256=info.checkpoint_sha256,
                n_inputs=summary.total,
                n_done=summary.done,
                n_failed=summary.failed,
                n_skipped=summary.skipped,
                cancelled=summary.cancelled,
                batch_size=batch_size,
                resumed=summary.skipped > 0,
                seconds=round(summary.seconds, 3),
            )
    return summary
