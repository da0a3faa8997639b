"""Display windows (VOI): the file's own windows, named CT presets (data in presets.json) and an automatic fallback.

A `Window` is what the clinician adjusts; applying it to pixels lives in `dicom_io.pixels`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

# (0028,1056) VOI LUT Function values of PS3.3 C.11.2.1.3, plus our marker for "use the file's VOI LUT Sequence".
FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
VOI_LUT = "VOI_LUT"

# Percentiles of the modality values used when a file offers no window at all (see `auto_window`).
AUTO_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Window:
    """Window centre / width in modality units (HU for CT) and the VOI LUT function.

    `function == "VOI_LUT"` means "apply the file's (0028,3010) VOI LUT Sequence item `lut_index`"; centre and width
    then describe the LUT's input range for display only. `explanation` is a label ("LUNG", "auto") and does not take
    part in equality.
    """

    center: float
    width: float
    function: str = "LINEAR"
    explanation: str = field(default="", compare=False)
    lut_index: int = 0

    def __post_init__(self) -> None:
        if self.function not in (*FUNCTIONS, VOI_LUT):
            raise ValueError(f"unknown VOI LUT function {self.function!r}; expected one of {', '.join(FUNCTIONS)}")
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise ValueError("window centre and width must be finite numbers")
        # PS3.3 C.11.2.1.2: LINEAR needs width >= 1, LINEAR_EXACT and SIGMOID only width > 0.
        if self.function == "LINEAR" and self.width < 1:
            raise ValueError(f"window width must be at least 1 (got {self.width:g})")
        if self.function in ("LINEAR_EXACT", "SIGMOID") and self.width <= 0:
            raise ValueError(f"window width must be positive (got {self.width:g})")

    @classmethod
    def parse(cls, text: str) -> Window:
        """'C,W' (as typed on the command line) -> Window. Raises ValueError with a readable message."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise ValueError(f"window must be CENTER,WIDTH (got {text!r})")
        try:
            center, width = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"window must be two numbers CENTER,WIDTH (got {text!r})") from None
        return cls(center, width)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"center": self.center, "width": self.width, "function": self.function}
        if self.explanation:
            out["explanation"] = self.explanation
        return out


def _load_presets() -> dict[str, Window]:
    raw = json.loads(resources.files("dicom_io").joinpath("presets.json").read_text(encoding="utf-8"))
    return {
        name: Window(float(v["center"]), float(v["width"]), explanation=name)
        for name, v in raw.items()
        if not name.startswith("_")
    }


PRESETS: dict[str, Window] = _load_presets()


def preset_key(name: str) -> str:
    """The spelling rules for preset names: case-insensitive, '_' or '-', "lung" for "ct-lung" ("Lung" -> "ct-lung").

    Returned unchanged apart from the spelling when no built-in preset matches, so user presets can use the same rules.
    """
    key = name.strip().lower().replace("_", "-")
    return f"ct-{key}" if key not in PRESETS and f"ct-{key}" in PRESETS else key


def preset(name: str) -> Window:
    """The named built-in preset (spelling per `preset_key`); KeyError names the ones that exist.

    User presets (settings) come first in `medapp.view.preset_window`, the one resolver the app calls."""
    key = preset_key(name)
    try:
        return PRESETS[key]
    except KeyError:
        raise KeyError(f"unknown window preset {name!r}; available: {', '.join(PRESETS)}") from None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def windows_from_header(ds: Any) -> list[Window]:
    """Every window a (frame) header offers: centre/width pairs first (multi-valued ones in order), then VOI LUTs.

    Invalid pairs (width < 1, non-numeric) are skipped rather than fatal: a bad optional tag must not stop display.
    """
    out: list[Window] = []
    centers = _as_list(ds.get("WindowCenter"))
    widths = _as_list(ds.get("WindowWidth"))
    explanations = _as_list(ds.get("WindowCenterWidthExplanation"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in FUNCTIONS:
        function = "LINEAR"
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        try:
            label = str(explanations[i]) if i < len(explanations) else ""
            out.append(Window(float(c), float(w), function, label))
        except (TypeError, ValueError):
            continue
    for i, item in enumerate(ds.get("VOILUTSequence") or []):
        try:
            n, first, _bits = (int(x) for x in item.LUTDescriptor)
            n = n or 65536
            out.append(Window(first + n / 2, float(n), VOI_LUT, str(item.get("LUTExplanation", "") or "VOI LUT"), i))
        except Exception:  # noqa: BLE001 - a malformed optional LUT is skipped, like a bad window pair
            continue
    return out


def auto_window(values: np.ndarray) -> Window:
    """A window for images that carry none: the 0.5-99.5 percentile range of the modality values.

    Why percentiles and not min/max: a few saturated or padding pixels (CT outside the field of view at -2000,
    MR hot spots) would otherwise squeeze the tissue into a handful of grey levels. Falls back to min/max when the
    percentiles coincide (near-binary images), and to width 1 for a constant image. This is the one auto-window rule
    (`ImageStack.auto_window`); the viewer once had its own min/max rule, dropped for the reason above.
    """
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return Window(0.0, 1.0, explanation="auto")
    sample = finite.ravel()
    if sample.size > 1_000_000:  # a strided sample is plenty for percentiles and keeps huge frames cheap
        sample = sample[:: sample.size // 1_000_000]
    lo, hi = (float(v) for v in np.percentile(sample, AUTO_PERCENTILES))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    width = max(hi - lo, 1.0)
    return Window((lo + hi) / 2, width, "LINEAR", "auto")
