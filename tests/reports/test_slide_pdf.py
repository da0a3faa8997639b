"""The slide description PDF from plain data (torch-free): watermark on every page, description, numbered regions
with their captions, notes and provenance; text that needs the fallback font or looks like markup prints literally."""

from __future__ import annotations

from PIL import Image

from reports.slide_pdf import WATERMARK, SlideDocument, SlideRegionEntry, render_slide_pdf


def _text(path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(str(path)).pages]


def test_slide_pdf_has_watermark_description_regions_and_provenance(tmp_path):
    overview = Image.new("RGB", (400, 300), (230, 160, 200))
    regions = [SlideRegionEntry(i, Image.new("RGB", (64, 64), (120, 60, 150)), f"Caption number {i} <b>&amp; 5 µm",
                                (i * 1000, 500, 672, 672), 20.0, 10.0 - i) for i in range(1, 9)]
    doc = SlideDocument("Slide description — case 1", overview, "Solid tumour nests [1][2]. Necrosis 腫瘍 [3].",
                        regions, provenance=[("Model SHA-256", "ab" * 32)],
                        notes=["Citations of regions that do not exist were removed: [9]"])
    path = render_slide_pdf(doc, tmp_path / "slide.pdf")
    pages = _text(path)
    squashed = ["".join(p.split()) for p in pages]
    assert all("AIDRAFT" in p for p in squashed)  # header line on every page
    whole = "".join(squashed)
    assert "Solidtumournests[1][2]" in whole
    assert "腫瘍" in whole
    for i in range(1, 9):
        assert f"Captionnumber{i}<b>&amp;5µm" in whole  # model text printed literally, never parsed as markup
    assert "[9]" in whole and "ab" * 32 in whole
    assert "".join(WATERMARK.split()) in whole
