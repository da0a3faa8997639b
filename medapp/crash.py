"""Turn any exception into one sentence for the user, and an unexpected one into a crash log without patient data.

Why: a clinician must never see a raw traceback (it reads as "the program is broken, my work is gone") and must
always get something to act on. Errors the user can fix (a bad file, a missing model, a wrong argument) are already
one clear line; everything else is a bug in medapp or in a library, and the user gets
``internal error: <cause> (details: <crash log path>)`` while the full traceback goes to a file in the app's data
folder that a developer can read.

What the crash log holds, and what it leaves out:
  * exception types, the chain of causes, and every frame as file / line / function / source line: code, not data;
  * versions (medapp, Python, torch, transformers, the platform) and the subcommand name;
  * never the exception *messages* (only their length) and never local variables. A message can hold a file path
    (folder names are often patient names), a question, an indication or a DICOM value such as a patient name,
    and no redaction rule can recognise all of those; the message reaches only the user's own screen, in the one
    line the CLI prints or the window shows, from where they can pass it on.
Nothing here is logged through `logging`, and nothing is sent anywhere.

The CLI and the window call `describe` at their outermost handler. This module imports only the standard library at
import time, so the handler itself cannot fail on an import while memory is short.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from medapp.paths import data_dir

__all__ = ["Failure", "describe", "user_error_types", "write_crash_log", "OUT_OF_MEMORY"]

#: Printed as is when memory runs out: preformatted, so reporting the error allocates (almost) nothing.
OUT_OF_MEMORY = (
    "out of memory: the input is too large for this machine's memory (close other programs, or open a smaller "
    "region or a lower magnification)"
)



@dataclass(frozen=True)
class Failure:
    """What the user is told about an exception.

    message: one line without the "medapp: " prefix. internal: True for a bug (exit status 3, crash log written).
    crash_log: where the details went (None for user errors, or when the log could not be written).
    """

    message: str
    internal: bool
    crash_log: Path | None = None

    @property
    def exit_status(self) -> int:
        return 3 if self.internal else 2


def user_error_types() -> tuple[type[BaseException], ...]:
    """Errors whose message is written for the user: bad input, a missing model, a report problem, a bad argument."""
    from dicom_io.errors import InputError
    from medapp.errors import UserError
    from models.errors import ModelError
    from reports.errors import ReportError

    return (UserError, InputError, ModelError, ReportError)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe(
    exc: BaseException,
    *,
    context: str = "",
    user_errors: tuple[type[BaseException], ...] | None = None,
) -> Failure:
    """The user's sentence for `exc`; for an unexpected exception also writes the crash log.

    `context` names what was running (a subcommand or a window task) for the crash log.
    """
    known = user_errors if user_errors is not None else user_error_types()
    if isinstance(exc, MemoryError):
        return Failure(OUT_OF_MEMORY, internal=False)
    if isinstance(exc, known):
        return Failure(_one_line(str(exc)) or type(exc).__name__, internal=False)
    cause = _one_line(str(exc))
    cause = f"{type(exc).__name__}: {cause}" if cause else type(exc).__name__
    try:
        log = write_crash_log(exc, context=context)
    except Exception:  # noqa: BLE001 — the report must not fail because the disk is full or read-only
        log = None
    where = f" (details: {log})" if log is not None else " (no crash log could be written)"
    return Failure(f"internal error: {cause}{where}", internal=True, crash_log=log)


def _versions() -> list[str]:
    from importlib import metadata

    from medapp import __version__

    lines = [f"medapp {__version__}", f"python {platform.python_version()}", f"platform {platform.platform()}"]
    for dist in ("torch", "transformers", "bitsandbytes", "pydicom", "PySide6-Essentials"):
        try:
            lines.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{dist} not installed")
    return lines


def _frames(exc: BaseException) -> list[str]:
    """The cause chain, oldest first, as type + message length + frames (code locations only, no locals)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    lines: list[str] = []
    for item in reversed(chain):
        withheld = f"(message of {len(str(item))} characters withheld: it may hold patient data)"
        lines.append(f"{type(item).__module__}.{type(item).__qualname__}: {withheld}")
        for frame in traceback.extract_tb(item.__traceback__):
            lines.append(f'  File "{_code_path(frame.filename)}", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
        lines.append("")
    return lines


def _code_path(filename: str) -> str:
    """Source file names relative to the package root: code locations, not the user's folders."""
    marker = f"{os.sep}site-packages{os.sep}"
    if marker in filename:
        return filename.split(marker, 1)[1]
    for package in ("medapp", "models", "dicom_io", "reports", "ui"):
        token = f"{os.sep}{package}{os.sep}"
        if token in filename:
            return package + os.sep + filename.split(token, 1)[1]
    return Path(filename).name


def crash_dir() -> Path:
    return data_dir() / "crash"


def write_crash_log(exc: BaseException, *, context: str) -> Path:
    """Write the details of `exc` to a new file in the crash folder (owner-only) and return its path."""
    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.txt"
    body = [
        "medapp crash report: no patient data (no exception messages, no local variables, no arguments)",
        f"time {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        f"context {context or '-'}",
        *_versions(),
        "",
        *_frames(exc),
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as out:
        out.write("\n".join(body) + "\n")
    return path
