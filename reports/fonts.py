"""Embedded TrueType fonts and per-run glyph fallback for reportlab.

reportlab's standard 14 fonts cover Latin-1 only and are not embedded, so µ is fine but a CJK patient name or "≥"
prints as black boxes, and a PACS viewer on another machine may substitute glyphs. We ship glyf-based TrueType fonts
inside the package (reportlab embeds TrueType subsets; it cannot embed CFF-flavoured OpenType):

* DejaVu Sans (regular + bold): Latin, Greek, Cyrillic, arrows, maths symbols (µ ° ± ≤ ≥ × é ...).
* Droid Sans Fallback: CJK ideographs, kana, Hangul.

reportlab has no automatic font fallback, so :func:`markup` splits text into runs by glyph coverage and wraps runs
the primary font cannot draw in ``<font face=...>``. It also XML-escapes every run: Paragraph text is mini-markup, and
model output such as ``<5 mm`` or ``S&P`` must print literally, never be parsed.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from xml.sax.saxutils import escape

from reports.errors import ReportError

__all__ = ["FontSet", "register_fonts", "markup", "clean_text", "font_runs", "missing_glyphs", "REGULAR", "BOLD", "CJK"]

log = logging.getLogger(__name__)

REGULAR = "DejaVuSans"
BOLD = "DejaVuSans-Bold"
CJK = "DroidSansFallback"
_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf", CJK: "DroidSansFallback.ttf"}


@dataclass(frozen=True)
class FontSet:
    """Registered font names; :meth:`covers` says whether a font has a glyph (used to pick a font per run)."""

    regular: str
    bold: str
    fallback: str

    def coverage(self, name: str) -> frozenset[int]:
        """Code points of a packaged font (the CJK fallback is loaded on first use: it is a 3.4 MB file)."""
        return _load(name)


def _load_font(name: str) -> frozenset[int]:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    ref = resources.files("reports").joinpath("fonts").joinpath(_FILES[name])
    with resources.as_file(ref) as path:
        if not path.is_file():
            raise ReportError(f"{path}: packaged font is missing (reinstall medapp)")
        try:
            font = TTFont(name, str(path))
        except (TTFError, OSError) as exc:
            raise ReportError(f"{path}: cannot load font: {exc}") from exc
    pdfmetrics.registerFont(font)
    return frozenset(font.face.charToGlyph)


@cache
def _load(name: str) -> frozenset[int]:
    from reportlab.lib.fonts import addMapping

    coverage = _load_font(name)
    if name == CJK:  # one weight: <b> inside a CJK run maps to the same face
        for b in (0, 1):
            for i in (0, 1):
                addMapping(CJK, b, i, CJK)
    return coverage


@lru_cache(maxsize=1)
def register_fonts() -> FontSet:
    """Register the Latin fonts with reportlab once per process (idempotent); the CJK font follows on demand."""
    from reportlab.lib.fonts import addMapping

    _load(REGULAR)
    _load(BOLD)
    # <b> inside a paragraph switches to the bold face.
    addMapping(REGULAR, 0, 0, REGULAR)
    addMapping(REGULAR, 1, 0, BOLD)
    addMapping(REGULAR, 0, 1, REGULAR)
    addMapping(REGULAR, 1, 1, BOLD)
    return FontSet(REGULAR, BOLD, CJK)


# C0/C1 controls (except tab and newline), surrogates and non-characters cannot be drawn or stored in PDF text.
_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """NFC-normalise, turn tabs and odd line ends into plain ones, drop invisible control characters."""
    text = unicodedata.normalize("NFC", str(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    return _BAD.sub("", text)


def font_runs(text: str, primary: str | None = None) -> list[tuple[str, str]]:
    """Split *text* into ``(font name, run)`` pairs: the primary font wherever it has the glyph, else the fallback.

    Characters neither font has stay with the primary font (it draws its .notdef box) so the text is never lost.
    """
    fonts = register_fonts()
    primary = primary or fonts.regular
    have_primary = fonts.coverage(primary)
    runs: list[tuple[str, str]] = []
    for ch in text:
        cp = ord(ch)
        use_fallback = cp not in have_primary and not ch.isspace() and cp in fonts.coverage(fonts.fallback)
        font = fonts.fallback if use_fallback else primary
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + ch)
        else:
            runs.append((font, ch))
    return runs


def missing_glyphs(text: str) -> set[str]:
    """Characters that no packaged font can draw (for warnings and tests)."""
    fonts = register_fonts()
    regular = fonts.coverage(fonts.regular)
    return {
        ch
        for ch in clean_text(text)
        if not ch.isspace() and ord(ch) not in regular and ord(ch) not in fonts.coverage(fonts.fallback)
    }


def markup(text: str, *, bold: bool = False, newlines: bool = True) -> str:
    """Literal *text* → reportlab Paragraph markup: escaped, font runs switched, newlines as ``<br/>``.

    The returned string is safe to embed inside other markup (``<b>``, ``<font>``) built by this package.
    """
    fonts = register_fonts()
    text = clean_text(text)
    missing = missing_glyphs(text)
    if missing:
        log.warning("%d character(s) have no glyph in the packaged fonts; they print as boxes", len(missing))
    primary = fonts.bold if bold else fonts.regular
    out = []
    for font, run in font_runs(text, primary):
        body = escape(run)
        if newlines:
            body = body.replace("\n", "<br/>")
        out.append(body if font == primary else f'<font face="{font}">{body}</font>')
    return "".join(out)
