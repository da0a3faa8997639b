"""Per-category bar charts as PNG, drawn with Pillow (already a dependency; matplotlib would add ~40 MB for this).

One chart per category kind (modality, organ, question type ...): a row per category value, with a bar for closed
accuracy and one for open token recall (the LLaVA-Med headline pair), 0..100 %, and the question counts in the
label, so a small category's number is not read as strongly as a large one's. Horizontal bars keep long category
names readable without rotated text.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SERIES", "render_category_chart"]

SERIES = (("closed_accuracy", "closed accuracy", (46, 110, 180)), ("open_recall", "open recall", (230, 140, 40)))
_LABEL_W, _BAR_W, _ROW_H, _BAR_H, _MARGIN = 260, 420, 44, 16, 16


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def render_category_chart(kind: str, groups: Mapping[str, Mapping[str, Any]], path: str | Path, *,
                          title: str = "") -> Path:
    """Draw `groups` (category value -> totals, as `scoring.totals` returns) to `path` (PNG); returns the path."""
    from PIL import Image, ImageDraw

    rows = list(groups.items())
    width = _MARGIN * 2 + _LABEL_W + _BAR_W + 60
    top = 56
    height = top + max(1, len(rows)) * _ROW_H + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(11)
    draw.text((_MARGIN, 10), title or f"by {kind.replace('_', ' ')}", fill="black", font=font)
    x0 = _MARGIN + _LABEL_W
    for i, (_name, _label, colour) in enumerate(SERIES):  # legend
        lx = x0 + i * 160
        draw.rectangle((lx, 34, lx + 12, 46), fill=colour)
        draw.text((lx + 18, 33), _label, fill="black", font=small)
    for tick in range(0, 101, 25):  # grid
        x = x0 + _BAR_W * tick / 100
        draw.line((x, top - 4, x, height - 34), fill=(220, 220, 220))
        draw.text((x - 8, height - 30), f"{tick}%", fill="gray", font=small)
    for r, (value, t) in enumerate(rows):
        y = top + r * _ROW_H
        label = f"{value[:28]}  (closed {t.get('n_closed', 0)}, open {t.get('n_open', 0)})"
        draw.text((_MARGIN, y + 12), label, fill="black", font=small)
        for s, (key, _label, colour) in enumerate(SERIES):
            number = t.get(key)
            by = y + 4 + s * (_BAR_H + 2)
            if number is None:
                draw.text((x0 + 4, by + 2), "n/a", fill="gray", font=small)
                continue
            draw.rectangle((x0, by, x0 + max(1, round(_BAR_W * number)), by + _BAR_H), fill=colour)
            draw.text((x0 + _BAR_W * number + 4, by + 2), f"{100 * number:.1f}", fill="black", font=small)
    path = Path(path)
    image.save(path, format="PNG")
    return path
