"""Header values that make a DICOM image display flat or as a bare threshold, said as warnings.

Why: a RescaleSlope of 0, inf or NaN maps every pixel to one (or an undefined) modality value, and a window whose
width is no more than one stored-value step (e.g. a SIGMOID window of width 1 on CT) can show at most two grey
levels. The pipeline renders what the header says, as it must, but without a word the clinician sees a black or
white square and cannot tell a broken header from an empty image. These checks read the header only (no decoding)
and feed the stack's `.warnings`, which `medapp info`, `medapp render` and the viewer show.
"""

from __future__ import annotations

import math
from typing import Any

from dicom_io.windows import VOI_LUT, Window

__all__ = ["display_warnings"]


def _number(value: Any) -> float | None:
    """The first value of a (possibly multi-valued) numeric element; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
        if value is None:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _rescale_warnings(hdr: Any) -> tuple[list[str], float]:
    out: list[str] = []
    slope = _number(hdr.get("RescaleSlope"))
    intercept = _number(hdr.get("RescaleIntercept"))
    if slope is not None and not math.isfinite(slope):
        out.append(f"RescaleSlope is {slope:g} (or unreadable): modality values are undefined, so the image shows flat")
    elif slope == 0:
        out.append("RescaleSlope is 0: every pixel gets the same modality value, so the image shows flat")
    if intercept is not None and not math.isfinite(intercept):
        out.append(f"RescaleIntercept is {intercept:g} (or unreadable): modality values are undefined, so the image "
                   "shows flat")
    step = abs(slope) if slope is not None and math.isfinite(slope) and slope != 0 else 1.0
    return out, step


def _window_warnings(windows: list[Window], step: float, integer_data: bool) -> list[str]:
    out: list[str] = []
    for i, w in enumerate(windows):
        if w.function == VOI_LUT or not integer_data:
            continue
        if w.width <= step:
            out.append(
                f"the file's window {i + 1} (centre {w.center:g}, width {w.width:g}, {w.function}) spans at most one "
                "stored-value step: the image shows as a two-level threshold (flat when the centre is outside the "
                "data); choose another window or preset"
            )
    return out


def display_warnings(hdr: Any, windows: list[Window]) -> list[str]:
    """Warnings about `hdr` (a frame header) and its `windows` that predict a flat or thresholded display.

    The window check applies to integer pixel data only (stored values one step apart, modality values `slope`
    apart); float pixel data (parametric maps) can legitimately use narrow windows.
    """
    try:
        out, step = _rescale_warnings(hdr)
        integer_data = not any(k in hdr for k in ("FloatPixelData", "DoubleFloatPixelData"))
        colour = int(hdr.get("SamplesPerPixel", 1) or 1) > 1
    except Exception:  # noqa: BLE001 - a header too broken to check is reported by decoding, not here
        return []
    if not colour:
        out.extend(_window_warnings(windows, step, integer_data))
    return out
