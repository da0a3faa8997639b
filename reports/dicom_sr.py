"""The report as a DICOM Basic Text SR (SOP Class 1.2.840.10008.5.1.4.1.1.88.11) filed into the source study.

Why an SR beside the Encapsulated PDF: a PACS, a RIS or another viewer can read an SR's sections, its draft/signed
state and the images it refers to without parsing a PDF. Why pydicom and not highdicom: highdicom's SR classes are
built around TID 1500 measurement reports; a free-text report is a plain content tree, which pydicom writes in a
few dozen lines without a second DICOM library. Why Basic Text SR: it holds everything here (CONTAINER, TEXT, CODE,
UIDREF, PNAME, IMAGE) and is the SR class PACS accept most widely.

The content tree (PS3.3 C.17.3), no template claimed:

    CONTAINER  (18748-4, LN, "Diagnostic Imaging Report")  — or "Pathology study" for slides
      HAS OBS CONTEXT  Observer Type = Device, Device Observer UID / Name / Model Name  (the model that drafted it)
      HAS OBS CONTEXT  Observer Type = Person, Person Observer Name                    (only when signed)
      CONTAINS TEXT    one per non-empty section, coded (Finding, Impression, Indications for Procedure, ...)
      CONTAINS TEXT    Report status: "AI draft — not reviewed by a clinician" or "Signed by <name> at <time>"
      CONTAINS IMAGE   the source image (key image), with its frame number for multi-frame images
      CONTAINS CONTAINER  AI provenance → TEXT: algorithm name and version, checkpoint SHA-256, prompt, app
                          version, creation time, input hashes

Header: Patient and General Study copied from the source image (same Study Instance UID, so the PACS files it
with the images), a new SR series (Modality SR), VerificationFlag VERIFIED with a VerifyingObserverSequence naming
the clinician only when the report is signed (else UNVERIFIED), CompletionFlag COMPLETE / PARTIAL and
PreliminaryFlag FINAL / PRELIMINARY likewise, and CurrentRequestedProcedureEvidenceSequence listing the source
study / series / instance. There is no de-identified SR: PS3.15 removes the whole Content Sequence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reports.dicom_pdf import _code, _lo, document_in_study, with_file_meta
from reports.errors import ReportError
from reports.model import Report

__all__ = ["BASIC_TEXT_SR", "SECTION_CODES", "report_sr", "MEDAPP_SCHEME"]

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
MEDAPP_SCHEME = "99MEDAPP"  # private coding scheme (PS3.16 8.2: "99" prefix) for concepts DCM/LOINC lack
DIAGNOSTIC_IMAGING_REPORT = ("18748-4", "LN", "Diagnostic Imaging Report")
PATHOLOGY_REPORT = ("11526-1", "LN", "Pathology study")

#: Section key → concept name. DCM codes where PS3.16 has one (CID 7001 headings), else 99MEDAPP.
SECTION_CODES: dict[str, tuple[str, str, str]] = {
    "exam": ("121065", "DCM", "Procedure Description"),
    "indication": ("121109", "DCM", "Indications for Procedure"),
    "technique": ("121064", "DCM", "Current Procedure Descriptions"),
    "comparison": ("121066", "DCM", "Prior Procedure Descriptions"),
    "findings": ("121071", "DCM", "Finding"),
    "impression": ("121073", "DCM", "Impression"),
    "recommendations": ("121075", "DCM", "Recommendation"),
    "limitations": ("LIMITATIONS", MEDAPP_SCHEME, "Limitations"),
}
_STATUS = ("STATUS", MEDAPP_SCHEME, "Report status")
_PROVENANCE = ("PROVENANCE", MEDAPP_SCHEME, "AI draft provenance")


def _item(value_type: str, concept: tuple[str, str, str], relationship: str, **values: Any) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([_code(*concept)])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _text(concept: tuple[str, str, str], text: str, relationship: str = "CONTAINS") -> Any:
    return _item("TEXT", concept, relationship, TextValue=text)


def _section_code(key: str, title: str) -> tuple[str, str, str]:
    if key in SECTION_CODES:
        return SECTION_CODES[key]
    return (_lo(key.upper(), 16) or "SECTION", MEDAPP_SCHEME, title or key)


def _pn(name: str) -> str:
    """A clinician's name as a DICOM PN value: one component group, no separators a PN would misread."""
    return " ".join(name.replace("\\", " ").replace("=", " ").split())[:64]


def _observer_context(report: Report) -> list[Any]:
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    prov = report.provenance
    items = [
        _item("CODE", ("121005", "DCM", "Observer Type"), "HAS OBS CONTEXT",
              ConceptCodeSequence=Sequence([_code("121007", "DCM", "Device")])),
        _item("UIDREF", ("121012", "DCM", "Device Observer UID"), "HAS OBS CONTEXT",
              UID=generate_uid(entropy_srcs=[prov.model_id, prov.checkpoint_sha256])),
        _text(("121013", "DCM", "Device Observer Name"), prov.model_id or "unknown model", "HAS OBS CONTEXT"),
        _text(("121015", "DCM", "Device Observer Model Name"), prov.model_id or "unknown model", "HAS OBS CONTEXT"),
    ]
    if report.is_signed:
        assert report.signature is not None
        items += [
            _item("CODE", ("121005", "DCM", "Observer Type"), "HAS OBS CONTEXT",
                  ConceptCodeSequence=Sequence([_code("121006", "DCM", "Person")])),
            _item("PNAME", ("121008", "DCM", "Person Observer Name"), "HAS OBS CONTEXT",
                  PersonName=_pn(report.signature.name)),
        ]
    return items


