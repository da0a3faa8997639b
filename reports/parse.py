"""Split free model output into report sections.

Dragonfly-Med was not trained on one report format, so its output mixes styles: ``IMPRESSION:``, ``**Impression**``,
``## Findings``, ``Conclusion``, ``Opinion -``, one-paragraph text with ``... Impression: ...`` inline, chatty
preambles ("Sure, here is the report"), markdown bullets. The parser recognises a heading only when it names a
section the template knows (its title or an alias from ``templates.json``) *and* is marked as a heading: markdown
hashes, bold, a trailing colon/dash, or a line of its own. So "Heart: normal size" or "History of smoking" stay
text. Everything that is not a heading marker is kept: text before the first heading, and text under headings the
template lacks, goes to Findings. Nothing of substance is dropped; only markdown decoration (``**``, ``#``, bullet
glyphs normalised to ``- ``) and surplus blank lines are removed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from reports.templates import ReportTemplate

__all__ = ["parse_sections", "heading_markers", "tidy"]

_FALLBACK = "findings"
_EMPH = r"(?:\*{1,3}|_{1,3})"


def _alias_pattern(aliases: tuple[str, ...]) -> str:
    parts = []
    for alias in sorted(aliases, key=len, reverse=True):
        words = re.split(r"[\s\-]+", alias.strip())
        parts.append(r"[ \t\-]*".join(re.escape(w) for w in words if w))
    return "(?:" + "|".join(parts) + ")"


@lru_cache(maxsize=32)
def _compiled(template: ReportTemplate) -> tuple[re.Pattern[str], re.Pattern[str], dict[str, str]]:
    alias_to_key: dict[str, str] = {}
    for section in template.sections:
        for alias in section.aliases:
            alias_to_key.setdefault(_norm(alias), section.key)
    names = _alias_pattern(tuple(alias_to_key))
    line = re.compile(
        r"^(?P<lead>[ \t]*(?:[-*+•][ \t]+)?(?P<hash>\#{1,6})?[ \t]*"
        r"(?:(?:\d{1,2}|[IVX]{1,4}|[A-Ha-h])[.)][ \t]+)?(?P<open>" + _EMPH + r")?[ \t]*)"
        r"(?P<name>" + names + r")(?![\w])"
        r"(?:[ \t]*(?:/|&|\band\b|\bor\b)[ \t]*" + names + r"(?![\w]))*"
        r"(?P<tail>[ \t]*(?:\([^)\n]{0,40}\))?[ \t]*(?P<close1>" + _EMPH + r")?[ \t]*"
        r"(?P<colon>[:：]|(?<=[ \t])[-–—](?=[ \t]|$))?[ \t]*(?P<close2>" + _EMPH + r")?[ \t]*)",
        re.IGNORECASE | re.MULTILINE,
    )
    inline = re.compile(
        r"(?<=[.!?;])[ \t]+(?P<open>\*\*|__)?(?P<name>" + names + r")(?P<close1>\*\*|__)?[ \t]*[:：]"
        r"(?P<close2>\*\*|__)?",
        re.IGNORECASE,
    )
    return line, inline, alias_to_key


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", " ", name.strip().lower())


def heading_markers(text: str, template: ReportTemplate) -> list[tuple[int, int, str]]:
    """``(start, end, section_key)`` of every heading marker in *text* (newlines already normalised)."""
    line_re, inline_re, alias_to_key = _compiled(template)
    markers: list[tuple[int, int, str]] = []
    for m in line_re.finditer(text):
        line_end = text.find("\n", m.end())
        rest = text[m.end() : len(text) if line_end < 0 else line_end].strip()
        bold = bool(m.group("open")) and bool(m.group("close1") or m.group("close2"))
        if m.group("hash") or bold or m.group("colon") or not rest:
            key = alias_to_key.get(_norm(m.group("name")))
            if key is not None:
                markers.append((m.start(), m.end(), key))
    for m in inline_re.finditer(text):
        if not m.group("name")[:1].isupper():  # "... mild. impression: ..." in lower case is prose
            continue
        key = alias_to_key.get(_norm(m.group("name")))
        if key is not None:
            markers.append((m.start(), m.end(), key))
    markers.sort()
    kept: list[tuple[int, int, str]] = []
    for start, end, key in markers:
        if kept and start < kept[-1][1]:
            continue
        kept.append((start, end, key))
    return kept


_BULLET = re.compile(r"^([ \t]*)(?:[-*+•▪◦‣]|\u2013|\u2014)[ \t]+", re.MULTILINE)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
_HASH_HEADING = re.compile(r"^[ \t]*\#{1,6}[ \t]+", re.MULTILINE)
_STRAY_EMPH = re.compile(r"^(?:\*\*|__)[ \t]*|[ \t]*(?:\*\*|__)$")


def tidy(text: str) -> str:
    """Remove markdown decoration but keep every word: bullets become ``- ``, bold and ``#`` go, blank runs shrink."""
    text = _BOLD.sub(r"\2", text)
    text = _HASH_HEADING.sub("", text)
    text = _BULLET.sub(lambda m: m.group(1) + "- ", text)
    lines = [_STRAY_EMPH.sub("", ln.rstrip()) for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def parse_sections(text: str, template: ReportTemplate) -> dict[str, str]:
    """Model output → ``{section key: text}`` for every section of *template*, in its order (missing ones ``""``).

    Text before the first recognised heading, and repeated headings, are kept: the former is put at the top of
    Findings, the latter are joined with a blank line.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_sections expects model text (str), got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: dict[str, list[str]] = {key: [] for key in template.keys}
    fallback = _FALLBACK if _FALLBACK in out else template.keys[0]
    markers = heading_markers(text, template)
    chunks: list[tuple[str, str]] = []
    first = markers[0][0] if markers else len(text)
    chunks.append((fallback, text[:first]))
    for i, (_, end, key) in enumerate(markers):
        stop = markers[i + 1][0] if i + 1 < len(markers) else len(text)
        chunks.append((key, text[end:stop]))
    preamble = tidy(chunks[0][1])
    body = chunks[1:]
    for key, chunk in body:
        cleaned = tidy(chunk)
        if cleaned:
            out[key].append(cleaned)
    if preamble:
        out[fallback].insert(0, preamble)
    return {key: "\n\n".join(parts) for key, parts in out.items()}
