"""Draft a report with the tiny golden model from a study retrieved from Orthanc, sign it, `--store` it, and find the
Encapsulated PDF and the SR (sections, signer, references) in the source study through Orthanc's REST API."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from medapp.cli import main
from tests.medapp.pacs_support import (  # noqa: F401 — fixtures
    HOST,
    audit_events,
    audit_text,
    copies_of,
    ct_mr_examples,
    orthanc,
    pacs_net,
    pacs_settings,
)

PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.11"


@pytest.fixture
def fresh_study(orthanc, pacs_settings, pacs_net, tmp_path: Path, capsys) -> tuple[str, Path]:
    """A new one-instance CT study in Orthanc, retrieved with `medapp pacs get`: (study UID, the cached file)."""
    ct, _ = ct_mr_examples()
    [blob] = copies_of(ct, 1)
    orthanc.upload(blob)
    study = str(pydicom.dcmread(io.BytesIO(blob)).StudyInstanceUID)
    assert main(["pacs", "get", study, "-o", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    [path] = (tmp_path / "cache" / study).rglob("*.dcm")
    return study, path


def _stored(orthanc, study: str) -> dict[str, pydicom.Dataset]:
    """The objects of `study` in Orthanc, by SOP Class UID, read back as DICOM files."""
    out = {}
    for inst in orthanc.study_instances(study):
        ds = pydicom.dcmread(io.BytesIO(orthanc.rest(f"/instances/{inst['ID']}/file")))
        out.setdefault(str(ds.SOPClassUID), []).append(ds)
    return out


def test_signed_report_stored_as_pdf_and_sr_in_the_source_study(cli_engine, fresh_study, orthanc, pacs_net,
                                                                 tmp_path: Path, capsys) -> None:
    study, source_path = fresh_study
    source = pydicom.dcmread(source_path)
    argv = ["report", str(source_path), "-o", str(tmp_path / "r.pdf"), "--indication", "Cough.",
            "--max-new-tokens", "8", "--sign", "Dr Ada Lovelace", "--confirm-sign", "--store"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "signed report written" in out
    assert out.count(": stored") == 2 and "Encapsulated PDF" in out and "Basic Text SR" in out

    objects = _stored(orthanc, study)
    [pdf] = objects[PDF_CLASS]
    [sr] = objects[SR_CLASS]
    assert len(objects[source.SOPClassUID]) == 1  # the image itself, not duplicated
    for ds in (pdf, sr):
        assert ds.StudyInstanceUID == study and ds.PatientID == source.PatientID
        assert ds.VerificationFlag == "VERIFIED"
    assert pdf.EncapsulatedDocument.startswith(b"%PDF-")
    assert sr.CompletionFlag == "COMPLETE" and sr.PreliminaryFlag == "FINAL"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Dr Ada Lovelace"
    assert sr.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    items = {(i.ValueType, i.ConceptNameCodeSequence[0].CodeMeaning): i for i in sr.ContentSequence}
    assert items[("TEXT", "Indications for Procedure")].TextValue == "Cough."
    assert "Signed by Dr Ada Lovelace" in items[("TEXT", "Report status")].TextValue
    assert str(items[("PNAME", "Person Observer Name")].PersonName) == "Dr Ada Lovelace"
    image = items[("IMAGE", "Key Images")].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == source.SOPInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == study
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    provenance = items[("CONTAINER", "AI draft provenance")]
    assert any(i.ConceptNameCodeSequence[0].CodeMeaning == "Checkpoint SHA-256" for i in provenance.ContentSequence)

    intent, store = [e for e in audit_events() if e["event"] == "pacs_store"]
    assert "outcomes" not in intent["details"] and intent["details"]["sop_uids"] == store["details"]["sop_uids"]
    assert store["details"]["node"] == orthanc.node and store["details"]["report_state"] == "signed"
    assert sorted(store["details"]["sop_uids"]) == sorted([pdf.SOPInstanceUID, sr.SOPInstanceUID])
    assert store["details"]["outcomes"] == ["stored", "stored"] and store["details"]["study_uid"] == study
    assert str(source.PatientID) not in audit_text() and str(source.PatientName) not in audit_text()
    assert set(pacs_net.attempts) <= {(HOST, orthanc.dicom_port), (HOST, orthanc.http_port)}


def test_draft_is_stored_only_when_asked_and_marked_as_draft(cli_engine, fresh_study, orthanc, tmp_path: Path,
                                                             capsys) -> None:
    study, source_path = fresh_study
    base = ["report", str(source_path), "-o", str(tmp_path / "d.pdf"), "--max-new-tokens", "8"]
    assert main([*base, "--store"]) == 2
    err = capsys.readouterr().err
    assert "sends only a signed report" in err and "--allow-draft" in err
    assert PDF_CLASS not in _stored(orthanc, study)  # nothing was sent

    assert main([*base, "--store", "--allow-draft"]) == 0
    objects = _stored(orthanc, study)
    [pdf], [sr] = objects[PDF_CLASS], objects[SR_CLASS]
    assert pdf.VerificationFlag == "UNVERIFIED" and "draft" in pdf.DocumentTitle.lower()
    assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "PARTIAL" and sr.PreliminaryFlag == "PRELIMINARY"
    assert "VerifyingObserverSequence" not in sr
    status = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Report status"]
    assert status[0].TextValue.startswith("AI draft")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--sign", "Dr X"], "--confirm-sign"),
        (["--confirm-sign"], "--confirm-sign goes with --sign"),
        (["--allow-draft"], "only applies with --store"),
        (["--store", "--sign", "Dr X", "--confirm-sign", "--deidentify"], "cannot be combined with --deidentify"),
        (["--store", "--allow-draft", "--pacs", "nonsense"], "expected AET@HOST:PORT"),
        (["--sr-out", "{tmp}/x_sr.dcm", "--deidentify"], "--sr-out cannot be de-identified"),
    ],
)
def test_sign_and_store_flags_checked_before_the_model_runs(pacs_settings, medapp_home, tmp_path, capsys, extra,
                                                            fragment) -> None:
    ct, _ = ct_mr_examples()
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    # no engine fixture: reaching the model would fail differently (no checkpoint configured)
    assert main(["report", str(ct), "-o", str(tmp_path / "x.pdf"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: ") and fragment in err and "\n" not in err


def test_report_from_a_png_cannot_be_stored(cli_engine, pacs_settings, pacs_net, golden_dir, tmp_path, capsys) -> None:
    png = golden_dir / "cases-v2" / "pub_224x224.png"
    argv = ["report", str(png), "-o", str(tmp_path / "p.pdf"), "--max-new-tokens", "4", "--store", "--allow-draft"]
    assert main(argv) == 2
    assert "so it needs a DICOM image" in capsys.readouterr().err
    from medapp import paths

    assert not paths.audit_path().exists()  # refused before the file was opened or the model ran


def test_sr_out_writes_the_sr(cli_engine, medapp_home, tmp_path, capsys) -> None:
    ct, _ = ct_mr_examples()
    out = tmp_path / "r_sr.dcm"
    assert main(["report", str(ct), "-o", str(tmp_path / "r.pdf"), "--sr-out", str(out), "--max-new-tokens", "4"]) == 0
    sr = pydicom.dcmread(out)
    assert sr.SOPClassUID == SR_CLASS and sr.VerificationFlag == "UNVERIFIED"
    assert sr.StudyInstanceUID == pydicom.dcmread(ct, stop_before_pixels=True).StudyInstanceUID
    formats = [e["details"].get("format") for e in audit_events() if e["event"] == "export"]
    assert formats == ["pdf", "sr"]
