"""How a newly opened image stack is first shown: colour or grey, its window choices and its starting window.

Qt-free so the viewer state (`medapp.viewer_state.ViewerState`), the window and tests share one rule; the
decode it needs (frame 0) runs in the worker that opened the file (`prepare_stack`), never on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StackSetup", "WindowChoice", "prepare_stack", "window_choices", "is_colour", "ct_default_window",
           "CT_DEFAULT_LABEL"]

#: What the overlay calls the window a CT without its own opens at.
CT_DEFAULT_LABEL = "soft tissue"
#: (centre, width) in HU: the soft-tissue window (OHIF's abdomen preset). A CT read at its full range (air to bone,
#: e.g. W 1646 L -38) shows no contrast between organs; soft tissue is what a radiologist looks at first.
CT_DEFAULT_WINDOW = (40.0, 400.0)


@dataclass(frozen=True)
class WindowChoice:
    """A named window for the number keys: `label` is shown in the overlay ("file", "ct-lung" …)."""

    label: str
    window: Any  # dicom_io.Window


def is_colour(stack: Any) -> bool:
    """Colour images (RGB, YBR, palette) have no window / level: dicom_io renders them as stored."""
    flag = getattr(stack, "is_colour", None)
    if flag is None:
        flag = stack.metadata.get("colour")
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    photometric = str(stack.metadata.get("photometric") or stack.metadata.get("photometric_interpretation") or "")
    if photometric.upper().startswith(("RGB", "YBR", "PALETTE")):
        return True
    return getattr(stack, "kind", "") == "image" and str(stack.metadata.get("mode", "")).upper() in ("RGB", "RGBA")


def window_choices(stack: Any, modality: str | None, extra: dict[str, Any] | None = None) -> list[WindowChoice]:
    """Number-key windows: the file's own windows first, then the CT presets (HU only make sense for CT), then the
    user's presets from settings. Duplicates (same centre and width) are kept once, first name wins."""
    choices: list[WindowChoice] = []
    seen: set[tuple[float, float]] = set()

    def add(label: str, window: Any) -> None:
        if window is None:
            return
        key = (round(float(window.center), 3), round(float(window.width), 3))
        if key in seen or float(window.width) <= 0:
            return
        seen.add(key)
        choices.append(WindowChoice(label, window))

    own = list(getattr(stack, "windows", None) or [])
    default = getattr(stack, "default_window", None)
    if default is not None:
        add("file", default)
    for i, window in enumerate(own):
        add("file" if i == 0 else f"file {i + 1}", window)
    if (modality or "").upper() == "CT":
        from medapp.documents import builtin_presets

        for name, window in builtin_presets().items():
            add(name, window)
    for name, window in (extra or {}).items():
        add(name, window)
    return choices


def ct_default_window(modality: str | None, value_range: tuple[float, float] | None) -> Any:
    """The starting window of a CT whose file has none: soft tissue (W 400 L 40), or None when the rule does not
    apply (not CT, or values that are not Hounsfield units, where the automatic window is the better guess).

    Values count as HU when they reach below -100 (air, fat) and above 40 (soft tissue): a CT stored without its
    rescale (0..4095) never goes negative, and soft tissue at W 400 L 40 would then be a black or white screen.
    """
    if (modality or "").upper() != "CT" or value_range is None:
        return None
    low, high = value_range
    if not (low < -100.0 and high > CT_DEFAULT_WINDOW[0]):
        return None
    from medapp.documents import make_window

    return make_window(*CT_DEFAULT_WINDOW, explanation=CT_DEFAULT_LABEL)


@dataclass(frozen=True)
class StackSetup:
    """Everything `StackState.set_stack` needs that costs a decode; built off the UI thread by `prepare_stack`."""

    colour: bool
    choices: list[WindowChoice]
    window: Any
    label: str
    value_range: tuple[float, float] | None


def prepare_stack(stack: Any, extra_presets: dict[str, Any] | None = None) -> StackSetup:
    """Decode frame 0 once to decide colour vs grey, the window choices and the starting window."""
    colour = is_colour(stack)
    if colour:
        return StackSetup(True, [], None, "", None)
    modality = stack.metadata.get("modality")
    choices = window_choices(stack, str(modality) if modality else None, extra_presets)
    values = np.asarray(stack.modality_values(0))
    if values.ndim == 3:  # dicom_io says colour after all
        return StackSetup(True, [], None, "", None)
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    value_range = (float(np.nanmin(sample)), float(np.nanmax(sample)))
    own = getattr(stack, "default_window", None)
    if own is not None:
        return StackSetup(False, choices, own, "file", value_range)
    ct = ct_default_window(str(modality) if modality else None, value_range)
    if ct is not None:
        return StackSetup(False, choices, ct, CT_DEFAULT_LABEL, value_range)
    # No window in the file: dicom_io's one auto-window rule (percentiles, robust to a few padding or hot pixels that
    # would squash a min/max window; see dicom_io.windows.auto_window), presets on the keys.
    auto = stack.auto_window()
    return StackSetup(False, choices, auto, "auto", value_range)
