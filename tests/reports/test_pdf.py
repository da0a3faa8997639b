"""The report PDF read back with a text extractor: sections, literal hostile text, watermark, fonts, metadata."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from pypdf import PdfReader

from reports import ReportError
from reports.pdf import WATERMARK, render_report_pdf, report_pdf_bytes


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _pages(data: bytes) -> list[str]:
    return [_squash(p.extract_text() or "") for p in PdfReader(BytesIO(data)).pages]


def _font_names(reader: PdfReader) -> dict[str, bool]:
    """BaseFont name → embedded (has FontFile2), over every page's font resources (incl. descendant fonts)."""
    found: dict[str, bool] = {}
    for page in reader.pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for ref in fonts.get_object().values():
            font = ref.get_object()
            descs = [font]
            if "/DescendantFonts" in font:
                descs = [d.get_object() for d in font["/DescendantFonts"]]
            for d in descs:
                fd = d.get("/FontDescriptor")
                embedded = fd is not None and "/FontFile2" in fd.get_object()
                name = str(font["/BaseFont"]).lstrip("/").split("+")[-1]
                found[name] = found.get(name, False) or embedded
    return found


def test_sections_and_literal_hostile_text(make_report) -> None:
    data = report_pdf_bytes(make_report())
    text = " ".join(_pages(data))
    for title in ("Clinical indication", "Findings", "Impression", "Recommendations", "Key images", "AI provenance"):
        assert title in text
    assert "A 4 mm nodule <5 mm in the right upper lobe; S&P unchanged; a < b > c." in text
    assert "<b>not bold</b> <font size=40>x</font> &amp; </para>" in text
    assert "37.5 °C, dose 12 µSv ± 2, café-au-lait, ≤ 3 cm" in text
    assert "王小明" in text
    assert "region <b>of interest</b> & marker" in text
    assert "W 400 / L 40 (ct-mediastinum)" in text
    assert "Sure, here is the report." in text  # preamble kept in Findings, not dropped


def test_fonts_are_embedded_truetype(make_report) -> None:
    fonts = _font_names(PdfReader(BytesIO(report_pdf_bytes(make_report()))))
    assert {"DejaVuSans", "DejaVuSans-Bold", "DroidSansFallback"} <= set(fonts)
    assert all(fonts.values()), f"not embedded: {[n for n, e in fonts.items() if not e]}"
    assert not any(n in fonts for n in ("Helvetica", "Times-Roman")), "a non-embedded standard font slipped in"


def test_draft_watermark_on_every_page_and_gone_once_signed(make_report) -> None:
    long_findings = "\n\n".join(
        f"Paragraph {i}: the lesion measures {i} mm <2 cm & shows no enhancement; 王 µ ±. " * 6 for i in range(60)
    )
    report = make_report(findings=long_findings)
    pages = _pages(report_pdf_bytes(report))
    assert len(pages) >= 4, "long findings must flow over several pages"
    for n, page in enumerate(pages, 1):
        # the header line and the diagonal watermark both carry the words
        assert page.count(WATERMARK) >= 2, f"page {n} lacks the watermark"
        assert f"Page {n} of {len(pages)}" in page
    # the last paragraph made it (nothing truncated by the page flow)
    assert "Paragraph 59: the lesion measures 59 mm <2 cm" in " ".join(pages)

    report.sign("Dr Ana Souza", datetime(2026, 11, 22, 4, 0, tzinfo=UTC))
    signed = _pages(report_pdf_bytes(report))
    assert len(signed) == len(pages)
    assert all(WATERMARK not in p and "not reviewed" not in p.lower() for p in signed)
    joined = " ".join(signed)
    assert "Electronically signed by Dr Ana Souza on 2026-11-22 04:00 UTC" in joined


