"""Fixtures for the window tests: headless Qt, a per-test AppContext and window, small real inputs written here.

The synthetic CT series is written with pydicom (15 slices, so Shift+arrow's ×10 step is visible); every slice has
a different bright square position, so slice changes change the displayed pixels.
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


def write_ct_series(folder: Path, n: int = SERIES_SLICES, size: int = SERIES_SIZE) -> list[Path]:
    """A synthetic axial CT series: HU background -1000 (air), a 0 HU disc, a +1000 HU square moving per slice."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    from pydicom import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size * 0.4) ** 2
    paths = []
    for i in range(n):
        hu = np.full((size, size), -1000, np.int16)
        hu[disc] = 40
        y0 = 4 + (i * 3) % (size - 12)
        hu[y0 : y0 + 8, size // 2 - 4 : size // 2 + 4] = 1000
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Synthetic^Phantom", "SYN-0001", "19700101"
        ds.StudyDate, ds.AccessionNumber = "20260101", "ACC1"
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "CT", "Synthetic axial", 3, i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i) * 2.5]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = hu.tobytes()
        path = folder / f"slice{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def _flush_deferred_deletes(qapp):
    """pytest-qt closes a test's widgets with deleteLater, so they would be destroyed inside the *next* test's event
    loop, in the middle of its signals. Destroy them here, between tests, where nothing else is running."""
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    yield


@pytest.fixture(scope="session")
def ct_series_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ct_series") / "series"
    write_ct_series(folder)
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
