"""One association with a node: timeouts always set, every failure turned into one `PacsError` sentence.

Why a wrapper: pynetdicom reports a refused connection, a rejected association (wrong called AE title, unknown
calling AE) and an abort as flags on the `Association` plus log lines, and waits forever unless told otherwise.
Here every association gets the connection, ACSE, DIMSE and network timeouts from the settings, the rejection
reason is read from pynetdicom's log records while the request runs, and pynetdicom's own logging is kept away
from the application's handlers (at debug level it dumps datasets, which hold patient data).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from medapp.pacs.errors import PacsError
from medapp.pacs.nodes import LocalAE, Node

__all__ = ["make_ae", "associate", "status_text", "lost", "require_service"]

_LOG = logging.getLogger("pynetdicom")
_LOG.propagate = False  # PHI-safe: its records never reach medapp's or the GUI's log handlers
_LOG.setLevel(logging.ERROR)


class _ReasonCatcher(logging.Handler):
    """Collects pynetdicom's rejection reason ("Result: ...", "Reason: ...") and TCP connection error
    ("TCP Initialisation Error: ...") lines during one association request: it reports them only as log lines."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []
        self.tcp_error = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Reason:", "Result:")):
            self.lines.append(message)
        elif message.startswith("TCP Initialisation Error:"):
            self.tcp_error = message.split(":", 1)[1].strip()


_CATCH_LOCK = threading.Lock()


def make_ae(local: LocalAE) -> Any:
    """A pynetdicom AE with our AE title and every timeout set (no call may wait forever)."""
    from pynetdicom import AE

    ae = AE(ae_title=local.ae_title)
    ae.connection_timeout = local.timeout
    ae.acse_timeout = local.timeout
    ae.dimse_timeout = local.timeout
    ae.network_timeout = local.timeout
    ae.maximum_pdu_size = 0  # no limit on what we receive
    return ae


def status_text(status: Any) -> str:
    """``0xC000 (Failure: ...)`` for a DIMSE status dataset, for messages."""
    from pynetdicom.status import code_to_category

    code = int(getattr(status, "Status", -1))
    comment = str(getattr(status, "ErrorComment", "") or "").strip()
    text = f"status 0x{code:04X} ({code_to_category(code)})"
    return f"{text}: {comment}" if comment else text


def lost(assoc: Any, node: Node, doing: str, since: float) -> str:
    """Why a DIMSE exchange ended without a response, as one sentence: no answer within the DIMSE timeout, the
    peer aborted (often: it refuses this request from our AE title), or the connection dropped. `since` is the
    `time.monotonic()` of the last message from the peer. Aborts our side too, so nothing keeps waiting."""
    import time

    waited = time.monotonic() - since
    timeout = float(assoc.dimse_timeout or 0)
    deadline = time.monotonic() + 1.0  # pynetdicom flags a peer's A-ABORT a moment after the empty response
    while assoc.is_established and not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    aborted = bool(assoc.is_aborted)
    if assoc.is_established:
        assoc.abort()
    if timeout and waited >= timeout * 0.9:
        return f"{node}: no answer within {timeout:g} s during {doing} (timed out)"
    if aborted:
        return (f"{node}: the PACS aborted the association during {doing} (it may not allow this from medapp's AE "
                f"title {assoc.ae.ae_title}; the PACS must list it)")
    return f"{node}: the connection was lost during {doing}"


def require_service(assoc: Any, node: Node, sop_class: str, service: str, hint: str = "") -> None:
    """A `PacsError` when the node accepted the association but not the service we need (e.g. a PACS without
    C-GET); pynetdicom would raise a bare ValueError on the first message."""
    if not any(str(cx.abstract_syntax) == sop_class for cx in assoc.accepted_contexts):
        assoc.release()
        raise PacsError(f"{node}: the PACS does not offer {service}{hint}")


@contextmanager
def associate(
    ae: Any,
    node: Node,
    *,
    ext_neg: Iterable[Any] | None = None,
    evt_handlers: list[Any] | None = None,
    what: str = "",
) -> Iterator[Any]:
    """Yield an established association with `node` and release (or abort) it afterwards.

    `what` names the operation for messages ("find", "retrieve"). Raises `PacsError` when the connection fails,
    the node rejects or aborts the request, or it accepts none of the proposed presentation contexts.
    """
    tls_args = (node.tls.context(), node.host) if node.tls is not None else None
    catcher = _ReasonCatcher()
    doing = f" for {what}" if what else ""
    with _CATCH_LOCK:  # the handler is process-wide; one association request at a time reads it
        _LOG.addHandler(catcher)
        try:
            assoc = ae.associate(
                node.host,
                node.port,
                ae_title=node.ae_title,
                ext_neg=list(ext_neg) if ext_neg else None,
                evt_handlers=evt_handlers,
                tls_args=tls_args,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise PacsError(f"{node}: cannot open an association{doing} ({exc})") from exc
        finally:
            _LOG.removeHandler(catcher)
    if not assoc.is_established:
        if catcher.tcp_error:
            tls = "SSL" in catcher.tcp_error.upper() or "CERTIFICATE" in catcher.tcp_error.upper()
            fix = "check the node's TLS CA and certificate files" if tls else \
                "check the host and port, and that the PACS is running"
            raise PacsError(f"{node}: cannot connect{doing} ({catcher.tcp_error}); {fix}")
        if assoc.is_rejected:
            reason = "; ".join(line.split(":", 1)[1].strip() for line in catcher.lines) or "no reason given"
            hint = ""
            if "AE TITLE" in reason.upper():
                hint = " — check the node's AE title and that the PACS knows medapp's AE title"
            raise PacsError(f"{node}: the PACS rejected the association{doing} ({reason}){hint}")
        if assoc.is_aborted:
            raise PacsError(f"{node}: the PACS aborted the association{doing} (it accepted none of what medapp "
                            "proposed, or it refuses this AE title)")
        raise PacsError(f"{node}: cannot connect{doing} (nothing listening at {node.host}:{node.port}, a firewall, "
                        f"or no answer within {ae.connection_timeout or ae.acse_timeout:g} s)")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            try:
                assoc.release()
            except Exception:  # noqa: BLE001 — a failed release after the work is done changes nothing for the user
                assoc.abort()
