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


def _override_lung(medapp_home: Path) -> None:
    from medapp.settings import Settings

    Settings(window_presets={"ct-lung": {"center": -500, "width": 1400}, "my-soft": {"center": 60, "width": 300}}).save()


def test_render_and_the_model_input_resolve_presets_the_same_way(medapp_home: Path, ct_small: Path,
                                                                 tmp_path: Path) -> None:
    """A user override of ct-lung is what `medapp render --preset` writes AND what ask/report send the model."""
    import numpy as np
    from PIL import Image

    import dicom_io
    from medapp.cli import build_parser, main
    from medapp.cli._common import load_settings, load_view

    _override_lung(medapp_home)
    stack = dicom_io.open_path(ct_small)
    for name, window in (("ct-lung", (-500.0, 1400.0)), ("my-soft", (60.0, 300.0))):
        out = tmp_path / f"{name}.png"
        assert main(["render", str(ct_small), "-o", str(out), "--preset", name]) == 0
        written = np.asarray(Image.open(out))
        args = build_parser().parse_args(["ask", str(ct_small), "q", "--preset", name])
        loaded = load_view(args, load_settings(args))
        assert np.array_equal(written, np.asarray(loaded.image)), name
        assert (loaded.window.center, loaded.window.width) == window
        assert np.array_equal(written, np.asarray(stack.render_rgb(0, dicom_io.Window(*window))))
    builtin = stack.render_rgb(0, dicom_io.preset("ct-lung"))
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "ct-lung.png")), np.asarray(builtin))


def test_every_rendering_command_takes_the_same_view_flags(ct_small: Path) -> None:
    from medapp.cli import build_parser

    parser = build_parser()
    for command in (["render", str(ct_small), "-o", "x.png"], ["ask", str(ct_small), "q"],
                    ["report", str(ct_small), "-o", "r.pdf"]):  # fmt: skip
        args = parser.parse_args([*command, "--window=-600,1500", "--frame", "0", "--region", "0,0,8,8"])
        assert (args.window, args.frame, args.region, args.preset) == ("-600,1500", 0, "0,0,8,8", None)
        assert parser.parse_args([*command, "--preset", "ct-bone"]).preset == "ct-bone"
        with pytest.raises(SystemExit):  # one or the other
            parser.parse_args([*command, "--preset", "ct-bone", "--window", "40,400"])


def test_slide_region_is_read_sharp_then_shrunk_to_the_model_side(tiled_tiff_slide: Path, tmp_path: Path,
                                                                  medapp_home: Path) -> None:
    """A region whose best level would give more than MAX_REGION_SIDE (here 4000 px at level 0) is shrunk to it,
    and `medapp render` without --level writes exactly the model's input."""
    import numpy as np
    from PIL import Image

    from medapp.cli import main

    region = (0, 0, 4000, 4000)  # 2000 px of slide plus glass: downsample 1.95 -> level 0, a 4000 px read
    loaded = load_image(tiled_tiff_slide, region=region)
    assert loaded.image.size == (MAX_REGION_SIDE, MAX_REGION_SIDE)
    out = tmp_path / "r.png"
    assert main(["render", str(tiled_tiff_slide), "-o", str(out), "--region", ",".join(map(str, region))]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(loaded.image))
    # an explicit level is read there, and still never exceeds the model side
    assert main(["render", str(tiled_tiff_slide), "-o", str(out), "--region", "0,0,3000,3000", "--level", "0"]) == 0
    assert Image.open(out).size == (MAX_REGION_SIDE, MAX_REGION_SIDE)


def test_render_view_reads_slide_regions_through_render_slide_region(tiled_tiff_slide: Path) -> None:
    """`render_slide_region` is the one read + shrink of a slide region (the slide viewer's model input uses it too)."""
    import numpy as np

    from dicom_io import RegionError
    from medapp.view import open_cached, render_slide_region, render_view, slide_region_level

    slide = open_cached(tiled_tiff_slide)
    region = (100, 200, 1500, 900)
    for level in (0, 1, 2):
        image = render_slide_region(slide, region, level)
        assert image.mode == "RGB" and max(image.size) <= MAX_REGION_SIDE
        assert np.array_equal(np.asarray(render_view(ViewState(tiled_tiff_slide, region=region, level=level))),
                              np.asarray(image))
    auto = render_view(ViewState(tiled_tiff_slide, region=region))
    assert np.array_equal(np.asarray(auto), np.asarray(render_slide_region(slide, region, slide_region_level(slide, region))))
    with pytest.raises(RegionError, match="empty"):
        render_view(ViewState(tiled_tiff_slide, region=(0, 0, 0, 10)))


def test_slide_region_level_goes_coarser_only_past_the_read_limit() -> None:
    from dicom_io.slide import MAX_REGION_PIXELS
    from medapp.view import slide_region_level

    class Pyramid:  # the three attributes the rule reads, for a pyramid with a 16x gap no test slide has
        level_count = 2
        level_downsamples = [1.0, 16.0]

        def best_level_for_downsample(self, d: float) -> int:
            return 1 if d >= 16 else 0

    side = int(MAX_REGION_PIXELS**0.5)
    assert slide_region_level(Pyramid(), (0, 0, side, side)) == 0  # 4x too big, but readable: read sharp, shrink
    assert slide_region_level(Pyramid(), (0, 0, side + 8, side)) == 1  # unreadable at level 0: the next level


def test_opening_a_slide_audits_a_bounded_fingerprint_not_a_full_hash(tiled_tiff_slide: Path, tmp_path: Path) -> None:
    """A slide can be gigabytes: the audit entry carries its bounded fingerprint, a plain file its full SHA-256."""
    from medapp.audit import AuditLog
    from medapp.hashing import file_sha256, slide_fingerprint
    from medapp.inputs import record_open

    audit = AuditLog(tmp_path / "audit.jsonl")
    digest = record_open(audit, load_image(tiled_tiff_slide))
    assert digest == slide_fingerprint(tiled_tiff_slide)
    assert digest != file_sha256(tiled_tiff_slide)
