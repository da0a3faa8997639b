"""Slide-level description without the model: magnification, candidates, streaming, scoring cache, NMS, citations,
heat map and settings. The synthetic slide (bench/_slides.py) is 4096² at 0.25 µm/px (40×) with a round tissue
blob and a planted 3×3-block square of a different texture at level-0 x 2560..3328, y 1280..2048."""

from __future__ import annotations

import threading
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLANTED_RECT = (2560, 1280, 3328, 2048)  # x0, y0, x1, y1 level 0


def write_test_slide(path: Path, *, mpp: float | None = 0.25) -> Path:
    from bench._slides import blob_mask, write_block_slide

    mask = blob_mask(16, 16, [(0.5, 0.5, 0.42)], planted=[(x, y) for x in (10, 11, 12) for y in (5, 6, 7)])
    return write_block_slide(path, mask, tile=256, mpp=mpp or 0.25, level_factor=2, n_levels=4)


@pytest.fixture(scope="module")
def test_slide(tmp_path_factory) -> Path:
    return write_test_slide(tmp_path_factory.mktemp("slide_level") / "synthetic.tif")


@pytest.fixture
def slide(test_slide):
    from dicom_io.slide import Slide

    with Slide(test_slide) as s:
        yield s


class DarknessScorer:
    """Deterministic scorer: the darker the tile, the higher (the planted texture is the darkest). Counts calls."""

    cache_id = "test-darkness/1"

    def __init__(self) -> None:
        self.calls = 0
        self.tiles = 0

    def __call__(self, overview, tiles):
        self.calls += 1
        self.tiles += len(tiles)
        return np.asarray([255.0 - np.asarray(t, dtype=np.float32).mean() for t in tiles], dtype=np.float32)


# ------------------------------------------------------------------------------------------------- magnification
def test_base_magnification_prefers_objective_power_then_mpp_and_names_the_file_without_either():
    from medapp.errors import UserError
    from medapp.slide_level.candidates import base_magnification

    def fake(power, mpp):
        return types.SimpleNamespace(objective_power=power, mpp=mpp, path=Path("/data/case-17.svs"))

    assert base_magnification(fake(40.0, (0.5, 0.5))) == 40.0
    assert base_magnification(fake(None, (0.25, 0.25))) == pytest.approx(40.0)
    assert base_magnification(fake(None, (1.0, 1.0))) == pytest.approx(10.0)
    with pytest.raises(UserError, match=r"case-17\.svs.*neither"):
        base_magnification(fake(None, None))


def test_grid_is_one_model_crop_at_the_magnification_read_from_the_right_level(slide):
    from medapp.errors import UserError
    from medapp.slide_level.candidates import tile_grid

    grid = tile_grid(slide, 20, 336)  # 40x slide → downsample 2
    assert grid.tile0 == pytest.approx(672) and grid.downsample == pytest.approx(2)
    assert grid.level == 1 and grid.read_px == 336  # level 1 has downsample 2: read 336, no resize
    assert (grid.cols, grid.rows) == (4096 // 672, 4096 // 672)
    grid10 = tile_grid(slide, 10, 336)
    assert grid10.level == 2 and grid10.tile0 == pytest.approx(1344)
    with pytest.raises(UserError, match=r"synthetic\.tif.*40x.*80x"):
        tile_grid(slide, 80, 336)


def test_candidates_are_tissue_inside_the_slide_and_streamed_lazily(slide):
    from dicom_io.tissue import tissue_mask
    from medapp.slide_level.candidates import candidate_grid, stream_tiles

    grid, cands = candidate_grid(slide, 20, 336, tissue_fraction=0.5)
    assert 0 < len(cands) < grid.cols * grid.rows  # the glass corners are not candidates
    assert 0 not in {c.index for c in cands}  # top-left cell is glass
    for c in cands:
        x, y, w, h = c.box
        assert 0 <= x and 0 <= y and x + w <= 4096 and y + h <= 4096
    stream = stream_tiles(slide, grid, cands)
    assert isinstance(stream, types.GeneratorType)
    streamed = list(stream)
    assert [c for c, _ in streamed] == cands
    for cand, image in streamed:
        assert image.size == (336, 336) and image.mode == "RGB"
        assert tissue_mask(np.asarray(image)).mean() >= 0.3, cand  # what was read really is mostly tissue
    threaded = list(stream_tiles(slide, grid, iter(cands), workers=3, prefetch=4))  # same tiles, same order
    assert [c for c, _ in threaded] == cands
    assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(streamed, threaded, strict=True))


