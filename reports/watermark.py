"""The "AI DRAFT — not reviewed" watermark every AI-drafted PDF page carries until a clinician signs.

One wording and one drawing for the report PDF and the slide description PDF, so a reader meets the same mark on
every document medapp drafts: large, red, translucent, across the page diagonal (so it cannot be cropped off a
printed page without cutting the text), sized to the page.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WATERMARK", "draw_watermark"]

WATERMARK = "AI DRAFT — not reviewed"


def draw_watermark(canvas: Any, width: float, height: float, bold_font: str) -> None:
    """Draw the watermark diagonally across a `width` × `height` page (canvas state is saved and restored)."""
    from reportlab.lib import colors
    from reportlab.pdfbase.pdfmetrics import stringWidth

    canvas.saveState()
    diag = (width * width + height * height) ** 0.5
    size = min(64.0, 0.78 * diag / stringWidth(WATERMARK, bold_font, 1))
    canvas.setFillColor(colors.HexColor("#c62828"))
    canvas.setFillAlpha(0.16)
    canvas.translate(width / 2, height / 2)
    canvas.rotate(54.7 if height > width else 35.3)
    canvas.setFont(bold_font, size)
    canvas.drawCentredString(0, -size / 3, WATERMARK)
    canvas.restoreState()
