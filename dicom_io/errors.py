"""One error family for every unreadable input. The message always names the file and the cause."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """An input medapp cannot read. `str(err)` is "<path>: <cause>"."""

    def __init__(self, path: str | Path | None, cause: str) -> None:
        self.path = None if path is None else Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}" if path is not None else cause)


class FileMissingError(InputError):
    """The path does not exist (or vanished while reading)."""


class EmptyFileError(InputError):
    """The file has zero bytes: usually an interrupted copy or download."""


class UnsupportedFormatError(InputError):
    """Neither DICOM, nor a whole-slide image, nor a plain image format we read."""


class CorruptFileError(InputError):
    """The format is recognised but the content is broken: truncated data, bad VR values, an unreadable header."""


class NoPixelDataError(InputError):
    """A valid DICOM object without pixels (structured report, RT plan, a DICOMDIR record without images...)."""


class PixelDecodeError(InputError):
    """The pixel data is compressed with a syntax no installed decoder handles, or the decoder failed."""


class ImageTooLargeError(InputError):
    """An image, frame or region whose header asks for more pixels than medapp decodes at once (see
    `dicom_io.budget`); refused before any pixel is decoded."""


class NoImagesError(InputError):
    """A folder or DICOMDIR that contains nothing displayable."""


class FrameIndexError(InputError):
    """A frame / slice index outside the image stack."""


class RegionError(InputError):
    """A region or pyramid level outside the image, or a region too large to read at once."""


__all__ = [
    "InputError",
    "FileMissingError",
    "EmptyFileError",
    "UnsupportedFormatError",
    "CorruptFileError",
    "NoPixelDataError",
    "PixelDecodeError",
    "ImageTooLargeError",
    "NoImagesError",
    "FrameIndexError",
    "RegionError",
]
