"""Turn whatever the caller holds into the one RGB image the model sees.

The GUI passes a `medapp.view.ViewState` (so the model sees exactly what the viewer shows, through the same
`render_view`), scripts may pass a PIL image or a uint8 array. Anything else is a programming error, not a user
error, so it raises `TypeError`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_image"]


def to_image(view_or_image: Any) -> Any:
    from PIL import Image

    if isinstance(view_or_image, Image.Image):
        return view_or_image if view_or_image.mode == "RGB" else view_or_image.convert("RGB")
    try:
        import numpy as np

        if isinstance(view_or_image, np.ndarray):
            if view_or_image.dtype != np.uint8 or view_or_image.ndim not in (2, 3):
                raise TypeError(f"expected a uint8 (H, W) or (H, W, 3) array, got {view_or_image.dtype} {view_or_image.shape}")
            return Image.fromarray(view_or_image).convert("RGB")
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    from medapp.view import ViewState, render_view

    if isinstance(view_or_image, ViewState):
        return render_view(view_or_image)
    raise TypeError(f"cannot make an image from {type(view_or_image).__name__}")
