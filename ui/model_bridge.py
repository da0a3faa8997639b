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

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from ui.widgets.images import small_copy
from ui.workers import Worker, WorkerFailure

__all__ = ["ChatTurn", "JobHandle", "ModelBridge", "ModelNotReady", "WorkerFailure"]

# A job is called as job(on_token=..., progress=..., cancel=...) and returns its result.
Job = Callable[..., Any]


#: longest side of the thumbnails the jobs make for the panels (in the worker, so the UI thread only draws them)
THUMBNAIL_PX = 128

# Session `Turn.stop_reason` values meaning the clinician pressed Stop.
_STOPPED = frozenset({"cancelled", "cancel", "stopped"})


class ModelNotReady(RuntimeError):
    """Raised inside a job when no engine is loaded; the panel shows it like any other failure."""


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


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class ModelBridge(QObject):
    """The panels' door to `medapp.jobs`, the loaded engine and the session.

    `ctx` is the window's `ui.context.AppContext` (settings, session, audit, `model` holder, `workers`). `jobs`
    defaults to the `medapp.jobs` module, imported on first use so that building the panels never imports torch.
    Chat history lives in `ctx.session` when there is one; without a session (tests, early start-up) it is kept in
    memory for the life of the window, and `history_is_persistent` says so.
    """

    #: the engine a job loaded itself (on the UI thread: handed to `ctx.model.set_engine`)
    engine_loaded = Signal(object)

    def __init__(
        self,
        ctx: Any,
        jobs: Any = None,
        parent: QObject | None = None,
        *,
        load_engine: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(parent if parent is not None else ctx if isinstance(ctx, QObject) else None)
        self._ctx = ctx
        self._jobs = jobs
        self._load_engine = load_engine
        app = QCoreApplication.instance()
        if app is not None:  # a generation must not keep the process alive after the window is gone
            app.aboutToQuit.connect(self.cancel_all)
        holder = getattr(ctx, "model", None)
        if holder is not None and hasattr(holder, "set_engine"):
            self.engine_loaded.connect(lambda engine: holder.engine is not engine and holder.set_engine(engine))
        self._live: set[JobHandle] = set()
        self._memory_history: dict[str, list[ChatTurn]] = {}

    # -- plumbing ----------------------------------------------------------------------------------------------
    @property
    def jobs(self) -> Any:
        if self._jobs is None:
            import medapp.jobs

            self._jobs = medapp.jobs
        return self._jobs

    def _start_worker(self, worker: Worker) -> None:
        self._ctx.workers.pool.start(worker)

    def make_job(self, name: str, job: Job) -> JobHandle:
        """A not-yet-started handle for `job(on_token=, progress=, cancel=)`; kept alive until it finishes."""
        handle = JobHandle(name, job, self._start_worker, self)
        self._live.add(handle)
        handle.finished.connect(lambda h=handle: self._live.discard(h))
        return handle

    def preview(self, model_input: Any) -> JobHandle:
        """A job rendering `model_input` off the UI thread; result `(key, thumbnail, (width, height))`."""

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> tuple[str, Any, Any]:
            image = model_input.image
            return model_input.key, small_copy(image, THUMBNAIL_PX), image.size

        return self.make_job("Preview model input", job)

    def cancel_all(self) -> None:
        for handle in list(self._live):
            handle.cancel()

    @property
    def busy(self) -> bool:
        return any(h.is_running for h in self._live)

    def _engine_loader(self) -> Callable[[], Any] | None:
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

    def engine(self, loader: Callable[[], Any] | None = None) -> Any:
        """The loaded engine (called inside jobs, on the worker thread). When none is loaded yet, the first job
        loads it here with `loader` (from `_engine_loader`), off the UI thread, and hands it to the context;
        without a loader `ModelNotReady` says what to do. A missing model raises the core's `ModelNotFoundError`,
        whose message says what to download and where to put it."""
        holder = getattr(self._ctx, "model", None)
        engine = getattr(holder, "engine", None)
        if engine is None and loader is not None:
            engine = loader()
            self.engine_loaded.emit(engine)
        if engine is None:
            raise ModelNotReady("The model is not loaded. Choose the model folder in Settings, then load the model.")
        return engine

    def model_label(self) -> str:
        """Short model name for AI labels ("dragonfly-v2-tiny · CPU"), empty when nothing is loaded."""
        holder = getattr(self._ctx, "model", None)
        info = getattr(getattr(holder, "engine", None), "info", None)
        if info is None:
            return ""
        model_id = str(getattr(info, "model_id", "") or "")
        name = model_id.rstrip("/").rsplit("/", 1)[-1]
        device = str(getattr(info, "device", "") or "").upper()
        return " · ".join(p for p in (name, device) if p)

    def sign_report(self, report: Any, name: str) -> Any:
        """Sign on the UI thread (instant) through `medapp.jobs.export.sign_report`, which also audits it."""
        from medapp.jobs.export import sign_report

        return sign_report(report, name, audit=getattr(self._ctx, "audit", None))

    def _settings(self) -> Any:
        return getattr(self._ctx, "settings", None)

    # -- chat --------------------------------------------------------------------------------------------------
    @property
    def history_is_persistent(self) -> bool:
        return getattr(self._ctx, "session", None) is not None

    def chat_history(self, key: str) -> list[ChatTurn]:
        """The turns about the image with content hash `key`, oldest first."""
        session = getattr(self._ctx, "session", None)
        if session is None:
            return list(self._memory_history.get(key, []))
        return [
            ChatTurn(t.question, t.answer, stopped=t.stop_reason in _STOPPED, when=t.time)
            for t in session.state.conversations.get(key, [])
        ]

    def _record_turn(self, key: str, turn: ChatTurn) -> None:
        session = getattr(self._ctx, "session", None)
        if session is None:
            self._memory_history.setdefault(key, []).append(turn)
        else:
            session.add_turn(key, turn.question, turn.answer, stop_reason="cancelled" if turn.stopped else "")

    def ask(self, model_input: Any, question: str) -> JobHandle:
        """A job answering `question` about `model_input` (the earlier turns about the same image are sent as
        context). The turn — stopped or not — is stored in the history before `succeeded` / `cancelled` fires, so
        the panel re-renders from the history alone. The result is `(key, ChatTurn)`. `progress` carries
        `("input", image, thumbnail)` once the exact model input is rendered (in the worker, like everything slow).
        """
        label = self.model_label()
        loader = self._engine_loader()

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> tuple[str, ChatTurn]:
            image = model_input.image  # renders here, off the UI thread
            key = model_input.key
            progress(("input", image, small_copy(image, THUMBNAIL_PX)))
            history = [(t.question, t.answer) for t in self.chat_history(key) if not t.stopped]
            engine = self.engine(loader)
            settings = self._settings()
            answer = self.jobs.ask(
                engine,
                image,
                question,
                history,
                on_token=on_token,
                cancel=cancel,
                limits=settings.generation() if settings is not None else None,
                audit=getattr(self._ctx, "audit", None),
            )
            stopped = bool(getattr(answer, "cancelled", False)) or cancel.is_set()
            turn = ChatTurn(question, str(getattr(answer, "text", answer)), stopped=stopped, model=label, when=_now())
            return key, turn

        handle = self.make_job("Ask the model", job)
        # Connected before the panel's slots, so the history holds the turn when the panel re-renders; it runs on
        # the UI thread, so the session is only ever touched from one thread.
        handle.succeeded.connect(lambda result: self._record_turn(*result))
        handle.cancelled.connect(lambda result: result is not None and self._record_turn(*result))
        return handle


    # -- reports -----------------------------------------------------------------------------------------------
    def _report_kwargs(self, model_input: Any, indication: str) -> dict[str, Any]:
        """Everything `draft_report` needs but the image; call it in the worker (`dataset` may read the disk)."""
        return {
            "modality": getattr(model_input, "modality", None),
            "indication": indication,
            "dataset": getattr(model_input, "dataset", None),
            "frame": getattr(model_input, "frame", None),
            "region": getattr(model_input, "region", None),
            "window": getattr(model_input, "window", None),
            "settings": self._settings(),
            "audit": getattr(self._ctx, "audit", None),
        }

    def draft_report(self, model_input: Any, indication: str) -> JobHandle:
        """A job drafting a `reports.Report` about `model_input` (`medapp.jobs.draft_report`); tokens stream.
        A stopped draft is not applied by the panel (it would replace the report with a fragment)."""
        loader = self._engine_loader()
        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> Any:
            kwargs = self._report_kwargs(model_input, indication)
            image = model_input.image
            return self.jobs.draft_report(self.engine(loader), image, on_token=on_token, cancel=cancel, **kwargs)

        return self.make_job("Draft report", job)

    def regenerate_section(self, model_input: Any, report: Any, key: str, indication: str) -> JobHandle:
        """A job returning fresh text for section `key` only (a new draft from the same image and indication, of
        which only that section is kept). The panel applies it to the report as it is when the job ends, so edits
        made meanwhile to other sections survive. The core has no per-section prompt yet (see the report)."""
        modality = getattr(report, "modality", None)
        loader = self._engine_loader()

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> str:
            kwargs = self._report_kwargs(model_input, indication)
            kwargs["modality"] = modality or kwargs["modality"]
            kwargs["audit"] = None  # the full-draft audit entry would misdescribe a one-section regeneration
            engine = self.engine(loader)
            draft = self.jobs.draft_report(engine, model_input.image, on_token=on_token, cancel=cancel, **kwargs)
            if cancel.is_set():
                return ""
            return str(draft.text(key))

        return self.make_job(f"Regenerate {key}", job)

    def export_report(
        self, report: Any, path: Path, *, kind: str, deidentified: bool = False, source: Any = None
    ) -> JobHandle:
        # `source`: the pydicom header to file the DICOM PDF under, or the ModelInput whose `dataset` it is (read
        # in the worker, since it may touch the disk).
        """A job writing `report` as a PDF (`kind="pdf"`) or a DICOM Encapsulated PDF (`kind="dicom"`) to `path`
        with `medapp.jobs.export.export_report` (de-identification, letterhead, audit); result: the path. The report
        is copied first, so edits made during the export do not race the renderer."""
        from reports.model import Report

        snapshot = Report.from_dict(report.to_dict())
        settings = self._settings()
        audit = getattr(self._ctx, "audit", None)

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> Path:
            from medapp.jobs.export import export_report

            header = source.dataset if hasattr(source, "dataset") and hasattr(source, "image") else source
            wanted = snapshot.identifiers.study_instance_uid
            found = str(header.get("StudyInstanceUID", "")) if header is not None else ""
            if kind == "dicom" and wanted and found and found != wanted:
                from medapp.errors import UserError

                raise UserError(
                    "the image on screen belongs to another study than the report; open the report's study to "
                    "file the DICOM PDF into it"
                )
            return export_report(
                snapshot, path, kind=kind, deidentified=deidentified, source=header, settings=settings, audit=audit
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
        """A job captioning `folder` into `csv_path` (+ JSONL) with `medapp.jobs.caption_batch`, then drawing the
        contact sheet with `reports.contact_sheet` (the same steps as `medapp caption`). `progress` carries the
        core's `Progress` after each batch, `("error", file, message)` per bad file and `("contact_sheet", path)`
        before the sheet is drawn. Result: the core's `CaptionSummary`."""
        settings = self._settings()
        audit = getattr(self._ctx, "audit", None)
        loader = self._engine_loader()

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> Any:
            from medapp.errors import UserError
            from reports.captions import CaptionWriter, read_caption_rows

            if not resume:
                for out in (csv_path, jsonl_path):
                    if out is not None and out.exists() and out.stat().st_size > 0:
                        raise UserError(f"{out}: already exists; tick Resume to continue it, or choose another file")
            options: dict[str, Any] = {"prompt": prompt or self.jobs.CAPTION_PROMPT}
            tiles, tile_px = 4, 512
            if settings is not None:
                options.update(batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens)
                tiles, tile_px = settings.tissue_tiles, settings.tissue_tile_px
            items = self.jobs.list_items(folder, tissue_tiles=tiles, tile_px=tile_px)
            engine = self.engine(loader)
            thumbnails: dict[Any, Any] | None = None
            if contact_sheet is not None:  # rows done in an earlier run: plain images preview from their path
                thumbnails = {it.key: it.path for it in items if it.kind == "image"}
            with CaptionWriter(csv_path, jsonl_path) as writer:
                summary = self.jobs.caption_batch(
                    engine,
                    items,
                    writer,
                    resume=resume,
                    thumbnails=thumbnails,
                    on_progress=progress,
                    on_error=lambda file, message: progress(("error", str(file), message)),
                    cancel=cancel,
                    audit=audit,
                    **options,
                )
            if contact_sheet is not None and not summary.cancelled:
                from reports.contact_sheet import render_contact_sheet

                progress(("contact_sheet", contact_sheet))
                render_contact_sheet(
                    read_caption_rows(csv_path), contact_sheet, thumbnails=thumbnails, model=engine.info.model_id
                )
            return summary

        return self.make_job("Caption folder", job)

    # -- settings ----------------------------------------------------------------------------------------------
    def check_model(self, folder: Path) -> JobHandle:
        """A job running `models.check.check_checkpoint` on `folder`: config, tensor names and shapes from the
        safetensors headers, the quick hash check (no full re-hash: seconds, not minutes, on an 8B checkpoint).
        Result: the check's dict plus `summary`, one sentence for the settings dialog."""

        def job(on_token: Callable[[str], None], progress: Callable[[Any], None], cancel: Any) -> dict[str, Any]:
            from models.check import check_checkpoint

            result = dict(check_checkpoint(folder, verify_hashes=False))
            if result.get("ok"):
                n = result.get("n_params")
                size = ""
                if isinstance(n, int):
                    size = f", {n / 1e9:.2f} B parameters" if n >= 10**8 else f", {n:,} parameters"
                name = result.get("model_id") or folder.name
                result["summary"] = (
                    f"{name} (Dragonfly {result.get('version')}){size}, {result.get('dtype') or '?'} weights."
                )
            else:
                result["summary"] = "; ".join(result.get("problems") or ["the checkpoint is not usable"])
            return result

        return self.make_job("Check model", job)

