"""Open what a clinician drags in: DICOM files, folders, DICOMDIRs, whole-slide images and plain images.

No torch and no Qt here: the output is numpy arrays, PIL images and plain dataclasses. Entry points:
`open_path(path)` -> `ImageStack` | `Collection` | `Slide`, `info(path, phi=False)` -> dict, `Window`, `PRESETS`,
`preset(name)`; de-identification in `dicom_io.deid`, tissue tiles in `dicom_io.tissue`. Every failure is an
`InputError` (see `dicom_io.errors`) whose message names the file and the cause.
"""

from dicom_io import codecs as _codecs
from dicom_io import guard as _guard
from dicom_io.api import Opened, info, open_path  # noqa: E402  (after the plugin registration imports)
from dicom_io.errors import (
    CorruptFileError,
    EmptyFileError,
    FileMissingError,
    FrameIndexError,
    ImageTooLargeError,
    InputError,
    NoImagesError,
    NoPixelDataError,
    PixelDecodeError,
    RegionError,
    UnsupportedFormatError,
)
from dicom_io.series import Collection, Patient, Series, Study  # noqa: E402
from dicom_io.slide import Slide  # noqa: E402
from dicom_io.stack import ImageStack  # noqa: E402
from dicom_io.windows import PRESETS, Window, preset, preset_key

_codecs.register()
_guard.install_quiet_warnings()

__all__ = [
    "PRESETS",
    "Collection",
    "ImageStack",
    "Opened",
    "Patient",
    "Series",
    "Slide",
    "Study",
    "info",
    "open_path",
    "CorruptFileError",
    "EmptyFileError",
    "FileMissingError",
    "FrameIndexError",
    "ImageTooLargeError",
    "InputError",
    "NoImagesError",
    "NoPixelDataError",
    "PixelDecodeError",
    "RegionError",
    "UnsupportedFormatError",
    "Window",
    "preset",
    "preset_key",
]
