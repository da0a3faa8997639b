"""What the user is working on, saved to disk after every change so a crash loses nothing.

The session holds: the open inputs, the current one, which frame / region / window is shown, the conversation about
each image (keyed by study and image, `medapp.conversations.conversation_key`; each turn keeps the view it was
about), and the report draft (`Report.to_dict()`). Every mutating method writes the whole state atomically
(`reports.atomic`): the file on disk is always either the previous or the new state, never half of one. Constructing
a `Session` on the same folder restores it — that is the crash recovery, nothing else is needed.

The session is local working data of the signed-in clinician (it contains file paths and question text, like the
open study itself) and lives in the user's data folder; it is never written to the audit log or exported.
Listeners (`subscribe`) let the window redraw when the CLI or a job changes state; they run after the save.

The session file is never written over an open input (`medapp.outputs`): `open` refuses an input that is the
session file under another name (before the state changes), and `save` checks again, so a session file symlinked
or hard-linked onto a study cannot overwrite it.

A damaged *report draft* (e.g. written by a newer or buggy version) must not cost the user the rest of the session:
on load the draft is checked with `Report.from_dict`; if it does not parse it is written aside to
``report_draft.damaged-<time>.json`` (`draft_recovered_from`), dropped from the state, and the rest is kept.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medapp import paths
from reports.atomic import atomic_write_text

__all__ = ["Session", "SessionState", "ViewSnapshot", "Turn"]

log = logging.getLogger(__name__)

_FILE = "session.json"
_VERSION = 1


@dataclass
class ViewSnapshot:
    """What is on screen for one input: frame, region (x, y, w, h at full resolution / slide level 0), window
    (center, width) or a preset name. Plain values so the file stays readable. The live, evented state is
    `medapp.viewer_state.ViewerState`; this is its saved form (`ViewerState.snapshot()` / `.restore()`)."""

    frame: int = 0
    region: list[int] | None = None
    window: list[float] | None = None
    preset: str | None = None
    invert: bool = False  # display transform (medapp.display): reading aids, not part of the model input
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViewSnapshot:
        """Read a saved view, ignoring keys this version does not know (a session written by a newer medapp
        must not be moved aside as damaged by an older one)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Turn:
    """One chat turn as saved. `model` and `view` (`medapp.conversations.TurnView.to_dict()`: the window, region,
    magnification and thumbnail it was about) are absent in older sessions and default to empty."""

    question: str
    answer: str
    time: str = ""
    stop_reason: str = ""
    model: str = ""
    view: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        """Unknown keys (a newer version's) are ignored, so a session stays readable both ways."""
        names = {"question", "answer", "time", "stop_reason", "model", "view"}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SessionState:
    version: int = _VERSION
    open_paths: list[str] = field(default_factory=list)
    current: str | None = None
    views: dict[str, ViewSnapshot] = field(default_factory=dict)  # path -> view
    # conversation key (medapp.conversations.conversation_key; older sessions: image sha256) -> turns
    conversations: dict[str, list[Turn]] = field(default_factory=dict)
    report_draft: dict[str, Any] | None = None  # the draft without a study (and every draft of older sessions)
    report_drafts: dict[str, dict[str, Any]] = field(default_factory=dict)  # study key -> draft (medapp.signoff)
    export_dir: str | None = None  # the folder the last report export went to
    measurements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # path -> medapp.measurements

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        return cls(
            version=int(data.get("version", _VERSION)),
            open_paths=[str(p) for p in data.get("open_paths", [])],
            current=data.get("current"),
            views={k: ViewSnapshot.from_dict(v) for k, v in data.get("views", {}).items()},
            conversations={k: [Turn.from_dict(t) for t in v] for k, v in data.get("conversations", {}).items()},
            report_draft=data.get("report_draft"),
            report_drafts={str(k): v for k, v in (data.get("report_drafts") or {}).items() if isinstance(v, dict)},
            export_dir=data.get("export_dir"),
            measurements={str(k): [m for m in v if isinstance(m, dict)]
                          for k, v in (data.get("measurements") or {}).items() if isinstance(v, list)},
        )


def _draft_problem(data: Any) -> str | None:
    """None if `data` reads back as a `reports.Report`, else the exception type (no content: it may hold PHI)."""
    from reports import Report

    try:
        Report.from_dict(data)
    except Exception as exc:  # noqa: BLE001 — ReportError, or TypeError / ValueError / AttributeError from a wrong shape
        return type(exc).__name__
    return None


