"""Every file pydicom ships in its own test-file folder either opens and renders, or raises InputError.

The list is found at run time from the installed pydicom package, not copied. Files pydicom itself decodes
(`ds.pixel_array` with the installed plugins) must open in dicom_io; we decode more (JPEG Extended 12-bit through
imagecodecs, see dicom_io.codecs), never less.
"""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import dicom_io
from dicom_io.dicom_file import DicomStack

# pytest records warnings itself (replacing the filter dicom_io installs); pydicom's complaints about the broken
# inputs these tests feed it are expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



def _pydicom_decodes(path: Path) -> str | None:
    """The transfer syntax if plain pydicom reads and decodes `path`, else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            ds.pixel_array  # noqa: B018
        except Exception:  # noqa: BLE001 - this is the reference: whatever pydicom cannot do
            return None
    return str(ds.file_meta.TransferSyntaxUID)


def test_every_bundled_file_opens_or_raises_input_error(pydicom_test_files: Path) -> None:
    files = sorted(p for p in pydicom_test_files.rglob("*") if p.is_file())
    assert len(files) > 100, "pydicom's bundled test files not found"
    counts: collections.Counter[str] = collections.Counter()
    decoded_syntaxes: set[str] = set()
    must_open = []
    for path in files:
        reference = _pydicom_decodes(path)
        if reference is not None:
            must_open.append(path)
        try:
            obj = dicom_io.open_path(path)
            if isinstance(obj, dicom_io.Collection):
                counts["collection"] += 1
                continue
            last = obj.n_frames - 1
            for frame in sorted({0, last}):
                img = obj.render_rgb(frame)
                assert isinstance(img, Image.Image) and img.mode == "RGB"
                assert img.size == obj.size
            counts["rendered"] += 1
            if obj.kind == "dicom":
                decoded_syntaxes.add(str(obj.dataset().file_meta.TransferSyntaxUID))
        except dicom_io.InputError as exc:
            assert str(path) in str(exc), f"message does not name the file: {exc}"
            counts[type(exc).__name__] += 1
            assert reference is None, f"pydicom decodes {path.name} ({reference}) but dicom_io raised: {exc}"
    print("\npydicom test files:", len(files), dict(counts), "| pydicom itself decodes", len(must_open))
    assert counts["rendered"] >= len(must_open)
    # Every transfer syntax present among the bundled images decodes somewhere.
    expected = {
        "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5",
    }  # fmt: skip
    assert expected <= decoded_syntaxes, f"not decoded: {expected - decoded_syntaxes}"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("MR_truncated.dcm", dicom_io.CorruptFileError),
        ("rtplan.dcm", dicom_io.NoPixelDataError),
        ("README.txt", dicom_io.UnsupportedFormatError),
        ("zipMR.gz", dicom_io.UnsupportedFormatError),
    ],
)
def test_known_bad_files_raise_the_right_subclass(pydicom_test_files: Path, name: str, error: type) -> None:
    with pytest.raises(error) as info:
        obj = dicom_io.open_path(pydicom_test_files / name)
        obj.render(0)
    assert name in str(info.value)


def test_jpeg_extended_12_bit_matches_the_lossless_twin(pydicom_test_files: Path) -> None:
    """JPGExtended.dcm (12-bit lossy JPEG) decodes through our imagecodecs plugin to the image JPEG2000.dcm holds."""
    ours = DicomStack(pydicom_test_files / "JPGExtended.dcm").modality_values(0)
    ref = DicomStack(pydicom_test_files / "JPEG2000.dcm").modality_values(0)
    assert ours.shape == ref.shape == (1024, 256)
    assert ours.max() > 200  # 12-bit values survive (an 8-bit decode would cap or scramble them)
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.9
