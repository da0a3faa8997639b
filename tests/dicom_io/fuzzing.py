"""What both fuzz tests do with each mutated file: what the app does with a dropped file, under a time bound."""

from __future__ import annotations

import threading
from pathlib import Path

import dicom_io


def exercise(path: Path) -> None:
    """Open, render the first and last frame, describe."""
    obj = dicom_io.open_path(path)
    if isinstance(obj, dicom_io.ImageStack):
        obj.render_rgb(0)
        obj.render_rgb(obj.n_frames - 1)
    dicom_io.info(path)


def run_bounded(path: Path, seconds: float) -> tuple[BaseException | None, bool]:
    """(what escaped `exercise`, or None; whether it was still running after `seconds`: a hang)."""
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            exercise(path)
        except BaseException as exc:  # noqa: BLE001 - we report what escaped
            outcome[0] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    return outcome[0], worker.is_alive()
