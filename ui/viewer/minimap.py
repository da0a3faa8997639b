"""Slide overview in a corner of the slide viewer: the whole thumbnail with the current viewport outlined.

Click or drag on it to move the view there (QuPath / slim users expect this; clinical-anchors B.3 #9).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

__all__ = ["Minimap"]


class Minimap(QWidget):
    """Draws `thumbnail` scaled into at most `max_side` px and the viewport rectangle (level-0 coordinates)."""

    navigate = Signal(QPointF)  # level-0 point the user clicked, to centre on

    def __init__(self, parent: QWidget | None = None, max_side: int = 180) -> None:
        super().__init__(parent)
        self.max_side = max_side
        self._thumb: QImage | None = None
        self._slide_size = (1, 1)
        self._view = QRectF()
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, False)
        self.hide()

    def set_thumbnail(self, thumbnail: QImage | None, slide_size: tuple[int, int]) -> None:
        self._thumb = thumbnail
        self._slide_size = (max(1, slide_size[0]), max(1, slide_size[1]))
        w, h = self._slide_size
        scale = self.max_side / max(w, h)
        self.setFixedSize(QSize(max(8, round(w * scale)) + 4, max(8, round(h * scale)) + 4))
        self.setVisible(thumbnail is not None)
        self.update()

    def set_view_rect(self, rect: QRectF) -> None:
        self._view = QRectF(rect)
        self.update()

    @property
    def view_rect(self) -> QRectF:
        return QRectF(self._view)

    def _inner(self) -> QRectF:
        return QRectF(self.rect()).adjusted(2, 2, -2, -2)

    def _to_widget(self, rect: QRectF) -> QRectF:
        inner = self._inner()
        sx, sy = inner.width() / self._slide_size[0], inner.height() / self._slide_size[1]
        return QRectF(inner.x() + rect.x() * sx, inner.y() + rect.y() * sy, rect.width() * sx, rect.height() * sy)

    def _to_slide(self, point: QPointF) -> QPointF:
        inner = self._inner()
        x = (point.x() - inner.x()) / max(inner.width(), 1e-9) * self._slide_size[0]
        y = (point.y() - inner.y()) / max(inner.height(), 1e-9) * self._slide_size[1]
        return QPointF(min(max(x, 0.0), self._slide_size[0]), min(max(y, 0.0), self._slide_size[1]))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 20, 20, 220))
        if self._thumb is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(self._inner(), self._thumb)
        painter.setPen(QPen(QColor(120, 120, 120), 1))
        painter.drawRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5))
        if not self._view.isEmpty():
            pen = QPen(QColor(230, 30, 30), 2)
            painter.setPen(pen)
            painter.drawRect(self._to_widget(self._view).intersected(self._inner()))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.navigate.emit(self._to_slide(event.position()))
            event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.navigate.emit(self._to_slide(event.position()))
            event.accept()