def test_editing_a_signed_report_brings_the_watermark_back(make_report) -> None:
    report = make_report()
    report.sign("Dr Ana Souza")
    report.set_section("impression", "Amended: nodule 6 mm.")
    pages = _pages(report_pdf_bytes(report))
    assert all(WATERMARK in p for p in pages)
    assert "Amended: signed by Dr Ana Souza" in " ".join(pages)


def test_metadata_and_deidentified_export(make_report) -> None:
    report = make_report()
    identified = PdfReader(BytesIO(report_pdf_bytes(report)))
    meta = identified.metadata
    assert meta.title.startswith("CT chest without contrast")
    assert meta.author == "medapp 0.1.0"
    assert "Llama-3.1-8B-Dragonfly-Med-v2" in meta.subject
    assert "checkpoint_sha256=" + "ab" * 32 in meta["/Keywords"]
    assert "study_uid=1.2.826.0.1.3680043.8.498.77777" in meta["/Keywords"]
    assert "input_sha256=" + "cd" * 32 in meta["/Keywords"] and "prompt_sha256=" in meta["/Keywords"]
    text = " ".join(_squash(p.extract_text()) for p in identified.pages)
    assert "PID-778899" in text and "CT_small.dcm" in text

    deid_bytes = report_pdf_bytes(report, deidentified=True)
    deid = PdfReader(BytesIO(deid_bytes))
    everything = " ".join(_squash(p.extract_text()) for p in deid.pages) + " " + " ".join(
        str(v) for v in deid.metadata.values()
    )
    leaks = ("王小明", "Wang", "PID-778899", "19600102", "1960-01-02", "ACC-4455", "Müller",
             "1.2.826.0.1.3680043.8.498.77777", "CT_small.dcm")
    for phi in leaks:
        assert phi not in everything, f"{phi!r} leaked into the de-identified PDF"
        assert phi.encode("utf-8") not in deid_bytes
    assert "removed (de-identified export)" in everything
    assert "Small nodule <5 mm" in everything


def test_render_writes_atomically_and_bad_image_is_a_clear_error(make_report, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    render_report_pdf(make_report(), out)
    good = out.read_bytes()
    assert good.startswith(b"%PDF-")
    from reports import KeyImage

    broken = make_report(key_images=(KeyImage(caption="x", png=b"\x89PNG\r\n\x1a\n" + b"garbage"),))
    with pytest.raises(ReportError, match="key image 1: not a decodable image"):
        render_report_pdf(broken, out)
    assert out.read_bytes() == good, "a failed render replaced the good PDF"
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"], "temporary file left behind"
    missing = make_report(key_images=(KeyImage(caption="x", path=str(tmp_path / "gone.png")),))
    with pytest.raises(ReportError, match="gone.png"):
        report_pdf_bytes(missing)


def test_long_unbroken_tokens_and_empty_report(make_report) -> None:
    nasty = "A" * 5000 + " " + "王" * 3000 + " " + "<" * 2000
    pages = _pages(report_pdf_bytes(make_report(findings=nasty)))
    joined = "".join(p.replace(" ", "") for p in pages)
    assert "A" * 500 in joined and "王" * 200 in joined and "<" * 200 in joined
    from reports import Report

    assert _pages(report_pdf_bytes(Report()))[0].count(WATERMARK) >= 1


def test_renders_to_png_pages(make_report, tmp_path: Path) -> None:
    """pdftoppm must rasterise every page (catches PDFs that extract fine but are broken for viewers). The test
    command installs poppler-utils, so a missing pdftoppm is a broken test set-up: fail, never skip silently."""
    assert shutil.which("pdftoppm") is not None, "pdftoppm not found: install poppler-utils (run.sh does)"
    from PIL import Image

    pdf = render_report_pdf(make_report(), tmp_path / "r.pdf")
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pngs = sorted(tmp_path.glob("page*.png"))
    assert len(pngs) == len(PdfReader(pdf).pages)
    with Image.open(pngs[0]) as im:
        assert im.convert("L").getextrema()[0] < 100, "first page is blank"
