"""Pixel decoders, and the licence choice behind them.

pydicom picks a plugin per transfer syntax by itself; we only make sure a permissive one exists for each syntax:

==========================================  ==============================================================
Transfer syntax                             Decoder (licence)
==========================================  ==============================================================
Native LE/BE, implicit/explicit, Deflate    pydicom itself (MIT)
RLE Lossless                                pylibjpeg-rle (MIT), pydicom's own as fallback
JPEG Baseline (8-bit)                       Pillow (HPND), python-gdcm (BSD) as fallback (*)
JPEG Extended 12-bit                        imagecodecs' libjpeg-turbo 3 (BSD), registered here
JPEG Lossless (Process 14, SV1)             python-gdcm (BSD) (*)
JPEG-LS lossless / near-lossless            pyjpegls (MIT, CharLS BSD), python-gdcm as fallback (*, both)
JPEG 2000 / JPEG 2000 lossless              pylibjpeg-openjpeg (MIT), Pillow (no GDCM, see below)
==========================================  ==============================================================

(*) GDCM (and, for JPEG-LS, pyjpegls) never runs in the application's process: `dicom_io.sandbox` runs it in a
worker process with a memory and time limit (see `_no_gdcm_in_process`).

Why: pylibjpeg-libjpeg, the usual pydicom choice for JPEG Extended/Lossless, is GPLv3, which would force the
whole application under the GPL. Neither GDCM nor Pillow decodes 12-bit JPEG Extended ("Unsupported JPEG data
precision 12"), so without it pydicom's own `JPGExtended.dcm` would be unreadable; imagecodecs (BSD-3, already
a dependency for writing slides) bundles libjpeg-turbo 3, which decodes 8- and 12-bit JPEG. We add it as one more
pydicom decoder plugin, through pydicom's documented plugin interface, rather than decoding around pydicom.
"""

from __future__ import annotations

from typing import Any

from pydicom import uid

DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("imagecodecs>=2024.1.1", "numpy")}
_LABEL = "imagecodecs"


def is_available(transfer_syntax: str) -> bool:
    """pydicom plugin protocol: can this plugin decode `transfer_syntax` here?"""
    if transfer_syntax not in DECODER_DEPENDENCIES:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return hasattr(imagecodecs, "jpeg8_decode")


def _decode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom plugin protocol: decode one JPEG Extended frame to the bytes pydicom expects.

    libjpeg-turbo converts colour JPEG to RGB, so the runner is told the photometric interpretation changed
    (as pydicom's own Pillow plugin does for JPEG 2000 colour transforms).
    """
    import imagecodecs

    arr = imagecodecs.jpeg8_decode(src)
    if runner.samples_per_pixel > 1:
        runner.set_option("photometric_interpretation", "RGB")
    if arr.dtype.itemsize * 8 != runner.bits_allocated:
        arr = arr.astype(f"u{max(1, runner.bits_allocated // 8)}")
    return bytes(arr.tobytes())


def _no_gdcm_in_process() -> None:
    """Remove GDCM from every pydicom decoder in this process, and pyjpegls too; `dicom_io.sandbox` runs them in a
    worker process instead (pyjpegls because CharLS can spin for seconds on a corrupt frame: only a timeout helps).

    Why: on inconsistent input GDCM can throw a C++ exception that aborts the whole process (seen in our fuzz test:
    a JPEG 2000 frame whose component count disagrees with (0028,0004) Photometric Interpretation ->
    `terminate called after throwing an instance of 'gdcm::Exception'`), and its bundled openjpeg prints to the C
    stderr. pylibjpeg-openjpeg, pyjpegls, Pillow and imagecodecs raise Python exceptions instead and stay here;
    `dicom_io.pixels.decode_frame` falls back to the sandboxed GDCM where they fail or none is installed (JPEG
    Lossless, Process 14). GDCM is not used for JPEG 2000 at all: it adds no coverage there, only noise.
    """
    from pydicom.pixels import get_decoder

    for ts in uid.AllTransferSyntaxes:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            continue
        if "gdcm" in decoder._available or "gdcm" in decoder._unavailable:  # noqa: SLF001 - no public plugin query
            decoder.remove_plugin("gdcm")
    for ts in (uid.JPEGLSLossless, uid.JPEGLSNearLossless):
        decoder = get_decoder(ts)
        if "pyjpegls" in decoder._available or "pyjpegls" in decoder._unavailable:  # noqa: SLF001
            decoder.remove_plugin("pyjpegls")


def register() -> None:
    """Add our JPEG Extended plugin and take GDCM out of this process (idempotent). pydicom's plugin API only."""
    from pydicom.pixels import get_decoder

    _no_gdcm_in_process()
    decoder = get_decoder(uid.JPEGExtended12Bit)
    if _LABEL in decoder._available or _LABEL in decoder._unavailable:  # noqa: SLF001 - no public query exists
        return
    decoder.add_plugin(_LABEL, ("dicom_io.codecs", "_decode_frame"))
