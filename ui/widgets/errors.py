"""The error dialog every panel uses when a worker fails: non-modal, so the app keeps running behind it and a
test (or a clinician) can carry on; the traceback sits behind "Show Details…" instead of in a log."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

__all__ = ["show_worker_error"]


def show_worker_error(parent: QWidget, title: str, failure: Any) -> QMessageBox:
    """Open (not exec) a warning box for a worker failure and return it.

    `failure` is a `ui.workers.WorkerFailure` / `ui.model_bridge.WorkerError`-like object (attributes `message`,
    `exc_type` or `kind`, and `traceback` or `details`) or any exception / string.
    """
    if isinstance(failure, BaseException):
        kind, message, details = type(failure).__name__, str(failure), ""
    elif isinstance(failure, str):
        kind, message, details = "", failure, ""
    else:
        kind = getattr(failure, "exc_type", None) or getattr(failure, "kind", "")
        message = getattr(failure, "message", "") or kind
        details = getattr(failure, "traceback", None) or getattr(failure, "details", "")
    box = QMessageBox(
        QMessageBox.Icon.Warning, title, message or "Unknown error", QMessageBox.StandardButton.Ok, parent
    )
    if kind:
        box.setInformativeText(f"({kind}) The window is still usable; nothing else was changed.")
    if details:
        box.setDetailedText(details)
    box.setObjectName("workerErrorBox")
    box.open()
    return box
