"""Candidate regions of a slide: tissue tiles at a chosen magnification, of the model's crop size, streamed.

* **Magnification.** Objective power first, else 10 µm / (µm per pixel) (10× ≈ 1.0 µm/px, 20× ≈ 0.5, 40× ≈ 0.25)
  — the slide viewer's rule (`ui.viewer.magnification.base_magnification`), so a region shown "at 20×" here is at
  20× there too. A slide that states neither, or is asked for more than it was scanned at, is a `UserError`
  naming the file.
* **Tiles are one model crop.** A candidate covers `crop × downsample` level-0 pixels, where `crop` is the model's
  crop side (336 for v2, 224 for v1; from the processor) and `downsample = base / target magnification`, so each
  candidate is exactly one crop's worth of the slide at that magnification.
* **Tissue first, from the overview.** The grid is laid over a low-resolution thumbnail and each cell's tissue share
  (`dicom_io.tissue.tissue_mask`) comes from a summed-area table, so 20 000 cells cost one thumbnail read, not
  20 000 tile reads. Only cells with enough tissue become candidates.
* **Streamed, bounded memory.** `stream_tiles` is a generator: each tile is read from the finest pyramid level not
  finer than needed (`best_level_for_downsample`) and resized to the crop, one at a time; the caller batches. The
  slide's label and macro images are never touched (`dicom_io.Slide` has no accessor for them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from medapp.errors import UserError

__all__ = ["Candidate", "TileGrid", "base_magnification", "candidate_grid", "stream_tiles", "tissue_overview"]

MICRONS_AT_1X = 10.0  # 1× ≈ 10 µm per pixel, so 40× ≈ 0.25 µm/px (the viewer's constant)
# The overview the tissue grid is measured on resolves each tile with about this many pixels per side.
OVERVIEW_PX_PER_TILE = 6
OVERVIEW_MIN, OVERVIEW_MAX = 512, 4096


def base_magnification(slide: Any) -> float:
    """Magnification of level 0: the objective power, else derived from µm per pixel; a `UserError` without either."""
    power = getattr(slide, "objective_power", None)
    if power and power > 0:
        return float(power)
    mpp = getattr(slide, "mpp", None)
    if mpp and mpp[0] and mpp[0] > 0:
        return MICRONS_AT_1X / float(mpp[0])
    raise UserError(
        f"{slide.path}: the slide states neither its objective power nor its microns per pixel, so no "
        "magnification can be chosen for it"
    )


@dataclass(frozen=True)
class TileGrid:
    """Geometry of the candidate grid: level-0 tile side, where tiles are read and the grid's size."""

    base_magnification: float
    magnification: float
    crop_px: int  # tile side at the target magnification = the model's crop side
    tile0: float  # tile side in level-0 pixels (crop_px × downsample)
    level: int  # pyramid level tiles are read from
    read_px: int  # tile side at that level (then resized to crop_px)
    cols: int
    rows: int

    @property
    def downsample(self) -> float:
        return self.tile0 / self.crop_px

    def box(self, index: int) -> tuple[int, int, int, int]:
        """Level-0 (x, y, w, h) of grid cell `index` (raster order)."""
        row, col = divmod(int(index), self.cols)
        x0, y0 = round(col * self.tile0), round(row * self.tile0)
        x1, y1 = round((col + 1) * self.tile0), round((row + 1) * self.tile0)
        return x0, y0, x1 - x0, y1 - y0

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_magnification": self.base_magnification, "magnification": self.magnification,
            "crop_px": self.crop_px, "tile_level0_px": self.tile0, "read_level": self.level,
            "read_px": self.read_px, "cols": self.cols, "rows": self.rows,
        }


@dataclass(frozen=True)
class Candidate:
    """One tissue tile: its grid index (raster order), level-0 box and tissue share."""

    index: int
    box: tuple[int, int, int, int]
    tissue: float

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


