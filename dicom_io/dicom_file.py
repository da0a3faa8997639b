"""One DICOM instance as an ImageStack (single or multi-frame), plus the header summaries `info` shows.

Metadata and PHI are split at the source: `.metadata` is safe to log and show; `.phi` is only shown on request.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from pydicom.dataset import Dataset

from dicom_io.display_checks import display_warnings
from dicom_io.errors import PixelDecodeError
from dicom_io.guard import guard
from dicom_io.pixels import check_pixel_budget, decode_frame, frame_header, is_colour, n_frames
from dicom_io.reading import read_dicom
from dicom_io.stack import ImageStack
from dicom_io.windows import Window, windows_from_header

# Patient-identifying elements shown only with --phi (keyword -> key in `.phi`).
PHI_KEYS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "PatientBirthDate": "birth_date",
    "AccessionNumber": "accession_number",
    "StudyDate": "study_date",
    "SeriesDate": "series_date",
    "AcquisitionDate": "acquisition_date",
    "ContentDate": "content_date",
    "StudyID": "study_id",
    "InstitutionName": "institution",
    "ReferringPhysicianName": "referring_physician",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _floats(value: Any) -> list[float] | None:
    try:
        items = list(value) if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def frame_time_ms(ds: Dataset) -> float | None:
    """Cine timing: (0018,1063) Frame Time, else the mean of (0018,1065) Frame Time Vector, else 1000 / (0018,0040)."""
    try:
        if ds.get("FrameTime"):
            return float(ds.FrameTime)
        vector = _floats(ds.get("FrameTimeVector"))
        if vector and len(vector) > 1:
            return float(np.mean(vector[1:]))  # the first entry is 0 by definition
        if ds.get("CineRate"):
            return 1000.0 / float(ds.CineRate)
        if ds.get("RecommendedDisplayFrameRate"):
            return 1000.0 / float(ds.RecommendedDisplayFrameRate)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None


def header_metadata(ds: Dataset) -> dict[str, Any]:
    """The non-identifying facts about an instance (what `medapp info` prints without --phi)."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    sop = ds.get("SOPClassUID")
    spacing = _floats(ds.get("PixelSpacing"))
    if spacing is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        try:
            spacing = _floats(shared[0].PixelMeasuresSequence[0].PixelSpacing) if shared else None
        except (AttributeError, IndexError):
            spacing = None
    orientation = _floats(ds.get("ImageOrientationPatient"))
    if orientation is None:  # enhanced multi-frame: in the shared functional groups
        shared = ds.get("SharedFunctionalGroupsSequence")
        try:
            orientation = _floats(shared[0].PlaneOrientationSequence[0].ImageOrientationPatient) if shared else None
        except (AttributeError, IndexError):
            orientation = None
    out: dict[str, Any] = {
        "modality": _text(ds.get("Modality")),
        "sop_class": getattr(sop, "name", None) or _text(sop),
        "rows": ds.get("Rows"),
        "columns": ds.get("Columns"),
        "frames": n_frames(ds),
        "bits_allocated": ds.get("BitsAllocated"),
        "bits_stored": ds.get("BitsStored"),
        "signed": bool(ds.get("PixelRepresentation", 0)) if "PixelRepresentation" in ds else None,
        "samples_per_pixel": ds.get("SamplesPerPixel"),
        "photometric": _text(ds.get("PhotometricInterpretation")),
        "transfer_syntax": _text(ts),
        "transfer_syntax_name": getattr(ts, "name", None) if ts else None,
        "rescale_slope": _floats(ds.get("RescaleSlope")),
        "rescale_intercept": _floats(ds.get("RescaleIntercept")),
        "pixel_spacing_mm": spacing,
        # at the detector, not the patient (projection radiography): measurements say so (medapp.measurements)
        "imager_pixel_spacing_mm": _floats(ds.get("ImagerPixelSpacing")),
        "image_orientation": orientation if orientation is not None and len(orientation) == 6 else None,
        "slice_thickness_mm": _floats(ds.get("SliceThickness")),
        "frame_time_ms": frame_time_ms(ds),
        "series_description": _text(ds.get("SeriesDescription")),
        "body_part": _text(ds.get("BodyPartExamined")),
        "manufacturer": _text(ds.get("Manufacturer")),
    }
    for key in ("rescale_slope", "rescale_intercept", "slice_thickness_mm"):
        if out[key] is not None:
            out[key] = out[key][0] if out[key] else None
    return {k: v for k, v in out.items() if v is not None}


