"""The DICOM pixel pipeline: checked decode, Modality LUT, VOI, MONOCHROME1 / Presentation LUT inversion, colour.

Order (PS3.3 C.11, PS3.4 N.2): stored values -> Modality LUT ((0028,1052)/(0028,1053) rescale or (0028,3000) Modality
LUT Sequence) -> VOI ((0028,1050)/(0028,1051) window with (0028,1056) function, or (0028,3010) VOI LUT Sequence)
-> Presentation LUT (MONOCHROME1 or (2050,0020) INVERSE shape: invert) -> 8-bit display value.
Colour images skip Modality/VOI: YBR is converted to RGB by pydicom's decoder (`as_rgb`), PALETTE COLOR goes through
`pydicom.pixels.apply_color_lut`, more than 8 bits are scaled down.

Why a combined LUT: for 8/16-bit stored values (all CT/MR/CR/DX in practice) the whole chain from stored value to
display byte is a function of one 16-bit value, so we evaluate it once on all 65,536 inputs (using pydicom's own
`apply_modality_lut` / `apply_voi` for the LUT parts) and each frame costs one `np.take`. That is what makes
scrolling a 200-slice series cheaper than pydicom's per-pixel float64 path (see bench/bench_dicom.py).
Windowing itself (C.11.2.1.2 LINEAR, C.11.2.1.3.1 LINEAR_EXACT / SIGMOID) is written here, mapping straight to
[0, 1]: pydicom's `apply_windowing` maps to the stored-value range and needs the window inside a Dataset, which an
interactive window is not; tests check ours against `apply_voi_lut` on the same files.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from pydicom.dataset import Dataset
from pydicom.uid import JPEGExtended12Bit

from dicom_io import sandbox
from dicom_io.budget import check_pixels
from dicom_io.errors import CorruptFileError, NoPixelDataError, PixelDecodeError
from dicom_io.guard import short
from dicom_io.windows import VOI_LUT, Window

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# One frame larger than this many samples (e.g. 16k x 16k RGB) is treated as a corrupt header: a real image that
# big is a whole-slide image and goes through OpenSlide, tile by tile. Below it, frames larger than the pixel budget
# (`dicom_io.budget`) are refused as too large to decode.
MAX_FRAME_SAMPLES = 1 << 28

# Elements that decide how pixel values become display values; an enhanced multi-frame object may set the
# rescale and window per frame in functional groups, which `frame_header` lifts to the top level.
_PROCESS_KEYS = (
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "SamplesPerPixel", "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence",
    "PresentationLUTShape",
)  # fmt: skip
_GROUP_SEQUENCES = ("PixelValueTransformationSequence", "FrameVOILUTSequence")


def pixel_keyword(ds: Dataset) -> str | None:
    return next((k for k in PIXEL_KEYWORDS if k in ds), None)


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise CorruptFileError(None, f"missing required element {keyword}")
        return default
    return int(value)


def n_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def is_image_object(ds: Dataset) -> bool:
    """Is the SOP class an image IOD ("... Image Storage": CT, MR, CR, SC, WSI ...), which must hold pixel data?"""
    return "Image Storage" in str(getattr(ds.get("SOPClassUID"), "name", "") or "")


def check_pixel_budget(ds: Dataset, path: str | Path | None) -> None:
    """Refuse pixel data whose header cannot be true, before any decoder allocates memory for it.

    A flipped bit in (0028,0010) Rows or (0028,0008) Number of Frames can ask for terabytes; native data shorter
    than Rows x Columns x Samples x Bits x Frames is truncated. Both become CorruptFileError naming the numbers.
    """
    keyword = pixel_keyword(ds)
    if keyword is None:
        # Pixel data is Type 1 in every image IOD: an image object without it is a file cut short (at an element
        # boundary, which leaves nothing else to notice) or a broken export, not a valid object that has no image.
        if is_image_object(ds):
            name = ds.SOPClassUID.name
            raise CorruptFileError(path, f"truncated or incomplete: a {name} object without pixel data")
        raise NoPixelDataError(path, "no pixel data (this DICOM object holds no image)")
    try:
        rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
        spp = _int(ds, "SamplesPerPixel", 1)
        bits = _int(ds, "BitsAllocated", 32 if keyword == "FloatPixelData" else 64 if keyword != "PixelData" else None)
    except CorruptFileError as exc:
        raise CorruptFileError(path, exc.cause) from None
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(path, f"unreadable image size elements ({exc})") from None
    frames = n_frames(ds)
    if rows <= 0 or cols <= 0:
        raise CorruptFileError(path, f"image size {cols}x{rows} is empty")
    if spp not in (1, 3, 4) or bits not in (1, 8, 16, 32, 64):
        raise CorruptFileError(path, f"unsupported layout: {spp} samples per pixel, {bits} bits allocated")
    if rows * cols * spp > MAX_FRAME_SAMPLES:
        raise CorruptFileError(path, f"implausible frame size {cols}x{rows}x{spp} (header corrupt?)")
    check_pixels(path, cols, rows, what="frame", detail=f"{spp} sample(s) per pixel")  # one frame decodes at a time
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    wants = 1 if photometric in (*MONOCHROME, "PALETTE COLOR") else 3 if photometric.startswith(("RGB", "YBR")) else 0
    if wants and spp != wants:
        # Decoders disagree on such files, and GDCM may abort the process on them: refuse up front.
        raise CorruptFileError(path, f"photometric {photometric} with {spp} samples per pixel is inconsistent")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        length = len(ds[keyword].value)
    except TypeError:
        raise NoPixelDataError(path, "pixel data element is empty") from None
    if length == 0:
        raise NoPixelDataError(path, "pixel data element is empty")
    if ts is not None and getattr(ts, "is_encapsulated", False):
        if frames > length // 2:
            raise CorruptFileError(path, f"{frames} frames cannot fit in {length} bytes of compressed pixel data")
        return
    expected = math.ceil(rows * cols * spp * frames * bits / 8)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "YBR_FULL_422":
        expected = expected * 2 // 3  # native 4:2:2 stores two chroma samples per two pixels (PS3.3 C.7.6.3.1.2)
    if length < expected:
        raise CorruptFileError(path, f"truncated pixel data: {length} of {expected} bytes")


def frame_header(ds: Dataset, index: int) -> Dataset:
    """The elements that process frame `index`, with per-frame / shared functional groups applied.

    For classic objects this is `ds` itself (no copy). For enhanced multi-frame objects (Enhanced CT/MR, ...),
    rescale and window live in (5200,9229) Shared and (5200,9230) Per-Frame Functional Groups; pydicom's LUT
    helpers read top-level elements, so we build a small Dataset with them lifted (per-frame wins).
    """
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not shared and not per_frame:
        return ds
    out = Dataset()
    for key in _PROCESS_KEYS:
        if key in ds:
            out[key] = ds[key]
    groups = [shared[0] if shared else None]
    if per_frame and 0 <= index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        if group is None:
            continue
        for seq_name in _GROUP_SEQUENCES:
            seq = group.get(seq_name)
            if seq:
                for elem in seq[0]:
                    out[elem.tag] = elem
    return out


def decode_frame(ds: Dataset, index: int, path: str | Path | None) -> tuple[np.ndarray, str]:
    """Decode one frame with pydicom's plugins. Returns (array, photometric interpretation of that array).

    Only the requested frame is decoded (`index=`), so scrolling a 1000-frame cine never holds all frames.
    YBR colour comes back as RGB (pydicom `as_rgb`); the returned photometric says what the array now holds.
    """
    from pydicom.pixels import get_decoder

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        raise CorruptFileError(path, "no (0002,0010) Transfer Syntax UID: cannot tell how the pixels are encoded")
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise PixelDecodeError(path, f"no decoder for transfer syntax {ts} ({getattr(ts, 'name', '?')})") from None
    # Decoders that can crash or stall the process (GDCM, CharLS) run in a worker process (`dicom_io.sandbox`).
    worker_plugins = sandbox.plugins_for(str(ts)) if getattr(ts, "is_encapsulated", False) else ()
    if not decoder.is_available or sandbox.in_worker_only(str(ts)):
        if worker_plugins:
            return sandbox.decode(ds, index, n_frames(ds), path, worker_plugins)
        raise PixelDecodeError(path, f"no installed decoder handles {getattr(ts, 'name', ts)}")
    options: dict[str, Any] = {}
    if ts == JPEGExtended12Bit and int(ds.get("BitsStored", 8) or 8) > 8:
        options["decoding_plugin"] = "imagecodecs"  # GDCM and Pillow refuse 12-bit: skip their failing attempts
    try:
        arr, meta = decoder.as_array(ds, index=index, as_rgb=True, **options)  # type: ignore[arg-type]  # pydicom's kwargs stub
    except Exception as exc:
        if not worker_plugins:
            raise
        # The in-process decoders refused the frame: try GDCM, as pydicom would have in-process, but in the worker.
        try:
            return sandbox.decode(ds, index, n_frames(ds), path, worker_plugins)
        except PixelDecodeError as fallback:
            raise PixelDecodeError(path, f"decoding frame {index}: {short(exc)}; {fallback.cause}") from exc
    photometric = str(meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", "MONOCHROME2"))
    return arr, photometric.strip().upper()


def modality_values(arr: np.ndarray, hdr: Dataset) -> np.ndarray:
    """Stored values -> modality values (HU for CT) as float32, via pydicom's `apply_modality_lut`."""
    from pydicom.pixels import apply_modality_lut

    out = apply_modality_lut(arr, hdr)
    return np.asarray(out, dtype=np.float32)


