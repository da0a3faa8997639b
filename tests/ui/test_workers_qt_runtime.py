"""The Qt binding itself must not corrupt the interpreter: PySide6-Essentials 6.12.0 returns None from every void
method without taking a reference on Python 3.11 (None is immortal only from 3.12), so each `update()`,
`setText()` or `processEvents()` drops one reference and the process dies with "deallocating None" after a few
thousand calls. pyproject pins PySide6-Essentials below 6.12; this test catches a venv that drifted."""

from __future__ import annotations

import sys


def test_void_qt_calls_keep_none_alive(qtbot):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")  # void
        label.update()  # void
        QCoreApplication.processEvents()  # void
    lost = before - sys.getrefcount(None)
    assert lost < 100, f"the Qt binding dropped {lost} references to None in 6000 void calls"
