"""`ImageStack`: frames of one image source (a DICOM file, a series, a plain image) rendered for display.

Subclasses provide `_frame(frame) -> (stored array, photometric, header)`; rendering (VOI, inversion, colour,
region crop, RGB) is shared here so every kind of input is displayed, and sent to the model, the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from dicom_io.errors import FrameIndexError, RegionError
from dicom_io.guard import guard
from dicom_io.pixels import LutCache, colour_to_rgb8, is_colour, modality_values
from dicom_io.windows import Window, auto_window

Region = tuple[int, int, int, int]


class ImageStack:
    """Frames that share one display window. See docs/ARCHITECTURE.md for the attribute contract."""

    kind: str = "image"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metadata: dict[str, Any] = {}
        self.phi: dict[str, Any] = {}
        self.windows: list[Window] = []
        self.frame_time_ms: float | None = None
        self.instances: list[Path] = []
        self.warnings: list[str] = []
        self._luts = LutCache()
        self._auto: Window | None = None

    # --- what subclasses provide ------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        raise NotImplementedError

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of frame 0 (a series with mixed sizes says so in `.warnings`)."""
        raise NotImplementedError

    def _frame(self, frame: int) -> tuple[np.ndarray, str, Dataset | None]:
        """(decoded stored values, photometric of that array, header for processing)."""
        raise NotImplementedError

    def dataset(self, frame: int = 0) -> Dataset | None:
        return None

    def frame_window(self, frame: int, hdr: Dataset | None) -> Window | None:
        """A window that belongs to this frame only (enhanced multi-frame per-frame VOI); None means "the stack's"."""
        return None

    # --- shared behaviour -------------------------------------------------------------------------------------
    @property
    def default_window(self) -> Window | None:
        """The file's own first window; None when it has none (then `render` uses an automatic window)."""
        return self.windows[0] if self.windows else None

    @property
    def is_colour(self) -> bool:
        return bool(self.metadata.get("colour", False))

    def check_frame(self, frame: int) -> int:
        n = self.n_frames
        if not isinstance(frame, int | np.integer) or not 0 <= frame < n:
            raise FrameIndexError(self.path, f"frame {frame} out of range (0..{n - 1})")
        return int(frame)

    def modality_values(self, frame: int = 0) -> np.ndarray:
        """Values after the Modality LUT as float32 (HU for CT); colour images give their RGB uint8 array."""
        frame = self.check_frame(frame)
        with guard(self.path, f"decoding frame {frame}"):
            arr, photometric, hdr = self._frame(frame)
            if is_colour(photometric, arr):
                return colour_to_rgb8(arr, photometric, hdr if hdr is not None else Dataset(), self.path)
            return modality_values(arr, hdr) if hdr is not None else arr.astype(np.float32)

    def auto_window(self) -> Window:
        """Window used when the file has none: percentiles of the middle frame, computed once per stack.

        One window for the whole stack (not per frame) so scrolling does not make the brightness jump.
        """
        if self._auto is None:
            values = self.modality_values(self.n_frames // 2)
            self._auto = Window(128.0, 256.0, explanation="auto") if values.ndim == 3 else auto_window(values)
        return self._auto

    def effective_window(self, window: Window | None) -> Window:
        return window or self.default_window or self.auto_window()

    def render(self, frame: int = 0, window: Window | None = None) -> np.ndarray:
        """Display values: (H, W) uint8 for grey images (window applied, MONOCHROME1 inverted), (H, W, 3) for colour."""
        frame = self.check_frame(frame)
        with guard(self.path, f"rendering frame {frame}"):
            arr, photometric, hdr = self._frame(frame)
            if is_colour(photometric, arr):
                return colour_to_rgb8(arr, photometric, hdr if hdr is not None else Dataset(), self.path)
            if arr.ndim != 2:
                arr = arr.reshape(arr.shape[0], arr.shape[1]) if arr.ndim == 3 and arr.shape[2] == 1 else arr[..., 0]
            chosen = window or self.frame_window(frame, hdr) or self.effective_window(None)
            return self._luts.render(arr, hdr if hdr is not None else Dataset(), photometric, chosen)

    def render_rgb(self, frame: int = 0, window: Window | None = None, region: Region | None = None) -> Image.Image:
        """Exactly what is shown and sent to the model: the rendered frame, cropped to `region` (x, y, w, h), RGB."""
        display = self.render(frame, window)
        if region is not None:
            display = crop(display, region, self.path)
        with guard(self.path, "converting to RGB"):
            if display.ndim == 2:
                return Image.fromarray(display, "L").convert("RGB")
            return Image.fromarray(np.ascontiguousarray(display), "RGB")


def crop(arr: np.ndarray, region: Region, path: Path) -> np.ndarray:
    """Crop (x, y, w, h) out of an (H, W[, C]) array; RegionError when it is empty or leaves the image."""
    try:
        x, y, w, h = (int(v) for v in region)
    except (TypeError, ValueError):
        raise RegionError(path, f"region must be four integers x,y,w,h (got {region!r})") from None
    height, width = arr.shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise RegionError(path, f"region {x},{y},{w},{h} is outside the {width}x{height} image")
    return arr[y : y + h, x : x + w]
