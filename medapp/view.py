"""What the viewer shows, as data: `ViewState`, and `render_view(state)`, the one function that turns it into pixels.

The CLI (`medapp render`), the app core (the image sent to the model) and the GUI viewer all call `render_view`, so
"what the clinician saw" and "what the model got" cannot drift apart.

Coordinates: for DICOM / plain images `region` is (x, y, w, h) in image pixels of the frame. For whole-slide images
`region` is (x, y, w, h) in level-0 pixels, read at pyramid `level` (output size w/d x h/d for that level's
downsample d); without a region the whole slide is rendered at `level`, or as a 2048-pixel overview when no level
is given. Opened files are cached (keyed by path and modification time) so scrolling does not re-read headers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

OVERVIEW_PX = 2048


@dataclass(frozen=True)
class ViewState:
    path: Path
    frame: int = 0
    window: tuple[float, float] | None = None  # (center, width) chosen by the clinician; wins over `preset`
    preset: str | None = None  # a name from dicom_io.PRESETS
    region: tuple[int, int, int, int] | None = None
    level: int | None = None  # slides only

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def with_(self, **changes: object) -> ViewState:
        return replace(self, **changes)  # type: ignore[arg-type]


_CACHE: OrderedDict[tuple[str, float], object] = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def open_cached(path: str | Path) -> object:
    """`dicom_io.open_path` with a small cache of recently opened files (invalidated when the file changes)."""
    import dicom_io

    p = Path(path)
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError:
        return dicom_io.open_path(p)  # raises the proper InputError (missing file ...)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    opened = dicom_io.open_path(p)
    with _LOCK:
        _CACHE[key] = opened
        while len(_CACHE) > _CACHE_SIZE:
            # Dropped, not closed: a caller may still hold it (an open slide is freed when nobody does).
            _CACHE.popitem(last=False)
    return opened


def resolve_window(state: ViewState):  # -> dicom_io.Window | None
    """The window to apply: explicit (center, width), else the preset, else None (the file's own / automatic)."""
    from dicom_io import Window, preset

    if state.window is not None:
        center, width = state.window
        return Window(float(center), float(width), explanation="manual")
    if state.preset:
        return preset(state.preset)
    return None


def render_view(state: ViewState) -> Image.Image:
    """The RGB image for `state`: exactly what the viewer shows and what the model receives."""
    from dicom_io import Collection, InputError, NoImagesError, Slide

    opened = open_cached(state.path)
    if isinstance(opened, Collection):
        series = [s for s in opened.series if s.n_images]
        if series:
            opened = series[0].open()
        elif opened.images:
            opened = open_cached(opened.images[0])
        else:
            raise NoImagesError(state.path, "the folder holds no displayable series")
    if isinstance(opened, Slide):
        return _render_slide(opened, state)
    if state.level not in (None, 0):
        raise InputError(state.path, "--level applies to whole-slide images only")
    return opened.render_rgb(state.frame, resolve_window(state), state.region)  # type: ignore[union-attr]


def _render_slide(slide, state: ViewState) -> Image.Image:  # slide: dicom_io.Slide
    from dicom_io import RegionError

    if state.frame not in (0, None):
        raise RegionError(slide.path, "slides have no frames; use --region and --level")
    if state.region is None:
        if state.level is None:
            return slide.thumbnail(OVERVIEW_PX)
        w, h = slide.level_dimensions[slide.check_level(state.level)]
        return slide.read_region((0, 0), state.level, (w, h))
    level = 0 if state.level is None else slide.check_level(state.level)
    x, y, w, h = (int(v) for v in state.region)
    if w <= 0 or h <= 0:
        raise RegionError(slide.path, f"region size {w}x{h} is empty")
    d = slide.level_downsamples[level]
    return slide.read_region((x, y), level, (max(1, round(w / d)), max(1, round(h / d))))
