"""Atomic file writes: a partial file never replaces a good one.

Exports (PDF, DICOM, JSON autosaves) are written to a temporary file in the *same folder* (so the final rename
never crosses file systems), flushed and fsync'ed, then moved over the target with ``os.replace``, which is atomic
on POSIX and Windows. If anything fails before the rename, the temporary file is removed and the old target is
untouched. The folder is fsync'ed after the rename on POSIX so the new name survives a power cut too.

This is the one atomic-write helper of the app (medapp imports it; `dicom_io` and `models` may not import
`reports`, see docs/ARCHITECTURE.md). Writers that must do something *between* "the bytes are safely on disk" and
"the file is visible under its name" — the audit-before-effect rule of exports: the audit entry is written before
the output appears, so there is never an output without an entry — pass ``before_commit`` or use
:func:`staged_bytes` / :class:`Staged` and call :meth:`Staged.commit` themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from reports.errors import ReportError

__all__ = ["atomic_writer", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "Staged", "staged_bytes"]


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX only; Windows cannot open a directory for fsync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staged:
    """A fully written, fsync'ed temporary sibling of `target` that is not visible under the target name yet.

    `commit()` renames it over the target (atomic); `discard()` removes it. Used as a context manager, leaving the
    block without `commit()` (an exception, an early return) discards it, so no temporary file is left behind.
    """

    def __init__(self, target: Path, tmp: Path) -> None:
        self.target = target
        self.tmp = tmp
        self.committed = False

    def commit(self) -> Path:
        """Make the staged bytes visible under the target name (keeping the permissions of a file it replaces)."""
        if self.committed:
            return self.target
        with contextlib.suppress(OSError):
            os.chmod(self.tmp, self.target.stat().st_mode & 0o7777)
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.discard()
            raise ReportError(f"{self.target}: cannot write: {exc.strerror or exc}") from exc
        self.committed = True
        with contextlib.suppress(OSError):
            _fsync_dir(self.tmp.parent)
        return self.target

    def discard(self) -> None:
        if not self.committed:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _temp_sibling(target: Path) -> tuple[Path, int]:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ReportError(f"{target}: folder {folder} does not exist")
    if target.is_dir():
        raise ReportError(f"{target}: is a folder, cannot write a file there")
    tmp = folder / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        # 0o666 so the process umask applies, as for a normal open
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ReportError(f"{target}: cannot create a temporary file in {folder}: {exc.strerror}") from exc
    return tmp, fd


@contextlib.contextmanager
def _staging(path: str | os.PathLike[str], mode: str, encoding: str) -> Iterator[tuple[IO[Any], Staged]]:
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    tmp, fd = _temp_sibling(target)
    staged = Staged(target, tmp)
    try:
        if mode == "wb":
            fh: IO[Any] = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline="\n")
        with fh:
            yield fh, staged
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        staged.discard()
        raise


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str = "utf-8",
    before_commit: Callable[[Path], None] | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of *path* for writing; on a clean exit it replaces *path*, on an error it vanishes.

    ``mode`` is ``"wb"`` or ``"w"`` (text, *encoding*, ``\\n`` newlines). The file keeps the permissions of the
    file it replaces when there is one. ``before_commit(tmp_path)`` runs after the data is fsync'ed and before the
    rename; if it raises, the temporary file is removed and *path* is left as it was.
    """
    with _staging(path, mode, encoding) as (fh, staged):
        yield fh
    try:
        if before_commit is not None:
            before_commit(staged.tmp)
        staged.commit()
    finally:
        staged.discard()


def staged_bytes(path: str | os.PathLike[str], data: bytes) -> Staged:
    """Write *data* to a hidden temporary sibling of *path* (fsync'ed) and return it uncommitted."""
    try:
        with _staging(path, "wb", "utf-8") as (fh, staged):
            fh.write(data)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return staged


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, before_commit: Callable[[Path], None] | None = None
) -> Path:
    """Write *data* to *path* atomically; returns the path. See :func:`atomic_writer` for ``before_commit``."""
    try:
        with atomic_writer(path, "wb", before_commit=before_commit) as fh:
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
