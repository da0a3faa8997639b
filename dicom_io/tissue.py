"""Find tissue on a slide: tiles to caption or show first, chosen from a low-resolution overview.

A pixel is tissue when it is coloured (HSV saturation above `SAT_THRESHOLD`) and not near-white glass nor black
(pen marks, slide edges are dark and unsaturated). Stained tissue (H&E, IHC) is saturated while glass and dust are
not, so this simple rule is the usual first step of pathology pipelines. Tiles are ranked by tissue fraction.
"""

from __future__ import annotations

import numpy as np

from dicom_io.slide import Slide

SAT_THRESHOLD = 0.08
MIN_VALUE, MAX_VALUE = 0.15, 0.92
MIN_FRACTION = 0.5
# The overview resolves each candidate tile with about this many pixels per side, within these bounds.
OVERVIEW_PX_PER_TILE = 8
OVERVIEW_MIN, OVERVIEW_MAX = 512, 4096


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of tissue pixels in an (H, W, 3) uint8 image."""
    x = rgb.astype(np.float32) / 255.0
    mx, mn = x.max(axis=2), x.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return (sat > SAT_THRESHOLD) & (mx > MIN_VALUE) & (mn < MAX_VALUE)


def tissue_tiles(
    slide: Slide, tile_px: int, n: int, *, level: int = 0, min_fraction: float = MIN_FRACTION
) -> list[tuple[int, int, int, int, int]]:
    """Up to `n` non-overlapping tiles of `tile_px` pixels at `level` that are mostly tissue, best first.

    Returns (x, y, level, w, h) with x, y in level-0 coordinates (what `Slide.read_region` takes) and w, h the tile
    size at `level`. Ties are broken by position (top-left first), so the result is deterministic.
    """
    if tile_px <= 0 or n <= 0:
        return []
    W, H = slide.level_dimensions[0]
    step0 = tile_px * slide.level_downsamples[level]  # tile edge in level-0 pixels
    side = int(min(OVERVIEW_MAX, max(OVERVIEW_MIN, OVERVIEW_PX_PER_TILE * max(W, H) / step0)))
    overview = np.asarray(slide.thumbnail(side))
    mask = tissue_mask(overview)
    oh, ow = mask.shape
    sx, sy = ow / W, oh / H  # overview pixels per level-0 pixel
    scored: list[tuple[float, int, int]] = []
    for ty in range(int(H // step0)):
        for tx in range(int(W // step0)):
            x0, y0 = tx * step0, ty * step0
            sub = mask[int(y0 * sy) : max(int((y0 + step0) * sy), int(y0 * sy) + 1),
                       int(x0 * sx) : max(int((x0 + step0) * sx), int(x0 * sx) + 1)]  # fmt: skip
            frac = float(sub.mean()) if sub.size else 0.0
            if frac >= min_fraction:
                scored.append((frac, int(y0), int(x0)))
    scored.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(x, y, level, tile_px, tile_px) for _f, y, x in scored[:n]]
