"""The documents the window opens, as the window is allowed to see them: `dicom_io`'s public names through medapp.

Why a re-export module: `ui/` talks to `medapp` only (docs/ARCHITECTURE.md), so the viewer's needs from `dicom_io`
(a window value type, the built-in presets, opening a path, the error base class) are offered here under one
name. Everything is imported lazily, so `import medapp.documents` costs nothing and imports no pixel decoders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Window", "PRESETS", "InputError", "open_document", "make_window", "builtin_presets"]


_LAZY = {"Window": "Window", "PRESETS": "PRESETS", "InputError": "InputError"}


def __getattr__(name: str) -> Any:
    """`Window`, `PRESETS` and `InputError` from dicom_io, imported on first use (PEP 562)."""
    if name in _LAZY:
        import dicom_io

        return getattr(dicom_io, _LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_document(path: str | Path) -> Any:
    """`dicom_io.open_path(path)`: an `ImageStack`, a `Slide` or a `Collection`; typed `InputError`s name the file."""
    import dicom_io

    return dicom_io.open_path(Path(path))


def make_window(center: float, width: float, function: str = "LINEAR", **extra: Any) -> Any:
    """A `dicom_io.Window` (the viewer builds one per W/L drag step)."""
    from dicom_io import Window

    return Window(center=float(center), width=float(width), function=function, **extra)


def builtin_presets() -> dict[str, Any]:
    """dicom_io's built-in CT presets {name: Window}, in their display order."""
    from dicom_io import PRESETS

    return dict(PRESETS)
