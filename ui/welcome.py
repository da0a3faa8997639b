"""The first screen of a bare start: open a real example study at once, or your own files.

The examples are pydicom's bundled CT and MR (`pydicom.examples.get_path`), found at run time in the installed
wheel, so nothing is downloaded and a new user sees a real image in one click.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

__all__ = ["WelcomePage", "example_path"]


def example_path(name: str) -> Path | None:
    """pydicom's bundled example ("ct" or "mr"), or None if this pydicom has none of that name."""
    try:
        from pydicom import examples

        return Path(examples.get_path(name))
    except (ImportError, KeyError, ValueError, AttributeError):
        return None


class WelcomePage(QWidget):
    """Buttons for the examples, Open file / folder, and the recent files list."""

    open_path = Signal(Path)
    open_file_requested = Signal()
    open_folder_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h2>medapp</h2>")
        intro = QLabel(
            "Open a DICOM file, a folder or DICOMDIR, a whole-slide image or a picture — from the File menu, or "
            "drop it on this window. Ask the model about exactly what is on screen, draft a report, caption a "
            "folder."
        )
        intro.setWordWrap(True)
        examples = QLabel("<b>New here?</b> Open one of the example studies bundled with pydicom:")
        examples.setWordWrap(True)
        self.ct_button = QPushButton("Example CT")
        self.mr_button = QPushButton("Example MR")
        self.file_button = QPushButton("Open file…")
        self.folder_button = QPushButton("Open folder…")
        for name, button in (("ct", self.ct_button), ("mr", self.mr_button)):
            path = example_path(name)
            button.setEnabled(path is not None)
            if path is not None:
                button.setToolTip(str(path))
                button.clicked.connect(lambda _=False, p=path: self.open_path.emit(p))
        self.file_button.clicked.connect(self.open_file_requested.emit)
        self.folder_button.clicked.connect(self.open_folder_requested.emit)
        buttons = QGridLayout()
        buttons.addWidget(self.ct_button, 0, 0)
        buttons.addWidget(self.mr_button, 0, 1)
        buttons.addWidget(self.file_button, 1, 0)
        buttons.addWidget(self.folder_button, 1, 1)
        self.recent = QListWidget()
        self.recent.setMaximumHeight(160)
        self.recent.itemActivated.connect(lambda item: self.open_path.emit(Path(item.data(Qt.ItemDataRole.UserRole))))
        self.recent_label = QLabel("Recent")
        box = QWidget()
        box.setFixedWidth(460)  # a fixed width keeps Qt's height-for-width of the wrapped labels exact
        inner = QVBoxLayout(box)
        inner.addWidget(title)
        inner.addWidget(intro)
        inner.addSpacing(8)
        inner.addWidget(examples)
        inner.addLayout(buttons)
        inner.addSpacing(12)
        inner.addWidget(self.recent_label)
        inner.addWidget(self.recent)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.set_recent([])

    def set_recent(self, paths: list[Path]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(path.name)
            item.setToolTip(str(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.recent_label.setVisible(bool(paths))
