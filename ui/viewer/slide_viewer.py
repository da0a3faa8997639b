"""Whole-slide viewer: pyramid tiles loaded lazily in a worker, a thumbnail underneath, minimap, scale bar.

The scene is in level-0 pixels. A thumbnail covers the whole slide at the bottom, so every zoom and pan shows an
image at once; sharper tiles of the best level for the current zoom are read in a worker (centre first), kept in a
bounded LRU cache, and laid over it. Stale tile requests are cancelled when the view moves on.

Mouse: wheel = zoom at the cursor, left-drag = pan (or draw the region with the ROI tool). Keys: 1–6 = 1.25×…40×,
+ / − = next magnification step, F = fit, arrows = pan a quarter screen, R = ROI tool, Esc = clear the region.
What the model gets: the drawn region, or else the visible part of the slide, read from the pyramid level closest
to (and not coarser than) the screen (`medapp.model_input.model_level`) by the core's
`medapp.view.render_slide_region`, which also shrinks it to `medapp.view.MODEL_SIDE` — the same code path, so the
same pixels, as `medapp.view.render_view` for the ModelInput's `view_state`. The region, the visible part and the
screen's resolution live in the window's shared `medapp.viewer_state.ViewerState` (`context.view`); the model
input is derived from it (`medapp.model_input.model_input_for`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from medapp.measurements import MeasurementStore
from medapp.model_input import ModelInput, model_input_for, model_level  # model_level: re-exported
from medapp.viewer_state import ViewerState
from ui.context import AppContext
from ui.viewer.keymap import PAN_STEPS, SLIDE_KEYS, viewer_binding
from ui.viewer.magnification import MAG_STEPS, base_magnification, format_mag, scale_bar, step_magnification
from ui.viewer.measure_tool import MeasureToolMixin
from ui.viewer.minimap import Minimap
from ui.viewer.overlay import paint_overlay
from ui.viewer.qimage import pil_to_qimage
from ui.viewer.roi_tool import RoiToolMixin
from ui.viewer.tiles import TileCache, TileKey, load_tiles, tile_rect, tiles_for_view
from ui.viewer.zoom import scale_about
from ui.workers import Worker, WorkerFailure, WorkerManager

__all__ = ["SlideViewer", "SlideSetup", "prepare_slide", "model_level"]

log = logging.getLogger(__name__)

THUMB_SIDE = 1024
ZOOM_MAX = 4.0  # screen px per level-0 px (digital zoom past the scan)
ZOOM_STEP = 1.25


@dataclass(frozen=True)
class SlideSetup:
    """What the viewer needs before the first paint, made off the UI thread by `prepare_slide`."""

    thumbnail: QImage
    base_mag: float | None


def prepare_slide(slide: Any) -> SlideSetup:
    """Worker side: read the overview thumbnail (QImage is safe off the UI thread) and the base magnification."""
    thumb = slide.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return SlideSetup(pil_to_qimage(thumb), base_magnification(slide.objective_power, slide.mpp))


class SlideViewer(MeasureToolMixin, RoiToolMixin, QGraphicsView):
    """Shows one Slide. Signals tell the window about the view, the region and when all tiles are in."""

    view_changed = Signal()
    roi_changed = Signal(object)  # (x, y, w, h) level-0 or None
    tiles_idle = Signal()  # every tile the current view needs is on screen
    tool_changed = Signal(str)

    def __init__(
        self, context: AppContext | None = None, parent: QWidget | None = None, *, cache_tiles: int = 512
    ) -> None:
        super().__init__(parent)
        self.context = context
        # the window's shared ViewerState (context.view): the drawn region, the visible part and the screen's
        # resolution live there; a viewer without a context gets its own
        self.state: ViewerState = context.view if context is not None else ViewerState()
        self.slide: Any = None
        self.base_mag: float | None = None
        self.cache = TileCache(cache_tiles)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(236, 236, 236))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self._thumb_item = QGraphicsPixmapItem()
        self._thumb_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._thumb_item)
        self._thumb_ds = 1.0
        self._items: dict[TileKey, QGraphicsPixmapItem] = {}
        self._backdrop: dict[TileKey, QGraphicsPixmapItem] = {}  # previous level, shown until the new one is in
        self._needed: set[TileKey] = set()
        self._pending: set[TileKey] = set()
        self._loader: Worker | None = None
        self._loads = WorkerManager(self, max_threads=1)
        if context is not None:
            self._loads.worker_failed.connect(context.workers.worker_failed.emit)
        self.tiles_read = 0

        self._init_roi_tool(QColor(20, 120, 255))
        # measurements in level-0 px (the scene's coordinates): lengths and areas from the slide's µm per pixel
        self._init_measure_tool(
            context.measurements if context is not None else MeasurementStore(),
            image_item=None,
            qt_signals=(self.view_changed,), events=(self.state.events.document,),
        )
        self._fit = True

        self.minimap = Minimap(self)
        self.minimap.navigate.connect(self.center_on)

        self._update_timer = QTimer(self)
        self._update_timer.setSingleShot(True)
        self._update_timer.setInterval(15)
        self._update_timer.timeout.connect(self._update_tiles)
        self.horizontalScrollBar().valueChanged.connect(self._view_moved)
        self.verticalScrollBar().valueChanged.connect(self._view_moved)
        events = self.state.events
        events.document.connect(self._on_document)
        events.region.connect(self._on_region)
        on_document, on_region = self._on_document, self._on_region
        # the state may outlive this widget (it belongs to the window's context): stop listening when Qt deletes it
        self.destroyed.connect(lambda *_: (events.document.disconnect(on_document, missing_ok=True),
                                           events.region.disconnect(on_region, missing_ok=True)))

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """The drawn region (level-0 px), from the shared state; None unless the state shows this slide."""
        return self.state.region if self._owns_state() else None

    def _owns_state(self) -> bool:
        return self.slide is not None and self.state.document is self.slide

    def _m_document(self) -> Any:
        """What the measurements are drawn on (MeasureToolMixin): the slide on screen."""
        return self.slide

    # --- public API ---------------------------------------------------------------------------------------------
    def set_slide(self, slide: Any, setup: SlideSetup | None = None) -> None:
        """Show `slide` fitted to the window. `setup` from `prepare_slide` keeps the thumbnail read off the UI thread.

        The shared state then shows it too (region cleared); `None` clears the viewer, and the state only if it
        still shows a slide (it may already show the stack that replaces it)."""
        self._show(slide, setup)
        if slide is not None:
            self.state.open(slide)
            self._view_moved()
        elif self.state.is_slide:
            self.state.open(None)

    def _on_document(self, document: Any, *_: Any) -> None:
        """Someone else changed what the state shows: follow it (a slide) or let go (anything else)."""
        if document is self.slide:
            return
        self._show(document if getattr(document, "kind", "") == "slide" else None)

    def _on_region(self, region: Any, *_: Any) -> None:
        if not self._owns_state():
            return
        self._show_roi(region)
        self.roi_changed.emit(region)
        self.viewport().update()
        self._notify()

    def _show(self, slide: Any, setup: SlideSetup | None = None) -> None:
        """Build the scene for `slide` (or empty it) without touching the state."""
        self._cancel_loader()
        for item in self._items.values():
            self.scene().removeItem(item)
        self._items.clear()
        self._clear_backdrop()
        self._needed.clear()
        self._pending.clear()
        self.cache.clear()
        self.slide = slide
        self._roi_item.hide()
        if slide is None:
            self._thumb_item.setPixmap(QPixmap())
            self.minimap.set_thumbnail(None, (1, 1))
            self.viewport().update()
            self._notify()
            return
        if setup is None:
            setup = prepare_slide(slide)
        self.base_mag = setup.base_mag
        w, h = slide.level_dimensions[0]
        pixmap = QPixmap.fromImage(setup.thumbnail)
        self._thumb_item.setPixmap(pixmap)
        self._thumb_ds = w / max(1, pixmap.width())
        self._thumb_item.setScale(self._thumb_ds)
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        self.minimap.set_thumbnail(setup.thumbnail, (w, h))
        self._place_minimap()
        self.fit()

    @property
    def zoom(self) -> float:
        """Screen pixels per level-0 pixel."""
        return float(self.transform().m11())

    @property
    def magnification(self) -> float | None:
        return None if self.base_mag is None else self.base_mag * self.zoom

    def visible_rect(self) -> tuple[float, float, float, float]:
        """The part of the slide on screen, (x, y, w, h) in level-0 px, clipped to the slide."""
        rect = self.mapToScene(self.viewport().rect()).boundingRect().intersected(self.sceneRect())
        return rect.x(), rect.y(), rect.width(), rect.height()

    def fit(self) -> None:
        if self.slide is None:
            return
        self._fit = True
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._view_moved()

    def _min_zoom(self) -> float:
        if self.slide is None:
            return 0.01
        w, h = self.slide.level_dimensions[0]
        vp = self.viewport().rect()
        return 0.5 * min(vp.width() / max(w, 1), vp.height() / max(h, 1))

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Set screen px per level-0 px, keeping the scene point under `anchor` (viewport coords) in place."""
        if self.slide is None:
            return
        target = max(self._min_zoom(), min(ZOOM_MAX, zoom))
        current = self.zoom
        if current <= 0 or abs(target - current) / current < 1e-9:
            return
        self._fit = False
        scale_about(self, target / current, anchor)
        self._view_moved()

    def set_magnification(self, mag: float) -> None:
        """Zoom to an objective magnification (needs objective power or mpp; otherwise no-op)."""
        if self.base_mag:
            self.set_zoom(mag / self.base_mag)

    def step_magnification(self, direction: int) -> None:
        if self.base_mag:
            self.set_magnification(step_magnification(self.magnification or 0.0, direction, self.base_mag))
        else:
            self.set_zoom(self.zoom * (2.0 if direction > 0 else 0.5))

    def center_on(self, point: QPointF) -> None:
        self._fit = False
        self.centerOn(point)
        self._view_moved()

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        """Draw (None: clear) the region the model sees, clipped to the slide; the state tells every view."""
        if self._owns_state():
            self.state.set_region(roi)

    def is_idle(self) -> bool:
        """True when no tile the current view needs is still being read."""
        return self.slide is not None and not self._pending and not self._update_timer.isActive()

    def model_input(self, use_region: bool = True) -> ModelInput | None:
        """The drawn region (if any and `use_region`) or the visible view, at the on-screen resolution
        (`medapp.model_input.model_input_for` on the shared state)."""
        if not self._owns_state():
            return None
        self._publish_view()
        roi = self.roi if use_region else None
        region = roi or self.state.visible
        if region is None:
            return None
        mag = self.magnification
        desc = f"slide {'region' if roi else 'view'} {region[2]}×{region[3]} px at ({region[0]}, {region[1]})"
        if mag:
            desc += f", {format_mag(mag)}"
        return model_input_for(self.state, use_region=use_region, description=desc)

    def _publish_view(self) -> None:
        """Tell the state which part is on screen and at what resolution (the model input follows the screen)."""
        if not self._owns_state():
            return
        self.state.visible = tuple(int(round(v)) for v in self.visible_rect())  # type: ignore[assignment]
        self.state.downsample = max(1.0, 1.0 / self.zoom)
        self.state.magnification = self.magnification

    # --- tiles ----------------------------------------------------------------------------------------------------
    def _view_moved(self, *_: Any) -> None:
        if self.slide is None:
            return
        self._publish_view()
        x, y, w, h = self.visible_rect()
        self.minimap.set_view_rect(QRectF(x, y, w, h))
        self._update_timer.start()
        self.view_changed.emit()
        self._notify()

    def _notify(self) -> None:
        if self.context is not None:
            self.context.notify_input_changed()

    def _cancel_loader(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None

    def _update_tiles(self) -> None:
        slide = self.slide
        if slide is None:
            return
        view_ds = 1.0 / max(self.zoom, 1e-9)
        needed: list[TileKey] = []
        if view_ds < self._thumb_ds * 0.95:  # the thumbnail alone would look soft: bring the pyramid in
            level = int(slide.best_level_for_downsample(view_ds))
            needed = tiles_for_view(
                self.visible_rect(), level, slide.level_dimensions[level], slide.level_downsamples[level]
            )
        self._needed = set(needed)
        # Tiles of the previous zoom level stay as a backdrop (under the new ones) until the new level is in, so a
        # zoom step never flashes back to the blurry thumbnail; off-screen ones go at once.
        view = QRectF(*self.visible_rect())
        for key in [k for k in self._items if k not in self._needed]:
            item = self._items.pop(key)
            if needed and item.sceneBoundingRect().intersects(view):
                item.setZValue(0.5)
                self._backdrop[key] = item
            else:
                self.scene().removeItem(item)
        for key in [k for k, item in self._backdrop.items() if k in self._needed or not item.sceneBoundingRect().intersects(view)]:
            self.scene().removeItem(self._backdrop.pop(key))
        missing: list[TileKey] = []
        for key in needed:
            if key in self._items:
                continue
            image = self.cache.get(key)
            if image is None:
                missing.append(key)
            else:
                self._add_tile(key, image)
        self._cancel_loader()
        self._pending = set(missing)
        if not missing:
            self._clear_backdrop()
        if missing:
            worker = self._loads.create(
                load_tiles, slide, missing, name="Read slide tiles", on_progress=self._tile_loaded,
                on_error=self._tiles_failed,
            )
            self._loader = worker
            self._loads.start(worker)
        else:
            self.tiles_idle.emit()

    def _add_tile(self, key: TileKey, image: QImage) -> None:
        slide = self.slide
        (x0, y0, _, _), _ = tile_rect(key, slide.level_dimensions[key.level], slide.level_downsamples[key.level])
        item = QGraphicsPixmapItem(QPixmap.fromImage(image))
        item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        item.setOffset(0, 0)
        item.setPos(x0, y0)
        item.setScale(float(slide.level_downsamples[key.level]))
        item.setZValue(1)
        self.scene().addItem(item)
        self._items[key] = item

    def _tile_loaded(self, payload: tuple[Any, TileKey, QImage]) -> None:
        slide, key, image = payload
        if slide is not self.slide:
            return
        self.tiles_read += 1
        self.cache.put(key, image)
        if key in self._needed and key not in self._items:
            self._add_tile(key, image)
        self._pending.discard(key)
        if not self._pending and not self._update_timer.isActive():
            self._clear_backdrop()
            self.tiles_idle.emit()

    def _clear_backdrop(self) -> None:
        for item in self._backdrop.values():
            self.scene().removeItem(item)
        self._backdrop.clear()

    def _tiles_failed(self, failure: WorkerFailure) -> None:
        log.warning("tile read failed: %s", failure.exc_type)
        self._pending.clear()
        self._clear_backdrop()

    def shutdown(self) -> None:
        self._cancel_loader()
        self._loads.shutdown()

    # --- painting and layout --------------------------------------------------------------------------------------
    def _place_minimap(self) -> None:
        vp = self.viewport().geometry()
        self.minimap.move(vp.right() - self.minimap.width() - 8, vp.top() + 8)
        self.minimap.raise_()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_minimap()
        if self._fit:
            self.fit()
        else:
            self._view_moved()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        super().drawForeground(painter, rect)
        slide = self.slide
        if slide is None:
            return
        painter.save()
        painter.resetTransform()
        vp = QRectF(self.viewport().rect())
        w, h = slide.level_dimensions[0]
        bl: list[str] = []
        mag = self.magnification
        bl.append(f"{format_mag(mag)}" if mag else f"Zoom {self.zoom * 100:.0f}%")
        mpp = slide.mpp
        if mpp and mpp[0]:
            um_per_px = float(mpp[0]) / self.zoom
            length_um, length_px, label = scale_bar(um_per_px)
            bl.append(f"{um_per_px:.2f} µm/px")
            self._paint_scale_bar(painter, vp, length_px, label)
        tl = [f"Slide {w}×{h}, {slide.level_count} levels"]
        if slide.objective_power:
            tl.append(f"Scanned at {format_mag(float(slide.objective_power))}")
        br = []
        if self.roi is not None:
            x, y, rw, rh = self.roi
            br.append(f"Region {rw}×{rh} at {x},{y}")
        paint_overlay(painter, vp, {"tl": tl, "tr": [], "bl": bl, "br": br})
        painter.restore()

    def _paint_scale_bar(self, painter: QPainter, vp: QRectF, length_px: float, label: str) -> None:
        """A black bar with white edges and its length, above the bottom-left text lines."""
        x0 = vp.left() + 10
        y0 = vp.bottom() - 52
        bar = QRectF(x0, y0, length_px, 6)
        painter.fillRect(bar.adjusted(-1, -1, 1, 1), QColor(255, 255, 255))
        painter.fillRect(bar, QColor(0, 0, 0))
        paint_overlay(painter, QRectF(x0 - 6, y0 - 24, length_px + 120, 24), {"tl": [], "tr": [], "bl": [label], "br": []})

    # --- input ----------------------------------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps and self.slide is not None:
            self.set_zoom(self.zoom * ZOOM_STEP**steps, event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        binding = viewer_binding(SLIDE_KEYS, event)  # None with Ctrl / Alt, or while text is typed
        if self.slide is None or binding is None:
            super().keyPressEvent(event)
            return
        action, arg = binding
        if action == "magnification":
            self.set_magnification(MAG_STEPS[arg])
        elif action == "mag_step":
            self.step_magnification(arg)
        elif action == "fit":
            self.fit()
        elif action == "pan":
            vp = self.viewport().rect()
            fx, fy = PAN_STEPS[arg]
            self._fit = False
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + int(fx * vp.width()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() + int(fy * vp.height()))
        elif action == "roi_tool":
            self._toggle_roi_tool()
        elif action == "clear_roi":
            self.set_roi(None)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.slide is not None and self._roi_press(event):
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._roi_move(event):
            return
        super().mouseMoveEvent(event)
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._fit = False

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        roi = self._roi_release(event)
        if roi is not None:
            self.set_roi(roi)
            return
        super().mouseReleaseEvent(event)
