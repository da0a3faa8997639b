"""Render a :class:`~reports.model.Report` as a PDF (reportlab platypus).

Layout, top to bottom: letterhead and (unless de-identified) the patient line on every page; the exam title; a
state banner; identifiers; the sections; key images with caption and window; the signature block; the full
provenance. Every page carries a footer with short provenance and "Page X of Y", and, until a named clinician has
signed, a diagonal "AI DRAFT — not reviewed" watermark (under the text, translucent, so it never hides findings)
plus the same words in the header, where text extractors and screen readers find them reliably.

Every string that came from the model, the user or the DICOM header goes through :func:`reports.fonts.markup`
(escaped, with glyph fallback); nothing is pasted into Paragraph markup raw.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.atomic import atomic_write_bytes
from reports.errors import ReportError
from reports.fonts import clean_text, markup, register_fonts
from reports.model import Report
from reports.watermark import WATERMARK, draw_watermark

__all__ = ["WATERMARK", "PdfOptions", "report_pdf_bytes", "render_report_pdf", "pdf_metadata"]

_MAX_IMAGE_PX = 2048


@dataclass(frozen=True)
class PdfOptions:
    """Site-configurable parts of the document."""

    letterhead: str = "medapp — AI-assisted imaging report"
    letterhead_note: str = "Investigational software: every AI draft must be reviewed and signed by a clinician."
    app_name: str = "medapp"


def _fmt_time(when: datetime | None) -> str:
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_da(value: str) -> str:
    """DICOM DA ``YYYYMMDD`` → ``YYYY-MM-DD``; anything else is shown as given."""
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:]}" if len(v) == 8 and v.isdigit() else value


def _short(sha: str, n: int = 12) -> str:
    return sha[:n] + "…" if len(sha) > n else sha


def pdf_metadata(report: Report, *, deidentified: bool, options: PdfOptions) -> dict[str, str]:
    """Document-information fields: provenance (model, checkpoint, app version, time, prompt and input hashes).

    Never the patient's name, ID, birth date or accession, nor input file names; the study UID only for an
    identified export (it lets a PACS or a reader match the PDF to its study)."""
    prov = report.provenance
    state = "signed" if report.is_signed else "AI draft, not reviewed"
    keywords = [
        f"model={prov.model_id}",
        f"checkpoint_sha256={prov.checkpoint_sha256}",
        f"app_version={prov.app_version}",
        f"generated={prov.created.isoformat() if prov.created else ''}",
        f"template={report.template}",
        f"report_id={report.report_id}",
        f"state={'signed' if report.is_signed else 'draft'}",
        # the prompt as a hash: verifiable against the body's provenance block, and never free text in metadata
        f"prompt_sha256={hashlib.sha256(prov.prompt.encode('utf-8', 'surrogatepass')).hexdigest() if prov.prompt else ''}",
        "input_sha256=" + ",".join(sha for _, sha in prov.input_hashes),
        f"deidentified={'yes' if deidentified else 'no'}",
        f"audit_anchor={prov.audit_anchor}",
    ]
    if not deidentified and report.identifiers.study_instance_uid:
        keywords.append(f"study_uid={report.identifiers.study_instance_uid}")
    version = f" {prov.app_version}" if prov.app_version else ""
    fields = {
        "title": f"{report.title} ({state})",
        "author": f"{options.app_name}{version}",
        "subject": f"{report.modality or 'Imaging'} report, {state}; AI model {prov.model_id or 'unknown'}",
        "keywords": "; ".join(keywords),
        "creator": f"{options.app_name}{version} (reportlab)",
    }
    return {k: clean_text(v).replace("\n", " ") for k, v in fields.items()}


def _styles() -> dict[str, Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    fonts = register_fonts()
    base = ParagraphStyle(
        "base", fontName=fonts.regular, bulletFontName=fonts.regular, fontSize=10, leading=13.5, splitLongWords=1
    )
    return {
        "body": base,
        "title": ParagraphStyle("title", base, fontName=fonts.bold, fontSize=16, leading=20, spaceAfter=4),
        "h": ParagraphStyle("h", base, fontName=fonts.bold, fontSize=11.5, leading=15, spaceBefore=9, spaceAfter=3,
                            textColor=colors.HexColor("#1f3b5a")),
        "bullet": ParagraphStyle("bullet", base, leftIndent=14, bulletIndent=3, spaceAfter=1),
        "para": ParagraphStyle("para", base, spaceAfter=5),
        "small": ParagraphStyle("small", base, fontSize=8, leading=10.5),
        "label": ParagraphStyle("label", base, fontSize=8.5, leading=11, textColor=colors.HexColor("#555555")),
        "cell": ParagraphStyle("cell", base, fontSize=9.5, leading=12),
        "banner_draft": ParagraphStyle("bd", base, fontName=fonts.bold, fontSize=10, leading=13,
                                       textColor=colors.HexColor("#9b1c1c")),
        "banner_signed": ParagraphStyle("bs", base, fontName=fonts.bold, fontSize=10, leading=13,
                                        textColor=colors.HexColor("#1d5e2c")),
        "caption": ParagraphStyle("caption", base, fontSize=9, leading=12),
    }


def _para(text: str, style: Any, *, bold: bool = False, bulletText: str | None = None) -> Any:  # noqa: N803
    """A paragraph of literal text: `Paragraph(markup(text))`, or a `BidiParagraph` when the text holds Arabic or
    Hebrew (shaped, broken into lines in logical order, each line reordered; see `reports.bidi`)."""
    from reportlab.platypus import Paragraph

    from reports.bidi import has_rtl
    from reports.flowables import BidiParagraph

    if has_rtl(text):
        return BidiParagraph(text, style, bold=bold, bulletText=bulletText)
    return Paragraph(markup(text, bold=bold), style, bulletText=bulletText)


def _text_flowables(text: str, styles: dict[str, Any]) -> list[Any]:
    """A section's text → paragraphs; ``- `` lines become bullets; other line breaks are kept."""

    out: list[Any] = []
    for block in clean_text(text).strip().split("\n\n"):
        buf: list[str] = []

        def flush(buf: list[str] = buf) -> None:  # this block's buffer, bound now
            if buf:
                out.append(_para("\n".join(buf), styles["para"]))
                buf.clear()

        for ln in block.split("\n"):
            stripped = ln.strip()
            if stripped.startswith(("- ", "• ", "* ")):
                flush()
                out.append(_para(stripped[2:].strip(), styles["bullet"], bulletText="•"))
            elif stripped:
                buf.append(stripped)
        flush()
    return out


