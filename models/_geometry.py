"""Crop geometry of Dragonfly, as pure functions of a `models.variants.Variant` (no torch, no numpy, no PIL).

The grids come from the variant table, so the processor's crops and the token counts (`variants.image_token_runs`)
follow the same numbers and are testable without weights. Sizes are `(width, height)` throughout, like Pillow.
"""

from __future__ import annotations

from models.variants import Variant

__all__ = ["crop_boxes", "grid_sizes", "high_resolution", "medium_resolution", "select_best_resolution"]


def select_best_resolution(original_wh: tuple[int, int], candidates: list[tuple[int, int]]) -> tuple[int, int]:
    """LLaVA-NeXT best fit: most effective pixels after an aspect-preserving fit, then least waste; ties → earlier.

    Args:
        original_wh: `(width, height)` of the image.
        candidates: `(width, height)` target resolutions, in priority order.
    """
    width, height = original_wh
    best = None
    best_effective, best_wasted = -1, float("inf")
    for cand_w, cand_h in candidates:
        scale = min(cand_w / width, cand_h / height)
        down_w, down_h = int(width * scale), int(height * scale)
        effective = min(down_w * down_h, width * height)
        wasted = cand_w * cand_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (cand_w, cand_h), effective, wasted
    assert best is not None, "no candidate resolutions"
    return best


def medium_resolution(original_wh: tuple[int, int], variant: Variant) -> tuple[int, int]:
    """Medium grid in pixels: the best fit among the variant's medium grids (2×2, 1 column × 4 rows, 4 × 1)."""
    crop = variant.crop_size
    return select_best_resolution(original_wh, [(c * crop, r * crop) for c, r in variant.medium_grids])


def high_resolution(original_wh: tuple[int, int], variant: Variant) -> tuple[int, int]:
    """High grid in pixels: chosen on its own among `variant.high_grids` (v1), else `high_scale` × the medium grid."""
    crop = variant.crop_size
    if variant.high_grids:
        return select_best_resolution(original_wh, [(c * crop, r * crop) for c, r in variant.high_grids])
    mid_w, mid_h = medium_resolution(original_wh, variant)
    return variant.high_scale * mid_w, variant.high_scale * mid_h


def grid_sizes(original_wh: tuple[int, int], variant: Variant) -> list[tuple[int, int]]:
    """The three target sizes `(width, height)` the image is stretched to: global crop, medium grid, high grid."""
    s = variant.crop_size
    return [(s, s), medium_resolution(original_wh, variant), high_resolution(original_wh, variant)]


def crop_boxes(size_wh: tuple[int, int], crop: int) -> list[tuple[int, int, int, int]]:
    """Raster-order (row by row, left to right) `(left, top, right, bottom)` boxes tiling an exact multiple of `crop`."""
    width, height = size_wh
    if width % crop or height % crop:
        raise ValueError(f"size {width}x{height} is not a multiple of the crop size {crop}")
    return [(x, y, x + crop, y + crop) for y in range(0, height, crop) for x in range(0, width, crop)]
