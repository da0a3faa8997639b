"""The "Store to PACS…" button beside the report exports: the report as DICOM PDF + SR into the source study.

Runs `medapp.jobs.pacs.store_report` (audited) in the button's own worker and shows each object's outcome. An
unsigned draft goes only after the user says yes, and then marked as a draft.
"""

from __future__ import annotations

import weakref
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QInputDialog, QLabel, QMessageBox, QPushButton, QWidget

from ui.dialogs.pacs_common import audit_of, nodes_of, settings_of
from ui.widgets.errors import show_worker_error
from ui.workers import Worker, WorkerManager

__all__ = ["StoreToPacsButton"]


class StoreToPacsButton(QPushButton):
    """The report panel's "Store to PACS…": sends the report as Encapsulated PDF + SR to a node, in a worker, and
    shows each object's outcome. An unsigned draft is sent only after the user says so, and then marked as a draft.

    `panel` is the `ReportPanel` (its `report`, its context, and the image the draft was made from).
    """

    stored = Signal(object)  # list[StoreOutcome]

    def __init__(self, panel: Any, parent: QWidget | None = None) -> None:
        super().__init__("Store to PACS…", parent or panel)
        self.setObjectName("reportStorePacs")
        self.setToolTip("Send the report (DICOM PDF and SR) into the source study on the PACS")
        self._panel = weakref.ref(panel) if parent is None else (lambda: panel)  # the parent, held weakly (no cycle)
        self.workers = WorkerManager(self, max_threads=1)
        self.last_outcomes: list[Any] = []
        self.last_error = ""
        self.outcome_box: QMessageBox | None = None
        self._busy = False
        self.clicked.connect(self._clicked)
        if hasattr(panel, "report_changed"):
            panel.report_changed.connect(self._sync)
        self._sync()

    @property
    def panel(self) -> Any:
        return self._panel()

    def _clicked(self) -> None:
        self.store()

    def _sync(self, *_: Any) -> None:
        self.setEnabled(getattr(self.panel, "report", None) is not None and not self._busy)

    def _ctx(self) -> Any:
        return getattr(self.panel, "_ctx", None)

    def _pick_node(self, settings: Any) -> Any:
        from medapp.pacs.config import resolve_node

        nodes = nodes_of(settings)
        if len(nodes) <= 1:
            return resolve_node(settings)
        labels = [f"{n.name} — {n}" for n in nodes]
        default = next((i for i, n in enumerate(nodes) if n.name == settings.pacs_default_node), 0)
        label, ok = QInputDialog.getItem(self, "Store to PACS", "Node:", labels, default, False)
        return nodes[labels.index(label)] if ok else None

    def store(self, *, node: Any = None, allow_draft: bool | None = None) -> Worker | None:
        """Ask what is needed (node, draft confirmation) unless given, then store in a worker."""
        from medapp.jobs.pacs import store_report
        from medapp.pacs.errors import PacsError

        report = getattr(self.panel, "report", None)
        if report is None:
            return None
        ctx = self._ctx()
        settings = settings_of(ctx)
        if allow_draft is None:
            allow_draft = False
            if not report.is_signed:
                answer = QMessageBox.question(
                    self, "Store an unsigned draft?",
                    "This report is an unsigned AI draft. Send it to the PACS anyway, marked as a draft "
                    "(VerificationFlag UNVERIFIED, watermark)?")
                if answer != QMessageBox.StandardButton.Yes:
                    return None
                allow_draft = True
        try:
            node = node or self._pick_node(settings)
        except PacsError as exc:
            self._show_error(str(exc))
            return None
        if node is None:
            return None
        if hasattr(self.panel, "save_now"):
            self.panel.save_now()
        source = getattr(self.panel, "_source_input", None)
        if source is None and ctx is not None and hasattr(ctx, "current_model_input"):
            source = ctx.current_model_input()

        def run() -> list[Any]:
            dataset = getattr(source, "dataset", None) if source is not None else None
            return store_report(report, dataset, node, settings=settings, audit=audit_of(ctx), allow_draft=allow_draft)

        self._say(f"Storing to {node}…")
        worker = self.workers.create(run, name="Store to PACS", on_result=self._stored,
                                     on_error=lambda f: self._show_error(f.message),
                                     on_finished=self._finished)
        self._busy = True
        self.workers.start(worker)
        self._sync()
        return worker

    def _finished(self) -> None:
        self._busy = False
        self._sync()

    def _say(self, text: str) -> None:
        status = getattr(self.panel, "status", None)
        if isinstance(status, QLabel):
            status.setText(text)

    def _show_error(self, message: str) -> None:
        self.last_error = message
        self._say(f"Not stored: {message}")
        self.outcome_box = show_worker_error(self, "Store to PACS failed", message)

    def _stored(self, outcomes: list[Any]) -> None:
        self.last_outcomes = list(outcomes)
        lines = [f"{'✔' if o.ok else '✘'} {o.kind}: {o.message}" for o in outcomes]
        ok = all(o.ok for o in outcomes)
        self._say("Stored to PACS: " + "; ".join(f"{o.kind} {'stored' if o.ok else 'NOT stored'}" for o in outcomes))
        box = QMessageBox(QMessageBox.Icon.Information if ok else QMessageBox.Icon.Warning, "Store to PACS",
                          "\n".join(lines), QMessageBox.StandardButton.Ok, self)
        box.setObjectName("pacsStoreOutcome")
        box.open()
        self.outcome_box = box
        self.stored.emit(self.last_outcomes)
