"""Turn every failure of the libraries underneath (pydicom, the pixel plugins, PIL, numpy, OpenSlide) into InputError.

Why one boundary: the app, the CLI and the batch job must be able to say "this file is unreadable, because ..." and
carry on. A bare `struct.error` or `RecursionError` from a hostile header would otherwise kill a worker or print a
traceback. The mapping is by exception type and, for the decoder's generic errors, by message, because pydicom
signals "no decoder for this syntax" and "truncated data" with RuntimeError / ValueError rather than own types.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from dicom_io.errors import (
    CorruptFileError,
    FileMissingError,
    InputError,
    PixelDecodeError,
    UnsupportedFormatError,
)

_MAX_CAUSE = 200


def short(exc: BaseException) -> str:
    """The first line of an exception's text, trimmed: one readable line for the user, never a traceback.

    A first line ending in ":" introduces the reasons (pydicom: "... raised by all available plugins:" then one
    line per plugin), so the next line joins it; otherwise the message would end in a colon and say nothing.
    """
    lines = [line for line in str(exc).split("\n") if line.strip()]
    head = lines[0] if lines else ""
    if head.rstrip().endswith(":") and len(lines) > 1:
        head = f"{head} {lines[1]}"
    text = " ".join(head.split()) or type(exc).__name__
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 3] + "..."


def _decoder_failure(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        key in text
        for key in (
            "Unable to decode",
            "No pixel data decoders",
            "plugins are missing",
            "not supported",
            "does not support",
            "Unable to convert",
            "decoding plugin",
        )
    )


def map_exception(path: str | Path | None, exc: BaseException, action: str = "reading") -> InputError:
    """The InputError (subclass) that explains `exc` raised while `action` the file at `path`."""
    if isinstance(exc, InputError):
        return exc
    if isinstance(exc, MemoryError):  # before the import below: with memory exhausted, an import fails too
        return CorruptFileError(path, f"{action}: the image is too large for memory")
    try:
        from pydicom.errors import InvalidDicomError
    except ImportError:  # pragma: no cover - pydicom is a hard dependency
        InvalidDicomError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, FileNotFoundError):
        return FileMissingError(path, "no such file")
    if isinstance(exc, IsADirectoryError):
        return UnsupportedFormatError(path, "is a folder, expected a file")
    if isinstance(exc, PermissionError):
        return InputError(path, "permission denied")
    if isinstance(exc, InvalidDicomError):
        return UnsupportedFormatError(path, f"not a DICOM file ({short(exc)})")
    if isinstance(exc, RecursionError):
        return CorruptFileError(path, f"{action}: nesting too deep (malformed sequences)")
    if isinstance(exc, struct.error | EOFError):
        return CorruptFileError(path, f"{action}: truncated or malformed data ({short(exc)})")
    if type(exc).__name__ == "PanicException":  # pyo3 (pylibjpeg-rle ...) panics derive from BaseException
        return PixelDecodeError(path, f"{action}: the decoder failed on malformed data ({short(exc)})")
    if isinstance(exc, NotImplementedError) or (isinstance(exc, RuntimeError) and _decoder_failure(exc)):
        return PixelDecodeError(path, f"{action}: {short(exc)}")
    return CorruptFileError(path, f"{action}: {short(exc)}")


_STATE = threading.local()
_ORIGINAL_SHOWWARNING = warnings.showwarning


def _showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    if getattr(_STATE, "quiet", 0):
        return
    _ORIGINAL_SHOWWARNING(message, category, filename, lineno, file, line)


def install_quiet_warnings() -> None:
    """Route warnings through a filter that drops those raised inside `guard` on the current thread.

    Why not `warnings.catch_warnings()` per call: it swaps the process-wide filter list and is not thread-safe; with
    the GUI decoding in worker threads, interleaved enter/exit can leave "ignore all" installed for good. A
    thread-local flag checked at display time has no shared state to corrupt.
    """
    if warnings.showwarning is not _showwarning:
        global _ORIGINAL_SHOWWARNING
        _ORIGINAL_SHOWWARNING = warnings.showwarning
        warnings.showwarning = _showwarning


@contextlib.contextmanager
def guard(path: str | Path | None, action: str = "reading") -> Iterator[None]:
    """Run a block; anything it raises leaves as an InputError naming `path`. Library warnings are not shown.

    Warnings are dropped, not logged, because pydicom's warnings about invalid values quote the values, which may be
    patient data; structural problems we care about are reported through `.warnings` lists instead.
    KeyboardInterrupt and SystemExit pass through untouched; other BaseExceptions are mapped too, because Rust
    decoders built with pyo3 raise `PanicException`, which derives from BaseException, on malformed input.
    """
    _STATE.quiet = getattr(_STATE, "quiet", 0) + 1
    try:
        yield
    except InputError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place that maps everything, incl. Rust decoder panics
        raise map_exception(path, exc, action) from exc
    finally:
        _STATE.quiet -= 1
