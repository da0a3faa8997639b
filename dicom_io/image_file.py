"""Plain images (PNG, JPEG, TIFF, BMP ...) as an ImageStack, 16-bit grayscale included.

Grey images keep their full bit depth as "modality values", so a 16-bit PNG can be windowed like a DICOM; without
a window the automatic percentile window applies (8-bit grey images get the identity window 0..255 instead,
because they are already display images). Colour images are shown as they are. Multi-page TIFFs are frames.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
from cachetools import LRUCache
from PIL import Image, ImageSequence
from pydicom.dataset import Dataset

from dicom_io.budget import MAX_PIXELS, check_pixels
from dicom_io.errors import ImageTooLargeError, UnsupportedFormatError
from dicom_io.guard import guard
from dicom_io.reading import check_file
from dicom_io.stack import ImageStack
from dicom_io.windows import Window

__all__ = ["MAX_PIXELS", "PlainImage"]


def _open(path: Path) -> Image.Image:
    """`Image.open` (lazy: reads the header only), with Pillow's own bomb refusal reported like ours.

    Pillow refuses outright above twice its `MAX_IMAGE_PIXELS` (179 megapixels) before we see the size; that is
    the same situation as our budget, so it gets the same error type rather than a generic "corrupt" message.
    """
    try:
        return Image.open(path)
    except Image.UnidentifiedImageError:
        raise UnsupportedFormatError(path, "not an image format medapp reads") from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "more pixels than Pillow allows"
        raise ImageTooLargeError(path, f"image declares {size}; medapp decodes at most "
                                       f"{MAX_PIXELS / 1e6:.1f} megapixels at once") from None


class PlainImage(ImageStack):
    kind = "image"

    def __init__(self, path: str | Path) -> None:
        super().__init__(check_file(path))
        self._frames: LRUCache[int, tuple[np.ndarray, str]] = LRUCache(maxsize=4)
        self._lock = threading.Lock()
        with guard(self.path, "reading image"):
            img = _open(self.path)
            with img:
                w, h = img.size
                check_pixels(self.path, w, h, detail=img.mode)  # from the header, before any pixel is decoded
                self._n = max(1, int(getattr(img, "n_frames", 1) or 1))
                self._size = (w, h)
                self._mode = img.mode
                self.metadata = {"format": img.format, "mode": img.mode, "columns": w, "rows": h, "frames": self._n}
                first = self._decode_image(img)
                self._frames[0] = first
                self.metadata["colour"] = first[1] == "RGB"
                self.metadata["bits_stored"] = 8 * first[0].dtype.itemsize if first[0].dtype != np.float32 else 32
                self.metadata["photometric"] = "RGB" if first[1] == "RGB" else "MONOCHROME2"
        self.instances = [self.path]
        if not self.metadata["colour"] and first[0].dtype == np.uint8:
            self.windows = [Window(128.0, 256.0, explanation="full range")]  # LINEAR identity on 0..255
            self.metadata["window"] = self.windows[0].as_dict()

    @staticmethod
    def _decode_image(img: Image.Image) -> tuple[np.ndarray, str]:
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return np.asarray(img, dtype=np.uint16).copy(), "MONOCHROME2"
        if mode in ("I", "F"):
            arr = np.asarray(img)
            return (arr.astype(np.float32) if mode == "F" else arr.astype(np.int32)), "MONOCHROME2"
        if mode in ("L", "1"):
            return np.asarray(img.convert("L")).copy(), "MONOCHROME2"
        if mode in ("LA", "RGBA", "PA") or (mode == "P" and "transparency" in img.info):
            # Composite transparent pixels on white, as a viewer shows them, rather than dropping alpha to black.
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            flat = Image.alpha_composite(white, rgba)
            if mode == "LA":  # grey stays grey (one channel, windowable like any 8-bit grey image)
                return np.asarray(flat.convert("L")).copy(), "MONOCHROME2"
            return np.asarray(flat.convert("RGB")).copy(), "RGB"
        return np.asarray(img.convert("RGB")).copy(), "RGB"

    @property
    def n_frames(self) -> int:
        return self._n

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _frame(self, frame: int) -> tuple[np.ndarray, str, Dataset | None]:
        with self._lock:
            hit = self._frames.get(frame)
        if hit is None:
            with _open(self.path) as img:
                page = next(p for i, p in enumerate(ImageSequence.Iterator(img)) if i == frame)
                # pages of a TIFF may differ in size: each is checked before it is decoded
                check_pixels(self.path, *page.size, what=f"page {frame}", detail=page.mode)
                hit = self._decode_image(page)
            with self._lock:
                self._frames[frame] = hit
        return hit[0], hit[1], None
