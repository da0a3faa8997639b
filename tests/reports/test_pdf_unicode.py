"""Text the PDF writer must survive on its own, whatever reached the Report (a report loaded from an old JSON file
never went through medapp's sanitiser): lone surrogates and control characters."""

from __future__ import annotations

import dataclasses
import re
from io import BytesIO

from pypdf import PdfReader

from reports.pdf import report_pdf_bytes


def _text(data: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() or "" for p in PdfReader(BytesIO(data)).pages))


def test_surrogates_in_a_report_do_not_break_the_pdf_or_the_hash(make_report) -> None:
    report = make_report(findings="Nodule \udcff in the \ud800 lobe\x00.")
    report.provenance = dataclasses.replace(report.provenance, prompt="Describe \udcff")
    assert len(report.content_sha256()) == 64
    text = _text(report_pdf_bytes(report))
    assert "Nodule in the lobe." in text
