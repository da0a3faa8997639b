"""Zoom a QGraphicsView about a viewport point: the one piece of maths both viewers share.

Qt's own AnchorUnderMouse only works for wheel events; keyboard and toolbar zooms need an explicit anchor, so we
scale with no anchor and translate the scene point under `anchor` back to where it was.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QGraphicsView


def scale_about(view: QGraphicsView, ratio: float, anchor: QPointF | None = None) -> None:
    """Scale `view` by `ratio`, keeping the scene point under `anchor` (viewport coordinates; default the centre)."""
    if anchor is None:
        anchor = QPointF(view.viewport().rect().center())
    before = view.mapToScene(anchor.toPoint())
    old = view.transformationAnchor()
    view.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
    view.scale(ratio, ratio)
    after = view.mapToScene(anchor.toPoint())
    view.translate((after - before).x(), (after - before).y())
    view.setTransformationAnchor(old)
