"""Optional torch (GPU-capable) port of Pillow's bicubic resize: bit-identical on the golden cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models._geometry import LAYOUTS, high_resolution, medium_resolution
from models._torch_resize import image_patches_torch, resize_bicubic

NAMES = ["pub_224x224", "pub_512x512", "pub_800x600", "pub_1000x250_wide", "pub_250x1000_tall"]


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("name", NAMES)
def test_every_golden_grid_resizes_like_pillow(name: str, golden_dir: Path) -> None:
    with Image.open(golden_dir / "cases-v2" / f"{name}.png") as im:
        image = im.convert("RGB")
    t = _tensor(image)
    sizes = set()
    for version, layout in LAYOUTS.items():
        s = layout.crop_size
        sizes |= {(s, s), medium_resolution(image.size, s), high_resolution(image.size, s, version)}
    for size in sorted(sizes):
        if size[0] * size[1] > 1344 * 1344:
            continue  # the 2016-wide grids take long on CPU; the same pass directions are covered by smaller grids
        expected = np.asarray(image.resize(size, Image.Resampling.BICUBIC)).transpose(2, 0, 1)
        np.testing.assert_array_equal(resize_bicubic(t, size).numpy(), expected, err_msg=str(size))


def test_torch_patches_equal_the_golden_pixels(golden_cases: dict) -> None:
    case = golden_cases[("v1", "pub_250x1000_tall")]
    with Image.open(case.image_path) as im:
        t = _tensor(im.convert("RGB"))
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    assert torch.equal(image_patches_torch(t, "v1", mean, std), case.batch["image_patches"][0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="uint8"):
        resize_bicubic(torch.zeros(3, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="order"):
        resize_bicubic(torch.zeros(3, 4, 4, dtype=torch.uint8), (2, 2), order="xy")
