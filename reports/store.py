"""Report drafts on disk: JSON written atomically (the session autosaves after every edit), read with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reports.atomic import atomic_write_json
from reports.errors import ReportError
from reports.model import Report

__all__ = ["save_report", "load_report"]


def save_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write ``report.to_dict()`` as UTF-8 JSON; a crash mid-save leaves the previous autosave intact."""
    return atomic_write_json(path, report.to_dict())


def load_report(path: str | os.PathLike[str]) -> Report:
    """Read a saved report; every problem is a :class:`ReportError` that starts with the file name."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read report: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a report JSON file ({exc})") from exc
    try:
        return Report.from_dict(data)
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from exc
