"""Open what a clinician drags in: DICOM files, folders, DICOMDIRs, whole-slide images and plain images.

No torch and no Qt here: the output is numpy arrays, PIL images and plain dataclasses.
"""

from dicom_io.errors import InputError

__all__ = ["InputError"]
