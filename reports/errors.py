"""Errors raised by reports/.

One base class so the app core can catch everything this package raises in one place and show the message to the
user; the message always names the file or the report part that is wrong, never patient data.
"""

from __future__ import annotations

__all__ = ["ReportError", "SignedReportError"]


class ReportError(Exception):
    """A report, template, key image, caption table or output file cannot be used as asked."""


class SignedReportError(ReportError):
    """An operation needs a draft (or a signed report) and got the other state."""
