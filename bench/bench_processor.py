"""Benchmark (a): Dragonfly v2 image preprocessing per image, fast path against the straightforward per-crop path.

Reference (what the official processor does, minus its extra overheads): Pillow resizes the image to the global,
medium and high grids, crops, and runs `CLIPImageProcessor` on each of the 41 crops. Fast path (models/_pixels.py):
the same three Pillow resizes run in threads, crops are numpy views normalised row by row in threads, with exact
float32 arithmetic straight into the output. Both must give identical tensors (checked here on every size).

Timings alternate the paths in this process and are printed as ratios, because this machine's speed drifts 2-3x.
Two ratios: of the medians, and of the best runs (the usual microbenchmark figure: noise from other processes only
ever adds time). The fast path's threads need a free core; on a machine whose cores are all busy the "fast-seq"
column (same work, one thread) is what remains.

Run: `.venv/bin/python -m bench processor`
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

SIZES = [(512, 512), (2048, 2048), (4000, 3000)]
REPEATS = {(512, 512): 7, (2048, 2048): 7, (4000, 3000): 5}
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
VERSION = "v2"


def _test_image(width: int, height: int) -> Image.Image:
    """Deterministic photo-like content: smooth gradients, a disc, block noise (resampling has real work to do)."""
    rng = np.random.default_rng(width * 7 + height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    disc = ((x - width / 2) ** 2 + (y - height / 2) ** 2) < (min(width, height) / 3) ** 2
    base[disc] = 255 - base[disc]
    blocks = rng.integers(0, 40, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return Image.fromarray(np.clip(base + blocks, 0, 255).astype(np.uint8))


def _reference(image: Image.Image, processor) -> np.ndarray:
    from models._geometry import crop_boxes, high_resolution, medium_resolution
    from models.variants import VARIANTS

    variant = VARIANTS[VERSION]
    s = variant.crop_size
    crops = [image.resize((s, s), Image.Resampling.BICUBIC)]
    for size in (medium_resolution(image.size, variant), high_resolution(image.size, variant)):
        big = image.resize(size, Image.Resampling.BICUBIC)
        crops += [big.crop(box) for box in crop_boxes(size, s)]
    return np.stack([processor.preprocess(c, return_tensors="np")["pixel_values"][0] for c in crops])


def _fast(image: Image.Image, normalizer, concurrent: bool = True) -> np.ndarray:
    from models._pixels import image_patches
    from models.variants import VARIANTS

    return image_patches(image, VARIANTS[VERSION], normalizer, concurrent=concurrent)


def _times(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    from transformers import CLIPImageProcessorPil

    from models._pixels import Normalizer

    processor = CLIPImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, resample=3, image_mean=MEAN, image_std=STD
    )
    normalizer = Normalizer(MEAN, STD)
    path = "float32 arithmetic" if normalizer.exact_arithmetic else "table gather"
    print(f"normalisation path: {path} (bit-identical to the table on all 256 values per channel)")
    print("v2 preprocessing (41 crops of 336), alternating runs; ratio = reference / candidate (median | best)")
    print(f"{'size':>10} {'reference s':>12} {'fast s':>8} {'ratio':>11} {'fast-seq s':>11} {'ratio':>11}  identical")
    for width, height in SIZES:
        image = _test_image(width, height)
        ref_out = _reference(image, processor)  # warm-up + correctness
        same = np.array_equal(ref_out, _fast(image, normalizer)) and np.array_equal(ref_out, _fast(image, normalizer, False))
        ref_t, fast_t, seq_t = [], [], []
        for _ in range(REPEATS[(width, height)]):  # alternate so drift hits every path alike
            ref_t += _times(lambda image=image: _reference(image, processor), 1)
            fast_t += _times(lambda image=image: _fast(image, normalizer), 1)
            seq_t += _times(lambda image=image: _fast(image, normalizer, False), 1)
        r, f, q = statistics.median(ref_t), statistics.median(fast_t), statistics.median(seq_t)
        rb, fb, qb = min(ref_t), min(fast_t), min(seq_t)
        print(f"{width}x{height:<5} {r:12.3f} {f:8.3f} {r / f:5.2f}|{rb / fb:5.2f} {q:11.3f} {r / q:5.2f}|{rb / qb:5.2f}  {same}",
              flush=True)
        if not same:
            raise SystemExit(f"{width}x{height}: fast tensors differ from the per-crop reference")


if __name__ == "__main__":
    main()
