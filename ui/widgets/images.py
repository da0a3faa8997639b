"""PIL → Qt image conversion, copying the pixels so the QImage never points into a freed Python buffer."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap

__all__ = ["pil_to_qimage", "thumbnail_pixmap", "small_copy"]


def pil_to_qimage(image: Image.Image) -> QImage:
    """An RGB copy of `image` as a QImage (RGB888). The `.copy()` detaches it from the bytes object, which Python
    may free as soon as this function returns."""
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return qimage.copy()


def thumbnail_pixmap(image: Image.Image, size: int) -> QPixmap:
    """A pixmap of `image` scaled to fit a `size`×`size` box, aspect ratio kept, smooth filtering."""
    pixmap = QPixmap.fromImage(pil_to_qimage(image))
    return pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def small_copy(image: Image.Image, size: int) -> Image.Image:
    """A copy of `image` fitting a `size`×`size` box (PIL only, so a worker thread can make it: scaling a large
    image is the slow part of a thumbnail and must not run on the UI thread)."""
    copy = image.convert("RGB") if image.mode != "RGB" else image.copy()
    copy.thumbnail((size, size), Image.Resampling.LANCZOS)
    return copy
