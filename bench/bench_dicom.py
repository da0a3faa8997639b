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

N_SLICES = 200
SIZE = 512
REPEATS = 2


def _write_series(folder: Path) -> None:
    """The shared synthetic CT builder (tests/builders.py, also behind the tests' `synthetic_ct_series`)."""
    from tests.builders import write_ct_series

    write_ct_series(folder, [k * 1.25 for k in range(N_SLICES)], size=SIZE)


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
