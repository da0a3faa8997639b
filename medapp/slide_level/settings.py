"""Prompts and generation settings of slide-level description, in one dataclass written into every output.

Why one place: a description can only be checked, compared or reproduced when the exact prompts and numbers that
produced it travel with it. `SlideLevelSettings.to_dict()` goes into `slide.json` and the PDF, and
`settings_sha256` decides whether an earlier run's outputs may be reused (resume) — change any prompt or number and
the slide is done again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from medapp.errors import UserError

__all__ = ["SlideLevelSettings", "REGION_PROMPT", "DESCRIPTION_PROMPT"]

# Same instruction as folder captioning (the Dragonfly-Med authors' own captioning prompt), so region captions and
# tile captions read alike.
REGION_PROMPT = "Provide a brief description of the given image."

DESCRIPTION_PROMPT = (
    "This is a low-magnification overview of a whole-slide image. {n} regions of it were examined at "
    "{magnification}x magnification and described as follows:\n{regions}\n"
    "Write a short description of the slide in a few sentences, based on these regions. End every sentence with the "
    "numbers of the regions it rests on in square brackets, for example [1] or [2][3]. Use only the region numbers "
    "listed above."
)


@dataclass(frozen=True)
class SlideLevelSettings:
    """Everything that decides a slide-level result.

    Attributes:
        magnification: objective magnification the candidate tiles are read at (20 → about 0.5 µm per pixel).
        top_k: regions kept for reading.
        min_distance: least distance between two picked regions' centres, in tile sides (1 = tiles may touch).
        tissue_fraction: share of a tile that must be tissue for it to be a candidate.
        overview_side: longest side of the slide thumbnail (the overview the model scores against and describes).
        score_batch_size: tiles per vision-tower call while scoring.
        caption_batch_size: regions per `generate` while captioning.
        region_max_side: longest side of a region image given to the full pipeline (read from the finest level that
            keeps it within this; the pipeline's high-resolution grid is 2016 px for v2).
        caption_max_new_tokens / description_max_new_tokens: answer lengths.
        region_prompt / description_prompt: the instructions; the description prompt's `{n}`, `{magnification}` and
            `{regions}` are filled in.
    """

    magnification: float = 20.0
    top_k: int = 8
    min_distance: float = 2.0
    tissue_fraction: float = 0.5
    overview_side: int = 1024
    score_batch_size: int = 8
    caption_batch_size: int = 4
    region_max_side: int = 1344
    caption_max_new_tokens: int = 96
    description_max_new_tokens: int = 256
    region_prompt: str = REGION_PROMPT
    description_prompt: str = DESCRIPTION_PROMPT

    def __post_init__(self) -> None:
        checks = [
            (self.magnification > 0, f"magnification must be positive, got {self.magnification}"),
            (self.top_k >= 1, f"top-k must be at least 1, got {self.top_k}"),
            (self.min_distance >= 0, f"min distance must be 0 or more, got {self.min_distance}"),
            (0 <= self.tissue_fraction <= 1, f"tissue fraction must be in 0..1, got {self.tissue_fraction}"),
            (self.overview_side >= 64, f"overview side must be at least 64 px, got {self.overview_side}"),
            (self.score_batch_size >= 1, "score batch size must be at least 1"),
            (self.caption_batch_size >= 1, "caption batch size must be at least 1"),
            (self.region_max_side >= 64, "region side must be at least 64 px"),
            (self.caption_max_new_tokens >= 1 and self.description_max_new_tokens >= 1, "answer lengths must be >= 1"),
            (bool(self.region_prompt.strip()), "the region prompt is empty"),
            ("{regions}" in self.description_prompt, "the description prompt needs a {regions} field"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"slide-level settings: {message}")
        try:
            self.description_prompt.format(n=1, magnification="20", regions="[1] x")
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(f"slide-level settings: the description prompt's fields must be {{n}}, {{magnification}} "
                            f"and {{regions}} (write other braces twice): {exc}") from None

    def updated(self, **changes: Any) -> SlideLevelSettings:
        """A copy with `changes` (None values ignored, so CLI flags that were not given keep the defaults)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise UserError(f"slide-level settings: unknown setting(s) {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlideLevelSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def settings_sha256(self) -> str:
        """Identity of these settings (canonical JSON), compared on resume."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def description_text(self, captions: list[str]) -> str:
        """The final prompt: numbered region captions ([1] first) inside the description template."""
        lines = "\n".join(f"[{i}] {' '.join(c.split()) or '(no caption)'}" for i, c in enumerate(captions, 1))
        return self.description_prompt.format(n=len(captions), magnification=_fmt_mag(self.magnification), regions=lines)


def _fmt_mag(mag: float) -> str:
    return f"{mag:g}"
