"""The image viewer's Qt face of the core's `medapp.viewer_state.ViewerState`: the same values, as Qt signals.

The state itself (document, frame, window, region, overlay flags) lives in the Qt-free `ViewerState`, which the
session, the CLI and the tests use without a screen. `StackState` only re-emits its psygnal events as Qt signals
(so existing widgets keep `connect`ing as before) and forwards the setters; it stores nothing of its own. Events
about a slide are not forwarded: the image viewer shows stacks only.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from medapp.stack_setup import StackSetup, WindowChoice, is_colour, prepare_stack, window_choices
from medapp.viewer_state import ViewerState

_TRANSFORM = ("invert", "rotation", "flip_h", "flip_v")

__all__ = ["StackState", "StackSetup", "WindowChoice", "prepare_stack", "window_choices", "is_colour"]


class StackState(QObject):
    """Qt signals over a `ViewerState` (`self.model`) for the stack on screen."""

    stack_changed = Signal(object)
    frame_changed = Signal(int)
    window_changed = Signal(object)  # dicom_io.Window or None (colour)
    roi_changed = Signal(object)  # (x, y, w, h) in image pixels or None
    overlay_changed = Signal()
    transform_changed = Signal()  # invert / rotation / flip_h / flip_v

    def __init__(self, model: ViewerState | None = None, parent: QObject | None = None) -> None:
        if isinstance(model, QObject) and parent is None:  # the old StackState(parent) form
            model, parent = None, model
        super().__init__(parent)
        self.model = model if model is not None else ViewerState()
        events = self.model.events
        events.document.connect(self._on_document)
        events.frame.connect(self._on_frame)
        events.window.connect(self._on_window)
        events.window_label.connect(self._on_window_label)
        events.region.connect(self._on_region)
        events.show_overlay.connect(self._on_overlay)
        events.show_phi.connect(self._on_overlay)
        for name in _TRANSFORM:
            getattr(events, name).connect(self._on_transform)
        # the state may outlive the viewer (it belongs to the window's context): stop listening when Qt deletes us
        disconnect = self.disconnect_model
        self.destroyed.connect(lambda *_: disconnect())

    def disconnect_model(self) -> None:
        """Stop listening to the model (the widget goes away; the model may outlive it)."""
        events = self.model.events
        for signal, slot in (
            (events.document, self._on_document), (events.frame, self._on_frame), (events.window, self._on_window),
            (events.window_label, self._on_window_label), (events.region, self._on_region),
            (events.show_overlay, self._on_overlay), (events.show_phi, self._on_overlay),
            *((getattr(events, name), self._on_transform) for name in _TRANSFORM),
        ):
            signal.disconnect(slot, missing_ok=True)

    # --- model → Qt ----------------------------------------------------------------------------------------------
    def _on_document(self, document: Any, *_: Any) -> None:
        if document is not None and self.model.is_slide:
            document = None  # a slide is the slide viewer's; here it means "no stack"
        self.stack_changed.emit(document)
        self.frame_changed.emit(self.model.frame)
        self.window_changed.emit(self.model.window)
        self.roi_changed.emit(self.model.region if document is not None else None)
        self.transform_changed.emit()

    def _on_frame(self, frame: int, *_: Any) -> None:
        if self.model.stack is not None:
            self.frame_changed.emit(int(frame))

    def _on_window(self, window: Any, *_: Any) -> None:
        if self.model.stack is not None:
            self.window_changed.emit(window)

    def _on_window_label(self, *_: Any) -> None:
        if self.model.stack is not None:
            self.overlay_changed.emit()

    def _on_transform(self, *_: Any) -> None:
        if self.model.stack is not None:
            self.transform_changed.emit()

    def _on_region(self, region: Any, *_: Any) -> None:
        if self.model.stack is not None:
            self.roi_changed.emit(region)

    def _on_overlay(self, *_: Any) -> None:
        self.overlay_changed.emit()

    # --- the model's values, under the names the viewer uses -----------------------------------------------------
    @property
    def stack(self) -> Any:
        return self.model.stack

    @property
    def frame(self) -> int:
        return self.model.frame

    @property
    def window(self) -> Any:
        return self.model.window

    @property
    def window_label(self) -> str:
        return self.model.window_label

    @property
    def default_window(self) -> Any:
        return self.model.default_window

    @property
    def default_label(self) -> str:
        return self.model.setup.label

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        return self.model.region if self.model.stack is not None else None

    @property
    def show_overlay(self) -> bool:
        return self.model.show_overlay

    @property
    def show_phi(self) -> bool:
        return self.model.show_phi

    @property
    def choices(self) -> list[WindowChoice]:
        return self.model.choices

    @property
    def colour(self) -> bool:
        return self.model.colour

    @property
    def value_range(self) -> tuple[float, float] | None:
        return self.model.value_range

    @property
    def n_frames(self) -> int:
        return self.model.n_frames

    @property
    def modality(self) -> str | None:
        return self.model.modality if self.model.stack is not None else None

    # --- user input → model --------------------------------------------------------------------------------------
    def set_stack(self, stack: Any, setup: StackSetup | None = None) -> None:
        """Show a new stack at frame 0 with the file's window (or the frame's range) and no ROI."""
        if stack is None and self.model.is_slide:
            return  # clearing the image viewer must not close the slide that replaced it
        self.model.open(stack, setup)

    def set_frame(self, frame: int) -> None:
        self.model.set_frame(frame)

    def set_window(self, window: Any, label: str = "custom") -> None:
        self.model.set_window(window, label)

    def apply_preset(self, number: int) -> bool:
        return self.model.apply_preset(number)

    def reset_window(self) -> None:
        self.model.reset_window()

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        if self.model.stack is not None or roi is None:
            self.model.set_region(roi)

    def set_overlay(self, *, show: bool | None = None, phi: bool | None = None) -> None:
        self.model.set_overlay(show=show, phi=phi)

    # --- display transform ---------------------------------------------------------------------------------------
    @property
    def invert(self) -> bool:
        return self.model.invert

    @property
    def rotation(self) -> int:
        return self.model.rotation

    @property
    def flip_h(self) -> bool:
        return self.model.flip_h

    @property
    def flip_v(self) -> bool:
        return self.model.flip_v

    def set_invert(self, on: bool) -> None:
        self.model.set_invert(on)

    def rotate(self, degrees: int = 90) -> None:
        self.model.rotate(degrees)

    def flip_horizontal(self) -> None:
        self.model.flip_horizontal()

    def flip_vertical(self) -> None:
        self.model.flip_vertical()

    def reset_display(self) -> None:
        self.model.reset_display()
