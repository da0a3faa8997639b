"""Folders and DICOMDIRs: index headers, group into patient / study / series, order slices, open a series lazily.

Indexing reads headers only (values over 64 KB, i.e. the pixel data, are deferred: seen but not loaded, which
unlike `stop_before_pixels` still tells which files hold images); pixels are decoded when a slice is shown, with a small
cache of decoded instances, so opening a 1000-file folder costs header parsing only.
Slice order: ImagePositionPatient projected on the slice normal (the cross product of the ImageOrientationPatient
row and column vectors), which is correct for any orientation and for feet-first / head-first alike; files missing
position or orientation fall back to InstanceNumber, then file name. Gaps, duplicates and mixed sizes are reported in
`.warnings`, never fatal: the clinician still sees what is there.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from pydicom.dataset import Dataset

from dicom_io.dicom_file import DicomInstance, header_metadata, header_phi
from dicom_io.display_checks import display_warnings
from dicom_io.errors import InputError, NoPixelDataError
from dicom_io.pixels import frame_header, is_colour, n_frames, pixel_keyword
from dicom_io.reading import is_dicom, read_dicom
from dicom_io.slide import is_slide
from dicom_io.stack import ImageStack
from dicom_io.windows import windows_from_header

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
SLIDE_SUFFIXES = {".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide"}
# A gap is a step between neighbouring slices larger than this multiple of the median step.
GAP_FACTOR = 1.5
# Indexing stops after this many files (a home folder dropped by mistake must not read for an hour).
MAX_FILES = 20000


@dataclass
class _Entry:
    path: Path
    header: Dataset
    frames: int
    has_pixels: bool


def _position_key(header: Dataset) -> float | None:
    try:
        iop = [float(v) for v in header.ImageOrientationPatient]
        ipp = [float(v) for v in header.ImagePositionPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    if len(iop) != 6 or len(ipp) != 3:
        return None
    normal = np.cross(iop[:3], iop[3:])
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-6:
        return None
    return float(np.dot(normal, ipp))


def _instance_number(header: Dataset) -> int | None:
    try:
        return int(header.InstanceNumber)
    except (AttributeError, TypeError, ValueError):
        return None


def order_slices(entries: list[_Entry]) -> tuple[list[_Entry], list[str]]:
    """Sort a series' instances and describe spacing problems. Returns (sorted entries, warnings)."""
    warnings: list[str] = []
    positions = [_position_key(e.header) for e in entries]
    if entries and all(p is not None for p in positions):
        order = sorted(range(len(entries)), key=lambda i: (positions[i], _instance_number(entries[i].header) or 0))
        ordered = [entries[i] for i in order]
        z = np.array([positions[i] for i in order], dtype=float)
        steps = np.diff(z)
        if steps.size:
            if np.any(steps < 1e-4):
                warnings.append(f"{int(np.sum(steps < 1e-4))} slice(s) share a position with a neighbour")
            positive = steps[steps >= 1e-4]
            if positive.size:
                median = float(np.median(positive))
                for i in np.nonzero(steps > GAP_FACTOR * median)[0]:
                    warnings.append(
                        f"gap between slices {int(i)} and {int(i) + 1}: {steps[i]:.2f} mm (typical {median:.2f} mm)"
                    )
        return ordered, warnings
    if any(p is not None for p in positions):
        warnings.append("some slices lack ImagePositionPatient/ImageOrientationPatient: ordered by InstanceNumber")
    ordered = sorted(entries, key=lambda e: (_instance_number(e.header) is None, _instance_number(e.header) or 0,
                                             e.path.name))  # fmt: skip
    return ordered, warnings


