"""DICOM Encapsulated PDF: pydicom reads it back, it files into the source study, de-identified on request."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pypdf import PdfReader

from reports import ReportError
from reports.dicom_pdf import (
    DIAGNOSTIC_IMAGING_REPORT,
    ENCAPSULATED_PDF_STORAGE,
    encapsulated_pdf,
    write_encapsulated_pdf,
    write_report_dicom,
)
from reports.pdf import WATERMARK


def _read(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def test_round_trip_files_into_source_study(make_report, ct_dataset: Dataset, tmp_path: Path) -> None:
    report = make_report()
    report.sign("Dr Ana Souza")
    path = write_report_dicom(report, tmp_path / "report.dcm", ct_dataset)
    ds = _read(path)
    assert ds.file_meta.MediaStorageSOPClassUID == ENCAPSULATED_PDF_STORAGE == ds.SOPClassUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.StudyInstanceUID == ct_dataset.StudyInstanceUID
    assert ds.SeriesInstanceUID != ct_dataset.SeriesInstanceUID
    assert ds.SOPInstanceUID != ct_dataset.SOPInstanceUID
    assert ds.PatientName == ct_dataset.PatientName and ds.PatientID == ct_dataset.PatientID
    assert ds.Modality == "DOC" and ds.BurnedInAnnotation == "YES"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.DocumentTitle == "CT chest without contrast (signed)"
    assert ds.VerificationFlag == "VERIFIED"
    code = ds.ConceptNameCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == DIAGNOSTIC_IMAGING_REPORT
    assert ds.SourceInstanceSequence[0].ReferencedSOPInstanceUID == ct_dataset.SOPInstanceUID
    doc = bytes(ds.EncapsulatedDocument)
    assert len(doc) % 2 == 0
    pdf = doc[: ds.EncapsulatedDocumentLength]
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-16:]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Electronically signed by Dr Ana Souza" in text and WATERMARK not in text


def test_odd_length_pdf_is_padded_and_length_recorded() -> None:
    ds = encapsulated_pdf(b"%PDF-1.4 odd!", None)
    assert len(ds.EncapsulatedDocument) == 14 and ds.EncapsulatedDocumentLength == 13
    assert ds.EncapsulatedDocument.endswith(b"\x00")
    assert ds.StudyInstanceUID and ds.PatientName == "" and ds.VerificationFlag == "UNVERIFIED"
    back = pydicom.dcmread(io.BytesIO(_bytes(ds)))
    assert bytes(back.EncapsulatedDocument)[: back.EncapsulatedDocumentLength] == b"%PDF-1.4 odd!"


def _bytes(ds: Dataset) -> bytes:
    from reports.dicom_pdf import dicom_bytes

    return dicom_bytes(ds)


def test_not_a_pdf_and_bad_source() -> None:
    with pytest.raises(ReportError, match="not a PDF"):
        encapsulated_pdf(b"hello", None)
    with pytest.raises(ReportError, match="must be a pydicom Dataset"):
        encapsulated_pdf(b"%PDF-1.4", {"StudyInstanceUID": "1.2"})


class _TinyDeidentifier:
    """Stands in for dicom_io.deid (reports/ tests must not depend on it): blanks identity, remaps UIDs."""

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}

    def __call__(self, ds: Dataset) -> Dataset:
        from pydicom.uid import generate_uid

        out = ds.copy()
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName"):
            if kw in out:
                setattr(out, kw, "ANON" if kw in ("PatientName", "PatientID") else "")
        for kw in ("OtherPatientIDsSequence", "StudyID"):
            if kw in out:
                del out[kw]
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if kw in out:
                setattr(out, kw, self.uids.setdefault(str(out[kw].value), generate_uid()))
        out.PatientIdentityRemoved = "YES"
        return out


def test_deidentified_variant(make_report, ct_dataset: Dataset, tmp_path: Path) -> None:
    deid = _TinyDeidentifier()
    path = write_report_dicom(make_report(), tmp_path / "deid.dcm", ct_dataset, deidentify=deid)
    raw = path.read_bytes()
    ds = pydicom.dcmread(path)
    assert ds.StudyInstanceUID == deid.uids[str(ct_dataset.StudyInstanceUID)]
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.PatientName == "ANON" and ds.PatientIdentityRemoved == "YES"
    leaks = (str(ct_dataset.PatientName), "PID-778899", "王小明", "ACC-4455", "1.2.826.0.1.3680043.8.498.77777")
    for phi in leaks:
        assert phi.encode("utf-8") not in raw, f"{phi!r} leaked"
    pdf = bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "removed (de-identified export)" in text and WATERMARK in text


def test_deidentify_must_return_a_dataset_and_keep_the_sop_class(make_report, ct_dataset: Dataset) -> None:
    from reports.dicom_pdf import report_dicom

    with pytest.raises(ReportError, match="not a pydicom Dataset"):
        report_dicom(make_report(), ct_dataset, deidentify=lambda ds: None)

    def breaks(ds: Dataset) -> Dataset:
        ds.SOPClassUID = "1.2.3"
        return ds

    with pytest.raises(ReportError, match="changed SOPClassUID"):
        report_dicom(make_report(), ct_dataset, deidentify=breaks)


def test_source_is_not_modified(make_report, ct_dataset: Dataset, tmp_path: Path) -> None:
    before = ct_dataset.to_json()
    write_encapsulated_pdf(encapsulated_pdf(b"%PDF-1.7", ct_dataset), tmp_path / "x.dcm")
    assert ct_dataset.to_json() == before
