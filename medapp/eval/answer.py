"""Greedy answers to *different* questions about *different* images, several per `generate` call.

Why not `DragonflyEngine.caption_batch`: it sends one prompt to every image, while a benchmark batch has one
question per image. `DragonflyEngine.answer_batch` takes one question per image through the same left-padded batched
path (same processor call, same decoding loop).

The prompt sent is ``template.format(question=...)`` inside the Llama-3 chat form (`models.prompts.build_prompt`),
and is returned beside each answer so the results record exactly what the model was asked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_TEMPLATE", "render_prompt", "answer_batch"]

# LLaVA-1.5's short-answer instruction, the usual one for VQA benchmarks (Dragonfly publishes no evaluation prompt):
# it keeps answers to the single word or phrase the ground truth is, which token F1 and exact match need.
DEFAULT_TEMPLATE = "{question}\nAnswer the question using a single word or phrase."


def render_prompt(template: str, question: str) -> str:
    """The user message for one question (what is recorded as the prompt)."""
    return template.replace("{question}", question)


def answer_batch(
    engine: Any, images: Sequence[Any], questions: Sequence[str], *, max_new_tokens: int = 32,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Greedy answers (text, stripped), one per (image, question), in one left-padded `generate` call."""
    if len(images) != len(questions):
        raise ValueError(f"{len(images)} images but {len(questions)} questions")
    if not images:
        return []
    generations = engine.answer_batch(list(images), list(questions), max_new_tokens=max_new_tokens, cancel=cancel)
    return [g.text.strip() for g in generations]
