"""Region citations in a model-written description: keep the ones that exist, flag the rest, pair sentences.

The description is only checkable if every "[n]" points at a region the pathologist can open. A language model
may cite a region that was never listed ("[9]" of 8) or write sentences without any citation; both are made
visible instead of silently trusted: invalid numbers are removed from the text and listed, and each sentence is
returned with its (valid) region numbers, an empty list meaning "uncited".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["CitedText", "Sentence", "validate_citations"]

# "[3]", "[1, 2]", "[1][4]" and "[2-3]" style groups.
_GROUP = re.compile(r"\[\s*(\d+(?:\s*[-,;–]\s*\d+)*)\s*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Sentence:
    text: str
    regions: tuple[int, ...]


@dataclass(frozen=True)
class CitedText:
    """The description with only existing citations, the numbers removed, and the sentences with their regions."""

    text: str
    raw: str
    invalid: tuple[int, ...]
    sentences: tuple[Sentence, ...] = field(default_factory=tuple)

    @property
    def cited(self) -> set[int]:
        return {n for s in self.sentences for n in s.regions}

    @property
    def uncited_sentences(self) -> int:
        return sum(1 for s in self.sentences if not s.regions)


def _numbers(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group.strip()):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            out.extend(range(lo, hi + 1) if 0 <= hi - lo <= 50 else (lo, hi))
        elif part.isdigit():
            out.append(int(part))
    return out


def validate_citations(text: str, n_regions: int) -> CitedText:
    """Remove citations of regions outside 1..`n_regions`; split into sentences with their cited regions."""
    invalid: list[int] = []

    def fix(match: re.Match[str]) -> str:
        numbers = _numbers(match.group(1))
        good = [n for n in numbers if 1 <= n <= n_regions]
        invalid.extend(n for n in numbers if not 1 <= n <= n_regions)
        return "".join(f"[{n}]" for n in dict.fromkeys(good))

    cleaned = _GROUP.sub(fix, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    sentences = []
    for piece in _SENTENCE_END.split(cleaned):
        piece = piece.strip()
        if not piece:
            continue
        regions = tuple(dict.fromkeys(int(m) for m in re.findall(r"\[(\d+)\]", piece)))
        sentences.append(Sentence(piece, regions))
    return CitedText(cleaned, text, tuple(dict.fromkeys(invalid)), tuple(sentences))
