"""One error family for every unreadable input. The message always names the file and the cause."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """An input medapp cannot read. `str(err)` is "<path>: <cause>"."""

    def __init__(self, path: str | Path | None, cause: str) -> None:
        self.path = None if path is None else Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}" if path is not None else cause)
