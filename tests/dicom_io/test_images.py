"""Plain PNG / JPEG / TIFF, 16-bit grayscale included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dicom_io
from dicom_io.windows import Window


def test_16_bit_png_keeps_its_depth_and_is_windowed(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    img = dicom_io.open_path(path)
    assert img.kind == "image" and img.size == (256, 16) and not img.is_colour
    values = img.modality_values(0)
    assert values.max() == 65535  # not squashed to 8 bits on load
    out = img.render(0)
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[0, -1] == 255  # auto window spans the data
    narrow = img.render(0, Window(32768, 1000))
    assert (narrow[:, :100] == 0).all() and (narrow[:, -100:] == 255).all()


def test_8_bit_grey_is_shown_as_is(tmp_path: Path) -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "g.png"
    Image.fromarray(grey).save(path)
    assert np.array_equal(dicom_io.open_path(path).render(0), grey)


def test_rgba_is_composited_on_white_and_jpeg_reads(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = dicom_io.open_path(tmp_path / "a.png").render(0)
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[7, 0]) == (255, 255, 255)
    Image.fromarray(np.full((10, 12, 3), 90, np.uint8)).save(tmp_path / "c.jpg", quality=95)
    jpg = dicom_io.open_path(tmp_path / "c.jpg")
    assert jpg.is_colour and jpg.render_rgb(0).size == (12, 10)


def test_multipage_tiff_frames(tmp_path: Path) -> None:
    import tifffile

    stack = np.stack([np.full((8, 8), v, np.uint16) for v in (100, 2000, 40000)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    img = dicom_io.open_path(tmp_path / "s.tif")
    assert img.kind == "image" and img.n_frames == 3
    assert [float(img.modality_values(i).mean()) for i in range(3)] == [100, 2000, 40000]
    with pytest.raises(dicom_io.FrameIndexError):
        img.render(3)


def test_truncated_png(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(dicom_io.InputError, match=r"t\.png"):
        dicom_io.open_path(tmp_path / "t.png").render(0)


def test_grey_with_alpha_is_composited_on_white_and_stays_grey(tmp_path: Path) -> None:
    la = np.zeros((8, 8, 2), np.uint8)
    la[..., 0] = 60
    la[:4, :, 1] = 255  # top half opaque dark grey, bottom half fully transparent
    la[4:, :, 1] = 0
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    img = dicom_io.open_path(path)
    assert not img.is_colour and img.metadata["photometric"] == "MONOCHROME2"
    out = img.render(0)
    assert out.ndim == 2 and (out[:4] == 60).all() and (out[4:] == 255).all()  # transparent shows as white glass
