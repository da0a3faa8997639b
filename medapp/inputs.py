"""From a path (plus frame / region / window) to the RGB image the model sees, for the CLI and batch jobs.

The window renders through `medapp.view`; scripts and the command line have only a path, so this module makes the
same choices a clinician gets by default in the viewer: a DICOM at its stored default window (or the one asked
for), the first frame unless told otherwise, a slide as an overview at thumbnail level or a region read at the
pyramid level that keeps it under `MAX_REGION_SIDE` pixels (a level-0 region of a slide can be gigapixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.errors import UserError

__all__ = ["LoadedImage", "load_image", "parse_region", "OVERVIEW_SIDE", "MAX_REGION_SIDE"]

OVERVIEW_SIDE = 1024  # slide overview: longest side in pixels
MAX_REGION_SIDE = 2048  # a slide region is read at the level that keeps its longest side at most this


@dataclass
class LoadedImage:
    """The model input plus what reports and the audit need about its source (no PHI in the plain fields)."""

    image: Any  # PIL RGB
    path: Path
    kind: str  # "dicom" | "image" | "series" | "slide"
    modality: str | None
    dataset: Any = None  # pydicom Dataset of the shown frame (DICOM only): identifiers for report / DICOM export
    frame: int | None = None
    region: tuple[int, int, int, int] | None = None
    window: Any = None  # dicom_io.Window actually used, if any


def parse_region(text: str) -> tuple[int, int, int, int]:
    """ "X,Y,W,H" -> ints, with a user-facing error for anything else."""
    parts = [p.strip() for p in text.split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"--region must be X,Y,W,H in whole pixels, got {text!r}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise UserError(f"--region needs X,Y >= 0 and W,H > 0, got {text!r}")
    return x, y, w, h


def load_image(
    path: str | Path,
    *,
    frame: int | None = None,
    region: tuple[int, int, int, int] | None = None,
    window: Any = None,
    opened: Any = None,
) -> LoadedImage:
    """Open `path` with dicom_io and render what the model should see. Raises `dicom_io.InputError` for a bad file.

    `opened` lets a caller reuse an already open object (a slide read tile by tile in a batch).
    """
    import dicom_io

    path = Path(path)
    obj = opened if opened is not None else dicom_io.open_path(path)
    kind = getattr(obj, "kind", None)
    if kind == "slide":
        return _slide_image(obj, path, region)
    if kind not in ("dicom", "image", "series"):
        raise UserError(f"{path}: is a folder of studies; give one file or one series")
    index = 0 if frame is None else int(frame)  # dicom_io raises FrameIndexError (naming the range) if absent
    use_window = window if window is not None else obj.default_window
    image = obj.render_rgb(index, use_window, region)
    dataset = obj.dataset(index) if kind != "image" else None
    modality = obj.metadata.get("modality") or None
    return LoadedImage(image.convert("RGB"), path, kind, modality, dataset, index, region, use_window)


def _slide_image(slide: Any, path: Path, region: tuple[int, int, int, int] | None) -> LoadedImage:
    if region is None:
        image = slide.thumbnail((OVERVIEW_SIDE, OVERVIEW_SIDE))
    else:
        x, y, w, h = region  # dicom_io raises RegionError for a region outside the slide
        level = slide.best_level_for_downsample(max(w, h) / MAX_REGION_SIDE)
        ds = slide.level_downsamples[level]
        size = (max(1, round(w / ds)), max(1, round(h / ds)))
        image = slide.read_region((x, y), level, size)
        if max(image.size) > MAX_REGION_SIDE:
            image.thumbnail((MAX_REGION_SIDE, MAX_REGION_SIDE))
    return LoadedImage(image.convert("RGB"), path, "slide", "SM", None, None, region, None)
