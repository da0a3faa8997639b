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


@pytest.mark.parametrize(
    ("name", "keep", "cause"),
    [
        # cut 6 bytes into an element header: pydicom stops silently and the CT "has no pixel data"
        ("CT_small.dcm", 3000, r"truncated: the file ends inside the element that follows \(0027,1030\)"),
        # cut inside a value: pydicom keeps the short value
        ("CT_small.dcm", 5000, r"truncated: element \(0043,1029\) needs 2068 bytes but the file ends after 1052"),
        # cut inside an undefined-length element: pydicom only warns "End of file reached before delimiter"
        ("MR_small_RLE.dcm", 5000, "truncated: the file ends before a sequence, item or pixel data is complete"),
    ],
)
def test_truncated_files_say_truncated(
    pydicom_test_files: Path, tmp_path: Path, name: str, keep: int, cause: str
) -> None:
    path = tmp_path / f"cut_{name}"
    path.write_bytes((pydicom_test_files / name).read_bytes()[:keep])
    with pytest.raises(dicom_io.CorruptFileError, match=cause) as info:
        dicom_io.open_path(path).render(0)
    assert str(info.value).startswith(str(path))


def test_image_object_without_pixel_data_is_incomplete(tmp_path: Path, ct_dataset, ct_phantom) -> None:
    """A CT cut exactly at an element boundary before the pixel data parses cleanly; its SOP class gives it away."""
    ds = ct_dataset(ct_phantom(16))
    del ds.PixelData
    path = tmp_path / "ct_no_pixels.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(dicom_io.CorruptFileError, match="truncated or incomplete: a CT Image Storage object"):
        dicom_io.open_path(path)


def test_truncation_is_noticed_from_worker_threads(pydicom_test_files: Path, tmp_path: Path) -> None:
    """The end-of-file watch is per reading thread: two threads reading a cut and a good file get their own answer."""
    from concurrent.futures import ThreadPoolExecutor

    cut = tmp_path / "cut.dcm"
    cut.write_bytes((pydicom_test_files / "MR_small_RLE.dcm").read_bytes()[:5000])
    good = pydicom_test_files / "MR_small_RLE.dcm"

    def read(path: Path) -> str:
        try:
            dicom_io.open_path(path)
        except dicom_io.InputError as exc:
            return exc.cause
        return "ok"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read, [cut, good] * 20))
    assert results[1::2] == ["ok"] * 20 and all(r.startswith("truncated") for r in results[0::2])
