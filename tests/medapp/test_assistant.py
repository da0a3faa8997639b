"""The assistant workflows (medapp.assistant) without a window, on the tiny real engine."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from medapp.assistant import ask_about, engine_label, regenerate_section_text
from medapp.conversations import ConversationStore, conversation_key
from medapp.documents import open_document
from medapp.model_input import model_input_for
from medapp.settings import Settings
from medapp.viewer_state import ViewerState


def _input(ct_small: Path):
    state = ViewerState()
    state.open(open_document(ct_small))
    return model_input_for(state, description="CT")


def test_engine_label() -> None:
    info = SimpleNamespace(model_id="org/dragonfly-v2-tiny/", device="cpu")
    assert engine_label(SimpleNamespace(info=info)) == "dragonfly-v2-tiny · CPU"
    assert engine_label(None) == ""


def test_ask_about_returns_the_turn_and_marks_a_stop(tiny_engine, ct_small: Path) -> None:
    store = ConversationStore()
    given = _input(ct_small)
    settings = Settings(max_new_tokens=3)
    key, turn = ask_about(tiny_engine, given, "What is shown?", store, settings=settings, label="tiny")
    assert key == conversation_key(given) and turn.question == "What is shown?" and not turn.stopped
    assert turn.model == "tiny" and turn.view is not None and turn.view.pixels == given.key
    assert turn.view.label == "CT" and turn.view.window is not None and turn.view.thumbnail.startswith(b"\x89PNG")
    assert store.history(key) == []  # recording is the caller's job (its own thread)
    stop = threading.Event()
    stop.set()
    _, stopped = ask_about(tiny_engine, given, "Again?", store, settings=settings, cancel=stop)
    assert stopped.stopped
    store.record(key, turn)
    store.record(key, stopped)
    assert store.context(key) == [("What is shown?", turn.answer)]
    assert store.context(key, pixels=given.key) == [("What is shown?", turn.answer)]


def test_a_stopped_regeneration_gives_nothing(tiny_engine, ct_small: Path) -> None:
    stop = threading.Event()
    stop.set()
    report = SimpleNamespace(modality="CT")
    text = regenerate_section_text(tiny_engine, _input(ct_small), report, "findings", "", settings=Settings(
        max_new_tokens=3), cancel=stop)
    assert text == ""
