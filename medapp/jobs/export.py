"""Export and sign a report: the one place the window and the command line turn a `Report` into files.

Why here and not in `reports`: exporting is where de-identification (`dicom_io.deid`), the report renderers
(`reports`) and the audit log meet, and only `medapp` may import more than one of them. Every export is audited
with the report's content hash, the output's hash and the de-identified flag — never the content itself.
For a de-identified DICOM export the PDF is the de-identified rendering and the finished DICOM header goes through
`dicom_io.deid.Deidentifier` (PS3.15 Basic Profile) before the PDF is put in, so no identifier reaches the new
object through the copied patient and study attributes.

UID consistency: a `Deidentifier` remaps each original UID to one new UID *per instance*, so every de-identified
export of the same study must go through the same instance, or two exports of one study (PDF-in-DICOM today,
another report tomorrow) land in two different de-identified studies. The caller may pass its own (a session or a
batch that owns one); otherwise all exports of this process run share `process_deidentifier()`. Calls are
serialised with a lock because the window exports from worker threads and the remapping is check-then-insert.

Safety of the output: `inputs` (the files the report is about) go through `medapp.outputs.check_output`, so an
export never replaces an original; and the audit entry is written *before* the file becomes visible (staged in a
temporary sibling, audited, renamed), so there is never an exported file the audit log does not account for. If
the audit write fails, the temporary file is removed and nothing is exported.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from medapp.errors import UserError

__all__ = ["export_report", "sign_report", "process_deidentifier", "check_same_study", "EXPORT_KINDS"]

EXPORT_KINDS = ("pdf", "dicom")
_DEID_LOCK = threading.Lock()
_process_deidentifier: Any = None


def process_deidentifier() -> Any:
    """The `dicom_io.deid.Deidentifier` shared by every de-identified export of this process run (created once)."""
    global _process_deidentifier
    with _DEID_LOCK:
        if _process_deidentifier is None:
            from dicom_io.deid import Deidentifier

            _process_deidentifier = Deidentifier()
        return _process_deidentifier


def _pdf_options(settings: Any, letterhead: str | None) -> Any:
    from reports.pdf import PdfOptions

    text = letterhead if letterhead is not None else getattr(settings, "letterhead", "") or ""
    return PdfOptions(letterhead=text) if text.strip() else PdfOptions()


def check_same_study(report: Any, source: Any) -> None:
    """Refuse to file a DICOM PDF into another study than the report's (`UserError`).

    The rule: when the report names a Study Instance UID and the header of the image on screen names a different
    one, the PDF would be filed into the wrong patient's study. Either UID missing means there is nothing to
    compare (a report drafted from a plain image, or a header without the tag), and the export goes on.
    """
    identifiers = getattr(report, "identifiers", None)
    wanted = str(getattr(identifiers, "study_instance_uid", "") or "")
    found = str(source.get("StudyInstanceUID", "") or "") if source is not None else ""
    if wanted and found and found != wanted:
        raise UserError(
            "the image on screen belongs to another study than the report; open the report's study to "
            "file the DICOM PDF into it"
        )


def export_report(
    report: Any,
    path: str | Path,
    *,
    kind: str = "pdf",
    deidentified: bool = False,
    source: Any = None,
    settings: Any = None,
    letterhead: str | None = None,
    audit: Any = None,
    deidentifier: Any = None,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write `report` as a PDF (`kind="pdf"`) or a DICOM Encapsulated PDF (`kind="dicom"`, filed into the study of
    `source`, the pydicom header of the shown image, when given). Atomic: a failure never leaves a partial file.
    A de-identified DICOM export remaps UIDs with `deidentifier` (default: `process_deidentifier()`), so exports
    sharing it keep one de-identified study. `inputs`: the image files the report is about; `path` must be none
    of them and not inside an input folder (`medapp.outputs`). A DICOM export into another study than the report's
    is refused (`check_same_study`) before anything is written."""
    from medapp.outputs import check_output
    from reports.atomic import staged_bytes
    from reports.pdf import report_pdf_bytes

    if kind not in EXPORT_KINDS:
        raise UserError(f"unknown export format {kind!r} (expected one of {', '.join(EXPORT_KINDS)})")
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist")
    check_output(path, inputs)
    if kind == "dicom":
        check_same_study(report, source)
    options = _pdf_options(settings, letterhead)
    if kind == "pdf":
        data = report_pdf_bytes(report, deidentified=deidentified, options=options)
    else:
        from reports.dicom_pdf import dicom_bytes, report_dicom

        deidentify = None
        if deidentified:
            shared = deidentifier if deidentifier is not None else process_deidentifier()

            def deidentify(ds: Any) -> Any:
                with _DEID_LOCK:
                    return shared.apply(ds)
        data = dicom_bytes(report_dicom(report, source, deidentify=deidentify, options=options))
    with staged_bytes(path, data) as staged:  # leaving without commit() removes the temporary file
        if audit is not None:
            audit.record(
                "export",
                inputs=[report.content_sha256()],
                format=kind,
                deidentified=deidentified,
                report_state=report.state,
                output_sha256=hashlib.sha256(data).hexdigest(),
            )
        staged.commit()
    return path


def sign_report(report: Any, name: str, *, when: datetime | None = None, audit: Any = None) -> Any:
    """Sign `report` as clinician `name` and audit it (the name is the user's own, not patient data, but the audit
    stores only the OS login and the content hash)."""
    name = (name or "").strip()
    if not name:
        raise UserError("a report is signed with the clinician's name; set it in the settings (clinician_name)")
    signature = report.sign(name, when)
    if audit is not None:
        audit.record("sign", inputs=[report.content_sha256()], report_state=report.state)
    return signature
