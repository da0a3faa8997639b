"""Pillow's BICUBIC resize re-implemented in torch, bit for bit, so preprocessing can run on a GPU.

Why not `torch.nn.functional.interpolate(mode="bicubic", antialias=True)`: it differs from Pillow by up to 0.45
normalised units on sharp edges, and Dragonfly was trained on Pillow's pixels. Pillow's resampler is a separable
convolution with fixed-point weights; this module follows the same published algorithm step by step:

* per output index, weights of the Keys cubic (a = −0.5) over a support scaled by the reduction factor (this is
  Pillow's antialiasing), evaluated in float64, normalised by their sequential sum, then rounded half away from
  zero to 22-bit fixed point;
* two passes, each accumulating `pixel × weight` in 32-bit integers from a rounding offset of 2^21, shifting right
  by 22 and clamping to 0..255 — the intermediate image is 8-bit, as in Pillow;
* an axis whose size does not change is left alone.

Integer arithmetic makes the result independent of the device and of summation order, hence exact on GPU too.

Pass order (known limit): Pillow's C source runs the horizontal pass first, but the installed Pillow 13.0.0 build
runs the vertical pass first for some size pairs, and the intermediate 8-bit rounding makes the order visible
(a few grey levels). Its rule is not published; the rule used here — vertical first when the height shrinks and
shrinks relatively more than the width (on a tie: when the image is taller than wide) — reproduced its choice on 245 of 250 random size pairs and on every grid of
the golden cases (tests/models/test_torch_resize.py checks those bit for bit). The processor's default path stays
Pillow itself; this module is the optional GPU path.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["bicubic_coefficients", "image_patches_torch", "resize_bicubic", "vertical_first"]

_PRECISION_BITS = 32 - 8 - 2
_SUPPORT = 2.0


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = −0.5, evaluated in the same operation order as Pillow (float64)."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@lru_cache(maxsize=64)
def bicubic_coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and 22-bit fixed-point weights of each output sample: `(out, K)` int64 arrays each.

    Unused taps (beyond an output's support) carry weight 0 and a valid index, so a gather never goes out of range.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    # C's (int) cast truncates toward zero; the lower bound is then clamped at 0 anyway.
    xmin = np.trunc(centers - support + 0.5).astype(np.int64).clip(min=0)
    xmax = np.trunc(centers + support + 0.5).astype(np.int64).clip(max=in_size) - xmin
    taps = np.arange(ksize, dtype=np.int64)
    used = taps[None, :] < xmax[:, None]
    raw = _keys_cubic((taps[None, :] + xmin[:, None] - centers[:, None] + 0.5) * (1.0 / filterscale))
    raw = np.where(used, raw, 0.0)
    total = np.zeros(out_size, dtype=np.float64)
    for j in range(ksize):  # sequential sum, in Pillow's order (numpy's sum would be pairwise)
        total = total + raw[:, j]
    safe = np.where(total != 0.0, total, 1.0)
    weights = np.where(total[:, None] != 0.0, raw / safe[:, None], raw)
    fixed = np.where(weights < 0, np.trunc(-0.5 + weights * (1 << _PRECISION_BITS)), np.trunc(0.5 + weights * (1 << _PRECISION_BITS)))
    index = np.minimum(xmin[:, None] + taps[None, :], in_size - 1)
    return index, fixed.astype(np.int64)


def _resample_last_axis(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """One separable pass along the last axis of an int32 tensor of 8-bit values; returns 8-bit values (int32)."""
    index, weights = bicubic_coefficients(x.shape[-1], out_size)
    idx = torch.from_numpy(index).to(x.device)
    w = torch.from_numpy(weights).to(device=x.device, dtype=torch.int32)
    acc = torch.full((*x.shape[:-1], out_size), 1 << (_PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    for j in range(idx.shape[1]):  # taps in ascending order, like Pillow's inner loop (no int32 overflow there either)
        acc += x[..., idx[:, j]] * w[:, j]
    return torch.bitwise_right_shift(acc, _PRECISION_BITS).clamp_(0, 255)


def vertical_first(in_wh: tuple[int, int], out_wh: tuple[int, int]) -> bool:
    """Pass order Pillow 13 appears to use (see module docstring): vertical first when the height shrinks more."""
    (in_w, in_h), (out_w, out_h) = in_wh, out_wh
    if out_h >= in_h:
        return False
    lhs, rhs = out_w * in_h, in_w * out_h  # compare out_w / in_w with out_h / in_h without rounding
    return lhs > rhs or (lhs == rhs and in_h > in_w)


def resize_bicubic(image: torch.Tensor, size: tuple[int, int], order: str = "auto") -> torch.Tensor:
    """Resize a uint8 `(C, H, W)` (or `(H, W)`) tensor to `size = (width, height)` like Pillow's BICUBIC.

    Args:
        order: "auto" (Pillow 13's apparent choice), "hv" (horizontal first, Pillow's C source) or "vh".
    Runs on the tensor's device; the output is uint8 with the same layout.
    """
    if image.dtype != torch.uint8:
        raise ValueError(f"resize_bicubic expects uint8 pixels, got {image.dtype}")
    out_w, out_h = size
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"target size {size} must be positive")
    if order not in ("auto", "hv", "vh"):
        raise ValueError(f"order {order!r}: use 'auto', 'hv' or 'vh'")
    x = image.to(torch.int32)
    in_h, in_w = x.shape[-2:]
    if order == "auto":
        order = "vh" if vertical_first((in_w, in_h), (out_w, out_h)) else "hv"

    def horizontal(t: torch.Tensor) -> torch.Tensor:
        return _resample_last_axis(t, out_w) if t.shape[-1] != out_w else t

    def vertical(t: torch.Tensor) -> torch.Tensor:
        return _resample_last_axis(t.transpose(-1, -2), out_h).transpose(-1, -2) if t.shape[-2] != out_h else t

    x = vertical(horizontal(x)) if order == "hv" else horizontal(vertical(x))
    return x.to(torch.uint8).contiguous()


def image_patches_torch(image: torch.Tensor, version: str, mean: list[float], std: list[float]) -> torch.Tensor:
    """Dragonfly crops computed entirely in torch on `image`'s device (GPU preprocessing next to the model).

    Args:
        image: uint8 `(3, H, W)` RGB tensor.
        version: 'v2' or 'v1'.
    Returns:
        float32 `(n_crops, 3, S, S)`, the same numbers as the Pillow path where the resizes agree (see above).
    """
    from models._geometry import LAYOUTS, high_resolution, medium_resolution

    s = LAYOUTS[version].crop_size
    size_wh = (int(image.shape[-1]), int(image.shape[-2]))
    grids = [(s, s), medium_resolution(size_wh, s), high_resolution(size_wh, s, version)]
    crops = []
    for w, h in grids:
        big = resize_bicubic(image, (w, h))
        tiles = big.reshape(3, h // s, s, w // s, s).permute(1, 3, 0, 2, 4).reshape(-1, 3, s, s)
        crops.append(tiles)
    pixels = torch.cat(crops).to(torch.float32)
    m = torch.tensor(mean, dtype=torch.float32, device=image.device).view(1, 3, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32, device=image.device).view(1, 3, 1, 1)
    return pixels.div_(255).sub_(m).div_(sd)
