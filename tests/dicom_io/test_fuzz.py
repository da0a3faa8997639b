"""Seeded fuzzing: byte and tag mutations of pydicom's bundled files. Only InputError may escape, and every
open + render + info call must return within a time bound (run in a worker thread joined with a timeout)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

import dicom_io
from tests.dicom_io.fuzzing import run_bounded

SEED = 20260104
N_BYTE_MUTATIONS = 240
N_TAG_MUTATIONS = 120
TIME_BOUND_S = 20.0  # per case; generous because the machine is shared, a hang is minutes
SOURCES = ["CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmd.dcm", "MR_small_jp2klossless.dcm",
           "examples_palette.dcm", "rtdose.dcm", "MR_small_jpeg_ls_lossless.dcm", "examples_overlay.dcm"]  # fmt: skip


def _byte_mutation(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["flip", "flip", "truncate", "zero", "splice", "ff"])
    if kind == "truncate":
        return bytes(buf[: rng.randrange(0, len(buf))])
    if kind == "splice":
        a, b = sorted(rng.randrange(0, len(buf)) for _ in range(2))
        return bytes(buf[:a] + buf[b:])
    # Header-heavy: most mutations hit the first 2 KB, where the structure lives.
    span = min(len(buf), 2048) if rng.random() < 0.8 else len(buf)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(0, span)
        buf[i] = {"flip": buf[i] ^ (1 << rng.randrange(8)), "zero": 0, "ff": 0xFF}[kind]
    return bytes(buf)


_TAG_VALUES = {
    "Rows": [0, 1, 65535, 3], "Columns": [0, 1, 65535, 7], "BitsAllocated": [1, 8, 12, 32, 64, 0],
    "BitsStored": [0, 1, 7, 12, 33], "HighBit": [0, 40], "PixelRepresentation": [0, 1, 2],
    "SamplesPerPixel": [0, 2, 3, 4], "NumberOfFrames": [0, 2, 999999, -1],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "YBR_FULL", "PALETTE COLOR", "HSV", ""],
    "PlanarConfiguration": [0, 1, 5], "RescaleSlope": [0, -1, 1e30, "nan"], "RescaleIntercept": [1e30, "inf"],
    "WindowCenter": [0, "abc", 1e38], "WindowWidth": [0, -5, 0.5, "x"], "VOILUTFunction": ["SIGMOID", "NOPE"],
    "PresentationLUTShape": ["INVERSE", "??"],
}  # fmt: skip


def _tag_mutation(rng: random.Random, ds: Dataset) -> Dataset:
    for _ in range(rng.randint(1, 3)):
        keyword = rng.choice(sorted(_TAG_VALUES))
        if rng.random() < 0.15 and keyword in ds:
            delattr(ds, keyword)
            continue
        value = rng.choice(_TAG_VALUES[keyword])
        try:
            setattr(ds, keyword, value)
        except Exception:  # noqa: BLE001 - pydicom refused this value: write it raw below instead
            ds.add_new(keyword, "UN", str(value).encode())
    if rng.random() < 0.1 and "PixelData" in ds:
        ds.PixelData = ds.PixelData[: rng.randrange(0, len(ds.PixelData) + 1)]
    return ds


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns while *writing* our invalid mutations
def test_fuzz_only_input_error_escapes(pydicom_test_files: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    originals = {name: (pydicom_test_files / name).read_bytes() for name in SOURCES}
    escaped: list[str] = []
    hung: list[str] = []
    counts = {"ok": 0, "input_error": 0}
    start = time.perf_counter()
    cases = [("bytes", i) for i in range(N_BYTE_MUTATIONS)] + [("tags", i) for i in range(N_TAG_MUTATIONS)]
    for kind, i in cases:
        name = rng.choice(SOURCES)
        path = tmp_path / f"{kind}_{i}_{name}"
        if kind == "bytes":
            path.write_bytes(_byte_mutation(rng, originals[name]))
        else:
            ds = pydicom.dcmread(pydicom_test_files / name)
            try:
                _tag_mutation(rng, ds).save_as(path)
            except Exception:  # noqa: BLE001 - pydicom cannot even write this mutation: not a test case
                continue
        exc, alive = run_bounded(path, TIME_BOUND_S)
        if alive:
            hung.append(path.name)
        elif exc is None:
            counts["ok"] += 1
        elif isinstance(exc, dicom_io.InputError):
            counts["input_error"] += 1
            assert path.name in str(exc), f"error does not name the file: {exc}"
        else:
            escaped.append(f"{path.name}: {type(exc).__name__}: {exc}")
        path.unlink(missing_ok=True)
    print(f"\nfuzz: {sum(counts.values())} cases, {counts}, {time.perf_counter() - start:.1f} s")
    assert not hung, f"calls exceeded {TIME_BOUND_S} s: {hung}"
    assert not escaped, "non-InputError escaped:\n" + "\n".join(escaped[:20])
    assert counts["ok"] > 20 and counts["input_error"] > 20  # both outcomes are exercised
