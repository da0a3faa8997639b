"""The assistant's model workflows on what is on screen: ask, draft a report, regenerate one section.

Why here and not in the window: each is a rule about the model and the documents, not about drawing — which
earlier turns go along as context, that a stopped answer is still recorded (marked stopped), that a one-section
regeneration writes no audit entry (the full-draft entry would misdescribe it), which header and view details a
draft carries. The window's `ModelBridge` only runs these in workers and turns their callbacks into Qt signals.
All take a `medapp.model_input.ModelInput` (rendered here, so call them off the UI thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from medapp.conversations import ChatTurn, ConversationStore, TurnView, conversation_key, now_local, thumbnail_png

__all__ = ["engine_label", "ask_about", "draft_about", "regenerate_section_text"]


def engine_label(engine: Any) -> str:
    """Short model name for AI labels ("dragonfly-v2-tiny · CPU"), empty when there is no engine."""
    info = getattr(engine, "info", None)
    if info is None:
        return ""
    model_id = str(getattr(info, "model_id", "") or "")
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    device = str(getattr(info, "device", "") or "").upper()
    return " · ".join(p for p in (name, device) if p)


def ask_about(
    engine: Any,
    model_input: Any,
    question: str,
    conversations: ConversationStore,
    *,
    settings: Any = None,
    audit: Any = None,
    label: str = "",
    on_token: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[str, ChatTurn]:
    """Answer `question` about `model_input` with the finished earlier turns about the same pixels as context.

    Returns `(conversation key, turn)` (`medapp.conversations.conversation_key`: the study and image, whatever the
    window or region); the turn carries its `TurnView` (label, window, region, level, pixel hash, thumbnail). It is
    not recorded here (the caller records it on its own thread, so the session is only touched from one). A
    stopped answer comes back with `stopped=True`.
    """
    from medapp.jobs.ask import ask

    image = model_input.image
    key = conversation_key(model_input)
    pixels = model_input.key
    view = TurnView.of(model_input, thumbnail=thumbnail_png(image), pixels=pixels)
    answer = ask(
        engine,
        image,
        question,
        conversations.context(key, pixels=pixels),
        on_token=on_token,
        cancel=cancel,
        limits=settings.generation() if settings is not None else None,
        audit=audit,
    )
    stopped = bool(getattr(answer, "cancelled", False)) or (cancel is not None and cancel.is_set())
    text = str(getattr(answer, "text", answer))
    return key, ChatTurn(question, text, stopped=stopped, model=label, when=now_local(), view=view)


def _draft_kwargs(model_input: Any, indication: str, settings: Any, audit: Any) -> dict[str, Any]:
    """Everything `draft_report` needs but the image (`dataset` may read the disk)."""
    return {
        "modality": getattr(model_input, "modality", None),
        "indication": indication,
        "dataset": getattr(model_input, "dataset", None),
        "frame": getattr(model_input, "frame", None),
        "region": getattr(model_input, "region", None),
        "window": getattr(model_input, "window", None),
        "settings": settings,
        "audit": audit,
    }


def draft_about(
    engine: Any,
    model_input: Any,
    indication: str,
    *,
    settings: Any = None,
    audit: Any = None,
    on_token: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """A draft `reports.Report` about `model_input` (`medapp.jobs.draft_report`), with the shown frame's header,
    frame, region and window recorded for the key image."""
    from medapp.jobs.report import draft_report

    kwargs = _draft_kwargs(model_input, indication, settings, audit)
    return draft_report(engine, model_input.image, on_token=on_token, cancel=cancel, **kwargs)


def regenerate_section_text(
    engine: Any,
    model_input: Any,
    report: Any,
    key: str,
    indication: str,
    *,
    settings: Any = None,
    on_token: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Fresh text for section `key` of `report`: a new draft from the same image and indication, of which only
    that section is kept ("" when stopped). Not audited: the full-draft entry would misdescribe it. The core has
    no per-section prompt yet."""
    from medapp.jobs.report import draft_report

    kwargs = _draft_kwargs(model_input, indication, settings, None)
    kwargs["modality"] = getattr(report, "modality", None) or kwargs["modality"]
    draft = draft_report(engine, model_input.image, on_token=on_token, cancel=cancel, **kwargs)
    if cancel is not None and cancel.is_set():
        return ""
    return str(draft.text(key))
