"""Fixtures for the window tests: headless Qt, a per-test AppContext and window, small real inputs written here.

The synthetic CT series comes from the shared builder (root conftest `synthetic_ct_series`, tests/builders.py): 15
slices, so Shift+arrow's ×10 step is visible; every slice has a different bright square position, so slice changes
change the displayed pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SERIES_SLICES = 15
SERIES_SIZE = 64


@pytest.fixture(autouse=True)
def _flush_deferred_deletes(qapp, request):
    """pytest-qt closes a test's widgets with deleteLater, so they would be destroyed inside the *next* test's event
    loop, in the middle of its signals. Destroy them here, between tests, where nothing else is running."""
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    _collect_qt_cycles(request.node.nodeid)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    yield


def _collect_qt_cycles(next_test: str) -> None:
    """A safety net, not the fix: the widgets free themselves by reference counting (tests/ui/test_lifetime.py).

    A Qt object left in a reference cycle is freed by Python's cyclic GC on whatever thread triggers a collection —
    possibly a worker — and destroying a QObject there crashes the process. Should a new cycle creep in (the next
    panel's lambda), collect it here on the GUI thread and say which Qt classes were in it, instead of a segfault
    in a later test.
    """
    import gc
    import warnings

    from shiboken6 import Shiboken

    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        stuck = sorted({type(o).__name__ for o in gc.garbage if isinstance(o, Shiboken.Object)} - {"QMetaObject"})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    gc.collect()  # the cycles just saved, now freed for good (still on the GUI thread)
    if stuck:
        warnings.warn(f"Qt objects were left in reference cycles before {next_test}: {', '.join(stuck)}; "
                      "see tests/ui/test_lifetime.py", RuntimeWarning, stacklevel=1)


@pytest.fixture(scope="session")
def ct_series_dir(tmp_path_factory, synthetic_ct_series) -> Path:
    """15 slices of 64² (the shared builder, tests/builders.py) with a bright square that moves from slice to slice."""
    folder = tmp_path_factory.mktemp("ct_series") / "series"
    synthetic_ct_series(folder, n=SERIES_SLICES, size=SERIES_SIZE, marker=True, PatientName="Synthetic^Phantom",
                        PatientID="SYN-0001", AccessionNumber="ACC1", SeriesDescription="Synthetic axial")
    return folder


@pytest.fixture(scope="session")
def example_ct() -> Path:
    from pydicom import examples

    return Path(examples.get_path("ct"))


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def app_context(qtbot):
    """A fresh AppContext whose workers are shut down after the test (no thread outlives its test)."""
    from ui.context import AppContext

    ctx = AppContext()
    yield ctx
    assert ctx.workers.shutdown(5000), "workers still running after the test"


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """Factory: a MainWindow with its own session folder (MEDAPP_HOME in tmp), shown; closed at teardown."""
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    from medapp.session import Session
    from ui.context import AppContext
    from ui.main_window import MainWindow

    windows = []

    def make(*, session: bool = True, size=(1400, 860)) -> MainWindow:
        ctx = AppContext(session=Session(tmp_path / "session") if session else None)
        window = MainWindow(ctx)
        qtbot.addWidget(window)
        window.resize(*size)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert window.context.workers.active == 0 or window.context.workers.pool.waitForDone(5000)


def grab_array(widget) -> np.ndarray:
    """The widget's pixels as (H, W, 3) uint8 (what the user sees, overlay included)."""
    from ui.viewer.qimage import qimage_to_array

    return qimage_to_array(widget.grab().toImage())


@pytest.fixture
def grab():
    return grab_array
