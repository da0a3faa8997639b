"""From a path (plus frame / region / window) to the RGB image the model sees, for the CLI and batch jobs.

The window renders through `medapp.view`; scripts and the command line have only a path, so this module makes the
same choices a clinician gets by default in the viewer: a DICOM at its stored default window (or the window or
preset asked for), the first frame unless told otherwise, a slide as an overview or a region of at most
`MAX_REGION_SIDE` pixels (a level-0 region of a slide can be gigapixels). The pixels, the pyramid level and the
preset come from `medapp.view` (`render_view`, `slide_region_level`, `preset_window`), so the command line sends
the model what `medapp render` writes and the window would show for the same path, frame, region and window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.view import MODEL_SIDE

__all__ = ["LoadedImage", "load_image", "parse_region", "record_open", "MAX_REGION_SIDE"]

MAX_REGION_SIDE = MODEL_SIDE  # longest side of a slide region sent to the model (decided in medapp.view)


@dataclass
class LoadedImage:
    """The model input plus what reports and the audit need about its source (no PHI in the plain fields)."""

    image: Any  # PIL RGB
    path: Path
    kind: str  # "dicom" | "image" | "series" | "slide"
    modality: str | None
    dataset: Any = None  # pydicom Dataset of the shown frame (DICOM only): identifiers for report / DICOM export
    frame: int | None = None
    region: tuple[int, int, int, int] | None = None
    window: Any = None  # dicom_io.Window actually used, if any
    source_file: Path | None = None  # the file the pixels came from (a series' shown instance), for its hash


def parse_region(text: str) -> tuple[int, int, int, int]:
    """ "X,Y,W,H" -> ints, with a user-facing error for anything else."""
    parts = [p.strip() for p in text.split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"--region must be X,Y,W,H in whole pixels, got {text!r}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise UserError(f"--region needs X,Y >= 0 and W,H > 0, got {text!r}")
    return x, y, w, h


def load_image(
    path: str | Path,
    *,
    frame: int | None = None,
    region: tuple[int, int, int, int] | None = None,
    window: Any = None,
    preset: str | None = None,
    settings: Any = None,
) -> LoadedImage:
    """Open `path` and render what the model should see, through `medapp.view.render_view` (the viewer's own
    renderer). Raises `dicom_io.InputError` for a bad file, frame or region, `UserError` for an unknown preset.

    `window` is a `dicom_io.Window` or (center, width) and wins over `preset` (a name resolved with `settings`'
    overrides, default the user's settings file). A folder is shown as its first series (as the viewer does). A
    slide region comes back with its longest side at most `MAX_REGION_SIDE`; without a region a slide is its
    overview.
    """
    from medapp.view import ViewState, open_cached, render_view, resolve_window

    path = Path(path)
    opened = open_cached(path)
    kind = getattr(opened, "kind", None)
    pair = None if window is None else tuple(window) if isinstance(window, tuple) else (window.center, window.width)
    state = ViewState(
        path,
        0 if frame is None else int(frame),
        window=(float(pair[0]), float(pair[1])) if pair is not None else None,
        preset=preset if pair is None else None,
        region=region,
    )
    chosen = window if window is not None and not isinstance(window, tuple) else resolve_window(state, settings)
    image = render_view(state, settings).convert("RGB")
    if kind == "slide":
        return LoadedImage(image, path, "slide", "SM", None, None, region, None, path if path.is_file() else None)
    stack = opened
    if kind not in ("dicom", "image", "series"):  # a Collection: the viewer shows its first series
        series = [s for s in getattr(opened, "series", []) if s.n_images]
        if not series:
            first = opened.images[0] if getattr(opened, "images", None) else None
            return LoadedImage(image, path, "image", None, None, state.frame, region, None, first)
        stack = series[0].open()
        kind = stack.kind
    dataset = stack.dataset(state.frame) if kind != "image" else None
    used = chosen if chosen is not None else stack.default_window
    # the instance file behind this frame: pydicom records it on the dataset it read (a series' slice)
    filename = getattr(dataset, "filename", None)
    if isinstance(filename, str) and Path(filename).is_file():
        source: Path | None = Path(filename)
    else:
        source = Path(stack.path) if Path(stack.path).is_file() else None
    modality = stack.metadata.get("modality") or None
    return LoadedImage(image, path, kind, modality, dataset, state.frame, region, used, source)


def record_open(audit: Any, loaded: LoadedImage) -> str | None:
    """Audit that `loaded` was opened (hashes, kind, modality, frame, region; the base name only with the opt-in).
    Returns the SHA-256 of the file the pixels came from (a series: the shown slice), for the job's provenance."""
    from medapp.hashing import file_sha256, slide_fingerprint

    source = loaded.source_file
    # Slides can be gigabytes: hash a bounded sample of them instead of the whole file on every question.
    hasher = slide_fingerprint if loaded.kind == "slide" else file_sha256
    digest = hasher(source) if source is not None and source.is_file() else None
    audit.record(
        "open",
        inputs=[digest] if digest else [],
        file_names=[loaded.path],
        kind=loaded.kind,
        modality=loaded.modality,
        frame=loaded.frame,
        region=list(loaded.region) if loaded.region else None,
    )
    return digest
