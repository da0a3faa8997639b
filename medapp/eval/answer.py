"""Greedy answers to *different* questions about *different* images, several per `generate` call.

Why not `DragonflyEngine.caption_batch`: it sends one prompt to every image, while a benchmark batch has one
question per image. The engine's batched path already takes one prompt per image (the processor left-pads the
batch), so this reuses it: the same processor call and the same decoding loop as `caption_batch`, under the engine's
lock. When the engine offers a public ``answer_batch(images, questions, *, max_new_tokens)`` (the natural home for
this; models/ is owned elsewhere), that is used instead.

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
    public = getattr(engine, "answer_batch", None)
    if callable(public):
        return [g.text.strip() for g in public(images, questions, max_new_tokens=max_new_tokens)]
    from models.errors import ModelError
    from models.prompts import build_prompt

    texts = [build_prompt(q) for q in questions]
    with engine._lock:
        try:
            batch = engine.processor(text=texts, images=list(images), return_tensors="pt",
                                     max_length=2 * engine.max_positions, is_generate=True)
        except ValueError as exc:
            raise ModelError(f"a batch of {len(images)} questions could not be prepared: {exc}") from exc
        extra = {
            "image_patches": [p.to(engine.device) for p in batch["image_patches"]],
            "image_patches_indices": batch["image_patches_indices"].to(engine.device),
        }
        generations = engine._decode_loop(
            batch["input_ids"].to(engine.device), batch["attention_mask"].to(engine.device), extra,
            max_new_tokens=max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0, seed=None, on_token=None,
            cancel=cancel,
        )
    return [g.text.strip() for g in generations]
