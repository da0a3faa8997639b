"""Measurements on images and slides, Qt-free: ruler, angle, rectangle / ellipse / freehand ROI, text notes.

Why here and not in the viewer: a length, an area and an ROI mean are clinical numbers. They must be the same in
the window, in the session file and in the report's Findings, and they are tested without a screen.

Coordinates: every point is in image pixels of one frame (slides: level-0 pixels), pixel (i, j) covering
[i, i+1) × [j, j+1) — the viewers' scene coordinates. A point (10.5, 3.5) is the centre of pixel (10, 3).

Calibration (`calibration_for`): DICOM (0028,0030) PixelSpacing (row, column spacing in mm) when present; else
(0018,1164) ImagerPixelSpacing, which is the spacing *at the detector*: a projection radiograph magnifies the
patient, so sizes measured with it are too large by the (unknown) magnification factor and the caveat says so;
slides use the scanner's µm per pixel; with none of these, lengths are in "px" and nothing pretends to be mm.

ROI statistics (`roi_stats`) are computed on the *modality values* (after the Modality LUT: HU for CT), never on the
windowed display pixels, over the pixels whose centre lies inside the shape (an exact point-in-shape test at pixel
centres, so a 10 × 10 px rectangle drawn on pixel edges holds exactly 100 pixels). SD is the population standard
deviation (numpy's default, ddof=0), the convention of most viewers' ROI readouts.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

__all__ = [
    "KINDS",
    "AREA_KINDS",
    "KIND_TITLES",
    "Calibration",
    "Measurement",
    "MeasurementStore",
    "calibration_for",
    "value_unit",
    "document_key",
    "length",
    "angle_degrees",
    "area",
    "roi_mask",
    "roi_stats",
    "with_stats",
    "describe",
    "label_lines",
    "findings_text",
    "insert_into_findings",
]

KINDS = ("ruler", "angle", "rect", "ellipse", "freehand", "text")
AREA_KINDS = ("rect", "ellipse", "freehand")
KIND_TITLES = {"ruler": "Ruler", "angle": "Angle", "rect": "Rectangle", "ellipse": "Ellipse",
               "freehand": "Freehand", "text": "Note"}
#: the number of points each kind is made of (freehand: at least 3)
N_POINTS = {"ruler": 2, "angle": 3, "rect": 2, "ellipse": 2, "text": 1}

DETECTOR_CAVEAT = ("calibrated at the detector plane, not corrected for geometric magnification; true sizes at the "
                   "patient are smaller")
UNCALIBRATED_NOTE = "no pixel spacing in the file: sizes are in pixels"

Point = tuple[float, float]


# --- calibration --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """Physical size of one pixel: `sx` across (columns), `sy` down (rows), in `unit` ("mm", "µm" or "px")."""

    sx: float = 1.0
    sy: float = 1.0
    unit: str = "px"
    source: str = "none"  # "PixelSpacing", "ImagerPixelSpacing", "slide mpp" or "none"
    caveat: str = ""  # shown beside every calibrated value that is not the patient's true size

    @property
    def calibrated(self) -> bool:
        return self.unit != "px"

    def describe(self) -> str:
        """One line for the panel: what a pixel is and where that comes from."""
        if not self.calibrated:
            return f"Not calibrated — {UNCALIBRATED_NOTE}."
        text = f"{_num(self.sx, 4)} × {_num(self.sy, 4)} {self.unit}/px ({self.source})"
        return f"{text} — {self.caveat}." if self.caveat else text


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def _pair(value: Any) -> tuple[float, float] | None:
    """Two positive finite floats from a DICOM multi-value / list, else None."""
    try:
        items = [float(v) for v in list(value)[:2]]
    except (TypeError, ValueError):
        return None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or not all(math.isfinite(v) and v > 0 for v in items):
        return None
    return items[0], items[1]


def calibration_for(document: Any) -> Calibration:
    """The calibration of `document` (an ImageStack or a Slide) from what dicom_io read out of it."""
    if document is None:
        return Calibration()
    if getattr(document, "kind", "") == "slide":
        mpp = _pair(getattr(document, "mpp", None) or ())
        return Calibration(mpp[0], mpp[1], "µm", "slide mpp") if mpp else Calibration()
    meta = getattr(document, "metadata", None) or {}
    spacing = _pair(meta.get("pixel_spacing_mm") or ())
    if spacing is not None:  # DICOM order: row spacing (down), then column spacing (across)
        return Calibration(spacing[1], spacing[0], "mm", "PixelSpacing")
    imager = _pair(meta.get("imager_pixel_spacing_mm") or ())
    if imager is not None:
        return Calibration(imager[1], imager[0], "mm", "ImagerPixelSpacing", DETECTOR_CAVEAT)
    return Calibration()


def value_unit(document: Any) -> str:
    """The unit of the modality values an ROI is measured in: "HU" for CT, else none known ("")."""
    meta = getattr(document, "metadata", None) or {}
    return "HU" if str(meta.get("modality") or "").upper() == "CT" else ""


def document_key(document: Any) -> str | None:
    """What measurements are kept under (session and store): the document's path, as the session spells paths."""
    path = getattr(document, "path", None)
    return str(Path(path)) if path is not None else None


