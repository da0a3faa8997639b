"""Whole-slide images through OpenSlide (SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM-WSI).

OpenSlide 4 (openslide-bin) reads DICOM-WSI itself, so one code path serves vendor formats and DICOM; wsidicom stays
available for writing or for features OpenSlide lacks. Label and macro images (patient names, barcodes) are never
exposed: this class has no accessor for OpenSlide's `associated_images`, and `thumbnail` is computed from the
pyramid, not taken from the file's stored thumbnail page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from dicom_io.budget import MAX_PIXELS, MAX_SIDE
from dicom_io.errors import InputError, RegionError, UnsupportedFormatError
from dicom_io.guard import guard
from dicom_io.reading import check_file

# Largest region read at once (pixels at the requested level): the pixel budget, 8k x 8k. Bigger requests are almost
# always a level-0 read of the whole slide by mistake and would take gigabytes.
MAX_REGION_PIXELS = MAX_PIXELS


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


class Slide:
    kind = "slide"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():  # a DICOM-WSI folder: OpenSlide opens any one instance and finds the others beside it
            candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            path = next((p for p in candidates if self._detect(p) == "dicom"), path)
        self.path = check_file(path)
        with guard(self.path, "opening slide"):
            import openslide

            fmt = self._detect(self.path)
            if fmt is None:
                raise UnsupportedFormatError(self.path, "not a whole-slide image OpenSlide can read")
            self._osr = openslide.OpenSlide(str(self.path))
            props = dict(self._osr.properties)
            self.vendor = fmt
            self.level_count: int = self._osr.level_count
            self.level_dimensions: list[tuple[int, int]] = [(int(w), int(h)) for w, h in self._osr.level_dimensions]
            self.level_downsamples: list[float] = [float(d) for d in self._osr.level_downsamples]
            mpp_x, mpp_y = _float(props.get("openslide.mpp-x")), _float(props.get("openslide.mpp-y"))
            self.mpp: tuple[float, float] | None = (mpp_x, mpp_y) if mpp_x and mpp_y else None
            self.objective_power: float | None = _float(props.get("openslide.objective-power"))
        self.warnings: list[str] = []
        w, h = self.level_dimensions[0]
        self.metadata: dict[str, Any] = {
            "vendor": self.vendor,
            "width": w,
            "height": h,
            "levels": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": self.level_downsamples,
            "mpp": list(self.mpp) if self.mpp else None,
            "objective_power": self.objective_power,
        }

    @staticmethod
    def _detect(path: Path) -> str | None:
        import openslide

        try:
            return openslide.OpenSlide.detect_format(str(path))
        except Exception:  # noqa: BLE001 - unreadable means "not a slide"
            return None

    @property
    def size(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    def check_level(self, level: int) -> int:
        if not isinstance(level, int) or not 0 <= level < self.level_count:
            raise RegionError(self.path, f"level {level} out of range (0..{self.level_count - 1})")
        return level

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """RGB pixels of `size` (w, h) at `level`, top-left at `location` in level-0 coordinates (OpenSlide's rule).

        Parts outside the slide come back white (glass), not black or transparent.
        """
        level = self.check_level(level)
        try:
            x, y = (int(v) for v in location)
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise RegionError(self.path, f"bad region {location!r} {size!r}") from None
        W, H = self.level_dimensions[0]
        if w <= 0 or h <= 0:
            raise RegionError(self.path, f"region size {w}x{h} is empty")
        if w * h > MAX_REGION_PIXELS:
            raise RegionError(self.path, f"region {w}x{h} at level {level} is too large to read at once "
                                         f"({w * h / 1e6:.1f} megapixels; the limit is {MAX_REGION_PIXELS / 1e6:.1f}, "
                                         f"{MAX_SIDE}x{MAX_SIDE})")
        ds = self.level_downsamples[level]
        if x >= W or y >= H or x + w * ds <= 0 or y + h * ds <= 0:
            raise RegionError(self.path, f"region at ({x}, {y}) level {level} lies outside the {W}x{H} slide")
        if self._osr is None:
            raise InputError(self.path, "the slide was closed")
        with guard(self.path, "reading slide region"):
            rgba = self._osr.read_region((x, y), level, (w, h))
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")

    def thumbnail(self, max_size: int | tuple[int, int] = 1024) -> Image.Image:
        """The whole slide scaled to fit `max_size`, read from the pyramid (never the file's associated images)."""
        box = (max_size, max_size) if isinstance(max_size, int) else tuple(max_size)
        W, H = self.level_dimensions[0]
        scale = max(W / box[0], H / box[1], 1.0)
        level = self.best_level_for_downsample(scale)
        lw, lh = self.level_dimensions[level]
        if lw * lh > MAX_REGION_PIXELS:
            raise RegionError(self.path, "no pyramid level small enough for a thumbnail")
        img = self.read_region((0, 0), level, (lw, lh))
        img.thumbnail((max(1, round(W / scale)), max(1, round(H / scale))), Image.Resampling.LANCZOS)
        return img

    def best_level_for_downsample(self, downsample: float) -> int:
        """The highest-resolution level whose downsample is <= `downsample` (so quality is never lost)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample + 1e-9:
                best = i
        return best

    def close(self) -> None:
        osr = getattr(self, "_osr", None)
        if osr is not None:
            osr.close()
            self._osr = None  # type: ignore[assignment]  # closed: later reads fail loudly instead of using a dead handle

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_slide(path: Path) -> bool:
    """Would `Slide(path)` work? True for vendor slide formats and pyramidal TIFF / DICOM-WSI."""
    fmt = Slide._detect(path)
    if fmt is None:
        return False
    if fmt == "generic-tiff":
        try:
            import openslide

            with openslide.OpenSlide(str(path)) as s:
                return s.level_count > 1 or max(s.dimensions) > 8192
        except Exception:  # noqa: BLE001
            return False
    return True
