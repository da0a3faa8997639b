"""Read a DICOM file's dataset defensively: empty files, files without the 128-byte preamble, missing meta.

pydicom refuses files without the "DICM" preamble unless forced, but such files are common (old modalities,
`no_meta.dcm` in pydicom's own data). Forcing on arbitrary bytes, however, "succeeds" on a text file, so a forced
read is accepted only when the result looks like an image object (see `_plausible`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
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


# pydicom reports "End of file reached before delimiter ..." (a file cut inside a sequence, item or encapsulated
# pixel data) as a warning plus a log record on the "pydicom" logger, then returns whatever it parsed. `guard` drops
# the warning (it may quote values), so we watch the log record instead: it is emitted on the reading thread.
_EOF_MARKER = "End of file reached before delimiter"
# The longest element header (explicit VR with a 4-byte length): fewer bytes than this after the last parsed element
# are the start of an element the file no longer holds.
_MAX_ELEMENT_HEADER = 12


class _EofWatch(logging.Handler):
    """Notes pydicom's end-of-file message when it comes from the thread that installed this handler."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and _EOF_MARKER in record.getMessage():
            self.seen = True


@contextlib.contextmanager
def _watch_eof() -> Iterator[_EofWatch]:
    """A per-call handler on pydicom's logger (adding/removing handlers is thread-safe; no shared flag to reset)."""
    logger = logging.getLogger("pydicom")
    watch = _EofWatch()
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)


def _cut_short(ds: Dataset, size: int) -> str | None:
    """Why the file looks truncated after its last top-level element, or None.

    pydicom stops silently when the file ends inside an element header, and keeps a short value when it ends inside
    a value; both leave a dataset that parses. The last element's declared end is compared with the file size
    (before any value is converted, so the raw offsets are still there).
    """
    tags = list(ds.keys())
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if not tags or getattr(ts, "is_deflated", False):
        return None  # deflated: offsets count inflated bytes, not file bytes (a cut there fails to inflate)
    raw = ds.get_item(tags[-1])
    if not isinstance(raw, RawDataElement) or raw.value_tell is None or raw.length == 0xFFFFFFFF:
        return None  # undefined length: a cut inside it is reported by pydicom's end-of-file message
    end = raw.value_tell + raw.length
    if end > size:
        got = max(0, size - raw.value_tell)
        if int(raw.tag) in _PIXEL_TAGS:
            return f"truncated pixel data: {got} of {raw.length} bytes"
        return f"truncated: element {raw.tag} needs {raw.length} bytes but the file ends after {got}"
    if 0 < size - end < _MAX_ELEMENT_HEADER:
        return f"truncated: the file ends inside the element that follows {raw.tag}"
    return None


def read_dicom(path: str | Path, *, header_only: bool = False, validate: bool = True) -> Dataset:
    """The dataset of a DICOM file, or InputError. Pixel data is not decoded here.

    `header_only=True` (for indexing folders) defers reading values over 64 KB, so the pixel data is seen to be
    present (`"PixelData" in ds`) but not loaded; it is read from the file only if someone accesses it.
    `validate=False` skips parsing every element up front; for files whose header was already validated while
    indexing a folder (it is most of the cost of opening a slice).
    """
    p = check_file(path)
    kwargs: dict[str, Any] = {"defer_size": 65536} if header_only else {}
    with guard(p, "reading DICOM header"), _watch_eof() as eof:
        try:
            ds = dcmread(p, **kwargs)
        except InvalidDicomError:
            ds = dcmread(p, force=True, **kwargs)
            if not _plausible(ds):
                raise UnsupportedFormatError(p, "not a DICOM file") from None
        if eof.seen:
            raise CorruptFileError(p, "truncated: the file ends before a sequence, item or pixel data is complete")
        cut = _cut_short(ds, p.stat().st_size)
        if cut:
            raise CorruptFileError(p, cut)
        if len(ds) == 0:
            if len(getattr(ds, "file_meta", None) or ()):
                raise CorruptFileError(p, "truncated: the file ends after its file meta information")
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
