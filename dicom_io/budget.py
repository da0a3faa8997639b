"""The pixel budget: how many pixels medapp decodes at once, checked from the header before any decoding.

Why a budget, and why from the header: a 657 KB PNG can declare 13000 x 13000 RGBA pixels; decoding it, compositing
its alpha on white and converting it to RGB took 4.4 GB, and under a memory limit the process then died in its own
error handling. Pillow's decompression-bomb limit (179 megapixels before it refuses) is larger than such an image,
so it does not help. Every reader therefore asks `check_pixels` with the size the header declares (PIL's lazy
`Image.open` size; DICOM Rows x Columns x Samples per Pixel of one frame; the requested size of a slide region)
before it allocates, and a refusal is one `ImageTooLargeError` naming the file, the size and the limit.

The limit is 8192 x 8192 = 67 megapixels per decoded image, frame or slide region: the slide reader's existing
region limit, and a size whose worst-case working set (RGBA decode + compositing + RGB + the display copy, about
18 bytes per pixel) stays near 1.2 GB. Anything larger is a whole-slide image and belongs in a tiled pyramid,
which `dicom_io.slide` reads region by region. Multi-frame DICOM is checked per frame because frames are decoded
one at a time; the stored pixel data as a whole is bounded by the file's own size (`pixels.check_pixel_budget`
refuses a header that declares more frames than the data holds).
"""

from __future__ import annotations

from pathlib import Path

from dicom_io.errors import ImageTooLargeError

MAX_SIDE = 8192
MAX_PIXELS = MAX_SIDE * MAX_SIDE


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f}"


def check_pixels(path: str | Path | None, width: int, height: int, *, what: str = "image", detail: str = "") -> None:
    """Raise `ImageTooLargeError` if a `width` x `height` `what` (image / frame / region) exceeds `MAX_PIXELS`.

    `detail` is added after the size (e.g. "RGBA", "3 samples per pixel") so the user sees what was declared.
    """
    n = int(width) * int(height)
    if n <= MAX_PIXELS:
        return
    extra = f", {detail}" if detail else ""
    raise ImageTooLargeError(
        path,
        f"{what} is {width}x{height} pixels ({_megapixels(n)} megapixels{extra}); medapp decodes at most "
        f"{_megapixels(MAX_PIXELS)} megapixels ({MAX_SIDE}x{MAX_SIDE}) at once. Larger pictures need a tiled pyramid "
        "(whole-slide image format)",
    )
