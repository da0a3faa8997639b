"""Synthetic CT written with pydicom: the one builder the tests and the benchmarks share.

Why here: synthetic test data belongs to the tests, and `dicom_io` may not carry test-only code. It imports nothing
from pytest, so the bench (run from the repo root) imports it as `tests.builders`. The root `tests/conftest.py`
exposes these as fixtures (`synthetic_ct_series`, `ct_dataset`, `ct_phantom`), so `tests/dicom_io`, `tests/ui` and
`bench/bench_dicom.py` write the same kind of series from one implementation.

The phantom is in stored values (HU + 1024, rescale intercept -1024): air outside, soft tissue, two lungs and a
bone ring, plus a little seeded noise. `marker=True` adds a +1000 HU square whose row moves with the slice index, so
neighbouring slices differ visibly where the eye (or a screenshot test) looks: the image centre column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ct_dataset", "phantom", "write_ct_series"]

INTERCEPT = -1024.0


def ct_dataset(
    pixels: np.ndarray,
    *,
    z: float | None = 0.0,
    instance: int | None = 1,
    series_uid: str | None = None,
    study_uid: str | None = None,
    window: tuple[float, float] | None = (40.0, 400.0),
    slope: float = 1.0,
    intercept: float = INTERCEPT,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    **attrs: Any,
) -> Any:  # pydicom Dataset
    """A minimal, valid CT Image Storage dataset around `pixels` (int16 stored values).

    `attrs` set or replace elements by keyword (e.g. `PatientName="Synthetic^Phantom"`, `SeriesDescription=...`);
    the defaults carry made-up patient data so PHI handling has something to hide.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

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
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype("<i2").tobytes()
    return ds


def phantom(size: int = 64, seed: int = 0, *, noise: float = 5.0) -> np.ndarray:
    """A body-like CT slice in stored values (HU + 1024): air outside, soft tissue, lungs, a bone ring."""
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    r = np.hypot(xx, yy)
    hu = np.full((size, size), -1000.0)
    hu[r < 0.45] = 40
    hu[(np.hypot(xx + 0.18, yy) < 0.12) | (np.hypot(xx - 0.18, yy) < 0.12)] = -800
    hu[(r > 0.40) & (r < 0.45)] = 900
    hu += np.random.default_rng(seed).normal(0, noise, hu.shape)
    return (hu - INTERCEPT).astype(np.int16)


def write_ct_series(
    folder: Path,
    zs: Sequence[float | None] | None = None,
    *,
    n: int = 15,
    size: int = 64,
    sizes: Sequence[int] | None = None,
    shuffle: bool = False,
    marker: bool = False,
    **dataset_kw: Any,
) -> list[Path]:
    """Write one CT series into `folder` (created) and return its files in slice order.

    Slice k sits at `zs[k]` (default 2.5 mm apart, `n` slices) and holds `phantom(size, seed=k) + k`, so slices
    differ and their mean rises with k. `sizes` gives per-slice sizes (mixed-size series); `shuffle=True` writes
    the files in a shuffled order under shuffled names, so nothing may rely on file order; `dataset_kw` goes to
    `ct_dataset` (window, orientation, patient data ...).
    """
    from pydicom.uid import generate_uid

    zs = [k * 2.5 for k in range(n)] if zs is None else list(zs)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    order = np.random.default_rng(1).permutation(len(zs)) if shuffle else np.arange(len(zs))
    paths: list[Path | None] = [None] * len(zs)
    for k in (int(i) for i in order):
        side = sizes[k] if sizes else size
        pixels = phantom(side, seed=k) + k
        if marker:
            y0 = 4 + (k * 3) % max(1, side - 12)
            pixels[y0 : y0 + 8, side // 2 - 4 : side // 2 + 4] = int(1000 - INTERCEPT)
        ds = ct_dataset(pixels, z=zs[k], instance=k + 1, series_uid=series, study_uid=study, **dataset_kw)
        path = folder / f"img_{int(order[k]):03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths[k] = path
    return [p for p in paths if p is not None]
