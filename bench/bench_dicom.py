"""Decode + window a synthetic 512x512, 200-slice CT series: dicom_io against plain pydicom, same run.

Baseline, per slice: `dcmread` + `ds.pixel_array` + `apply_modality_lut` + `apply_voi_lut` (float64 out).
dicom_io: `open_path(folder)` (header index of all files) then `SeriesStack.render(i)` for every slice (uint8 out,
ready to show). Ratios > 1 mean dicom_io is faster. Best of `REPEATS` runs each, interleaved, because this
machine's speed drifts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

N_SLICES = 200
SIZE = 512
REPEATS = 2


def _write_series(folder: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE - 0.5
    body = np.where(np.hypot(xx, yy) < 0.45, 40.0, -1000.0)
    study, series = generate_uid(), generate_uid()
    for k in range(N_SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, k * 1.25], [1, 0, 0, 0, 1, 0]
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.WindowCenter, ds.WindowWidth = 40, 400
        hu = body + rng.normal(0, 20, body.shape)
        ds.PixelData = (hu + 1024).astype("<i2").tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def _baseline(files: list[Path]) -> float:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    start = time.perf_counter()
    for f in files:
        ds = pydicom.dcmread(f)
        apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    return time.perf_counter() - start


def _ours(folder: Path) -> tuple[float, float]:
    import dicom_io

    start = time.perf_counter()
    stack = dicom_io.open_path(folder).series[0].open()
    opened = time.perf_counter()
    for i in range(stack.n_frames):
        stack.render(i)
    end = time.perf_counter()
    return end - start, end - opened


def main() -> None:
    import dicom_io  # noqa: F401 - import (plugin registration) outside the timed region

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_series(folder)
        files = sorted(folder.glob("*.dcm"))
        base, total, scroll = [], [], []
        for _ in range(REPEATS):
            base.append(_baseline(files))
            t, s = _ours(folder)
            total.append(t)
            scroll.append(s)
    b, t, s = min(base), min(total), min(scroll)
    print(f"series: {N_SLICES} slices of {SIZE}x{SIZE} int16 CT, best of {REPEATS}")
    print(f"pydicom pixel_array+modality+voi per slice: {b / N_SLICES * 1e3:.2f} ms/slice")
    print(f"dicom_io open (index) + render all:         {t / N_SLICES * 1e3:.2f} ms/slice  ratio {b / t:.2f}x")
    print(f"dicom_io render only (after open):          {s / N_SLICES * 1e3:.2f} ms/slice  ratio {b / s:.2f}x")


if __name__ == "__main__":
    main()
