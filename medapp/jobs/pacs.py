"""The PACS jobs the CLI and the window share: echo, find, retrieve, store a report — each audited.

Why a layer above `medapp.pacs`: this is where the settings (our AE, timeouts), the audit log and the report
objects meet. The audit keeps the remote node's address and DICOM UIDs only: never patient names or IDs, and for
a search only *which* filters were used. A failed operation is audited too (with the error type), then re-raised.
The signatures follow `medapp.jobs` (keyword `progress` and `cancel`), so `ui.workers.Worker` runs them unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medapp.jobs.progress import EtaClock, Progress
from medapp.pacs.config import local_ae
from medapp.pacs.errors import PacsError
from medapp.pacs.nodes import Node

__all__ = ["pacs_echo", "pacs_find", "pacs_find_series", "pacs_get", "report_datasets", "store_report"]


@contextmanager
def _audited(audit: Any, event: str, *, inputs: list[str] | None = None, **details: Any) -> Iterator[dict[str, Any]]:
    """Audit `event` after the body, with the details the body adds; on failure with ``error`` set, then re-raise."""
    extra: dict[str, Any] = {}
    try:
        yield extra
    except BaseException as exc:
        if audit is not None:
            audit.record(event, inputs=inputs or [], error=type(exc).__name__, **details, **extra)
        raise
    if audit is not None:
        audit.record(event, inputs=inputs or [], **details, **extra)


def pacs_echo(node: Node, *, settings: Any, audit: Any = None) -> float:
    """C-ECHO round trip in seconds."""
    from medapp.pacs.echo import echo

    with _audited(audit, "pacs_echo", node=str(node)):
        return echo(local_ae(settings), node)


def pacs_find(node: Node, query: Any, *, settings: Any, audit: Any = None, limit: int = 1000,
              cancel: threading.Event | None = None) -> list[Any]:
    """Study-level C-FIND with a `medapp.pacs.query.StudyQuery`."""
    from medapp.pacs.query import find_studies

    with _audited(audit, "pacs_find", node=str(node), level="study", filters=query.used_filters()) as extra:
        studies = find_studies(local_ae(settings), node, query, limit=limit, cancel=cancel)
        extra["n_results"] = len(studies)
        return studies


def pacs_find_series(node: Node, study_uid: str, *, settings: Any, audit: Any = None, modality: str = "",
                     cancel: threading.Event | None = None) -> list[Any]:
    """Series-level C-FIND within one study."""
    from medapp.pacs.query import find_series

    filters = ["study_uid"] + (["modality"] if modality else [])
    with _audited(audit, "pacs_find", node=str(node), level="series", filters=filters, study_uid=study_uid) as extra:
        series = find_series(local_ae(settings), node, study_uid, modality=modality, cancel=cancel)
        extra["n_results"] = len(series)
        return series


def pacs_get(
    node: Node,
    study_uid: str,
    root: str | Path,
    *,
    settings: Any,
    series_uids: list[str] | None = None,
    audit: Any = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Retrieve a study (or some series) into the cache at `root`; returns `medapp.pacs.retrieve.RetrieveResult`."""
    from medapp.pacs.retrieve import retrieve_study

    state: dict[str, Any] = {}

    def report(done: int, total: int) -> None:
        if progress is None:
            return
        if not state:  # the first call tells what was already cached: the ETA counts only this run's instances
            state.update(clock=EtaClock(max(0, total - done)), base=done)
        progress(Progress(done, total, state["clock"].eta(done - state["base"])))

    details: dict[str, Any] = {"node": str(node), "study_uid": study_uid, "retrieve": node.retrieve}
    if series_uids:
        details["series_uids"] = list(series_uids)
    with _audited(audit, "pacs_get", **details) as extra:
        result = retrieve_study(local_ae(settings), node, study_uid, root, series_uids=series_uids,
                                progress=report, cancel=cancel)
        extra.update(n_expected=result.expected, n_received=result.received, n_cached=result.already)
        if not series_uids:
            extra["series_uids"] = result.series_uids
        return result


def report_datasets(report: Any, source: Any, *, settings: Any = None, allow_draft: bool = False) -> list[Any]:
    """The report as DICOM, filed into the source study: the Encapsulated PDF and the Basic Text SR.

    Only a signed report, unless `allow_draft` (the user said so explicitly): then both say "draft" (PDF watermark,
    VerificationFlag UNVERIFIED, SR CompletionFlag PARTIAL / PreliminaryFlag PRELIMINARY).
    """
    from reports.dicom_pdf import report_dicom
    from reports.dicom_sr import report_sr
    from reports.pdf import PdfOptions

    if not report.is_signed and not allow_draft:
        raise PacsError("the report is an unsigned AI draft: sign it first (drafts go to the PACS only with "
                        "--allow-draft, marked as drafts)")
    if source is None or "StudyInstanceUID" not in source or "SOPInstanceUID" not in source:
        raise PacsError("storing a report needs the DICOM image it is about (its study receives the report); "
                        "this report was not drafted from a DICOM file")
    letterhead = str(getattr(settings, "letterhead", "") or "").strip()
    organization = letterhead.splitlines()[0] if letterhead else ""
    pdf = report_dicom(report, source, options=PdfOptions(letterhead=letterhead) if letterhead else PdfOptions())
    sr = report_sr(report, source, organization=organization)
    return [pdf, sr]


def store_report(
    report: Any,
    source: Any,
    node: Node,
    *,
    settings: Any,
    audit: Any = None,
    allow_draft: bool = False,
) -> list[Any]:
    """Build the PDF and SR (`report_datasets`) and C-STORE them; one `StoreOutcome` per object.

    Audited twice: the intent before anything is sent (so nothing leaves medapp unaudited), then the outcome per
    object (or the error)."""
    from medapp.pacs.store import store_datasets

    datasets = report_datasets(report, source, settings=settings, allow_draft=allow_draft)
    details = {"node": str(node), "study_uid": str(source.StudyInstanceUID),
               "sop_uids": [str(ds.SOPInstanceUID) for ds in datasets], "report_state": report.state}
    if audit is not None:  # before anything leaves medapp: an audit log that cannot be written stops the store
        audit.record("pacs_store", inputs=[report.content_sha256()], **details)
    with _audited(audit, "pacs_store", inputs=[report.content_sha256()], **details) as extra:
        outcomes = store_datasets(local_ae(settings), node, datasets)
        extra["outcomes"] = ["stored" if o.ok else "refused" for o in outcomes]
        return outcomes
