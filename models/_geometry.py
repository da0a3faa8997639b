"""Crop geometry and token layout of Dragonfly v1/v2, as pure functions (no torch, no numpy, no PIL).

The processor (how many crops, which ids) and the model (how many visual embeddings) both follow these numbers, so
they live in one place and are testable without weights. Sizes are `(width, height)` throughout, like Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LAYOUTS",
    "TokenLayout",
    "crop_boxes",
    "high_resolution",
    "medium_resolution",
    "select_best_resolution",
    "version_for_crop_size",
]


@dataclass(frozen=True)
class TokenLayout:
    """How one image appears in `input_ids` for one Dragonfly version.

    Attributes:
        crop_size: pixels per crop side (336 / 224).
        n_crops: crops the processor produces per image (41 / 29).
        runs: token count of each run of placeholders; each run is followed by one newline token.
    """

    version: str
    crop_size: int
    n_crops: int
    runs: tuple[int, ...]

    @property
    def n_visual(self) -> int:
        """Visual embeddings per image (2057 / 850): the number of placeholder positions."""
        return sum(self.runs)

    @property
    def block_len(self) -> int:
        """Length of the image block before BOS (2098 / 867): placeholders plus one newline per run."""
        return self.n_visual + len(self.runs)


#: v2: global crop keeps its 577 tokens; 40 other crops each become CLS + 6×6 pooled = 37.
#: v1: 5 low/medium crops + 12 zoom-selected high crops, 50 tokens each.
LAYOUTS: dict[str, TokenLayout] = {
    "v2": TokenLayout("v2", 336, 41, (577,) + (37,) * 40),
    "v1": TokenLayout("v1", 224, 29, (50,) * 17),
}


def version_for_crop_size(size: int) -> str:
    """'v2' for 336-pixel crops, 'v1' for 224; anything else is not a Dragonfly processor."""
    for version, layout in LAYOUTS.items():
        if layout.crop_size == size:
            return version
    raise ValueError(f"crop size {size}: Dragonfly uses 336 (v2) or 224 (v1)")


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


def medium_resolution(original_wh: tuple[int, int], crop: int) -> tuple[int, int]:
    """Medium grid (both versions): 2×2, 1 column × 4 rows or 4 columns × 1 row of crops."""
    return select_best_resolution(original_wh, [(2 * crop, 2 * crop), (crop, 4 * crop), (4 * crop, crop)])


def high_resolution(original_wh: tuple[int, int], crop: int, version: str) -> tuple[int, int]:
    """High grid: v2 = 3 × the medium grid (36 crops); v1 = chosen on its own among 24-crop grids."""
    if version == "v2":
        mid_w, mid_h = medium_resolution(original_wh, crop)
        return 3 * mid_w, 3 * mid_h
    if version == "v1":
        grids = [(6, 4), (4, 6), (3, 8), (8, 3), (2, 12), (12, 2)]
        return select_best_resolution(original_wh, [(c * crop, r * crop) for c, r in grids])
    raise ValueError(f"unknown Dragonfly version {version!r}")


def crop_boxes(size_wh: tuple[int, int], crop: int) -> list[tuple[int, int, int, int]]:
    """Raster-order (row by row, left to right) `(left, top, right, bottom)` boxes tiling an exact multiple of `crop`."""
    width, height = size_wh
    if width % crop or height % crop:
        raise ValueError(f"size {width}x{height} is not a multiple of the crop size {crop}")
    return [(x, y, x + crop, y + crop) for y in range(0, height, crop) for x in range(0, width, crop)]