# ------------------------------------------------------------------------------------------------- selection
def test_nms_keeps_k_picks_apart_skips_nan_and_breaks_ties_by_index():
    from medapp.slide_level.select import select_regions

    centres = np.array([[0, 0], [10, 0], [100, 0], [105, 0], [300, 0], [600, 0]], float)
    scores = np.array([5.0, 9.0, 8.0, 8.0, np.nan, 1.0])
    picks = select_regions(centres, scores, k=3, min_distance=50)
    assert picks == [1, 2, 5]  # 0 is too close to 1, 3 to 2 (tie: earlier index 2 wins), NaN never
    for a in picks:
        for b in picks:
            if a != b:
                assert np.hypot(*(centres[a] - centres[b])) >= 50
    assert select_regions(centres, scores, k=10, min_distance=0) == [1, 2, 3, 0, 5]


def test_picks_respect_min_distance_on_the_real_grid(slide):
    from medapp.slide_level.candidates import candidate_grid
    from medapp.slide_level.select import select_regions

    grid, cands = candidate_grid(slide, 20, 336)
    centres = np.array([c.centre for c in cands])
    rng = np.random.default_rng(3)
    picks = select_regions(centres, rng.random(len(cands)), k=4, min_distance=2 * grid.tile0)
    assert len(picks) == 4
    d = np.hypot(*(centres[picks][:, None] - centres[picks][None]).transpose(2, 0, 1))
    assert (d[~np.eye(4, dtype=bool)] >= 2 * grid.tile0).all()


# ------------------------------------------------------------------------------------------------- citations
def test_citations_outside_the_regions_are_removed_and_reported():
    from medapp.slide_level.citations import validate_citations

    text = "Dense tumour at the edge [1][9]. Necrosis is seen [2, 3]. Stroma [0] is fibrotic. Fat [2-4]."
    cited = validate_citations(text, 3)
    assert cited.invalid == (9, 0, 4)
    assert "[9]" not in cited.text and "[0]" not in cited.text and "[4]" not in cited.text
    assert [s.regions for s in cited.sentences] == [(1,), (2, 3), (), (2, 3)]
    assert cited.uncited_sentences == 1
    assert cited.cited == {1, 2, 3}
    assert cited.raw == text


# ------------------------------------------------------------------------------------------------- scoring + cache
def test_scores_are_cached_per_key_and_a_cancelled_pass_resumes(slide, tmp_path):
    from medapp.slide_level.candidates import candidate_grid
    from medapp.slide_level.scoring import ScoreCache, cache_key, score_candidates

    grid, cands = candidate_grid(slide, 20, 336)
    overview = slide.thumbnail(256)
    key = cache_key(fingerprint="f" * 64, model_sha256="m" * 64, scorer="test", grid=grid, tissue_fraction=0.5,
                    overview_side=256)
    cancel = threading.Event()
    scorer = DarknessScorer()

    def stop_after_two(done, total):
        if scorer.calls == 2:
            cancel.set()

    first = score_candidates(slide, grid, cands, overview, scorer, cache=ScoreCache(tmp_path, key), batch_size=3,
                             on_batch=stop_after_two, cancel=cancel)
    assert first.cancelled and first.scored_now == 6 and int(np.isfinite(first.scores).sum()) == 6

    resumed = DarknessScorer()
    second = score_candidates(slide, grid, cands, overview, resumed, cache=ScoreCache(tmp_path, key), batch_size=3)
    assert not second.cancelled and resumed.tiles == len(cands) - 6 and np.isfinite(second.scores).all()
    np.testing.assert_array_equal(second.scores[:6], first.scores[:6])

    again = DarknessScorer()
    third = score_candidates(slide, grid, cands, overview, again, cache=ScoreCache(tmp_path, key), batch_size=3)
    assert again.calls == 0 and third.scored_now == 0
    np.testing.assert_array_equal(third.scores, second.scores)

    other = DarknessScorer()  # another model hash → another cache file → scored again
    key2 = cache_key(fingerprint="f" * 64, model_sha256="n" * 64, scorer="test", grid=grid, tissue_fraction=0.5,
                     overview_side=256)
    score_candidates(slide, grid, cands, overview, other, cache=ScoreCache(tmp_path, key2), batch_size=3)
    assert other.tiles == len(cands)


