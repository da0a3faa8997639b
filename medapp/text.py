"""One sanitiser for free text that enters medapp: questions, indications, prompts, history read back from files.

Why one boundary function: text reaches us in broken forms the layers below cannot take. On Linux, a command-line
argument that is not valid UTF-8 arrives as a str with surrogate escapes ('\\udcff' for the byte 0xff); a session
or report file written by an older build may hold lone surrogates; a pasted indication may carry NULs, escape
sequences or form feeds. The tokenizer raises `TypeError: TextEncodeInput must be ...` on surrogates, `str.encode`
raises `UnicodeEncodeError`, and control characters print as boxes in the PDF. So every caller (CLI, jobs, and
through the jobs the window) passes user text through `clean_text` once, and gets back how much was changed, so the
user can be told rather than have their words silently altered.

Rules: invalid UTF-8 (surrogate escapes, bytes) and lone surrogates become U+FFFD (counted in `replaced`); C0/C1
control characters other than tab and newline, DEL and the non-characters U+FFFE/U+FFFF are removed (counted in
`stripped`); CR LF and lone CR become LF (not counted: that is a line end, not damage). Bidirectional marks
(U+200E, U+202A..U+202E, U+2066..U+2069) are kept: they are meaningful in Arabic and Hebrew text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CleanText", "clean_text", "REPLACEMENT"]

REPLACEMENT = "\ufffd"
# Surrogates that are not surrogate escapes of bytes 0x80..0xff (those are U+DC80..U+DCFF): replaced directly.
_NON_ESCAPE_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


@dataclass(frozen=True)
class CleanText:
    """Sanitised text plus what was done to it (both counts 0 means the text came through unchanged)."""

    text: str
    replaced: int = 0  # invalid bytes / lone surrogates now shown as U+FFFD
    stripped: int = 0  # control characters removed

    @property
    def changed(self) -> bool:
        return bool(self.replaced or self.stripped)

    def notice(self, what: str) -> str | None:
        """One sentence for the user ("the question: 1 invalid character replaced by �"), or None if unchanged."""
        parts = []
        if self.replaced:
            parts.append(f"{self.replaced} character(s) that were not valid UTF-8 replaced by {REPLACEMENT}")
        if self.stripped:
            parts.append(f"{self.stripped} control character(s) removed")
        return f"{what}: {' and '.join(parts)}" if parts else None


def _decode(value: bytes | bytearray | memoryview) -> tuple[str, int]:
    raw = bytes(value)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    before = raw.count(REPLACEMENT.encode("utf-8"))
    text = raw.decode("utf-8", "replace")
    return text, text.count(REPLACEMENT) - before


def _unsurrogate(text: str) -> tuple[str, int]:
    if not _ANY_SURROGATE.search(text):
        return text, 0
    before = text.count(REPLACEMENT)
    text = _NON_ESCAPE_SURROGATES.sub(REPLACEMENT, text)
    # What is left are escaped bytes: put them back as bytes and decode, so a valid multi-byte sequence split into
    # escapes (e.g. from a Latin-1 terminal) is recovered and only the truly invalid bytes become U+FFFD.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text, text.count(REPLACEMENT) - before


def clean_text(value: str | bytes | None) -> CleanText:
    """Sanitise user or file text (see the module docstring for the rules). `None` gives empty text."""
    if value is None:
        return CleanText("")
    if isinstance(value, bytes | bytearray | memoryview):
        text, replaced = _decode(value)
    else:
        text, replaced = _unsurrogate(str(value))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text, stripped = _CONTROLS.subn("", text)
    return CleanText(text, replaced, stripped)
