"""DICOM tag browser with search and collapsible sequences (what OHIF / Slicer users ask for, clinical-anchors B.3 #6).

Shows the header of the frame on screen (`ImageStack.dataset(frame)`). Patient-identifying elements are hidden behind
the same "show patient data" toggle as the viewer overlay, so the browser is safe to leave open on a shared screen.
Pixel data and other bulk values are summarised, never dumped.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QTreeWidgetItemIterator,
    QVBoxLayout,
    QWidget,
)

__all__ = ["TagBrowser", "PHI_KEYWORDS", "format_value"]

#: Elements hidden unless patient data is shown (names, IDs, dates of birth, accession, institution/people).
PHI_KEYWORDS = frozenset(
    {
        "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs", "OtherPatientNames",
        "OtherPatientIDsSequence", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
        "AccessionNumber", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
        "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
        "RequestingPhysician", "MedicalRecordLocator", "IssuerOfPatientID", "StudyID", "PatientAge",
        "PatientSex", "PatientSize", "PatientWeight", "EthnicGroup", "Occupation", "AdditionalPatientHistory",
        "PatientComments", "DeviceSerialNumber", "StationName", "StudyDate", "SeriesDate", "AcquisitionDate",
        "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "InstanceCreationDate",
    }
)
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_MAX_TEXT = 200


def format_value(element: Any, show_phi: bool) -> str:
    """A short printable value: bulk data as a byte count, long text cut, PHI masked when hidden."""
    if element.keyword in PHI_KEYWORDS and not show_phi:
        return "‹hidden›"
    if element.VR in _BULK_VRS or element.keyword == "PixelData":
        length = len(element.value) if element.value is not None else 0
        return f"<{element.VR} data, {length} bytes>"
    if element.VR == "SQ":
        return f"{len(element.value)} item(s)"
    try:
        text = str(element.value)
    except Exception:  # noqa: BLE001 — a malformed value must not break the browser
        text = repr(element.value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class TagBrowser(QWidget):
    """A tree of (tag, keyword, VR, value); the search box filters by any of the four (case-insensitive)."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dataset: Any = None
        self.search = QLineEdit(placeholderText="Search tag, name or value (e.g. 0028,1050 or Window)")
        self.search.setClearButtonEnabled(True)
        self.phi_box = QCheckBox("Show patient data")
        self.count = QLabel()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.phi_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.count)
        self.search.textChanged.connect(self._filter)
        self.phi_box.toggled.connect(lambda _: self.set_dataset(self._dataset))

    def set_dataset(self, dataset: Any) -> None:
        """Show a pydicom Dataset (or None: empty, with a note)."""
        self._dataset = dataset
        self.tree.clear()
        if dataset is None:
            self.count.setText("No DICOM header for this image")
            return
        show_phi = self.phi_box.isChecked()
        meta = getattr(dataset, "file_meta", None)
        if meta is not None and len(meta):
            group = QTreeWidgetItem(self.tree, ["(0002,xxxx)", "File Meta Information", "", ""])
            self._add(group, meta, show_phi)
        self._add(self.tree.invisibleRootItem(), dataset, show_phi)
        self._filter(self.search.text())

    def _add(self, parent: QTreeWidgetItem, dataset: Any, show_phi: bool) -> None:
        for element in dataset:
            tag = f"({element.tag.group:04X},{element.tag.element:04X})"
            item = QTreeWidgetItem(parent, [tag, element.keyword or element.name, element.VR, format_value(element, show_phi)])
            if element.VR == "SQ" and (show_phi or element.keyword not in PHI_KEYWORDS):
                for i, sub in enumerate(element.value):
                    child = QTreeWidgetItem(item, [f"Item {i + 1}", "", "", ""])
                    self._add(child, sub, show_phi)

    def _filter(self, text: str) -> None:
        """Hide rows not matching; keep the ancestors of matches visible and expanded so sequences open to them."""
        needle = text.strip().lower().replace(" ", "")
        shown = 0
        iterator = QTreeWidgetItemIterator(self.tree)
        items: list[QTreeWidgetItem] = []
        while iterator.value():
            items.append(iterator.value())
            iterator += 1
        for item in items:
            item.setHidden(bool(needle))
        for item in items:
            haystack = " ".join(item.text(c) for c in range(4)).lower().replace(" ", "")
            if not needle or needle in haystack:
                if needle:
                    shown += 1
                item.setHidden(False)
                parent = item.parent()
                while parent is not None:
                    parent.setHidden(False)
                    if needle:
                        parent.setExpanded(True)
                    parent = parent.parent()
        total = sum(1 for i in items if i.parent() is None)
        self.count.setText(f"{shown} matching element(s)" if needle else f"{total} top-level element(s)")

    def visible_rows(self) -> list[tuple[str, str, str, str]]:
        """(tag, name, VR, value) of every row not hidden by the search (for tests)."""
        rows = []
        iterator = QTreeWidgetItemIterator(self.tree, QTreeWidgetItemIterator.IteratorFlag.NotHidden)
        while iterator.value():
            item = iterator.value()
            rows.append(tuple(item.text(c) for c in range(4)))
            iterator += 1
        return rows

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closed.emit()
        super().closeEvent(event)
