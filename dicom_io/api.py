"""`open_path` (anything a clinician drags in -> ImageStack | Collection | Slide) and `info` (what `medapp info` shows).

Dispatch is by content first, suffix second: a DICOM file named `.jpg` is still DICOM, a DICOM-WSI instance is a
slide, a pyramidal TIFF is a slide while a flat TIFF is a plain image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dicom_io.dicom_file import DicomStack
from dicom_io.errors import FileMissingError, InputError, NoImagesError, UnsupportedFormatError
from dicom_io.guard import guard
from dicom_io.image_file import PlainImage
from dicom_io.reading import check_file, is_dicom, read_dicom
from dicom_io.series import (
    DICOMDIR_SOP_CLASS,
    IMAGE_SUFFIXES,
    SLIDE_SUFFIXES,
    WSI_SOP_CLASS,
    Collection,
    index_dicomdir,
    index_folder,
)
from dicom_io.slide import Slide, is_slide
from dicom_io.stack import ImageStack

Opened = ImageStack | Collection | Slide


def _open_folder(path: Path) -> Collection | Slide:
    coll = index_folder(path)
    has_images = any(s.n_images for s in coll.series) or coll.images
    if not has_images and not coll.slides:
        detail = f" ({len(coll.warnings)} unreadable file(s), first: {coll.warnings[0]})" if coll.warnings else ""
        raise NoImagesError(path, f"no DICOM images, slides or pictures found in this folder{detail}")
    if not has_images and len(coll.slides) == 1 and coll.slides[0].parent == path and is_dicom(coll.slides[0]):
        return Slide(coll.slides[0])  # the folder *is* one DICOM-WSI
    return coll


def _open_dicomdir(path: Path) -> Collection:
    coll = index_dicomdir(path)
    if not any(s.n_images for s in coll.series) and not coll.images and not coll.slides:
        raise NoImagesError(path, "the DICOMDIR references no images")
    return coll


def open_path(path: str | Path) -> Opened:
    """Open a file or folder for display. Every failure is an InputError naming the path and the cause."""
    p = Path(path)
    if not p.exists():
        raise FileMissingError(p, "no such file or folder")
    with guard(p, "opening"):
        if p.is_dir():
            return _open_folder(p)
        check_file(p)
        suffix = p.suffix.lower()
        if suffix in SLIDE_SUFFIXES:
            return Slide(p)
        if is_dicom(p) or suffix in (".dcm", ".dicom") or p.name.upper() == "DICOMDIR":
            ds = read_dicom(p)
            sop = str(ds.get("SOPClassUID", "") or "")
            if sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
                return _open_dicomdir(p)
            if sop == WSI_SOP_CLASS:
                return Slide(p)
            return DicomStack(p, ds)
        if suffix in (".tif", ".tiff", ".svs") and is_slide(p):
            return Slide(p)
        if suffix in IMAGE_SUFFIXES:
            return PlainImage(p)
        try:
            return PlainImage(p)
        except UnsupportedFormatError:
            pass
        try:
            return DicomStack(p, read_dicom(p))
        except UnsupportedFormatError:
            raise UnsupportedFormatError(p, "not DICOM, not a whole-slide image and not a picture format") from None


def _stack_info(obj: ImageStack, phi: bool) -> dict[str, Any]:
    width, height = obj.size
    out: dict[str, Any] = {"kind": obj.kind, "path": str(obj.path), "width": width, "height": height,
                           "frames": obj.n_frames}  # fmt: skip
    out.update({k: v for k, v in obj.metadata.items() if k not in ("rows", "columns", "frames", "windows")})
    if obj.is_colour:
        out["window"] = None  # colour images are shown as stored: no VOI
    else:
        out["window"] = obj.default_window.as_dict() if obj.default_window else obj.auto_window().as_dict()
    if len(obj.windows) > 1:
        out["windows"] = [w.as_dict() for w in obj.windows]
    if obj.kind == "series":
        out["instances"] = len(obj.instances)
    if obj.warnings:
        out["warnings"] = list(obj.warnings)
    if phi:
        out["phi"] = dict(obj.phi)
    return out


def _collection_info(coll: Collection, phi: bool) -> dict[str, Any]:
    patients = []
    for patient in coll.patients:
        entry: dict[str, Any] = {"label": patient.label, "studies": []}
        if phi:
            entry["phi"] = dict(patient.phi)
        for study in patient.studies:
            st: dict[str, Any] = {"description": study.description, "series": []}
            if phi:
                st["uid"] = study.uid
            for series in study.series:
                summary = series.summary()
                if not phi:
                    summary.pop("uid")
                st["series"].append(summary)
            entry["studies"].append(st)
        patients.append(entry)
    out: dict[str, Any] = {
        "kind": "collection",
        "path": str(coll.path),
        "patients": len(coll.patients),
        "studies": coll.n_studies,
        "series": len(coll.series),
        "images": len(coll.images),
        "slides": len(coll.slides),
        "tree": patients,
    }
    if coll.warnings:
        out["warnings"] = list(coll.warnings)
    return out


def _slide_info(slide: Slide) -> dict[str, Any]:
    return {"kind": "slide", "path": str(slide.path), **slide.metadata}


def info(path: str | Path, phi: bool = False) -> dict[str, Any]:
    """A JSON-ready description of `path` (what `medapp info` prints). Patient data only with `phi=True`."""
    obj = open_path(path)
    try:
        with guard(Path(path), "describing"):
            if isinstance(obj, Slide):
                return _slide_info(obj)
            if isinstance(obj, Collection):
                return _collection_info(obj, phi)
            return _stack_info(obj, phi)
    finally:
        if isinstance(obj, Slide):
            obj.close()


__all__ = ["InputError", "Opened", "info", "open_path"]