def window_unit(values: np.ndarray, window: Window) -> np.ndarray:
    """Modality values -> [0, 1] through a centre/width window (PS3.3 C.11.2.1.2 and C.11.2.1.3.1)."""
    x = np.asarray(values, dtype=np.float32)
    c, w = float(window.center), float(window.width)
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):
            return (1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))).astype(np.float32)
    if window.function == "LINEAR":
        c, w = c - 0.5, w - 1.0  # C.11.2.1.2.1: the "-0.5 / -1" of the LINEAR function
    if w <= 0:  # LINEAR with width 1 is a threshold at c
        return (x > c).astype(np.float32)
    y = (x - c) / w + 0.5
    return np.clip(y, 0.0, 1.0, out=y)


def voi_lut_unit(values: np.ndarray, hdr: Dataset, lut_index: int) -> np.ndarray:
    """Modality values -> [0, 1] through the file's (0028,3010) VOI LUT Sequence item, via pydicom's `apply_voi`."""
    from pydicom.pixels import apply_voi

    item = hdr.VOILUTSequence[lut_index]
    bits = int(item.LUTDescriptor[2])
    out = apply_voi(np.asarray(values), hdr, index=lut_index).astype(np.float32)
    top = float(2**bits - 1) if 0 < bits <= 16 else max(float(out.max()), 1.0)
    return np.clip(out / top, 0.0, 1.0)


