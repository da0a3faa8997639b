"""Qt signals around the Qt-free jobs in `medapp.jobs`: the only place the panels meet the model.

The core jobs take plain callbacks (`on_token`, `progress`) and a `threading.Event` for cancel; they know nothing
about Qt. The bridge runs such a job in a `ui.workers.Worker` and re-emits the callbacks as Qt signals on a
`JobHandle`. The handle is created on the UI thread and emitted from the pool thread, so Qt delivers every signal as
a *queued* call on the UI thread: widgets never touch data from another thread and the UI thread never waits.

Stop is cooperative and token-granular: `JobHandle.cancel()` sets the event the engine checks before each new
token, and from that moment the handle drops any token still in flight, so the text on screen stops at once.

An exception in a job becomes one `failed(WorkerFailure)`; the thread ends normally, so a bad input or a model
failure never takes the window down. The panels show their own error dialog (they know what the user was doing), so
the bridge starts its workers on the context's pool directly rather than through `WorkerManager.start`, which would
raise the window's generic dialog a second time. `ModelBridge.cancel_all()` stops them; the window should call it
before `WorkerManager.shutdown()` on close (it also runs on `QCoreApplication.aboutToQuit`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from medapp.assistant import ask_about, draft_about, engine_label, regenerate_section_text
from medapp.conversations import ChatTurn, ConversationStore, conversation_key
from ui.widgets.images import small_copy
from ui.workers import Worker, WorkerFailure

__all__ = ["ChatTurn", "JobHandle", "ModelBridge", "ModelNotReady", "WorkerFailure"]

# A job is called as job(on_token=..., progress=..., cancel=...) and returns its result.
Job = Callable[..., Any]


#: longest side of the thumbnails the jobs make for the panels (in the worker, so the UI thread only draws them)
THUMBNAIL_PX = 128

class ModelNotReady(RuntimeError):
    """Raised inside a job when no engine is loaded; the panel shows it like any other failure."""


class JobHandle(QObject):
    """One model job. Signals arrive on the UI thread in this order: `started`, any number of `token` /
    `progress`, then exactly one of `succeeded(result)`, `failed(WorkerFailure)` or `cancelled(result)`, then
    `finished()`. Connect before `start()`: a signal emitted while nothing is connected is lost."""

    started = Signal()
    token = Signal(str)
    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal(object)
    finished = Signal()

    def __init__(self, name: str, job: Job, starter: Callable[[Worker], None], parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._job = job
        self._starter = starter
        self.result: Any = None
        self.failure: WorkerFailure | None = None
        self._worker = Worker(self._call, name=name)
        self.cancel_event = self._worker.cancel_event
        sig = self._worker.signals
        sig.started.connect(self.started)
        sig.progress.connect(self.progress)
        sig.result.connect(self.succeeded)
        sig.failed.connect(self._on_failed)
        sig.cancelled.connect(lambda: self.cancelled.emit(self.result))
        sig.finished.connect(self._on_finished)
        self._running = False

    # -- UI thread ---------------------------------------------------------------------------------------------
    def start(self) -> JobHandle:
        if self._running or self._worker.done.is_set():
            raise RuntimeError(f"job {self.name!r} was already started")
        self._running = True
        self._starter(self._worker)
        return self

    def cancel(self) -> None:
        """Stop before the next token / item. Tokens already queued are dropped from now on."""
        self._worker.cancel()

    @property
    def is_running(self) -> bool:
        return self._running

    @property
    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the worker thread is done (tests and shutdown only; never on a UI path)."""
        return self._worker.done.wait(timeout_s)

    def _on_failed(self, failure: WorkerFailure) -> None:
        self.failure = failure
        self.failed.emit(failure)

    def _on_finished(self) -> None:
        self._running = False
        self.finished.emit()

    # -- pool thread -------------------------------------------------------------------------------------------
    def _emit_token(self, text: str) -> None:
        if not self.cancel_event.is_set():
            self.token.emit(text)

    def _call(self, cancel: Any, progress: Callable[[Any], None]) -> Any:
        self.result = self._job(on_token=self._emit_token, progress=progress, cancel=cancel)
        return self.result


