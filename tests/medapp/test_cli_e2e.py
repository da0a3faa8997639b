"""The model subcommands in process (engine shared through `cli_engine`): ask, report to PDF and DICOM PDF."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
from pypdf import PdfReader

from medapp import paths
from medapp.audit import verify
from medapp.cli import main


def _pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_ask_streams_answer_to_stdout(cli_engine, ct_small: Path, medapp_home: Path, capsys) -> None:
    assert main(["ask", str(ct_small), "Is there a nodule?", "--max-new-tokens", "5", "--preset", "ct-lung"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.strip()
    events = [json.loads(x)["event"] for x in paths.audit_path().read_text().splitlines()]
    assert events == ["open", "ask"] and verify().ok


def test_ask_bad_inputs_exit_2_with_one_line(cli_engine, ct_small: Path, tmp_path: Path, medapp_home: Path, capsys) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"DICM but not really" * 10)
    cases = [
        ([str(tmp_path / "missing.png"), "q"], "missing.png"),
        ([str(junk), "q"], "junk.dcm"),
        ([str(ct_small), "q", "--frame", "3"], "frame 3"),
        ([str(ct_small), "q", "--region", "1,2,3"], "X,Y,W,H"),
        ([str(ct_small), "q", "--preset", "ct-nothing"], "unknown window preset"),
        ([str(ct_small), "   "], "question is empty"),
    ]
    for argv, fragment in cases:
        assert main(["ask", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("medapp: ") and fragment in err and "\n" not in err and "Traceback" not in err


def test_report_pdf_and_dicom(cli_engine, ct_small: Path, tmp_path: Path, medapp_home: Path) -> None:
    source = pydicom.dcmread(ct_small)
    pdf, dcm = tmp_path / "r.pdf", tmp_path / "r.dcm"
    argv = ["report", str(ct_small), "-o", str(pdf), "--dicom-out", str(dcm), "--indication", "Cough.",
            "--max-new-tokens", "8"]
    assert main(argv) == 0
    text = _pdf_text(pdf)
    assert "AI DRAFT" in text and "Cough." in text and str(source.PatientID) in text
    ds = pydicom.dcmread(dcm)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and ds.Modality == "DOC"
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
    assert ds.EncapsulatedDocument.startswith(b"%PDF-") and ds.VerificationFlag == "UNVERIFIED"
    events = [json.loads(x)["event"] for x in paths.audit_path().read_text().splitlines()]
    assert events == ["open", "report", "export", "export"]


def test_report_deidentified(cli_engine, ct_small: Path, tmp_path: Path, medapp_home: Path) -> None:
    source = pydicom.dcmread(ct_small)
    pdf, dcm = tmp_path / "d.pdf", tmp_path / "d.dcm"
    argv = ["report", str(ct_small), "-o", str(pdf), "--dicom-out", str(dcm), "--deidentify", "--max-new-tokens", "8"]
    assert main(argv) == 0
    assert str(source.PatientID) not in _pdf_text(pdf)
    ds = pydicom.dcmread(dcm)
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.get("PatientName", "")) != str(source.PatientName)
    assert ds.get("PatientID", "") != source.PatientID and ds.StudyInstanceUID != source.StudyInstanceUID
    assert str(source.PatientID).encode() not in dcm.read_bytes()


def test_report_missing_output_folder(cli_engine, ct_small: Path, tmp_path: Path, medapp_home: Path, capsys) -> None:
    assert main(["report", str(ct_small), "-o", str(tmp_path / "no" / "r.pdf")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ask_about_a_slide_region_and_a_png(cli_engine, tiled_tiff_slide: Path, golden_dir: Path, medapp_home: Path,
                                            capsys) -> None:
    assert main(["ask", str(tiled_tiff_slide), "What tissue?", "--region", "512,512,1024,1024",
                 "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["ask", str(tiled_tiff_slide), "q", "--region", "5000,5000,10,10"]) == 2  # outside the slide
    assert "outside" in capsys.readouterr().err
    assert main(["ask", str(golden_dir / "cases-v2" / "pub_800x600.png"), "Describe.", "--max-new-tokens", "3"]) == 0
    entries = [json.loads(x) for x in paths.audit_path().read_text().splitlines()]
    assert [e["details"].get("kind") for e in entries if e["event"] == "open"] == ["slide", "image"]
