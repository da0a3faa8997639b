"""What the user has open, Qt-free: opening files for the viewer, the recent list, and keeping the session in sync.

Why an object of its own: the window used to spell these rules out itself (which path goes to the top of the
recent list, what "current" means for a series inside a folder, what is saved about a view and when it is given
back). They are the same for any front end, and with a `Workspace` they are tested without a screen.

Threads: `open()` and `open_series()` decode frame 0 (to pick the starting window), so the window calls them in
a worker. The session-writing methods (`remember`, `mark_current`, `save_view`) do an atomic, fsynced write each;
the window runs them on its one session thread, in order. Without a session the recent list lives in memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.documents import open_document
from medapp.stack_setup import StackSetup, prepare_stack
from medapp.view import user_presets

__all__ = ["Workspace", "Opening", "MAX_RECENT"]

MAX_RECENT = 10


@dataclass(frozen=True)
class Opening:
    """An opened path, ready for the viewer: `kind` is "stack", "slide" or "collection" (a folder / DICOMDIR for
    the browser); `setup` is the stack's `StackSetup` (None for slides and collections)."""

    kind: str
    path: Path
    document: Any
    setup: StackSetup | None = None


class Workspace:
    """The open inputs and the recent list of one window (or one CLI run), synced with `session` when given."""

    def __init__(self, session: Any = None, settings: Any = None) -> None:
        self.session = session
        self.settings = settings
        self._recent_memory: list[Path] = []
        self._lock = threading.Lock()

    # --- opening (worker thread) ---------------------------------------------------------------------------------
    def user_presets(self) -> dict[str, Any]:
        """The user's window presets as Windows (they join the number keys of a grey image)."""
        return user_presets(self.settings)

    def open(self, path: str | Path, extra_presets: dict[str, Any] | None = None) -> Opening:
        """Open `path` and prepare what its viewer needs before the first paint (decodes frame 0 of a stack)."""
        path = Path(path)
        document = open_document(path)
        if getattr(document, "kind", None) == "slide":
            return Opening("slide", path, document)
        if hasattr(document, "patients"):
            return Opening("collection", path, document)
        return self.prepare(document, extra_presets)

    def open_series(self, series: Any, extra_presets: dict[str, Any] | None = None) -> Opening:
        """Open one series of a folder (`Collection` → `Series.open()`) for the viewer."""
        return self.prepare(series.open(), extra_presets)

    def prepare(self, stack: Any, extra_presets: dict[str, Any] | None = None) -> Opening:
        """An already opened stack, prepared for the viewer (`prepare_stack`)."""
        presets = self.user_presets() if extra_presets is None else extra_presets
        return Opening("stack", Path(stack.path), stack, prepare_stack(stack, presets))

    # --- recent files --------------------------------------------------------------------------------------------
    def recent_paths(self) -> list[Path]:
        """Most recent first, at most MAX_RECENT: the session's open inputs, or this workspace's memory."""
        if self.session is not None:
            paths = [Path(p) for p in reversed(self.session.state.open_paths)]
        else:
            with self._lock:
                paths = list(self._recent_memory)
        return paths[:MAX_RECENT]

    def last_folder(self) -> Path:
        """Where a file dialog starts: the folder of the most recent input, else the home folder."""
        recent = self.recent_paths()
        return recent[0].parent if recent else Path.home()

    def remember(self, path: str | Path) -> None:
        """What the user opened (file or folder) goes to the top of the recent list (session write)."""
        path = Path(path)
        if self.session is None:
            with self._lock:
                self._recent_memory = [path] + [p for p in self._recent_memory if p != path]
            return
        if str(path) in self.session.state.open_paths:  # moved to the end = most recent
            self.session.state.open_paths.remove(str(path))
        self.session.open(path)

    def mark_current(self, path: str | Path) -> None:
        """`path` is on screen now; a series of a folder gets its own view entry (session write)."""
        if self.session is None:
            return
        if str(Path(path)) not in self.session.state.open_paths:
            self.session.open(path)
        else:
            self.session.set_current(path)

    # --- views ---------------------------------------------------------------------------------------------------
    def saved_view(self, path: str | Path) -> Any:
        """The session's `ViewSnapshot` for `path`, or None (never opened, or no session)."""
        if self.session is None:
            return None
        return self.session.state.views.get(str(Path(path)))

    def restore_view(self, state: Any) -> None:
        """Give `state` (a `ViewerState` that just opened a document) the frame, window and region saved for it."""
        if state.path is not None:
            state.restore(self.saved_view(state.path))

    def save_view(self, path: str | Path, state: Any) -> None:
        """Save what `state` shows for `path` (session write); a path not (yet) open is silently skipped."""
        if self.session is None:
            return
        try:
            self.session.save_view_state(path, state)
        except KeyError:
            pass

    # --- measurements --------------------------------------------------------------------------------------------
    def saved_measurements(self, path: str | Path) -> list[Any]:
        """The measurements the session keeps for `path` (`medapp.measurements.Measurement`s); [] without one."""
        if self.session is None:
            return []
        return list(self.session.measurements(path))

    def save_measurements(self, path: str | Path, items: list[Any]) -> None:
        """Keep `items` as `path`'s measurements in the session (session write); no-op without a session."""
        if self.session is not None:
            self.session.set_measurements(path, items)