def _provenance(report: Report) -> Any:
    from pydicom.sequence import Sequence

    prov = report.provenance
    rows: list[Any] = []

    def add(code: tuple[str, str, str], value: str) -> None:
        if value:
            rows.append(_text(code, value))

    add(("111001", "DCM", "Algorithm Name"), prov.model_id)
    add(("111003", "DCM", "Algorithm Version"), prov.checkpoint_sha256[:16])
    add(("CKPT_SHA256", MEDAPP_SCHEME, "Checkpoint SHA-256"), prov.checkpoint_sha256)
    add(("PROMPT", MEDAPP_SCHEME, "Prompt"), prov.prompt)
    add(("APP_VERSION", MEDAPP_SCHEME, "medapp version"), prov.app_version)
    add(("CREATED", MEDAPP_SCHEME, "Draft created"), prov.created.isoformat() if prov.created else "")
    for label, digest in prov.input_hashes:
        add(("INPUT_SHA256", MEDAPP_SCHEME, "Input SHA-256"), f"{label}: {digest}")
    container = _item("CONTAINER", _PROVENANCE, "CONTAINS", ContinuityOfContent="SEPARATE")
    container.ContentSequence = Sequence(rows)
    return container


def _status_text(report: Report) -> str:
    if report.is_signed:
        assert report.signature is not None
        return f"Signed by {report.signature.name} at {report.signature.signed_at.isoformat(timespec='seconds')}"
    return "AI draft — not reviewed by a clinician"


def _image_items(report: Report, source: Any) -> list[Any]:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    if source is None or "SOPInstanceUID" not in source or "SOPClassUID" not in source:
        return []
    multiframe = int(source.get("NumberOfFrames", 1) or 1) > 1
    items = []
    frames = [k.frame for k in report.key_images] or [None]
    for frame in dict.fromkeys(frames):
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.SOPClassUID
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        if multiframe and frame is not None:
            ref.ReferencedFrameNumber = int(frame) + 1  # DICOM frames are numbered from 1
        items.append(_item("IMAGE", ("121180", "DCM", "Key Images"), "CONTAINS", ReferencedSOPSequence=Sequence([ref])))
    return items


def _evidence(source: Any) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    sop = Dataset()
    sop.ReferencedSOPClassUID = source.SOPClassUID
    sop.ReferencedSOPInstanceUID = source.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedSOPSequence = Sequence([sop])
    study = Dataset()
    study.StudyInstanceUID = source.StudyInstanceUID
    study.ReferencedSeriesSequence = Sequence([series])
    return Sequence([study])


def report_sr(
    report: Report,
    source: Any | None = None,
    *,
    when: datetime | None = None,
    series_number: int = 9902,
    instance_number: int = 1,
    series_description: str = "AI-assisted report (medapp SR)",
    manufacturer: str = "medapp",
    organization: str = "",
) -> Any:
    """Build the Basic Text SR dataset (with file meta) of *report* in the study of *source* (see module docstring).

    *source*: the pydicom header of the image the report is about (not modified). *organization*: the
    VerifyingOrganization of a signed report (type 2: empty when unknown).
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    if not isinstance(report, Report):
        raise ReportError(f"SR: expected a Report, not {type(report).__name__}")
    if source is not None and not isinstance(source, Dataset):
        raise ReportError(f"SR: source must be a pydicom Dataset, not {type(source).__name__}")
    if not any(s.text.strip() for s in report.sections):
        raise ReportError("SR: the report has no text in any section")
    when = (when or datetime.now(UTC)).astimezone()
    signed = report.is_signed

    ds = document_in_study(BASIC_TEXT_SR, source, when)
    # SR Document Series, General Equipment
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = _lo(series_description)
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.Manufacturer = _lo(manufacturer)
    if report.provenance.app_version:
        ds.SoftwareVersions = _lo(report.provenance.app_version)
    # SR Document General
    ds.InstanceNumber = int(instance_number)
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.CompletionFlag = "COMPLETE" if signed else "PARTIAL"
    if not signed:
        ds.CompletionFlagDescription = "AI draft, not reviewed by a clinician"
    ds.VerificationFlag = "VERIFIED" if signed else "UNVERIFIED"
    ds.PreliminaryFlag = "FINAL" if signed else "PRELIMINARY"
    if signed:
        assert report.signature is not None
        observer = Dataset()
        observer.VerifyingObserverName = _pn(report.signature.name)
        observer.VerifyingObserverIdentificationCodeSequence = Sequence()
        observer.VerifyingOrganization = _lo(organization)
        observer.VerificationDateTime = report.signature.signed_at.astimezone().strftime("%Y%m%d%H%M%S%z")
        ds.VerifyingObserverSequence = Sequence([observer])
    ds.PerformedProcedureCodeSequence = Sequence()
    images = _image_items(report, source)
    if images:
        ds.CurrentRequestedProcedureEvidenceSequence = _evidence(source)
    # SR Document Content: the tree
    pathology = report.template == "pathology" or report.modality.upper() in ("SM", "SLIDE")
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code(*(PATHOLOGY_REPORT if pathology else DIAGNOSTIC_IMAGING_REPORT))])
    ds.ContinuityOfContent = "SEPARATE"
    content: list[Any] = _observer_context(report)
    for section in report.sections:
        if section.text.strip():
            content.append(_text(_section_code(section.key, section.title), section.text.strip()))
    content.append(_text(_STATUS, _status_text(report)))
    content += images
    content.append(_provenance(report))
    ds.ContentSequence = Sequence(content)

    return with_file_meta(ds)
