"""The PACS browser: choose a node (Echo, Nodes…), search studies, retrieve one with progress, open it.

Why its own module and workers: the window talks to the PACS only through `medapp.jobs.pacs` (audited, Qt-free),
and every network call runs in a worker of the browser's own `WorkerManager`, so a dead PACS, a refused association
or a timeout becomes a line in the status (and a non-modal message), never a frozen or crashed window. Results are
patient data on screen (that is the browser's job) and are never logged. `pacs_action(window)` is File → PACS….
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs.pacs_common import ERROR_STYLE, OK_STYLE, audit_of, default_cache_dir, nodes_of, settings_of
from ui.dialogs.pacs_nodes import PacsNodesDialog
from ui.dialogs.pacs_store import StoreToPacsButton
from ui.widgets.errors import show_worker_error
from ui.workers import Cancelled, Worker, WorkerFailure, WorkerManager

__all__ = ["PacsBrowser", "PacsNodesDialog", "StoreToPacsButton", "pacs_action", "default_cache_dir"]

MODALITIES = ("", "CT", "MR", "CR", "DX", "MG", "US", "NM", "PT", "XA", "SM")
STUDY_COLUMNS = ("Date", "Modality", "Patient ID", "Name", "Accession", "Description", "Series", "Images")


def _retrieve(fn: Any, *args: Any, cancel: Any = None, progress: Any = None, **kwargs: Any) -> Any:
    """Run a `medapp.jobs.pacs` call in a worker; a user's cancel becomes the worker's `Cancelled` (not a failure)."""
    from medapp.pacs.errors import RetrieveCancelled

    try:
        return fn(*args, cancel=cancel, progress=progress, **kwargs)
    except RetrieveCancelled:
        if cancel is not None and cancel.is_set():
            raise Cancelled() from None
        raise


class _NodePicker(QWidget):
    """The node combo box and the Echo button (shared by the browser; the nodes dialog edits the list)."""

    def __init__(self, owner: PacsBrowser) -> None:
        super().__init__(owner)
        self.owner = owner
        self.combo = QComboBox(objectName="pacsNode")
        self.combo.setMinimumWidth(260)
        self.echo_button = QPushButton("Echo", objectName="pacsEcho")
        self.echo_button.setToolTip("Check that the node answers and accepts medapp (DICOM C-ECHO)")
        self.nodes_button = QPushButton("Nodes…", objectName="pacsNodes")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("PACS:"))
        row.addWidget(self.combo, 1)
        row.addWidget(self.echo_button)
        row.addWidget(self.nodes_button)

    def fill(self, nodes: list[Any], default: str = "") -> None:
        self.combo.clear()
        for node in nodes:
            self.combo.addItem(f"{node.name} — {node}", node)
        names = [n.name for n in nodes]
        if default in names:
            self.combo.setCurrentIndex(names.index(default))
        has = bool(nodes)
        self.combo.setEnabled(has)
        self.echo_button.setEnabled(has)

    def node(self) -> Any:
        return self.combo.currentData()


class PacsBrowser(QDialog):
    """Search a node, see the studies, retrieve one into the cache with progress, open it in the window.

    Signals: `open_requested(Path)` with the retrieved study's folder; `retrieved(object)` with the
    `RetrieveResult`. Public for tests: `search()`, `retrieve()`, `echo()`, `cancel()`, `studies`, `table`,
    `status`, `progress`, `last_result`.
    """

    open_requested = Signal(object)
    retrieved = Signal(object)
    searched = Signal(int)
    echoed = Signal(bool)

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS")
        self.setObjectName("pacsBrowser")
        self.resize(1000, 560)
        self._ctx = ctx
        self.workers = WorkerManager(self, max_threads=2)
        self.studies: list[Any] = []
        self.last_result: Any = None
        self.last_error: str = ""
        self._retrieve_worker: Worker | None = None
        self._error_boxes: list[QMessageBox] = []
        self._build()
        self.reload_nodes()

    # -- layout ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.picker = _NodePicker(self)
        self.picker.echo_button.clicked.connect(lambda: self.echo())
        self.picker.nodes_button.clicked.connect(self.edit_nodes)

        self.patient_id = QLineEdit(objectName="pacsPatientId")
        self.patient_name = QLineEdit(objectName="pacsPatientName")
        self.patient_name.setPlaceholderText("DOE^J*  (wildcards * and ?)")
        self.date_from = QLineEdit(objectName="pacsDateFrom")
        self.date_to = QLineEdit(objectName="pacsDateTo")
        for field in (self.date_from, self.date_to):
            field.setPlaceholderText("YYYY-MM-DD")
        self.modality = QComboBox(objectName="pacsModality")
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.accession = QLineEdit(objectName="pacsAccession")
        self.search_button = QPushButton("Search", objectName="pacsSearch")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(lambda: self.search())
        for field in (self.patient_id, self.patient_name, self.date_from, self.date_to, self.accession):
            field.returnPressed.connect(lambda: self.search())
        form = QGridLayout()
        form.addWidget(QLabel("Patient ID"), 0, 0)
        form.addWidget(self.patient_id, 0, 1)
        form.addWidget(QLabel("Name"), 0, 2)
        form.addWidget(self.patient_name, 0, 3)
        form.addWidget(QLabel("Accession"), 0, 4)
        form.addWidget(self.accession, 0, 5)
        form.addWidget(QLabel("Study date from"), 1, 0)
        form.addWidget(self.date_from, 1, 1)
        form.addWidget(QLabel("to"), 1, 2)
        form.addWidget(self.date_to, 1, 3)
        form.addWidget(QLabel("Modality"), 1, 4)
        form.addWidget(self.modality, 1, 5)
        form.addWidget(self.search_button, 0, 6, 2, 1)

        self.table = QTableWidget(0, len(STUDY_COLUMNS), objectName="pacsResults")
        self.table.setHorizontalHeaderLabels(STUDY_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._sync)
        self.table.cellDoubleClicked.connect(lambda *_: self.retrieve())

        self.cache_dir = QLineEdit(str(default_cache_dir()), objectName="pacsCacheDir")
        self.cache_dir.setToolTip("Retrieved studies go to <folder>/<Study UID>/; a second retrieve fetches only "
                                  "what is missing")
        self.retrieve_button = QPushButton("Retrieve", objectName="pacsRetrieve")
        self.retrieve_button.clicked.connect(lambda: self.retrieve())
        self.cancel_button = QPushButton("Cancel", objectName="pacsCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open", objectName="pacsOpen")
        self.open_button.clicked.connect(self.open_retrieved)
        self.progress = QProgressBar(objectName="pacsProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")  # "%v / %m images" once a retrieve runs
        actions = QHBoxLayout()
        actions.addWidget(QLabel("Cache:"))
        actions.addWidget(self.cache_dir, 1)
        actions.addWidget(self.retrieve_button)
        actions.addWidget(self.cancel_button)
        actions.addWidget(self.progress, 1)
        actions.addWidget(self.open_button)

        self.status = QLabel(objectName="pacsStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        layout.addWidget(self.status)
        self._sync()

    def reload_nodes(self) -> None:
        settings = settings_of(self._ctx)
        nodes = nodes_of(settings)
        self.picker.fill(nodes, settings.pacs_default_node)
        if not nodes:
            self._say("No PACS node configured: press “Nodes…” to add one.", ERROR_STYLE)
        self._sync()

    def _sync(self) -> None:
        busy = self._retrieve_worker is not None
        has_node = self.picker.node() is not None
        self.search_button.setEnabled(has_node)
        self.retrieve_button.setEnabled(has_node and not busy and self.selected_study() is not None)
        self.cancel_button.setEnabled(busy)
        self.open_button.setEnabled(not busy and self.last_result is not None)

    def _say(self, text: str, style: str = "") -> None:
        self.status.setStyleSheet(style)
        self.status.setText(text)

    def _failed(self, title: str, failure: WorkerFailure) -> None:
        """A worker's error: one line in the status and a non-modal box (the dialog stays usable)."""
        self.last_error = failure.message
        self._say(f"{title}: {failure.message}", ERROR_STYLE)
        self._error_boxes.append(show_worker_error(self, title, failure))

    def _run(self, fn: Any, *args: Any, name: str, on_result: Any, title: str, on_progress: Any = None,
             on_finished: Any = None, **kwargs: Any) -> Worker:
        worker = self.workers.create(fn, *args, name=name, on_result=on_result, on_progress=on_progress,
                                     on_error=lambda f: self._failed(title, f), on_finished=on_finished, **kwargs)
        return self.workers.start(worker)

    # -- echo --------------------------------------------------------------------------------------------------
    def echo(self) -> Worker | None:
        from medapp.jobs.pacs import pacs_echo

        node = self.picker.node()
        if node is None:
            return None
        self._say(f"Echo {node}…")

        def done(seconds: float) -> None:
            self._say(f"{node}: echo OK ({seconds * 1000:.0f} ms)", OK_STYLE)
            self.echoed.emit(True)

        worker = self._run(pacs_echo, node, settings=settings_of(self._ctx), audit=audit_of(self._ctx), name="Echo",
                           title="Echo failed", on_result=done)
        worker.signals.failed.connect(lambda _f: self.echoed.emit(False))
        return worker

    # -- search ------------------------------------------------------------------------------------------------
    def query(self) -> Any:
        """The search form as a `StudyQuery` (raises `PacsError` naming a bad field)."""
        from medapp.pacs.query import StudyQuery, parse_date

        def date(field: QLineEdit, what: str) -> Any:
            text = field.text().strip()
            return parse_date(text, what) if text else None

        return StudyQuery(
            patient_id=self.patient_id.text().strip(),
            patient_name=self.patient_name.text().strip(),
            date_from=date(self.date_from, "Study date from"),
            date_to=date(self.date_to, "Study date to"),
            modality=self.modality.currentText().strip().upper(),
            accession=self.accession.text().strip(),
        )

    def search(self) -> Worker | None:
        from medapp.jobs.pacs import pacs_find
        from medapp.pacs.errors import PacsError

        node = self.picker.node()
        if node is None:
            return None
        try:
            query = self.query()
        except PacsError as exc:
            self._say(str(exc), ERROR_STYLE)
            return None
        self.search_button.setEnabled(False)
        self._say(f"Searching {node}…")
        return self._run(pacs_find, node, query, settings=settings_of(self._ctx), audit=audit_of(self._ctx),
                         name="PACS search", title="Search failed", on_result=self._show_studies,
                         on_finished=self._sync)

    def _show_studies(self, studies: list[Any]) -> None:
        self.studies = list(studies)
        self.table.setRowCount(len(self.studies))
        for row, s in enumerate(self.studies):
            d = s.study_date
            date = f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 else d
            cells = (date, s.modalities, s.patient_id, s.patient_name.replace("^", " ").strip(), s.accession,
                     s.description, "" if s.n_series is None else str(s.n_series),
                     "" if s.n_instances is None else str(s.n_instances))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (6, 7):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
            self.table.item(row, 0).setToolTip(f"Study Instance UID {s.study_uid}")
        if self.studies:
            self.table.selectRow(0)
        self._say(f"{len(self.studies)} studies found." if self.studies else "No studies found.")
        self.searched.emit(len(self.studies))
        self._sync()

    def selected_study(self) -> Any:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.studies):
            return None
        return self.studies[rows[0].row()]

    # -- retrieve ----------------------------------------------------------------------------------------------
    def retrieve(self) -> Worker | None:
        from medapp.jobs.pacs import pacs_get

        node, study = self.picker.node(), self.selected_study()
        if node is None or study is None or self._retrieve_worker is not None:
            return None
        root = Path(self.cache_dir.text().strip() or default_cache_dir()).expanduser()
        self.progress.setRange(0, max(1, study.n_instances or 1))
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m images")
        self._say(f"Retrieving from {node}…")
        fn = functools.partial(_retrieve, pacs_get, node, study.study_uid, root, settings=settings_of(self._ctx),
                               audit=audit_of(self._ctx))
        worker = self.workers.create(fn, name="PACS retrieve", on_result=self._retrieved,
                                     on_progress=self._on_progress,
                                     on_error=lambda f: self._failed("Retrieve failed", f),
                                     on_finished=self._retrieve_finished)
        worker.signals.cancelled.connect(lambda: self._say("Retrieve cancelled; what arrived is kept, complete."))
        self._retrieve_worker = worker
        self.workers.start(worker)
        self._sync()
        return worker

    def _on_progress(self, p: Any) -> None:
        self.progress.setRange(0, max(1, p.total))
        self.progress.setValue(p.done)

    def _retrieved(self, result: Any) -> None:
        self.last_result = result
        self.progress.setRange(0, max(1, result.expected))
        self.progress.setValue(result.expected)
        images = "image" if result.expected == 1 else "images"
        self._say(f"{result.expected} {images} in the cache ({result.received} retrieved now, {result.already} "
                  f"already there). Press “Open” to view.", OK_STYLE)
        self.retrieved.emit(result)

    def _retrieve_finished(self) -> None:
        self._retrieve_worker = None
        self._sync()

    def cancel(self) -> None:
        if self._retrieve_worker is not None:
            self._retrieve_worker.cancel()

    def open_retrieved(self) -> None:
        if self.last_result is not None:
            self.open_requested.emit(Path(self.last_result.folder))

    # -- nodes -------------------------------------------------------------------------------------------------
    def edit_nodes(self) -> PacsNodesDialog:
        dialog = PacsNodesDialog(self._ctx, self)
        dialog.settings_saved.connect(lambda _s: self.reload_nodes())
        dialog.open()
        return dialog

    def done(self, result: int) -> None:  # close / Escape: stop the network work first
        self.workers.shutdown(3000)
        super().done(result)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        self.workers.shutdown(3000)
        super().closeEvent(event)


def pacs_action(window: Any) -> QAction:
    """File → PACS…: opens (once) the browser; its "Open" opens the retrieved study in `window`."""
    action = QAction("&PACS…", window)
    action.setObjectName("actPacs")
    action.setStatusTip("Search the PACS, retrieve studies, check the nodes")

    def show() -> None:
        browser = getattr(window, "pacs_browser", None)
        if browser is None:
            browser = PacsBrowser(window.context, window)
            browser.open_requested.connect(lambda path: window.open_paths([path]))
            window.pacs_browser = browser
        browser.reload_nodes()
        browser.show()
        browser.raise_()

    action.triggered.connect(show)
    return action
