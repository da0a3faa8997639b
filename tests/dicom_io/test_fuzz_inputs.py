"""Seeded fuzzing, second corpus (issue #10): plain images (PNG, JPEG, TIFF, BMP, GIF) and compressed DICOM
including JPEG Lossless, which is decoded by GDCM in the sandboxed worker, where malformed frames really do crash
the decoder (SIGSEGV / SIGABRT). Through `dicom_io.open_path` + render + info, only InputError may escape, no call
may hang, and every error names its file. The first corpus (pydicom's files, header and tag mutations) is in
test_fuzz.py."""

from __future__ import annotations

import io
import random
import struct
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import dicom_io
from dicom_io import sandbox
from tests.dicom_io.fuzzing import run_bounded

SEED = 20261129
N_IMAGE_MUTATIONS = 330
N_DICOM_MUTATIONS = 200
TIME_BOUND_S = 30.0  # per case; generous because the machine is shared and a crashed worker restarts; a hang is minutes
DICOM_SOURCES = ["SC_rgb_jpeg_dcmd.dcm", "JPEG-lossy.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "SC_rgb_small_odd_jpeg.dcm", "JPGExtended.dcm"]  # fmt: skip


def _images() -> dict[str, bytes]:
    """Small, real images in every plain format medapp opens, made here (nothing copied in)."""
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    out: dict[str, bytes] = {}
    for name, mode, fmt in [("rgb.png", "RGB", "PNG"), ("rgba.png", "RGBA", "PNG"), ("grey16.png", "I;16", "PNG"),
                            ("photo.jpg", "RGB", "JPEG"), ("scan.tif", "RGB", "TIFF"), ("grey.bmp", "L", "BMP"),
                            ("anim.gif", "P", "GIF")]:  # fmt: skip
        img = Image.fromarray(rgb, "RGB")
        if mode == "I;16":
            img = Image.fromarray((xx * 1000 + yy).astype(np.uint16))
        elif mode != "RGB":
            img = img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, fmt)
        out[name] = buf.getvalue()
    return out


def _mutate_bytes(rng: random.Random, data: bytes, name: str) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["flip", "flip", "header", "truncate", "splice", "size", "ff"])
    if kind == "truncate":
        return bytes(buf[: rng.randrange(0, len(buf))])
    if kind == "splice":
        a, b = sorted(rng.randrange(0, len(buf)) for _ in range(2))
        return bytes(buf[:a] + buf[b:])
    if kind == "size" and name.endswith(".png") and len(buf) >= 24:
        # a small file that declares a huge image (IHDR width / height): the pixel budget's case
        struct.pack_into(">II", buf, 16, rng.choice([1, 70000, 2**31 - 1, 13000]), rng.choice([0, 9000, 13000]))
        return bytes(buf)
    span = min(len(buf), 96) if kind == "header" else len(buf)
    for _ in range(rng.randint(1, 10)):
        i = rng.randrange(0, span)
        buf[i] = 0xFF if kind == "ff" else buf[i] ^ (1 << rng.randrange(8))
    return bytes(buf)


def _mutate_dicom(rng: random.Random, ds: pydicom.Dataset) -> pydicom.Dataset:
    """Pixel-data mutations of a compressed dataset (the decoders' input), sometimes with a header change."""
    data = bytearray(ds.PixelData)
    for _ in range(rng.randint(1, 12)):
        i = rng.randrange(16, len(data))  # past the basic offset table's item header
        data[i] = rng.randrange(256)
    if rng.random() < 0.2:
        data = data[: rng.randrange(16, len(data))]
    ds.PixelData = bytes(data)
    if rng.random() < 0.25:
        keyword, value = rng.choice([("Rows", 1), ("Columns", 3), ("BitsStored", 7), ("SamplesPerPixel", 1),
                                     ("PhotometricInterpretation", "RGB"), ("BitsAllocated", 16)])  # fmt: skip
        setattr(ds, keyword, value)
    return ds


def _jpeg_lossless(tmp: Path) -> bytes:
    import shutil
    import subprocess
    import sys

    from pydicom import examples

    tool = shutil.which("gdcmconv") or str(Path(sys.executable).with_name("gdcmconv"))
    out = tmp / "ct_jll.dcm"
    subprocess.run([tool, "--jpeg", examples.get_path("ct"), str(out)], check=True, capture_output=True, timeout=120)
    return out.read_bytes()


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns while *writing* our invalid mutations
def test_fuzz_images_and_compressed_dicom(pydicom_test_files: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    images = _images()
    dicoms = {name: (pydicom_test_files / name).read_bytes() for name in DICOM_SOURCES}
    dicoms["ct_jpeg_lossless.dcm"] = _jpeg_lossless(tmp_path)
    escaped: list[str] = []
    hung: list[str] = []
    counts = {"ok": 0, "input_error": 0, "crashed_decoder": 0}
    start = time.perf_counter()
    cases = [("img", i) for i in range(N_IMAGE_MUTATIONS)] + [("dcm", i) for i in range(N_DICOM_MUTATIONS)]
    n_run = 0
    try:
        for kind, i in cases:
            if kind == "img":
                name = rng.choice(sorted(images))
                path = tmp_path / f"{kind}_{i}_{name}"
                path.write_bytes(_mutate_bytes(rng, images[name], name))
            else:
                name = rng.choice(sorted(dicoms))
                path = tmp_path / f"{kind}_{i}_{name}"
                ds = pydicom.dcmread(io.BytesIO(dicoms[name]))
                try:
                    _mutate_dicom(rng, ds).save_as(path)
                except Exception:  # noqa: BLE001 - pydicom cannot even write this mutation: not a test case
                    continue
            n_run += 1
            exc, alive = run_bounded(path, TIME_BOUND_S)
            if alive:
                hung.append(path.name)
            elif exc is None:
                counts["ok"] += 1
            elif isinstance(exc, dicom_io.InputError):
                counts["input_error"] += 1
                counts["crashed_decoder"] += "decoder crashed" in str(exc)
                if path.name not in str(exc):
                    escaped.append(f"{path.name}: error does not name the file: {exc}")
            else:
                escaped.append(f"{path.name}: {type(exc).__name__}: {exc}")
            path.unlink(missing_ok=True)
    finally:
        sandbox.shutdown()
    print(f"\nfuzz (images + compressed DICOM): {n_run} cases, {counts}, {time.perf_counter() - start:.1f} s")
    assert n_run >= 500
    assert not hung, f"calls exceeded {TIME_BOUND_S} s: {hung}"
    assert not escaped, "non-InputError escaped:\n" + "\n".join(escaped[:20])
    assert counts["ok"] > 50 and counts["input_error"] > 50  # both outcomes are exercised
