"""Image → Dragonfly crops: input conversion, Pillow-exact resizes, tiling and vectorised normalisation (no torch).

Exactness: the official processor stretches the image with Pillow's `resize` (BICUBIC for RGB, with Pillow's
antialiasing when it shrinks) and normalises each crop through `CLIPImageProcessor`. torch's bicubic differs from
Pillow by up to 0.45 normalised units, so Pillow does the resizing here too. The result is bit-identical to that
per-crop path (tested, and checked again by `./run.sh bench processor`).

Speed, and why each step is shaped as it is. Profiled in CPU time (v2, one thread): the three Pillow resizes (the
"floor", which any exact path must compute) are 83 % of the work at 2048², 91 % at 4000×3000; the normalisation of
41 × 3 × 336² values, its first touch of the 55 MB output included, is most of the rest. So the work cannot shrink
much below the floor; the time can, by spreading it over the cores:
* **Pillow's resize in its two passes, as separate jobs.** Pillow resizes in two passes, one stretching every row
  and one every column, each pass rounding to 8 bits, and each output row (column) depending only on its own input
  row (column) with coefficients that depend only on the sizes. So the first pass runs over the whole image, one
  job per grid, and the second pass runs strip by strip, one job per line of crops: `crop(strip).resize(...)` of the
  first pass's image gives exactly those pixels of the whole resize. Pillow 13 picks the order of the passes by a
  rule (`_vertical_first`); `_split_matches_pillow` checks that rule against the installed Pillow once, and if it
  ever disagrees, each grid is resized in one call (still exact, with fewer jobs to spread).
* **Concurrent jobs.** Pillow and numpy release the GIL, so the jobs run in threads: the three first passes at
  once (largest grid first), then every strip as soon as its grid's first pass exists. About a dozen strips of
  similar size balance the cores, where three whole resizes left one core waiting on the largest. (On a machine
  whose other cores are busy threads gain nothing; then only the amount of work counts, hence the points below.)
* **Each strip is normalised by the job that resampled it**, while its pixels are in the cache, straight into its
  slots of the preallocated float32 output: no per-crop array, no float64 temporary, no stacking afterwards.
* **Planar bands.** Pillow unpacks each band of a strip in one pass (`tobytes("raw", "R")`), so the normaliser reads
  contiguous uint8 rows and writes contiguous float32 channel planes (reading interleaved RGB is about 1.3× slower).
* **Gray pictures resize one band.** Pillow resamples each channel of an RGB image with the same fixed-point
  coefficients and 8-bit intermediate as a single-channel `L` image (`ImagingResample*_8bpc` share one formula for
  both layouts), so when R, G and B are equal (a grayscale study rendered as RGB) one `L` band is resized per grid,
  a third of the work, and `v/255` is computed once for the three channels. Colour images keep the RGB resize,
  which costs less than three `L` resizes (measured 15-25 % less).
* **Normalisation** is an exact uint8 → float32 cast and three in-place float32 ufuncs (`/255`, `−mean`, `/std`)
  per crop and channel, proven equal to CLIPImageProcessor's numbers on all 256 input values (`Normalizer`). Crop by
  crop keeps the passes in the CPU cache. A table gather (`np.take`) is about 2× slower, and no float32 `v·a + b`
  reproduces the table (searched), so the four passes stay.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
from PIL import Image

from models._geometry import grid_sizes
from models.variants import Variant

__all__ = ["Normalizer", "image_patches", "normalization_lut", "to_rgb"]

# Jobs: three first passes, then one second pass + normalisation per line of crops. One worker more than the cores
# (at least 3, so the three first passes always overlap) keeps every core busy while a job waits on memory.
_POOL = ThreadPoolExecutor(max_workers=max(3, min(9, (os.cpu_count() or 2) + 1)), thread_name_prefix="dragonfly-pixels")


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Linear min–max scaling of a high-bit-depth or float array to 0..255 (a window over the full data range).

    One float64 working copy, scaled in place (a 4000×3000 16-bit image would otherwise make several 96 MB
    temporaries); non-finite values (float input only) count as the minimum.
    """
    data = arr.astype(np.float64)
    if arr.dtype.kind == "f" and not bool(np.isfinite(data).all()):
        finite = np.isfinite(data)
        if not finite.any():
            return np.zeros(arr.shape, dtype=np.uint8)
        lo, hi = float(data[finite].min()), float(data[finite].max())
        data[~finite] = lo
    else:
        lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    data -= lo
    data *= 255.0 / (hi - lo)
    np.rint(data, out=data)
    np.clip(data, 0, 255, out=data)
    return data.astype(np.uint8)


