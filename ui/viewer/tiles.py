"""Pyramid tiles for the slide viewer: which tiles cover a view, a bounded LRU cache, and the worker that reads them.

Tiles are addressed by (level, column, row) on a fixed grid of `TILE` pixels *of that level*; their place on the
scene (level-0 coordinates) is (col, row) × TILE × downsample. The cache holds QImages (not QPixmaps, which may only
exist on the UI thread) and is bounded by count, so memory stays flat however long one pans.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from cachetools import LRUCache
from PySide6.QtGui import QImage

from ui.viewer.qimage import pil_to_qimage

__all__ = ["TILE", "TileKey", "TileCache", "tiles_for_view", "tile_rect", "load_tiles"]

TILE = 256


class TileKey(NamedTuple):
    level: int
    col: int
    row: int


def tile_rect(key: TileKey, level_dims: tuple[int, int], downsample: float, tile: int = TILE):
    """(x0, y0, w, h) of the tile in level-0 pixels and its (w, h) in level pixels (edge tiles are smaller)."""
    lw, lh = level_dims
    x, y = key.col * tile, key.row * tile
    w, h = min(tile, lw - x), min(tile, lh - y)
    return (x * downsample, y * downsample, w * downsample, h * downsample), (w, h)


def tiles_for_view(
    view: tuple[float, float, float, float],
    level: int,
    level_dims: tuple[int, int],
    downsample: float,
    tile: int = TILE,
) -> list[TileKey]:
    """Tiles of `level` covering `view` (x, y, w, h in level-0 pixels), nearest to the view's centre first, so the
    middle of the screen sharpens before the edges."""
    lw, lh = level_dims
    x, y, w, h = view
    c0 = max(0, int(math.floor(x / downsample / tile)))
    r0 = max(0, int(math.floor(y / downsample / tile)))
    c1 = min(math.ceil(lw / tile) - 1, math.ceil((x + w) / downsample / tile) - 1)  # end is exclusive
    r1 = min(math.ceil(lh / tile) - 1, math.ceil((y + h) / downsample / tile) - 1)
    if c1 < c0 or r1 < r0:
        return []
    cc, cr = (c0 + c1) / 2.0, (r0 + r1) / 2.0
    keys = [TileKey(level, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
    keys.sort(key=lambda k: (k.col - cc) ** 2 + (k.row - cr) ** 2)
    return keys


class TileCache:
    """LRU of decoded tiles, at most `max_tiles`. UI-thread only (workers hand tiles over through signals)."""

    def __init__(self, max_tiles: int = 512) -> None:
        if max_tiles < 1:
            raise ValueError("max_tiles must be at least 1")
        self.max_tiles = max_tiles
        self._tiles: LRUCache[TileKey, QImage] = LRUCache(maxsize=max_tiles)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._tiles)

    def __contains__(self, key: object) -> bool:
        return key in self._tiles

    def get(self, key: TileKey) -> QImage | None:
        image = self._tiles.get(key)  # a hit counts as a use (LRU order)
        if image is None:
            self.misses += 1
            return None
        self.hits += 1
        return image

    def put(self, key: TileKey, image: QImage) -> None:
        self._tiles[key] = image  # evicts the least recently used tile beyond max_tiles

    def clear(self) -> None:
        self._tiles.clear()

    @property
    def nbytes(self) -> int:
        return sum(img.sizeInBytes() for img in self._tiles.values())


def load_tiles(
    slide: Any,
    keys: Iterable[TileKey],
    *,
    progress: Callable[[Any], None],
    cancel: threading.Event,
    tile: int = TILE,
) -> int:
    """Worker: read each tile with `slide.read_region` and emit `(slide, key, QImage)` as it is ready; stop when
    cancelled. (The slide rides along so the viewer can drop tiles of a slide it no longer shows.)

    Returns how many tiles were read. One failing tile does not stop the others; the first error is re-raised at the
    end so the window reports it once.
    """
    dims = list(slide.level_dimensions)
    downsamples = list(slide.level_downsamples)
    done = 0
    first_error: BaseException | None = None
    for key in keys:
        if cancel.is_set():
            break
        (x0, y0, _, _), size = tile_rect(key, dims[key.level], downsamples[key.level], tile)
        try:
            region = slide.read_region((int(round(x0)), int(round(y0))), key.level, size)
        except Exception as exc:  # noqa: BLE001 — keep loading the other tiles
            first_error = first_error or exc
            continue
        progress((slide, key, pil_to_qimage(region)))
        done += 1
    if first_error is not None:
        raise first_error
    return done
