"""Microscope arithmetic for the slide viewer: magnification steps and a scale bar with round lengths.

Pathologists think in objective magnification (QuPath, clinical-anchors B.3 #9): 40× ≈ 0.25 µm/px, 20× ≈ 0.5 µm/px.
The slide's own objective power is trusted first; otherwise it is derived from the pixel size (10 µm / mpp).
"""

from __future__ import annotations

import math

__all__ = ["MAG_STEPS", "base_magnification", "step_magnification", "scale_bar", "format_mag"]

MAG_STEPS: tuple[float, ...] = (1.25, 2.5, 5.0, 10.0, 20.0, 40.0)
MICRONS_AT_1X = 10.0  # 1× objective ≈ 10 µm per pixel on a typical scanner (so 40× ≈ 0.25 µm/px)


def base_magnification(objective_power: float | None, mpp: tuple[float, float] | None) -> float | None:
    """Magnification of level 0 when shown 1:1, or None when the slide states neither power nor pixel size."""
    if objective_power and objective_power > 0:
        return float(objective_power)
    if mpp and mpp[0] and mpp[0] > 0:
        return MICRONS_AT_1X / float(mpp[0])
    return None


def step_magnification(current: float, direction: int, base: float) -> float:
    """The next step up (direction > 0) or down from `current`, limited to what the slide can show (up to 2×
    its base — one step of digital zoom past the scan — and down to the smallest step)."""
    top = base * 2.0
    steps = [m for m in MAG_STEPS if m <= top + 1e-9] or [MAG_STEPS[0]]
    if direction > 0:
        bigger = [m for m in steps if m > current * 1.001]
        return bigger[0] if bigger else steps[-1]
    smaller = [m for m in steps if m < current / 1.001]
    return smaller[-1] if smaller else steps[0]


def scale_bar(um_per_screen_px: float, target_px: float = 120.0) -> tuple[float, float, str]:
    """A bar near `target_px` long whose length is 1, 2 or 5 × 10^k µm: (length µm, length px, label)."""
    if um_per_screen_px <= 0 or not math.isfinite(um_per_screen_px):
        raise ValueError(f"microns per pixel must be positive, got {um_per_screen_px}")
    ideal = um_per_screen_px * target_px
    exponent = math.floor(math.log10(ideal))
    best = None
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        length = mantissa * 10.0**exponent
        if length <= ideal * 1.0001:
            best = length
    length = best if best is not None else 10.0**exponent
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length:g} µm"
    return length, length / um_per_screen_px, label


def format_mag(mag: float) -> str:
    return f"{mag:.2f}".rstrip("0").rstrip(".") + "×"
