"""Study / series browser: what is open, grouped patient → study → series, with thumbnails.

Thumbnails are rendered in a worker after the tree is shown (users want the list first and pictures as they come,
clinical-anchors B.3 #3). Patient names and IDs are only shown when the window's "show patient data" is on; otherwise
patients are numbered. Activating (double-click / Enter) a row emits `activated(BrowserEntry)`; its context menu's
"Open in view 2 / 3 / 4" emits `open_in_view(entry, index)` (the window's 1×2 / 2×2 layouts, to compare with a prior);
a row can also be dragged onto a view (mime type ENTRY_MIME; the dropped row is `dragged_entry`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QMenu, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ui.viewer.qimage import pil_to_qimage
from ui.workers import WorkerManager

__all__ = ["BrowserEntry", "StudyBrowser", "THUMB_PX", "ENTRY_MIME"]

log = logging.getLogger(__name__)

THUMB_PX = 64
_ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
ENTRY_MIME = "application/x-medapp-browser-entry"  # a row dragged onto a view of the layout grid


@dataclass
class BrowserEntry:
    """One openable row: a `Series` of a collection, a file path (image / slide), or an already opened object."""

    label: str
    kind: str  # "series" | "path" | "opened"
    target: Any
    thumbnail_source: Callable[[], Any] | None = None  # worker side: returns a PIL image


def _attr(obj: Any, *names: str, default: Any = "") -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value not in (None, ""):
            return value() if callable(value) and name.startswith("n_") else value
    return default


def _series_label(series: Any) -> str:
    modality = _attr(series, "modality")
    desc = _attr(series, "description", "series_description")
    number = _attr(series, "number", "series_number")
    count = _attr(series, "n_images", "n_instances", "count", "n_frames", default=None)
    if count is None:
        instances = getattr(series, "instances", None) or getattr(series, "paths", None)
        count = len(instances) if instances is not None else None
    parts = [str(x) for x in (modality, f"#{number}" if number not in ("", None) else "", desc) if x]
    label = " ".join(parts) or "Series"
    return f"{label} ({count} im)" if count is not None else label


def _series_thumbnail(series: Any) -> Any:
    stack = series.open()
    return _stack_thumbnail(stack)


def _stack_thumbnail(stack: Any) -> Any:
    frame = max(0, int(getattr(stack, "n_frames", 1)) // 2)
    image = stack.render_rgb(frame)
    image.thumbnail((THUMB_PX, THUMB_PX))
    return image


def _slide_thumbnail(slide: Any) -> Any:
    return slide.thumbnail((THUMB_PX, THUMB_PX))


def _framed(pixmap: QPixmap) -> QPixmap:
    """Scale to THUMB_PX (tiny images are enlarged) and draw a grey frame, so an all-white image still shows."""
    pixmap = pixmap.scaled(
        THUMB_PX, THUMB_PX, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    painter = QPainter(pixmap)
    painter.setPen(QColor(128, 128, 128))
    painter.drawRect(0, 0, pixmap.width() - 1, pixmap.height() - 1)
    painter.end()
    return pixmap


class _Tree(QTreeWidget):
    """The tree, dragging a row as ENTRY_MIME (the entry itself stays in Python: `StudyBrowser.dragged_entry`)."""

    def __init__(self, owner: StudyBrowser) -> None:
        super().__init__()
        self._owner = weakref.ref(owner)  # the owner holds this tree: a strong reference back would be a cycle

    def mimeData(self, items: Any) -> QMimeData:  # noqa: N802 (Qt override)
        data = QMimeData()
        entry = items[0].data(0, _ENTRY_ROLE) if items else None
        owner = self._owner()
        if isinstance(entry, BrowserEntry) and owner is not None:
            owner.dragged_entry = entry
            data.setData(ENTRY_MIME, entry.label.encode("utf-8"))
        return data


class StudyBrowser(QWidget):
    """A tree of everything opened in this window. `add_collection`, `add_opened` and `clear` fill it."""

    activated = Signal(object)  # BrowserEntry
    open_in_view = Signal(object, int)  # BrowserEntry, 0-based image view of the layout grid

    def __init__(self, workers: WorkerManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers = workers
        self.show_phi = False
        self.dragged_entry: BrowserEntry | None = None  # the row of the last drag (ENTRY_MIME)
        self.tree = _Tree(self)
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # "CT Thorax 1.25 mm … (312 im)": series differ at both ends (description and count), so a label wraps
        # beside its thumbnail (there is room for four lines); one word too long for the dock elides in the middle.
        # Eliding alone left "CT #3 …20 im)" for both a current and a prior series in the default dock width.
        # The full label is each row's tooltip
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setWordWrap(True)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._patients = 0
        self._thumb_jobs: list[Any] = []

    # --- filling -------------------------------------------------------------------------------------------------
    def clear(self) -> None:
        for job in self._thumb_jobs:
            job.cancel()
        self._thumb_jobs.clear()
        self.tree.clear()
        self._patients = 0

    def add_collection(self, collection: Any, title: str) -> list[BrowserEntry]:
        """Add a folder / DICOMDIR; returns its openable entries (tree order) and starts their thumbnails."""
        root = QTreeWidgetItem(self.tree, [title])
        root.setToolTip(0, str(getattr(collection, "path", title)))
        rows: list[tuple[QTreeWidgetItem, BrowserEntry]] = []
        for patient in getattr(collection, "patients", []) or []:
            self._patients += 1
            name = self._patient_label(patient)
            p_item = QTreeWidgetItem(root, [name])
            p_item.setToolTip(0, name)
            for study in getattr(patient, "studies", []) or []:
                s_item = QTreeWidgetItem(p_item, [self._study_label(study)])
                s_item.setToolTip(0, s_item.text(0))
                for series in getattr(study, "series", []) or []:
                    entry = BrowserEntry(_series_label(series), "series", series, lambda s=series: _series_thumbnail(s))
                    rows.append((self._entry_item(s_item, entry), entry))
        for path in getattr(collection, "images", []) or []:
            entry = BrowserEntry(Path(path).name, "path", Path(path))
            rows.append((self._entry_item(root, entry), entry))
        for path in getattr(collection, "slides", []) or []:
            entry = BrowserEntry(f"Slide {Path(path).name}", "path", Path(path))
            rows.append((self._entry_item(root, entry), entry))
        self.tree.expandAll()
        self._start_thumbnails(rows)
        return [entry for _, entry in rows]

    def add_opened(self, opened: Any, label: str, *, select: bool = True) -> QTreeWidgetItem:
        """Add a single opened file (ImageStack or Slide) so it can be brought back with one click."""
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            entry = item.data(0, _ENTRY_ROLE)
            if isinstance(entry, BrowserEntry) and entry.kind == "opened" and entry.target is opened:
                if select:
                    self.tree.setCurrentItem(item)
                return item
        source = _slide_thumbnail if getattr(opened, "kind", "") == "slide" else _stack_thumbnail
        entry = BrowserEntry(label, "opened", opened, lambda o=opened: source(o))
        item = self._entry_item(self.tree.invisibleRootItem(), entry)
        if select:
            self.tree.setCurrentItem(item)
        self._start_thumbnails([(item, entry)])
        return item

    def entries(self) -> list[BrowserEntry]:
        out = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop(0)
            entry = item.data(0, _ENTRY_ROLE)
            if isinstance(entry, BrowserEntry):
                out.append(entry)
            stack[0:0] = [item.child(i) for i in range(item.childCount())]
        return out

    def select(self, entry: BrowserEntry) -> None:
        """Highlight the row of `entry` (and scroll to it)."""
        for item in self._all_items():
            if item.data(0, _ENTRY_ROLE) is entry:
                self.tree.setCurrentItem(item)
                self.tree.scrollToItem(item)
                return

    def thumbnail_count(self) -> int:
        """How many rows already show a thumbnail (tests wait on this)."""
        count = 0
        for item in self._all_items():
            if not item.icon(0).isNull():
                count += 1
        return count

    def _all_items(self) -> list[QTreeWidgetItem]:
        items: list[QTreeWidgetItem] = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop()
            items.append(item)
            stack.extend(item.child(i) for i in range(item.childCount()))
        return items

    def _patient_label(self, patient: Any) -> str:
        if self.show_phi:
            phi = getattr(patient, "phi", None) or {}
            name = phi.get("patient_name") or _attr(patient, "name", "patient_name")
            pid = phi.get("patient_id") or _attr(patient, "patient_id")
            text = " ".join(str(x) for x in (name, f"({pid})" if pid else "") if x)
            if text:
                return text
        return f"Patient {self._patients}"

    @staticmethod
    def _study_label(study: Any) -> str:
        desc = _attr(study, "description", "study_description")
        modalities = _attr(study, "modalities", default="")
        if isinstance(modalities, (list, tuple, set)):
            modalities = "/".join(sorted(str(m) for m in modalities))
        text = " ".join(str(x) for x in (modalities, desc) if x)
        return f"Study: {text}" if text else "Study"

    def _entry_item(self, parent: QTreeWidgetItem, entry: BrowserEntry) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [entry.label])
        item.setToolTip(0, entry.label)  # the narrow dock elides long series descriptions
        item.setData(0, _ENTRY_ROLE, entry)
        item.setSizeHint(0, QSize(THUMB_PX + 8, THUMB_PX + 4))
        return item

    # --- thumbnails (worker) --------------------------------------------------------------------------------------
    def _start_thumbnails(self, rows: list[tuple[QTreeWidgetItem, BrowserEntry]]) -> None:
        work = [(i, e.thumbnail_source) for i, (_, e) in enumerate(rows) if e.thumbnail_source is not None]
        if not work:
            return
        items = [item for item, _ in rows]

        def render(progress: Callable[[Any], None], cancel: threading.Event) -> int:
            made = 0
            for index, source in work:
                if cancel.is_set():
                    break
                try:
                    progress((index, pil_to_qimage(source())))
                    made += 1
                except Exception as exc:  # noqa: BLE001 — one unreadable series must not stop the others
                    log.info("thumbnail failed: %s", type(exc).__name__)
                    progress((index, str(exc)))
            return made

        def show(payload: tuple[int, Any]) -> None:
            index, image = payload
            item = items[index]
            try:
                if isinstance(image, str):
                    item.setToolTip(0, image)
                    item.setForeground(0, Qt.GlobalColor.darkRed)
                else:  # tiny images (16 px test series) are enlarged so the row still shows them
                    item.setIcon(0, QIcon(_framed(QPixmap.fromImage(image))))
            except RuntimeError:  # the row was removed (browser cleared) while the worker ran
                pass

        job = self._workers.create(render, name="Thumbnails", on_progress=show)
        job.signals.finished.connect(lambda j=job: self._thumb_jobs.remove(j) if j in self._thumb_jobs else None)
        self._thumb_jobs.append(job)
        self._workers.start(job)

    def view_menu(self, entry: BrowserEntry) -> QMenu:
        """The row's context menu: open in the main view, or in view 2 / 3 / 4 of the layout grid."""
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.activated.emit(entry))
        for index in (1, 2, 3):
            menu.addAction(f"Open in view {index + 1}", lambda i=index: self.open_in_view.emit(entry, i))
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        entry = item.data(0, _ENTRY_ROLE) if item is not None else None
        if isinstance(entry, BrowserEntry):
            self.view_menu(entry).exec(self.tree.viewport().mapToGlobal(pos))

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        entry = item.data(0, _ENTRY_ROLE)
        if isinstance(entry, BrowserEntry):
            self.activated.emit(entry)
