"""Ask a question about exactly the image on screen, streaming the answer.

The engine caches the image encoding per image (keyed by its pixels), so a follow-up about the same view only
pays for the new text; `history` carries the earlier (question, answer) pairs about that image, which the engine
places in the Llama-3 chat before the new question. The job audits the question (hashes only unless the user
opted in to question text) and returns the answer with the image hash that keys the conversation in the session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medapp.errors import UserError
from medapp.hashing import image_sha256
from medapp.jobs.images import to_image
from medapp.protocols import AuditSink, Engine, GenerationSettings
from medapp.settings import GenerationLimits
from medapp.text import clean_text

__all__ = ["ask", "Answer", "MAX_QUESTION_CHARS"]

MAX_QUESTION_CHARS = 4000


@dataclass(frozen=True)
class Answer:
    text: str
    stop_reason: str  # the engine's reason: "eos", "max_new_tokens", "cancelled", ...
    image_sha256: str
    n_tokens: int
    seconds: float
    # What the sanitiser did to the question or history ("the question: 1 character(s) that were not valid UTF-8
    # replaced by ..."), for the caller to show; empty when the text came through unchanged.
    notices: tuple[str, ...] = ()
    timings: Any = None  # the engine's `models.engine.Timings` when the caller asked for them, else None

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == "cancelled"


def ask(
    engine: Engine,
    view_or_image: Any,
    question: str,
    history: Sequence[tuple[str, str]] = (),
    on_token: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    limits: GenerationLimits | None = None,
    settings: GenerationSettings | None = None,
    audit: AuditSink | None = None,
    source_sha256: str | None = None,
    timings: Any = None,
) -> Answer:
    """Stream an answer to `question` about `view_or_image` (a PIL image or a `medapp.view.ViewState`).

    `on_token(text_piece)` receives the answer as it is generated; setting `cancel` stops after the current token
    (the partial answer is returned with stop_reason "cancelled"). `audit` (an `AuditLog`) records an "ask" event
    with the image hash, `source_sha256` (the file's hash, if known) and the model's checkpoint hash.
    Generation limits come from `limits`, else from `settings.generation()`, else the defaults. The question and
    the earlier turns pass through `medapp.text.clean_text` (the tokenizer raises on surrogates); what it changed is
    in `Answer.notices`. `timings` (a `models.engine.Timings`) is handed to the engine, which fills it with the
    time-to-first-token breakdown.
    """
    cleaned = clean_text(question)
    question = cleaned.text.strip()
    notices = [n for n in [cleaned.notice("the question")] if n]
    clean_history = []
    for q, a in history:  # earlier turns come back from the session file: sanitise them too
        q_clean, a_clean = clean_text(q), clean_text(a)
        if q_clean.changed or a_clean.changed:
            notices.append("an earlier turn held invalid or control characters; they were replaced or removed")
        clean_history.append((q_clean.text, a_clean.text))
    history = clean_history
    if not question:
        raise UserError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise UserError(f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    if limits is None:
        limits = settings.generation() if settings is not None else GenerationLimits()
    image = to_image(view_or_image)
    key = image_sha256(image)
    started = time.monotonic()
    generation = engine.generate(
        image,
        [tuple(t) for t in history],
        question,
        on_token=on_token,
        cancel=cancel,
        timings=timings,
        **limits.engine_kwargs(),
    )
    answer = Answer(
        text=generation.text,
        stop_reason=str(generation.stop_reason),
        image_sha256=key,
        n_tokens=len(generation.token_ids),
        seconds=time.monotonic() - started,
        notices=tuple(dict.fromkeys(notices)),
        timings=timings,
    )
    if audit is not None:
        audit.record(
            "ask",
            inputs=[h for h in (source_sha256, key) if h],
            model_sha256=engine.info.checkpoint_sha256,
            question=question,
            turn=len(history) + 1,
            n_tokens=answer.n_tokens,
            stop_reason=answer.stop_reason,
            answer_chars=len(answer.text),
            seconds=round(answer.seconds, 3),
        )
    return answer