def _composite_on_black(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(image: Any, name: str = "image") -> Image.Image:
    """Convert what a caller may hand us to the 8-bit RGB image the model was trained on.

    Rules (documented behaviour, applied before any resize):
      * RGB: unchanged. 8-bit grayscale (`L`), `1`, `CMYK`, `YCbCr`, `LAB`, `HSV`: Pillow's `convert("RGB")`.
      * Transparency (`RGBA`, `LA`, `PA`, palette with a transparent index): composited over **black**, the usual
        background of radiology and fluorescence images (Pillow's plain convert would expose arbitrary colours).
      * Palette (`P`) without transparency: its colours.
      * 16-bit / 32-bit integer (`I;16*`, `I`) and float (`F`) images, and numpy arrays of such types: linear
        min–max scaling of the image's own range to 0..255, then gray → RGB. (A DICOM window should be applied
        before, by dicom_io; this is the fallback for a raw high-bit-depth picture.)
      * numpy arrays: `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`; uint8 taken as is, other dtypes scaled.

    Raises:
        ValueError: `name` and the reason, for an empty image or an unsupported type/shape.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f"{name}: array of shape {arr.shape} is not an image (H, W), (H, W, 3) or (H, W, 4)")
        if arr.size == 0:
            raise ValueError(f"{name}: empty image array {arr.shape}")
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        if arr.dtype != np.uint8:
            if arr.ndim == 3:
                arr = np.concatenate([_scale_to_uint8(arr[:, :, :3]), _scale_to_uint8(arr[:, :, 3:])], axis=2)[
                    :, :, : arr.shape[2]
                ]
            else:
                arr = _scale_to_uint8(arr)
        mode = {2: "L"}.get(arr.ndim) or ("RGB" if arr.shape[2] == 3 else "RGBA")
        image = Image.fromarray(np.ascontiguousarray(arr), mode=mode)
    if not isinstance(image, Image.Image):
        raise ValueError(f"{name}: expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{name}: empty image ({image.width}x{image.height})")
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return _composite_on_black(image)
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise ValueError(f"{name}: cannot convert image mode {mode!r} to RGB ({err})") from err


def normalization_lut(mean: Sequence[float], std: Sequence[float], rescale: float = 1 / 255) -> np.ndarray:
    """`(3, 256)` float32 table: value v of channel c → `(v·rescale − mean_c) / std_c`, as CLIPImageProcessor computes it.

    CLIPImageProcessor rescales in float64 and casts to float32, then normalises in float32 with float32 mean/std;
    on 8-bit input that gives the same float32 numbers as this table (checked bit for bit against it in tests).
    """
    values = (np.arange(256, dtype=np.float64) * rescale).astype(np.float32)
    mean32 = np.asarray(mean, dtype=np.float32)[:, None]
    std32 = np.asarray(std, dtype=np.float32)[:, None]
    return ((values[None, :] - mean32) / std32).astype(np.float32)


class Normalizer:
    """uint8 pixels → float32 `(v/255 − mean)/std`, bit-identical to CLIPImageProcessor, as fast as numpy allows.

    The definition is the 256-entry table per channel (`normalization_lut`). Float32 arithmetic (cast, `/255`,
    `−mean`, `/std`, in place) is faster than a gather; it is used only when it reproduces the table for all 256
    values of every channel (checked once here, so equality holds for any image), else the table is gathered.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], rescale: float = 1 / 255) -> None:
        self.lut = normalization_lut(mean, std, rescale)
        self._mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self._std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        every = np.arange(256, dtype=np.uint8).reshape(16, 16)
        probe = np.empty((3, 16, 16), dtype=np.float32)
        self._arith(every, probe)
        self.exact_arithmetic = bool(np.array_equal(probe.reshape(3, 256), self.lut))

    def _arith(self, src: np.ndarray, dst: np.ndarray) -> None:
        np.copyto(dst, src, casting="unsafe")  # uint8 → float32 is exact
        np.divide(dst, np.float32(255), out=dst)
        np.subtract(dst, self._mean, out=dst)
        np.divide(dst, self._std, out=dst)

    def crops(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Normalise uint8 crops into float32 `dst` `(..., 3, S, S)` (any strides, no temporaries).

        `src` is `(..., S, S, 3)` (RGB) or `(..., S, S)` (one band standing for all three channels). Crop by crop:
        the four passes then run on data that is still in the CPU cache.
        """
        band = src.ndim == dst.ndim - 1
        for index in np.ndindex(dst.shape[:-3]):
            crop = src[index] if band else src[index].transpose(2, 0, 1)  # (S, S) or (3, S, S)
            if self.exact_arithmetic:
                self._arith(crop, dst[index])
            else:
                for c in range(3):
                    np.take(self.lut[c], crop if band else crop[c], out=dst[index][c])

    def bands(self, bands: Sequence[np.ndarray], dst: np.ndarray) -> None:
        """Normalise planar uint8 crops into float32 `dst` `(n, 3, S, S)` (any strides).

        `bands` holds three `(n, S, S)` arrays (R, G, B) or one standing for all three channels (a gray picture).
        Planar input is read contiguously (an interleaved RGB crop would be read with a stride of 3 bytes, about
        1.3x slower). For one band, `v/255` is computed once per crop and the three channels are derived from it:
        6 passes instead of 12, the same numbers (`/255` does not depend on the channel).
        """
        for i in range(dst.shape[0]):
            if not self.exact_arithmetic:
                for c in range(3):
                    np.take(self.lut[c], bands[c if len(bands) == 3 else 0][i], out=dst[i, c])
            elif len(bands) == 3:
                for c in range(3):
                    d = dst[i, c]
                    np.copyto(d, bands[c][i], casting="unsafe")  # uint8 → float32 is exact
                    np.divide(d, np.float32(255), out=d)
                    np.subtract(d, self._mean[c, 0, 0], out=d)
                    np.divide(d, self._std[c, 0, 0], out=d)
            else:
                x = dst[i, 0]
                np.copyto(x, bands[0][i], casting="unsafe")
                np.divide(x, np.float32(255), out=x)
                for c in (2, 1, 0):  # channel 0 last: it overwrites x in place
                    np.subtract(x, self._mean[c, 0, 0], out=dst[i, c])
                    np.divide(dst[i, c], self._std[c, 0, 0], out=dst[i, c])


def _is_gray(image: Image.Image) -> bool:
    """True when R, G and B are equal everywhere (a grayscale picture sent as RGB): then one band is resized per grid.

    A strip of the top rows answers for almost every colour image; only when it is gray is the whole image compared.
    """
    top = np.asarray(image.crop((0, 0, image.width, min(image.height, 8))))
    if not (np.array_equal(top[..., 0], top[..., 1]) and np.array_equal(top[..., 0], top[..., 2])):
        return False
    r, g, b = (band.tobytes() for band in image.split())
    return r == g == b


def _planes(image: Image.Image) -> list[np.ndarray]:
    """The bands of an RGB or L image as `(H, W)` uint8 arrays, each unpacked by Pillow in one pass (no split)."""
    bands = ("R", "G", "B") if image.mode == "RGB" else ("L",)
    return [np.frombuffer(image.tobytes("raw", band), dtype=np.uint8).reshape(image.height, image.width) for band in bands]


def _vertical_first(source_wh: tuple[int, int], target_wh: tuple[int, int]) -> bool:
    """The order of Pillow's two resampling passes for this resize (measured on Pillow 13; checked by `_split_matches_pillow`).

    Pillow stretches rows first, unless the height shrinks by more than twice as many pixels as the width does.
    The 8-bit result of the first pass is the input of the second, so a split resize must keep Pillow's order.
    """
    (w_in, h_in), (w, h) = source_wh, target_wh
    return h < h_in and h_in - h > 2 * (w_in - w)


def _first_pass(source: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Pillow's first pass of `source.resize(size)`: rows stretched to the width, or columns to the height."""
    w, h = size
    if _vertical_first(source.size, size):
        return source if h == source.height else source.resize((source.width, h), Image.Resampling.BICUBIC)
    return source if w == source.width else source.resize((w, source.height), Image.Resampling.BICUBIC)


def _second_pass(first: Image.Image, source_wh: tuple[int, int], size: tuple[int, int], s: int, part: int) -> Image.Image:
    """Pillow's second pass on one line of crops: column `part` (rows first) or row `part` (columns first) of crops.

    The second pass treats every column (after a row pass) or every row (after a column pass) on its own with the same
    coefficients, so a strip of them, cut from the first pass's image, resamples to exactly those pixels of the whole.
    """
    w, h = size
    if _vertical_first(source_wh, size):
        box = (0, part * s, first.width, part * s + s)
        strip = first if box == (0, 0, *first.size) else first.crop(box)
        return strip if w == strip.width else strip.resize((w, s), Image.Resampling.BICUBIC)
    box = (part * s, 0, part * s + s, first.height)
    strip = first if box == (0, 0, *first.size) else first.crop(box)
    return strip if h == strip.height else strip.resize((s, h), Image.Resampling.BICUBIC)


def _split_resize(source: Image.Image, size: tuple[int, int], s: int) -> np.ndarray:
    """`source.resize(size)` assembled from `_first_pass` and `_second_pass` strips (for the self-check)."""
    first = _first_pass(source, size)
    if _vertical_first(source.size, size):
        return np.concatenate([np.asarray(_second_pass(first, source.size, size, s, r)) for r in range(size[1] // s)], 0)
    return np.concatenate([np.asarray(_second_pass(first, source.size, size, s, c)) for c in range(size[0] // s)], 1)


@functools.cache
def _split_matches_pillow() -> bool:
    """Whether this Pillow resizes in the order `_vertical_first` models: checked on small images of both orders
    (either side of the rule's boundary, shrinking and enlarging); if not, each grid is resized in one call."""
    rng = np.random.default_rng(0)
    for (w_in, h_in), (w, h), s in [
        ((40, 30), (24, 12), 4), ((40, 30), (28, 12), 4), ((40, 30), (32, 12), 4), ((30, 40), (45, 20), 5),
        ((30, 40), (20, 60), 5), ((40, 30), (60, 45), 5), ((30, 40), (24, 36), 6), ((40, 30), (60, 10), 5),
        ((40, 30), (36, 22), 2),  # on the boundary (8 = 2 x 4): rows first
    ]:
        for mode in ("RGB", "L"):
            shape = (h_in, w_in, 3) if mode == "RGB" else (h_in, w_in)
            image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
            if not np.array_equal(_split_resize(image, (w, h), s), np.asarray(image.resize((w, h), Image.Resampling.BICUBIC))):
                return False
    return True


def image_patches(image: Image.Image, variant: Variant, normalizer: Normalizer, *, concurrent: bool = True) -> np.ndarray:
    """float32 `(n_crops, 3, S, S)` normalised crops [global, medium…, high…] of an RGB image (see module docstring).

    Each grid's resize is Pillow's, run as its two passes: the first pass over the whole image is one job, the
    second runs as one job per line of crops (`_second_pass`), which also normalises that line straight into the
    output. Bit-identical to `image.resize(size, BICUBIC)` followed by cropping.

    Args:
        image: an RGB PIL image (use `to_rgb` first).
        variant: the Dragonfly variant (v2: 41 crops of 336, v1: 29 crops of 224).
        concurrent: run the jobs in threads (same result); else one after the other in this thread.
    """
    if image.mode != "RGB":
        raise ValueError(f"image_patches needs an RGB image, got mode {image.mode!r} (convert it with to_rgb)")
    s, sizes = variant.crop_size, grid_sizes(image.size, variant)
    starts = np.cumsum([0] + [(w // s) * (h // s) for w, h in sizes])
    out = np.empty((int(starts[-1]), 3, s, s), dtype=np.float32)
    image.load()  # decode a lazily opened file once, here, not in several threads at the same time
    source = image.getchannel(0) if _is_gray(image) else image
    split = _split_matches_pillow()

    # The two kinds of job; bench/bench_processor.py records them by these names (`first`, `line`).
    def first(k: int) -> Image.Image:
        return _first_pass(source, sizes[k]) if split else source.resize(sizes[k], Image.Resampling.BICUBIC)

    def lines(k: int) -> range:
        w, h = sizes[k]
        return range(h // s if _vertical_first(source.size, sizes[k]) else w // s)

    def line(k: int, first_pass: Image.Image, part: int) -> None:
        """Second pass and normalisation of one line of crops of grid `k` (a row or a column of the grid)."""
        w, h = sizes[k]
        rows = _vertical_first(source.size, sizes[k])
        if split:
            strip = _second_pass(first_pass, source.size, sizes[k], s, part)
        else:  # first_pass is the whole resized grid
            strip = first_pass.crop((0, part * s, w, part * s + s) if rows else (part * s, 0, part * s + s, h))
        grid = out[starts[k] : starts[k + 1]].reshape(h // s, w // s, 3, s, s)
        if rows:
            normalizer.bands([p.reshape(s, w // s, s).swapaxes(0, 1) for p in _planes(strip)], grid[part])
        else:
            normalizer.bands([p.reshape(h // s, s, s) for p in _planes(strip)], grid[:, part])

    if not concurrent:
        for k in range(len(sizes)):
            first_pass = first(k)
            for part in lines(k):
                line(k, first_pass, part)
        return out
    passes = {_POOL.submit(first, k): k for k in (2, 1, 0)}  # largest grid first
    jobs: list[Future[None]] = []
    for done in as_completed(passes):
        k, first_pass = passes[done], done.result()
        jobs += [_POOL.submit(line, k, first_pass, part) for part in lines(k)]
    for future in jobs:
        future.result()
    return out
