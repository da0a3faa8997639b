"""Corner annotations of the image viewer (series, slice, window, zoom; patient data only on request).

Text is composed by pure functions from the state so it is tested without painting; `paint_overlay` draws it in
viewport coordinates on a translucent dark backing with a dark halo, readable on any image (a 1-px halo alone
is lost over the pinks and purples of stained tissue).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter

__all__ = ["Corners", "stack_overlay", "paint_overlay", "format_window", "paint_markers", "BACKING"]

#: the translucent plate behind each corner's text: dark enough for light text on white or tissue, light enough
#: that the image under it still shows through
BACKING = QColor(0, 0, 0, 150)

Corners = dict[str, list[str]]  # "tl", "tr", "bl", "br" → lines


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:.2f}"


def format_window(window: Any, label: str = "") -> str:
    """ "W 400 L 40 (ct-abdomen)" — radiologists read width first, level second."""
    if window is None:
        return ""
    text = f"W {_fmt(float(window.width))} L {_fmt(float(window.center))}"
    return f"{text} ({label})" if label else text


def _meta(meta: dict[str, Any], *names: str) -> str:
    for name in names:
        value = meta.get(name)
        if value not in (None, "", [], ()):
            return str(value)
    return ""


def stack_overlay(state: Any, zoom: float, *, phi: dict[str, Any] | None = None) -> Corners:
    """Overlay lines for a StackState at `zoom` (screen px per image px). `phi` is shown only if show_phi is set."""
    stack = state.stack
    if stack is None or not state.show_overlay:
        return {"tl": [], "tr": [], "bl": [], "br": []}
    meta = stack.metadata
    tl = [
        " ".join(
            x for x in (_meta(meta, "modality"), _meta(meta, "series_description", "series")) if x
        )
        or stack.path.name
    ]
    body = _meta(meta, "body_part", "body_part_examined")
    if body:
        tl.append(body)
    series_no = _meta(meta, "series_number")
    if series_no:
        tl.append(f"Series {series_no}")
    tr: list[str] = []
    if state.show_phi and phi:
        labels = (("patient_name", ""), ("patient_id", "ID "), ("birth_date", "DOB "), ("study_date", "Study "),
                  ("accession", "Acc "))
        tr = [f"{prefix}{phi[key]}" for key, prefix in labels if phi.get(key)]
    width, height = stack.size
    bl = [f"Im {state.frame + 1}/{state.n_frames}"]
    if state.window is not None:
        bl.append(format_window(state.window, state.window_label))
    bl.append(f"Zoom {zoom * 100:.0f}%")
    br = [f"{width}×{height}"]
    spacing = meta.get("pixel_spacing_mm") or meta.get("pixel_spacing")
    if spacing:
        try:
            row, col = (float(v) for v in list(spacing)[:2])
            br.append(f"{col:.2f}×{row:.2f} mm/px")
        except (TypeError, ValueError):
            pass
    thickness = _meta(meta, "slice_thickness_mm", "slice_thickness")
    if thickness:
        br.append(f"Thk {thickness} mm")
    if state.roi is not None:
        x, y, w, h = state.roi
        br.append(f"ROI {w}×{h} at {x},{y}")
    return {"tl": tl, "tr": tr, "bl": bl, "br": br}


def paint_overlay(painter: QPainter, rect: QRectF, corners: Corners, *, point_size: float = 10.0) -> None:
    """Draw the corner lines inside `rect` (viewport coordinates), each corner on a translucent dark plate and
    each line with a dark outline, so it reads on white and on tissue too.

    The outline is the text drawn four times offset by one pixel in black: glyph-cached `drawText` costs a fraction
    of stroking text paths, and this runs on every repaint of a window / level drag.
    """
    font = QFont(painter.font())
    font.setPointSizeF(point_size)
    metrics = QFontMetricsF(font)
    line_h = metrics.height()
    margin = 6.0
    shadow, ink = QColor(0, 0, 0, 230), QColor(235, 235, 235)
    offsets = ((-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))
    painter.save()
    painter.setFont(font)
    pad = 3.0
    for corner, lines in corners.items():
        placed = []
        for i, line in enumerate(lines):
            width = metrics.horizontalAdvance(line)
            x = rect.left() + margin if corner in ("tl", "bl") else rect.right() - margin - width
            if corner in ("tl", "tr"):
                y = rect.top() + margin + metrics.ascent() + i * line_h
            else:
                y = rect.bottom() - margin - metrics.descent() - (len(lines) - 1 - i) * line_h
            placed.append((x, y, line))
        if not placed:
            continue
        # one plate per corner (not per line: overlapping translucent plates would band)
        plate = QRectF()
        for x, y, line in placed:
            plate = plate.united(QRectF(x - pad, y - metrics.ascent() - pad / 2,
                                        metrics.horizontalAdvance(line) + 2 * pad, line_h + pad))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(BACKING)
        painter.drawRoundedRect(plate, 3.0, 3.0)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for x, y, line in placed:
            painter.setPen(shadow)
            for dx, dy in offsets:
                painter.drawText(QPointF(x + dx, y + dy), line)
            painter.setPen(ink)
            painter.drawText(QPointF(x, y), line)
    painter.restore()


def paint_markers(painter: QPainter, rect: QRectF, markers: dict[str, str], *, point_size: float = 13.0) -> None:
    """Draw the orientation letters (`medapp.display.orientation_markers`) at the middle of each edge of `rect`.

    Larger than the corner text and in a warm colour: they are read at a glance, like Weasis' and every PACS'.
    """
    font = QFont(painter.font())
    font.setPointSizeF(point_size)
    font.setBold(True)
    metrics = QFontMetricsF(font)
    margin = 6.0
    shadow, ink = QColor(0, 0, 0, 230), QColor(255, 220, 120)
    offsets = ((-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))
    painter.save()
    painter.setFont(font)
    for edge, text in markers.items():
        if not text:
            continue
        width = metrics.horizontalAdvance(text)
        if edge == "left":
            x, y = rect.left() + margin, rect.center().y() + metrics.ascent() / 2
        elif edge == "right":
            x, y = rect.right() - margin - width, rect.center().y() + metrics.ascent() / 2
        elif edge == "top":
            x, y = rect.center().x() - width / 2, rect.top() + margin + metrics.ascent()
        else:
            x, y = rect.center().x() - width / 2, rect.bottom() - margin - metrics.descent()
        painter.setPen(shadow)
        for dx, dy in offsets:
            painter.drawText(QPointF(x + dx, y + dy), text)
        painter.setPen(ink)
        painter.drawText(QPointF(x, y), text)
    painter.restore()
