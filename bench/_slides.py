"""Synthetic whole-slide pyramids written tile by tile: the one builder the slide bench and the tests share.

Why tile by tile: the bench slide is 100 000 × 80 000 px (24 GB as raw RGB), so no level may ever exist in memory.
The slide is described by a coarse *block mask* (one entry per level-0 tile): 0 = glass, 1 = tissue, 2 = "planted"
tissue of a different texture. Level-0 tiles are JPEG-encoded once per distinct content (white glass, a few tissue
variants, the planted texture) and the encoded bytes are handed to tifffile over and over, so a gigapixel slide
costs little more than writing its bytes. Coarser levels compose each tile from the mask (nearest-neighbour
upsampled) and encode only tiles that hold tissue. The TIFF is a generic tiled pyramid (OpenSlide "generic-tiff")
with the pixel size in the resolution tags, like the session fixtures in tests/conftest.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["GLASS", "PLANTED", "TISSUE", "blob_mask", "write_block_slide"]

GLASS, TISSUE, PLANTED = 0, 1, 2
_GLASS_RGB = (243, 241, 246)


def _texture(kind: int, size: int, seed: int) -> np.ndarray:
    """RGB uint8 tile: H&E-like pink tissue with sparse purple nuclei, or the planted dense dark-blue texture."""
    rng = np.random.default_rng(seed)
    if kind == GLASS:
        img = np.empty((size, size, 3), np.uint8)
        img[:] = _GLASS_RGB
        return img
    if kind == TISSUE:
        img = np.empty((size, size, 3), np.uint8)
        img[:] = (226, 152, 192)
        nuclei = rng.random((size, size)) < 0.03
        img[nuclei] = (112, 62, 152)
    else:  # planted: dense, dark, blue-violet stripes and dots (looks nothing like the rest)
        yy, xx = np.mgrid[0:size, 0:size]
        img = np.empty((size, size, 3), np.uint8)
        img[:] = (150, 110, 200)
        stripes = ((xx + yy) // 6) % 2 == 0
        img[stripes] = (52, 30, 118)
        img[rng.random((size, size)) < 0.2] = (30, 20, 80)
    noise = rng.integers(-5, 6, size=(size, size, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _jpeg(tile: np.ndarray, quality: int = 85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, "JPEG", quality=quality, subsampling=2)  # 4:2:0 YCbCr, what the tags announce
    return buf.getvalue()


def blob_mask(cols: int, rows: int, blobs: list[tuple[float, float, float]], planted: list[tuple[int, int]] = ()) -> np.ndarray:
    """`(rows, cols)` block mask with elliptic tissue `blobs` ((cx, cy, r) as fractions) and planted blocks."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    fx, fy = (xx + 0.5) / cols, (yy + 0.5) / rows
    mask = np.zeros((rows, cols), np.uint8)
    for cx, cy, r in blobs:
        mask[(fx - cx) ** 2 + (fy - cy) ** 2 < r * r] = TISSUE
    for bx, by in planted:
        mask[by, bx] = PLANTED
    return mask


def _level_tiles(mask: np.ndarray, tile: int, factor: int, variants: dict[int, list[np.ndarray]],
                 encoded: dict[int, list[bytes]]) -> Iterator[bytes]:
    """Encoded tiles (raster order) of the level whose downsample is `factor` (a power of two ≥ 1)."""
    rows, cols = mask.shape
    lrows, lcols = -(-rows // factor), -(-cols // factor)
    white = encoded[GLASS][0]
    for ty in range(lrows):
        for tx in range(lcols):
            block = mask[ty * factor : (ty + 1) * factor, tx * factor : (tx + 1) * factor]
            if factor == 1:
                kind = int(block[0, 0])
                choices = encoded[kind]
                yield choices[(tx * 7 + ty * 13) % len(choices)]
                continue
            if not block.any():
                yield white
                continue
            # compose: each level-0 block becomes a (tile/factor)-px square of its texture
            cell = max(1, tile // factor)
            out = np.empty((tile, tile, 3), np.uint8)
            out[:] = _GLASS_RGB
            for by in range(block.shape[0]):
                for bx in range(block.shape[1]):
                    kind = int(block[by, bx])
                    if kind != GLASS:
                        tex = variants[kind][0]
                        out[by * cell : (by + 1) * cell, bx * cell : (bx + 1) * cell] = tex[: cell, : cell]
            yield _jpeg(out)


def write_block_slide(path: str | Path, mask: np.ndarray, *, tile: int = 512, mpp: float = 0.25,
                      n_levels: int | None = None, level_factor: int = 4, seed: int = 0) -> Path:
    """Write a generic tiled pyramid TIFF whose level 0 is `mask` blown up to `tile` px per block.

    Levels have downsamples 1, level_factor, level_factor², … down to a level of at most ~2048 px (or `n_levels`).
    Returns the path. Level-0 size = (cols × tile, rows × tile).
    """
    import tifffile

    path = Path(path)
    rows, cols = mask.shape
    width, height = cols * tile, rows * tile
    variants = {GLASS: [_texture(GLASS, tile, seed)],
                TISSUE: [_texture(TISSUE, tile, seed + k) for k in range(4)],
                PLANTED: [_texture(PLANTED, tile, seed + 100 + k) for k in range(2)]}
    encoded = {k: [_jpeg(v) for v in vs] for k, vs in variants.items()}
    factors = [1]
    while (n_levels is None and max(width, height) // factors[-1] > 2048) or (n_levels and len(factors) < n_levels):
        factors.append(factors[-1] * level_factor)
    res = 1e4 / mpp  # pixels per cm
    with tifffile.TiffWriter(path, bigtiff=width * height > 2**31) as tw:
        for k, factor in enumerate(factors):
            lw, lh = -(-width // factor), -(-height // factor)
            tw.write(_level_tiles(mask, tile, factor, variants, encoded), shape=(lh, lw, 3), dtype=np.uint8,
                     tile=(tile, tile), photometric="rgb", compression="jpeg", subfiletype=0 if k == 0 else 1,
                     resolution=(res / factor, res / factor), resolutionunit="CENTIMETER", metadata=None)
    return path
