"""Inputs: the CLI's path rendering equals the viewer's `render_view`, and regions are validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from medapp.errors import UserError
from medapp.hashing import image_sha256
from medapp.inputs import MAX_REGION_SIDE, load_image, parse_region
from medapp.jobs.images import to_image
from medapp.view import ViewState


def test_cli_input_is_the_viewers_pixels(ct_small: Path) -> None:
    import dicom_io

    window = dicom_io.preset("ct-lung")
    loaded = load_image(ct_small, region=(10, 20, 64, 32), window=window)
    state = ViewState(ct_small, 0, window=(window.center, window.width), region=(10, 20, 64, 32))
    assert image_sha256(loaded.image) == image_sha256(to_image(state))
    assert loaded.image.size == (64, 32) and loaded.window == window and loaded.dataset.Modality == "CT"


def test_slide_overview_and_region_level(tiled_tiff_slide: Path) -> None:
    overview = load_image(tiled_tiff_slide)
    assert overview.kind == "slide" and overview.modality == "SM" and max(overview.image.size) <= 2048
    big = load_image(tiled_tiff_slide, region=(0, 0, 2048, 2048))  # read at a level keeping it <= MAX_REGION_SIDE
    assert max(big.image.size) <= MAX_REGION_SIDE
    tile = load_image(tiled_tiff_slide, region=(512, 512, 256, 256))
    assert tile.image.size == (256, 256)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,4,4"])
def test_bad_regions(text: str) -> None:
    with pytest.raises(UserError, match="--region"):
        parse_region(text)


def test_series_folder_names_the_shown_slice(pydicom_test_files: Path) -> None:
    folder = pydicom_test_files / "dicomdirtests" / "77654033" / "CT2"
    loaded = load_image(folder, frame=1)
    assert loaded.kind == "series" and loaded.modality == "CT"
    assert loaded.source_file is not None and loaded.source_file.parent == folder
    assert loaded.source_file != load_image(folder, frame=0).source_file
