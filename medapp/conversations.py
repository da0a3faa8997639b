"""Chat history per image, Qt-free: `ConversationStore` and its `ChatTurn`.

Why here: the rule "the earlier turns about the same pixels are the model's context; a stopped answer is shown but
never sent as context" is application logic, not drawing. The window's `ModelBridge` and any other front end use
the same store. Turns are keyed by the image's content hash (`medapp.model_input.image_key`), so the same pixels
find their answers again whatever path they came from. With a `medapp.session.Session` the turns are saved in it
(autosaved, survive a crash); without one (tests, early start-up) they live in memory for the store's lifetime.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ChatTurn", "ConversationStore", "STOPPED_REASONS"]

#: session `Turn.stop_reason` values that mean the clinician pressed Stop
STOPPED_REASONS = frozenset({"cancelled", "cancel", "stopped"})


def now_local() -> str:
    """The time a turn is shown with: local time with its UTC offset, to the second."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class ChatTurn:
    """One question and its answer about one image, as shown in the chat and stored in the session."""

    question: str
    answer: str
    stopped: bool = False
    model: str = ""
    when: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatTurn:
        return cls(**{k: data[k] for k in ("question", "answer", "stopped", "model", "when") if k in data})


class ConversationStore:
    """The turns about each image. `session` (optional) makes them persistent; it may be set later."""

    def __init__(self, session: Any = None) -> None:
        self.session = session
        self._memory: dict[str, list[ChatTurn]] = {}
        self._lock = threading.Lock()

    @property
    def persistent(self) -> bool:
        """True when the turns are saved in a session (they survive closing the window)."""
        return self.session is not None

    def history(self, key: str) -> list[ChatTurn]:
        """The turns about the image with content hash `key`, oldest first (stopped ones included)."""
        if self.session is None:
            with self._lock:
                return list(self._memory.get(key, []))
        return [
            ChatTurn(t.question, t.answer, stopped=t.stop_reason in STOPPED_REASONS, when=t.time)
            for t in self.session.state.conversations.get(key, [])
        ]

    def context(self, key: str) -> list[tuple[str, str]]:
        """The (question, answer) pairs sent to the model as context: every finished turn, no stopped one
        (a cut-off answer would teach the model to stop mid-sentence)."""
        return [(t.question, t.answer) for t in self.history(key) if not t.stopped]

    def record(self, key: str, turn: ChatTurn) -> None:
        """Append `turn` to the image's history (saved at once with a session)."""
        if self.session is None:
            with self._lock:
                self._memory.setdefault(key, []).append(turn)
        else:
            self.session.add_turn(key, turn.question, turn.answer, stop_reason="cancelled" if turn.stopped else "")

    def clear(self, key: str) -> None:
        """Forget the turns about one image."""
        if self.session is None:
            with self._lock:
                self._memory.pop(key, None)
        else:
            self.session.clear_conversation(key)
