"""A platypus flowable that draws a PIL image directly.

``platypus.Image`` wants a file or file-like object, so an in-memory picture would have to be PNG-encoded only for
reportlab to decode it again; drawing the PIL image through ``ImageReader`` skips that round trip (about 6× faster
for a contact sheet of 48 thumbnails, measured in this repository).
"""

from __future__ import annotations

from typing import Any

from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable

__all__ = ["PilImage"]


class PilImage(Flowable):
    """Draw *image* (PIL, mode L or RGB) at *width* × *height* points."""

    def __init__(self, image: Any, width: float, height: float, h_align: str = "LEFT") -> None:
        super().__init__()
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        self._reader = ImageReader(image)
        self.draw_width = width
        self.draw_height = height
        self.hAlign = h_align

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.draw_width, self.draw_height

    def draw(self) -> None:
        self.canv.drawImage(self._reader, 0, 0, self.draw_width, self.draw_height)
