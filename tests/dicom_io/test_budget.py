"""The pixel budget (issue #10 item 5): sizes are checked from the header before decoding, so a small file that
declares a huge image is one clear error, even under a memory limit that the decode itself would exceed."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import dicom_io
from dicom_io.budget import MAX_PIXELS


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_constant_png(path: Path, width: int, height: int, rgba=(200, 30, 30, 255), rows_per_block: int = 200) -> Path:
    """A constant-colour RGBA PNG written without ever holding the image: one block of rows is deflated once with a
    full flush (byte-aligned, history reset, so its compressed bytes can be repeated verbatim), and the zlib
    checksum is computed over the repeated raw block. 13000 x 13000 takes well under a second and < 1 MB."""
    assert height % rows_per_block == 0
    block = (b"\x00" + bytes(rgba) * width) * rows_per_block  # filter byte 0 + pixels, per row
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    adler = 1
    for _ in range(height // rows_per_block):
        adler = zlib.adler32(block, adler)
    idat = b"\x78\xda" + piece * (height // rows_per_block) + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def test_png_writer_is_a_valid_png(tmp_path: Path) -> None:
    """The generator the big-image tests rely on, checked on a small image that is decoded for real."""
    path = write_constant_png(tmp_path / "small.png", 300, 400, rows_per_block=100)
    stack = dicom_io.open_path(path)
    assert stack.size == (300, 400)
    assert np.all(stack.render(0) == (200, 30, 30))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_constant_png(tmp_path_factory.mktemp("huge") / "huge_13000.png", 13000, 13000)
    assert path.stat().st_size < 1_000_000
    return path


def test_huge_png_refused_from_the_header(huge_png: Path) -> None:
    with pytest.raises(dicom_io.ImageTooLargeError) as err:
        dicom_io.open_path(huge_png)
    text = str(err.value)
    assert "huge_13000.png" in text and "13000x13000" in text and "67.1 megapixels" in text


@pytest.mark.parametrize("command", ["info", "render"])
def test_huge_png_under_a_4gb_limit_exits_2_with_one_line(huge_png: Path, tmp_path: Path, command: str) -> None:
    """Before the budget, decoding took 4.4 GB and the error handler itself died of MemoryError (traceback, exit 1)."""
    argv = [sys.executable, "-m", "medapp", command, str(huge_png)]
    if command == "render":
        argv += ["-o", str(tmp_path / "out.png")]

    def limit_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4_000_000 * 1024, 4_000_000 * 1024))  # = `ulimit -v 4000000`

    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=limit_memory,
                          env={**os.environ, "MEDAPP_HOME": str(tmp_path / "home")})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("medapp: ") and "13000x13000" in lines[0], lines
    assert not (tmp_path / "out.png").exists()


def test_dicom_frame_over_budget_is_refused_before_decoding(ct_dataset, ct_phantom, tmp_path: Path) -> None:
    ds = ct_dataset(ct_phantom(32))
    ds.Rows, ds.Columns = 9000, 9000  # 81 megapixels per frame; the pixel data is not even there
    path = tmp_path / "big_frame.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(dicom_io.ImageTooLargeError, match=r"big_frame\.dcm: frame is 9000x9000 pixels"):
        dicom_io.open_path(path)
    assert 9000 * 9000 > MAX_PIXELS


def test_slide_region_over_budget_names_the_limit(tiled_tiff_slide: Path) -> None:
    with dicom_io.open_path(tiled_tiff_slide) as slide:
        with pytest.raises(dicom_io.RegionError, match="limit is 67.1"):
            slide.read_region((0, 0), 0, (9000, 9000))
