"""The per-window application context: the one object every panel receives in its constructor.

It holds the core objects (settings, session, audit log), the window's `WorkerManager`, a lazy model holder, the
Qt-free `view` (`medapp.viewer_state.ViewerState`: what is open and on screen) and the *current model input* —
exactly the pixels on screen, derived from `view` by `medapp.model_input.model_input_for`. Viewers publish a
provider; panels read `current_model_input()` and listen to `current_input_changed`. No panel talks to a sibling widget directly (napari's model/view split).

The core objects may be None while medapp.settings / session / audit are not available (tests, early start-up); the
context never invents stand-ins for them.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from medapp.measurements import MeasurementStore
from medapp.model_input import ModelInput, image_key
from medapp.viewer_state import ViewerState
from medapp.workspace import Workspace
from ui.workers import WorkerFailure, WorkerManager

__all__ = ["ModelInput", "ModelState", "ModelHolder", "AppContext", "image_key"]

log = logging.getLogger(__name__)


def _none() -> None:
    return None


class ModelState(Enum):
    NOT_CONFIGURED = "not configured"
    IDLE = "not loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class ModelStatus:
    """What the status bar shows about the model; `detail` is e.g. "CPU" or "CUDA 4-bit"."""

    state: ModelState
    detail: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        if self.state is ModelState.READY:
            return f"Model ready on {self.detail}" if self.detail else "Model ready"
        if self.state is ModelState.LOADING:
            return f"Model loading{' on ' + self.detail if self.detail else ''}…"
        if self.state is ModelState.FAILED:
            return f"Model failed: {self.error}"
        return f"Model {self.state.value}"


def _describe_engine(engine: Any) -> str:
    """ "CPU", "CUDA 4-bit", "CUDA bfloat16" … from the engine's EngineInfo (device, quant, dtype)."""
    info = getattr(engine, "info", None)
    if info is None:
        return ""
    device = str(getattr(info, "device", "") or "").split(":")[0].upper()
    quant = str(getattr(info, "quant", "") or "")
    parts = [device or "?"]
    if quant and quant != "none":
        parts.append(quant.replace("bit", "-bit") if quant[:1].isdigit() and "-" not in quant else quant)
    return " ".join(parts)


class ModelHolder(QObject):
    """Loads the engine once, in a worker, and tells the window how it is going.

    `loader(cancel=...) -> engine` is supplied by whoever knows the settings (the main window or a test); the
    holder only sequences the load and keeps the result, so it carries no opinion about devices or paths.
    """

    status_changed = Signal(object)  # ModelStatus

    def __init__(
        self, workers: WorkerManager, parent: QObject | None = None, *, settings: Callable[[], Any] | None = None
    ) -> None:
        super().__init__(parent)
        self._workers = workers
        self._settings = settings or (lambda: None)
        self._core: Any = None  # medapp.model_holder.ModelHolder, built from the settings on first use
        self._engine: Any = None
        self._status = ModelStatus(ModelState.NOT_CONFIGURED)
        self._loading = None
        self._check = None

    # --- the core's holder (where the model is and how it is loaded) ---------------------------------------------
    def core(self) -> Any:
        """The Qt-free `medapp.model_holder.ModelHolder` for the current settings (one per settings)."""
        if self._core is None:
            from medapp.model_holder import ModelHolder as CoreHolder

            self._core = CoreHolder(self._settings())
        return self._core

    def check(self) -> None:
        """Find out in a worker whether a model folder is known (settings, models folder or HF cache): the status
        becomes "not loaded" (tooltip: the folder) or "not configured" (tooltip: what to download and where)."""
        if self._settings() is None:
            return
        core = self.core()

        def find() -> tuple[bool, str]:
            from medapp.model_holder import ModelError

            try:
                return True, str(core.resolve_model_dir())
            except ModelError as exc:  # no model is a state for the status bar, not an error dialog
                return False, str(exc)

        self._check = self._workers.run(find, name="Find model", on_result=self._checked)

    def _checked(self, result: tuple[bool, str]) -> None:
        if self._engine is None and self._loading is None:
            configured, hint = result
            self.set_configured(configured, hint=hint)

    def load_configured(self) -> None:
        """Load the engine the settings describe (in a worker; the status follows)."""
        core = self.core()
        self.load(core.get, detail=str(getattr(core, "device", "") or "").upper())

    def reset(self) -> None:
        """Settings changed: forget the engine and the core holder, then check again."""
        self._core = None
        self.set_configured(False)
        self.check()

    @property
    def engine(self) -> Any:
        return self._engine

    @property
    def status(self) -> ModelStatus:
        return self._status

    def _set_status(self, status: ModelStatus) -> None:
        self._status = status
        self.status_changed.emit(status)

    def set_configured(self, configured: bool, hint: str = "") -> None:
        """Settings changed: a model folder exists (IDLE) or not (NOT_CONFIGURED). Drops a loaded engine.

        `hint` (the folder found, or what to download) becomes the status bar's tooltip.
        """
        if self._loading is not None:
            self._loading.cancel()
            self._loading = None
        self._engine = None
        state = ModelState.IDLE if configured else ModelState.NOT_CONFIGURED
        self._set_status(ModelStatus(state, extra={"hint": hint} if hint else {}))

    def load(self, loader: Callable[..., Any], detail: str = "") -> None:
        """Start loading in a worker unless a load is running; `engine` is set when `status` becomes READY."""
        if self._loading is not None:
            return
        self._set_status(ModelStatus(ModelState.LOADING, detail))
        self._loading = self._workers.run(
            loader, name="Load model", on_result=self._loaded, on_error=self._failed, on_finished=self._clear_loading
        )

    def _clear_loading(self) -> None:
        self._loading = None

    def _loaded(self, engine: Any) -> None:
        self._engine = engine
        self._set_status(ModelStatus(ModelState.READY, _describe_engine(engine)))

    def _failed(self, failure: WorkerFailure) -> None:
        self._engine = None
        self._set_status(ModelStatus(ModelState.FAILED, error=failure.message or failure.exc_type))

    def job_loading(self) -> None:
        """A job is loading the engine itself (a question or a batch before "Load model"): the status says
        "loading", not "not loaded", until `set_engine` or `job_load_failed`."""
        if self._engine is None and self._status.state is not ModelState.LOADING:
            self._set_status(ModelStatus(ModelState.LOADING, str(getattr(self._core, "device", "") or "").upper()))

    def job_load_failed(self, message: str) -> None:
        if self._engine is None and self._loading is None and self._status.state is ModelState.LOADING:
            self._set_status(ModelStatus(ModelState.FAILED, error=message))

    def set_engine(self, engine: Any) -> None:
        """Install an engine built elsewhere (tests, the CLI handing over a loaded one)."""
        self._engine = engine
        self._set_status(ModelStatus(ModelState.READY, _describe_engine(engine)))


