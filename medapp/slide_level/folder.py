"""Describe every slide under a folder (or one slide file) into OUTDIR/<slide>/, one slide after another.

A slide that cannot be read, states no magnification or has no tissue is reported (its file key and the cause, never
its absolute path, which may carry a patient name) and the others go on, like the folder captioning job. A DICOM-WSI
keeps one pyramid level per file, so its folder is described once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.jobs.progress import Progress
from medapp.slide_level.job import SlideOutcome, describe_slide
from medapp.slide_level.settings import SlideLevelSettings

__all__ = ["SlidesSummary", "describe_slides", "output_folder"]


@dataclass
class SlidesSummary:
    outcomes: list[SlideOutcome] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file key, message)
    cancelled: bool = False


def output_folder(outdir: Path, key: str) -> Path:
    """Where a slide's files go: OUTDIR/<relative path with '/' → '__'> (one folder per slide, no clashes)."""
    safe = key.replace("\\", "/").strip("/").replace("/", "__") or "slide"
    return Path(outdir) / safe


def describe_slides(
    engine: Any,
    source: str | Path,
    outdir: str | Path,
    *,
    settings: SlideLevelSettings | None = None,
    scorer: Any = None,
    on_progress: Callable[[str, Progress], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    cancel: threading.Event | None = None,
    audit: Any = None,
) -> SlidesSummary:
    """Every slide under `source` (a slide file or a folder, searched recursively) into OUTDIR/<slide>/.

    A slide that cannot be read or has no tissue is reported (`on_error(file key, message)`) and skipped; the
    others go on. `on_progress(file_key, Progress)` follows each slide.
    """
    from dicom_io.errors import InputError
    from dicom_io.slide import is_slide

    root, files = _input_files(Path(source))
    slides = [p for p in files if is_slide(p)]
    if not slides:
        raise UserError(f"{source}: no whole-slide images found")
    summary = SlidesSummary()
    outdir = Path(outdir)
    seen_folders: set[str] = set()
    for path in slides:
        if cancel is not None and cancel.is_set():
            summary.cancelled = True
            break
        key = _relative_key(root, path)
        if path.suffix.lower() == ".dcm":  # a DICOM-WSI keeps one level per file: describe the folder once
            parent = os.path.abspath(path.parent)
            if parent in seen_folders:
                continue
            seen_folders.add(parent)
        try:
            per_slide = None
            if on_progress is not None:
                def per_slide(p: Any, k: str = key, report: Callable[..., Any] = on_progress) -> None:
                    report(k, p)

            outcome = describe_slide(
                engine, path, output_folder(outdir, key), settings=settings, scorer=scorer, file_key=key,
                on_progress=per_slide, cancel=cancel, audit=audit,
            )
        except (UserError, InputError) as exc:
            message = _error_text(exc, path, key)
            summary.errors.append((key, message))
            if on_error is not None:
                on_error(key, message)
            continue
        summary.outcomes.append(outcome)
        if outcome.status == "cancelled":
            summary.cancelled = True
            break
    return summary


# Folder walking and error text: the same rules as the folder captioning job (medapp.jobs.caption), kept here so
# this job does not depend on that module's private helpers while it is being reorganised.
def _input_files(source: Path) -> tuple[Path, list[Path]]:
    """(root for relative keys, files in a stable order); a folder is walked recursively, hidden entries skipped."""
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    if source.is_file():
        return source.parent, [source]
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return source, files


def _relative_key(root: Path, path: Path) -> str:
    """The slide's name in outputs: its path relative to the batch root, POSIX separators, links not followed."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.name


def _error_text(exc: BaseException, path: Path, key: str) -> str:
    """The cause of a slide's failure with its absolute path (which may hold a patient name) replaced by its key."""
    cause = getattr(exc, "cause", None)
    text = str(cause) if isinstance(cause, str) else str(exc)
    spellings = {str(path), os.path.abspath(path)}
    exc_path = getattr(exc, "path", None)
    if exc_path is not None:
        spellings |= {str(exc_path), os.path.abspath(exc_path)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, key)
    return " ".join(text.split()) or type(exc).__name__
