"""The Measurements panel: what was measured on the document on screen, its calibration, delete, and one action
that puts them into the report's Findings.

The list is the window's `MeasurementStore` entry for the document in `ctx.view` (every frame of a series, in the
order drawn); the text of each line and of the Findings comes from `medapp.measurements`, so the panel, the labels
on the image and the report say the same numbers. Double-clicking a line shows its image of a series.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from medapp.measurements import (
    MeasurementStore,
    calibration_for,
    describe,
    document_key,
    findings_text,
    value_unit,
)
from medapp.viewer_state import ViewerState

__all__ = ["MeasurementsPanel"]

EMPTY_HINT = ("No measurements on this image. Pick a tool — M ruler, A angle, B rectangle, E ellipse, D freehand, "
              "T note — and draw on the image.")


class MeasurementsPanel(QWidget):
    """List, calibration line, Delete / Delete all / Insert into Findings. Signals: `insert_requested(text)` with
    the Findings text, `selected(id or None)` when the selection changes (the viewer highlights it)."""

    insert_requested = Signal(str)
    selected = Signal(object)

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store: MeasurementStore = getattr(ctx, "measurements", None) or MeasurementStore()
        view = getattr(ctx, "view", None)
        self._view: ViewerState = view if view is not None else ViewerState()

        self.calibration_label = QLabel(objectName="measurementCalibration")
        self.calibration_label.setWordWrap(True)
        self.calibration_label.setStyleSheet("color:#555;")
        self.list = QListWidget(objectName="measurementList")
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setWordWrap(True)  # an ROI line is long; the dock is narrow
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.itemSelectionChanged.connect(self._on_selection)
        self.list.itemDoubleClicked.connect(self._go_to)
        self.hint = QLabel(EMPTY_HINT, objectName="measurementHint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color:#666;")
        # tool buttons (no push-button minimum width): the dock stays about as narrow as the study browser
        self.label_button = QToolButton(objectName="measurementLabel", text="Label…")
        self.label_button.setToolTip("Name the selected measurement (\u201clesion 1\u201d) or edit a note's text")
        self.label_button.clicked.connect(lambda: self.edit_label())
        self.delete_button = QToolButton(objectName="measurementDelete", text="Delete")
        self.delete_button.setToolTip("Remove the selected measurements")
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button = QToolButton(objectName="measurementClear", text="Delete all")
        self.clear_button.setToolTip("Remove every measurement on this image")
        self.clear_button.clicked.connect(self.clear_all)
        self.insert_button = QPushButton("Insert into Findings", objectName="measurementInsert")
        self.insert_button.setToolTip("Append these measurements to the report's Findings (a new report if none)")
        self.insert_button.clicked.connect(self.insert_into_findings)
        buttons = QHBoxLayout()
        buttons.addWidget(self.label_button)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.calibration_label)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.hint)
        layout.addLayout(buttons)
        layout.addWidget(self.insert_button)  # a row of its own, for the same reason

        store, events = self._store, self._view.events
        on_store, on_document = self._on_store, self.refresh
        store.changed.connect(on_store)
        events.document.connect(on_document)
        # the store and the state belong to the window's context and may outlive this widget
        self.destroyed.connect(lambda *_: (store.changed.disconnect(on_store, missing_ok=True),
                                           events.document.disconnect(on_document, missing_ok=True)))
        self.refresh()

    # --- what is shown -----------------------------------------------------------------------------------------
    @property
    def key(self) -> str | None:
        return document_key(self._view.document)

    def measurements(self) -> list[Any]:
        return self._store.items(self.key)

    def lines(self) -> list[str]:
        """The text of each row (tests read it)."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _on_store(self, key: str) -> None:
        if key == self.key:
            self.refresh()

    def refresh(self, *_: Any) -> None:
        document = self._view.document
        cal, unit = calibration_for(document), value_unit(document)
        n_frames = self._view.n_frames if document is not None and not self._view.is_slide else 1
        selected = {item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()}
        self.list.blockSignals(True)
        self.list.clear()
        for m in self.measurements():
            text = describe(m, cal, unit) + (f"  (image {m.frame + 1})" if n_frames > 1 else "")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, m.id)
            item.setToolTip(text)
            self.list.addItem(item)
            item.setSelected(m.id in selected)
        self.list.blockSignals(False)
        self.calibration_label.setText("" if document is None else f"Calibration: {cal.describe()}")
        has = self.list.count() > 0
        self.hint.setVisible(document is not None and not has)
        self.delete_button.setEnabled(bool(self.list.selectedItems()))
        self.label_button.setEnabled(len(self.list.selectedItems()) == 1)
        self.clear_button.setEnabled(has)
        self.insert_button.setEnabled(has)

    def findings_text(self) -> str:
        """The Findings lines for every measurement of this document (`medapp.measurements.findings_text`)."""
        document = self._view.document
        n_frames = self._view.n_frames if document is not None and not self._view.is_slide else 1
        return findings_text(self.measurements(), calibration_for(document), value_unit(document), n_frames=n_frames)

    # --- actions -----------------------------------------------------------------------------------------------
    def _selected_ids(self) -> list[str]:
        return [str(item.data(Qt.ItemDataRole.UserRole)) for item in self.list.selectedItems()]

    def _on_selection(self) -> None:
        ids = self._selected_ids()
        self.delete_button.setEnabled(bool(ids))
        self.label_button.setEnabled(len(ids) == 1)
        self.selected.emit(ids[0] if len(ids) == 1 else None)

    def _go_to(self, item: QListWidgetItem) -> None:
        """Show the image of a series the measurement was drawn on."""
        mid = item.data(Qt.ItemDataRole.UserRole)
        m = next((m for m in self.measurements() if m.id == mid), None)
        if m is not None and not self._view.is_slide and m.frame != self._view.frame:
            self._view.set_frame(m.frame)

    def edit_label(self, text: str | None = None) -> bool:
        """Name the one selected measurement (or rewrite a note) — asked when `text` is None; an empty name clears
        it (a note keeps its text). True when it changed."""
        ids = self._selected_ids()
        key = self.key
        m = next((m for m in self.measurements() if ids and m.id == ids[0]), None)
        if key is None or m is None or len(ids) != 1:
            return False
        if text is None:
            from PySide6.QtWidgets import QInputDialog

            title = "Note" if m.kind == "text" else "Name the measurement"
            text, ok = QInputDialog.getText(self, title, "Text:" if m.kind == "text" else "Name:", text=m.label)
            if not ok:
                return False
        text = text.strip()
        if (m.kind == "text" and not text) or text == m.label:
            return False
        self._store.update(key, replace(m, label=text))
        return True

    def delete_selected(self) -> None:
        key = self.key
        if key is None:
            return
        for mid in self._selected_ids():
            self._store.remove(key, mid)

    def clear_all(self) -> None:
        key = self.key
        if key is not None and self._store.items(key):
            self._store.clear(key)

    def insert_into_findings(self) -> str:
        """Emit `insert_requested` with the Findings text (the window hands it to the report panel)."""
        text = self.findings_text()
        if text:
            self.insert_requested.emit(text)
        return text