def _identifier_rows(report: Report, deidentified: bool) -> list[tuple[str, str]]:
    ids = report.identifiers
    if deidentified:
        rows = [("Identifiers", "removed (de-identified export)"), ("Modality", report.modality)]
        return [(k, v) for k, v in rows if v]
    rows = [
        ("Patient", ids.patient_name),
        ("Patient ID", ids.patient_id),
        ("Birth date", _fmt_da(ids.birth_date)),
        ("Sex", ids.sex),
        ("Accession", ids.accession_number),
        ("Study date", _fmt_da(ids.study_date)),
        ("Study", ids.study_description),
        ("Modality", report.modality),
        ("Referring", ids.referring_physician),
        ("Institution", ids.institution),
        ("Study UID", ids.study_instance_uid),
    ]
    return [(k, v) for k, v in rows if v]


def _clip(value: str, limit: int = 300) -> str:
    """Identifier cells live in a table whose rows cannot split across pages: cap absurdly long values."""
    value = clean_text(value).replace("\n", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _kv_table(rows: Sequence[tuple[str, str]], styles: dict[str, Any], width: float, columns: int = 2) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    cells = [[Paragraph(markup(k), styles["label"]), _para(_clip(v), styles["cell"])] for k, v in rows]
    per_row: list[list[Any]] = []
    for i in range(0, len(cells), columns):
        row: list[Any] = []
        for pair in cells[i : i + columns]:
            row.extend(pair)
        row.extend([""] * (2 * columns - len(row)))
        per_row.append(row)
    label_w = 24 * 2.8346
    value_w = width / columns - label_w
    table = Table(per_row, colWidths=[label_w, value_w] * columns, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("FONTNAME", (0, 0), (-1, -1), register_fonts().regular),
                ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#b8c2cc")),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f5f7f9")),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _image_flowable(data: bytes, where: str, max_w: float, max_h: float) -> Any:
    """Decode the key image with Pillow first so a broken file is a clear error, not a reportlab traceback."""
    from PIL import Image as PILImage

    from reports.flowables import PilImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            im.load()
            pil = im.copy() if im.mode in ("RGB", "L") else im.convert("RGB")
    except Exception as exc:  # Pillow raises many types for broken data
        raise ReportError(f"{where}: not a decodable image ({exc.__class__.__name__})") from exc
    if max(pil.size) > _MAX_IMAGE_PX:
        pil.thumbnail((_MAX_IMAGE_PX, _MAX_IMAGE_PX))
    w, h = pil.size
    scale = min(max_w / w, max_h / h)
    return PilImage(pil, w * scale, h * scale)


def _key_image_flowables(report: Report, styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.lib.units import mm
    from reportlab.platypus import CondPageBreak, KeepTogether, Paragraph, Spacer

    out: list[Any] = []
    if not report.key_images:
        return out
    out.append(CondPageBreak(60 * mm))  # the heading and (most of) the first image start on the same page
    out.append(Paragraph(markup("Key images"), styles["h"]))
    for i, k in enumerate(report.key_images, 1):
        where = f"key image {i}" + (f" ({k.path})" if k.path else "")
        img = _image_flowable(k.image_bytes(), where, min(width, 120 * mm), 85 * mm)
        meta = [f"Image {i}"]
        if k.window_text():
            meta.append(f"window {k.window_text()}")
        if k.frame is not None:
            meta.append(f"frame {k.frame + 1}")
        if k.region is not None:
            x, y, w, h = k.region
            meta.append(f"region x {x}, y {y}, {w}×{h} px")
        parts = [img, Spacer(1, 2), Paragraph(markup(" · ".join(meta)), styles["label"])]
        if k.caption.strip():
            parts.append(_para(k.caption.strip(), styles["caption"]))
        parts.append(Spacer(1, 6))
        out.append(KeepTogether(parts))
    return out


def _signature_flowables(report: Report, styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import KeepTogether, Paragraph, Spacer

    parts: list[Any] = [Paragraph(markup("Signature"), styles["h"])]
    if report.is_signed:
        sig = report.signature
        assert sig is not None
        parts.append(
            Paragraph(
                markup(f"Electronically signed by {sig.name} on {_fmt_time(sig.signed_at)}.")
                + "<br/>"
                + markup(f"Content SHA-256 {sig.content_sha256}"),
                styles["body"],
            )
        )
    else:
        parts.append(Paragraph(markup("NOT SIGNED — this AI draft has not been reviewed by a clinician."),
                               styles["banner_draft"]))
        parts.append(Spacer(1, 14))
        parts.append(Paragraph(markup("Reviewing clinician") + " " + "_" * 34 + "    " + markup("Date") + " "
                               + "_" * 16, styles["body"]))
    for h in report.history:
        parts.append(
            Paragraph(
                markup(
                    f"Amended: signed by {h.signed_by} on {_fmt_time(h.signed_at)}, "
                    f"reopened {_fmt_time(h.reopened_at)} ({h.reason})."
                ),
                styles["small"],
            )
        )
    parts.append(Spacer(1, 4))
    return [KeepTogether(parts)]


def _provenance_flowables(report: Report, styles: dict[str, Any], deidentified: bool) -> list[Any]:
    from reportlab.platypus import Paragraph

    from reports.bidi import has_rtl

    prov = report.provenance
    lines = [
        ("Model", prov.model_id or "unknown"),
        ("Checkpoint SHA-256", prov.checkpoint_sha256 or "unknown"),
        ("Application", prov.app_version or "unknown"),
        ("Drafted", _fmt_time(prov.created) or "unknown"),
        ("Template", report.template or "none"),
        ("Report ID", report.report_id),
    ]
    if prov.audit_anchor:  # entry:HMAC of the draft's audit entry (`medapp audit verify --expect`)
        lines.append(("Audit anchor", prov.audit_anchor))
    for n, (label, sha) in enumerate(prov.input_hashes, 1):
        # Input labels are often file names, which can carry patient names: numbered only when de-identified.
        lines.append((f"Input {n}" if deidentified else f"Input {label}", f"SHA-256 {sha}"))
    if prov.prompt:
        lines.append(("Prompt", prov.prompt))
    from reportlab.platypus import CondPageBreak

    out: list[Any] = [CondPageBreak(6 * styles["h"].leading), Paragraph(markup("AI provenance"), styles["h"])]
    for label, value in lines:
        if has_rtl(value):  # e.g. an Arabic indication inside the prompt: laid out by BidiParagraph (no bold label)
            out.append(_para(f"{label}: {value}", styles["small"]))
        else:
            out.append(Paragraph(f"<b>{markup(label, bold=True)}</b>: {markup(value)}", styles["small"]))
    return out


def _section_flowables(report: Report, styles: dict[str, Any]) -> list[Any]:
    """Headings and text of the sections. A heading never ends a page (CondPageBreak), but a long section flows on
    from where it starts: keeping heading and text together would push a long Findings block whole onto the next
    page and leave the first page nearly empty."""
    from reportlab.platypus import CondPageBreak

    out: list[Any] = []
    for s in report.sections:
        text = s.text.strip()
        if s.key == "exam" and text.splitlines()[:1] == [report.title] and len(text.splitlines()) == 1:
            continue  # already the document title
        if not text:
            if s.key not in ("findings", "impression"):
                continue
            text = "(none)"
        out.append(CondPageBreak(4 * styles["h"].leading))
        out.append(_para(s.title, styles["h"]))
        out.extend(_text_flowables(text, styles))
    return out


def _page_decorator(
    report: Report, options: PdfOptions, deidentified: bool, draft: bool
) -> tuple[Callable[[Any, Any], None], type]:
    """Per-page drawing: watermark and header before the flowables (so under them), footer with page count after."""
    from reportlab.lib import colors
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen.canvas import Canvas

    fonts = register_fonts()
    ids = report.identifiers
    patient = "" if deidentified else " · ".join(
        v for v in (ids.patient_name, ids.patient_id, _fmt_da(ids.birth_date)) if v
    )
    prov = report.provenance
    footer_left = " · ".join(
        p
        for p in (
            f"AI model {prov.model_id}" if prov.model_id else "",
            f"ckpt {_short(prov.checkpoint_sha256)}" if prov.checkpoint_sha256 else "",
            f"{options.app_name} {prov.app_version}".strip(),
            f"drafted {_fmt_time(prov.created)}" if prov.created else "",
        )
        if p
    )

    def draw_runs(canvas: Any, x: float, y: float, text: str, font: str, size: float, right: bool = False) -> None:
        from reports.bidi import visual
        from reports.fonts import font_runs

        # one header/footer line: shaped and put in display order (a no-op without Arabic or Hebrew)
        runs = font_runs(visual(clean_text(text).replace("\n", " ")), font)
        total = sum(stringWidth(r, f, size) for f, r in runs)
        if right:
            x -= total
        for f, r in runs:
            canvas.setFont(f, size)
            canvas.drawString(x, y, r)
            x += stringWidth(r, f, size)

    def on_page(canvas: Any, doc: Any) -> None:
        w, h = doc.pagesize
        left, right = doc.leftMargin + _PAD, w - doc.rightMargin - _PAD
        if draft:
            draw_watermark(canvas, w, h, fonts.bold)
        canvas.saveState()
        top = h - doc.topMargin + 22
        canvas.setFillColor(colors.HexColor("#1f3b5a"))
        head = _fit(options.letterhead, fonts.bold, 10.5, (right - left) * 0.55)
        draw_runs(canvas, left, top, head, fonts.bold, 10.5)
        room = right - left - stringWidth(head, fonts.bold, 10.5) - 24
        canvas.setFillColor(colors.HexColor("#555555"))
        draw_runs(canvas, left, top - 11, _fit(options.letterhead_note, fonts.regular, 7.5, (right - left) * 0.7),
                  fonts.regular, 7.5)
        if patient:
            canvas.setFillColor(colors.black)
            draw_runs(canvas, right, top, _fit(patient, fonts.regular, 8.5, room), fonts.regular, 8.5, right=True)
        elif deidentified:
            draw_runs(canvas, right, top, "De-identified", fonts.regular, 8.5, right=True)
        if draft:
            canvas.setFillColor(colors.HexColor("#c62828"))
            draw_runs(canvas, right, top - 11, WATERMARK, fonts.bold, 8.5, right=True)
        canvas.setStrokeColor(colors.HexColor("#b8c2cc"))
        canvas.setLineWidth(0.6)
        canvas.line(left, top - 16, right, top - 16)
        canvas.line(left, _FOOTER_Y + 10, right, _FOOTER_Y + 10)
        canvas.setFillColor(colors.HexColor("#555555"))
        draw_runs(canvas, left, _FOOTER_Y, _fit(footer_left, fonts.regular, 7, right - left - 60), fonts.regular, 7)
        canvas.restoreState()

    class NumberedCanvas(Canvas):
        """Defers each page until the end so the footer can say "Page X of Y"."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # reportlab otherwise starts every page with a (non-embedded) Helvetica font resource.
            if not kwargs.get("initialFontName"):
                kwargs["initialFontName"] = fonts.regular
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab API)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                w, _ = self._pagesize
                self.saveState()
                self.setFillColor(colors.HexColor("#555555"))
                label = f"Page {self._pageNumber} of {total}"
                self.setFont(fonts.regular, 7.5)
                self.drawRightString(w - _MARGIN - _PAD, _FOOTER_Y, label)
                self.restoreState()
                super().showPage()
            super().save()

    return on_page, NumberedCanvas


_MARGIN = 18 * 2.8346  # 18 mm
_PAD = 6  # platypus Frame padding: header and footer line up with the text column
_FOOTER_Y = _MARGIN - 4


def _fit(text: str, font: str, size: float, width: float) -> str:
    """Shorten one header/footer line with an ellipsis so it never runs into its neighbour."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from reports.fonts import font_runs

    text = clean_text(text).replace("\n", " ")

    def w(t: str) -> float:
        return sum(stringWidth(r, f, size) for f, r in font_runs(t, font))

    if w(text) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if w(text[:mid] + "…") <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…"


def report_pdf_bytes(report: Report, *, deidentified: bool = False, options: PdfOptions | None = None) -> bytes:
    """The report as PDF bytes. ``deidentified=True`` leaves out every patient identifier (header, table, metadata,
    input file names) — use it for anything that leaves the institution or goes into a de-identified DICOM."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if not isinstance(report, Report):
        raise ReportError(f"expected a Report, got {type(report).__name__}")
    options = options or PdfOptions()
    styles = _styles()
    draft = not report.is_signed
    meta = pdf_metadata(report, deidentified=deidentified, options=options)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN + 14,
        bottomMargin=_MARGIN + 6,
        **meta,
    )
    width = doc.width
    story: list[Any] = [_para(report.title, styles["title"], bold=True)]
    if draft:
        banner = Paragraph(
            markup(
                f"{WATERMARK.upper()}. Drafted by the AI model {report.provenance.model_id or '(unknown)'}; "
                "it may contain errors and must be reviewed, corrected and signed by a clinician before any use."
            ),
            styles["banner_draft"],
        )
        colour = "#fdecea"
    else:
        sig = report.signature
        assert sig is not None
        banner = Paragraph(
            markup(f"Reviewed and signed by {sig.name} on {_fmt_time(sig.signed_at)}. Drafted with AI assistance."),
            styles["banner_signed"],
        )
        colour = "#e8f5e9"
    from reportlab.lib import colors

    box = Table([[banner]], colWidths=[width])
    box.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(colour)),
                             ("FONTNAME", (0, 0), (-1, -1), register_fonts().regular),
                             ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    story += [box, Spacer(1, 6)]
    rows = _identifier_rows(report, deidentified)
    if rows:
        story += [_kv_table(rows, styles, width), Spacer(1, 4)]
    story += _section_flowables(report, styles)
    story += _key_image_flowables(report, styles, width)
    story += _signature_flowables(report, styles, width)
    story += _provenance_flowables(report, styles, deidentified)
    on_page, canvas_cls = _page_decorator(report, options, deidentified, draft)
    try:
        doc.build(story, onFirstPage=on_page, onLaterPages=on_page, canvasmaker=canvas_cls)
    except ReportError:
        raise
    except Exception as exc:  # reportlab's LayoutError and friends: report which document failed, not a traceback
        raise ReportError(f"report {report.report_id}: PDF layout failed: {exc}") from exc
    return buf.getvalue()


def render_report_pdf(
    report: Report,
    path: str | os.PathLike[str],
    *,
    deidentified: bool = False,
    options: PdfOptions | None = None,
) -> Path:
    """Render and write atomically (a failed render never replaces an earlier good PDF). Returns the path."""
    data = report_pdf_bytes(report, deidentified=deidentified, options=options)
    return atomic_write_bytes(path, data)