def inverts(hdr: Dataset, photometric: str) -> bool:
    """MONOCHROME1 (high values dark) or a (2050,0020) Presentation LUT Shape of INVERSE: show inverted."""
    shape = str(hdr.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def _to_display(values: np.ndarray, hdr: Dataset, window: Window, invert: bool) -> np.ndarray:
    if window.function == VOI_LUT:
        y = voi_lut_unit(values, hdr, window.lut_index)
    else:
        y = window_unit(values, window)
    if invert:
        y = 1.0 - y
    return np.rint(y * 255.0).astype(np.uint8)


class LutCache:
    """Combined stored-value -> display-byte LUTs, keyed by everything that decides them. Shared across a series."""

    def __init__(self, size: int = 32) -> None:
        self._luts: LRUCache[tuple[Any, ...], tuple[np.ndarray, Any]] = LRUCache(maxsize=size)
        self._lock = threading.Lock()  # the GUI renders from worker threads too

    @staticmethod
    def _key(arr: np.ndarray, hdr: Dataset, photometric: str, window: Window) -> tuple[Any, ...]:
        # LUT sequences are keyed by the header object (kept alive in the cache entry), scalars by value.
        mod = hdr.get("ModalityLUTSequence")
        voi = id(hdr) if window.function == VOI_LUT else None
        return (
            arr.dtype.str, photometric, str(hdr.get("PresentationLUTShape", "")),
            str(hdr.get("RescaleSlope", "")), str(hdr.get("RescaleIntercept", "")),
            id(mod) if mod else None, voi, window,
        )  # fmt: skip

    def render(self, arr: np.ndarray, hdr: Dataset, photometric: str, window: Window) -> np.ndarray:
        """Stored grey values -> uint8 display values (same shape)."""
        invert = inverts(hdr, photometric)
        if arr.dtype not in (np.uint8, np.int8, np.uint16, np.int16):
            return _to_display(modality_values(arr, hdr), hdr, window, invert)
        key = self._key(arr, hdr, photometric, window)
        with self._lock:
            hit = self._luts.get(key)
        if hit is None:
            unsigned = np.uint8 if arr.dtype.itemsize == 1 else np.uint16
            every = np.arange(np.iinfo(unsigned).max + 1, dtype=unsigned).view(arr.dtype)
            lut = _to_display(modality_values(every, hdr), hdr, window, invert)
            hit = (lut, hdr)
            with self._lock:
                self._luts[key] = hit
        index = arr.view(np.uint8 if arr.dtype.itemsize == 1 else np.uint16)
        return np.take(hit[0], index)  # type: ignore[arg-type]  # uint8/uint16 view: valid indices


def colour_to_rgb8(arr: np.ndarray, photometric: str, ds: Dataset, path: str | Path | None) -> np.ndarray:
    """A decoded colour frame -> (H, W, 3) uint8 RGB: palette lookup, leftover YBR conversion, bit-depth scaling."""
    from pydicom.pixels import apply_color_lut, convert_color_space

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        if rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8) if rgb.max(initial=0) > 255 else rgb.astype(np.uint8)
        return np.ascontiguousarray(rgb[..., :3])
    if arr.ndim != 3:
        raise PixelDecodeError(path, f"photometric {photometric} but the decoded frame has shape {arr.shape}")
    rgb = arr[..., :3]
    if photometric.startswith("YBR"):
        try:
            rgb = convert_color_space(rgb, photometric, "RGB")
        except NotImplementedError:
            raise PixelDecodeError(path, f"cannot convert {photometric} to RGB") from None
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    bits = int(ds.get("BitsStored", rgb.dtype.itemsize * 8) or 8)
    if rgb.dtype.kind == "f":
        top = max(float(np.nanmax(rgb)), 1.0)
    else:
        top = float(2 ** min(bits, rgb.dtype.itemsize * 8) - 1)
    scaled = rgb.astype(np.float32) * (255.0 / top)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def is_colour(photometric: str, arr: np.ndarray | None = None) -> bool:
    if photometric in MONOCHROME:
        return False
    if photometric == "PALETTE COLOR":
        return True
    return arr is None or arr.ndim == 3
