"""Run file and model work off the UI thread, so the window never freezes and never dies from a worker's error.

A `Worker` is a `QRunnable` whose `run()` calls a plain Python callable and turns everything that happens into Qt
signals (`progress`, `result`, `error`/`failed`, `finished`). The signals live on a separate `QObject` created on the
UI thread, so connections to widgets are queued automatically and handlers run on the UI thread.

Cancellation is cooperative, as in medapp.jobs: the callable may take a `cancel: threading.Event` and check it between
steps; `Worker.cancel()` sets it. It may also take `progress: Callable[[object], None]`, which emits `progress`.
Both are passed only when the callable's signature names them, so `medapp.jobs` functions (which take exactly these
keyword arguments) run unchanged in a worker.

Why not superqt's `thread_worker`: it is generator-based (`yielded`/`quit()`), whereas the core's jobs take an Event
and a callback; wrapping them would add a dependency and an adapter without removing code.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from medapp.crash import describe

__all__ = ["WorkerFailure", "WorkerSignals", "Worker", "WorkerManager", "Cancelled"]

log = logging.getLogger(__name__)

RETIRE_SECONDS = 1.0


class Cancelled(Exception):
    """Raise from a worker's callable to stop early; the worker then emits `cancelled`, not `failed`."""


@dataclass(frozen=True)
class WorkerFailure:
    """What went wrong in a worker, carried across threads as plain strings (exceptions hold frames and locks)."""

    name: str
    exc_type: str
    message: str
    traceback: str

    def summary(self) -> str:
        """One line for a dialog or the status bar: the task, the exception type and its message."""
        message = " ".join(self.message.split()) or self.exc_type
        return f"{self.name}: {message}" if self.name else message

    @classmethod
    def from_exception(cls, name: str, exc: BaseException) -> WorkerFailure:
        """The same sentence the CLI prints (`medapp.crash.describe`): a user error's own message, or
        "internal error: <cause> (details: <crash log>)" for a bug, whose crash log is written here."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        failure = describe(exc, context=name or "window task")
        return cls(name=name, exc_type=type(exc).__name__, message=failure.message, traceback=tb)


class WorkerSignals(QObject):
    """Signals of one worker. Emitted from the pool thread; delivered queued on the thread that owns this object."""

    started = Signal()
    progress = Signal(object)
    result = Signal(object)
    error = Signal(str)  # WorkerFailure.summary(), for simple consumers
    failed = Signal(object)  # WorkerFailure, for dialogs with details
    cancelled = Signal()
    finished = Signal()  # always last, after result / failed / cancelled


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    """True when `fn` has a parameter called `name` (or **kwargs) — decides whether to inject cancel/progress."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    if name in params:
        return params[name].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
    return False


class Worker(QRunnable):
    """One call of `fn(*args, **kwargs)` on a thread pool; see the module docstring for the protocol.

    Create it on the UI thread (the signals object must belong to it), connect the signals, then start it with
    `WorkerManager.start(worker)` or `QThreadPool.start(worker)`.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it; the manager drops its reference after `finished`
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = name or getattr(fn, "__name__", "task")
        self.signals = WorkerSignals()
        self.cancel_event = threading.Event()
        self.done = threading.Event()
        if _accepts(fn, "cancel") and "cancel" not in kwargs:
            self.kwargs["cancel"] = self.cancel_event
        if _accepts(fn, "progress") and "progress" not in kwargs:
            self.kwargs["progress"] = self.signals.progress.emit

    def cancel(self) -> None:
        """Ask the callable to stop at its next check. Safe from any thread; a no-op after it finished."""
        self.cancel_event.set()

    @property
    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def run(self) -> None:  # runs on a pool thread
        signals = self.signals
        try:
            signals.started.emit()
            if self.cancel_event.is_set():
                raise Cancelled()
            value = self.fn(*self.args, **self.kwargs)
        except Cancelled:
            signals.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 — a worker must never take the process down
            failure = WorkerFailure.from_exception(self.name, exc)
            # Messages and tracebacks can hold file names (and so patient names): the log gets the type only; a bug's
            # code locations are in its crash log (medapp.crash), the message only in the user's dialog.
            log.warning("a worker failed: %s", failure.exc_type)
            signals.error.emit(failure.summary())
            signals.failed.emit(failure)
        else:
            if self.cancel_event.is_set():
                signals.cancelled.emit()
            else:
                signals.result.emit(value)
        finally:
            self.done.set()
            signals.finished.emit()


class WorkerManager(QObject):
    """Starts workers on its own pool, keeps them alive until they finish, and reports every failure in one place.

    The main window connects `worker_failed` to its (non-modal) error dialog, so a failing worker is always seen,
    even when the code that started it connected nothing to `failed`.
    """

    worker_failed = Signal(object)  # WorkerFailure
    busy_changed = Signal(int)  # number of running workers

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._active: dict[QObject, Worker] = {}  # signals object → worker, kept alive until `finished`
        self._retired: deque[tuple[float, Worker]] = deque()  # finished workers, released after RETIRE_SECONDS

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Worker:
        """`create` with the same arguments, then `start`: build, connect the given callbacks, start, return.

        Connect anything else *before* the worker starts (use `create` + `start`): a queued signal emitted while
        nothing is connected is lost, and a fast worker may finish before `run` returns.
        """
        return self.start(self.create(fn, *args, **kwargs))

    @staticmethod
    def create(
        fn: Callable[..., Any],
        *args: Any,
        name: str = "",
        on_result: Callable[[Any], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_error: Callable[[WorkerFailure], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Worker:
        """A connected but not started worker (start it with `start`)."""
        worker = Worker(fn, *args, name=name, **kwargs)
        if on_result is not None:
            worker.signals.result.connect(on_result)
        if on_progress is not None:
            worker.signals.progress.connect(on_progress)
        if on_error is not None:
            worker.signals.failed.connect(on_error)
        if on_finished is not None:
            worker.signals.finished.connect(on_finished)
        return worker

    def start(self, worker: Worker) -> Worker:
        """Start an already-connected worker on this manager's pool."""
        self._active[worker.signals] = worker
        # Bound slots, not lambdas: Qt drops them if this manager is deleted before the worker ends.
        worker.signals.failed.connect(self._on_failed)
        worker.signals.finished.connect(self._on_finished)
        self.pool.start(worker)
        self.busy_changed.emit(len(self._active))
        return worker

    @Slot(object)
    def _on_failed(self, failure: WorkerFailure) -> None:
        self.worker_failed.emit(failure)

    @Slot()
    def _on_finished(self) -> None:
        worker = self._active.pop(self.sender(), None)
        now = time.monotonic()
        if worker is not None:
            # `finished` is emitted from inside run(); the pool thread is still unwinding the C++ side of the call
            # when this slot runs. Dropping the last reference now could free the QRunnable under it, so retired
            # workers are kept for a second before Python may collect them.
            self._retired.append((now, worker))
        while self._retired and now - self._retired[0][0] > RETIRE_SECONDS:
            self._retired.popleft()
        self.busy_changed.emit(len(self._active))

    @property
    def active(self) -> int:
        return len(self._active)

    def cancel_all(self) -> None:
        for worker in list(self._active.values()):
            worker.cancel()

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Cancel everything and wait for the pool (window close). True when all workers stopped in time."""
        self.cancel_all()
        self.pool.clear()  # drop queued, not yet started runnables
        return self.pool.waitForDone(timeout_ms)
