"""Image → Dragonfly crops: input conversion, Pillow-exact resizes, tiling and vectorised normalisation (no torch).

Exactness: the official processor stretches the image with Pillow's `resize` (BICUBIC for RGB, with Pillow's
antialiasing when it shrinks) and normalises each crop through `CLIPImageProcessor`. torch's bicubic differs from
Pillow by up to 0.45 normalised units, so Pillow does the resizing here too. The result is bit-identical to that
per-crop path (tested, and checked again by `python -m bench processor`).

Speed, and why each step is shaped as it is (profiled at 2048²: the three resizes are most of the time, then the
normalisation of 41 × 3 × 336² values):
* **Concurrent jobs.** The three resizes run in threads (Pillow releases the GIL while resampling); as soon as a grid
  is resized, each row of its crops is normalised as a job of its own (numpy releases the GIL too), so the high
  grid's normalisation does not run on one core after everything else. (On a machine whose other core is busy,
  threads gain nothing; then only the amount of work counts, hence the points below.)
* **Gray pictures resize one band.** Pillow resamples each channel of an RGB image with the same fixed-point
  coefficients and 8-bit intermediate as a single-channel `L` image (`ImagingResample*_8bpc` share one formula for
  both layouts), so when R, G and B are equal (a grayscale study rendered as RGB) one `L` band is resized per grid,
  a third of the work, and normalised three times. Colour images keep the RGB resize, which costs less than three
  `L` resizes.
* **No copies, no float before cropping.** Each resized grid is tiled as a numpy view (reshape + swapaxes) and its
  uint8 values are normalised straight into the float32 output; no float64 temporary and no per-crop array exist.
* **Normalisation** is an exact uint8 → float32 cast and three in-place float32 ufuncs (`/255`, `−mean`, `/std`)
  per crop, all three channels at once, proven equal to CLIPImageProcessor's numbers on all 256 input values
  (`Normalizer`). Going crop by crop keeps each crop in the CPU cache across the passes (measured about 1.5× faster
  than passes over a whole grid; a table gather is slower still).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
from PIL import Image

from models._geometry import grid_sizes
from models.variants import Variant

__all__ = ["Normalizer", "image_patches", "normalization_lut", "to_rgb"]

# Jobs: three resizes, then one normalisation per row of crops. One worker more than the cores (at least 3, so
# the three resizes always overlap) keeps every core busy while a job waits on memory.
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


def _is_gray(image: Image.Image) -> bool:
    """True when R, G and B are equal everywhere (a grayscale picture sent as RGB): then one band is resized per grid.

    A strip of the top rows answers for almost every colour image; only when it is gray is the whole image compared.
    """
    top = np.asarray(image.crop((0, 0, image.width, min(image.height, 8))))
    if not (np.array_equal(top[..., 0], top[..., 1]) and np.array_equal(top[..., 0], top[..., 2])):
        return False
    r, g, b = (band.tobytes() for band in image.split())
    return r == g == b


def image_patches(image: Image.Image, variant: Variant, normalizer: Normalizer, *, concurrent: bool = True) -> np.ndarray:
    """float32 `(n_crops, 3, S, S)` normalised crops [global, medium…, high…] of an RGB image (see module docstring).

    Args:
        image: an RGB PIL image (use `to_rgb` first).
        variant: the Dragonfly variant (v2: 41 crops of 336, v1: 29 crops of 224).
        concurrent: run the resizes, and then each grid's normalisation row by row, in threads (same result).
    """
    if image.mode != "RGB":
        raise ValueError(f"image_patches needs an RGB image, got mode {image.mode!r} (convert it with to_rgb)")
    s, sizes = variant.crop_size, grid_sizes(image.size, variant)
    counts = [1] + [(w // s) * (h // s) for w, h in sizes[1:]]
    starts = np.cumsum([0] + counts)
    out = np.empty((int(starts[-1]), 3, s, s), dtype=np.float32)
    image.load()  # decode a lazily opened file once, here, not in several threads at the same time
    source = image.getchannel(0) if _is_gray(image) else image

    def resize(k: int) -> np.ndarray:
        """Grid k as uint8 crops `(rows, cols, s, s[, 3])`: a raster-order view of the resized array, no copy."""
        w, h = sizes[k]
        arr = np.asarray(source.resize((w, h), Image.Resampling.BICUBIC))
        return arr.reshape(h // s, s, w // s, s, *arr.shape[2:]).swapaxes(1, 2)

    def normalise(k: int, tiles: np.ndarray, row: int) -> None:
        dst = out[starts[k] : starts[k + 1]].reshape(*tiles.shape[:2], 3, s, s)
        normalizer.crops(tiles[row], dst[row])

    if not concurrent:
        for k in range(len(sizes)):
            tiles = resize(k)
            for row in range(tiles.shape[0]):
                normalise(k, tiles, row)
        return out
    resizes = {_POOL.submit(resize, k): k for k in (2, 1, 0)}  # largest grid first: it finishes last
    normalising: list[Future[None]] = []
    for done in as_completed(resizes):
        k, tiles = resizes[done], done.result()
        normalising += [_POOL.submit(normalise, k, tiles, row) for row in range(tiles.shape[0])]
    for future in normalising:
        future.result()
    return out
