"""The published Dragonfly-Med numbers a site reproduces, and which of our fields each is compared with.

Sources: the Dragonfly paper (Thapa et al., arXiv 2406.00977: "91.6% accuracy on SLAKE", "67.1% token F1 score on
Path-VQA") and the Dragonfly-Med model cards (v1: Path-VQA closed accuracy 92.3%). Neither says which scoring script
produced them (Dragonfly publishes none), so each entry names the field we compare with and why; the Markdown
summary prints that note beside the number, and shows our other numbers too, so a reader can re-map.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Published", "PUBLISHED", "published_for"]


@dataclass(frozen=True)
class Published:
    model: str  # "Dragonfly-Med v2" | "Dragonfly-Med v1"
    dataset: str
    metric: str  # as the source words it
    value: float  # fraction 0..1
    field: str  # our totals field it is compared with
    source: str
    note: str


PUBLISHED: tuple[Published, ...] = (
    Published("Dragonfly-Med v2", "slake", "accuracy", 0.916, "overall_accuracy", "arXiv 2406.00977 (abstract)",
              "'accuracy' is not defined further; compared with closed judgement + open exact match over all "
              "English test questions (closed accuracy alone is shown beside it)"),
    Published("Dragonfly-Med v2", "path-vqa", "token F1", 0.671, "all_f1", "arXiv 2406.00977 (abstract)",
              "token F1 over all test questions, as Med-PaLM M (the baseline it is set against, 62.7) reports it"),
    Published("Dragonfly-Med v1", "path-vqa", "closed accuracy", 0.923, "closed_accuracy",
              "arXiv 2406.00977 / Dragonfly-Med v1 model card (as cited in issue #13)", "yes/no questions only"),
)


def published_for(dataset: str, model_version: str | None = None) -> list[Published]:
    """Entries for `dataset`; with the engine's config version ("1"/"2"...), only that model's."""
    rows = [p for p in PUBLISHED if p.dataset == dataset]
    if model_version:
        wanted = f"v{str(model_version).lstrip('v')}"
        rows = [p for p in rows if p.model.endswith(wanted)] or rows
    return rows
