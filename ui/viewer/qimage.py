"""numpy / PIL → QImage without surprises about strides, channel order or buffer lifetime."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def array_to_qimage(array: np.ndarray) -> QImage:
    """uint8 (H, W) grey or (H, W, 3) RGB → an owning QImage (deep copy).

    The copy matters: a QImage built on a numpy buffer does not keep the array alive, so a view that outlived the
    array would paint freed memory (pyqtgraph pins the array; a copy of a screen-sized frame costs < 1 ms).
    """
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    array = np.ascontiguousarray(array)
    if array.ndim == 2:
        h, w = array.shape
        fmt = QImage.Format.Format_Grayscale8
        bpl = array.strides[0]
    elif array.ndim == 3 and array.shape[2] == 3:
        h, w = array.shape[:2]
        fmt = QImage.Format.Format_RGB888
        bpl = array.strides[0]
    elif array.ndim == 3 and array.shape[2] == 4:
        h, w = array.shape[:2]
        fmt = QImage.Format.Format_RGBA8888
        bpl = array.strides[0]
    else:
        raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4) pixels, got shape {array.shape}")
    return QImage(array.data, w, h, bpl, fmt).copy()


def pil_to_qimage(image) -> QImage:
    """PIL image (any mode) → owning QImage, through RGB / L. Safe to call on a worker thread (QImage, not QPixmap)."""
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    return array_to_qimage(np.asarray(image))


def qimage_to_array(image: QImage) -> np.ndarray:
    """QImage → (H, W, 3) uint8 RGB copy; used by tests to compare what is on screen."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()