class Session:
    """The autosaved session in `directory` (default: `medapp.paths.session_dir()`). Thread-safe."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else paths.session_dir()
        self.path = self.directory / _FILE
        self._lock = threading.RLock()
        self._listeners: list[Callable[[Session], None]] = []
        self.recovered_from: Path | None = None  # set when a damaged session file was moved aside
        self.draft_recovered_from: Path | None = None  # set when only the report draft was damaged and moved aside
        self.state = self._load()
        problem = _draft_problem(self.state.report_draft) if self.state.report_draft is not None else None
        if problem is not None:
            self._set_draft_aside(problem)
        for key, draft in list(self.state.report_drafts.items()):
            problem = _draft_problem(draft)
            if problem is not None:
                self._set_draft_aside(problem, key)

    # -- persistence ------------------------------------------------------------------------------------------
    def _load(self) -> SessionState:
        if not self.path.exists():
            return SessionState()
        try:
            return SessionState.from_dict(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # A damaged file must not stop the app from starting; keep it for inspection and start clean.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            aside = self.path.with_name(f"{_FILE}.damaged-{stamp}")
            try:
                self.path.replace(aside)
                self.recovered_from = aside
            except OSError:
                pass
            log.warning("session file was damaged (%s); started a new session", type(exc).__name__)
            return SessionState()

    def _set_draft_aside(self, problem: str, key: str | None = None) -> None:
        """Keep an unreadable draft (the study-less one, or study `key`'s) for inspection, drop it from the state
        and save the rest."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        aside = self.directory / f"report_draft.damaged-{stamp}.json"
        draft = self.state.report_draft if key is None else self.state.report_drafts.get(key)
        try:
            atomic_write_text(aside, json.dumps(draft, indent=1, ensure_ascii=False))
            self.draft_recovered_from = aside
        except (OSError, TypeError, ValueError):
            pass
        log.warning("session report draft was damaged (%s); kept the rest of the session", problem)
        if key is None:
            self.state.report_draft = None
        else:
            self.state.report_drafts.pop(key, None)
        try:
            self.save()
        except OSError:  # read-only folder: the next change tries again; the state in memory is already clean
            log.warning("could not save the session after dropping the damaged draft")

    def save(self) -> None:
        from medapp.outputs import check_output

        with self._lock:
            check_output(self.path, self.state.open_paths, trees=False)
            text = json.dumps(self.state.to_dict(), indent=1, ensure_ascii=False)
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, text)

    def subscribe(self, listener: Callable[[Session], None]) -> Callable[[], None]:
        """Call `listener(session)` after every saved change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self) -> None:
        self.save()
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception as exc:  # noqa: BLE001 — a broken view must not lose the user's state
                log.warning("a session listener failed: %s", type(exc).__name__)  # type only: messages may hold PHI

    # -- inputs and view --------------------------------------------------------------------------------------
    def open(self, path: str | Path) -> None:
        """Add `path` to the open inputs (once) and make it current. Refused (`medapp.outputs.OutputPathError`)
        when the session file is that input under any name (a link, `..`, a hard link): saving would overwrite it.
        A folder that merely holds the session file is fine (a portable install next to its studies)."""
        from medapp.outputs import check_output

        key = str(Path(path))
        check_output(self.path, [path], trees=False)
        with self._lock:
            if key not in self.state.open_paths:
                self.state.open_paths.append(key)
            self.state.views.setdefault(key, ViewSnapshot())
            self.state.current = key
            self._changed()

    def close(self, path: str | Path) -> None:
        key = str(Path(path))
        with self._lock:
            if key in self.state.open_paths:
                self.state.open_paths.remove(key)
            self.state.views.pop(key, None)
            if self.state.current == key:
                self.state.current = self.state.open_paths[-1] if self.state.open_paths else None
            self._changed()

    def set_current(self, path: str | Path) -> None:
        key = str(Path(path))
        with self._lock:
            if key not in self.state.open_paths:
                raise KeyError(f"{key} is not open")
            self.state.current = key
            self._changed()

    def view(self, path: str | Path | None = None) -> ViewSnapshot:
        key = str(Path(path)) if path is not None else self.state.current
        if key is None or key not in self.state.views:
            raise KeyError("no such open input")
        return self.state.views[key]

    def set_view(
        self,
        path: str | Path | None = None,
        *,
        frame: int | None = None,
        region: tuple[int, int, int, int] | list[int] | None = None,
        window: tuple[float, float] | list[float] | None = None,
        preset: str | None = None,
        clear_region: bool = False,
        clear_window: bool = False,
        transform: tuple[bool, int, bool, bool] | None = None,
    ) -> None:
        """Update what is shown for `path` (default: the current input). Only the given fields change;
        `transform` is (invert, rotation, flip_h, flip_v)."""
        with self._lock:
            snap = self.view(path)
            if frame is not None:
                snap.frame = int(frame)
            if region is not None:
                snap.region = [int(v) for v in region]
            elif clear_region:
                snap.region = None
            if window is not None:
                snap.window, snap.preset = [float(v) for v in window], None
            elif preset is not None:
                snap.preset, snap.window = preset, None
            elif clear_window:
                snap.window = snap.preset = None
            if transform is not None:
                snap.invert, snap.rotation = bool(transform[0]), int(transform[1]) % 360
                snap.flip_h, snap.flip_v = bool(transform[2]), bool(transform[3])
            self._changed()

    def save_view_state(self, path: str | Path | None, state: Any) -> None:
        """Remember what `state` (a `medapp.viewer_state.ViewerState`) shows for `path`: frame, region, the
        window and the display transform (a slide has region only). A state without a window (colour image) keeps a saved preset.
        `KeyError` when `path` is not open."""
        snap = state.snapshot()
        if getattr(state, "is_slide", False):
            self.set_view(path, region=snap.region, clear_region=snap.region is None)
        else:
            self.set_view(path, frame=snap.frame, region=snap.region, window=snap.window,
                          clear_region=snap.region is None,
                          transform=(snap.invert, snap.rotation, snap.flip_h, snap.flip_v))

    # -- measurements -----------------------------------------------------------------------------------------
    def set_measurements(self, path: str | Path, items: list[Any]) -> None:
        """Keep the measurements drawn on `path` (`medapp.measurements.Measurement`s or their dicts); an empty
        list forgets the entry. Kept when the input is closed: reopening the image brings them back."""
        key = str(Path(path))
        data = [m.to_dict() if hasattr(m, "to_dict") else dict(m) for m in items]
        with self._lock:
            if data:
                self.state.measurements[key] = data
            else:
                self.state.measurements.pop(key, None)
            self._changed()

    def measurements(self, path: str | Path) -> list[Any]:
        """The measurements kept for `path`; an entry that does not read back (a newer or damaged file) is
        skipped, never fatal."""
        from medapp.measurements import Measurement

        out = []
        for data in self.state.measurements.get(str(Path(path)), []):
            try:
                out.append(Measurement.from_dict(data))
            except (KeyError, TypeError, ValueError, IndexError):
                log.warning("a stored measurement could not be read; skipped")
        return out

    # -- conversations ----------------------------------------------------------------------------------------
    def add_turn(
        self, image_sha256: str, question: str, answer: str, stop_reason: str = "", *, model: str = "",
        view: dict[str, Any] | None = None,
    ) -> None:
        """Append a turn to conversation `image_sha256` (any key: `medapp.conversations` passes its own)."""
        with self._lock:
            turn = Turn(question, answer, datetime.now(UTC).isoformat(timespec="seconds"), stop_reason, model, view)
            self.state.conversations.setdefault(image_sha256, []).append(turn)
            self._changed()

    def history(self, image_sha256: str) -> list[tuple[str, str]]:
        """Earlier (question, answer) pairs about this image, the form `jobs.ask` takes as `history`."""
        return [(t.question, t.answer) for t in self.state.conversations.get(image_sha256, [])]

    def clear_conversation(self, image_sha256: str) -> None:
        with self._lock:
            self.state.conversations.pop(image_sha256, None)
            self._changed()

    # -- report draft -----------------------------------------------------------------------------------------
    def set_report(self, report: Any, study: str | None = None) -> None:
        """Store the draft (a `reports.Report` or its `to_dict()`) of study `study` (a `medapp.signoff.study_key`;
        None: the study-less draft). A dict that is no report is refused here (`ReportError`), so the session
        never stores a draft it could not give back."""
        data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
        if not hasattr(report, "to_dict"):
            from reports import Report

            Report.from_dict(data)
        with self._lock:
            if study is None:
                self.state.report_draft = data
            else:
                self.state.report_drafts[study] = data
            self._changed()

    def report(self, study: str | None = None) -> Any:
        """The draft of study `study` as a `reports.Report` (None: the study-less draft), or None.

        A session from before drafts were kept per study holds one study-less draft: asked for a study, that draft
        is given back when it names this study's UID."""
        from reports import Report

        if study is None:
            data = self.state.report_draft
        else:
            data = self.state.report_drafts.get(study)
            if data is None and self.state.report_draft is not None:
                legacy = self.state.report_draft
                uid = str(((legacy.get("identifiers") or {}).get("study_instance_uid")) or "")
                if uid and study == f"uid:{uid}":
                    data = legacy
        return None if data is None else Report.from_dict(data)

    def clear_report(self, study: str | None = None) -> None:
        with self._lock:
            if study is None:
                self.state.report_draft = None
            else:
                self.state.report_drafts.pop(study, None)
            self._changed()

    def set_export_dir(self, folder: str | Path) -> None:
        """Remember the folder of the last report export (the next export dialog starts there)."""
        with self._lock:
            self.state.export_dir = str(folder)
            self._changed()

    def clear(self) -> None:
        """Start over (File > New session)."""
        with self._lock:
            self.state = SessionState()
            self._changed()