class AppContext(QObject):
    """Shared state of one window. Panels take it in `__init__` and subscribe to its signals.

    Signals:
      current_input_changed(): the view the model would see changed (frame, window, ROI, slide view); coalesced,
        at most one per event-loop turn burst (a W/L drag emits once when it pauses, not per mouse move).
      opened_changed(object): a new document (ImageStack / Slide / None) is shown.
      settings_changed(object): `set_settings` installed new settings.
      status_message(str): a short message for the status bar.
    """

    current_input_changed = Signal()
    opened_changed = Signal(object)
    settings_changed = Signal(object)
    status_message = Signal(str)

    #: how long the input must stay unchanged before `current_input_changed` fires (ms)
    INPUT_SETTLE_MS = 120

    def __init__(
        self,
        settings: Any = None,
        session: Any = None,
        audit: Any = None,
        parent: QObject | None = None,
        *,
        workers: WorkerManager | None = None,
    ) -> None:
        super().__init__(parent)
        # What is open, the recent list and the session sync (Qt-free); the window runs its slow parts in workers.
        # Created first: the `settings` and `session` properties keep it in step with the context.
        self.workspace = Workspace()
        self.settings = settings
        self.session = session
        self.audit = audit
        self.workers = workers if workers is not None else WorkerManager(self)
        # a weak reference: `lambda: self.settings` would put the context in a reference cycle through its own
        # holder, freed only by Python's cyclic GC — on whatever thread triggers a collection, possibly a worker,
        # which then destroys this QObject (timers, thread pool) off the GUI thread and crashes
        me = weakref.ref(self)
        self.model = ModelHolder(self.workers, self, settings=lambda: getattr(me(), "settings", None))
        # What is open and on screen (Qt-free, evented): viewers and panels take it from here and subscribe.
        self.view = ViewerState()
        # The measurements drawn on each document (Qt-free store): viewers draw them, the panel lists them.
        self.measurements = MeasurementStore()
        # the provider is held weakly when it is a widget's method: the viewer holds this context, so a strong
        # reference back would make a cycle (see `model` above)
        self._provider: Callable[[], Callable[..., ModelInput | None] | None] = _none
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(self.INPUT_SETTLE_MS)
        self._settle.timeout.connect(self.current_input_changed.emit)

    @property
    def settings(self) -> Any:
        """`medapp.settings.Settings` of this window, or None."""
        return self._settings

    @settings.setter
    def settings(self, settings: Any) -> None:
        self._settings = settings
        self.workspace.settings = settings

    @property
    def session(self) -> Any:
        """The autosaved `medapp.session.Session`, or None (tests, early start-up)."""
        return self._session

    @session.setter
    def session(self, session: Any) -> None:
        self._session = session
        self.workspace.session = session

    # --- the current model input -------------------------------------------------------------------------------
    def set_input_provider(self, provider: Callable[..., ModelInput | None] | None) -> None:
        """The active viewer registers how to build the current ModelInput (None: nothing to send)."""
        if provider is None:
            self._provider = _none
        elif inspect.ismethod(provider):
            self._provider = weakref.WeakMethod(provider)
        else:
            self._provider = lambda: provider
        self.notify_input_changed()

    def notify_input_changed(self, *, immediate: bool = False) -> None:
        """Viewers call this whenever frame, window, ROI or slide view changes."""
        if immediate:
            self._settle.stop()
            self.current_input_changed.emit()
        else:
            self._settle.start()

    @property
    def input_pending(self) -> bool:
        """True while a change of the model input is waiting to be announced (the settle delay)."""
        return self._settle.isActive()

    def current_model_input(self, use_region: bool = True) -> ModelInput | None:
        """Exactly what is on screen for the model, or None when nothing is open.

        `use_region=False` gives the whole view even when an ROI is drawn (the chat's "ask about region" off).
        """
        provider = self._provider()
        if provider is None:
            return None
        return provider(use_region=use_region)

    # --- settings and documents -----------------------------------------------------------------------------------
    def set_settings(self, settings: Any) -> None:
        """New settings (the settings dialog saved): the model is found again from them."""
        self.settings = settings
        self.settings_changed.emit(settings)
        self.model.reset()

    @property
    def opened(self) -> Any:
        """The ImageStack / Slide on screen: the view state's document (one source of truth)."""
        return self.view.document

    def set_opened(self, opened: Any) -> None:
        """Announce that `opened` is shown (the viewers already put it in `view`; opened here otherwise)."""
        if opened is not self.view.document:
            self.view.open(opened)
        self.opened_changed.emit(opened)

    def show_message(self, text: str) -> None:
        self.status_message.emit(text)
