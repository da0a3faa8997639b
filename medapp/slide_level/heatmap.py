"""The scores drawn over the slide thumbnail, with the picked regions as numbered boxes (Pillow only).

Two pieces so the window can toggle the colours without redrawing the slide: `score_overlay` is a transparent RGBA
layer the size of the thumbnail (candidates coloured by score, everything else clear), `heatmap_image` composes it
with the thumbnail and the numbered boxes into the PNG that goes next to `slide.json`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["colormap", "draw_region_boxes", "heatmap_image", "score_overlay"]

# A perceptually ordered blue → yellow ramp (viridis key points), so "more yellow" reads as "higher score".
_RAMP = np.array(
    [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64
)
BOX_COLOUR = (230, 30, 30)


def colormap(values: np.ndarray) -> np.ndarray:
    """`values` in 0..1 → uint8 RGB along the ramp."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_RAMP) - 2)
    t = (v - lo)[..., None]
    return np.round(_RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t).astype(np.uint8)


def score_overlay(
    size: tuple[int, int], slide_size: tuple[int, int], boxes: np.ndarray, scores: np.ndarray, alpha: int = 150
) -> Image.Image:
    """RGBA layer of `size` (thumbnail pixels): each scored candidate's box filled by its normalised score."""
    width, height = size
    sx, sy = width / slide_size[0], height / slide_size[1]
    layer = np.zeros((height, width, 4), dtype=np.uint8)
    scores = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(scores)
    if ok.any():
        lo, hi = float(scores[ok].min()), float(scores[ok].max())
        norm = (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
        colours = colormap(np.nan_to_num(norm))
        for (x, y, w, h), colour, good in zip(np.asarray(boxes).reshape(-1, 4), colours, ok, strict=True):
            if not good:
                continue
            x0, y0 = int(x * sx), int(y * sy)
            x1, y1 = max(int((x + w) * sx), x0 + 1), max(int((y + h) * sy), y0 + 1)
            layer[y0:y1, x0:x1, :3] = colour
            layer[y0:y1, x0:x1, 3] = alpha
    return Image.fromarray(layer, "RGBA")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def draw_region_boxes(
    image: Image.Image, slide_size: tuple[int, int], boxes: Sequence[Sequence[int]], *, width: int | None = None
) -> Image.Image:
    """A copy of `image` (a whole-slide thumbnail) with box i drawn and labelled "i+1" (the region number)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    sx, sy = out.width / slide_size[0], out.height / slide_size[1]
    line = width or max(2, round(max(out.size) / 400))
    font = _font(max(12, round(max(out.size) / 45)))
    for number, (x, y, w, h) in enumerate(boxes, 1):
        x0, y0 = x * sx, y * sy
        x1, y1 = max((x + w) * sx, x0 + 3), max((y + h) * sy, y0 + 3)
        pad = line + 1
        draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), outline=BOX_COLOUR, width=line)
        label = str(number)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tx, ty = x1 + pad + 2, y0 - pad
        if tx + right - left + 4 > out.width:
            tx = x0 - pad - (right - left) - 6
        tx, ty = max(0, tx), min(max(0, ty), out.height - (bottom - top) - 4)
        draw.rectangle((tx, ty, tx + right - left + 4, ty + bottom - top + 4), fill=(255, 255, 255))
        draw.text((tx + 2 - left, ty + 2 - top), label, fill=BOX_COLOUR, font=font)
    return out


def heatmap_image(
    thumbnail: Image.Image, slide_size: tuple[int, int], boxes: np.ndarray, scores: np.ndarray,
    picked_boxes: Sequence[Sequence[int]],
) -> Image.Image:
    """Thumbnail + score colours + numbered picked boxes, RGB."""
    base = thumbnail.convert("RGBA")
    base.alpha_composite(score_overlay(base.size, slide_size, boxes, scores))
    return draw_region_boxes(base.convert("RGB"), slide_size, picked_boxes)
