"""Report documents as the window sees them: `reports`' public names through medapp, plus the copy rule.

Why here: `ui/` imports `medapp` only. The report panel needs the document type, its error class (a refused
signature or edit) and a safe snapshot of a draft that the clinician may keep editing while an export runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Report", "ReportError", "snapshot_report"]


def __getattr__(name: str) -> Any:
    """`Report` and `ReportError` from `reports`, imported on first use (PEP 562)."""
    if name == "Report":
        from reports.model import Report

        return Report
    if name == "ReportError":
        from reports.errors import ReportError

        return ReportError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def snapshot_report(report: Any) -> Any:
    """An independent copy of `report` (through its JSON form), so edits made during an export cannot race the
    renderer and the exported file matches the content hash that is audited."""
    from reports.model import Report

    return Report.from_dict(report.to_dict())
