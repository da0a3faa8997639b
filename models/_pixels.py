"""Image → Dragonfly crops: input conversion, Pillow-exact resizes, tiling and vectorised normalisation (no torch).

Exactness: the official processor stretches the image with Pillow's `resize` (BICUBIC for RGB, with Pillow's
antialiasing when it shrinks) and normalises each crop through `CLIPImageProcessor`. torch's bicubic differs from
Pillow by up to 0.45 normalised units, so Pillow does the resizing here too. Speed: the three resizes run in
threads (Pillow releases the GIL while resampling); each resized grid is tiled as a numpy view and normalised
straight into the output while the larger resizes still run; normalisation is three in-place float32 ufuncs per
channel over all crops at once, proven equal to CLIPImageProcessor's numbers on all 256 input values (`Normalizer`),
instead of one image-processor call per crop. The result is bit-identical to the per-crop path.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Sequence

import numpy as np
from PIL import Image

from models._geometry import LAYOUTS, high_resolution, medium_resolution

__all__ = ["CropResult", "Normalizer", "image_crops", "image_patches", "normalize_crops", "normalization_lut", "to_rgb"]

_POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="dragonfly-resize")


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Linear min–max scaling of a high-bit-depth or float array to 0..255 (a window over the full data range)."""
    data = arr.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(arr.shape, dtype=np.uint8)
    lo, hi = float(data[finite].min()), float(data[finite].max())
    data = np.where(finite, data, lo)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip(np.rint((data - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


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


class CropResult:
    """Crops of one image: `crops` uint8 `(n_crops, S, S, 3)` in order [global, medium…, high…], plus the grids."""

    def __init__(self, crops: np.ndarray, medium_wh: tuple[int, int], high_wh: tuple[int, int]) -> None:
        self.crops = crops
        self.medium_wh = medium_wh
        self.high_wh = high_wh


def _tile_view(arr: np.ndarray, crop: int) -> np.ndarray:
    """`(H, W, 3)` → `(rows, cols, crop, crop, 3)` raster-order tiles as a strided view (no copy)."""
    h, w, c = arr.shape
    return arr.reshape(h // crop, crop, w // crop, crop, c).swapaxes(1, 2)


def _tiles(arr: np.ndarray, crop: int) -> np.ndarray:
    """`(H, W, 3)` → `(rows*cols, crop, crop, 3)` raster-order tiles."""
    view = _tile_view(arr, crop)
    return view.reshape(-1, crop, crop, arr.shape[2])


def _resize(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(img.resize(size, Image.Resampling.BICUBIC))


def _grids(image: Image.Image, version: str) -> tuple[int, list[tuple[int, int]]]:
    layout = LAYOUTS[version]
    s = layout.crop_size
    return s, [(s, s), medium_resolution(image.size, s), high_resolution(image.size, s, version)]


def image_crops(image: Image.Image, version: str, *, concurrent: bool = True) -> CropResult:
    """Official multi-resolution crops of an RGB image (stretching resizes, raster tiling, [global, medium, high]).

    Args:
        image: an RGB PIL image (use `to_rgb` first).
        version: 'v2' (41 crops of 336) or 'v1' (29 crops of 224).
        concurrent: run the three Pillow resizes in threads (same result, less wall time).
    """
    s, sizes = _grids(image, version)
    if concurrent:
        image.load()  # decode a lazily opened file once, here, not in three threads at the same time
        arrays = list(_POOL.map(lambda size: _resize(image, size), sizes))
    else:
        arrays = [_resize(image, size) for size in sizes]
    crops = np.concatenate([arrays[0][None], _tiles(arrays[1], s), _tiles(arrays[2], s)], axis=0)
    return CropResult(crops, sizes[1], sizes[2])


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

    The definition is the 256-entry table per channel (`normalization_lut`). Three in-place float32 ufuncs
    (`/255`, `−mean`, `/std`) are faster than a gather; they are used only when they reproduce the table for all
    256 values of every channel (checked once here, so equality holds for any image), else the table is gathered.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], rescale: float = 1 / 255) -> None:
        self.lut = normalization_lut(mean, std, rescale)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        probe = np.arange(256, dtype=np.uint8)[None, :].repeat(3, 0)
        out = np.empty((3, 256), dtype=np.float32)
        for c in range(3):
            self._arith(probe[c], out[c], c)
        self.exact_arithmetic = bool(np.array_equal(out, self.lut))

    def _arith(self, src: np.ndarray, dst: np.ndarray, c: int) -> None:
        np.divide(src, np.float32(255), out=dst, dtype=np.float32)
        np.subtract(dst, self.mean[c], out=dst)
        np.divide(dst, self.std[c], out=dst)

    def into(self, src_hw_c: np.ndarray, dst_c_hw: np.ndarray) -> None:
        """Normalise `src[..., c]` into `dst[..., c, :, :]`-shaped slices (any strides; no temporary copies)."""
        for c in range(3):
            if self.exact_arithmetic:
                self._arith(src_hw_c[..., c], dst_c_hw[c], c)
            else:
                np.take(self.lut[c], src_hw_c[..., c], out=dst_c_hw[c])


def normalize_crops(crops: np.ndarray, normalizer: "Normalizer | np.ndarray") -> np.ndarray:
    """uint8 `(n, S, S, 3)` → float32 `(n, 3, S, S)`."""
    if isinstance(normalizer, np.ndarray):  # a bare table
        n, s = crops.shape[:2]
        out = np.empty((n, 3, s, s), dtype=np.float32)
        for c in range(3):
            np.take(normalizer[c], crops[..., c], out=out[:, c])
        return out
    n, s = crops.shape[:2]
    out = np.empty((n, 3, s, s), dtype=np.float32)
    normalizer.into(crops, out.transpose(1, 0, 2, 3))
    return out


def image_patches(image: Image.Image, version: str, normalizer: Normalizer, *, concurrent: bool = True) -> np.ndarray:
    """float32 `(n_crops, 3, S, S)` normalised crops, pipelined: each grid is tiled and normalised straight from
    its resized array into the output as soon as its resize finishes, while the larger resizes still run.
    """
    s, sizes = _grids(image, version)
    counts = [1] + [(w // s) * (h // s) for w, h in sizes[1:]]
    starts = np.cumsum([0] + counts)
    out = np.empty((int(starts[-1]), 3, s, s), dtype=np.float32)

    def place(k: int, arr: np.ndarray) -> None:
        h, w = arr.shape[:2]
        tiles = _tile_view(arr, s)  # (rows, cols, s, s, 3)
        dst = out[starts[k] : starts[k + 1]].reshape(h // s, w // s, 3, s, s)
        normalizer.into(tiles, dst.transpose(2, 0, 1, 3, 4))

    if concurrent:
        image.load()  # decode a lazily opened file once, here, not in three threads at the same time
        futures = {_POOL.submit(_resize, image, size): k for k, size in enumerate(sizes)}
        for fut in as_completed(futures):
            place(futures[fut], fut.result())
    else:
        for k, size in enumerate(sizes):
            place(k, _resize(image, size))
    return out