class SeriesStack(ImageStack):
    """One series as a stack of slices (kind "series"); multi-frame instances contribute all their frames."""

    kind = "series"

    def __init__(self, path: Path, entries: list[_Entry], warnings: list[str], cache_instances: int = 8) -> None:
        super().__init__(path)
        self._entries = [e for e in entries if e.has_pixels]
        if not self._entries:
            raise NoPixelDataError(path, "the series holds no images (no pixel data in any instance)")
        self.instances = [e.path for e in self._entries]
        self._frames = [(i, f) for i, e in enumerate(self._entries) for f in range(e.frames)]
        self._cache: LRUCache[int, DicomInstance] = LRUCache(maxsize=cache_instances)
        self._lock = threading.Lock()
        self.warnings = list(warnings)
        first = self._entries[0].header
        self.metadata = header_metadata(first)
        self.metadata["frames"] = len(self._frames)
        self.metadata["instances"] = len(self._entries)
        self.metadata["colour"] = is_colour(str(first.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper())
        self.phi = header_phi(first)
        self.windows = windows_from_header(frame_header(first, 0))
        self.warnings.extend(display_warnings(frame_header(first, 0), self.windows))
        if self.windows:
            self.metadata["window"] = self.windows[0].as_dict()
        self.frame_time_ms = self.metadata.get("frame_time_ms")
        sizes = {(int(e.header.get("Columns", 0) or 0), int(e.header.get("Rows", 0) or 0)) for e in self._entries}
        if len(sizes) > 1:
            self.warnings.append(f"mixed slice sizes: {', '.join(f'{w}x{h}' for w, h in sorted(sizes))}")

    @property
    def n_frames(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> tuple[int, int]:
        h = self._entries[0].header
        return int(h.Columns), int(h.Rows)

    def _instance(self, i: int) -> DicomInstance:
        with self._lock:
            inst = self._cache.get(i)
            if inst is not None:
                return inst
        inst = DicomInstance(self._entries[i].path, validate=False)  # header already validated by the index
        with self._lock:
            self._cache[i] = inst
        return inst

    def _frame(self, frame: int) -> tuple[np.ndarray, str, Dataset | None]:
        i, f = self._frames[frame]
        return self._instance(i).frame(f)

    def dataset(self, frame: int = 0) -> Dataset | None:
        """The header of the instance that holds `frame` (without pixel data)."""
        frame = self.check_frame(frame)
        return self._entries[self._frames[frame][0]].header


@dataclass
class Series:
    uid: str
    modality: str | None
    description: str | None
    number: int | None
    entries: list[_Entry]
    warnings: list[str] = field(default_factory=list)
    path: Path = Path(".")
    _stack: SeriesStack | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def instances(self) -> list[Path]:
        return [e.path for e in self.entries]

    @property
    def n_instances(self) -> int:
        return len(self.entries)

    @property
    def n_images(self) -> int:
        """Frames with pixel data (what the viewer can show)."""
        return sum(e.frames for e in self.entries if e.has_pixels)

    def open(self) -> SeriesStack:
        """The series as an ImageStack; the same object on every call, so its decode caches are reused."""
        if self._stack is None:
            self._stack = SeriesStack(self.path, self.entries, self.warnings)
        return self._stack

    def summary(self) -> dict[str, Any]:
        return {"uid": self.uid, "modality": self.modality, "description": self.description, "number": self.number,
                "instances": self.n_instances, "images": self.n_images, "warnings": list(self.warnings)}  # fmt: skip


@dataclass
class Study:
    uid: str
    description: str | None
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    """A patient group. `key` is the PatientID (PHI): show it only on request; `label` is safe ("patient 1")."""

    key: str
    label: str
    studies: list[Study] = field(default_factory=list)
    phi: dict[str, str] = field(default_factory=dict)


@dataclass
class Collection:
    """A folder or DICOMDIR: DICOM grouped by patient/study/series, plus plain images and slides found beside them."""

    path: Path
    patients: list[Patient] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    slides: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kind: str = "collection"

    @property
    def series(self) -> list[Series]:
        return [s for p in self.patients for st in p.studies for s in st.series]

    @property
    def n_studies(self) -> int:
        return sum(len(p.studies) for p in self.patients)


def _str(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def group(root: Path, entries: list[_Entry], warnings: list[str]) -> Collection:
    """Group header entries into the patient / study / series tree, each series ordered."""
    coll = Collection(root, warnings=warnings)
    tree: dict[str, dict[str, dict[str, list[_Entry]]]] = {}
    for e in entries:
        h = e.header
        pid = _str(h.get("PatientID")) or _str(h.get("PatientName")) or "(no patient id)"
        study_uid = _str(h.get("StudyInstanceUID")) or "(no study uid)"
        series = _str(h.get("SeriesInstanceUID")) or f"(no series uid: {e.path.parent.name})"
        tree.setdefault(pid, {}).setdefault(study_uid, {}).setdefault(series, []).append(e)
    for n, (pid, studies) in enumerate(tree.items(), 1):
        first = next(iter(next(iter(studies.values())).values()))[0].header
        patient = Patient(key=pid, label=f"patient {n}", phi=header_phi(first))
        for study_uid, series_map in studies.items():
            st_head = next(iter(series_map.values()))[0].header
            study = Study(study_uid, _str(st_head.get("StudyDescription")))
            for series_uid, items in series_map.items():
                ordered, notes = order_slices(items)
                h = ordered[0].header
                try:
                    number = int(h.SeriesNumber) if "SeriesNumber" in h and h.SeriesNumber not in (None, "") else None
                except (TypeError, ValueError):
                    number = None
                folder = ordered[0].path.parent
                study.series.append(Series(series_uid, _str(h.get("Modality")), _str(h.get("SeriesDescription")),
                                           number, ordered, notes, folder))  # fmt: skip
            study.series.sort(key=lambda s: (s.number is None, s.number or 0, s.uid))
            patient.studies.append(study)
        coll.patients.append(patient)
    return coll


def _index_files(root: Path, files: list[Path], coll_warnings: list[str]) -> tuple[list[_Entry], list[Path], list[Path]]:
    entries: list[_Entry] = []
    images: list[Path] = []
    slides: list[Path] = []
    wsi_series: set[str] = set()
    for path in files:
        suffix = path.suffix.lower()
        if suffix in SLIDE_SUFFIXES:
            slides.append(path)
            continue
        if is_dicom(path):
            try:
                header = read_dicom(path, header_only=True)
            except InputError as exc:
                coll_warnings.append(f"skipped {path.relative_to(root)}: {exc.cause}")
                continue
            sop = str(header.get("SOPClassUID", "") or getattr(header.get("file_meta"), "MediaStorageSOPClassUID", ""))
            if sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in header:
                continue
            if sop == WSI_SOP_CLASS:
                key = str(header.get("SeriesInstanceUID", path.parent))
                if key not in wsi_series:
                    wsi_series.add(key)
                    slides.append(path)
                continue
            has_pixels = pixel_keyword(header) is not None
            entries.append(_Entry(path, header, n_frames(header), has_pixels))
        elif suffix in IMAGE_SUFFIXES:
            if suffix in (".tif", ".tiff") and is_slide(path):
                slides.append(path)
            else:
                images.append(path)
    return entries, images, slides


def _walk_errors(root: Path, errors: list[OSError], warnings: list[str]) -> None:
    """Listing failures of `os.walk`: the root itself is an InputError, a subfolder a warning.

    Why: `os.walk` skips folders it cannot list without a word, so an unreadable folder looked empty and the user
    was told "no images found" instead of "permission denied".
    """
    for err in errors:
        reason = "permission denied" if isinstance(err, PermissionError) else (err.strerror or type(err).__name__)
        where = Path(err.filename) if err.filename else root
        if where == root:
            raise InputError(root, f"cannot list this folder: {reason}")
        try:
            shown = where.relative_to(root).as_posix()
        except ValueError:
            shown = str(where)
        warnings.append(f"skipped folder {shown}/: {reason}")


def index_folder(root: str | Path) -> Collection:
    root = Path(root)
    files: list[Path] = []
    warnings: list[str] = []
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
        if len(files) > MAX_FILES:
            files = files[:MAX_FILES]
            warnings.append(f"more than {MAX_FILES} files: only the first {MAX_FILES} were indexed")
            break
    _walk_errors(root, errors, warnings)
    entries, images, slides = _index_files(root, files, warnings)
    coll = group(root, entries, warnings)
    coll.images, coll.slides = images, slides
    return coll


def index_dicomdir(path: str | Path) -> Collection:
    """The files a DICOMDIR references, grouped like a folder (the records only say where files are)."""
    path = Path(path)
    ds = read_dicom(path, header_only=True)
    root = path.parent
    files: list[Path] = []
    warnings: list[str] = []
    seen: set[Path] = set()
    for record in ds.get("DirectoryRecordSequence") or []:
        ref = record.get("ReferencedFileID")
        if not ref:
            continue
        parts = [ref] if isinstance(ref, str) else list(ref)
        candidate = root.joinpath(*[str(p) for p in parts])
        if candidate in seen:
            continue
        seen.add(candidate)
        if candidate.is_file():
            files.append(candidate)
        else:
            warnings.append(f"DICOMDIR lists a missing file: {'/'.join(map(str, parts))}")
    entries, images, slides = _index_files(root, files, warnings)
    coll = group(path, entries, warnings)
    coll.images, coll.slides = images, slides
    return coll
