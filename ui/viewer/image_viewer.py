"""The DICOM / plain-image viewer: a QGraphicsView over one ImageStack.

Mouse: right-drag = window / level (horizontal → width, vertical → level), left-drag = pan (or draw the ROI when the
ROI tool is on), wheel = slices (Ctrl+wheel, or any wheel on a single image = zoom at the cursor). Keys: see keymap.py.

Rendering runs on a one-thread pool, latest request wins: a W/L drag or cine asks for many frames, the worker renders
the newest one when it is free, so the UI thread only swaps pixmaps. The pixels come from `ImageStack.render`, the
same function behind `render_rgb`, which is what the model receives (ModelInput) — so screen and model agree.

Cine: a precise timer at the file's frame time advances exactly one frame per tick; the worker renders frames
ahead of the cursor into a small cache of finished QImages, so a tick only swaps a pixmap (no decode, no worker
round trip on the tick).

Display transform (invert, rotate, flip; `medapp.display`): rotation and mirroring are the view's transform, so
scene coordinates stay image pixels for the ROI, the cursor readout and any drawn item; inversion is applied to
the rendered 8-bit grey frame. None of it reaches the model input (see `medapp.model_input`).

Frame, window, region and overlay flags live in the window's shared `medapp.viewer_state.ViewerState`
(`context.view`); `self.state` is its Qt adapter (`StackState`), and the model input is derived from it
(`medapp.model_input.model_input_for`).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from medapp.display import display_matrix, image_orientation, orientation_markers
from medapp.measurements import MeasurementStore
from medapp.model_input import ModelInput, model_input_for
from medapp.overlay_layout import OverlayLayout
from medapp.viewer_state import ViewerState
from ui.context import AppContext
from ui.viewer.keymap import STACK_KEYS, slice_target, viewer_binding
from ui.viewer.measure_tool import MeasureToolMixin
from ui.viewer.overlay import format_window, paint_overlay, stack_overlay
from ui.viewer.qimage import array_to_qimage
from ui.viewer.roi_tool import RoiToolMixin
from ui.viewer.stack_state import StackSetup, StackState
from ui.viewer.zoom import scale_about
from ui.workers import WorkerFailure, WorkerManager

__all__ = ["ImageViewer", "describe_view"]

log = logging.getLogger(__name__)

ZOOM_STEP = 1.25
ZOOM_MIN, ZOOM_MAX = 0.02, 64.0
DEFAULT_CINE_MS = 100.0  # 10 frames/s when the file gives no (0018,1063) Frame Time
#: Interpolation (Weasis and QuPath draw bilinear by default): smooth at fit and up to this zoom, so a small image
#: filling the screen is not a mosaic; past it, when the user zooms in by hand, nearest neighbour shows the real
#: pixels a radiologist is then inspecting.
SMOOTH_MAX_ZOOM = 4.0
CINE_AHEAD = 6  # frames rendered ahead of the cine cursor
CACHE_BYTES = 96 * 1024 * 1024  # finished frames kept for cine (a 640×480 RGB frame is 0.9 MB)


def _display_pixels(stack: Any, frame: int, window: Any, invert: bool) -> Any:
    """Worker side: the frame as shown, as a QImage (inverted when asked and grey: MONOCHROME display only)."""
    pixels = np.asarray(stack.render(frame, window))
    if invert and pixels.ndim == 2:
        pixels = 255 - pixels
    return array_to_qimage(pixels)


def _render_frame(
    stack: Any, frame: int, window: Any, need_values: bool, invert: bool = False
) -> tuple[Any, int, Any, Any, Any, bool]:
    """Worker side: display pixels (and, on a new frame, the values under the cursor readout)."""
    qimage = _display_pixels(stack, frame, window, invert)
    values = np.asarray(stack.modality_values(frame)) if need_values else None
    return stack, frame, window, qimage, values, invert


def _render_ahead(stack: Any, frames: list[int], window: Any, invert: bool) -> tuple[Any, Any, bool, list[Any]]:
    """Worker side: frames the cine will show next, finished (QImage) so a tick only swaps a pixmap."""
    return stack, window, invert, [(frame, _display_pixels(stack, frame, window, invert)) for frame in frames]


def describe_view(state: StackState, roi: tuple[int, int, int, int] | None = None) -> str:
    """A PHI-free one-liner of what is on screen: modality, series, image number, window, region."""
    stack = state.stack
    meta = stack.metadata
    parts = [str(meta.get("modality") or stack.kind)]
    if meta.get("series_description"):
        parts.append(str(meta["series_description"]))
    parts.append(f"image {state.frame + 1}/{state.n_frames}")
    if state.window is not None:
        parts.append(format_window(state.window, state.window_label))
    if roi is not None:
        x, y, w, h = roi
        parts.append(f"region {w}×{h} at ({x}, {y})")
    return ", ".join(parts)


class ImageViewer(MeasureToolMixin, RoiToolMixin, QGraphicsView):
    """Shows `state.stack`; all user input goes through `self.state` (a StackState over `context.view`)."""

    frame_rendered = Signal()  # the pixmap now shows (state.frame, state.window)
    cursor_info = Signal(str)  # "x 12 y 40: -998 HU" for the status bar
    tool_changed = Signal(str)  # "pan" | "roi"
    cine_changed = Signal(bool)

    def __init__(
        self, context: AppContext | None = None, parent: QWidget | None = None, *, state: ViewerState | None = None
    ) -> None:
        super().__init__(parent)
        self.context = context
        # the window's shared ViewerState (context.view) unless given its own (a further cell of the viewer grid);
        # a viewer without either gets its own
        if state is None and context is not None:
            state = context.view
        self.state = StackState(state, self)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(0, 0, 0))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)  # overlay follows pans
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)  # right button = window / level
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # drops go to the main window
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self._pixmap_item = QGraphicsPixmapItem()
        self._pixmap_item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self.scene().addItem(self._pixmap_item)
        self._init_roi_tool(QColor(255, 200, 0))

        self._renderer = WorkerManager(self, max_threads=1)
        if context is not None:
            self._renderer.worker_failed.connect(context.workers.worker_failed.emit)
        self._render_busy = False
        self._render_dirty = False
        self._shown: tuple[int, Any, bool] | None = None
        self._failed: tuple[int, Any, bool] | None = None
        self._frames: OrderedDict[tuple[int, Any, bool], QImage] = OrderedDict()  # finished frames (cine cache)
        self._frames_bytes = 0
        self._values: tuple[int, np.ndarray] | None = None
        self._fit = True
        self._wl_drag: tuple[QPointF, Any] | None = None
        self.phi: dict[str, Any] = {}
        self.overlay_layout: OverlayLayout | None = None  # where the last paint put the corner text and letters

        self._cine = QTimer(self)
        self._cine.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse timer may fire up to 5 % late per tick
        self._cine.timeout.connect(self._cine_step)

        self.state.stack_changed.connect(self._on_stack)
        self.state.frame_changed.connect(self._on_view_changed)
        self.state.window_changed.connect(self._on_view_changed)
        self.state.roi_changed.connect(self._on_roi)
        self.state.overlay_changed.connect(self.viewport().update)
        self._init_measure_tool(
            context.measurements if context is not None else MeasurementStore(),
            image_item=self._pixmap_item,
            qt_signals=(self.state.stack_changed, self.state.frame_changed, self.frame_rendered),
        )
        self.state.transform_changed.connect(self._on_transform)

    # --- public API ---------------------------------------------------------------------------------------------
    def set_stack(self, stack: Any, setup: StackSetup | None = None, *, phi: dict[str, Any] | None = None) -> None:
        """Show `stack` (an ImageStack). `setup` from `prepare_stack` avoids a decode on the UI thread."""
        self.stop_cine()
        self.phi = dict(phi or getattr(stack, "phi", None) or {}) if stack is not None else {}
        self._shown = None
        self._values = None
        self._clear_frames()
        self._fit = True
        self.state.set_stack(stack, setup)

    def clear(self) -> None:
        self.set_stack(None)

    @property
    def stack(self) -> Any:
        return self.state.stack

    @property
    def zoom(self) -> float:
        """Screen px per image px (the scale of the view's transform, whatever its rotation or mirroring)."""
        t = self.transform()
        return float(math.hypot(t.m11(), t.m12()))

    def _key(self) -> tuple[int, Any, bool]:
        return self.state.frame, self.state.window, bool(self.state.invert and not self.state.colour)

    def is_current(self) -> bool:
        """True when the pixmap shows the state's frame, window and inversion (tests and screenshots wait)."""
        return self.state.stack is not None and self._shown == self._key()

    def is_idle(self) -> bool:
        """Nothing left to draw: the view is current, or rendering it failed (the error dialog says why)."""
        if self.state.stack is None or self.is_current():
            return True
        return not self._render_busy and self._failed == self._key()

    def markers(self) -> dict[str, str] | None:
        """Patient-direction letters at the screen edges ("left", "right", "top", "bottom"), or None."""
        stack = self.state.stack
        if stack is None:
            return None
        try:
            iop = image_orientation(stack, self.state.frame)
        except Exception:  # noqa: BLE001 — markers are an aid; a broken header only means none are drawn
            return None
        return orientation_markers(iop, self.state.rotation, self.state.flip_h, self.state.flip_v)

    def reset_view(self) -> None:
        """The one-key reset: the file's window, no inversion / rotation / mirroring, fitted to the window."""
        self.state.reset_display()
        self.fit()

    def fit(self) -> None:
        self._fit = True
        if not self._pixmap_item.pixmap().isNull():
            self.fitInView(self._pixmap_item, Qt.AspectRatioMode.KeepAspectRatio)
            self._update_smoothing()
        self.viewport().update()

    def one_to_one(self) -> None:
        self._fit = False
        self.setTransform(self._display_transform(1.0))
        self._update_smoothing()
        self.viewport().update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the scene point under `anchor` (viewport coordinates; default the centre) in place."""
        current = self.zoom
        target = max(ZOOM_MIN, min(ZOOM_MAX, current * factor))
        if current <= 0 or abs(target - current) < 1e-9:
            return
        self._fit = False
        scale_about(self, target / current, anchor)
        self._update_smoothing()
        self.viewport().update()

    def toggle_cine(self) -> None:
        if self._cine.isActive():
            self.stop_cine()
        else:
            self.start_cine()

    def start_cine(self) -> None:
        """Play frames at the DICOM frame time ((0018,1063) / Frame Time Vector via dicom_io), looping: one frame
        per tick of a precise timer, the frames ahead rendered by the worker while the current one shows."""
        if self.state.n_frames < 2:
            return
        self._cine.start(max(1, int(round(self.cine_frame_ms))))
        self._prefetch()
        self.cine_changed.emit(True)

    @property
    def cine_frame_ms(self) -> float:
        """The file's frame time (ms), or DEFAULT_CINE_MS when it gives none."""
        ms = getattr(self.state.stack, "frame_time_ms", None) if self.state.stack is not None else None
        try:
            value = float(ms) if ms else 0.0
        except (TypeError, ValueError):
            value = 0.0
        return value if value > 0 else DEFAULT_CINE_MS

    @property
    def cine_timer(self) -> QTimer:
        """The cine's timer (tests read its schedule: interval and timer type)."""
        return self._cine

    def stop_cine(self) -> None:
        if self._cine.isActive():
            self._cine.stop()
            self.cine_changed.emit(False)
            if self.state.stack is not None and (self._values is None or self._values[0] != self.state.frame):
                self._request_render()  # the cursor readout's values, skipped while playing

    def shutdown(self) -> None:
        """Stop cine and wait for the render worker (window close)."""
        self.stop_cine()
        self._renderer.shutdown()

    @property
    def cine_interval_ms(self) -> int | None:
        return self._cine.interval() if self._cine.isActive() else None

    def model_input(self, use_region: bool = True) -> ModelInput | None:
        """Exactly what is shown (ROI if drawn and `use_region`, at the current frame and window) for the model."""
        state = self.state
        if state.stack is None:
            return None
        roi = state.roi if use_region else None
        return model_input_for(state.model, use_region=use_region, description=describe_view(state, roi))

    def _m_document(self) -> Any:
        return self.state.stack

    def _m_frame(self) -> int:
        return int(self.state.frame)

    def _m_values(self) -> np.ndarray | None:
        """The modality values of the frame on screen (decoded with its pixels), or None while they are not in."""
        if self._values is None or self._values[0] != self.state.frame or self.state.stack is None:
            return None
        return self._values[1]

    # --- state → view -------------------------------------------------------------------------------------------
    def _on_stack(self, stack: Any) -> None:
        self._clear_frames()
        if stack is None:
            self._pixmap_item.setPixmap(QPixmap())
            self._roi_item.hide()
        self.viewport().update()
        self._notify()

    def _on_view_changed(self, *_: Any) -> None:
        if not self._show_cached():
            self._request_render()
        self._notify()

    def _on_transform(self) -> None:
        """Rotation / mirroring: a new view transform at the same zoom and centre; inversion: a new render."""
        if self.state.stack is None:
            return
        centre = self.mapToScene(self.viewport().rect().center())
        self.setTransform(self._display_transform(self.zoom or 1.0))
        if self._fit:
            self.fit()
        else:
            self.centerOn(centre)
        if not self.is_current():
            self._on_view_changed()
        self.viewport().update()

    def _display_transform(self, scale: float) -> QTransform:
        """The view's transform for the state's rotation and mirroring at `scale` screen px per image px."""
        m = display_matrix(self.state.rotation, self.state.flip_h, self.state.flip_v) * float(scale)
        return QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], 0.0, 0.0)  # Qt: x' = m11 x + m21 y, y' = m12 x + m22 y

    def _on_roi(self, roi: Any) -> None:
        self._show_roi(roi)
        self.viewport().update()
        self._notify()

    def _notify(self) -> None:
        if self.context is not None:
            self.context.notify_input_changed()

    def _request_render(self) -> None:
        if self.state.stack is None:
            return
        if self._render_busy:
            self._render_dirty = True
            return
        self._render_busy = True
        self._render_dirty = False
        stack, (frame, window, invert) = self.state.stack, self._key()
        # cursor values cost a second pass over the frame: not during cine (they are read once it stops)
        need_values = not self._cine.isActive() and (self._values is None or self._values[0] != frame)
        self._renderer.run(
            _render_frame, stack, frame, window, need_values, invert, name="Render image",
            on_result=self._on_rendered,
            on_error=self._on_render_failed,
            on_finished=self._on_render_finished,
        )

    def _on_rendered(self, result: tuple[Any, int, Any, Any, Any, bool]) -> None:
        stack, frame, window, qimage, values, invert = result
        if stack is not self.state.stack:
            return  # a newer file is on screen
        if self._cine.isActive():  # only cine keeps frames (a W/L drag would fill the cache with one-off windows)
            self._keep_frame((frame, window, invert), qimage)
        if values is not None:
            self._values = (frame, values)
        self._show(qimage, (frame, window, invert))

    def _show(self, qimage: QImage, key: tuple[int, Any, bool]) -> None:
        """Swap the pixmap: the only per-frame work on the UI thread."""
        first = self._pixmap_item.pixmap().isNull()
        self._pixmap_item.setPixmap(QPixmap.fromImage(qimage))
        self.scene().setSceneRect(self._pixmap_item.boundingRect())
        self._shown = key
        if first or self._fit:
            self.fit()
        self.viewport().update()
        if self.is_current():
            self.frame_rendered.emit()

    def _show_cached(self) -> bool:
        """Show the state's frame from the cache of finished frames; False when it is not there."""
        if self.state.stack is None:
            return False
        key = self._key()
        if self._shown == key:
            return True
        qimage = self._frames.get(key)
        if qimage is None:
            return False
        self._frames.move_to_end(key)
        self._show(qimage, key)
        if not self._cine.isActive() and (self._values is None or self._values[0] != key[0]):
            self._request_render()  # the cursor readout's values of this frame (not read while cine plays)
        self._prefetch()
        return True

    def _keep_frame(self, key: tuple[int, Any, bool], qimage: QImage) -> None:
        if key in self._frames:
            return
        self._frames[key] = qimage
        self._frames_bytes += qimage.sizeInBytes()
        while self._frames_bytes > CACHE_BYTES and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self._frames_bytes -= old.sizeInBytes()

    def _clear_frames(self) -> None:
        self._frames.clear()
        self._frames_bytes = 0

    def _prefetch(self) -> None:
        """While cine plays and the worker is free, render the next frames (up to CINE_AHEAD) not yet cached."""
        stack = self.state.stack
        if stack is None or not self._cine.isActive() or self._render_busy:
            return
        n = self.state.n_frames
        frame, window, invert = self._key()
        ahead = [(frame + i) % n for i in range(1, min(CINE_AHEAD, n - 1) + 1)]
        missing = [f for f in ahead if (f, window, invert) not in self._frames]
        if not missing:
            return
        self._render_busy = True
        self._renderer.run(
            _render_ahead, stack, missing[:2], window, invert, name="Render image",
            on_result=self._on_rendered_ahead,
            on_error=self._on_render_failed,
            on_finished=self._on_render_finished,
        )

    def _on_rendered_ahead(self, result: tuple[Any, Any, bool, list[Any]]) -> None:
        stack, window, invert, frames = result
        if stack is not self.state.stack:
            return
        for frame, qimage in frames:
            self._keep_frame((frame, window, invert), qimage)

    def _on_render_failed(self, failure: WorkerFailure) -> None:
        log.warning("render failed: %s", failure.exc_type)
        self._failed = self._key()
        self.stop_cine()

    def _on_render_finished(self) -> None:
        self._render_busy = False
        if self._render_dirty or not (self.is_current() or self._failed == self._key()):
            self._render_dirty = False
            if not self._show_cached():
                self._request_render()
                return
        self._prefetch()

    def _update_smoothing(self) -> None:
        """Interpolate at fit and up to SMOOTH_MAX_ZOOM (small images are not blocky, shrunk ones not aliased);
        nearest neighbour when the user zoomed in further by hand, to see the real pixels."""
        smooth = self._fit or self.zoom <= SMOOTH_MAX_ZOOM
        mode = Qt.TransformationMode.SmoothTransformation if smooth else Qt.TransformationMode.FastTransformation
        self._pixmap_item.setTransformationMode(mode)

    @property
    def smooth(self) -> bool:
        """True when the image is drawn interpolated (tests)."""
        return self._pixmap_item.transformationMode() == Qt.TransformationMode.SmoothTransformation

    def _cine_step(self) -> None:
        """One tick: the next frame, exactly one step (a frame not ready is skipped over, the clock never waits)."""
        n = self.state.n_frames
        if n < 2:
            self.stop_cine()
            return
        self.state.set_frame((self.state.frame + 1) % n)

    # --- painting -----------------------------------------------------------------------------------------------
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 (Qt override)
        super().drawForeground(painter, rect)
        if self.state.stack is None:
            return
        painter.save()
        painter.resetTransform()
        corners = stack_overlay(self.state, self.zoom, phi=self.phi)
        markers = self.markers() if self.state.show_overlay else None
        # corners and letters laid out together: in a narrow view nothing overlaps (kept for the tests)
        self.overlay_layout = paint_overlay(painter, QRectF(self.viewport().rect()), corners, markers)
        painter.restore()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    # --- input --------------------------------------------------------------------------------------------------
    def _wl_sensitivity(self) -> float:
        lo, hi = self.state.value_range or (0.0, 255.0)
        return max((hi - lo) / 400.0, 0.01)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.state.stack is not None:
            if event.button() == Qt.MouseButton.RightButton and not self.state.colour and self.state.window:
                self.stop_cine()
                self._wl_drag = (event.position(), self.state.window)
                event.accept()
                return
            if self._roi_press(event):
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._wl_drag is not None:
            start, window = self._wl_drag
            delta = event.position() - start
            s = self._wl_sensitivity()
            from medapp.documents import make_window

            self.state.set_window(
                make_window(
                    float(window.center) + delta.y() * s,
                    max(float(window.width) + delta.x() * s, s),
                    window.function,
                ),
                "custom",
            )
            event.accept()
            return
        if self._roi_move(event):
            return
        self._emit_cursor(event.position())
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._wl_drag is not None and event.button() == Qt.MouseButton.RightButton:
            self._wl_drag = None
            event.accept()
            return
        roi = self._roi_release(event)
        if roi is not None:
            self.state.set_roi(roi)
            if self.state.roi is None:
                self._roi_item.hide()
            return
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self.state.stack is None:
            return
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            return
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if ctrl or self.state.n_frames < 2:
            self.zoom_by(ZOOM_STEP**steps, event.position())
        else:
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            direction = -1 if steps > 0 else 1  # wheel away from you = previous slice (Weasis)
            self.state.set_frame(
                slice_target("step", direction * max(1, round(abs(steps))), self.state.frame, self.state.n_frames, shift)
            )
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        binding = viewer_binding(STACK_KEYS, event)  # None with Ctrl / Alt, or while text is typed
        if binding is None or self.state.stack is None:
            super().keyPressEvent(event)
            return
        action, arg = binding
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if action in ("step", "page", "first", "last"):
            self.state.set_frame(slice_target(action, arg, self.state.frame, self.state.n_frames, shift))
        elif action == "preset":
            self.state.apply_preset(arg)
        elif action == "reset_window":
            self.state.reset_window()
        elif action == "fit":
            self.fit()
        elif action == "one_to_one":
            self.one_to_one()
        elif action == "zoom":
            self.zoom_by(ZOOM_STEP if arg > 0 else 1 / ZOOM_STEP)
        elif action == "cine":
            self.toggle_cine()
        elif action == "roi_tool":
            self._toggle_roi_tool()
        elif action == "clear_roi":
            self.state.set_roi(None)
        elif action == "toggle_phi":
            self.state.set_overlay(phi=not self.state.show_phi)
        elif action == "toggle_overlay":
            self.state.set_overlay(show=not self.state.show_overlay)
        elif action == "invert":
            self.state.set_invert(not self.state.invert)
        elif action == "rotate":
            self.state.rotate(arg)
        elif action == "flip":
            if shift:
                self.state.flip_vertical()
            else:
                self.state.flip_horizontal()
        elif action == "reset_view":
            self.reset_view()
        event.accept()

    def _emit_cursor(self, pos: QPointF) -> None:
        if self._values is None or self._values[0] != self.state.frame:
            return
        point = self.mapToScene(pos.toPoint())
        x, y = int(np.floor(point.x())), int(np.floor(point.y()))
        values = self._values[1]
        if 0 <= y < values.shape[0] and 0 <= x < values.shape[1]:
            value = values[y, x]
            if np.ndim(value) == 0:
                unit = " HU" if (self.state.modality or "").upper() == "CT" else ""
                text = f"x {x} y {y}: {float(value):.0f}{unit}"
            else:
                text = f"x {x} y {y}: " + ", ".join(str(int(v)) for v in np.ravel(value)[:3])
            self.cursor_info.emit(text)
