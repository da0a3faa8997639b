"""Corner annotations of the image viewer (series, slice, window, zoom; patient data only on request).

Text is composed by pure functions from the state so it is tested without painting; `paint_overlay` draws it in
viewport coordinates on a translucent dark backing with a dark halo, readable on any image (a 1-px halo alone
is lost over the pinks and purples of stained tissue), together with the orientation letters, where
`medapp.overlay_layout` puts them so that nothing overlaps in a small view.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter

from medapp.overlay_layout import OverlayLayout, layout_overlay

__all__ = ["Corners", "stack_overlay", "paint_overlay", "overlay_layout", "format_window", "paint_markers", "BACKING"]

#: the translucent plate behind each corner's text: dark enough for light text on white or tissue, light enough
#: that the image under it still shows through
BACKING = QColor(0, 0, 0, 150)

Corners = dict[str, list[str]]  # "tl", "tr", "bl", "br" → lines

_HALO = 1.0  # the dark outline's offset around every glyph
_SHADOW, _INK, _MARKER_INK = QColor(0, 0, 0, 230), QColor(235, 235, 235), QColor(255, 220, 120)
_OFFSETS = ((-_HALO, 0.0), (_HALO, 0.0), (0.0, -_HALO), (0.0, _HALO))


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
            # square pixels (nearly every CT and MR) in one number: the short line leaves the window line its room
            br.append(f"{col:.2f} mm/px" if f"{col:.2f}" == f"{row:.2f}" else f"{col:.2f}×{row:.2f} mm/px")
        except (TypeError, ValueError):
            pass
    thickness = _meta(meta, "slice_thickness_mm", "slice_thickness")
    if thickness:
        br.append(f"Thk {thickness} mm")
    if state.roi is not None:
        x, y, w, h = state.roi
        br.append(f"ROI {w}×{h} at {x},{y}")
    return {"tl": tl, "tr": tr, "bl": bl, "br": br}


def _fonts(painter: QPainter, point_size: float, marker_point_size: float) -> tuple[QFont, QFont]:
    font = QFont(painter.font())
    font.setPointSizeF(point_size)
    marker_font = QFont(painter.font())
    marker_font.setPointSizeF(marker_point_size)
    marker_font.setBold(True)
    return font, marker_font


def overlay_layout(painter: QPainter, rect: QRectF, corners: Corners, markers: dict[str, str] | None = None, *,
                   point_size: float = 10.0, marker_point_size: float = 13.0) -> OverlayLayout:
    """Where `paint_overlay` puts each line and letter in `rect` (`medapp.overlay_layout`, measured in the
    painter's fonts): nothing overlaps, lines too long for their room end in "…"."""
    font, marker_font = _fonts(painter, point_size, marker_point_size)
    metrics, marker_metrics = QFontMetricsF(font), QFontMetricsF(marker_font)
    return layout_overlay(rect.width(), rect.height(), corners, markers, measure=metrics.horizontalAdvance,
                          line_height=metrics.height(), ink_top=_ink_top(metrics),
                          marker_measure=marker_metrics.horizontalAdvance,
                          marker_height=marker_metrics.capHeight() + 2 * _HALO, origin=(rect.left(), rect.top()))


def _ink_top(metrics: QFontMetricsF) -> float:
    """The empty top of a line (room for accents above the capitals), not part of its box."""
    return max(0.0, metrics.ascent() - metrics.capHeight() - _HALO)


def paint_overlay(painter: QPainter, rect: QRectF, corners: Corners, markers: dict[str, str] | None = None, *,
                  point_size: float = 10.0, marker_point_size: float = 13.0) -> OverlayLayout:
    """Draw the corner lines inside `rect` (viewport coordinates), each corner on a translucent dark plate and
    each line with a dark outline, so it reads on white and on tissue too; and the orientation letters
    (`medapp.display.orientation_markers`) at the middle of each edge, larger, bold and in a warm colour: they are
    read at a glance, like Weasis' and every PACS'.

    Corners and letters are laid out together (`overlay_layout`) so that in a narrow view of a 2×2 layout the
    corner texts neither run into each other nor under a letter: long lines end in "…", a block too tall for its
    side loses its last lines, the letters always stay. Returns that layout (the view keeps it; tests read it).

    The outline is the text drawn four times offset by one pixel in black: glyph-cached `drawText` costs a fraction
    of stroking text paths, and this runs on every repaint of a window / level drag.
    """
    font, marker_font = _fonts(painter, point_size, marker_point_size)
    layout = overlay_layout(painter, rect, corners, markers, point_size=point_size,
                            marker_point_size=marker_point_size)
    pad = 3.0
    painter.save()
    painter.setFont(font)
    # baseline = line top + ascent, and a box starts `_ink_top` below its line's top
    baseline = QFontMetricsF(font).ascent() - _ink_top(QFontMetricsF(font))
    for corner in ("tl", "tr", "bl", "br"):
        placed = layout.corner(corner)
        if not placed:
            continue
        # one plate per corner (not per line: overlapping translucent plates would band)
        plate = QRectF()
        for line in placed:
            b = line.box
            plate = plate.united(QRectF(b.x - pad, b.y - pad / 2, b.w + 2 * pad, b.h + pad))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(BACKING)
        painter.drawRoundedRect(plate, 3.0, 3.0)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for line in placed:
            _outlined(painter, QPointF(line.box.x, line.box.y + baseline), line.text, _INK)
    if layout.markers:
        painter.setFont(marker_font)
        cap = QFontMetricsF(marker_font).capHeight()  # a letter's box is its capital and halo
        for letter in layout.markers:
            _outlined(painter, QPointF(letter.box.x, letter.box.y + _HALO + cap), letter.text, _MARKER_INK)
    painter.restore()
    return layout


def _outlined(painter: QPainter, at: QPointF, text: str, ink: QColor) -> None:
    painter.setPen(_SHADOW)
    for dx, dy in _OFFSETS:
        painter.drawText(QPointF(at.x() + dx, at.y() + dy), text)
    painter.setPen(ink)
    painter.drawText(at, text)


def paint_markers(painter: QPainter, rect: QRectF, markers: dict[str, str], *, point_size: float = 13.0) -> None:
    """Only the orientation letters (no corner text); `paint_overlay(..., markers)` draws both without overlap."""
    paint_overlay(painter, rect, {}, markers, marker_point_size=point_size)
