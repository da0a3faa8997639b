"""What the viewer shows, as data: `ViewState`, and `render_view(state)`, the one function that turns it into pixels.

`ViewState` is the frozen value (a CLI request, a model input's provenance); the live, evented state of a window
is `medapp.viewer_state.ViewerState`, whose `to_view()` gives the `ViewState` of what it shows.

The CLI (`medapp render`), the app core (the image sent to the model) and the GUI viewer all call `render_view`, so
"what the clinician saw" and "what the model got" cannot drift apart.

Windows: an explicit (center, width) wins; a preset name is resolved by `preset_window`, the one place that does
so, with the user's `window_presets` setting first and dicom_io's built-ins second, so `medapp render --preset`,
`ask/report --preset` and the viewer cannot disagree about what "ct-lung" means.

Coordinates: for DICOM / plain images `region` is (x, y, w, h) in image pixels of the frame. For whole-slide images
`region` is (x, y, w, h) in level-0 pixels, read at pyramid `level` (w/d x h/d for that level's downsample d);
without a level, `slide_region_level` picks the finest level that keeps the read within `MODEL_SIDE` once shrunk.
Every slide image is then shrunk (never enlarged) to at most `MODEL_SIDE` pixels on its longest side: that is the
largest image the model is given, whatever asked for it. `render_slide_region(slide, region, level)` is the one
place a slide region is read and shrunk: `render_view` and the GUI slide viewer's model input both use it (the viewer
only picks its own level, the screen's). Without a region the whole slide is rendered at `level`, or as an overview
when no level is given. Opened files are cached (keyed by path and modification time) so
scrolling does not re-read headers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from PIL import Image

MODEL_SIDE = 2048  # longest side of any slide image rendered for the viewer's model input, the CLI and the model
OVERVIEW_PX = MODEL_SIDE


@dataclass(frozen=True)
class ViewState:
    path: Path
    frame: int = 0
    window: tuple[float, float] | None = None  # (center, width) chosen by the clinician; wins over `preset`
    preset: str | None = None  # a built-in (dicom_io.PRESETS) or user (settings) preset name; see `preset_window`
    region: tuple[int, int, int, int] | None = None
    level: int | None = None  # slides only

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def with_(self, **changes: object) -> ViewState:
        return replace(self, **changes)  # type: ignore[arg-type]


# Dropped, not closed, on eviction: a caller may still hold the object (an open slide is freed when nobody does).
_CACHE: LRUCache[tuple[str, float], object] = LRUCache(maxsize=4)
_LOCK = threading.Lock()


def open_cached(path: str | Path) -> Any:
    """`dicom_io.open_path` (a `dicom_io.Opened`: stack, collection or slide) with a small cache of recently opened
    files (invalidated when the file changes). Typed Any: callers tell the three apart by their attributes."""
    import dicom_io

    p = Path(path)
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError:
        return dicom_io.open_path(p)  # raises the proper InputError (missing file ...)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    opened = dicom_io.open_path(p)
    with _LOCK:
        _CACHE[key] = opened
    return opened


def user_presets(settings: Any) -> dict[str, Any]:  # -> dict[str, dicom_io.Window]
    """The user's presets (settings `window_presets`, already validated by Settings) as dicom_io Windows; none
    without settings."""
    from dicom_io import Window

    return {name: Window(float(v["center"]), float(v["width"]), explanation=name)
            for name, v in (getattr(settings, "window_presets", None) or {}).items()}


def preset_window(name: str, settings: Any = None):  # -> dicom_io.Window
    """The window for preset `name`: the user's preset (settings `window_presets`) first, else the built-in one.

    The one place preset names become windows; names follow dicom_io's spelling rules (`dicom_io.preset_key`:
    "Lung", "ct_lung" -> "ct-lung") for both kinds. `settings=None` reads the user's settings file, as every command
    does. Unknown names raise `UserError` listing the built-in and the user's names.
    """
    import dicom_io
    from medapp.errors import UserError

    if settings is None:
        from medapp.settings import Settings

        settings = Settings.load()
    own = user_presets(settings)
    for key in (name, dicom_io.preset_key(name)):
        if key in own:
            return own[key]
    try:
        return dicom_io.preset(name)
    except KeyError:
        names = ", ".join([*dicom_io.PRESETS, *(n for n in own if n not in dicom_io.PRESETS)])
        raise UserError(f"unknown window preset {name!r}; available: {names}") from None


def resolve_window(state: ViewState, settings: Any = None):  # -> dicom_io.Window | None
    """The window to apply: explicit (center, width), else the preset (`preset_window`), else None (the file's)."""
    from dicom_io import Window

    if state.window is not None:
        center, width = state.window
        return Window(float(center), float(width), explanation="manual")
    if state.preset:
        return preset_window(state.preset, settings)
    return None


def _as_view(state: Any) -> ViewState:
    """A frozen `ViewState`, or the live `medapp.viewer_state.ViewerState` of a window taken as its `to_view()`."""
    if isinstance(state, ViewState):
        return state
    view = state.to_view()
    if view is None:
        raise ValueError("nothing is open: the viewer state shows no document")
    return view


def _shown(state: Any) -> Any:
    """The ImageStack or Slide `state` shows: a folder shows its first series (else its first picture)."""
    from dicom_io import Collection, NoImagesError

    state = _as_view(state)
    opened = open_cached(state.path)
    if isinstance(opened, Collection):
        series = [s for s in opened.series if s.n_images]
        if series:
            return series[0].open()
        if opened.images:
            return open_cached(opened.images[0])
        raise NoImagesError(state.path, "the folder holds no displayable series")
    return opened


def view_warnings(state: Any) -> list[str]:
    """What the shown stack or slide warns about (a flat-making rescale, a threshold window, slice gaps ...), so a
    command that writes the view can say it; the objects are the cached ones `render_view` used."""
    return list(getattr(_shown(state), "warnings", []) or [])


def render_view(state: Any, settings: Any = None) -> Image.Image:
    """The RGB image for `state`: exactly what the viewer shows and what the model receives.

    `state` is a frozen `ViewState` (the CLI builds one from its flags) or the live, evented
    `medapp.viewer_state.ViewerState` of a window, taken as its `to_view()`. `settings` resolves a preset name
    (default: the user's settings file); nothing else depends on it.
    """
    from dicom_io import InputError, Slide

    state = _as_view(state)
    opened = _shown(state)
    if isinstance(opened, Slide):
        return _render_slide(opened, state)
    if state.level not in (None, 0):
        raise InputError(state.path, "--level applies to whole-slide images only")
    return opened.render_rgb(state.frame, resolve_window(state, settings), state.region)


def slide_region_level(slide: Any, region: tuple[int, int, int, int], max_side: int = MODEL_SIDE) -> int:
    """The pyramid level to read level-0 `region` (x, y, w, h) at, for an image of at most `max_side` pixels.

    The finest level whose downsample is at most what `max_side` needs (`best_level_for_downsample`), so the read
    is at least as sharp as the result and is then shrunk, never enlarged; coarser only while the read would
    exceed what `Slide.read_region` reads at once. Why not the coarsest level that fits: its downsample is larger
    than needed, so the image would come out smaller than `max_side` and blurrier than necessary.
    """
    from dicom_io.slide import MAX_REGION_PIXELS

    w, h = int(region[2]), int(region[3])
    level = slide.best_level_for_downsample(max(w, h) / max_side)
    while level + 1 < slide.level_count:
        d = float(slide.level_downsamples[level])
        if round(w / d) * round(h / d) <= MAX_REGION_PIXELS:
            break
        level += 1
    return level


def _fit(image: Image.Image) -> Image.Image:
    """Shrink (never enlarge) to at most MODEL_SIDE on the longest side, keeping the aspect ratio."""
    if max(image.size) > MODEL_SIDE:
        image.thumbnail((MODEL_SIDE, MODEL_SIDE), Image.Resampling.LANCZOS)
    return image


def render_slide_region(slide: Any, region: tuple[int, int, int, int], level: int) -> Image.Image:
    """The RGB image of level-0 `region` (x, y, w, h) read at pyramid `level` (w/d x h/d px for its downsample d),
    then shrunk (never enlarged) to at most MODEL_SIDE px by `_fit`.

    The one place slide regions are read and shrunk: `render_view` (so `medapp render`, ask and report) and the
    slide viewer's model input. Raises `dicom_io.RegionError` for an empty region or a level outside the pyramid.
    """
    from dicom_io import RegionError

    x, y, w, h = (int(v) for v in region)
    if w <= 0 or h <= 0:
        raise RegionError(slide.path, f"region size {w}x{h} is empty")
    level = slide.check_level(level)
    d = slide.level_downsamples[level]
    return _fit(slide.read_region((x, y), level, (max(1, round(w / d)), max(1, round(h / d)))))


def _render_slide(slide, state: ViewState) -> Image.Image:  # slide: dicom_io.Slide
    from dicom_io import RegionError

    if state.frame not in (0, None):
        raise RegionError(slide.path, "slides have no frames; use --region and --level")
    if state.region is None:
        if state.level is None:
            return slide.thumbnail(MODEL_SIDE)
        w, h = slide.level_dimensions[slide.check_level(state.level)]
        return _fit(slide.read_region((0, 0), state.level, (w, h)))
    level = slide_region_level(slide, state.region) if state.level is None else state.level
    return render_slide_region(slide, state.region, level)  # an empty region is refused there, before any read


MAX_MODEL_SIDE = 4096  # a slide read at the screen's level bigger than this goes to a coarser level (then shrunk)


def model_level(slide: Any, region: tuple[int, int, int, int], downsample: float) -> int:
    """Pyramid level the model input is read from: the finest level no finer than the screen (`downsample`,
    level-0 px per screen px), moved to coarser levels while the read would exceed MAX_MODEL_SIDE px.
    `render_slide_region` then reads and shrinks it."""
    w, h = region[2], region[3]
    level = int(slide.best_level_for_downsample(max(1.0, float(downsample))))
    while level + 1 < slide.level_count and max(w, h) / float(slide.level_downsamples[level]) > MAX_MODEL_SIDE:
        level += 1
    return level
