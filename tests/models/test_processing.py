"""DragonflyProcessor: geometry, token layout, batching, input conversion, and the fast pixel path vs per-crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models._geometry import crop_boxes, high_resolution, medium_resolution
from models.variants import VARIANTS, image_block_len, image_token_runs, n_image_tokens

PROMPT = "<|start_header_id|>user<|end_header_id|>\n\nDescribe.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
LONG_PROMPT = PROMPT.replace("Describe.", "Describe the findings of this study in two sentences, please.")


@pytest.mark.parametrize(
    ("size", "expected"),
    [((200, 200), (672, 672)), ((300, 100), (672, 672)), ((800, 600), (672, 672)), ((1920, 1080), (672, 672)),
     ((2000, 1000), (672, 672)), ((700, 175), (1344, 336)), ((1000, 250), (1344, 336)), ((1200, 400), (1344, 336)),
     ((3000, 1000), (1344, 336)), ((250, 1000), (336, 1344))],
)
def test_medium_grid_v2(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert medium_resolution(size, VARIANTS["v2"]) == expected
    assert high_resolution(size, VARIANTS["v2"]) == (3 * expected[0], 3 * expected[1])


@pytest.mark.parametrize(
    ("size", "expected"),
    [((200, 200), (1344, 896)), ((800, 600), (1344, 896)), ((600, 800), (1344, 896)), ((3000, 1000), (1792, 672)),
     ((1000, 250), (1344, 896))],
)
def test_high_grid_v1_is_chosen_on_its_own(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert high_resolution(size, VARIANTS["v1"]) == expected


def test_crop_boxes_are_raster_order() -> None:
    assert crop_boxes((672, 336), 336) == [(0, 0, 336, 336), (336, 0, 672, 336)]
    assert crop_boxes((336, 672), 336) == [(0, 0, 336, 336), (0, 336, 336, 672)]
    with pytest.raises(ValueError, match="not a multiple"):
        crop_boxes((500, 336), 336)


def test_layouts() -> None:
    """The numbers of the official code (notes §0): visual embeddings, image-block length, crops per image."""
    for name, expected in {"v2": (2057, 2098, 41), "v1": (850, 867, 29)}.items():
        variant = VARIANTS[name]
        runs = image_token_runs(variant)
        assert (n_image_tokens(variant), n_image_tokens(variant) + len(runs), variant.n_crops) == expected
    assert image_token_runs(VARIANTS["v2"]) == (577,) + (37,) * 40
    assert image_token_runs(VARIANTS["v1"]) == (50,) * 17


def _reference_patches(image: Image.Image, proc) -> np.ndarray:
    """The straightforward path: Pillow resize + crop, then CLIPImageProcessor on every crop (as the official code)."""
    from transformers import CLIPImageProcessorPil

    s = proc.variant_spec.crop_size
    ip = CLIPImageProcessorPil(
        size={"shortest_edge": s}, crop_size={"height": s, "width": s}, resample=3,
        image_mean=proc.image_processor.image_mean, image_std=proc.image_processor.image_std,
    )
    medium = medium_resolution(image.size, proc.variant_spec)
    high = high_resolution(image.size, proc.variant_spec)
    crops = [image.resize((s, s), Image.Resampling.BICUBIC)]
    for size in (medium, high):
        big = image.resize(size, Image.Resampling.BICUBIC)
        crops += [big.crop(box) for box in crop_boxes(size, s)]
    return np.stack([np.asarray(ip.preprocess(c, return_tensors="np")["pixel_values"][0]) for c in crops])


#: (width, height): wide (4x1 medium grid); v1's medium grid with the columns resampled first (Pillow's pass order);
#: v2's medium grid at the image's own size (no resize at all); height kept, width stretched.
SHAPES = [(530, 190), (700, 336), (1344, 336), (900, 224)]


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("content", ["colour", "gray-as-rgb"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{w}x{h}" for w, h in SHAPES])
def test_fast_pixels_equal_per_crop_reference(version: str, content: str, shape: tuple[int, int], dragonfly_processors: dict) -> None:
    proc = dragonfly_processors[version]
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (shape[1], shape[0], 3), dtype=np.uint8)
    if content == "gray-as-rgb":  # equal bands: resized once per grid, normalised three times
        pixels[..., 1] = pixels[..., 2] = pixels[..., 0]
    image = Image.fromarray(pixels)
    fast = proc.image_patches(image)
    s = VARIANTS[version].crop_size
    assert fast.dtype == np.float32 and fast.shape == (VARIANTS[version].n_crops, 3, s, s)
    np.testing.assert_array_equal(fast, _reference_patches(image, proc))
    np.testing.assert_array_equal(fast, proc.image_patches(image, concurrent=False))


def test_the_shapes_cover_both_pass_orders_and_unresized_grids() -> None:
    """The shapes above reach every branch of the split resize, on the installed Pillow."""
    from models._geometry import grid_sizes
    from models._pixels import _split_matches_pillow, _vertical_first

    assert _split_matches_pillow()  # else the split path would not be taken at all
    grids = [(shape, size) for shape in SHAPES for v in VARIANTS.values() for size in grid_sizes(shape, v)]
    assert any(_vertical_first(shape, size) for shape, size in grids)
    assert any(not _vertical_first(shape, size) for shape, size in grids)
    assert any(size == shape for shape, size in grids)
    assert any(size[1] == shape[1] and size[0] != shape[0] for shape, size in grids)


def test_split_resize_equals_pillow_on_random_geometries() -> None:
    """First pass + strips of the second pass = one Pillow resize, for random sizes that shrink or enlarge."""
    from models._pixels import _split_resize

    rng = np.random.default_rng(11)
    for _ in range(60):
        w_in, h_in = (int(x) for x in rng.integers(5, 80, 2))
        s = int(rng.integers(1, 9))
        w, h = (s * int(x) for x in rng.integers(1, 20, 2))
        image = Image.fromarray(rng.integers(0, 256, (h_in, w_in, 3), dtype=np.uint8))
        whole = np.asarray(image.resize((w, h), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(_split_resize(image, (w, h), s), whole, err_msg=f"{(w_in, h_in)} -> {(w, h)}")


def test_whole_grid_fallback_is_exact_too(dragonfly_processors: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """If a future Pillow orders its passes differently, each grid is resized in one call: the same numbers."""
    from models import _pixels

    proc = dragonfly_processors["v1"]
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (336, 700, 3), dtype=np.uint8))
    split = proc.image_patches(image)
    monkeypatch.setattr(_pixels, "_split_matches_pillow", lambda: False)
    np.testing.assert_array_equal(proc.image_patches(image), split)
    np.testing.assert_array_equal(proc.image_patches(image, concurrent=False), split)


def test_bands_normaliser_equals_the_table_for_one_and_three_bands() -> None:
    from models._pixels import Normalizer

    norm = Normalizer([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = np.empty((1, 3, 16, 16), dtype=np.float32)
    norm.bands([every] * 3, out)
    np.testing.assert_array_equal(out.reshape(3, 256), norm.lut)
    out[:] = 0
    norm.bands([every], out)  # one band standing for all three channels
    np.testing.assert_array_equal(out.reshape(3, 256), norm.lut)


def test_table_path_equals_arithmetic_path(dragonfly_processors: dict) -> None:
    """The gather fallback (used when float arithmetic would not reproduce the table) gives the same crops."""
    import copy

    from models._pixels import image_patches

    proc = dragonfly_processors["v1"]
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 200, 3), dtype=np.uint8))
    table = copy.copy(proc.normalizer)
    table.exact_arithmetic = False
    np.testing.assert_array_equal(image_patches(image, VARIANTS["v1"], table), image_patches(image, VARIANTS["v1"], proc.normalizer))


def test_pixel_path_refuses_non_rgb_input() -> None:
    from models._pixels import Normalizer, image_patches

    with pytest.raises(ValueError, match="needs an RGB image, got mode 'L'"):
        image_patches(Image.new("L", (10, 10)), VARIANTS["v2"], Normalizer([0.5] * 3, [0.5] * 3))


def test_generate_mode_left_pads_several_images(dragonfly_processors: dict) -> None:
    proc = dragonfly_processors["v1"]
    images = [Image.new("RGB", (300, 200), (200, 10, 10)), Image.new("RGB", (120, 500), (10, 10, 200))]
    batch = proc(text=[PROMPT, LONG_PROMPT], images=images, max_length=2048, return_tensors="pt", is_generate=True)
    ids, mask, idx = batch["input_ids"], batch["attention_mask"], batch["image_patches_indices"]
    n_short, n_long = (len(proc.tokenizer(p)["input_ids"]) for p in (PROMPT, LONG_PROMPT))
    block = image_block_len(proc.variant_spec)
    assert ids.shape == (2, block + n_long) and idx.shape == (2, block + n_long + 10)
    pad = n_long - n_short
    assert mask[0, :pad].sum() == 0 and bool(mask[0, pad:].all()) and bool(mask[1].all())
    assert bool((ids[0, :pad] == proc.pad_token_id).all())
    bos = proc.tokenizer.bos_token_id
    assert int(ids[0, pad + block]) == bos and int(ids[1, block]) == bos  # image block sits before BOS
    for b in range(2):
        placeholder = ids[b] == proc.placeholder_id
        assert torch.equal(placeholder, idx[b, : ids.shape[1]] >= 0)
        assert idx[b][idx[b] >= 0].tolist() == list(range(n_image_tokens(proc.variant_spec)))
    assert [tuple(p.shape) for p in batch["image_patches"]] == [(29, 3, 224, 224)] * 2
    assert not torch.equal(batch["image_patches"][0], batch["image_patches"][1])


def test_training_mode_right_pads_and_keeps_end_of_text(dragonfly_processors: dict) -> None:
    proc = dragonfly_processors["v1"]
    image = Image.new("RGB", (64, 64), (0, 128, 0))
    batch = proc(text=[LONG_PROMPT, PROMPT], images=[image, image], return_tensors="pt", is_generate=False)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert int(ids[0, -1]) == proc.end_of_text_id and bool(mask[0].all())
    assert int(mask[1, -1]) == 0 and int(mask[1, 0]) == 1


def test_truncation_keeps_the_official_text_budget(dragonfly_processors: dict) -> None:
    proc = dragonfly_processors["v1"]
    batch = proc(text=[LONG_PROMPT], images=[Image.new("RGB", (64, 64))], max_length=10, is_generate=True)
    assert batch["input_ids"].shape[1] == image_block_len(proc.variant_spec) + 10 // 2 - 1


def test_text_only_prompt(dragonfly_processors: dict) -> None:
    proc = dragonfly_processors["v2"]
    batch = proc(text=[PROMPT], images=None, is_generate=True)
    assert batch["image_patches"] == [None]
    assert int(batch["input_ids"][0, 0]) == proc.tokenizer.bos_token_id
    assert bool((batch["image_patches_indices"] < 0).all())


def test_count_mismatch_and_bad_images_are_clear_errors(dragonfly_processors: dict) -> None:
    proc = dragonfly_processors["v1"]
    with pytest.raises(ValueError, match="2 prompts but 1 images"):
        proc(text=[PROMPT, PROMPT], images=[Image.new("RGB", (10, 10))])
    with pytest.raises(ValueError, match=r"images\[0\].*shape"):
        proc(text=[PROMPT], images=[np.zeros((4, 4, 2), dtype=np.uint8)])
    with pytest.raises(ValueError, match=r"images\[0\].*empty"):
        proc(text=[PROMPT], images=[np.zeros((0, 4), dtype=np.uint8)])
    with pytest.raises(ValueError, match="PIL image or a numpy array"):
        proc(text=[PROMPT], images=["scan.png"])


def test_from_pretrained_errors_name_the_folder(tmp_path: Path) -> None:
    from models.processing_dragonfly import DragonflyProcessor

    with pytest.raises(ValueError, match="preprocessor_config.json is missing"):
        DragonflyProcessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        DragonflyProcessor.from_pretrained(tmp_path / "nope")


class TestInputConversion:
    """Documented conversions of non-RGB inputs (models._pixels.to_rgb)."""

    def test_grayscale_is_replicated(self) -> None:
        from models._pixels import to_rgb

        gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
        rgb = np.asarray(to_rgb(gray))
        assert rgb.shape == (16, 16, 3) and bool((rgb[..., 0] == np.asarray(gray)).all()) and bool((rgb[..., 1] == rgb[..., 2]).all())

    @pytest.mark.parametrize("kind", ["pil16", "numpy16", "float"])
    def test_high_bit_depth_is_min_max_scaled(self, kind: str) -> None:
        from models._pixels import to_rgb

        values = np.linspace(1000, 5000, 64).reshape(8, 8)
        if kind == "pil16":
            image = Image.fromarray(values.astype(np.uint16))
            assert image.mode.startswith("I;16")
        elif kind == "numpy16":
            image = values.astype(np.uint16)
        else:
            image = values.astype(np.float32)
        rgb = np.asarray(to_rgb(image))
        assert rgb.dtype == np.uint8 and rgb[..., 0].min() == 0 and rgb[..., 0].max() == 255
        assert bool((np.diff(rgb[..., 0].reshape(-1).astype(int)) >= 0).all())  # monotone, not clipped at 255

    def test_transparency_is_composited_on_black(self) -> None:
        from models._pixels import to_rgb

        rgba = np.zeros((4, 4, 4), dtype=np.uint8)
        rgba[..., :3] = 255
        rgba[:2, :, 3] = 255  # top half opaque white, bottom half fully transparent white
        out = np.asarray(to_rgb(Image.fromarray(rgba, mode="RGBA")))
        assert bool((out[:2] == 255).all()) and bool((out[2:] == 0).all())

    def test_palette_uses_its_colours(self) -> None:
        from models._pixels import to_rgb

        pal = Image.new("P", (4, 4), 1)
        pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
        assert np.asarray(to_rgb(pal))[0, 0].tolist() == [10, 200, 30]

    def test_non_finite_float_values_count_as_the_minimum(self) -> None:
        from models._pixels import to_rgb

        values = np.array([[np.nan, -np.inf, 2.0], [4.0, 6.0, np.inf]], dtype=np.float32)
        assert np.asarray(to_rgb(values))[..., 0].tolist() == [[0, 0, 0], [128, 255, 0]]

    def test_constant_16bit_image_is_black(self) -> None:
        from models._pixels import to_rgb

        assert int(np.asarray(to_rgb(np.full((5, 5), 4095, dtype=np.uint16))).max()) == 0


def test_normalizer_arithmetic_equals_the_table_on_every_value() -> None:
    """The fast float path is used only where it is provably identical: all 256 values of each channel."""
    from models._pixels import Normalizer

    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    norm = Normalizer(mean, std)
    assert norm.exact_arithmetic
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)  # one crop, every value per channel
    out = np.empty((1, 3, 16, 16), dtype=np.float32)
    norm.crops(every, out)
    np.testing.assert_array_equal(out.reshape(3, 256), norm.lut)
    out[:] = 0
    norm.crops(every[..., 0], out)  # one band standing for all three channels
    np.testing.assert_array_equal(out.reshape(3, 256), norm.lut)
    assert not Normalizer(mean, std, rescale=1 / 256).exact_arithmetic  # "/255" would be wrong there: table path


def test_save_pretrained_writes_the_official_layout(dragonfly_processors: dict, tmp_path: Path) -> None:
    import json

    from models.processing_dragonfly import DragonflyProcessor

    dragonfly_processors["v1"].save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["image_encoding_style"] == "llava-hd"
    assert (tmp_path / "preprocessor_config.json").is_file() and (tmp_path / "tokenizer.json").is_file()
    again = DragonflyProcessor.from_pretrained(tmp_path)
    image = Image.new("RGB", (90, 60), (30, 60, 90))
    a = dragonfly_processors["v1"](text=[PROMPT], images=[image], is_generate=True)
    b = again(text=[PROMPT], images=[image], is_generate=True)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["image_patches"][0], b["image_patches"][0])


def test_lazily_opened_file_gives_the_same_pixels(dragonfly_processors: dict, golden_dir: Path) -> None:
    """A PNG handed over straight from Image.open (not yet decoded) is decoded once before the threaded resizes."""
    proc = dragonfly_processors["v1"]
    path = golden_dir / "cases-v1" / "pub_800x600.png"
    with Image.open(path) as lazy:
        from_lazy = proc.image_patches(lazy)
    with Image.open(path) as im:
        decoded = im.convert("RGB")
    np.testing.assert_array_equal(from_lazy, proc.image_patches(decoded))
