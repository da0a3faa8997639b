"""The main window: open anything, browse it, view it, and hand exactly what is on screen to the model panels.

Layout: study browser (left dock), the viewer in the middle (welcome page, image viewer or slide viewer), the model
panels (Ask / Report, right dock), the DICOM tag browser (bottom dock, hidden until asked for), status bar with the
model state. Every file operation runs in a worker; results come back as signals, failures as a non-modal dialog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QToolButton,
    QWidget,
)

from medapp.viewer_state import ViewerState
from medapp.workspace import MAX_RECENT, Workspace
from ui.browser import BrowserEntry, StudyBrowser
from ui.context import AppContext
from ui.status import StatusBar
from ui.tag_browser import TagBrowser
from ui.viewer.grid import LAYOUTS, ViewerGrid
from ui.viewer.image_viewer import ImageViewer
from ui.viewer.magnification import MAG_STEPS, format_mag
from ui.viewer.slide_viewer import SlideViewer, prepare_slide
from ui.welcome import WelcomePage
from ui.workers import Worker, WorkerFailure, WorkerManager

__all__ = ["MainWindow", "open_job", "MAX_RECENT", "SLIDE_BUTTON_MAGS"]

#: the objective buttons on the toolbar for slides (the menu and the number keys have the finer steps)
SLIDE_BUTTON_MAGS: tuple[float, ...] = (1.0, 5.0, 10.0, 20.0, 40.0)

log = logging.getLogger(__name__)


def open_job(path: Path, extra_presets: dict[str, Any] | None = None) -> tuple[str, Path, Any, Any]:
    """Worker: open `path` (`medapp.workspace.Workspace.open`) and prepare what its viewer needs before the first
    paint; a slide's thumbnail (a QImage) is read here too. Returns (kind, path, opened, setup) with kind "stack",
    "slide" or "collection"."""
    opening = Workspace().open(path, extra_presets or {})
    setup = prepare_slide(opening.document) if opening.kind == "slide" else opening.setup
    return opening.kind, opening.path, opening.document, setup


def _open_series_job(series: Any, extra_presets: dict[str, Any] | None) -> tuple[str, Path, Any, Any]:
    opening = Workspace().open_series(series, extra_presets or {})
    return opening.kind, opening.path, opening.document, opening.setup


class MainWindow(QMainWindow):
    """One window, one AppContext. Public: `open_paths`, `image_viewer`, `slide_viewer`, `browser`, `tag_browser`."""

    document_shown = Signal(object)  # the ImageStack / Slide now on screen
    open_failed = Signal(object)  # WorkerFailure of an open

    def __init__(self, context: AppContext | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context if context is not None else AppContext(parent=self)
        if self.context.parent() is None:
            self.context.setParent(self)
        self.setWindowTitle("medapp")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.error_boxes: list[QMessageBox] = []
        self._current_path: Path | None = None
        self._showing = False
        self._bridge: Any = None
        self._session_io = WorkerManager(self, max_threads=1)
        self._open_seq = 0  # number of the newest open request
        self._shown_seq = 0  # number of the request on screen
        self._open_requests: dict[QObject, int] = {}  # worker signals → request number
        self._session_io.worker_failed.connect(self._session_failed)

        # central: welcome / image / slide
        self.welcome = WelcomePage()
        self.image_viewer = ImageViewer(self.context)
        self.grid = ViewerGrid(self.image_viewer, self.context)  # cell 1 is image_viewer; 1×2 / 2×2 add priors
        self.slide_viewer = SlideViewer(self.context)
        self.stack = QStackedWidget()
        for widget in (self.welcome, self.grid, self.slide_viewer):
            self.stack.addWidget(widget)
        self.setCentralWidget(self.stack)

        # docks
        self.browser = StudyBrowser(self.context.workers)
        self.browser_dock = self._dock("Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tag_browser = TagBrowser()
        self.tag_dock = self._dock("DICOM tags", self.tag_browser, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tag_dock.hide()
        self.panels = QTabWidget()
        self.chat_panel: Any = None
        self.report_panel: Any = None
        self._build_panels()
        self.panel_dock = self._dock("Assistant", self.panels, Qt.DockWidgetArea.RightDockWidgetArea)
        self.panel_dock.setVisible(self.panels.count() > 0)
        self.resizeDocks([self.browser_dock, self.panel_dock], [270, 430], Qt.Orientation.Horizontal)

        self.status = StatusBar(self.context)
        self.setStatusBar(self.status)
        self._build_actions()
        self._connect()
        self._build_measurements()
        self._refresh_recent()
        self._check_model_configured()

    # --- construction ---------------------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_panels(self) -> None:
        """The Ask, Report and Slide panels, each built by its own module (imported here: the window opens first).

        Every panel is part of the app: a missing module is a broken install and fails loudly, never a silent gap.
        """
        from ui.model_bridge import ModelBridge
        from ui.panels.chat import ChatPanel
        from ui.panels.report import ReportPanel
        from ui.panels.slide_description import SlideDescriptionPanel

        self._bridge = ModelBridge(self.context)
        self.chat_panel = ChatPanel(self.context, self._bridge)
        self.chat_panel.focus_viewer.connect(self.focus_viewer)
        self.panels.addTab(self.chat_panel, "Ask")
        self.report_panel = ReportPanel(self.context, self._bridge)
        self.panels.addTab(self.report_panel, "Report")
        # slide-level description: follows the document on screen
        self.slide_panel = SlideDescriptionPanel(self.context, self._bridge, self.slide_viewer)
        self.panels.addTab(self.slide_panel, "Slide")
        self.document_shown.connect(self.slide_panel.set_document)

    def _action(
        self, text: str, slot: Callable[..., Any], shortcut: str | QKeySequence | None = None, *, checkable: bool = False,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        (action.toggled if checkable else action.triggered).connect(slot)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        # File
        self.act_open = self._action("&Open file…", self.open_file_dialog, QKeySequence.StandardKey.Open,
                                     tip="Open a DICOM file, DICOMDIR, slide or picture")
        self.act_open_folder = self._action("Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                            tip="Open a folder of DICOM files, images or slides")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        file_menu.addAction(self.act_open_folder)
        from ui.dialogs.pacs import pacs_action  # File → PACS…: search, retrieve, open

        self.act_pacs = pacs_action(self)
        file_menu.addAction(self.act_pacs)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)

        # View (viewer keys are handled by the viewers; these actions mirror them for mouse users)
        self.act_fit = self._action("&Fit to window", lambda: self._viewer_call("fit"), tip="Fit the image (F)")
        self.act_1to1 = self._action("&1:1 pixels", lambda: self._viewer_call("one_to_one"),
                                     tip="One image pixel per screen pixel (O)")
        self.act_roi = self._action("&Region tool", self._toggle_roi, checkable=True,
                                    tip="Draw the region the model sees (R); Esc clears it")
        self.act_cine = self._action("&Cine", self._toggle_cine, checkable=True, tip="Play frames (Space)")
        self.act_overlay = self._action("&Overlay", lambda on: self._set_overlay_all(show=on),
                                        checkable=True, tip="Corner annotations (V)")
        self.act_overlay.setChecked(True)
        self.act_phi = self._action("Show &patient data", self._set_phi, checkable=True,
                                    tip="Patient name, ID and dates in overlay, browser and tags (P)")
        self.act_invert = self._action("&Invert", lambda: self._image_call("invert"), tip="Invert grey levels (I)")
        self.act_rotate = self._action("&Rotate 90°", lambda: self._image_call("rotate"),
                                       tip="Rotate 90° clockwise (]; [ counter-clockwise)")
        self.act_flip = self._action("&Mirror", lambda: self._image_call("flip"),
                                     tip="Mirror left-right (H; Shift+H top-bottom)")
        self.act_reset_view = self._action("R&eset view", lambda: self._image_call("reset"),
                                           tip="Window, zoom, rotation, mirroring and inversion back (Backspace)")
        self.act_link = self._action("&Link scrolling", self.grid.set_linked, checkable=True,
                                     tip="Scroll the views of a 1×2 / 2×2 layout together, by slice position")
        self.act_link.setChecked(True)
        self.layout_actions: dict[str, QAction] = {}
        layout_group = QActionGroup(self)
        for name in LAYOUTS:
            act = self._action(name.replace("x", "×"), lambda on, n=name: self._layout_toggled(n, on), checkable=True,
                               tip=f"{name.replace('x', '×')} viewer layout (Open in view N from the browser)")
            layout_group.addAction(act)
            self.layout_actions[name] = act
        self.layout_actions["1x1"].setChecked(True)
        self.act_tags = self.tag_dock.toggleViewAction()
        self.act_tags.setText("DICOM &tags")
        self.act_tags.setShortcut(QKeySequence("Ctrl+T"))
        self.act_tags.setStatusTip("Header of the image on screen, with search (Ctrl+T)")
        # the viewer's own key beside each item, as menus show shortcuts (the keys stay the viewer's: as QAction
        # shortcuts they would fire while typing); the toolbar keeps the short text
        for act, key in ((self.act_fit, "F"), (self.act_1to1, "O"), (self.act_roi, "R"), (self.act_cine, "Space"),
                         (self.act_overlay, "V"), (self.act_phi, "P"), (self.act_invert, "I"), (self.act_rotate, "]"),
                         (self.act_flip, "H"), (self.act_reset_view, "Backspace")):
            act.setIconText(act.iconText())
            act.setText(f"{act.text()}\t{key}")
        view_menu = bar.addMenu("&View")
        for act in (self.act_fit, self.act_1to1, self.act_roi, self.act_cine, self.act_overlay, self.act_phi,
                    self.act_tags):
            view_menu.addAction(act)
        view_menu.addSeparator()
        for act in (self.act_invert, self.act_rotate, self.act_flip, self.act_reset_view):
            view_menu.addAction(act)
        self.layout_menu = view_menu.addMenu("La&yout")
        for act in self.layout_actions.values():
            self.layout_menu.addAction(act)
        self.layout_menu.addSeparator()
        self.layout_menu.addAction(self.act_link)
        self.window_menu = view_menu.addMenu("&Window presets")
        self.window_menu.aboutToShow.connect(self._tick_window_menu)
        self.mag_menu = view_menu.addMenu("&Magnification")
        for i, mag in enumerate(MAG_STEPS):
            act = QAction(f"{format_mag(mag)}\t{i + 1}", self)
            act.triggered.connect(lambda _=False, m=mag: self.slide_viewer.set_magnification(m))
            self.mag_menu.addAction(act)
        view_menu.addSeparator()
        view_menu.addAction(self.browser_dock.toggleViewAction())
        view_menu.addAction(self.panel_dock.toggleViewAction())

        # Model / tools
        self.act_load_model = self._action("&Load model", self.load_model, "Ctrl+L",
                                           tip="Load the Dragonfly-Med model set in Settings")
        self.act_batch = self._action("&Caption a folder…", self.open_batch_dialog, tip="Batch captioning")
        self.act_settings = self._action("&Settings…", self.open_settings_dialog, QKeySequence.StandardKey.Preferences)
        tools = bar.addMenu("&Tools")
        tools.addAction(self.act_load_model)
        tools.addAction(self.act_batch)
        tools.addAction(self.act_settings)
        help_menu = bar.addMenu("&Help")
        self.act_keys = self._action("&Keyboard and mouse", self.show_key_help, QKeySequence.StandardKey.HelpContents)
        help_menu.addAction(self.act_keys)
        self.act_batch.setEnabled(self._dialog_class("batch") is not None)
        self.act_load_model.setEnabled(self.context.settings is not None)
        self.act_settings.setEnabled(self._dialog_class("settings") is not None)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        self.window_menu.menuAction().setText("Window")
        self.mag_menu.menuAction().setText("Magnification")
        for act in (self.act_open, self.act_open_folder, None, self.act_fit, self.act_1to1, self.act_roi,
                    self.window_menu.menuAction(), self.mag_menu.menuAction(), self.act_cine, self.act_overlay,
                    self.act_phi, self.act_tags, None, self.act_load_model):
            if act is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(act)
        self.addToolBar(toolbar)
        self.toolbar = toolbar
        self._finish_toolbar(toolbar)
        self._update_view_actions()

    def _finish_toolbar(self, toolbar: QToolBar) -> None:
        """Menu buttons open their menu on a click anywhere on them (not only on the small arrow), and slides get
        one-click objective buttons (1× … 40×), as on a microscope's nosepiece."""
        for menu in (self.window_menu, self.mag_menu):
            button = toolbar.widgetForAction(menu.menuAction())
            if isinstance(button, QToolButton):
                button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.mag_actions: list[QAction] = []
        self._mag_separator = toolbar.insertSeparator(self.act_cine)
        for mag in SLIDE_BUTTON_MAGS:
            act = QAction(format_mag(mag), self)
            act.setObjectName(f"mag_{format_mag(mag)}")
            act.setToolTip(f"Show the slide at {format_mag(mag)} objective magnification")
            act.triggered.connect(lambda _=False, m=mag: self.slide_viewer.set_magnification(m))
            toolbar.insertAction(self.act_cine, act)
            self.mag_actions.append(act)

    def _connect(self) -> None:
        ctx = self.context
        ctx.workers.worker_failed.connect(self.show_error)
        self.welcome.open_path.connect(lambda p: self.open_paths([p]))
        self.welcome.open_file_requested.connect(self.open_file_dialog)
        self.welcome.open_folder_requested.connect(self.open_folder_dialog)
        self.browser.activated.connect(self._open_entry)
        self.browser.open_in_view.connect(self.open_entry_in)
        self.grid.active_changed.connect(self._active_cell_changed)
        self.grid.layout_changed.connect(self._layout_changed)
        self.grid.entry_dropped.connect(self._entry_dropped)
        self.grid.paths_dropped.connect(self._paths_dropped)
        self.image_viewer.cursor_info.connect(self.status.set_cursor_text)
        self.image_viewer.tool_changed.connect(lambda t: self._sync_check(self.act_roi, t == "roi"))
        self.slide_viewer.tool_changed.connect(lambda t: self._sync_check(self.act_roi, t == "roi"))
        for cell in self.grid.cells:  # cell 0 is image_viewer
            cell.cine_changed.connect(self._cine_changed)
        state = self.image_viewer.state
        state.frame_changed.connect(lambda _: self._update_tags())
        state.stack_changed.connect(lambda _: self._update_window_menu())
        state.overlay_changed.connect(self._sync_overlay_actions)
        state.transform_changed.connect(self._save_view)  # not a model-input change, but the session keeps it
        self.tag_dock.visibilityChanged.connect(lambda visible: visible and self._update_tags())
        self.tag_browser.phi_box.toggled.connect(lambda on: self._sync_check(self.act_phi, on))
        ctx.current_input_changed.connect(self._save_view)
        ctx.settings_changed.connect(lambda settings: self.act_load_model.setEnabled(settings is not None))
        ctx.model.status_changed.connect(self._model_status_changed)

    @staticmethod
    def _sync_check(action: QAction, on: bool) -> None:
        if action.isChecked() != on:
            action.blockSignals(True)
            action.setChecked(on)
            action.blockSignals(False)

    # --- opening ----------------------------------------------------------------------------------------------------
    def open_file_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open", str(self._last_dir()),
            "Images (*.dcm *.dicom *.DCM DICOMDIR *.svs *.ndpi *.tif *.tiff *.mrxs *.scn *.vms *.bif *.png *.jpg "
            "*.jpeg *.bmp);;All files (*)",
        )
        if paths:
            self.open_paths([Path(p) for p in paths])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", str(self._last_dir()))
        if folder:
            self.open_paths([Path(folder)])

    def _last_dir(self) -> Path:
        return self.context.workspace.last_folder()

    def open_paths(self, paths: Iterable[Path | str]) -> list[Worker]:
        """Open each path in a worker. Each result joins the browser; the screen shows the newest request whose
        result has arrived (a slow earlier open never replaces a later one). Returns the workers."""
        presets = self.context.workspace.user_presets()
        workers = []
        for path in paths:
            path = Path(path)
            self.context.show_message(f"Opening {path.name}…")
            worker = self.context.workers.create(open_job, path, presets, name=f"Open {path.name}",
                                                 on_result=self._opened, on_error=self._open_failed)
            workers.append(self._start_open(worker))
        return workers

    def _start_open(self, worker: Worker) -> Worker:
        self._open_seq += 1
        self._open_requests[worker.signals] = self._open_seq
        return self.context.workers.start(worker)

    def _claim_screen(self) -> bool:
        """Called from an open's result slot: True if this result is the newest so far and may be shown."""
        seq = self._open_requests.pop(self.sender(), self._open_seq)
        if seq < self._shown_seq:
            return False
        self._shown_seq = seq
        return True

    def _open_failed(self, failure: WorkerFailure) -> None:
        self._open_requests.pop(self.sender(), None)
        self.open_failed.emit(failure)

    def _open_entry(self, entry: BrowserEntry) -> None:
        presets = self.context.workspace.user_presets()
        if entry.kind == "series":
            self.browser.select(entry)
            worker = self.context.workers.create(_open_series_job, entry.target, presets, name="Open series",
                                                 on_result=self._series_opened, on_error=self._open_failed)
            self._start_open(worker)
        elif entry.kind == "path":
            self.open_paths([entry.target])
        elif entry.kind == "opened":
            opened = entry.target
            if getattr(opened, "kind", "") == "slide":
                self._open_seq += 1
                self._shown_seq = self._open_seq
                self.show_slide(opened)
            else:
                def prepare() -> tuple[str, Path, Any, Any]:
                    opening = self.context.workspace.prepare(opened, presets)
                    return opening.kind, opening.path, opening.document, opening.setup

                worker = self.context.workers.create(
                    prepare, name="Open",
                    on_result=self._series_opened, on_error=self._open_failed,
                )
                self._start_open(worker)

    def _opened(self, result: tuple[str, Path, Any, Any]) -> None:
        kind, path, opened, setup = result
        show = self._claim_screen()
        self._remember(path)
        if kind == "collection":
            entries = self.browser.add_collection(opened, path.name or str(path))
            self.context.show_message(
                f"{path.name}: {len(entries)} series / file(s)" + (f" — {len(opened.warnings)} warning(s)"
                                                                 if getattr(opened, "warnings", None) else "")
            )
            first = next((e for e in entries if e.kind in ("series", "path")), None)
            if first is None:
                self.show_error(f"{path}: nothing to show in this folder")
            elif show:
                self._open_entry(first)
            return
        label = f"{opened.metadata.get('modality') or ''} {path.name}".strip() if kind == "stack" else path.name
        self.browser.add_opened(opened, label, select=show)
        if show:
            if kind == "slide":
                self.show_slide(opened, setup)
            else:
                self.show_stack(opened, setup)
        for warning in getattr(opened, "warnings", None) or []:
            self.context.show_message(f"{path.name}: {warning}")

    def _series_opened(self, result: tuple[str, Path, Any, Any]) -> None:
        """A series picked in the browser: already listed there, so only shown (if still the newest request)."""
        _, _, stack, setup = result
        if not self._claim_screen():
            return
        self.show_stack(stack, setup)
        for warning in getattr(stack, "warnings", None) or []:
            self.context.show_message(warning)

    def show_stack(self, stack: Any, setup: Any = None) -> None:
        """Put an ImageStack on screen (setup from `prepare_stack`, else computed here)."""
        self.slide_viewer.set_slide(None)
        self._showing = True  # opening resets, then restores, the view: neither is a user change to save
        try:
            self.image_viewer.set_stack(stack, setup)
            self._restore_view(stack)
        finally:
            self._showing = False
        self.stack.setCurrentWidget(self.grid)
        self.grid.set_active(self.image_viewer)
        self.context.set_input_provider(self.image_viewer.model_input)
        self._after_show(stack)
        self.image_viewer.setFocus()

    def show_slide(self, slide: Any, setup: Any = None) -> None:
        self.image_viewer.clear()
        self.slide_viewer.set_slide(slide, setup)
        self._restore_view(slide)
        self.stack.setCurrentWidget(self.slide_viewer)
        self.context.set_input_provider(self.slide_viewer.model_input)
        self._after_show(slide)
        self.slide_viewer.setFocus()

    def _restore_view(self, opened: Any) -> None:
        """Reopening a file brings back its frame, window and region from the session (crash recovery too)."""
        self.context.workspace.restore_view(self.context.view)

    def _after_show(self, opened: Any) -> None:
        self._current_path = Path(opened.path)
        self.context.set_opened(opened)
        current, workspace = self._current_path, self.context.workspace
        self._session_call(lambda _session: workspace.mark_current(current))
        self._refresh_recent()
        self.setWindowTitle(f"medapp — {self._current_path.name}")
        self.status.clearMessage()
        self.status.set_cursor_text("")  # the last file's "x y: -998 HU" means nothing here (a slide has no HU)
        self.context.show_message(f"Opened {self._current_path.name}")
        self._update_view_actions()
        self._update_tags()
        self.document_shown.emit(opened)

    def is_settled(self) -> bool:
        """No file work running, and the viewer shows what its state says (image rendered / slide tiles in)."""
        if self.context.workers.active or self.context.input_pending or self._session_io.active:
            return False
        viewer = self.current_viewer
        if isinstance(viewer, ImageViewer):
            return viewer.is_idle()
        if isinstance(viewer, SlideViewer):
            return viewer.is_idle()
        return True

    @property
    def current_viewer(self) -> ImageViewer | SlideViewer | None:
        """The viewer the user works in: the slide viewer, the active cell of the image grid, or None."""
        widget = self.stack.currentWidget()
        if widget is self.grid:
            return self.grid.active
        return widget if isinstance(widget, (ImageViewer, SlideViewer)) else None

    def focus_viewer(self) -> None:
        """Give the keyboard to the viewer on screen (after asking, Esc in the chat): its keys work at once."""
        viewer = self.current_viewer
        if viewer is not None:
            viewer.setFocus(Qt.FocusReason.OtherFocusReason)

    # --- layouts (compare with a prior) ---------------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        """1×1, 1×2 or 2×2 image views; the browser's "Open in view N" fills the further ones."""
        self.grid.set_layout(name)

    def _layout_toggled(self, name: str, on: bool) -> None:
        """A layout menu item changed: the one checked is applied; the others, unchecked by the group, do nothing."""
        if on and self.grid.layout_name != name:
            self.set_layout(name)

    def _layout_changed(self, name: str) -> None:
        # checked with signals on (not `_sync_check`): the exclusive group must see it to uncheck the old layout,
        # else "Open in view 2" left both 1×1 and 1×2 ticked; `_layout_toggled` ignores the echo
        act = self.layout_actions.get(name)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        if self.stack.currentWidget() is self.welcome and self.grid.n_visible > 1:
            self.stack.setCurrentWidget(self.grid)

    def _active_cell_changed(self, cell: ImageViewer) -> None:
        """The active cell drives the model panels (they receive what it shows) and the Window menu."""
        self._update_window_menu()
        self._cine_changed()
        if self.stack.currentWidget() is self.grid and cell.stack is not None:
            self.context.set_input_provider(cell.model_input)
        elif cell is self.image_viewer and self.stack.currentWidget() is self.grid:
            self.context.set_input_provider(self.image_viewer.model_input)

    def open_entry_in(self, entry: BrowserEntry, index: int) -> Worker | None:
        """Open a browser entry in image view `index` (0-based; 0 is the main view, the usual open)."""
        if index <= 0:
            self._open_entry(entry)
            return None
        presets = self.context.workspace.user_presets()
        if entry.kind == "series":
            job: Callable[..., Any] = _open_series_job
            args: tuple[Any, ...] = (entry.target, presets)
        elif entry.kind == "path":
            job, args = open_job, (entry.target, presets)
        elif getattr(entry.target, "kind", "") == "slide":
            self.context.show_message("Slides open in the main view only")
            return None
        else:
            opened, workspace = entry.target, self.context.workspace

            def prepare() -> tuple[str, Path, Any, Any]:
                opening = workspace.prepare(opened, presets)
                return opening.kind, opening.path, opening.document, opening.setup

            job, args = prepare, ()
        return self.context.workers.run(job, *args, name="Open in view",
                                        on_result=lambda result, i=index: self._opened_in(i, result),
                                        on_error=self._open_failed)

    def _entry_dropped(self, index: int) -> None:
        entry = self.browser.dragged_entry
        if entry is not None:
            self.open_entry_in(entry, index)

    def _paths_dropped(self, index: int, paths: list[Path]) -> None:
        """Files dropped on a view: view 1 opens them as the window does; a further view opens the first one."""
        if index <= 0 or not paths:
            self.open_paths(paths)
            return
        self.open_entry_in(BrowserEntry(paths[0].name, "path", paths[0]), index)

    def _opened_in(self, index: int, result: tuple[str, Path, Any, Any]) -> None:
        kind, path, opened, setup = result
        if kind == "collection":  # a prior's folder: listed in the browser, its first series goes to the view
            entries = self.browser.add_collection(opened, path.name or str(path))
            first = next((e for e in entries if e.kind == "series"), None)
            if first is not None:
                self.open_entry_in(first, index)
            return
        if kind != "stack":
            self.context.show_message(f"{path.name}: only images and series open in view {index + 1}")
            return
        if self.stack.currentWidget() is not self.grid:
            self.stack.setCurrentWidget(self.grid)
        cell = self.grid.show_in(index, opened, setup)
        self._set_overlay_all(show=self.act_overlay.isChecked(), phi=self.act_phi.isChecked())
        self._update_window_menu()  # the cell may have been active already (a new series in it): its presets
        cell.setFocus()
        self.context.set_input_provider(cell.model_input)
        self.context.show_message(f"Opened {path.name} in view {index + 1}")

    def _image_call(self, what: str) -> None:
        """View-menu mirrors of the viewer keys I, ], H and Backspace, on the active image view."""
        viewer = self.current_viewer
        if not isinstance(viewer, ImageViewer) or viewer.stack is None:
            return
        if what == "invert":
            viewer.state.set_invert(not viewer.state.invert)
        elif what == "rotate":
            viewer.state.rotate(90)
        elif what == "flip":
            viewer.state.flip_horizontal()
        elif what == "reset":
            viewer.reset_view()

    # --- recent files -------------------------------------------------------------------------------------------
    def recent_paths(self) -> list[Path]:
        """Most recent first (`Workspace.recent_paths`: the session's when there is one, else this window's)."""
        return self.context.workspace.recent_paths()

    def _remember(self, path: Path) -> None:
        """What the user opened (file or folder) goes to the top of the recent list."""
        workspace = self.context.workspace
        if self.context.session is None:
            workspace.remember(path)
            self._refresh_recent()
            return
        self._session_call(lambda _session: workspace.remember(path), then=self._refresh_recent)

    def _session_call(self, fn: Callable[[Any], None], then: Callable[[], None] | None = None) -> None:
        """Run `fn(session)` on the session thread: every change is an atomic, fsynced file write (≈ 10–20 ms, more
        on a busy disk), too slow for the UI thread during a window drag. One thread keeps the writes in order."""
        session = self.context.session
        if session is None:
            return
        self._session_io.run(fn, session, name="Save session",
                             on_result=(lambda _: then()) if then is not None else None)

    def _session_failed(self, failure: WorkerFailure) -> None:
        log.warning("session not saved: %s", failure.exc_type)
        self.context.show_message(f"Session not saved: {failure.message}")

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        paths = self.recent_paths()
        for path in paths:
            act = self.recent_menu.addAction(str(path))
            act.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        self.recent_menu.setEnabled(bool(paths))
        self.welcome.set_recent(paths)

    # --- drag and drop ------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # --- view actions -------------------------------------------------------------------------------------------
    def _viewer_call(self, name: str) -> None:
        viewer = self.current_viewer
        if viewer is not None and hasattr(viewer, name):
            getattr(viewer, name)()

    def _toggle_roi(self, on: bool) -> None:
        viewer = self.current_viewer
        if viewer is not None:
            viewer.set_tool("roi" if on else "pan")

    def _toggle_cine(self, on: bool) -> None:
        """Play / stop the active view (as Space does; it was always view 1, even with the prior active)."""
        viewer = self._window_viewer()
        if on:
            viewer.start_cine()
            self._sync_check(self.act_cine, viewer.cine_interval_ms is not None)
        else:
            viewer.stop_cine()

    def _cine_changed(self, _on: bool = False) -> None:
        """The Cine button shows whether the active view plays (any view's start / stop, or a new active view)."""
        self._sync_check(self.act_cine, self._window_viewer().cine_interval_ms is not None)

    def _set_overlay_all(self, *, show: bool | None = None, phi: bool | None = None) -> None:
        """Overlay and patient data are the window's settings: every view of a 1×2 / 2×2 layout follows (the
        toolbar changed view 1 only, so the prior beside it never showed the patient's name)."""
        for cell in self.grid.cells:
            cell.state.set_overlay(show=show, phi=phi)

    def _set_phi(self, on: bool) -> None:
        self._set_overlay_all(phi=on)
        self.browser.show_phi = on
        if self.tag_browser.phi_box.isChecked() != on:
            self.tag_browser.phi_box.setChecked(on)

    def _sync_overlay_actions(self) -> None:
        state = self.image_viewer.state
        self._sync_check(self.act_overlay, state.show_overlay)
        if self.act_phi.isChecked() != state.show_phi:
            self.act_phi.setChecked(state.show_phi)

    def _update_view_actions(self) -> None:
        viewer = self.current_viewer
        is_stack = isinstance(viewer, ImageViewer)
        is_slide = isinstance(viewer, SlideViewer)
        for act in (self.act_fit, self.act_roi):
            act.setEnabled(viewer is not None)
        self.act_1to1.setEnabled(is_stack)
        self.act_cine.setEnabled(is_stack and self._window_viewer().state.n_frames > 1)
        self.act_overlay.setEnabled(is_stack)
        for act in (self.act_invert, self.act_rotate, self.act_flip, self.act_reset_view):
            act.setEnabled(is_stack)
        self.window_menu.setEnabled(is_stack and bool(self._window_viewer().state.choices))
        self.mag_menu.setEnabled(is_slide and self.slide_viewer.base_mag is not None)
        base = self.slide_viewer.base_mag if is_slide else None
        for act, mag in zip(self.mag_actions, SLIDE_BUTTON_MAGS, strict=True):
            act.setVisible(is_slide)  # objective buttons: slides only, so CT users keep a short bar
            act.setEnabled(base is not None and mag <= base * 2.0 + 1e-9)  # one step of digital zoom past the scan
        self._mag_separator.setVisible(is_slide)
        # and the image-only buttons leave the bar for a slide: disabled there, they pushed Ellipse, Freehand and
        # Note behind the toolbar's » on a 1400 px window (a pathologist never saw them)
        for act in (self.act_1to1, self.window_menu.menuAction(), self.act_cine, self.act_overlay):
            act.setVisible(not is_slide)

    def _window_viewer(self) -> ImageViewer:
        """The image view the Window menu acts on: the active cell of a 1×2 / 2×2 layout (as the keys 1–9 do), else
        the main view. It was always the main view, so picking "lung" with the prior active changed the other view."""
        viewer = self.current_viewer
        return viewer if isinstance(viewer, ImageViewer) and viewer.stack is not None else self.image_viewer

    def _update_window_menu(self) -> None:
        self.window_menu.clear()
        group = QActionGroup(self)
        group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)  # a dragged window ticks none
        state = self._window_viewer().state
        for i, choice in enumerate(state.choices[:9]):
            w = choice.window
            act = QAction(f"{choice.label}  (W {w.width:g} L {w.center:g})\t{i + 1}", self)
            act.setCheckable(True)
            act.setData(i)
            act.triggered.connect(lambda _=False, n=i + 1: self._window_viewer().state.apply_preset(n))
            group.addAction(act)
            self.window_menu.addAction(act)
        self._tick_window_menu()
        self._update_view_actions()

    def _tick_window_menu(self) -> None:
        """Tick the preset on screen (label and values both match), when the menu opens: the reader sees which."""
        state = self._window_viewer().state
        window, label = state.window, state.window_label
        for act in self.window_menu.actions():
            i = act.data()
            choices = state.choices
            on = (isinstance(i, int) and i < len(choices) and window is not None and choices[i].label == label
                  and (choices[i].window.center, choices[i].window.width) == (window.center, window.width))
            act.setChecked(on)  # signals on, so the group stays in step; presets apply on `triggered` only

    def _update_tags(self) -> None:
        if not self.tag_dock.isVisible():
            return
        viewer = self.current_viewer
        dataset = None
        if isinstance(viewer, ImageViewer) and viewer.stack is not None:
            try:
                dataset = viewer.stack.dataset(viewer.state.frame)
            except Exception as exc:  # noqa: BLE001 — an unreadable header is shown as such, not raised
                self.context.show_message(str(exc))
        self.tag_browser.set_dataset(dataset)

    def _save_view(self) -> None:
        """Remember frame / window / region of the shown file in the session (restored on the next open)."""
        view = self.context.view
        if self.context.session is None or self.current_viewer is None or self._current_path is None or self._showing:
            return
        if view.path is None or view.path != self._current_path:
            return  # a new file is being put on screen: it is not yet the current path
        path, workspace = self._current_path, self.context.workspace
        snapshot = ViewerState(document=view.document, setup=view.setup, frame=view.frame, window=view.window,
                               region=view.region, invert=view.invert, rotation=view.rotation, flip_h=view.flip_h,
                               flip_v=view.flip_v)  # a copy: the save runs on the session thread
        self._session_call(lambda _session: workspace.save_view(path, snapshot))

    # --- model ------------------------------------------------------------------------------------------------------
    def _check_model_configured(self) -> None:
        self.context.model.check()

    def _model_status_changed(self, status: Any) -> None:
        from ui.context import ModelState

        busy_or_ready = status.state in (ModelState.LOADING, ModelState.READY)
        self.act_load_model.setEnabled(self.context.settings is not None and not busy_or_ready)

    def load_model(self) -> None:
        """Load the engine in a worker; the status bar follows (loading → ready on CUDA 4-bit / CPU, or failed)."""
        self.context.model.load_configured()

    # --- dialogs --------------------------------------------------------------------------------------------------
    @staticmethod
    def _dialog_class(name: str) -> Any:
        if name == "batch":
            from ui.dialogs.batch import BatchCaptionDialog

            return BatchCaptionDialog
        from ui.dialogs.settings import SettingsDialog

        return SettingsDialog

    def open_batch_dialog(self) -> None:
        cls = self._dialog_class("batch")
        if cls is not None and self._bridge is not None:
            self._batch_dialog = cls(self.context, self._bridge, self)
            self._batch_dialog.show()

    def open_settings_dialog(self) -> None:
        cls = self._dialog_class("settings")
        if cls is None or self._bridge is None:
            return
        dialog = cls(self.context, self._bridge, self)
        if hasattr(dialog, "settings_saved"):
            dialog.settings_saved.connect(self._settings_saved)
        self._settings_dialog = dialog
        dialog.show()

    def _settings_saved(self, settings: Any) -> None:
        self.context.set_settings(settings)

    def show_key_help(self) -> QMessageBox:
        """A non-modal table of the viewer keys (from keymap.HELP, the same module as the key tables)."""
        from ui.viewer.keymap import HELP, KEY_RULE
        from ui.viewer.measure_tool import MEASURE_HELP

        order = {"Images": 0, "Both": 1, "Slides": 2}  # the measurement rows join the other "Both" rows
        table = sorted(HELP + MEASURE_HELP, key=lambda row: order.get(row[0], len(order)))
        rows = "".join(f"<tr><td><i>{area}</i></td><td><b>{keys}</b></td><td>{what}</td></tr>"
                       for area, keys, what in table)
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard and mouse",
                          f"<p>{KEY_RULE}</p><table cellspacing=6>{rows}</table>", QMessageBox.StandardButton.Close,
                          self)
        box.setStyleSheet("QLabel { min-width: 620px; }")  # a message box wraps its text narrow: one line a row
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self._key_help = box
        return box

    # --- measurements ---------------------------------------------------------------------------------------------
    def _build_measurements(self) -> None:
        """The Measurements dock (left, under the studies), the Measure toolbar, and the session sync of the
        window's `MeasurementStore` (loaded when a document is shown, saved on every change)."""
        from ui.panels.measurements import MeasurementsPanel
        from ui.viewer.measure_tool import MEASURE_KEYS, MEASURE_TOOLS, TOOL_SHORT, TOOL_TITLES

        self.measure_panel = MeasurementsPanel(self.context)
        self.measure_dock = self._dock("Measurements", self.measure_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.splitDockWidget(self.browser_dock, self.measure_dock, Qt.Orientation.Vertical)
        self.measure_panel.insert_requested.connect(self._insert_findings)
        self.report_panel.measurement_text = self.measure_panel.findings_text  # a new draft keeps these in Findings
        self.measure_panel.selected.connect(lambda mid: self._viewer_call_with("highlight_measurement", mid))
        keys = {tool: QKeySequence(key).toString() for key, tool in MEASURE_KEYS.items()}
        self.measure_actions: dict[str, QAction] = {}
        toolbar = QToolBar("Measure", self)
        toolbar.setObjectName("measure_toolbar")
        toolbar.setMovable(False)
        for tool in MEASURE_TOOLS:
            act = QAction(TOOL_SHORT[tool], self)
            act.setCheckable(True)
            act.setToolTip(f"{TOOL_TITLES[tool]} ({keys[tool]}); again: back to panning")
            act.setStatusTip(act.toolTip())
            act.toggled.connect(lambda on, t=tool: self._set_measure_tool(t, on))
            toolbar.addAction(act)
            self.measure_actions[tool] = act
        self.addToolBar(toolbar)
        self.measure_toolbar = toolbar
        view_menu = next((a.menu() for a in self.menuBar().actions() if a.text() == "&View"), None)
        if view_menu is not None:
            view_menu.addAction(self.measure_dock.toggleViewAction())
        for viewer in (self.image_viewer, self.slide_viewer):
            viewer.tool_changed.connect(self._sync_measure_actions)
        self._loading_measurements = False
        self.context.measurements.changed.connect(self._save_measurements)
        self.document_shown.connect(self._load_measurements)

    def _viewer_call_with(self, name: str, *args: Any) -> None:
        viewer = self.current_viewer
        if viewer is not None and hasattr(viewer, name):
            getattr(viewer, name)(*args)

    def _set_measure_tool(self, tool: str, on: bool) -> None:
        viewer = self.current_viewer
        if viewer is None:
            self._sync_check(self.measure_actions[tool], False)
            return
        if on:
            viewer.set_tool(tool)
        elif viewer.tool == tool:
            viewer.set_tool("pan")

    def _sync_measure_actions(self, tool: str) -> None:
        for name, act in self.measure_actions.items():
            self._sync_check(act, name == tool)

    def _insert_findings(self, text: str) -> None:
        """The Measurements panel's lines into the report's Findings; the Report tab comes to the front."""
        if self.report_panel is None:
            return
        self.report_panel.insert_findings(text)
        self.panel_dock.show()
        self.panels.setCurrentWidget(self.report_panel)

    def _load_measurements(self, document: Any) -> None:
        """A document on screen: bring back the measurements the session kept for it (once per window run)."""
        from medapp.measurements import document_key

        key = document_key(document)
        store = self.context.measurements
        if key is None or store.has(key):
            return
        self._loading_measurements = True
        try:
            store.load(key, self.context.workspace.saved_measurements(key))
        finally:
            self._loading_measurements = False

    def _save_measurements(self, key: str) -> None:
        if self._loading_measurements or self.context.session is None:
            return
        items, workspace = self.context.measurements.items(key), self.context.workspace
        self._session_call(lambda _session: workspace.save_measurements(key, items))

    # --- errors and shutdown ------------------------------------------------------------------------------------
    def show_error(self, failure: WorkerFailure | BaseException | str) -> QMessageBox:
        """A non-modal warning (the window stays usable behind it) with the message — typed errors name the file —
        and the traceback behind "Show Details…"."""
        if isinstance(failure, WorkerFailure):
            title, kind, message, details = failure.name or "medapp", failure.exc_type, failure.message, failure.traceback
        elif isinstance(failure, BaseException):
            title, kind, message, details = "medapp", type(failure).__name__, str(failure), ""
        else:
            title, kind, message, details = "medapp", "", str(failure), ""
        box = QMessageBox(QMessageBox.Icon.Warning, title, message or kind or "Unknown error",
                          QMessageBox.StandardButton.Ok, self)
        if kind:
            box.setInformativeText(f"({kind}) The window is still usable; nothing else was changed.")
        if details:
            box.setDetailedText(details)
        box.setObjectName("workerErrorBox")
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.error_boxes.append(box)
        box.finished.connect(lambda _=0, b=box: self.error_boxes.remove(b) if b in self.error_boxes else None)
        box.show()
        summary = failure.summary() if isinstance(failure, WorkerFailure) else (message or kind)
        self.context.show_message(summary)
        return box

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.image_viewer.shutdown()
        self.grid.shutdown()
        self.slide_viewer.shutdown()
        if self._bridge is not None:
            self._bridge.cancel_all()  # a long answer must not hold up the close
        self.context.workers.shutdown(3000)
        self._session_io.pool.waitForDone(3000)  # let the last autosave land
        super().closeEvent(event)
