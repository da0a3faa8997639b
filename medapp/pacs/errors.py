"""Errors of the DICOM network layer: one sentence each, naming the node and what to do.

`PacsError` is a `UserError`, so the command line prints it as one line and exits 2, and the window shows it in its
error dialog. A refused association, a timeout, a peer that closes mid-transfer and a malformed response all end
here; pynetdicom's own exceptions never reach the user.
"""

from __future__ import annotations

from medapp.errors import UserError

__all__ = ["PacsError", "RetrieveCancelled"]


class PacsError(UserError):
    """A DICOM network operation failed (connection, association, status, or a bad answer from the peer)."""


class RetrieveCancelled(PacsError):
    """The user cancelled a retrieve; what arrived before stays in the cache, complete and indexed."""
