"""Chat history per image without Qt: stopped turns are shown but never sent as context; a session keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from medapp.conversations import ChatTurn, ConversationStore
from medapp.session import Session


@pytest.mark.parametrize("with_session", [False, True])
def test_history_context_and_clear(tmp_path: Path, with_session: bool) -> None:
    store = ConversationStore(Session(tmp_path) if with_session else None)
    assert store.persistent is with_session
    store.record("img-a", ChatTurn("Q1", "A1"))
    store.record("img-a", ChatTurn("Q2", "half an ans", stopped=True))
    store.record("img-b", ChatTurn("Other", "image"))
    assert [(t.question, t.stopped) for t in store.history("img-a")] == [("Q1", False), ("Q2", True)]
    assert store.context("img-a") == [("Q1", "A1")]  # the stopped answer is not sent to the model
    store.clear("img-a")
    assert store.history("img-a") == [] and store.context("img-b") == [("Other", "image")]


def test_a_session_store_survives_a_restart(tmp_path: Path) -> None:
    ConversationStore(Session(tmp_path)).record("img", ChatTurn("Q", "A", stopped=True))
    again = ConversationStore(Session(tmp_path)).history("img")
    assert [(t.question, t.answer, t.stopped) for t in again] == [("Q", "A", True)] and again[0].when


def test_turn_dict_round_trip_ignores_unknown_keys() -> None:
    turn = ChatTurn("Q", "A", stopped=True, model="m", when="t")
    assert ChatTurn.from_dict({**turn.to_dict(), "extra": 1}) == turn
