"""How a measurement looks: the shape in image coordinates with a cosmetic pen, its label at screen size.

Both are drawn twice — a wide dark stroke under a thin bright one, and text with a dark halo — so they read on the
black of a CT, the white of a radiograph and the pink of a slide alike. The label ignores the view's transform
(zoom, rotation, flip): it stays upright and legible at any zoom, anchored to its point in the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

__all__ = ["MeasurementGraphic", "HaloLabel", "shape_path", "INK", "HALO"]

INK = QColor(90, 230, 255)
DRAFT_INK = QColor(255, 235, 90)
SELECTED_INK = QColor(255, 120, 220)
HALO = QColor(0, 0, 0, 200)


def shape_path(kind: str, points: Sequence[tuple[float, float]]) -> QPainterPath:
    """The outline of a (possibly unfinished) measurement in image coordinates."""
    path = QPainterPath()
    pts = [QPointF(x, y) for x, y in points]
    if not pts:
        return path
    if kind in ("ruler", "angle") or (kind == "freehand" and len(pts) < 3):
        path.moveTo(pts[0])
        for p in pts[1:]:
            path.lineTo(p)
    elif kind in ("rect", "ellipse") and len(pts) >= 2:
        rect = QRectF(pts[0], pts[1]).normalized()
        if kind == "rect":
            path.addRect(rect)
        else:
            path.addEllipse(rect)
    elif kind == "freehand":
        path.moveTo(pts[0])
        for p in pts[1:]:
            path.lineTo(p)
        path.closeSubpath()
    return path


def _cosmetic(colour: QColor, width: float) -> QPen:
    pen = QPen(colour, width)
    pen.setCosmetic(True)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


class MeasurementGraphic(QGraphicsItem):
    """The shape of one measurement (child of the image item, so it follows the image's transform), with end
    ticks for rulers and a dot for notes. Its label is a child `HaloLabel`."""

    def __init__(self, kind: str, points: Sequence[tuple[float, float]], lines: Sequence[str],
                 parent: QGraphicsItem | None = None, *, ink: QColor = INK) -> None:
        super().__init__(parent)
        self.kind = kind
        self.points = [(float(x), float(y)) for x, y in points]
        self.ink = ink
        self._path = shape_path(kind, self.points)
        self.label = HaloLabel(lines, self)
        self.label.setPos(self._label_anchor())
        self.setZValue(20)

    @property
    def text(self) -> str:
        return "\n".join(self.label.lines)

    def _label_anchor(self) -> QPointF:
        pts = self.points
        if not pts:
            return QPointF()
        if self.kind == "angle" and len(pts) >= 2:
            return QPointF(*pts[1])
        if self.kind in ("rect", "ellipse", "freehand"):
            return QPointF(max(p[0] for p in pts), min(p[1] for p in pts))
        return QPointF(*pts[-1])

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        rect = self._path.boundingRect()
        if self.kind == "text" and self.points:
            rect = QRectF(QPointF(*self.points[0]), QPointF(*self.points[0]))
        # the cosmetic pens and tick marks are a few screen pixels wide: pad by what that is at this zoom
        scale = 1.0
        scene = self.scene()
        if scene is not None and scene.views():
            t = scene.views()[0].transform() * self.sceneTransform()
            scale = max(1e-6, math.hypot(t.m11(), t.m12()))
        pad = 8.0 / scale
        return rect.adjusted(-pad, -pad, pad, pad)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self.kind == "text":
            if self.points:
                self._dot(painter, QPointF(*self.points[0]))
            return
        for pen in (_cosmetic(HALO, 4.0), _cosmetic(self.ink, 2.0)):
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(self._path)
        if self.kind == "ruler" and len(self.points) == 2:
            self._ticks(painter)

    def _dot(self, painter: QPainter, at: QPointF) -> None:
        t = painter.worldTransform()
        scale = max(1e-6, math.hypot(t.m11(), t.m12()))
        r = 3.0 / scale
        painter.setPen(_cosmetic(HALO, 2.0))
        painter.setBrush(self.ink)
        painter.drawEllipse(at, r, r)

    def _ticks(self, painter: QPainter) -> None:
        """Short marks across both ends, 6 screen px long, so the exact end points show at any zoom."""
        (x0, y0), (x1, y1) = self.points
        t = painter.worldTransform()
        scale = max(1e-6, math.hypot(t.m11(), t.m12()))
        dx, dy = x1 - x0, y1 - y0
        norm = math.hypot(dx, dy)
        if norm == 0:
            return
        nx, ny = -dy / norm * 6.0 / scale, dx / norm * 6.0 / scale
        for pen in (_cosmetic(HALO, 4.0), _cosmetic(self.ink, 1.6)):
            painter.setPen(pen)
            for x, y in ((x0, y0), (x1, y1)):
                painter.drawLine(QPointF(x - nx, y - ny), QPointF(x + nx, y + ny))


class HaloLabel(QGraphicsItem):
    """Lines of text at a point, drawn at screen size (ItemIgnoresTransformations) in white on a dark halo."""

    POINT_SIZE = 10.0

    def __init__(self, lines: Sequence[str], parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.lines = [str(line) for line in lines if str(line)]
        self.font = QFont()
        self.font.setPointSizeF(self.POINT_SIZE)
        self.font.setBold(True)
        self._path = QPainterPath()
        from PySide6.QtGui import QFontMetricsF

        metrics = QFontMetricsF(self.font)
        y = 0.0
        for line in self.lines:
            y += metrics.ascent()
            self._path.addText(QPointF(8.0, y + 4.0), self.font, line)
            y += metrics.descent() + 1.0
        stroker = QPainterPathStroker()
        stroker.setWidth(3.5)
        stroker.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        self._halo = stroker.createStroke(self._path)

    def _shift(self, rect: QRectF) -> QPointF:
        """How far to move the text so it stays on screen: to the left of its anchor when it would run off the
        right edge, above it when it would run off the bottom."""
        return QPointF(-(rect.right() + rect.left()), -(rect.height() + 8.0))

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        rect = self._halo.boundingRect().adjusted(-2, -2, 2, 2)
        shift = self._shift(rect)
        return rect.united(rect.translated(shift.x(), 0)).united(rect.translated(shift.x(), shift.y()))

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self.lines:
            return
        rect = self._halo.boundingRect()
        device = painter.device()
        if device is not None:
            at = painter.worldTransform().map(QPointF(0.0, 0.0))
            shift = self._shift(rect)
            dx = shift.x() if at.x() + rect.right() > device.width() - 2 and at.x() + shift.x() > 0 else 0.0
            dy = shift.y() if at.y() + rect.bottom() > device.height() - 2 and at.y() + shift.y() > 0 else 0.0
            painter.translate(dx, dy)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(HALO)
        painter.drawPath(self._halo)
        painter.setBrush(QColor(250, 250, 250))
        painter.drawPath(self._path)
