"""C-ECHO: the "is the node there and does it accept us" check behind `medapp pacs echo` and the Echo button."""

from __future__ import annotations

import time

from medapp.pacs.association import associate, lost, make_ae, require_service, status_text
from medapp.pacs.errors import PacsError
from medapp.pacs.nodes import LocalAE, Node

__all__ = ["echo"]

VERIFICATION = "1.2.840.10008.1.1"


def echo(local: LocalAE, node: Node) -> float:
    """Round trip in seconds (association + C-ECHO + release), or a `PacsError` saying what failed."""
    ae = make_ae(local)
    ae.add_requested_context(VERIFICATION)
    started = time.monotonic()
    with associate(ae, node, what="echo") as assoc:
        require_service(assoc, node, VERIFICATION, "verification (C-ECHO)")
        sent = time.monotonic()
        status = assoc.send_c_echo()
        if not status:
            raise PacsError(lost(assoc, node, "the echo", sent))
        if int(status.Status) != 0x0000:
            raise PacsError(f"{node}: the echo failed with {status_text(status)}")
    return time.monotonic() - started
