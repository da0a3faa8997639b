"""Keyboard map of the image viewer, as data (Weasis users' muscle memory; clinical-anchors B.3 #2).

Slices: Down / Right / PgDn = next, Up / Left / PgUp = previous, Home / End = first / last; Shift multiplies the step by
10 (arrows) and PgUp / PgDn move a tenth of the series (at least 10). Number keys 1–9 pick window presets, the file's own
window first, 0 goes back to the file's default.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QPlainTextEdit, QTextEdit

#: key → (action, argument)
STACK_KEYS: dict[int, tuple[str, int]] = {
    Qt.Key.Key_Down: ("step", +1),
    Qt.Key.Key_Right: ("step", +1),
    Qt.Key.Key_Up: ("step", -1),
    Qt.Key.Key_Left: ("step", -1),
    Qt.Key.Key_PageDown: ("page", +1),
    Qt.Key.Key_PageUp: ("page", -1),
    Qt.Key.Key_Home: ("first", 0),
    Qt.Key.Key_End: ("last", 0),
    Qt.Key.Key_0: ("reset_window", 0),
    **{getattr(Qt.Key, f"Key_{i}"): ("preset", i) for i in range(1, 10)},
    Qt.Key.Key_F: ("fit", 0),
    Qt.Key.Key_O: ("one_to_one", 0),
    Qt.Key.Key_Plus: ("zoom", +1),
    Qt.Key.Key_Equal: ("zoom", +1),
    Qt.Key.Key_Minus: ("zoom", -1),
    Qt.Key.Key_Space: ("cine", 0),
    Qt.Key.Key_R: ("roi_tool", 0),
    Qt.Key.Key_Escape: ("clear_roi", 0),
    Qt.Key.Key_P: ("toggle_phi", 0),
    Qt.Key.Key_V: ("toggle_overlay", 0),
    # display transform (Weasis habits): invert, rotate, mirror (Shift: top-bottom), reset everything
    Qt.Key.Key_I: ("invert", 0),
    Qt.Key.Key_BracketRight: ("rotate", +90),
    Qt.Key.Key_BracketLeft: ("rotate", -90),
    Qt.Key.Key_H: ("flip", 0),
    Qt.Key.Key_Backspace: ("reset_view", 0),
}

#: slide viewer: key → (action, argument); magnification digits index MAG_STEPS (1 = 1.25× … 6 = 40×)
SLIDE_KEYS: dict[int, tuple[str, int]] = {
    **{getattr(Qt.Key, f"Key_{i}"): ("magnification", i - 1) for i in range(1, 7)},
    Qt.Key.Key_Plus: ("mag_step", +1),
    Qt.Key.Key_Equal: ("mag_step", +1),
    Qt.Key.Key_Minus: ("mag_step", -1),
    Qt.Key.Key_F: ("fit", 0),
    Qt.Key.Key_Left: ("pan", 0),
    Qt.Key.Key_Right: ("pan", 1),
    Qt.Key.Key_Up: ("pan", 2),
    Qt.Key.Key_Down: ("pan", 3),
    Qt.Key.Key_R: ("roi_tool", 0),
    Qt.Key.Key_Escape: ("clear_roi", 0),
}
#: pan direction (SLIDE_KEYS "pan" argument) → fraction of the viewport (dx, dy)
PAN_STEPS: tuple[tuple[float, float], ...] = ((-0.25, 0.0), (0.25, 0.0), (0.0, -0.25), (0.0, 0.25))

SHIFT_FACTOR = 10

#: actions a held Shift belongs to (a bigger step; "+" needs Shift on many layouts); other keys ignore Shift+key
SHIFT_ACTIONS = frozenset({"step", "page", "first", "last", "zoom", "mag_step", "pan", "flip"})  # Shift+H: flip top–bottom
_NOT_VIEWER_MODIFIERS = (
    Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
)


def text_field_has_focus() -> bool:
    """Is the keyboard in an editable text field (question box, tag search, settings)? Then keys are text."""
    widget = QApplication.focusWidget()
    if isinstance(widget, QLineEdit | QAbstractSpinBox):
        return not (isinstance(widget, QLineEdit) and widget.isReadOnly())
    if isinstance(widget, QTextEdit | QPlainTextEdit):
        return not widget.isReadOnly()
    return isinstance(widget, QComboBox) and widget.isEditable()


def viewer_binding(table: dict[int, tuple[str, int]], event: QKeyEvent) -> tuple[str, int] | None:
    """The (action, argument) of key `event` in `table` (STACK_KEYS / SLIDE_KEYS), or None when the key is not the
    viewer's: with Ctrl, Alt or Meta held (the window's and the system's shortcuts: Ctrl+1 is no preset), with Shift
    on a key that takes none (typing a capital "P" must not put patient data on screen), or while an editable text
    field has the keyboard (the key is text). The one guard both viewers' keyPressEvent go through."""
    binding = table.get(event.key())
    if binding is None:
        return None
    modifiers = event.modifiers()
    if modifiers & _NOT_VIEWER_MODIFIERS:
        return None
    if modifiers & Qt.KeyboardModifier.ShiftModifier and binding[0] not in SHIFT_ACTIONS:
        return None
    if text_field_has_focus():
        return None
    return binding


