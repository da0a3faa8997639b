"""The pan / region tool both viewers share: the `tool` switch, the dashed region rectangle and its rubber band.

Only the Qt side is shared. What a drawn rectangle means (image pixels of a frame, or level-0 pixels of a slide)
and where the region is kept stay with each viewer: the host hands the finished rectangle to its own `set_roi`.

The host is a QGraphicsView with a `tool_changed = Signal(str)`; it calls `_init_roi_tool(colour)` once its scene
exists, and in its mouse handlers `_roi_press`, `_roi_move` and `_roi_release`, which return whether they took the
event.

A press and release closer than the platform's drag distance (`QApplication.startDragDistance()`, in screen pixels)
is a click, not a rubber band: it leaves the region as it was. A click only to give the viewer the keyboard used to
draw an empty band and erase the region.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPen
from PySide6.QtWidgets import QApplication, QGraphicsRectItem, QGraphicsView

__all__ = ["RoiToolMixin"]

TOOLS = ("pan", "roi", "ruler", "angle", "rect", "ellipse", "freehand", "text")  # the last six: measure_tool.py


class RoiToolMixin:
    """Mixed into a QGraphicsView (listed before it): left-drag pans, or draws the region with the "roi" tool."""

    _roi_item: QGraphicsRectItem
    _roi_start: QPointF | None
    _roi_press_at: QPointF  # viewport position of the press (the drag distance is measured on screen)
    _roi_dragging: bool  # the mouse moved past the drag distance since the press
    _tool: str

    def _init_roi_tool(self, colour: QColor) -> None:
        """Add the (hidden) region rectangle, drawn dashed in `colour`, to the scene; the tool starts as "pan"."""
        self._roi_item = QGraphicsRectItem()
        pen = QPen(colour, 2.0)
        pen.setCosmetic(True)
        pen.setStyle(Qt.PenStyle.DashLine)
        self._roi_item.setPen(pen)
        self._roi_item.setZValue(10)
        self._roi_item.hide()
        self.scene().addItem(self._roi_item)
        self._roi_start = None
        self._tool = "pan"

    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        """"pan" (left-drag pans), "roi" (left-drag draws the region the model will see) or a measurement tool
        (`ui.viewer.measure_tool.MEASURE_TOOLS`)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self._tool = tool
        self.setDragMode(
            QGraphicsView.DragMode.ScrollHandDrag if tool == "pan" else QGraphicsView.DragMode.NoDrag
        )
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if tool != "pan" else Qt.CursorShape.OpenHandCursor)
        self.tool_changed.emit(tool)

    def _toggle_roi_tool(self) -> None:
        self.set_tool("pan" if self._tool == "roi" else "roi")

    def _show_roi(self, roi: tuple[float, float, float, float] | None) -> None:
        """Draw the rectangle of `roi` (x, y, w, h in scene coordinates), or hide it for None."""
        if roi is None:
            self._roi_item.hide()
        else:
            x, y, w, h = roi
            self._roi_item.setRect(QRectF(x, y, w, h))
            self._roi_item.show()

    def _roi_press(self, event: QMouseEvent) -> bool:
        """Start a rubber band on a left press with the "roi" tool (the host checks it has something shown)."""
        if event.button() == Qt.MouseButton.LeftButton and self._tool == "roi":
            self._roi_start = self.mapToScene(event.position().toPoint())
            self._roi_press_at = event.position()
            self._roi_dragging = False
            event.accept()
            return True
        return False

    def _roi_dragged(self, event: QMouseEvent) -> bool:
        """Has the mouse gone at least the drag distance from the press (ever, during this band)?"""
        if not self._roi_dragging:
            moved = (event.position() - self._roi_press_at).manhattanLength()
            self._roi_dragging = moved >= QApplication.startDragDistance()
        return self._roi_dragging

    def _roi_move(self, event: QMouseEvent) -> bool:
        """Follow the mouse with the rectangle while a rubber band is being drawn."""
        if self._roi_start is None:
            return False
        if not self._roi_dragged(event):  # a click so far: the region stays as drawn
            event.accept()
            return True
        end = self.mapToScene(event.position().toPoint())
        self._roi_item.setRect(QRectF(self._roi_start, end).normalized())
        self._roi_item.show()
        event.accept()
        return True

    def _roi_release(self, event: QMouseEvent) -> tuple[float, float, float, float] | None:
        """End the rubber band on the left release: the drawn (x, y, w, h) in scene coordinates, for the host's
        `set_roi`; None when no band was being drawn, or when it was a click (the region is left as it was)."""
        if self._roi_start is None or event.button() != Qt.MouseButton.LeftButton:
            return None
        if not self._roi_dragged(event):
            self._roi_start = None
            event.accept()
            return None
        rect = QRectF(self._roi_start, self.mapToScene(event.position().toPoint())).normalized()
        self._roi_start = None
        event.accept()
        return rect.x(), rect.y(), rect.width(), rect.height()
