"""Chat history per study and image, Qt-free: `ConversationStore`, its `ChatTurn` and the view each turn was about.

Why here: the rules "a conversation belongs to the study and image, not to the pixels" and "the earlier turns about
the same pixels are the model's context; a stopped answer is shown but never sent as context" are application
logic, not drawing. The window's `ModelBridge` and any other front end use the same store.

Keys: `conversation_key(model_input)` names the study (``uid:<StudyInstanceUID>``, else ``path:<file>``) and the
image in it (``sop:<SOPInstanceUID>``, ``#<frame>`` for a frame of a multi-frame file, ``slide`` for a whole-slide
image). Changing the window / level, drawing a region or zooming a slide therefore keeps the conversation on screen;
keying by the pixels sent (as before) made it vanish and come back only with the same view, which looked like lost
work. Because one conversation now spans several views, every turn records its `TurnView`: the description shown
with it (window label and values, region, magnification), the structured values, the content hash of the exact
pixels and a small PNG thumbnail of them.

Context: only the finished turns about the *same pixels* go to the model with a new question (`context(key,
pixels=...)`). An answer about another window or region would be read by the model as being about the image it
now sees; showing it to the clinician, labelled with its view, is safe, feeding it to the model is not.

With a `medapp.session.Session` the turns are saved in it (autosaved, survive a crash); without one (tests, early
start-up) they live in memory for the store's lifetime. Turns of older sessions were keyed by the pixels' hash and
have no view: `history(key, pixels=...)` puts them first while exactly those pixels are on screen (as they were
found before), labelled as such, and they count as context for those pixels.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

__all__ = ["ChatTurn", "ConversationStore", "STOPPED_REASONS", "TurnView", "conversation_key", "thumbnail_png"]

#: session `Turn.stop_reason` values that mean the clinician pressed Stop
STOPPED_REASONS = frozenset({"cancelled", "cancel", "stopped"})

#: how a turn of an older session (keyed by the pixels, no view recorded) is labelled
LEGACY_LABEL = "this exact view (saved by an earlier version)"

#: longest side of the thumbnail kept with every turn (small: the session is rewritten on every change)
TURN_THUMB_PX = 64


def now_local() -> str:
    """The time a turn is shown with: local time with its UTC offset, to the second."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def thumbnail_png(image: Any, size: int = TURN_THUMB_PX) -> bytes:
    """A PNG of `image` (PIL) shrunk to at most `size` px on its longest side: the picture a turn is labelled with."""
    small = image.convert("RGB") if image.mode != "RGB" else image.copy()
    small.thumbnail((size, size))
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _header_value(header: Any, name: str) -> str:
    try:
        return str(header.get(name, "") or "").strip() if header is not None else ""
    except Exception:  # noqa: BLE001 — a damaged header element: treated as absent
        return ""


def conversation_key(model_input: Any) -> str:
    """The conversation `model_input` belongs to: ``<study>|<image>`` (see the module docstring). Reads the shown
    frame's header (`model_input.dataset`, may touch the disk): call it off the UI thread."""
    source = getattr(model_input, "source", None)
    path = getattr(getattr(model_input, "view_state", None), "path", None) or source
    if getattr(model_input, "kind", "") == "slide":
        return f"path:{path}|slide"
    try:
        header = model_input.dataset
    except Exception:  # noqa: BLE001 — an unreadable header: fall back to the path
        header = None
    study_uid = _header_value(header, "StudyInstanceUID")
    sop_uid = _header_value(header, "SOPInstanceUID")
    study = f"uid:{study_uid}" if study_uid else f"path:{path}"
    image = f"sop:{sop_uid}" if sop_uid else f"file:{source}"
    frame = getattr(model_input, "frame", None)
    if frame is not None and str(source) == str(path):  # a frame of the one file shown (not a series' instance)
        image += f"#{int(frame)}"
    return f"{study}|{image}"


