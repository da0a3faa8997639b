"""Helpers for dicom_io tests: synthetic DICOM written with pydicom (never a copied fixture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_ct(
    pixels: np.ndarray,
    *,
    z: float | None = 0.0,
    instance: int | None = 1,
    series_uid: str | None = None,
    study_uid: str | None = None,
    window: tuple[float, float] | None = (40.0, 400.0),
    slope: float = 1.0,
    intercept: float = -1024.0,
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
) -> Dataset:
    """A minimal, valid CT Image Storage dataset around `pixels` (int16 stored values)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-123", "19700101"
    ds.AccessionNumber, ds.StudyDate = "ACC-9", "20240102"
    ds.Modality, ds.SeriesNumber = "CT", 3
    if instance is not None:
        ds.InstanceNumber = instance
    if z is not None:
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype("<i2").tobytes()
    return ds


def phantom(size: int = 64, seed: int = 0) -> np.ndarray:
    """A body-like CT slice in stored values (HU + 1024): air outside, soft tissue, lungs, a bone ring."""
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    r = np.hypot(xx, yy)
    hu = np.full((size, size), -1000.0)
    hu[r < 0.45] = 40
    hu[(np.hypot(xx + 0.18, yy) < 0.12) | (np.hypot(xx - 0.18, yy) < 0.12)] = -800
    hu[(r > 0.40) & (r < 0.45)] = 900
    hu += np.random.default_rng(seed).normal(0, 5, hu.shape)
    return (hu + 1024).astype(np.int16)


@pytest.fixture
def ct_series(tmp_path: Path) -> Callable[..., Path]:
    """Write a CT series into a fresh folder: `ct_series(zs=[...], sizes=None, shuffle=True) -> folder`."""

    def write(zs: list[float], sizes: list[int] | None = None, folder: str = "series", **kw: object) -> Path:
        out = tmp_path / folder
        out.mkdir()
        series, study = generate_uid(), generate_uid()
        order = np.random.default_rng(1).permutation(len(zs))  # files written in shuffled order and names
        for k in order:
            size = sizes[k] if sizes else 32
            ds = make_ct(phantom(size, seed=int(k)) + int(k), z=zs[k], instance=int(k) + 1,
                         series_uid=series, study_uid=study, **kw)  # fmt: skip
            ds.save_as(out / f"img_{int(order[k]):03d}.dcm", enforce_file_format=True)
        return out

    return write


@pytest.fixture
def ct_dataset() -> Callable[..., Dataset]:
    """`make_ct` for tests (test modules cannot import this conftest directly)."""
    return make_ct


@pytest.fixture
def ct_phantom() -> Callable[..., np.ndarray]:
    return phantom
