"""The measurement tools both viewers share: ruler, angle, rectangle / ellipse / freehand ROI and text notes.

Only the drawing is here. What a measurement is, its numbers and its text come from `medapp.measurements`; the
measurements themselves live in the window's `MeasurementStore` (one list per document, saved in the session),
so the panel, the viewer and the report all show the same ones.

The host is a QGraphicsView using `RoiToolMixin` (whose `set_tool` switches between "pan", "roi" and these tools).
It calls `_init_measure_tool` once, telling it how to find the document, the frame, that frame's modality values
and the item the image is drawn by; points are mapped viewport → scene → that item, so they are image pixels (slides:
level-0 pixels) whatever zoom, rotation or flip the view or the item has. Input arrives through an event filter on
the viewport and the view, so the host's own mouse and key handlers need no change.

Mouse: ruler / rectangle / ellipse = drag; freehand = drag around the area; angle = drag the first arm, then click
the end of the second (or three clicks: end, vertex, end); note = click, then type. Esc cancels a shape being drawn;
Delete removes the newest measurement on the image shown. Keys (no modifier): see `MEASURE_KEYS`; the same key again
goes back to panning.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QInputDialog

from medapp.measurements import (
    AREA_KINDS,
    Measurement,
    MeasurementStore,
    area,
    calibration_for,
    document_key,
    label_lines,
    value_unit,
    with_stats,
)
from ui.viewer.measure_items import DRAFT_INK, INK, SELECTED_INK, MeasurementGraphic

__all__ = ["MeasureToolMixin", "MEASURE_TOOLS", "MEASURE_KEYS", "MEASURE_HELP", "TOOL_TITLES", "TOOL_SHORT"]

MEASURE_TOOLS = ("ruler", "angle", "rect", "ellipse", "freehand", "text")
TOOL_TITLES = {"ruler": "Ruler", "angle": "Angle", "rect": "Rectangle ROI", "ellipse": "Ellipse ROI",
               "freehand": "Freehand ROI", "text": "Text note"}
#: the toolbar's short names (the tooltips say the rest)
TOOL_SHORT = {"ruler": "Ruler", "angle": "Angle", "rect": "Rect", "ellipse": "Ellipse", "freehand": "Freehand",
              "text": "Note"}
#: key (no modifier) → tool; pressing it again goes back to "pan"
MEASURE_KEYS: dict[int, str] = {
    Qt.Key.Key_M: "ruler",
    Qt.Key.Key_A: "angle",
    Qt.Key.Key_B: "rect",
    Qt.Key.Key_E: "ellipse",
    Qt.Key.Key_D: "freehand",
    Qt.Key.Key_T: "text",
}
MEASURE_HELP: tuple[tuple[str, str, str], ...] = (
    ("Both", "M / A", "ruler / angle (drag the first arm, click the second)"),
    ("Both", "B / E / D", "rectangle / ellipse / freehand ROI: area, and mean, SD, min, max on images"),
    ("Both", "T", "text note (click, then type)"),
    ("Both", "Esc / Delete", "cancel the shape being drawn / remove the newest measurement on this image"),
)
CLICK_PX = 3.0  # a press and release closer than this (screen px) is a click, not a drag
FREEHAND_STEP_PX = 2.0  # a freehand outline takes a point every this many screen px


_INPUT_EVENTS = frozenset({QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                           QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick})


class _MeasureFilter(QObject):
    """Hands the host's viewport mouse events and view key events to the mixin before the host sees them.

    Every other event passes untouched, without calling into the host: the view also gets events while Qt tears
    it down (children removed), when its Python side must not be touched any more."""

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._host = weakref.ref(host)  # a Qt child holding its parent strongly would be a reference cycle

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() not in _INPUT_EVENTS:
            return False
        host = self._host()
        return bool(host is not None and host._measure_event(watched, event))


class MeasureToolMixin:
    """Mixed into a QGraphicsView that also uses `RoiToolMixin` (for `tool`, `set_tool` and `tool_changed`)."""

    measure_store: MeasurementStore
    #: asks for a note's text (None: the dialog); tests set a function here. Never a bound method of the view
    #: itself: the view would then hold itself, a reference cycle only the cyclic GC frees (off the GUI thread)
    label_provider: Callable[[], str | None] | None

    # what is shown, from the host (methods, not stored callables: a closure over the view is a reference cycle)
    def _m_document(self) -> Any:
        raise NotImplementedError

    def _m_frame(self) -> int:
        return 0

    def _m_values(self) -> np.ndarray | None:
        """The modality values of the frame on screen, or None (not decoded yet, or a slide)."""
        return None

    def _init_measure_tool(
        self,
        store: MeasurementStore,
        *,
        image_item: QGraphicsItem | None,
        qt_signals: Iterable[Any] = (),
        events: Iterable[Any] = (),
    ) -> None:
        """Start drawing the measurements of `store`. The host overrides `_m_document()`, `_m_frame()` and
        `_m_values()` to say what is shown; `image_item` is the item the image is drawn by (None: scene
        coordinates are image coordinates); the measurements are redrawn on `qt_signals` (Qt) and `events`
        (psygnal, disconnected when the view goes)."""
        self.measure_store = store
        self._m_image_item = image_item
        self._m_layer = QGraphicsRectItem(image_item) if image_item is not None else QGraphicsRectItem()
        self._m_layer.setPen(Qt.PenStyle.NoPen)
        self._m_layer.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)
        self._m_layer.setZValue(20)
        if image_item is None:
            self.scene().addItem(self._m_layer)
        self._m_items: dict[str, MeasurementGraphic] = {}
        self._m_shown: tuple[Any, ...] | None = None
        self._m_revision = 0
        self._m_tried: set[str] = set()  # ROIs whose statistics were attempted (an ROI off the image has none)
        self._m_selected: str | None = None
        self._m_draft: list[tuple[float, float]] | None = None
        self._m_float: tuple[float, float] | None = None
        self._m_press_at: QPointF | None = None
        self._m_last_at: QPointF | None = None
        self._m_draft_item: MeasurementGraphic | None = None
        self.label_provider = None
        self._m_filter = _MeasureFilter(self)
        self.viewport().installEventFilter(self._m_filter)
        self.installEventFilter(self._m_filter)
        for signal in qt_signals:
            signal.connect(self._measure_refresh)
        self.tool_changed.connect(self._m_tool_changed)
        slot = self._m_store_changed
        store.changed.connect(slot)
        psygnals = [*events]
        refresh = self._measure_refresh
        for event in psygnals:
            event.connect(refresh)

        def disconnect(*_: Any) -> None:
            store.changed.disconnect(slot, missing_ok=True)
            for ev in psygnals:
                ev.disconnect(refresh, missing_ok=True)

        self.destroyed.connect(disconnect)

    # --- public ----------------------------------------------------------------------------------------------
    @property
    def measurement_graphics(self) -> dict[str, MeasurementGraphic]:
        """The drawn measurements of the image on screen, by id (tests and screenshots read their labels)."""
        return dict(self._m_items)

    @property
    def measuring(self) -> bool:
        """True while a shape is being drawn."""
        return self._m_draft is not None

    def highlight_measurement(self, measurement_id: str | None) -> None:
        """Draw one measurement in the highlight colour (the one selected in the panel)."""
        self._m_selected = measurement_id
        for mid, item in self._m_items.items():
            item.ink = SELECTED_INK if mid == measurement_id else INK
            item.update()

    def _ask_label(self) -> str | None:
        text, ok = QInputDialog.getText(self, "Text note", "Note:")
        return text.strip() if ok and text.strip() else None

    # --- keeping the drawn items in step ---------------------------------------------------------------------
    def _m_key(self) -> str | None:
        return document_key(self._m_document())

    def _m_store_changed(self, key: str) -> None:
        if key == self._m_key():
            self._m_revision += 1
            self._measure_refresh()

    def _m_tool_changed(self, *_: Any) -> None:
        self._m_cancel()

    def _measure_refresh(self, *_: Any) -> None:
        """Redraw the measurements of the shown image and frame when any of them (or what is shown) changed, and
        fill in ROI statistics that had to wait for the frame's values."""
        document = self._m_document()
        key, frame = document_key(document), self._m_frame()
        if self._m_shown is not None and self._m_shown[:2] != (key, frame):
            self._m_cancel()
        if key is not None and self._m_fill_stats(key, frame):
            return  # the store's change event redrew
        state = (key, frame, self._m_revision, id(document))
        if state == self._m_shown:
            return
        self._m_shown = state
        for item in self._m_items.values():
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        self._m_items.clear()
        if key is None:
            return
        cal, unit = calibration_for(document), value_unit(document)
        for m in self.measure_store.items(key, frame):
            ink = SELECTED_INK if m.id == self._m_selected else INK
            self._m_items[m.id] = MeasurementGraphic(m.kind, m.points, label_lines(m, cal, unit), self._m_layer,
                                                     ink=ink)
        self.viewport().update()

    def _m_fill_stats(self, key: str, frame: int) -> bool:
        """Statistics for ROIs drawn before their frame's values were there; True when the store changed."""
        waiting = [m for m in self.measure_store.items(key, frame)
                   if m.kind in AREA_KINDS and m.stats is None and m.id not in self._m_tried]
        if not waiting:
            return False
        values = self._m_values()
        if values is None:
            return False
        changed = False
        for m in waiting:
            self._m_tried.add(m.id)
            filled = with_stats(m, values)
            if filled.stats is not None:
                self.measure_store.update(key, filled)
                changed = True
        return changed

    # --- input -------------------------------------------------------------------------------------------------
    def _measure_event(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if watched is self and kind == QEvent.Type.KeyPress:
            return self._m_key_press(event)  # type: ignore[arg-type]
        if watched is not self.viewport():
            return False
        if kind == QEvent.Type.MouseButtonPress:
            return self._m_press(event)  # type: ignore[arg-type]
        if kind == QEvent.Type.MouseMove:
            self._m_move(event)  # type: ignore[arg-type]
            return False  # the host still shows the value under the cursor
        if kind == QEvent.Type.MouseButtonRelease:
            return self._m_release(event)  # type: ignore[arg-type]
        if kind == QEvent.Type.MouseButtonDblClick:
            return self._m_draft is not None or self.tool in MEASURE_TOOLS
        return False

    def _m_key_press(self, event: QKeyEvent) -> bool:
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if event.key() == Qt.Key.Key_Escape and self._m_draft is not None:
            self._m_cancel()
            return True
        if mods != Qt.KeyboardModifier.NoModifier or self._m_document() is None:
            return False
        tool = MEASURE_KEYS.get(event.key())
        if tool is not None:
            self.set_tool("pan" if self.tool == tool else tool)
            return True
        if event.key() == Qt.Key.Key_Delete:  # (Backspace is the viewer's "reset the view")
            key = self._m_key()
            items = self.measure_store.items(key, self._m_frame())
            if key is not None and items:
                self.measure_store.remove(key, items[-1].id)
            return True
        return False

    def _m_point(self, pos: QPointF) -> tuple[float, float]:
        """Viewport position → image pixel coordinates (through the view's and the image item's transforms)."""
        scene = self.viewportTransform().inverted()[0].map(QPointF(pos))
        if self._m_image_item is not None:
            scene = self._m_image_item.mapFromScene(scene)
        return float(scene.x()), float(scene.y())

    def _m_press(self, event: QMouseEvent) -> bool:
        tool = self.tool
        if tool not in MEASURE_TOOLS or event.button() != Qt.MouseButton.LeftButton or self._m_document() is None:
            return False
        event.accept()
        pos = event.position()
        point = self._m_point(pos)
        if tool == "text":
            label = (self.label_provider or self._ask_label)()
            if label:
                self._m_finish("text", [point], label=label)
            return True
        self._m_press_at = self._m_last_at = pos
        if self._m_draft is None:
            self._m_draft = [point]
        elif tool == "angle":  # click mode: vertex, then the end of the second arm
            self._m_draft.append(point)
            if len(self._m_draft) == 3:
                self._m_finish("angle", self._m_draft)
                return True
        self._m_float = point
        self._m_draw_draft()
        return True

    def _m_move(self, event: QMouseEvent) -> None:
        if self._m_draft is None:
            return
        pos = event.position()
        point = self._m_point(pos)
        if self.tool == "freehand" and self._m_press_at is not None and self._m_last_at is not None:
            if math.dist((pos.x(), pos.y()), (self._m_last_at.x(), self._m_last_at.y())) >= FREEHAND_STEP_PX:
                self._m_draft.append(point)
                self._m_last_at = pos
        self._m_float = point
        self._m_draw_draft()

    def _m_release(self, event: QMouseEvent) -> bool:
        if self._m_draft is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        event.accept()
        pos = event.position()
        point = self._m_point(pos)
        start = self._m_press_at
        dragged = start is not None and math.dist((pos.x(), pos.y()), (start.x(), start.y())) >= CLICK_PX
        self._m_press_at = None
        tool = self.tool
        if tool in ("ruler", "rect", "ellipse"):
            if dragged:
                self._m_finish(tool, [self._m_draft[0], point])
            else:
                self._m_cancel()
        elif tool == "freehand":
            self._m_finish("freehand", [*self._m_draft, point] if dragged else self._m_draft)
        elif tool == "angle" and len(self._m_draft) == 1 and dragged:
            self._m_draft.append(point)  # the first arm is drawn; the next click ends the second
            self._m_draw_draft()
        return True

    # --- the shape being drawn ---------------------------------------------------------------------------------
    def _m_draft_points(self) -> list[tuple[float, float]]:
        points = list(self._m_draft or [])
        if self._m_float is not None and self.tool != "freehand":
            points.append(self._m_float)
        return points

    def _m_draw_draft(self) -> None:
        if self._m_draft_item is not None:
            self._m_remove_item(self._m_draft_item)
            self._m_draft_item = None
        points = self._m_draft_points()
        if not points:
            return
        lines: list[str] = []
        try:
            m = Measurement(self.tool, tuple(points))
            lines = label_lines(m, calibration_for(self._m_document()), "")
        except ValueError:  # not a whole shape yet (the first arm of an angle, a short outline)
            pass
        self._m_draft_item = MeasurementGraphic(self.tool, points, lines, self._m_layer, ink=DRAFT_INK)
        self.viewport().update()

    def _m_remove_item(self, item: QGraphicsItem) -> None:
        item.setParentItem(None)
        if item.scene() is not None:
            item.scene().removeItem(item)

    def _m_cancel(self) -> None:
        self._m_draft = None
        self._m_float = None
        self._m_press_at = self._m_last_at = None
        if self._m_draft_item is not None:
            self._m_remove_item(self._m_draft_item)
            self._m_draft_item = None
            self.viewport().update()

    def _m_finish(self, kind: str, points: list[tuple[float, float]], label: str = "") -> None:
        """Keep the shape as a measurement of the shown frame (with its ROI statistics when the values are there);
        a shape with no length or no area is dropped."""
        key = self._m_key()
        self._m_cancel()
        if key is None:
            return
        try:
            m = Measurement(kind, tuple(points), frame=self._m_frame(), label=label)
        except ValueError:
            return
        cal = calibration_for(self._m_document())
        if kind in AREA_KINDS and not (area(m, cal) or 0.0) > 0:
            return
        if kind == "ruler" and m.points[0] == m.points[1]:
            return
        if kind in AREA_KINDS:
            values = self._m_values()
            if values is not None:
                m = with_stats(m, values)
                self._m_tried.add(m.id)
        self.measure_store.add(key, m)