def test_a_damaged_cache_is_recomputed_not_trusted(slide, tmp_path):
    from medapp.slide_level.candidates import candidate_grid
    from medapp.slide_level.scoring import ScoreCache, score_candidates

    grid, cands = candidate_grid(slide, 20, 336)
    cache = ScoreCache(tmp_path, "k" * 64)
    cache.path.write_bytes(b"not an npz")
    scorer = DarknessScorer()
    result = score_candidates(slide, grid, cands, slide.thumbnail(128), scorer, cache=cache, batch_size=8)
    assert scorer.tiles == len(cands) and np.isfinite(result.scores).all()


def test_the_planted_texture_scores_highest(slide):
    from medapp.slide_level.candidates import candidate_grid
    from medapp.slide_level.scoring import score_candidates

    grid, cands = candidate_grid(slide, 20, 336)
    result = score_candidates(slide, grid, cands, slide.thumbnail(128), DarknessScorer(), cache=None)
    best = cands[int(np.nanargmax(result.scores))]
    cx, cy = best.centre
    x0, y0, x1, y1 = PLANTED_RECT
    assert x0 <= cx <= x1 and y0 <= cy <= y1


# ------------------------------------------------------------------------------------------------- heat map, settings
def test_heatmap_colours_scored_tiles_and_numbers_boxes():
    from medapp.slide_level.heatmap import colormap, heatmap_image, score_overlay

    boxes = np.array([[0, 0, 100, 100], [200, 200, 100, 100], [400, 0, 100, 100]])
    scores = np.array([0.0, 1.0, np.nan])
    layer = np.asarray(score_overlay((100, 100), (1000, 1000), boxes, scores))
    assert layer[5, 5, 3] > 0 and layer[25, 25, 3] > 0 and layer[5, 45, 3] == 0  # NaN stays clear
    assert tuple(layer[25, 25, :3]) == tuple(colormap(np.array(1.0))) != tuple(layer[5, 5, :3])
    thumb = Image.new("RGB", (100, 100), "white")
    out = np.asarray(heatmap_image(thumb, (1000, 1000), boxes, scores, [boxes[1]]))
    assert out.shape == (100, 100, 3)
    red = (out[..., 0] > 200) & (out[..., 1] < 80) & (out[..., 2] < 80)
    assert red[15:35, 15:35].any()  # the numbered box around region 1


def test_settings_identity_follows_every_prompt_and_number():
    from medapp.errors import UserError
    from medapp.slide_level.settings import SlideLevelSettings

    base = SlideLevelSettings()
    assert base.updated(top_k=None) == base
    assert base.updated(top_k=3).settings_sha256 != base.settings_sha256
    assert base.updated(region_prompt="Describe.").settings_sha256 != base.settings_sha256
    text = base.description_text(["first  caption", "second"])
    assert "[1] first caption\n[2] second" in text and "20x" in text
    assert SlideLevelSettings.from_dict(base.to_dict()) == base
    with pytest.raises(UserError, match="top-k"):
        SlideLevelSettings(top_k=0)
    with pytest.raises(UserError, match="regions"):
        SlideLevelSettings(description_prompt="no field")
    with pytest.raises(UserError, match="fields"):
        SlideLevelSettings(description_prompt="{regions} {oops}")


def test_label_and_macro_images_never_reach_the_candidates(svs_slide):
    """The SVS fixture's label and macro are pure green; no candidate tile or overview may contain that colour."""
    from dicom_io.slide import Slide
    from medapp.slide_level.candidates import candidate_grid, stream_tiles

    with Slide(svs_slide) as slide:
        grid, cands = candidate_grid(slide, 20, 336)
        assert cands and grid.base_magnification == 20 and grid.level == 0
        images = [slide.thumbnail(512)] + [image for _, image in stream_tiles(slide, grid, cands)]
    for image in images:
        a = np.asarray(image).astype(int)
        green = (a[..., 1] > 200) & (a[..., 0] < 60) & (a[..., 2] < 60)
        assert not green.any()