def header_phi(ds: Dataset) -> dict[str, str]:
    return {key: text for kw, key in PHI_KEYS.items() if (text := _text(ds.get(kw)))}


class DicomInstance:
    """Decoded access to one DICOM file's frames, with a small cache of recently decoded frames."""

    def __init__(self, path: Path, ds: Dataset | None = None, cache_frames: int = 4, validate: bool = True) -> None:
        self.path = Path(path)
        self.ds = ds if ds is not None else read_dicom(self.path, validate=validate)
        with guard(self.path, "reading image header"):
            check_pixel_budget(self.ds, self.path)
        self.n_frames = n_frames(self.ds)
        self._cache: LRUCache[int, tuple[np.ndarray, str]] = LRUCache(maxsize=cache_frames)
        self._failed: dict[int, PixelDecodeError] = {}
        self._lock = threading.Lock()

    @property
    def size(self) -> tuple[int, int]:
        return int(self.ds.Columns), int(self.ds.Rows)

    def frame(self, index: int) -> tuple[np.ndarray, str, Dataset]:
        with self._lock:
            hit = self._cache.get(index)
        if hit is None:
            failed = self._failed.get(index)
            if failed is not None:  # decoding is deterministic: do not pay for a slow failure (or a crash) twice
                raise failed
            try:
                with guard(self.path, f"decoding frame {index}"):
                    hit = decode_frame(self.ds, index, self.path)
            except PixelDecodeError as exc:
                with self._lock:
                    self._failed[index] = exc
                raise
            with self._lock:
                self._cache[index] = hit
        arr, photometric = hit
        hdr = frame_header(self.ds, index)
        if photometric == "PALETTE COLOR":
            hdr = self.ds  # apply_color_lut needs the palette elements of the full dataset
        return arr, photometric, hdr


class DicomStack(ImageStack):
    """A single DICOM file (kind "dicom"); multi-frame files have one frame per index."""

    kind = "dicom"

    def __init__(self, path: str | Path, ds: Dataset | None = None) -> None:
        super().__init__(Path(path))
        self._inst = DicomInstance(self.path, ds)
        ds = self._inst.ds
        with guard(self.path, "reading header"):
            self.metadata = header_metadata(ds)
            self.metadata["colour"] = is_colour(str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper())
            if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
                self.metadata["colour"] = True
            self.phi = header_phi(ds)
            self.windows = windows_from_header(frame_header(ds, 0))
            self.warnings.extend(display_warnings(frame_header(ds, 0), self.windows))
            self.frame_time_ms = self.metadata.get("frame_time_ms")
            if self.windows:
                self.metadata["window"] = self.windows[0].as_dict()
                self.metadata["windows"] = [w.as_dict() for w in self.windows]
        self.instances = [self.path]

    @property
    def n_frames(self) -> int:
        return self._inst.n_frames

    @property
    def size(self) -> tuple[int, int]:
        return self._inst.size

    def _frame(self, frame: int) -> tuple[np.ndarray, str, Dataset | None]:
        return self._inst.frame(frame)

    def dataset(self, frame: int = 0) -> Dataset | None:
        self.check_frame(frame)
        return self._inst.ds

    def frame_window(self, frame: int, hdr: Dataset | None) -> Window | None:
        if hdr is None or hdr is self._inst.ds:
            return None  # classic object: one window for all frames
        own = windows_from_header(hdr)
        return own[0] if own else None
