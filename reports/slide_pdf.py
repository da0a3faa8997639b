"""Slide description PDF: the overview with numbered boxes, the description, the regions with their captions.

Plain data in (`SlideDocument`, PIL images, strings), so reports/ stays free of torch, OpenSlide and medapp; the
caller (medapp.slide_level) assembles it. Like the report PDF every page carries the translucent diagonal
"AI DRAFT — not reviewed" watermark under the text and the same line in the header: a slide description written by
a model is a draft until a pathologist has checked it against the regions it cites.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.atomic import atomic_write_bytes
from reports.errors import ReportError
from reports.fonts import clean_text, markup, register_fonts
from reports.watermark import WATERMARK, draw_watermark

__all__ = ["SlideDocument", "SlideRegionEntry", "render_slide_pdf", "slide_pdf_bytes", "WATERMARK"]



@dataclass(frozen=True)
class SlideRegionEntry:
    """One numbered region: its image (PIL or None), caption and where it is."""

    number: int
    image: Any
    caption: str
    box: tuple[int, int, int, int]  # level-0 (x, y, w, h)
    magnification: float
    score: float


@dataclass(frozen=True)
class SlideDocument:
    title: str
    overview: Any  # PIL image with the numbered boxes already drawn
    description: str
    regions: Sequence[SlideRegionEntry]
    provenance: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (label, value) rows
    notes: Sequence[str] = field(default_factory=tuple)  # e.g. removed citations, uncited sentences


def _styles() -> dict[str, Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    fonts = register_fonts()
    base = ParagraphStyle("sd", fontName=fonts.regular, fontSize=9.5, leading=12.5, splitLongWords=1)
    return {
        "base": base,
        "title": ParagraphStyle("sdt", base, fontName=fonts.bold, fontSize=14, leading=18),
        "h": ParagraphStyle("sdh", base, fontName=fonts.bold, fontSize=11, leading=14, spaceBefore=6, spaceAfter=3),
        "draft": ParagraphStyle("sdd", base, fontName=fonts.bold, textColor=colors.HexColor("#b71c1c")),
        "small": ParagraphStyle("sds", base, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#444444")),
        "caption": ParagraphStyle("sdc", base, fontSize=8.5, leading=10.5),
        "note": ParagraphStyle("sdn", base, fontSize=8.5, leading=11, textColor=colors.HexColor("#9b1c1c")),
    }


def _on_page(canvas: Any, doc: Any) -> None:
    from reportlab.lib import colors

    fonts = register_fonts()
    w, h = doc.pagesize
    draw_watermark(canvas, w, h, fonts.bold)
    canvas.saveState()
    canvas.setFont(fonts.bold, 8.5)
    canvas.setFillColor(colors.HexColor("#c62828"))
    canvas.drawRightString(w - doc.rightMargin, h - doc.topMargin + 14, WATERMARK)
    canvas.setFont(fonts.regular, 7)
    canvas.setFillColor(colors.HexColor("#555555"))
    canvas.drawRightString(w - doc.rightMargin, doc.bottomMargin - 14, f"Page {doc.page}")
    canvas.restoreState()


def _image(pil: Any, max_w: float, max_h: float) -> Any:
    from reports.flowables import PilImage

    w, h = pil.size
    scale = min(max_w / w, max_h / h)
    return PilImage(pil, w * scale, h * scale, h_align="CENTER")


def slide_pdf_bytes(document: SlideDocument) -> bytes:
    """The PDF as bytes (A4 portrait): overview, description, notes, region table, provenance."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    fonts = register_fonts()
    st = _styles()
    buf = io.BytesIO()
    margin = 16 * mm
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin + 4 * mm,
                            bottomMargin=margin + 2 * mm, title=clean_text(document.title), author="medapp",
                            subject="AI-generated slide description (draft, not reviewed)",
                            creator="medapp (reportlab)", initialFontName=fonts.regular)
    story: list[Any] = [
        Paragraph(markup(document.title, bold=True), st["title"]),
        Paragraph(markup(f"{WATERMARK}: written by an AI model from the numbered regions below; check every "
                         "sentence against the regions it cites."), st["draft"]),
        Spacer(1, 4),
    ]
    if document.overview is not None:
        story.append(_image(document.overview, doc.width, 85 * mm))
        story.append(Spacer(1, 4))
    story.append(Paragraph(markup("Description"), st["h"]))
    story.append(Paragraph(markup(document.description.strip() or "(no description)"), st["base"]))
    for note in document.notes:
        story.append(Paragraph(markup(note), st["note"]))
    story.append(Paragraph(markup(f"Regions ({len(document.regions)})"), st["h"]))
    # two regions per row, thumbnail beside its caption: eight regions fit under the overview on one page
    thumb = 26 * mm
    col_w = doc.width / 2
    text_w = col_w - thumb - 10

    def cell(region: SlideRegionEntry) -> Any:
        x, y, w, h = region.box
        head = f"[{region.number}]  {region.magnification:g}×  ·  score {region.score:.4g}"
        where = f"level-0 x {x}, y {y}, {w}×{h} px"
        text = [Paragraph(markup(head, bold=True), st["small"]), Paragraph(markup(where), st["small"]),
                Paragraph(markup(region.caption.strip() or "(empty caption)"), st["caption"])]
        picture = _image(region.image, thumb, thumb) if region.image is not None else Paragraph("no preview", st["small"])
        inner = Table([[picture, text]], colWidths=[thumb + 4, text_w])
        inner.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 1),
                                   ("RIGHTPADDING", (0, 0), (-1, -1), 2), ("TOPPADDING", (0, 0), (-1, -1), 1),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
        return inner

    cells = [cell(r) for r in document.regions]
    rows = [cells[i : i + 2] + [""] * (2 - len(cells[i : i + 2])) for i in range(0, len(cells), 2)]
    if rows:
        table = Table(rows, colWidths=[col_w, col_w], hAlign="LEFT")
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor("#b8c2cc")),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 4),
                                   ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
        story.append(table)
    if document.provenance:
        story.append(Paragraph(markup("Provenance"), st["h"]))
        prov = Table([[Paragraph(markup(k), st["small"]), Paragraph(markup(v), st["small"])]
                      for k, v in document.provenance], colWidths=[38 * mm, doc.width - 38 * mm], hAlign="LEFT")
        prov.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 1),
                                  ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
        story.append(prov)
    try:
        doc.build(story, onFirstPage=_on_page, onLaterPages=_on_page)
    except Exception as exc:  # LayoutError and friends
        raise ReportError(f"slide description: PDF layout failed: {exc}") from exc
    return buf.getvalue()


def render_slide_pdf(document: SlideDocument, path: str | os.PathLike[str]) -> Path:
    """Render and write atomically; returns the path."""
    return atomic_write_bytes(path, slide_pdf_bytes(document))