def slice_target(action: str, arg: int, current: int, n_frames: int, shift: bool) -> int:
    """Where a slice key goes, clamped to the series. Pure, so the key map is tested without a window."""
    if n_frames <= 0:
        return 0
    last = n_frames - 1
    if action == "step":
        target = current + arg * (SHIFT_FACTOR if shift else 1)
    elif action == "page":
        target = current + arg * max(SHIFT_FACTOR, n_frames // 10)
    elif action == "first":
        target = 0
    elif action == "last":
        target = last
    else:
        raise ValueError(f"not a slice action: {action}")
    return max(0, min(last, target))


#: The one rule of every viewer key (`viewer_binding`), said once above the Help → Keyboard and mouse table.
KEY_RULE = ("Viewer keys are plain keys: with Ctrl, Alt or Meta held they are the window's shortcuts, Shift only "
            "where a row says so, and while a text field has the keyboard they are typing.")

#: What the Help → Keyboard and mouse dialog lists (kept next to the tables it describes; a test checks that every
#: key of STACK_KEYS, SLIDE_KEYS and the measurement keys is named here or in `measure_tool.MEASURE_HELP`).
HELP: tuple[tuple[str, str, str], ...] = (
    ("Images", "↓ → / ↑ ←", "next / previous slice (Shift: 10 slices)"),
    ("Images", "PgDn / PgUp", "a tenth of the series forward / back (at least 10)"),
    ("Images", "Home / End", "first / last slice"),
    ("Images", "Wheel", "scroll slices (single images: zoom)"),
    ("Images", "Right-drag", "window / level: horizontal = width, vertical = level"),
    ("Images", "1 … 9, 0", "window presets (the file's own first), 0 = the file's default"),
    ("Images", "Space", "cine at the file's frame time"),
    ("Images", "F / O / + = / −", "fit / 1:1 pixels / zoom in (+ or =) / zoom out"),
    ("Images", "V / P", "overlay / patient data in the overlay"),
    ("Images", "I", "invert grey levels"),
    ("Images", "] / [", "rotate 90° clockwise / counter-clockwise"),
    ("Images", "H / Shift+H", "mirror left-right / top-bottom"),
    ("Images", "Backspace", "reset window, zoom, rotation, mirroring, inversion"),
    ("Images", "View → Layout",
     "1×1 / 1×2 / 2×2 views; browser right-click \"Open in view N\" or drag a series or file onto a view; "
     "the framed view is the one the keys, panels and model use"),
    ("Images", "Link scrolling", "(View → Layout) the other views follow to the same slice position"),
    ("Both", "Ctrl+wheel", "zoom at the cursor"),
    ("Both", "Left-drag", "pan (with the region tool: draw the region the model sees)"),
    ("Both", "R / Esc", "region tool on/off / clear the region"),
    ("Slides", "Wheel", "zoom at the cursor"),
    ("Slides", "1 … 6", "1.25× 2.5× 5× 10× 20× 40×"),
    ("Slides", "+ = / −", "next (+ or =) / previous magnification step"),
    ("Slides", "← → ↑ ↓", "pan a quarter screen"),
    ("Slides", "F", "fit the slide"),
)