# --- the measurement ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One drawn measurement. `points` in image pixels of `frame` (slides: level-0 px, frame 0); `label` is the
    text of a note (kind "text") or the name the clinician gave a measurement ("lesion 1"); `stats` the ROI statistics on the frame's modality values, taken when it was drawn
    (the pixels do not change, and the panel lists measurements of frames that are not decoded now)."""

    kind: str
    points: tuple[Point, ...]
    frame: int = 0
    label: str = ""
    stats: dict[str, float] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement kind {self.kind!r}")
        points = tuple((float(x), float(y)) for x, y in self.points)
        if not all(math.isfinite(v) for p in points for v in p):
            raise ValueError("measurement points must be finite")
        need = N_POINTS.get(self.kind, 3)
        if len(points) < need or (self.kind != "freehand" and len(points) != need):
            raise ValueError(f"a {self.kind} needs {need} point(s), got {len(points)}")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "frame", int(self.frame))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = [list(p) for p in self.points]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        stats = data.get("stats")
        return cls(
            kind=str(data["kind"]),
            points=tuple((float(p[0]), float(p[1])) for p in data["points"]),
            frame=int(data.get("frame", 0)),
            label=str(data.get("label", "")),
            stats={str(k): float(v) for k, v in stats.items()} if isinstance(stats, dict) else None,
            id=str(data.get("id") or uuid.uuid4().hex[:12]),
        )


# --- geometry -----------------------------------------------------------------------------------------------------
def length(p: Point, q: Point, cal: Calibration) -> float:
    """Distance from `p` to `q` in `cal.unit` (anisotropic pixels scale each axis)."""
    return math.hypot((q[0] - p[0]) * cal.sx, (q[1] - p[1]) * cal.sy)


def angle_degrees(a: Point, vertex: Point, c: Point, cal: Calibration) -> float:
    """The angle a–vertex–c in degrees (0…180), in physical space: non-square pixels change angles too."""
    u = ((a[0] - vertex[0]) * cal.sx, (a[1] - vertex[1]) * cal.sy)
    v = ((c[0] - vertex[0]) * cal.sx, (c[1] - vertex[1]) * cal.sy)
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return 0.0
    cos = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return math.degrees(math.acos(cos))


def _polygon_area_px(points: Sequence[Point]) -> float:
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2.0)


def area(m: Measurement, cal: Calibration) -> float | None:
    """The area of an ROI in `cal.unit`² (the drawn shape, not its pixel count); None for other kinds."""
    if m.kind not in AREA_KINDS:
        return None
    if m.kind == "freehand":
        px = _polygon_area_px(m.points)
    else:
        (x0, y0), (x1, y1) = m.points
        px = abs(x1 - x0) * abs(y1 - y0)
        if m.kind == "ellipse":
            px *= math.pi / 4.0
    return px * cal.sx * cal.sy


def _polygon_mask(rows: np.ndarray, cols: np.ndarray, poly: Sequence[Point]) -> np.ndarray:
    """Even-odd rule at the pixel centres `rows` × `cols` (y and x of the centres), one scanline pass per edge:
    an edge only touches the rows it spans, so a long freehand outline costs about two passes over its box."""
    inside = np.zeros((rows.size, cols.size), dtype=bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if y1 == y2:
            continue
        hit = np.nonzero((y1 > rows) != (y2 > rows))[0]
        if hit.size == 0:
            continue
        x_at = x1 + (rows[hit] - y1) * (x2 - x1) / (y2 - y1)
        inside[hit] ^= cols[None, :] < x_at[:, None]
    return inside


def roi_mask(m: Measurement, shape: tuple[int, ...]) -> tuple[slice, slice, np.ndarray] | None:
    """Pixels of an (H, W) image whose centre lies in the ROI: (row slice, column slice, boolean mask of that
    bounding box), or None when the ROI covers no pixel centre of the image. Only the bounding box is allocated."""
    if m.kind not in AREA_KINDS:
        return None
    height, width = int(shape[0]), int(shape[1])
    xs = [p[0] for p in m.points]
    ys = [p[1] for p in m.points]
    c0, c1 = max(0, math.floor(min(xs))), min(width, math.ceil(max(xs)))
    r0, r1 = max(0, math.floor(min(ys))), min(height, math.ceil(max(ys)))
    if c1 <= c0 or r1 <= r0:
        return None
    row_centres, col_centres = np.arange(r0, r1) + 0.5, np.arange(c0, c1) + 0.5
    cy, cx = row_centres[:, None], col_centres[None, :]
    if m.kind == "rect":
        mask = (cx >= min(xs)) & (cx <= max(xs)) & (cy >= min(ys)) & (cy <= max(ys))
    elif m.kind == "ellipse":
        a, b = (max(xs) - min(xs)) / 2.0, (max(ys) - min(ys)) / 2.0
        if a <= 0 or b <= 0:
            return None
        mx, my = (max(xs) + min(xs)) / 2.0, (max(ys) + min(ys)) / 2.0
        mask = ((cx - mx) / a) ** 2 + ((cy - my) / b) ** 2 <= 1.0
    else:
        mask = _polygon_mask(row_centres, col_centres, m.points)
    mask = np.broadcast_to(mask, (r1 - r0, c1 - c0))
    if not mask.any():
        return None
    return slice(r0, r1), slice(c0, c1), mask


def roi_stats(values: np.ndarray, m: Measurement) -> dict[str, float] | None:
    """Statistics of the modality values under the ROI: n, mean, sd (population), min, max for a grey frame;
    n and the mean of each channel (mean_r, mean_g, mean_b) for a colour one. None when no pixel is inside."""
    arr = np.asarray(values)
    cut = roi_mask(m, arr.shape)
    if cut is None:
        return None
    rows, cols, mask = cut
    picked = arr[rows, cols][mask]
    if arr.ndim == 3:
        means = picked.reshape(len(picked), -1).astype(np.float64).mean(axis=0)
        out = {"n": float(len(picked))}
        out.update({f"mean_{c}": float(v) for c, v in zip("rgb", means[:3], strict=False)})
        return out
    data = picked.astype(np.float64)
    return {"n": float(data.size), "mean": float(data.mean()), "sd": float(data.std()),
            "min": float(data.min()), "max": float(data.max())}


def with_stats(m: Measurement, values: np.ndarray | None) -> Measurement:
    """`m` with its ROI statistics filled from `values` (the frame's modality values); unchanged otherwise."""
    if m.kind not in AREA_KINDS or values is None:
        return m
    return replace(m, stats=roi_stats(values, m))


# --- text ---------------------------------------------------------------------------------------------------------
def _length_text(value: float, cal: Calibration) -> str:
    if cal.unit == "µm" and value >= 1000.0:
        return f"{value / 1000.0:.2f} mm"
    if cal.unit == "px":
        return f"{value:.1f} px"
    return f"{value:.1f} {cal.unit}"


def _area_text(value: float, cal: Calibration) -> str:
    if cal.unit == "µm":
        return f"{value / 1e6:.3f} mm²" if value >= 1e6 else f"{value:.0f} µm²"
    if cal.unit == "mm" and value >= 1000.0:
        return f"{value / 100.0:.2f} cm²"
    return f"{value:.1f} {cal.unit}²"


def _value(v: float) -> str:
    return f"{v:.1f}" if abs(v) < 1e5 else f"{v:.4g}"


def _stats_lines(stats: dict[str, float] | None, unit: str) -> list[str]:
    if not stats:
        return []
    suffix = f" {unit}" if unit else ""
    if "mean" in stats:
        return [f"mean {_value(stats['mean'])}{suffix}, SD {_value(stats['sd'])}",
                f"min {_value(stats['min'])}, max {_value(stats['max'])}{suffix}"]
    if "mean_r" in stats:
        return ["mean RGB " + "/".join(f"{stats.get(f'mean_{c}', 0.0):.0f}" for c in "rgb")]
    return []


def _value_lines(m: Measurement, cal: Calibration, unit: str) -> list[str]:
    if m.kind == "ruler":
        return [_length_text(length(m.points[0], m.points[1], cal), cal)]
    if m.kind == "angle":
        return [f"{angle_degrees(m.points[0], m.points[1], m.points[2], cal):.1f}°"]
    value = area(m, cal)
    return [f"area {_area_text(value or 0.0, cal)}"] + _stats_lines(m.stats, unit)


def label_lines(m: Measurement, cal: Calibration, unit: str = "") -> list[str]:
    """What is written beside the shape on screen: the value first (after its name, if the clinician gave it one;
    marked "(at detector)" when only ImagerPixelSpacing calibrates it), then the ROI statistics; a note is its text."""
    if m.kind == "text":
        return [m.label]
    lines = _value_lines(m, cal, unit)
    if cal.caveat and m.kind != "angle":  # the image alone must not pass a detector size for the patient's
        lines[0] += " (at detector)"
    if m.label:
        lines[0] = f"{m.label}: {lines[0]}"
    return lines


def describe(m: Measurement, cal: Calibration, unit: str = "") -> str:
    """One line: "Ruler: 10.0 mm", "Ruler (lesion 1): 10.0 mm",
    "Ellipse: area 78.5 mm², mean 40.2 HU, SD 3.1, min 30.0, max 50.0 HU"."""
    if m.kind == "text":
        return f"Note: {m.label}"
    name = f"{KIND_TITLES[m.kind]} ({m.label})" if m.label else KIND_TITLES[m.kind]
    return f"{name}: " + ", ".join(_value_lines(m, cal, unit))


def findings_text(measurements: Iterable[Measurement], cal: Calibration, unit: str = "", *,
                  n_frames: int = 1) -> str:
    """The measurements as Findings lines ("Ruler: 10.0 mm (image 3)"), in frame order, with the calibration
    caveat or the "pixels" note when it applies. Images are numbered from 1, as the overlay shows them."""
    items = sorted(measurements, key=lambda m: m.frame)
    lines = []
    for m in items:
        where = f" (image {m.frame + 1})" if n_frames > 1 else ""
        lines.append(f"{describe(m, cal, unit)}{where}.")
    if not lines:
        return ""
    measured = any(m.kind != "text" for m in items)
    if measured and cal.caveat:
        lines.append(f"Sizes from {cal.source}: {cal.caveat}.")
    elif measured and not cal.calibrated and any(m.kind not in ("angle", "text") for m in items):
        lines.append(f"Note: {UNCALIBRATED_NOTE}.")
    return "\n".join(lines)


def insert_into_findings(report: Any, text: str, modality: str | None = None, *, edited: bool = True) -> Any:
    """Append `text` to the Findings of `report` (a `reports.Report`), or start a report with it when there is
    none (`modality` picks the template). The section counts as the clinician's words (they drew the measurements)
    unless `edited` is False: lines carried into a fresh AI draft leave its Findings flagged as unreviewed AI text."""
    if report is None:
        from reports.model import Report
        from reports.templates import template_for

        report = Report.from_template(template_for(modality), {}, modality=modality or "")
    old = report.text("findings").rstrip()
    # lines Findings already holds are not added again (pressing Insert twice, or again after one more measurement,
    # doubled every earlier line); counted, so two equal measurements still give two lines
    have = Counter(line.strip() for line in old.splitlines())
    new_lines = []
    for line in text.splitlines():
        if have[line.strip()] > 0:
            have[line.strip()] -= 1
        elif line.strip():
            new_lines.append(line)
    if not new_lines:
        return report  # unchanged: a signed report stays signed
    added = "\n".join(new_lines)
    report.set_section("findings", f"{old}\n{added}" if old else added)
    if edited:
        report.mark_edited("findings")
    return report


def kept_measurement_lines(findings: str, measurement_text: str) -> str:
    """The lines of `measurement_text` (the document's measurements as `findings_text` writes them) that `findings`
    still holds, in their order: what the clinician inserted and kept. A new AI draft replaces Findings; these lines
    are carried into it, so regenerating never silently drops a size the clinician measured."""
    have = Counter(line.strip() for line in findings.splitlines() if line.strip())
    kept = []
    for line in measurement_text.splitlines():
        if have[line.strip()] > 0:
            have[line.strip()] -= 1
            kept.append(line)
    return "\n".join(kept)


# --- the live store -----------------------------------------------------------------------------------------------
class MeasurementStore:
    """Measurements per document (`document_key`), for the window: viewers draw them, the panel lists them, the
    window saves them to the session. `changed(key)` fires after every change to that document's list."""

    changed = Signal(str)

    def __init__(self) -> None:
        self._items: dict[str, list[Measurement]] = {}

    def items(self, key: str | None, frame: int | None = None) -> list[Measurement]:
        """A copy of `key`'s measurements (only those of `frame` when given), in the order they were drawn."""
        if key is None:
            return []
        items = self._items.get(key, [])
        return [m for m in items if frame is None or m.frame == frame]

    def has(self, key: str) -> bool:
        return key in self._items

    def add(self, key: str, m: Measurement) -> None:
        self._items.setdefault(key, []).append(m)
        self.changed.emit(key)

    def update(self, key: str, m: Measurement) -> None:
        """Replace the measurement with `m.id` (stats filled in later, a renamed note)."""
        items = self._items.get(key, [])
        self._items[key] = [m if old.id == m.id else old for old in items]
        self.changed.emit(key)

    def remove(self, key: str, measurement_id: str) -> None:
        self._items[key] = [m for m in self._items.get(key, []) if m.id != measurement_id]
        self.changed.emit(key)

    def clear(self, key: str) -> None:
        self._items[key] = []
        self.changed.emit(key)

    def load(self, key: str, items: Iterable[Measurement]) -> None:
        """Set `key`'s list (from the session)."""
        self._items[key] = list(items)
        self.changed.emit(key)
