"""Whole-slide images written by the tests (conftest: tiled TIFF, Aperio SVS, DICOM-WSI), read through OpenSlide.

No mocks: the slides are real files OpenSlide parses. Tiles are JPEG, so pixel comparisons allow a small error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

import dicom_io
from dicom_io.tissue import tissue_mask, tissue_tiles

LABEL_RGB = (0, 255, 0)  # the SVS fixture's label / macro colour (tests/conftest.py SLIDE_LABEL_RGB)


@pytest.fixture(params=["tiled_tiff_slide", "svs_slide", "dicom_wsi_slide"])
def slide_path(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


def test_levels_and_resolution(slide_path: Path) -> None:
    slide = dicom_io.open_path(slide_path)
    assert isinstance(slide, dicom_io.Slide) and slide.kind == "slide"
    assert slide.level_count == 3
    assert slide.level_dimensions == [(2048, 2048), (1024, 1024), (512, 512)]
    assert slide.level_downsamples == pytest.approx([1.0, 2.0, 4.0])
    assert slide.mpp == pytest.approx((0.5, 0.5))
    assert slide.best_level_for_downsample(3.0) == 1 and slide.best_level_for_downsample(0.5) == 0
    if slide_path.suffix != ".tif":
        assert slide.objective_power == 20
    slide.close()


@pytest.mark.parametrize("level", [0, 1, 2])
def test_read_region_matches_the_written_pyramid(slide_path: Path, slide_levels, level: int) -> None:
    slide = dicom_io.open_path(slide_path)
    x0, y0, w, h = 512, 640, 200, 150  # level-0 origin, size at `level`
    region = slide.read_region((x0, y0), level, (w, h))
    assert region.mode == "RGB" and region.size == (w, h)
    d = 2**level
    expected = slide_levels[level][y0 // d : y0 // d + h, x0 // d : x0 // d + w].astype(int)
    error = np.abs(np.asarray(region, int) - expected).mean()
    assert error < 6, f"mean abs error {error:.1f} at level {level}"
    slide.close()


def test_outside_the_slide_is_white_and_errors_are_region_errors(tiled_tiff_slide: Path) -> None:
    slide = dicom_io.open_path(tiled_tiff_slide)
    edge = np.asarray(slide.read_region((2000, 2000), 0, (100, 100)))
    assert (edge[60:, 60:] == 255).all()  # past the 2048 edge: glass-white, not black / transparent
    with pytest.raises(dicom_io.RegionError, match="level 3 out of range"):
        slide.read_region((0, 0), 3, (10, 10))
    with pytest.raises(dicom_io.RegionError, match="outside"):
        slide.read_region((5000, 0), 0, (10, 10))
    with pytest.raises(dicom_io.RegionError, match="too large"):
        slide.read_region((0, 0), 0, (20000, 20000))
    slide.close()


def test_thumbnail_is_from_the_pyramid(svs_slide: Path) -> None:
    slide = dicom_io.open_path(svs_slide)
    thumb = slide.thumbnail(300)
    assert thumb.size == (300, 300) and thumb.mode == "RGB"
    slide.close()


def test_label_and_macro_never_come_back(svs_slide: Path) -> None:
    # The fixture really has them (OpenSlide lists them) ...
    with openslide.OpenSlide(str(svs_slide)) as osr:
        assert {"label", "macro"} <= set(osr.associated_images)
    slide = dicom_io.open_path(svs_slide)
    # ... but our Slide has no way to reach them, and nothing it returns contains their colour.
    assert not any("associated" in name or "label" in name or "macro" in name for name in dir(slide))
    images = [slide.thumbnail(512), slide.read_region((0, 0), 2, (512, 512))]
    for img in images:
        arr = np.asarray(img, int)
        green = (np.abs(arr - np.array(LABEL_RGB)).sum(axis=2) < 60).mean()
        assert green < 0.001
    slide.close()


def test_dicom_wsi_single_file_and_folder(dicom_wsi_slide: Path) -> None:
    one_file = sorted(dicom_wsi_slide.glob("*.dcm"))[1]
    for path in (dicom_wsi_slide, one_file):
        slide = dicom_io.open_path(path)
        assert isinstance(slide, dicom_io.Slide) and slide.vendor == "dicom" and slide.level_count == 3
        slide.close()
    info = dicom_io.info(dicom_wsi_slide)
    assert info["kind"] == "slide" and info["levels"] == 3 and info["mpp"] == pytest.approx([0.5, 0.5])


def test_tissue_tiles_land_on_tissue(tiled_tiff_slide: Path, slide_levels) -> None:
    slide = dicom_io.open_path(tiled_tiff_slide)
    tiles = tissue_tiles(slide, 256, 5)
    assert len(tiles) == 5
    truth = tissue_mask(slide_levels[0])
    for x, y, level, w, h in tiles:
        assert level == 0 and (w, h) == (256, 256)
        assert truth[y : y + h, x : x + w].mean() > 0.5
    # Deterministic and best-first.
    assert tissue_tiles(slide, 256, 5) == tiles
    # Tiles at level 1 are in level-0 coordinates and cover 512 level-0 pixels each.
    for x, y, level, _w, _h in tissue_tiles(slide, 128, 3, level=1):
        assert level == 1 and truth[y : y + 256, x : x + 256].mean() > 0.5
    slide.close()


def test_folder_with_slides_lists_them(tmp_path: Path, tiled_tiff_slide: Path, svs_slide: Path) -> None:
    import shutil

    shutil.copy(tiled_tiff_slide, tmp_path / "a.tif")
    shutil.copy(svs_slide, tmp_path / "b.svs")
    coll = dicom_io.open_path(tmp_path)
    assert isinstance(coll, dicom_io.Collection)
    assert sorted(p.name for p in coll.slides) == ["a.tif", "b.svs"] and not coll.images
