"""Atomic file writes: a partial file never replaces a good one.

Exports (PDF, DICOM, JSON autosaves) are written to a temporary file in the *same folder* (so the final rename
never crosses file systems), flushed and fsync'ed, then moved over the target with ``os.replace``, which is atomic
on POSIX and Windows. If anything fails before the rename, the temporary file is removed and the old target is
untouched. The folder is fsync'ed after the rename on POSIX so the new name survives a power cut too.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from reports.errors import ReportError

__all__ = ["atomic_writer", "atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX only; Windows cannot open a directory for fsync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of *path* for writing; on a clean exit it replaces *path*, on an error it vanishes.

    ``mode`` is ``"wb"`` or ``"w"`` (text, *encoding*, ``\\n`` newlines). The temporary file is created with
    ``os.open(..., 0o666)`` so the process umask applies, as for a normal ``open``; the file keeps the permissions of
    the file it replaces when there is one.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ReportError(f"{target}: folder {folder} does not exist")
    if target.is_dir():
        raise ReportError(f"{target}: is a folder, cannot write a file there")
    tmp = folder / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ReportError(f"{target}: cannot create a temporary file in {folder}: {exc.strerror}") from exc
    try:
        if mode == "wb":
            fh: IO[Any] = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline="\n")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        _fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write *data* to *path* atomically; returns the path."""
    try:
        with atomic_writer(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write *text* to *path* atomically (UTF-8, ``\\n`` newlines); returns the path."""
    try:
        with atomic_writer(path, "w", encoding=encoding) as fh:
            fh.write(text)
    except UnicodeEncodeError as exc:
        raise ReportError(f"{path}: text cannot be encoded as {encoding}: {exc.reason}") from exc
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> Path:
    """Serialise *obj* first (so a serialisation error leaves the old file alone), then write it atomically."""
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (e.g. from a bad decode): \u-escape it rather than fail
            text = json.dumps(obj, ensure_ascii=True, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ReportError(f"{path}: cannot serialise to JSON: {exc}") from exc
    return atomic_write_text(path, text + "\n")
