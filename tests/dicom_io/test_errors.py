"""Bad input: every failure is an InputError subclass whose message names the file and the cause."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicom_io
from dicom_io.dicom_file import DicomStack

# pytest records warnings itself (replacing the filter dicom_io installs); pydicom's complaints about the broken
# inputs these tests feed it are expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(dicom_io.FileMissingError, match="no such file"):
        dicom_io.open_path(tmp_path / "nope.dcm")
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(dicom_io.EmptyFileError, match=r"empty\.dcm: file is empty"):
        dicom_io.open_path(empty)


@pytest.mark.parametrize("name", ["random.bin", "notes.txt", "fake.dcm", "fake.png"])
def test_not_dicom_not_image(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(dicom_io.UnsupportedFormatError) as info:
        dicom_io.open_path(path)
    assert str(info.value).startswith(str(path))


def test_truncated_pixel_data(tmp_path: Path, ct_dataset, ct_phantom) -> None:
    ds = ct_dataset(ct_phantom(32))
    ds.PixelData = ds.PixelData[:1000]
    path = tmp_path / "trunc.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(dicom_io.CorruptFileError, match=r"truncated pixel data: 1000 of 2048 bytes"):
        dicom_io.open_path(path)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"Rows": 60000, "Columns": 60000}, "implausible frame size"),
        ({"NumberOfFrames": 100000}, "truncated pixel data"),
        ({"Rows": 0}, "is empty"),
        ({"BitsAllocated": 12}, "unsupported layout"),
    ],
)
def test_impossible_headers_fail_before_decoding(tmp_path: Path, ct_dataset, ct_phantom, changes, match) -> None:
    ds = ct_dataset(ct_phantom(32))
    for key, value in changes.items():
        setattr(ds, key, value)
    path = tmp_path / "bad.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(dicom_io.CorruptFileError, match=match):
        dicom_io.open_path(path)


def test_bad_vr_value(pydicom_test_files: Path) -> None:
    with pytest.raises(dicom_io.CorruptFileError, match="badVR.dcm"):
        dicom_io.open_path(pydicom_test_files / "badVR.dcm").render(0)


def test_no_pixel_data(pydicom_test_files: Path) -> None:
    with pytest.raises(dicom_io.NoPixelDataError, match="no pixel data"):
        dicom_io.open_path(pydicom_test_files / "test-SR.dcm")


def test_frame_and_region_errors(pydicom_test_files: Path) -> None:
    stack = DicomStack(pydicom_test_files / "CT_small.dcm")
    with pytest.raises(dicom_io.FrameIndexError, match=r"frame 1 out of range \(0\.\.0\)"):
        stack.render(1)
    with pytest.raises(dicom_io.FrameIndexError):
        stack.render(-1)
    with pytest.raises(dicom_io.RegionError, match="outside the 128x128 image"):
        stack.render_rgb(0, region=(100, 100, 64, 64))
    with pytest.raises(dicom_io.RegionError):
        stack.render_rgb(0, region=(0, 0, 0, 10))
    assert stack.render_rgb(0, region=(10, 20, 30, 40)).size == (30, 40)


def test_unknown_transfer_syntax(tmp_path: Path, pydicom_test_files: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "JPEG2000.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: encapsulated video, no decoder here
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path)
    with pytest.raises(dicom_io.PixelDecodeError, match="mpeg.dcm"):
        dicom_io.open_path(path).render(0)


def test_sequence_recursion_bomb(tmp_path: Path) -> None:
    """Thousands of nested undefined-length sequences: pydicom recurses; we answer with CorruptFileError."""
    head = b"\0" * 128 + b"DICM"
    meta_body = b"\x02\x00\x10\x00UI" + struct.pack("<H", 20) + b"1.2.840.10008.1.2.1\0"
    meta = b"\x02\x00\x00\x00UL" + struct.pack("<HI", 4, len(meta_body)) + meta_body
    nest = (b"\x08\x00\x15\x11SQ\0\0" + b"\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0" + b"\xff\xff\xff\xff") * 5000
    path = tmp_path / "bomb.dcm"
    path.write_bytes(head + meta + b"\x08\x00\x60\x00CS\x02\x00CT" + nest)
    with pytest.raises(dicom_io.InputError) as info:
        dicom_io.open_path(path)
    assert "bomb.dcm" in str(info.value)


def test_messages_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    with pytest.raises(dicom_io.InputError) as info:
        dicom_io.open_path(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))
