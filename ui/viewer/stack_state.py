"""The image viewer's state as a small signalled model: frame, window, ROI and overlay toggles.

Widgets write user input here and redraw from the signals (napari's Dims / QtDims split); nothing authoritative
lives in the QGraphicsView. The same state builds the ModelInput, so the model sees exactly what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

__all__ = ["StackState", "StackSetup", "WindowChoice", "prepare_stack", "window_choices", "is_colour"]


@dataclass(frozen=True)
class WindowChoice:
    """A named window for the number keys: `label` is shown in the overlay ("file", "ct-lung" …)."""

    label: str
    window: Any  # dicom_io.Window


def _window_type():
    from dicom_io import Window

    return Window


def is_colour(stack: Any) -> bool:
    """Colour images (RGB, YBR, palette) have no window / level: dicom_io renders them as stored."""
    flag = getattr(stack, "is_colour", None)
    if flag is None:
        flag = stack.metadata.get("colour")
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    photometric = str(stack.metadata.get("photometric") or stack.metadata.get("photometric_interpretation") or "")
    if photometric.upper().startswith(("RGB", "YBR", "PALETTE")):
        return True
    return getattr(stack, "kind", "") == "image" and str(stack.metadata.get("mode", "")).upper() in ("RGB", "RGBA")


def window_choices(stack: Any, modality: str | None, extra: dict[str, Any] | None = None) -> list[WindowChoice]:
    """Number-key windows: the file's own windows first, then the CT presets (HU only make sense for CT), then the
    user's presets from settings. Duplicates (same centre and width) are kept once, first name wins."""
    choices: list[WindowChoice] = []
    seen: set[tuple[float, float]] = set()

    def add(label: str, window: Any) -> None:
        if window is None:
            return
        key = (round(float(window.center), 3), round(float(window.width), 3))
        if key in seen or float(window.width) <= 0:
            return
        seen.add(key)
        choices.append(WindowChoice(label, window))

    own = list(getattr(stack, "windows", None) or [])
    default = getattr(stack, "default_window", None)
    if default is not None:
        add("file", default)
    for i, window in enumerate(own):
        add("file" if i == 0 else f"file {i + 1}", window)
    if (modality or "").upper() == "CT":
        from dicom_io import PRESETS

        for name, window in PRESETS.items():
            add(name, window)
    for name, window in (extra or {}).items():
        add(name, window)
    return choices


@dataclass(frozen=True)
class StackSetup:
    """Everything `StackState.set_stack` needs that costs a decode; built off the UI thread by `prepare_stack`."""

    colour: bool
    choices: list[WindowChoice]
    window: Any
    label: str
    value_range: tuple[float, float] | None


def prepare_stack(stack: Any, extra_presets: dict[str, Any] | None = None) -> StackSetup:
    """Decode frame 0 once to decide colour vs grey, the window choices and the starting window."""
    colour = is_colour(stack)
    if colour:
        return StackSetup(True, [], None, "", None)
    modality = stack.metadata.get("modality")
    choices = window_choices(stack, str(modality) if modality else None, extra_presets)
    values = np.asarray(stack.modality_values(0))
    if values.ndim == 3:  # dicom_io says colour after all
        return StackSetup(True, [], None, "", None)
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    value_range = (float(np.nanmin(sample)), float(np.nanmax(sample)))
    own = getattr(stack, "default_window", None)
    if own is not None:
        return StackSetup(False, choices, own, "file", value_range)
    # No window in the file: dicom_io's one auto-window rule (percentiles, see dicom_io.windows.auto_window).
    auto = stack.auto_window()
    return StackSetup(False, choices, auto, "auto", value_range)


class StackState(QObject):
    """Frame, window, ROI and overlay flags of one ImageStack on screen."""

    stack_changed = Signal(object)
    frame_changed = Signal(int)
    window_changed = Signal(object)  # dicom_io.Window or None (colour)
    roi_changed = Signal(object)  # (x, y, w, h) in image pixels or None
    overlay_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stack: Any = None
        self.frame = 0
        self.window: Any = None
        self.window_label = ""
        self.default_window: Any = None
        self.default_label = ""
        self.roi: tuple[int, int, int, int] | None = None
        self.show_overlay = True
        self.show_phi = False
        self.choices: list[WindowChoice] = []
        self.colour = False
        self.value_range: tuple[float, float] | None = None

    @property
    def n_frames(self) -> int:
        return int(getattr(self.stack, "n_frames", 0) or 0) if self.stack is not None else 0

    @property
    def modality(self) -> str | None:
        if self.stack is None:
            return None
        value = self.stack.metadata.get("modality")
        return str(value) if value else None

    def set_stack(self, stack: Any, setup: StackSetup | None = None) -> None:
        """Show a new stack at frame 0 with the file's window (or the frame's range) and no ROI.

        `setup` comes from `prepare_stack()`, run in the worker that opened the file, because it decodes frame 0.
        """
        if stack is not None and setup is None:
            setup = prepare_stack(stack)
        self.stack = stack
        self.frame = 0
        self.roi = None
        setup = setup or StackSetup(colour=False, choices=[], window=None, label="", value_range=None)
        self.colour, self.choices = setup.colour, list(setup.choices)
        self.window, self.window_label, self.value_range = setup.window, setup.label, setup.value_range
        self.default_window, self.default_label = self.window, self.window_label
        self.stack_changed.emit(stack)
        self.frame_changed.emit(self.frame)
        self.window_changed.emit(self.window)
        self.roi_changed.emit(None)

    def set_frame(self, frame: int) -> None:
        if self.stack is None:
            return
        frame = max(0, min(self.n_frames - 1, int(frame)))
        if frame != self.frame:
            self.frame = frame
            self.frame_changed.emit(frame)

    def set_window(self, window: Any, label: str = "custom") -> None:
        if self.stack is None or self.colour or window is None:
            return
        if float(window.width) < 1e-6:
            window = _window_type()(center=float(window.center), width=1e-6, function=window.function)
        self.window, self.window_label = window, label
        self.window_changed.emit(window)

    def apply_preset(self, number: int) -> bool:
        """Number key `number` (1-based). False when no such preset exists (the key is then ignored)."""
        if 1 <= number <= len(self.choices):
            choice = self.choices[number - 1]
            self.set_window(choice.window, choice.label)
            return True
        return False

    def reset_window(self) -> None:
        if self.default_window is not None:
            self.set_window(self.default_window, self.default_label)

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        if roi is not None and self.stack is not None:
            width, height = self.stack.size
            x, y, w, h = (int(round(v)) for v in roi)
            x0, y0 = max(0, min(x, x + w)), max(0, min(y, y + h))
            x1, y1 = min(width, max(x, x + w)), min(height, max(y, y + h))
            roi = (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 2 and y1 - y0 >= 2 else None
        if roi != self.roi:
            self.roi = roi
            self.roi_changed.emit(roi)

    def set_overlay(self, *, show: bool | None = None, phi: bool | None = None) -> None:
        if show is not None:
            self.show_overlay = show
        if phi is not None:
            self.show_phi = phi
        self.overlay_changed.emit()
