"""DICOM Encapsulated PDF (SOP Class 1.2.840.10008.5.1.4.1.1.104.1) that files into the source study.

Built with pydicom following the IOD (PS3.3 A.45.1): SOP Common, Patient and General Study modules copied from the
source image's dataset (so PACS files the PDF under the same patient and Study Instance UID), a new Encapsulated
Document Series (Modality DOC, new Series and SOP Instance UIDs), General and SC Equipment, and the Encapsulated
Document module (DocumentTitle, ConceptNameCodeSequence, BurnedInAnnotation YES, MIME type, the PDF padded to even
length with its true length in EncapsulatedDocumentLength). highdicom has no writer for this IOD.

De-identification: reports/ must not import dicom_io, so the caller passes ``deidentify(Dataset) -> Dataset``. It is
applied to the finished header *before* the PDF goes in, because PS3.15 Table E.1-1 replaces (0042,0011)
Encapsulated Document with a dummy — a PDF can carry identifiers — so the PDF itself must be the de-identified
rendering. :func:`write_report_dicom` guarantees that pairing.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.atomic import atomic_write_bytes
from reports.errors import ReportError
from reports.model import Report

__all__ = [
    "ENCAPSULATED_PDF_STORAGE",
    "DIAGNOSTIC_IMAGING_REPORT",
    "PATHOLOGY_REPORT",
    "document_in_study",
    "encapsulated_pdf",
    "dicom_bytes",
    "write_encapsulated_pdf",
    "report_dicom",
    "write_report_dicom",
]

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
#: LOINC codes for ConceptNameCodeSequence (CID 7000-style document titles).
DIAGNOSTIC_IMAGING_REPORT = ("18748-4", "LN", "Diagnostic Imaging Report")
PATHOLOGY_REPORT = ("11526-1", "LN", "Pathology study")

Deidentify = Callable[[Any], Any]

# PS3.3 C.7.1.1 Patient, C.7.2.1 General Study, C.7.2.2 Patient Study (optional, harmless to copy).
_PATIENT = (
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "TypeOfPatientID",
    "PatientBirthDate", "PatientBirthTime", "PatientSex", "QualityControlSubject", "OtherPatientIDsSequence",
    "OtherPatientNames", "EthnicGroup", "PatientComments", "PatientSpeciesDescription", "PatientSpeciesCodeSequence",
    "PatientBreedDescription", "PatientBreedCodeSequence", "BreedRegistrationSequence", "StrainDescription",
    "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence",
)
_STUDY = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName", "StudyID", "AccessionNumber", "IssuerOfAccessionNumberSequence", "StudyDescription",
    "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "RequestingService", "ProcedureCodeSequence",
    "ReasonForPerformedProcedureCodeSequence",
)
_PATIENT_STUDY = ("PatientAge", "PatientSize", "PatientWeight", "AdmittingDiagnosesDescription")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip


def _code(value: str, scheme: str, meaning: str) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = _lo(meaning)  # LO: at most 64 characters
    return item


def _lo(text: str, limit: int = 64) -> str:
    """LO/SH-like values: one line, no backslash (the DICOM multi-value separator), at most *limit* characters."""
    from reports.fonts import clean_text

    text = " ".join(clean_text(str(text)).replace("\\", "/").split())
    return text[:limit]


def with_file_meta(ds: Any) -> Any:
    """`ds` with the Part 10 file meta of a new instance (explicit VR little endian, pydicom's implementation UID):
    the last step of every document medapp writes (the Encapsulated PDF and the SR)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def document_in_study(sop_class_uid: str, source: Any, when: datetime) -> Any:
    """A new instance of `sop_class_uid` filed into the study of `source` (a pydicom Dataset, or None).

    The part every document medapp writes shares (the Encapsulated PDF and the SR): UTF-8 character set, new SOP
    Instance UID, creation date/time and offset, the patient and study attributes copied from `source` (a new Study
    Instance UID without one), and the type-2 attributes present even when empty. Series and document modules are
    the caller's.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names and titles in any script
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    offset = when.strftime("%z")
    if offset:
        ds.TimezoneOffsetFromUTC = offset
    if source is not None:
        for keyword in _PATIENT + _STUDY + _PATIENT_STUDY:
            if keyword in source:
                elem = source[keyword]
                ds[elem.tag] = copy.deepcopy(elem)
    if not str(ds.get("StudyInstanceUID", "")).strip():
        ds.StudyInstanceUID = generate_uid()
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def encapsulated_pdf(
    pdf_bytes: bytes,
    source: Any | None = None,
    *,
    title: str = "AI-assisted imaging report",
    concept: tuple[str, str, str] = DIAGNOSTIC_IMAGING_REPORT,
    verified: bool = False,
    series_number: int = 9901,
    instance_number: int = 1,
    series_description: str = "AI-assisted report (medapp)",
    manufacturer: str = "medapp",
    software_version: str = "",
    when: datetime | None = None,
    deidentify: Deidentify | None = None,
) -> Any:
    """Wrap *pdf_bytes* as an Encapsulated PDF dataset (with file meta) in the study of *source*.

    *source*: a pydicom Dataset of any image of the study (only its header is read; it is not modified). Without
    one, a new Study Instance UID is made and the patient attributes stay empty. *verified* sets (0040,A493)
    Verification Flag (``VERIFIED`` only for a signed report). With *deidentify*, the header goes through it before
    the PDF is inserted; pass the de-identified rendering as *pdf_bytes* (or use :func:`write_report_dicom`).
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    if not isinstance(pdf_bytes, (bytes, bytearray)) or not bytes(pdf_bytes[:5]) == b"%PDF-":
        raise ReportError("encapsulated PDF: the document bytes are not a PDF (no %PDF- header)")
    if source is not None and not isinstance(source, Dataset):
        raise ReportError(f"encapsulated PDF: source must be a pydicom Dataset, not {type(source).__name__}")
    when = (when or datetime.now(UTC)).astimezone()

    ds = document_in_study(ENCAPSULATED_PDF_STORAGE, source, when)
    # Encapsulated Document Series, General Equipment, SC Equipment
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = _lo(series_description)
    ds.Manufacturer = _lo(manufacturer)
    if software_version:
        ds.SoftwareVersions = _lo(software_version)
    ds.ConversionType = "WSD"
    # Encapsulated Document module
    ds.InstanceNumber = int(instance_number)
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = _lo(title, 64) or "Report"
    ds.ConceptNameCodeSequence = Sequence([_code(*concept)])
    ds.VerificationFlag = "VERIFIED" if verified else "UNVERIFIED"
    if source is not None and "SOPInstanceUID" in source and "SOPClassUID" in source:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.SOPClassUID
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ds.SourceInstanceSequence = Sequence([ref])

    if deidentify is not None:
        ds = deidentify(ds)
        if not isinstance(ds, Dataset):
            raise ReportError(f"encapsulated PDF: deidentify returned {type(ds).__name__}, not a pydicom Dataset")
        for keyword, expected in (("SOPClassUID", ENCAPSULATED_PDF_STORAGE), ("Modality", "DOC")):
            if str(ds.get(keyword, "")) != expected:
                raise ReportError(f"encapsulated PDF: deidentify changed {keyword} to {ds.get(keyword)!r}")
        for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
            if not str(ds.get(keyword, "")).strip():
                raise ReportError(f"encapsulated PDF: deidentify removed {keyword}")

    data = bytes(pdf_bytes)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")

    return with_file_meta(ds)


def dicom_bytes(ds: Any) -> bytes:
    """Serialise as a DICOM Part 10 file (preamble, file meta, explicit VR little endian)."""
    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception as exc:  # pydicom raises ValueError/TypeError/struct.error for bad values
        raise ReportError(f"encapsulated PDF: cannot encode the DICOM dataset: {exc}") from exc
    return buf.getvalue()


def write_encapsulated_pdf(ds: Any, path: str | os.PathLike[str]) -> Path:
    """Write the dataset atomically (a failure never leaves a truncated .dcm behind)."""
    return atomic_write_bytes(path, dicom_bytes(ds))


def report_dicom(
    report: Report,
    source: Any | None = None,
    *,
    deidentify: Deidentify | None = None,
    options: Any | None = None,
    when: datetime | None = None,
) -> Any:
    """Render *report* (the de-identified rendering when *deidentify* is given) and wrap it in the source study."""
    from reports.pdf import report_pdf_bytes

    pdf = report_pdf_bytes(report, deidentified=deidentify is not None, options=options)
    pathology = report.template == "pathology" or report.modality.upper() in ("SM", "SLIDE")
    state = "signed" if report.is_signed else "AI draft"
    return encapsulated_pdf(
        pdf,
        source,
        title=f"{report.title} ({state})",
        concept=PATHOLOGY_REPORT if pathology else DIAGNOSTIC_IMAGING_REPORT,
        verified=report.is_signed,
        software_version=report.provenance.app_version,
        when=when,
        deidentify=deidentify,
    )


def write_report_dicom(
    report: Report,
    path: str | os.PathLike[str],
    source: Any | None = None,
    *,
    deidentify: Deidentify | None = None,
    options: Any | None = None,
) -> Path:
    """Render, wrap and write atomically; returns the path. See :func:`report_dicom`."""
    return write_encapsulated_pdf(report_dicom(report, source, deidentify=deidentify, options=options), path)
