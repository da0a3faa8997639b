"""The display transform (rotate / flip) and what it implies, without Qt: orientation markers and linked slices.

Why here and not in the viewer: the letters at the image edges are a clinical statement ("this edge is the
patient's left"), so they are computed from ImageOrientationPatient by plain functions that are tested with
axial, coronal, sagittal and oblique vectors; the viewer only draws the strings.

The transform is (rotation, flip_h, flip_v) as held by `medapp.viewer_state.ViewerState`: the image is first
mirrored (flip_h about the vertical axis, flip_v about the horizontal one), then rotated clockwise by `rotation`
degrees (0 / 90 / 180 / 270). `ViewerState`'s methods keep that normal form when the user flips a rotated image,
so "flip horizontal" always mirrors what is on screen left-to-right.

Image coordinates are the core's: x to the right along a row (the IOP row vector), y down along a column (the IOP
column vector). Patient coordinates are DICOM's LPS: +x = patient Left, +y = Posterior, +z = Head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "OBLIQUE_MIN",
    "display_matrix",
    "screen_axes",
    "direction_letters",
    "orientation_markers",
    "image_orientation",
    "slice_positions",
    "linked_frame",
]

#: A patient axis is named at an edge when its share of the edge's direction exceeds this cosine (≈ 14.5°): a
#: slightly tilted axial slice stays "R / L / A / P", a clearly oblique one reads e.g. "RA" (major axis first).
OBLIQUE_MIN = 0.25

_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))  # (negative, positive) along LPS x, y, z


def display_matrix(rotation: int = 0, flip_h: bool = False, flip_v: bool = False) -> np.ndarray:
    """The 2×2 matrix taking an image direction (x right, y down) to its screen direction."""
    flip = np.diag([-1.0 if flip_h else 1.0, -1.0 if flip_v else 1.0])
    quarter = (int(rotation) // 90) % 4
    rot = np.eye(2)
    step = np.array([[0.0, -1.0], [1.0, 0.0]])  # clockwise on a y-down screen: right → down, down → left
    for _ in range(quarter):
        rot = step @ rot
    return rot @ flip


def screen_axes(rotation: int = 0, flip_h: bool = False, flip_v: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(image direction shown towards screen right, image direction shown towards screen bottom)."""
    inverse = np.linalg.inv(display_matrix(rotation, flip_h, flip_v))
    return inverse @ np.array([1.0, 0.0]), inverse @ np.array([0.0, 1.0])


def direction_letters(vector: Sequence[float], threshold: float = OBLIQUE_MIN) -> str:
    """Patient-direction letters for an LPS vector, largest component first ("L", "LA", "HRP" ...)."""
    v = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(v))
    if v.shape != (3,) or not np.isfinite(v).all() or norm < 1e-9:
        return ""
    v = v / norm
    order = np.argsort(-np.abs(v), kind="stable")
    return "".join(_LETTERS[i][1 if v[i] > 0 else 0] for i in order if abs(v[i]) > threshold)


def orientation_markers(
    iop: Sequence[float] | None, rotation: int = 0, flip_h: bool = False, flip_v: bool = False
) -> dict[str, str] | None:
    """Letters for the "left", "right", "top" and "bottom" screen edges, or None when the orientation is unknown.

    `iop` is ImageOrientationPatient (row vector, column vector; six floats). Rotating or flipping the display
    moves the letters with the anatomy, so the markers are always right about what is on screen.
    """
    if iop is None:
        return None
    try:
        values = np.asarray([float(v) for v in iop], dtype=float)
    except (TypeError, ValueError):
        return None
    if values.shape != (6,) or not np.isfinite(values).all():
        return None
    row, col = values[:3], values[3:]
    if np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6:
        return None
    right_img, down_img = screen_axes(rotation, flip_h, flip_v)
    right = right_img[0] * row + right_img[1] * col
    down = down_img[0] * row + down_img[1] * col
    return {
        "right": direction_letters(right),
        "left": direction_letters(-right),
        "bottom": direction_letters(down),
        "top": direction_letters(-down),
    }


def image_orientation(document: Any, frame: int = 0) -> list[float] | None:
    """ImageOrientationPatient of `frame` of an ImageStack: the frame's own header when it has one (a series whose
    slices differ, e.g. a localizer), else the stack's metadata (dicom_io reads it from the header or the enhanced
    multi-frame functional groups), else None (plain pictures, secondary captures without geometry)."""
    dataset = getattr(document, "dataset", None)
    if dataset is not None:
        try:
            header = dataset(frame)
            values = [float(v) for v in header.ImageOrientationPatient] if header is not None else None
        except Exception:  # noqa: BLE001 — no or unreadable geometry in this header: fall back to the metadata
            values = None
        if values is not None and len(values) == 6:
            return values
    meta = getattr(document, "metadata", None) or {}
    iop = meta.get("image_orientation")
    if iop is not None and len(iop) == 6:
        try:
            return [float(v) for v in iop]
        except (TypeError, ValueError):
            return None
    return None


def slice_positions(document: Any) -> list[float] | None:
    """Where each frame lies along the stack's normal (mm), or None when any frame lacks the geometry.

    Uses ImagePositionPatient and ImageOrientationPatient of each frame's header (a series reads headers only, no
    pixels). Linked scrolling compares these between two series, which is correct for series of the same patient
    in the same frame of reference (a prior and a current study on the same scanner table coordinates).
    """
    n = int(getattr(document, "n_frames", 0) or 0)
    dataset = getattr(document, "dataset", None)
    if n < 1 or dataset is None:
        return None
    positions: list[float] = []
    first_header = None
    for frame in range(n):
        try:
            header = dataset(frame)
        except Exception:  # noqa: BLE001 — an unreadable header means "no geometry", never a failed scroll
            return None
        if header is None:
            return None
        if n > 1 and header is first_header:
            return None  # one header for many frames (multi-frame file): no per-frame position here
        first_header = first_header if first_header is not None else header
        try:
            iop = np.asarray([float(v) for v in header.ImageOrientationPatient], dtype=float)
            ipp = np.asarray([float(v) for v in header.ImagePositionPatient], dtype=float)
        except (AttributeError, TypeError, ValueError):
            return None
        if iop.shape != (6,) or ipp.shape != (3,):
            return None
        normal = np.cross(iop[:3], iop[3:])
        if np.linalg.norm(normal) < 1e-6:
            return None
        positions.append(float(np.dot(normal / np.linalg.norm(normal), ipp)))
    return positions


def linked_frame(
    source_frame: int,
    source_positions: Sequence[float] | None,
    target_positions: Sequence[float] | None,
    target_n_frames: int,
) -> int:
    """The target frame that shows the same place as `source_frame` of the source (linked scrolling).

    With positions on both sides: the target slice nearest in position. Otherwise the same index, clamped (what
    Weasis does for series without geometry), so two cine loops or two plain stacks still scroll together.
    """
    if target_n_frames < 1:
        return 0
    if source_positions and target_positions and 0 <= source_frame < len(source_positions):
        where = source_positions[source_frame]
        return int(np.argmin(np.abs(np.asarray(target_positions, dtype=float) - where)))
    return max(0, min(target_n_frames - 1, int(source_frame)))