def tile_grid(slide: Any, magnification: float, crop_px: int) -> TileGrid:
    """Grid of `crop_px` tiles at `magnification` over the whole slide (partial tiles at the edges dropped)."""
    base = base_magnification(slide)
    if magnification > base * 1.001:
        raise UserError(
            f"{slide.path}: scanned at {base:g}x, so it cannot be read at {magnification:g}x; choose "
            f"--magnification {base:g} or less"
        )
    tile0 = crop_px * base / magnification
    width, height = slide.level_dimensions[0]
    cols, rows = int(width // tile0), int(height // tile0)
    if cols < 1 or rows < 1:
        raise UserError(
            f"{slide.path}: the slide ({width}x{height} px) is smaller than one {crop_px}-px tile at {magnification:g}x"
        )
    level = int(slide.best_level_for_downsample(base / magnification))
    read_px = max(1, round(tile0 / float(slide.level_downsamples[level])))
    return TileGrid(base, float(magnification), int(crop_px), float(tile0), level, read_px, cols, rows)


def tissue_overview(slide: Any, grid: TileGrid) -> np.ndarray:
    """RGB uint8 thumbnail fine enough to measure each grid cell's tissue share."""
    width, height = slide.level_dimensions[0]
    cells = max(grid.cols, grid.rows)
    side = int(min(OVERVIEW_MAX, max(OVERVIEW_MIN, OVERVIEW_PX_PER_TILE * cells)))
    return np.asarray(slide.thumbnail(side).convert("RGB"))


def tissue_fractions(mask: np.ndarray, grid: TileGrid, slide_size: tuple[int, int]) -> np.ndarray:
    """`(rows, cols)` tissue share of each grid cell, from a summed-area table of the overview mask."""
    oh, ow = mask.shape
    width, height = slide_size
    sat = np.zeros((oh + 1, ow + 1), dtype=np.int64)
    sat[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    xs = np.arange(grid.cols + 1) * grid.tile0 * ow / width
    ys = np.arange(grid.rows + 1) * grid.tile0 * oh / height
    x0 = np.clip(np.floor(xs[:-1]).astype(int), 0, ow - 1)
    y0 = np.clip(np.floor(ys[:-1]).astype(int), 0, oh - 1)
    x1 = np.clip(np.maximum(np.round(xs[1:]).astype(int), x0 + 1), 1, ow)
    y1 = np.clip(np.maximum(np.round(ys[1:]).astype(int), y0 + 1), 1, oh)
    total = sat[y1][:, x1] - sat[y0][:, x1] - sat[y1][:, x0] + sat[y0][:, x0]
    area = np.outer(y1 - y0, x1 - x0)
    return total / np.maximum(area, 1)


def candidate_grid(
    slide: Any, magnification: float, crop_px: int, *, tissue_fraction: float = 0.5
) -> tuple[TileGrid, list[Candidate]]:
    """The grid and its tissue cells (raster order), each at least `tissue_fraction` tissue."""
    from dicom_io.tissue import tissue_mask

    grid = tile_grid(slide, magnification, crop_px)
    mask = tissue_mask(tissue_overview(slide, grid))
    fractions = tissue_fractions(mask, grid, slide.level_dimensions[0])
    keep = np.flatnonzero(fractions.reshape(-1) >= max(tissue_fraction, 1e-9))
    flat = fractions.reshape(-1)
    return grid, [Candidate(int(i), grid.box(int(i)), float(flat[i])) for i in keep]


def read_tile(slide: Any, grid: TileGrid, box: tuple[int, int, int, int]) -> Image.Image:
    """One candidate as the model's crop: read at `grid.level`, resized (BICUBIC, as the processor does) to crop_px."""
    x, y = box[0], box[1]
    image = slide.read_region((x, y), grid.level, (grid.read_px, grid.read_px))
    if image.size != (grid.crop_px, grid.crop_px):
        image = image.resize((grid.crop_px, grid.crop_px), Image.Resampling.BICUBIC)
    return image


def stream_tiles(
    slide: Any, grid: TileGrid, candidates: Iterable[Candidate], *, workers: int = 1, prefetch: int = 16
) -> Iterator[tuple[Candidate, Image.Image]]:
    """Each candidate with its crop image, in order, read lazily (memory: at most `prefetch` tiles ahead).

    With `workers` > 1 tiles are read and decoded in that many threads (OpenSlide reads are thread-safe and release
    the GIL while decoding JPEG), so on a GPU machine tile decoding keeps up with the vision tower; the window of
    `prefetch` pending reads keeps memory bounded whatever the slide's size.
    """
    if workers <= 1:
        for cand in candidates:
            yield cand, read_tile(slide, grid, cand.box)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pending: deque[tuple[Candidate, Any]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slide-tiles") as pool:
        for cand in candidates:
            pending.append((cand, pool.submit(read_tile, slide, grid, cand.box)))
            if len(pending) >= max(prefetch, workers):
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of `size` items (the last may be shorter), without materialising `items`."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def boxes_array(candidates: Sequence[Candidate]) -> np.ndarray:
    return np.asarray([c.box for c in candidates], dtype=np.int64).reshape(-1, 4)
