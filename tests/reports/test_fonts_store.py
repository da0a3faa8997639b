"""Glyph fallback per run, escaping, identifiers from a DICOM header, header-crash repair."""

from __future__ import annotations

import json
from pathlib import Path

from reports import Identifiers, Report
from reports.captions import CaptionWriter, read_caption_rows
from reports.fonts import CJK, REGULAR, clean_text, font_runs, markup, missing_glyphs


def test_runs_switch_font_only_where_needed() -> None:
    assert font_runs("Dr 王小明, µ ± 5 °C") == [(REGULAR, "Dr "), (CJK, "王小明"), (REGULAR, ", µ ± 5 °C")]
    assert font_runs("한국 あ") == [(CJK, "한국"), (REGULAR, " "), (CJK, "あ")]


def test_markup_escapes_and_keeps_unknown_glyphs() -> None:
    assert markup("a < b & c > d\nx") == "a &lt; b &amp; c &gt; d<br/>x"
    assert markup("<font face='Courier'>王</font>") == (
        "&lt;font face='Courier'&gt;" + f'<font face="{CJK}">王</font>' + "&lt;/font&gt;"
    )
    assert missing_glyphs("ok 🙂") == {"🙂"}  # no packaged font has emoji: kept, drawn as a box, logged
    assert "🙂" in markup("ok 🙂")
    assert clean_text("a\x00b\x07c\r\nd\te") == "ab" + "c\nd    e"


def test_identifiers_from_dataset(ct_dataset) -> None:
    ids = Identifiers.from_dataset(ct_dataset)
    assert ids.patient_name == "CompressedSamples CT1" and ids.patient_id == str(ct_dataset.PatientID)
    assert ids.study_instance_uid == str(ct_dataset.StudyInstanceUID) and ids.study_date == "20040119"


def test_crash_during_header_write(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("\ufefffile,reg", encoding="utf-8")  # the process died while writing the header
    with CaptionWriter(csv_path) as w:
        w.add("a.png", "ok")
    assert [r.file for r in read_caption_rows(csv_path)] == ["a.png"]


def test_lone_surrogates_and_nul_never_crash_an_export(make_report, ct_dataset, tmp_path: Path) -> None:
    from pypdf import PdfReader

    from reports.dicom_pdf import write_report_dicom
    from reports.pdf import render_report_pdf

    bad = "lesion \ud800 size\x00 5 mm"
    report = make_report(findings=bad)
    report.set_section("exam", "CT \udcff chest")
    pdf = render_report_pdf(report, tmp_path / "r.pdf")
    assert "lesion size 5 mm" in " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    write_report_dicom(report, tmp_path / "r.dcm", ct_dataset)
    again = Report.from_dict(json.loads(json.dumps(report.to_dict(), ensure_ascii=False)))
    assert again.text("findings") == report.text("findings")
    with CaptionWriter(tmp_path / "c.csv", tmp_path / "c.jsonl") as w:
        w.add("a.png", bad)
    assert read_caption_rows(tmp_path / "c.csv")[0].caption == "lesion ? size 5 mm"