class ModelBridge(QObject):
    """The panels' door to `medapp.jobs`, the loaded engine and the session.

    `ctx` is the window's `ui.context.AppContext` (settings, session, audit, `model` holder, `workers`). The
    workflows are `medapp.assistant`, `medapp.jobs.caption_folder` and `medapp.jobs.export`, imported inside the
    jobs, so building the panels never imports torch.
    Chat history is a `medapp.conversations.ConversationStore`: in `ctx.session` when there is one; without a
    session (tests, early start-up) in memory for the life of the window, and `history_is_persistent` says so.
    """

    #: the engine a job loaded itself (on the UI thread: handed to `ctx.model.set_engine`)
    engine_loaded = Signal(object)
    #: a job started loading the engine itself / that load failed (message): the status bar says so
    engine_loading = Signal()
    engine_load_failed = Signal(str)

    def __init__(
        self,
        ctx: Any,
        parent: QObject | None = None,
        *,
        load_engine: Callable[[], Any] | None = None,
    ) -> None:
        owner = parent if parent is not None else ctx if isinstance(ctx, QObject) else None
        super().__init__(owner)
        # A child must not hold its Qt parent strongly: the parent's wrapper keeps its children's wrappers, so the
        # two would form a reference cycle that only Python's cyclic GC frees — on whatever thread triggers a
        # collection, possibly a worker, destroying the context's QObjects off the GUI thread.
        if owner is ctx:
            ref = weakref.ref(ctx)
            self._ctx_ref: Callable[[], Any] = ref
        else:
            self._ctx_ref = lambda: ctx
        self._load_engine = load_engine
        app = QCoreApplication.instance()
        if app is not None:  # a generation must not keep the process alive after the window is gone
            app.aboutToQuit.connect(self.cancel_all)
        holder = getattr(ctx, "model", None)
        if holder is not None and hasattr(holder, "set_engine"):
            self.engine_loaded.connect(lambda engine: holder.engine is not engine and holder.set_engine(engine))
            if hasattr(holder, "job_loading"):
                self.engine_loading.connect(holder.job_loading)
                self.engine_load_failed.connect(holder.job_load_failed)
        self._live: set[JobHandle] = set()
        self._conversations = ConversationStore()

    @property
    def _ctx(self) -> Any:
        return self._ctx_ref()

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _start_worker(self, worker: Worker) -> None:
        self._ctx.workers.pool.start(worker)

    def make_job(self, name: str, job: Job) -> JobHandle:
        """A not-yet-started handle for `job(on_token=, progress=, cancel=)`; kept alive until it finishes."""
        handle = JobHandle(name, job, self._start_worker, self)
        self._live.add(handle)
        handle.finished.connect(lambda h=handle: self._live.discard(h))
        return handle

    def preview(self, model_input: Any) -> JobHandle:
        """A job rendering `model_input` off the UI thread; result `(conversation key, pixel hash, thumbnail,
        (width, height))`. The conversation key (`medapp.conversations.conversation_key`) reads the header, so it
        is made here too."""

        def job(
            on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any
        ) -> tuple[str, str, Any, Any]:
            image = model_input.image
            return conversation_key(model_input), model_input.key, small_copy(image, THUMBNAIL_PX), image.size

        return self.make_job("Preview model input", job)

    def cancel_all(self) -> None:
        for handle in list(self._live):
            handle.cancel()

    @property
    def busy(self) -> bool:
        return any(h.is_running for h in self._live)

    def engine_loader(self) -> Callable[[], Any] | None:
        """How a job may load the engine if none is loaded (resolved on the UI thread, where the context's holder
        lives): the `load_engine` given to the bridge, else the context's core holder (`ctx.model.core().get`,
        `medapp.model_holder.ModelHolder` built from the settings; it loads once however many callers)."""
        if self._load_engine is not None:
            return self._load_engine
        holder = getattr(self._ctx, "model", None)
        core = getattr(holder, "core", None)
        if callable(core) and getattr(self._ctx, "settings", None) is not None:
            return core().get
        return None

    def loaded_engine(self) -> Any:
        """The engine the context holds now, or None (no load is started)."""
        return getattr(getattr(self._ctx, "model", None), "engine", None)

    def engine(self, loader: Callable[[], Any] | None = None) -> Any:
        """The loaded engine (called inside jobs, on the worker thread). When none is loaded yet, the first job
        loads it here with `loader` (from `engine_loader`), off the UI thread, and hands it to the context;
        without a loader `ModelNotReady` says what to do. A missing model raises the core's `ModelNotFoundError`,
        whose message says what to download and where to put it."""
        engine = self.loaded_engine()
        if engine is None and loader is not None:
            self.engine_loading.emit()  # not "Model not loaded" in the status bar while this takes a minute
            try:
                engine = loader()
            except Exception as exc:
                self.engine_load_failed.emit(str(exc) or type(exc).__name__)
                raise
            self.engine_loaded.emit(engine)
        if engine is None:
            raise ModelNotReady("The model is not loaded. Choose the model folder in Settings, then load the model.")
        return engine

    def model_label(self) -> str:
        """Short model name for AI labels ("dragonfly-v2-tiny · CPU"), empty when nothing is loaded."""
        return engine_label(getattr(getattr(self._ctx, "model", None), "engine", None))

    def sign_report(self, report: Any, name: str) -> Any:
        """Sign on the UI thread (instant) through `medapp.jobs.export.sign_report`, which also audits it."""
        from medapp.jobs.export import sign_report

        return sign_report(report, name, audit=getattr(self._ctx, "audit", None))

    def _settings(self) -> Any:
        return getattr(self._ctx, "settings", None)

    # -- chat --------------------------------------------------------------------------------------------------
    @property
    def conversations(self) -> ConversationStore:
        """The Qt-free chat history (`medapp.conversations`), saved in the context's session when there is one."""
        self._conversations.session = getattr(self._ctx, "session", None)
        return self._conversations

    @property
    def history_is_persistent(self) -> bool:
        return self.conversations.persistent

    def chat_history(self, key: str, pixels: str | None = None) -> list[ChatTurn]:
        """The turns about the image `key` (`conversation_key`: study and image, any view), oldest first; with
        `pixels` (the view on screen) an older session's turns about exactly those pixels first."""
        return self.conversations.history(key, pixels=pixels)

    def _record_turn(self, key: str, turn: ChatTurn) -> None:
        self.conversations.record(key, turn)

    def ask(self, model_input: Any, question: str) -> JobHandle:
        """A job answering `question` about `model_input` (the earlier turns about the same pixels are sent as
        context). The turn — stopped or not — is stored in the history before `succeeded` / `cancelled` fires, so
        the panel re-renders from the history alone. The result is `(conversation key, ChatTurn)`; the turn carries
        the view it was about (`medapp.conversations.TurnView`). `progress` carries
        `("input", image, thumbnail)` once the exact model input is rendered (in the worker, like everything slow).
        """
        label = self.model_label()
        loader = self.engine_loader()

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> tuple[str, ChatTurn]:
            image = model_input.image  # renders here, off the UI thread
            progress(("input", image, small_copy(image, THUMBNAIL_PX)))
            return ask_about(self.engine(loader), model_input, question, self.conversations,
                             settings=self._settings(), audit=getattr(self._ctx, "audit", None), label=label,
                             on_token=on_token, cancel=cancel)

        handle = self.make_job("Ask the model", job)
        # Connected before the panel's slots, so the history holds the turn when the panel re-renders; it runs on
        # the UI thread, so the session is only ever touched from one thread.
        handle.succeeded.connect(lambda result: self._record_turn(*result))
        handle.cancelled.connect(lambda result: result is not None and self._record_turn(*result))
        return handle


    # -- reports -----------------------------------------------------------------------------------------------
    def draft_report(self, model_input: Any, indication: str) -> JobHandle:
        """A job drafting a `reports.Report` about `model_input` (`medapp.assistant.draft_about`); tokens stream.
        A stopped draft is not applied by the panel (it would replace the report with a fragment)."""
        loader = self.engine_loader()
        settings, audit = self._settings(), getattr(self._ctx, "audit", None)

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> Any:
            return draft_about(self.engine(loader), model_input, indication, settings=settings, audit=audit,
                               on_token=on_token, cancel=cancel)

        return self.make_job("Draft report", job)

    def regenerate_section(self, model_input: Any, report: Any, key: str, indication: str) -> JobHandle:
        """A job returning fresh text for section `key` only (`medapp.assistant.regenerate_section_text`). The
        panel applies it to the report as it is when the job ends, so edits made meanwhile to other sections
        survive."""
        loader = self.engine_loader()
        settings = self._settings()

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> str:
            return regenerate_section_text(self.engine(loader), model_input, report, key, indication,
                                           settings=settings, on_token=on_token, cancel=cancel)

        return self.make_job(f"Regenerate {key}", job)

    def export_report(
        self, report: Any, path: Path, *, kind: str, deidentified: bool = False, source: Any = None
    ) -> JobHandle:
        # `source`: the pydicom header to file the DICOM PDF under, or the ModelInput whose `dataset` it is (read
        # in the worker, since it may touch the disk).
        """A job writing `report` as a PDF (`kind="pdf"`) or a DICOM Encapsulated PDF (`kind="dicom"`) to `path`
        with `medapp.jobs.export.export_report` (de-identification, letterhead, audit); result: the path. The report
        is copied first, so edits made during the export do not race the renderer."""
        from medapp.reporting import snapshot_report

        snapshot = snapshot_report(report)
        settings = self._settings()
        audit = getattr(self._ctx, "audit", None)

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> Path:
            from medapp.jobs.export import export_report

            header = source.dataset if hasattr(source, "dataset") and hasattr(source, "image") else source
            # export_report refuses a DICOM PDF for another study than the report's (the study-UID rule)
            origin = getattr(source, "source", None) if hasattr(source, "image") else None  # the shown file
            return export_report(
                snapshot, path, kind=kind, deidentified=deidentified, source=header, settings=settings, audit=audit,
                inputs=[origin] if origin is not None else (),
            )

        return self.make_job("Export report", job)

    # -- batch captioning --------------------------------------------------------------------------------------
    def caption_batch(
        self,
        folder: Path,
        *,
        csv_path: Path,
        jsonl_path: Path | None = None,
        contact_sheet: Path | None = None,
        prompt: str | None = None,
        resume: bool = True,
    ) -> JobHandle:
        """A job captioning `folder` into `csv_path` (+ JSONL) and drawing the contact sheet with
        `medapp.jobs.caption_folder` (the very workflow of `medapp caption`). `progress` carries the
        core's `Progress` after each batch, `("error", file, message)` per bad file and `("contact_sheet", path)`
        before the sheet is drawn; before any of them `("stage", "listing")`, `("plan", total, already_done)`, and
        `("stage", "loading")` only when the model is actually loaded by this job, then `("stage", "captioning")`.
        Result: the core's `CaptionSummary`."""
        settings = self._settings()
        audit = getattr(self._ctx, "audit", None)
        loader = self.engine_loader()

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> Any:
            from medapp.jobs.caption_folder import CaptionRequest, caption_folder

            request = CaptionRequest(
                folder=folder,
                csv_path=csv_path,
                jsonl_path=jsonl_path,
                contact_sheet=contact_sheet,
                prompt=prompt,
                resume=resume,
                resume_hint="tick Resume to continue it",
            )
            def get_engine() -> Any:
                if self.loaded_engine() is None:  # a loaded model is not "loading" for minutes
                    progress(("stage", "loading"))
                engine = self.engine(loader)
                progress(("stage", "captioning"))
                return engine

            progress(("stage", "listing"))
            return caption_folder(
                request,
                get_engine,
                settings=settings,
                on_progress=progress,
                on_error=lambda file, message: progress(("error", str(file), message)),
                on_contact_sheet=lambda path: progress(("contact_sheet", path)),
                on_plan=lambda total, already: progress(("plan", total, already)),
                cancel=cancel,
                audit=audit,
            )

        return self.make_job("Caption folder", job)

    # -- settings ----------------------------------------------------------------------------------------------
    def check_model(self, folder: Path) -> JobHandle:
        """A job running `medapp.model_holder.checkpoint_summary(folder)` (the quick checkpoint check); result: the
        check's dict plus `summary`, one sentence for the settings dialog."""

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> dict[str, Any]:
            from medapp.model_holder import checkpoint_summary

            return checkpoint_summary(folder)

        return self.make_job("Check model", job)

