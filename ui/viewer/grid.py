"""A grid of image viewers (1×1, 1×2, 2×2) to compare a series with a prior, with linked scrolling.

Cell 1 is the window's main `ImageViewer` (its state is the window's `context.view`, what the session saves and
the panels follow). Further cells are image viewers with their own `ViewerState`; the browser's "Open in view N"
puts a series there. The active cell (last clicked or focused, framed in colour) is the one whose view the model
panels receive (`AppContext.set_input_provider`), as in Weasis where the selected view drives the tools.

Drops: a browser row (`ui.browser.ENTRY_MIME`) or files dropped on a view open there (`entry_dropped`,
`paths_dropped` with the view's index; the window opens them). Cell 1 takes files like the window does.

Linked scrolling: when a cell's frame changes, every other visible cell with a stack goes to the slice at the
same position along the stack normal (`medapp.display.linked_frame`; by index when either side has no geometry).
The link is one pass (a guard stops the echo), so two cells never chase each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from medapp.display import linked_frame, slice_positions
from medapp.viewer_state import ViewerState
from ui.browser import ENTRY_MIME
from ui.context import AppContext
from ui.viewer.image_viewer import ImageViewer

__all__ = ["ViewerGrid", "LAYOUTS"]

#: layout name → (rows, columns)
LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
MAX_CELLS = 4
_DROP_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)
_ACTIVE_STYLE = "QFrame#viewerCell { border: 2px solid #e0a030; background: black; }"
_IDLE_STYLE = "QFrame#viewerCell { border: 2px solid #303030; background: black; }"


class ViewerGrid(QWidget):
    """The central image area: `cells[0]` is the main viewer; `set_layout("2x2")` shows four."""

    active_changed = Signal(object)  # the ImageViewer now active
    layout_changed = Signal(str)
    entry_dropped = Signal(int)  # a browser row (StudyBrowser.dragged_entry) dropped on view `index`
    paths_dropped = Signal(int, list)  # local files / folders dropped on view `index`

    def __init__(self, main: ImageViewer, context: AppContext | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.cells: list[ImageViewer] = [main]
        for _ in range(MAX_CELLS - 1):
            self.cells.append(ImageViewer(context, state=ViewerState()))
        self._frames: list[QFrame] = []
        self._positions: dict[int, list[float] | None] = {}  # id(stack) → slice positions (headers read once)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        for cell in self.cells:
            frame = QFrame()
            frame.setObjectName("viewerCell")
            box = QVBoxLayout(frame)
            box.setContentsMargins(2, 2, 2, 2)
            box.addWidget(cell)
            frame.setAcceptDrops(True)  # the viewer does not: its drops come here
            frame.installEventFilter(self)
            self._frames.append(frame)
            # bound methods, not lambdas over self: the cells are this widget's children, so a closure held by a
            # cell's signal would be a reference cycle, freed only by the cyclic GC (off the GUI thread)
            cell.state.frame_changed.connect(self._cell_frame_changed)
            cell.state.stack_changed.connect(self._forget_positions)
            cell.viewport().installEventFilter(self)
            cell.installEventFilter(self)
        self._syncing = False
        self.linked = True
        self._active = main
        self.layout_name = ""
        self.set_layout("1x1")

    # --- layout --------------------------------------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        """Show 1, 2 (side by side) or 4 cells; hidden cells keep their series for when they come back."""
        rows, cols = LAYOUTS[name]
        for frame in self._frames:
            self._grid.removeWidget(frame)
            frame.hide()
        for i in range(rows * cols):
            self._grid.addWidget(self._frames[i], i // cols, i % cols)
            self._frames[i].show()
        for i in range(2):  # equal cells, whatever each viewer's size hint
            self._grid.setRowStretch(i, 1 if i < rows else 0)
            self._grid.setColumnStretch(i, 1 if i < cols else 0)
        self.layout_name = name
        if self._active not in self.visible_cells():
            self.set_active(self.cells[0])
        self._style()
        self.layout_changed.emit(name)

    @property
    def n_visible(self) -> int:
        rows, cols = LAYOUTS[self.layout_name]
        return rows * cols

    def visible_cells(self) -> list[ImageViewer]:
        return self.cells[: self.n_visible]

    def ensure_visible(self, index: int) -> None:
        """Switch to the smallest layout that shows cell `index` (0-based)."""
        if index < self.n_visible:
            return
        self.set_layout("1x2" if index == 1 else "2x2")

    # --- active cell ---------------------------------------------------------------------------------------------
    @property
    def active(self) -> ImageViewer:
        return self._active

    def set_active(self, cell: ImageViewer) -> None:
        if cell is self._active:
            return
        self._active = cell
        self._style()
        self.active_changed.emit(cell)

    def _style(self) -> None:
        multi = self.n_visible > 1 if self.layout_name else False
        for cell, frame in zip(self.cells, self._frames, strict=True):
            frame.setStyleSheet(_ACTIVE_STYLE if multi and cell is self._active else _IDLE_STYLE)
            frame.layout().setContentsMargins(*((2, 2, 2, 2) if multi else (0, 0, 0, 0)))
            frame.setFrameShape(QFrame.Shape.Box if multi else QFrame.Shape.NoFrame)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched in self._frames and event.type() in _DROP_EVENTS:
            return self._drop_event(self._frames.index(watched), event)  # type: ignore[arg-type]
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.FocusIn):
            for cell in self.cells:
                if watched is cell or watched is cell.viewport():
                    self.set_active(cell)
                    break
        return False

    def _drop_event(self, index: int, event: QDropEvent) -> bool:
        mime = event.mimeData()
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if not mime.hasFormat(ENTRY_MIME) and not paths:
            event.ignore()
            return False
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            if mime.hasFormat(ENTRY_MIME):
                self.entry_dropped.emit(index)
            else:
                self.paths_dropped.emit(index, paths)
        return True

    # --- contents ------------------------------------------------------------------------------------------------
    def show_in(self, index: int, stack: Any, setup: Any = None) -> ImageViewer:
        """Put `stack` in cell `index` (0-based; 0 is the main viewer, which the window fills itself), make it
        visible and active, and bring it to the slice linked to the active cell's."""
        self.ensure_visible(index)
        cell = self.cells[index]
        cell.set_stack(stack, setup)
        reference = next((c for c in self.visible_cells() if c is not cell and c.stack is not None), None)
        self.set_active(cell)
        if self.linked and reference is not None:
            self._link(reference, [cell])
        return cell

    def set_linked(self, on: bool) -> None:
        self.linked = bool(on)

    def shutdown(self) -> None:
        for cell in self.cells[1:]:
            cell.shutdown()

    # --- linked scrolling ----------------------------------------------------------------------------------------
    def _stack_positions(self, stack: Any) -> list[float] | None:
        key = id(stack)
        if key not in self._positions:
            self._positions[key] = slice_positions(stack)
        return self._positions[key]

    def _cell_frame_changed(self, _frame: int) -> None:
        sender = self.sender()
        source = next((c for c in self.cells if c.state is sender), None)
        if source is not None:
            self._on_frame(source)

    def _forget_positions(self, *_: Any) -> None:
        self._positions.clear()

    def _on_frame(self, source: ImageViewer) -> None:
        if not self.linked or self._syncing or source not in self.visible_cells() or source.stack is None:
            return
        self._link(source, [c for c in self.visible_cells() if c is not source])

    def _link(self, source: ImageViewer, targets: list[ImageViewer]) -> None:
        self._syncing = True
        try:
            src_positions = self._stack_positions(source.stack)
            for cell in targets:
                if cell.stack is None:
                    continue
                target = linked_frame(source.state.frame, src_positions, self._stack_positions(cell.stack),
                                      cell.state.n_frames)
                cell.state.set_frame(target)
        finally:
            self._syncing = False
