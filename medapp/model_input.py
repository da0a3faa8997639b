"""What the model would be given now, derived from the viewer state: `ModelInput` and `model_input_for(state)`.

Why derived: the image the model sees must be exactly the one on screen. `model_input_for` reads the one
`ViewerState` (frame, window, region; for slides the region or the visible part at the screen's resolution)
and renders lazily with the same functions the viewer and `medapp render` use, so screen, model and provenance
(`view_state`, a `medapp.view.ViewState`) cannot disagree. Qt-free: the CLI, jobs and tests build one too.

The display transform (`ViewerState.invert`, `rotation`, `flip_h`, `flip_v`) is deliberately *not* applied: the
model gets the frame in the file's own orientation and polarity, under the same window and region the clinician
chose. Rotating, mirroring or inverting are reading aids for a human; for the model they would only move the image
away from how such images are acquired and described (an inverted chest film is not a different finding, and a
mirrored one would swap the patient's left and right in the answer). The region stays in the file's pixels, so a
region drawn on a rotated view is the same anatomy in the model input.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medapp.view import MAX_MODEL_SIDE, model_level  # re-exported: the level rule lives with the slide renderer

if TYPE_CHECKING:
    from PIL import Image

    from medapp.viewer_state import ViewerState

__all__ = ["ModelInput", "image_key", "model_input_for", "model_level", "MAX_MODEL_SIDE"]



def image_key(image: Image.Image) -> str:
    """Content hash of an RGB image (mode, size and pixels): the key for chat history and the engine's cache."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()




class ModelInput:
    """What the model would be given now: an RGB image plus where it came from.

    `image` is rendered on first access and then cached (thread-safe), because for a slide it reads the pyramid
    from disk: touch it in a worker for slides. For DICOM and plain images it costs milliseconds.
    `key` is the sha256 of the pixels, so two identical views share a key whatever the path they came from.
    """

    def __init__(
        self,
        render: Callable[[], Image.Image],
        *,
        description: str,
        source: Path | None,
        region: tuple[int, int, int, int] | None = None,
        modality: str | None = None,
        dataset: Any = None,
        frame: int | None = None,
        window: Any = None,
        kind: str = "image",
        view_id: str = "",
        view_state: Any = None,
    ) -> None:
        self._render = render
        self._image: Image.Image | None = None
        self._key: str | None = None
        self._lock = threading.Lock()
        self.description = description
        self.source = source
        self.region = region  # (x, y, w, h) in image pixels (level 0 for slides), None = whole image / view
        self.modality = modality
        self._dataset = dataset  # pydicom Dataset of the shown frame, a callable returning it, or None
        self.frame = frame
        self.window = window  # dicom_io.Window or None
        self.kind = kind  # "dicom" | "series" | "image" | "slide"
        self.view_id = view_id  # cheap identity of the view state (source, frame, window, region), no pixels
        # medapp.view.ViewState that reproduces `image` with `render_view` / `medapp render` (provenance), or None
        self.view_state = view_state

    @property
    def image(self) -> Image.Image:
        with self._lock:
            if self._image is None:
                image = self._render()
                self._image = image if image.mode == "RGB" else image.convert("RGB")
            return self._image

    @property
    def dataset(self) -> Any:
        """The pydicom header of the shown frame (read on first access; may touch the disk), or None."""
        with self._lock:
            if callable(self._dataset):
                self._dataset = self._dataset()
            return self._dataset

    @property
    def key(self) -> str:
        image = self.image
        with self._lock:
            if self._key is None:
                self._key = image_key(image)
            return self._key

    def __repr__(self) -> str:  # no PHI: description is built from non-identifying fields
        return f"ModelInput({self.kind}, {self.description!r}, region={self.region})"


def model_input_for(state: ViewerState, *, use_region: bool = True, description: str = "") -> ModelInput | None:
    """The `ModelInput` for what `state` shows, or None when nothing (or an empty slide view) is shown.

    Stacks: the drawn region (if `use_region`) of the current frame at the current window. Slides: the drawn
    region, else the visible part, read at `model_level` for the screen's downsample (`state.downsample`) unless
    the state names a `level`. The values are captured now, so later changes of the state do not alter it.
    """
    from medapp.view import ViewState

    if state.is_slide:
        return _slide_input(state, use_region, description)
    stack = state.stack
    if stack is None:
        return None
    frame, window = state.frame, state.window
    roi = state.region if use_region else None
    instances = getattr(stack, "instances", None) or []
    source = instances[frame] if len(instances) == getattr(stack, "n_frames", 0) and instances else stack.path
    window_id = None if window is None else (round(window.center, 3), round(window.width, 3))
    return ModelInput(
        lambda: stack.render_rgb(frame, window, region=roi),
        description=description,
        source=source,
        region=roi,
        modality=state.modality,
        dataset=lambda: stack.dataset(frame),
        frame=frame,
        window=window,
        kind=stack.kind,
        view_id=f"{stack.path}|{frame}|{window_id}|{roi}",
        view_state=ViewState(stack.path, frame=frame, window=window_id and (window.center, window.width), region=roi),
    )


def _slide_input(state: ViewerState, use_region: bool, description: str) -> ModelInput | None:
    from medapp.view import ViewState, render_slide_region  # the core's read + shrink, as render_view's

    slide = state.slide
    roi = state.region if use_region else None
    region = roi or state.visible
    if region is None or region[2] < 1 or region[3] < 1:
        return None
    level = state.level if state.level is not None else model_level(slide, region, state.downsample or 1.0)
    return ModelInput(
        lambda: render_slide_region(slide, region, level),
        description=description,
        source=slide.path,
        region=region,
        modality="SM",
        dataset=None,
        kind="slide",
        view_id=f"{slide.path}|{region}|{level}",
        view_state=ViewState(slide.path, region=region, level=level),
    )
