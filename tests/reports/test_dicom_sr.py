"""The report as a Basic Text SR: content tree, draft/signed flags, references to the source, round trip."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pydicom
import pytest

from reports.dicom_pdf import dicom_bytes
from reports.dicom_sr import BASIC_TEXT_SR, report_sr
from reports.errors import ReportError
from reports.model import KeyImage, Provenance, Report, Section


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


def _report(**kw) -> Report:
    return Report(
        sections=(Section("exam", "Exam", "CT chest"), Section("findings", "Findings", "No nodule."),
                  Section("impression", "Impression", "Normal."), Section("limitations", "Limitations", ""),
                  Section("addendum", "Addendum", "See prior.")),
        modality="CT",
        template="ct",
        key_images=(KeyImage(png=_png(), frame=2),),
        provenance=Provenance(model_id="dragonfly-tiny", checkpoint_sha256="ab" * 32, prompt="Describe.",
                              app_version="0.1.0", created=datetime(2026, 1, 2, tzinfo=UTC),
                              input_hashes={"image": "cd" * 32}),
        **kw,
    )


def _read(ds) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(dicom_bytes(ds)))


def _items(sr) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in sr.ContentSequence:
        out.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(item)
    return out


@pytest.fixture
def source() -> pydicom.Dataset:
    return pydicom.dcmread(pydicom.examples.get_path("ct"))


def test_draft_sr_is_unverified_partial_and_files_into_the_source_study(source) -> None:
    sr = _read(report_sr(_report(), source))
    assert sr.SOPClassUID == BASIC_TEXT_SR and sr.Modality == "SR" and sr.ValueType == "CONTAINER"
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert (sr.VerificationFlag, sr.CompletionFlag, sr.PreliminaryFlag) == ("UNVERIFIED", "PARTIAL", "PRELIMINARY")
    assert "VerifyingObserverSequence" not in sr
    items = _items(sr)
    assert items["Finding"][0].TextValue == "No nodule." and items["Impression"][0].TextValue == "Normal."
    assert items["Procedure Description"][0].TextValue == "CT chest"
    assert "Limitations" not in items  # empty sections are left out (TEXT values are type 1)
    assert items["Addendum"][0].ConceptNameCodeSequence[0].CodingSchemeDesignator == "99MEDAPP"
    assert items["Report status"][0].TextValue.startswith("AI draft")
    assert "Person Observer Name" not in items
    assert items["Device Observer Name"][0].TextValue == "dragonfly-tiny"
    prov = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in items["AI draft provenance"][0].ContentSequence}
    assert prov["Checkpoint SHA-256"] == "ab" * 32 and prov["Prompt"] == "Describe."
    assert prov["Input SHA-256"] == "image: " + "cd" * 32
    ref = items["Key Images"][0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID and "ReferencedFrameNumber" not in ref  # 1 frame
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_signed_sr_is_verified_and_names_the_signer(source) -> None:
    report = _report()
    report.sign("Dr Grace Hopper", datetime(2026, 1, 3, 9, 30, tzinfo=UTC))
    sr = _read(report_sr(report, source, organization="General Hospital"))
    assert (sr.VerificationFlag, sr.CompletionFlag, sr.PreliminaryFlag) == ("VERIFIED", "COMPLETE", "FINAL")
    observer = sr.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "Dr Grace Hopper"
    assert observer.VerifyingOrganization == "General Hospital"
    assert observer.VerificationDateTime.startswith("20260103")
    items = _items(sr)
    assert str(items["Person Observer Name"][0].PersonName) == "Dr Grace Hopper"
    assert "Signed by Dr Grace Hopper" in items["Report status"][0].TextValue
    report.set_section("findings", "Edited after signing.")  # back to draft
    assert _read(report_sr(report, source)).VerificationFlag == "UNVERIFIED"


def test_multiframe_source_references_the_key_frame(source) -> None:
    source.NumberOfFrames = 5
    sr = _read(report_sr(_report(), source))
    assert _items(sr)["Key Images"][0].ReferencedSOPSequence[0].ReferencedFrameNumber == 3  # frame index 2


def test_without_source_a_new_study_and_no_references() -> None:
    sr = _read(report_sr(_report()))
    assert sr.StudyInstanceUID and sr.PatientID == ""
    assert "Key Images" not in _items(sr) and "CurrentRequestedProcedureEvidenceSequence" not in sr


def test_empty_report_and_bad_source_are_refused(source) -> None:
    with pytest.raises(ReportError, match="no text"):
        report_sr(Report(sections=(Section("findings", "Findings", "  "),)), source)
    with pytest.raises(ReportError, match="pydicom Dataset"):
        report_sr(_report(), source={"StudyInstanceUID": "1.2"})
