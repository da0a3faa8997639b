"""Help → Keyboard and mouse names every key the viewers really bind (a key added to a table without a help row fails
here), says the modifier / text-field rule once, and lists the measurement keys and the layouts."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from ui.viewer.keymap import HELP, KEY_RULE, SLIDE_KEYS, STACK_KEYS
from ui.viewer.measure_tool import MEASURE_HELP, MEASURE_KEYS

K = Qt.Key
#: how the help writes the keys that have no plain letter
NAMES = {K.Key_Down: "↓", K.Key_Right: "→", K.Key_Up: "↑", K.Key_Left: "←", K.Key_PageDown: "PgDn",
         K.Key_PageUp: "PgUp", K.Key_Home: "Home", K.Key_End: "End", K.Key_Plus: "+", K.Key_Equal: "=",
         K.Key_Minus: "−", K.Key_Space: "Space", K.Key_Escape: "Esc", K.Key_BracketRight: "]",
         K.Key_BracketLeft: "[", K.Key_Backspace: "Backspace", K.Key_Delete: "Delete"}


def _name(key) -> str:
    return NAMES.get(key) or QKeySequence(key).toString()


def _keys(rows, areas) -> set[str]:
    """Every key named in the keys column of `rows` in `areas` ("1 … 9" is 1 to 9, "Shift+H" names H)."""
    found: set[str] = set()
    for area, keys, _ in rows:
        if area not in areas:
            continue
        for lo, hi in re.findall(r"(\d) … (\d)", keys):
            found.update(str(d) for d in range(int(lo), int(hi) + 1))
        for token in re.split(r"[\s/,]+", keys):
            found.add(token)
            if "+" in token and len(token) > 1:
                found.update(token.split("+"))
    return found


def test_every_bound_key_is_in_the_help():
    images, slides = _keys(HELP, {"Images", "Both"}), _keys(HELP, {"Slides", "Both"})
    assert {_name(k) for k in STACK_KEYS} - images == set()
    assert {_name(k) for k in SLIDE_KEYS} - slides == set()
    measure = _keys(MEASURE_HELP, {"Both"})
    assert {_name(k) for k in MEASURE_KEYS} | {"Delete", "Esc"} <= measure
    # and the help names no key the tables do not bind (a stale row); mouse gestures and menus are words
    bound = {_name(k) for k in (*STACK_KEYS, *SLIDE_KEYS, *MEASURE_KEYS)} | {"Delete", "Esc", "Shift"}
    single = {t for t in images | slides | measure if len(t) == 1 and not t.isdigit() and t not in "…×"}
    assert single - bound == set()


def test_the_dialog_says_the_rule_and_lists_measurements_habits_and_layouts(qtbot, make_window):
    window = make_window()
    box = window.show_key_help()
    text = box.text()
    assert KEY_RULE in text and "Ctrl" in KEY_RULE and "text field" in KEY_RULE
    for expected in ("ruler / angle", "rectangle / ellipse / freehand ROI", "text note", "newest measurement",
                     "invert grey levels", "rotate 90°", "mirror left-right", "Backspace", "View → Layout",
                     "Open in view N", "Link scrolling"):
        assert expected in text, expected
    # the measurement rows sit with the other rows for both viewers, before the slide-only rows
    assert text.index("ruler / angle") < text.index("1.25× 2.5×")
    box.close()
