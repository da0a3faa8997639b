"""Right-to-left text (Arabic, Hebrew) for reportlab, which draws every string left to right as given.

What was wrong: an Arabic indication was drawn in logical order, letter by letter from the left, with the isolated
letter forms (reportlab shapes nothing unless uharfbuzz *and* rlbidi are installed, and rlbidi is not on PyPI).
So words read backwards and letters did not join. What this module does, per line:

1. **Shaping** (Arabic): `arabic_reshaper` replaces letters with their contextual presentation forms (initial,
   medial, final, lam-alef ligatures), which the packaged DejaVu fonts contain (U+FB50..U+FEFF).
2. **Line breaking in logical order**: a paragraph is broken into lines *before* reordering, or the first line on
   the page would show the end of an RTL sentence. `wrap_lines` measures the shaped text with reportlab's metrics.
3. **Reordering** (Unicode Bidirectional Algorithm, UAX #9): `python-bidi` turns each line into visual order with
   the *paragraph's* base direction (its first strong character), so Arabic/Hebrew words run right to left, numbers
   and Latin words inside them stay left to right, and brackets are mirrored (rule L4).

Reordering must happen before XML escaping (`reports.fonts.markup`): reversing "&lt;" would corrupt the markup.
Text without RTL characters is returned untouched, so Latin and CJK reports render exactly as before.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

__all__ = ["has_rtl", "rtl_base", "shape", "visual", "wrap_lines"]

# Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic, Arabic Extended, and the presentation-form blocks.
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")


def has_rtl(text: str) -> bool:
    """Does `text` contain any right-to-left letter (so it needs shaping / reordering)?"""
    return bool(_RTL.search(text))


def rtl_base(text: str) -> bool:
    """The paragraph direction by UAX #9 rules P2/P3: that of the first strong (L, R or AL) character."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def shape(text: str) -> str:
    """Arabic letters -> contextual presentation forms (logical order kept); other text unchanged."""
    if not has_rtl(text):
        return text
    import arabic_reshaper

    return arabic_reshaper.reshape(text)


def visual(line: str, rtl: bool | None = None) -> str:
    """One line (no newline) in display order: shaped, then reordered with base direction `rtl` (default: the
    line's own). Lines of one paragraph must share the paragraph's direction, so callers pass it."""
    if not has_rtl(line):
        return line
    # python-bidi's pure-Python implementation: unlike its Rust `bidi.get_display`, it also mirrors brackets in
    # right-to-left runs (rule L4), so "(CT)" inside Hebrew does not come out as ")CT(".
    from bidi.algorithm import get_display

    base = rtl_base(line) if rtl is None else rtl
    return str(get_display(shape(line), base_dir="R" if base else "L"))


def wrap_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Break one logical paragraph (no newlines) into lines of at most `width` points, in logical order.

    `measure(text) -> points` is the caller's font metric (applied to the shaped text, whose glyphs have their own
    widths). Breaks at spaces; a word wider than the line is split between characters, as reportlab does.
    """
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if measure(shape(candidate)) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while len(word) > 1 and measure(shape(word)) > width:  # split an over-long word between characters
            lo, hi = 1, len(word) - 1  # the longest prefix that fits (at least one character)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if measure(shape(word[:mid])) <= width else (lo, mid - 1)
            lines.append(word[:lo])
            word = word[lo:]
        current = word
    lines.append(current)
    return lines