@dataclass(frozen=True)
class TurnView:
    """The view one turn was about: what the clinician saw and the model got.

    `label` is the PHI-free one-liner the viewer describes the view with (modality, image number, window label and
    values, region, magnification); the other fields are the same facts as values. `pixels` is the content hash of
    the exact model input (`ModelInput.key`), `thumbnail` a small PNG of it (`thumbnail_png`)."""

    label: str = ""
    kind: str = ""
    frame: int | None = None
    window: tuple[float, float] | None = None  # (center, width)
    region: tuple[int, int, int, int] | None = None  # image px, slide level-0 px
    level: int | None = None  # slides: the pyramid level read
    pixels: str = ""
    thumbnail: bytes = field(default=b"", repr=False)

    @classmethod
    def of(cls, model_input: Any, *, thumbnail: bytes = b"", pixels: str = "") -> TurnView:
        """The view of `model_input` (values only: cheap; `thumbnail` and `pixels` are passed in by whoever has
        rendered the image)."""
        window = getattr(model_input, "window", None)
        region = getattr(model_input, "region", None)
        frame = getattr(model_input, "frame", None)
        level = getattr(getattr(model_input, "view_state", None), "level", None)
        return cls(
            label=str(getattr(model_input, "description", "") or ""),
            kind=str(getattr(model_input, "kind", "") or ""),
            frame=None if frame is None else int(frame),
            window=None if window is None else (float(window.center), float(window.width)),
            region=None if region is None else tuple(int(v) for v in region),  # type: ignore[arg-type]
            level=None if level is None else int(level),
            pixels=pixels,
            thumbnail=thumbnail,
        )

    def summary(self) -> str:
        """`label`, or (older turns, other front ends) one built from the values."""
        if self.label:
            return self.label
        parts = []
        if self.frame is not None and self.kind != "slide":
            parts.append(f"image {self.frame + 1}")
        if self.window is not None:
            parts.append(f"W {self.window[1]:g} / L {self.window[0]:g}")
        if self.region is not None:
            x, y, w, h = self.region
            parts.append(f"region {w}×{h} at ({x}, {y})")
        return ", ".join(parts) or "whole image"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the thumbnail as base64 text)."""
        data = asdict(self)
        data["thumbnail"] = base64.b64encode(self.thumbnail).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TurnView | None:
        """Back from `to_dict` (unknown keys ignored; a damaged thumbnail is dropped, never fatal)."""
        if not isinstance(data, dict):
            return None
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        try:
            values["thumbnail"] = base64.b64decode(str(values.get("thumbnail") or ""), validate=True)
        except ValueError:
            values["thumbnail"] = b""
        for name in ("window", "region"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError:
            return None


@dataclass(frozen=True)
class ChatTurn:
    """One question and its answer about one image, as shown in the chat and stored in the session; `view` is the
    view it was about (None for turns of older sessions)."""

    question: str
    answer: str
    stopped: bool = False
    model: str = ""
    when: str = ""
    view: TurnView | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["view"] = self.view.to_dict() if self.view is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatTurn:
        values = {k: data[k] for k in ("question", "answer", "stopped", "model", "when") if k in data}
        return cls(**values, view=TurnView.from_dict(data.get("view")))


class ConversationStore:
    """The turns about each image (key: `conversation_key`). `session` (optional) makes them persistent; it may be
    set later."""

    def __init__(self, session: Any = None) -> None:
        self.session = session
        self._memory: dict[str, list[ChatTurn]] = {}
        self._lock = threading.Lock()

    @property
    def persistent(self) -> bool:
        """True when the turns are saved in a session (they survive closing the window)."""
        return self.session is not None

    def history(self, key: str, *, pixels: str | None = None) -> list[ChatTurn]:
        """The turns about the image `key`, oldest first (stopped ones included), whatever view they were about.
        With `pixels` (the content hash of the view on screen) an older session's turns about exactly those pixels
        come first (see the module docstring)."""
        turns = self._turns(key)
        if pixels and pixels != key:
            legacy = TurnView(label=LEGACY_LABEL, pixels=pixels)
            turns = [replace(t, view=t.view or legacy) for t in self._turns(pixels)] + turns
        return turns

    def _turns(self, key: str) -> list[ChatTurn]:
        if self.session is None:
            with self._lock:
                return list(self._memory.get(key, []))
        return [
            ChatTurn(t.question, t.answer, stopped=t.stop_reason in STOPPED_REASONS, model=t.model, when=t.time,
                     view=TurnView.from_dict(t.view))
            for t in self.session.state.conversations.get(key, [])
        ]

    def context(self, key: str, pixels: str | None = None) -> list[tuple[str, str]]:
        """The (question, answer) pairs sent to the model as context: every finished turn, no stopped one (a cut-off
        answer would teach the model to stop mid-sentence). With `pixels` (the model input's content hash) only the
        turns about exactly those pixels: the model takes the context as being about the image it is given."""
        return [
            (t.question, t.answer)
            for t in self.history(key, pixels=pixels)
            if not t.stopped and (pixels is None or (t.view is not None and t.view.pixels == pixels))
        ]

    def record(self, key: str, turn: ChatTurn) -> None:
        """Append `turn` to the image's history (saved at once with a session)."""
        if self.session is None:
            with self._lock:
                self._memory.setdefault(key, []).append(turn)
        else:
            self.session.add_turn(key, turn.question, turn.answer, stop_reason="cancelled" if turn.stopped else "",
                                  model=turn.model, view=turn.view.to_dict() if turn.view is not None else None)

    def clear(self, key: str) -> None:
        """Forget the turns about one image."""
        if self.session is None:
            with self._lock:
                self._memory.pop(key, None)
        else:
            self.session.clear_conversation(key)
