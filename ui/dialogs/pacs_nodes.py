"""The PACS node settings: medapp's AE title, C-MOVE port and timeout, the nodes, and an Echo button.

Saving validates exactly like the settings file (`medapp.settings.Settings.updated`), so the dialog cannot write a
node the command line would refuse. Echo runs in this dialog's own worker with the values as edited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs.pacs_common import ERROR_STYLE, OK_STYLE, audit_of, settings_of
from ui.workers import Worker, WorkerFailure, WorkerManager

__all__ = ["PacsNodesDialog", "NODE_COLUMNS"]

NODE_COLUMNS = ("Name", "AE title", "Host", "Port", "Retrieve")


class PacsNodesDialog(QDialog):
    """Edit medapp's AE title and port and the PACS nodes; Echo the selected node. Save validates like the file."""

    settings_saved = Signal(object)

    def __init__(self, ctx: Any, parent: QWidget | None = None, *, save_path: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.setObjectName("pacsNodesDialog")
        self._ctx = ctx
        self._save_path = save_path
        self.original = settings_of(ctx)
        self.workers = WorkerManager(self, max_threads=1)
        self._build()

    def _build(self) -> None:
        s = self.original
        self.ae_title = QLineEdit(s.pacs_ae_title, objectName="pacsOwnAet")
        self.port = QSpinBox(objectName="pacsOwnPort")
        self.port.setRange(1, 65535)
        self.port.setValue(int(s.pacs_port))
        self.timeout = QDoubleSpinBox(objectName="pacsTimeout")
        self.timeout.setRange(0.5, 3600.0)
        self.timeout.setValue(float(s.pacs_timeout))
        self.timeout.setSuffix(" s")
        own = QFormLayout()
        own.addRow("medapp's AE title", self.ae_title)
        own.addRow("Port for C-MOVE", self.port)
        own.addRow("Network timeout", self.timeout)

        self.table = QTableWidget(0, len(NODE_COLUMNS), objectName="pacsNodeTable")
        self.table.setHorizontalHeaderLabels(NODE_COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        for item in s.pacs_nodes:
            self.add_node(item)
        add = QPushButton("Add", objectName="pacsAddNode")
        add.clicked.connect(lambda: self.add_node())
        remove = QPushButton("Remove", objectName="pacsRemoveNode")
        remove.clicked.connect(self._remove)
        self.echo_button = QPushButton("Echo", objectName="pacsNodeEcho")
        self.echo_button.clicked.connect(lambda: self.echo())
        row = QHBoxLayout()
        for w in (add, remove, self.echo_button):
            row.addWidget(w)
        row.addStretch(1)
        self.status = QLabel(objectName="pacsNodesStatus")
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(own)
        layout.addWidget(QLabel("Nodes (medapp connects to these and nothing else):"))
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(640, 420)

    def add_node(self, item: dict[str, Any] | None = None) -> None:
        item = item or {"name": f"pacs{self.table.rowCount() + 1}", "ae_title": "", "host": "", "port": 104}
        row = self.table.rowCount()
        self.table.insertRow(row)
        values = (item.get("name", ""), item.get("ae_title", ""), item.get("host", ""), str(item.get("port", "")),
                  item.get("retrieve", "get"))
        for col, value in enumerate(values):
            self.table.setItem(row, col, QTableWidgetItem(str(value)))
        if item.get("tls") is not None:  # kept as it is; TLS files are edited in the settings file
            self.table.item(row, 0).setData(Qt.ItemDataRole.UserRole, item["tls"])

    def _remove(self) -> None:
        for index in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(index)

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for row in range(self.table.rowCount()):
            cells = [(self.table.item(row, c).text().strip() if self.table.item(row, c) else "")
                     for c in range(len(NODE_COLUMNS))]
            name, aet, host, port, retrieve = cells
            node: dict[str, Any] = {"name": name, "ae_title": aet, "host": host,
                                    "port": int(port) if port.isdigit() else port, "retrieve": retrieve or "get"}
            tls = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) if self.table.item(row, 0) else None
            if tls is not None:
                node["tls"] = tls
            out.append(node)
        return out

    def values(self) -> dict[str, Any]:
        return {"pacs_ae_title": self.ae_title.text().strip(), "pacs_port": self.port.value(),
                "pacs_timeout": float(self.timeout.value()), "pacs_nodes": self.nodes()}

    def _validated(self) -> Any:
        """The edited settings, or None with the problem in the status line."""
        from medapp.errors import UserError

        try:
            return self.original.updated(**self.values())
        except UserError as exc:
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(str(exc))
            return None

    def echo(self) -> Worker | None:
        """Echo the selected node (or the first) with the values as edited, before saving."""
        from medapp.jobs.pacs import pacs_echo
        from medapp.pacs.nodes import node_from_dict

        settings = self._validated()
        if settings is None or not settings.pacs_nodes:
            return None
        rows = sorted({i.row() for i in self.table.selectedIndexes()}) or [0]
        node = node_from_dict(settings.pacs_nodes[rows[0]])
        self.status.setStyleSheet("")
        self.status.setText(f"Echo {node}…")

        def ok(seconds: float) -> None:
            self.status.setStyleSheet(OK_STYLE)
            self.status.setText(f"{node}: echo OK ({seconds * 1000:.0f} ms)")

        def failed(failure: WorkerFailure) -> None:
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(failure.message)

        worker = self.workers.create(pacs_echo, node, settings=settings, audit=audit_of(self._ctx), name="Echo",
                                     on_result=ok, on_error=failed)
        return self.workers.start(worker)

    def accept(self) -> None:
        new = self._validated()
        if new is None:
            return
        try:
            new.save(self._save_path)
        except OSError as exc:
            self.status.setText(f"Not saved: {exc}")
            return
        if hasattr(self._ctx, "settings"):
            self._ctx.settings = new
        self.workers.shutdown(3000)
        self.settings_saved.emit(new)
        super().accept()

    def reject(self) -> None:
        self.workers.shutdown(3000)
        super().reject()
