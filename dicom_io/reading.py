"""Read a DICOM file's dataset defensively: empty files, files without the 128-byte preamble, missing meta.

pydicom refuses files without the "DICM" preamble unless forced, but such files are common (old modalities,
`no_meta.dcm` in pydicom's own data). Forcing on arbitrary bytes, however, "succeeds" on a text file, so a forced
read is accepted only when the result looks like an image object (see `_plausible`).
"""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_io.errors import CorruptFileError, EmptyFileError, FileMissingError, UnsupportedFormatError
from dicom_io.guard import guard

# Elements whose presence makes a forced read believable; a random text file parses into none of these.
_PLAUSIBLE = ("SOPClassUID", "Modality", "Rows", "PixelData", "StudyInstanceUID", "SeriesInstanceUID")


def _plausible(ds: Dataset) -> bool:
    try:
        return sum(1 for k in _PLAUSIBLE if k in ds) >= 2
    except Exception:  # noqa: BLE001 - a garbage parse is simply not plausible
        return False


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Files without (0002,0010) were written in the encoding pydicom detected while reading: say so explicitly."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    encoding = getattr(ds, "original_encoding", (True, True))
    implicit, little = encoding if encoding and None not in encoding else (True, True)
    if "PixelData" in ds and getattr(ds["PixelData"], "is_undefined_length", False):
        return  # encapsulated data with unknown syntax: leave it, decoding reports it clearly
    uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        from pydicom.dataset import FileMetaDataset

        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid


def check_file(path: str | Path) -> Path:
    """Existence / emptiness checks shared by every reader."""
    p = Path(path)
    if not p.exists():
        raise FileMissingError(p, "no such file or folder")
    if p.is_file() and p.stat().st_size == 0:
        raise EmptyFileError(p, "file is empty (0 bytes)")
    return p


_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def _convert_all(ds: Dataset) -> None:
    """Parse every element now (except pixel data), so a bad value fails here, inside the guard, not in a caller."""
    for tag in list(ds.keys()):
        if tag in _PIXEL_TAGS:
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _convert_all(item)


def read_dicom(path: str | Path, *, header_only: bool = False, validate: bool = True) -> Dataset:
    """The dataset of a DICOM file, or InputError. Pixel data is not decoded here.

    `header_only=True` (for indexing folders) defers reading values over 64 KB, so the pixel data is seen to be
    present (`"PixelData" in ds`) but not loaded; it is read from the file only if someone accesses it.
    `validate=False` skips parsing every element up front; for files whose header was already validated while
    indexing a folder (it is most of the cost of opening a slice).
    """
    p = check_file(path)
    kwargs = {"defer_size": 65536} if header_only else {}
    with guard(p, "reading DICOM header"):
        try:
            ds = dcmread(p, **kwargs)
        except InvalidDicomError:
            ds = dcmread(p, force=True, **kwargs)
            if not _plausible(ds):
                raise UnsupportedFormatError(p, "not a DICOM file") from None
        if len(ds) == 0:
            raise CorruptFileError(p, "the DICOM header holds no data elements")
        if validate:
            _convert_all(ds)
        _ensure_transfer_syntax(ds)
    return ds


def is_dicom(path: Path) -> bool:
    """Cheap sniff: the DICM magic at offset 128, or a group-0008 tag at offset 0 (files without preamble)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    starts = (b"\x02\x00", b"\x08\x00", b"\x00\x08")  # group 0002 / 0008 first, little or big endian
    return len(head) >= 8 and head[0:2] in starts and path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif")
