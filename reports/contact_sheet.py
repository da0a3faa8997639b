"""Contact sheet: a paginated PDF grid of thumbnails with their captions, to skim a caption batch.

reports/ cannot open DICOM or slides (that is dicom_io's job), so thumbnails come from the caller: a PIL image, PNG/
JPEG bytes or a path Pillow can open, either on a :class:`ContactItem` or via ``thumbnails={(file, region): image}``
for :class:`~reports.captions.CaptionRow` rows. A row without a usable thumbnail gets a grey "no preview" box; a
failed row shows its error in red (in a de-identified sheet with file names and anything path-like removed from
the error text, as from the label: clinical file and folder names often carry patient names). Captions that do not fit their cell are shortened with "…" (the CSV keeps the full
text, and the page footer says so), because a table cell in reportlab cannot split across pages.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.atomic import atomic_write_bytes
from reports.captions import CaptionRow
from reports.errors import ReportError
from reports.fonts import clean_text, markup, register_fonts

__all__ = ["ContactItem", "render_contact_sheet", "contact_sheet_bytes"]

_THUMB_PX = 384
_PATH_LIKE = re.compile(r"\S*[/\\]\S*")  # any token with a path separator: /data/Doe^John/x.dcm, C:\\scans\\a.dcm


def _scrub(text: str, names: Iterable[str]) -> str:
    """`text` without the given file / folder names (whole and as path parts of 3+ characters, so a short part
    like "CT" does not eat ordinary words) and without path-like tokens."""
    parts: set[str] = set()
    for name in names:
        if name:
            parts.add(name)
            path = Path(name)
            parts.update(p for p in (*path.parts, path.stem) if len(p) >= 3)
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, "<file>")
    return _PATH_LIKE.sub("<path>", text)


@dataclass(frozen=True)
class ContactItem:
    """One cell: an image (PIL image, encoded bytes, a path, or None), a label and the caption or error."""

    image: Any
    label: str
    caption: str = ""
    error: str = ""


def _as_items(
    rows: Iterable[CaptionRow | ContactItem], thumbnails: Mapping[Any, Any] | None, deidentified: bool
) -> list[ContactItem]:
    items = []
    for n, row in enumerate(rows, 1):
        if isinstance(row, ContactItem):
            item = row
        elif isinstance(row, CaptionRow):
            image = None
            if thumbnails is not None:
                image = thumbnails.get(row.key, thumbnails.get(row.file))
            if image is None and Path(row.file).suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
                image = row.file
            label = Path(row.file).name + (f" [{row.region}]" if row.region else "")
            item = ContactItem(image, label, row.caption, row.error)
        else:
            raise ReportError(f"contact sheet: item {n} is a {type(row).__name__}, not a CaptionRow or ContactItem")
        if deidentified:  # file names often carry patient names or accession numbers, also inside error texts
            names = [item.label, row.file] if isinstance(row, CaptionRow) else [item.label]
            item = ContactItem(item.image, f"#{n}", item.caption, _scrub(item.error, names))
        items.append(item)
    return items


def _thumbnail(image: Any) -> Any | None:
    """A small RGB PIL image, or None when the source cannot be read (drawn as "no preview", never a crash)."""
    from PIL import Image

    try:
        if image is None:
            return None
        if isinstance(image, Image.Image):
            pil = image.copy()
        elif isinstance(image, (bytes, bytearray)):
            pil = Image.open(io.BytesIO(bytes(image)))
        else:
            pil = Image.open(os.fspath(image))
        pil.draft("RGB", (_THUMB_PX, _THUMB_PX))  # JPEG: decode at reduced size
        pil = pil.convert("L" if pil.mode == "L" else "RGB")
        pil.thumbnail((_THUMB_PX, _THUMB_PX))
        return pil
    except Exception:  # noqa: BLE001 — unreadable thumbnail: show a placeholder instead of failing the whole sheet
        return None


def _fit_text(markup_of: Any, text: str, style: Any, width: float, height: float) -> Any:
    """The longest prefix of *text* (cut at a word where possible, with "…") whose Paragraph fits width×height."""
    from reportlab.platypus import Paragraph

    from reports.bidi import has_rtl
    from reports.flowables import BidiParagraph

    def para(t: str) -> Any:
        # a caption or file name in Arabic or Hebrew is shaped and reordered line by line (see reports.bidi)
        return BidiParagraph(t, style) if has_rtl(t) else Paragraph(markup_of(t), style)

    full = para(text)
    if full.wrap(width, height)[1] <= height:
        return full
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if para(text[:mid].rstrip() + "…").wrap(width, height)[1] <= height:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if space > lo * 0.7:
        cut = cut[:space]
    return para(cut.rstrip() + "…")


def contact_sheet_bytes(
    rows: Iterable[CaptionRow | ContactItem],
    *,
    title: str = "Batch captions",
    thumbnails: Mapping[Any, Any] | None = None,
    columns: int = 3,
    rows_per_page: int = 4,
    deidentified: bool = False,
    model: str = "",
) -> bytes:
    """The contact sheet as PDF bytes (A4 portrait, *columns* × *rows_per_page* cells per page)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from reports.flowables import PilImage

    if columns < 1 or rows_per_page < 1:
        raise ReportError("contact sheet: columns and rows_per_page must be at least 1")
    fonts = register_fonts()
    items = _as_items(rows, thumbnails, deidentified)
    base = ParagraphStyle("cs", fontName=fonts.regular, bulletFontName=fonts.regular, fontSize=7.5, leading=9.5,
                          splitLongWords=1)
    label_style = ParagraphStyle("csl", base, fontSize=7, leading=8.5, textColor=colors.HexColor("#555555"))
    error_style = ParagraphStyle("cse", base, textColor=colors.HexColor("#b71c1c"))
    title_style = ParagraphStyle("cst", base, fontName=fonts.bold, fontSize=13, leading=16)
    note_style = ParagraphStyle("csn", base, textColor=colors.HexColor("#9b1c1c"), fontName=fonts.bold)

    margin = 14 * mm
    page_w, page_h = A4
    head_h = 15 * mm
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
                            bottomMargin=margin + 4 * mm, title=clean_text(title), author="medapp",
                            subject="AI-generated captions (not reviewed)", creator="medapp (reportlab)",
                            initialFontName=fonts.regular)
    cell_w = doc.width / columns
    cell_h = (doc.height - 12 - head_h - 2) / rows_per_page  # the Frame pads 6 pt top and bottom
    pad = 3
    inner_w = cell_w - 2 * pad
    thumb = min(inner_w, cell_h * 0.58)
    label_h = 2 * label_style.leading
    text_h = cell_h - 2 * pad - thumb - label_h - 4

    def cell(item: ContactItem) -> list[Any]:
        parts: list[Any] = []
        pil = _thumbnail(item.image)
        if pil is not None:
            w, h = pil.size
            scale = min(thumb / w, thumb / h)
            img = PilImage(pil, w * scale, h * scale, h_align="CENTER")
            box = Table([[img]], colWidths=[inner_w], rowHeights=[thumb])
            box.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                                     ("BACKGROUND", (0, 0), (-1, -1), colors.black),
                                     ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                                     ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 0)]))
        else:
            centred = ParagraphStyle("csc", label_style, alignment=1)
            box = Table([[Paragraph(markup("no preview"), centred)]], colWidths=[inner_w], rowHeights=[thumb])
            box.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                                     ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#dddddd"))]))
        parts.append(box)
        parts.append(Spacer(1, 2))
        label = _fit_text(markup, item.label, label_style, inner_w, label_h)
        room = text_h + label_h - label.wrap(inner_w, label_h)[1]  # a one-line label leaves its second line to text
        parts.append(label)
        if item.error:
            parts.append(_fit_text(markup, "error: " + item.error, error_style, inner_w, room))
        else:
            parts.append(_fit_text(markup, item.caption.strip() or "(empty caption)", base, inner_w, room))
        return parts

    per_page = columns * rows_per_page
    story: list[Any] = []
    pages = [items[i : i + per_page] for i in range(0, len(items), per_page)] or [[]]
    for p, chunk in enumerate(pages):
        if p:
            story.append(PageBreak())
        # one line each, so the grid below always fits the page and the page count stays exact
        story.append(_fit_text(lambda t: markup(t, bold=True), title, title_style, doc.width, title_style.leading))
        note = "AI-generated captions — not reviewed by a clinician" + (f" · model {model}" if model else "")
        story.append(_fit_text(markup, note, note_style, doc.width, note_style.leading))
        story.append(Spacer(1, head_h - title_style.leading - note_style.leading))
        grid: list[list[Any]] = []
        for r in range(0, len(chunk), columns):
            row: list[Any] = [cell(it) for it in chunk[r : r + columns]]
            row += [""] * (columns - len(row))
            grid.append(row)
        if not grid:
            story.append(Paragraph(markup("No rows."), base))
            continue
        table = Table(grid, colWidths=[cell_w] * columns, rowHeights=[cell_h] * len(grid), hAlign="LEFT")
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("FONTNAME", (0, 0), (-1, -1), fonts.regular),
                                   ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b8c2cc")),
                                   ("LEFTPADDING", (0, 0), (-1, -1), pad), ("RIGHTPADDING", (0, 0), (-1, -1), pad),
                                   ("TOPPADDING", (0, 0), (-1, -1), pad), ("BOTTOMPADDING", (0, 0), (-1, -1), pad)]))
        story.append(table)

    total = len(pages)

    def footer(canvas: Any, d: Any) -> None:
        canvas.saveState()
        canvas.setFont(fonts.regular, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(margin, margin - 2, f"{len(items)} item(s); long captions are shortened here, the CSV/"
                          "JSONL table has the full text")
        canvas.drawRightString(page_w - margin, margin - 2, f"Page {d.page} of {total}")
        canvas.restoreState()

    try:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    except Exception as exc:  # LayoutError and friends
        raise ReportError(f"contact sheet: PDF layout failed: {exc}") from exc
    return buf.getvalue()


def render_contact_sheet(
    rows: Iterable[CaptionRow | ContactItem], path: str | os.PathLike[str], **kwargs: Any
) -> Path:
    """Render (see :func:`contact_sheet_bytes` for options) and write atomically; returns the path."""
    return atomic_write_bytes(path, contact_sheet_bytes(rows, **kwargs))
