"""Slide-level description benchmark: a 100 000 × 80 000 px synthetic pyramid, scoring throughput and time per slide.

Measured in one run (this machine's speed drifts 2-3x, so ratios within a run are the result):
(a) writing the pyramid tile by tile (bench/_slides.py: mostly glass, a few tissue blobs, never a level in memory);
(b) finding the tissue candidates at 20× (one thumbnail, summed-area table);
(c) reading + resizing candidate tiles from the pyramid (the I/O side of scoring), tiles/s;
(d) scoring with the tiny golden v2 model: `mean_embeddings` batched (8) against one tile per call, tiles/s;
(e) the real vision tower's shape (CLIP ViT-L/14-336 + 1024→4096 projector, random weights, bf16 and fp32):
    batched against one by one on a few tiles, tiles/s — the cost that dominates a real slide;
(f) one whole slide end to end with the tiny model (score all candidates, read 8 regions, describe), then again
    (everything cached: the skip path);
and the FLOPs per tile of the real tower, from its shapes, for the GPU estimate.

Run: `./run.sh bench slide` (MEDAPP_BENCH_SLIDE_SMALL=1 writes a 20 000 × 16 000 slide instead, for a quick look;
MEDAPP_BENCH_TOWER=0 skips (e), which takes minutes on a busy 2-core machine; MEDAPP_BENCH_FP32=1 adds fp32 to (e)).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path


def _golden() -> Path:
    env = os.environ.get("MEDAPP_GOLDEN")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "golden"


def vit_flops_per_tile(image: int = 336, patch: int = 14, d: int = 1024, mlp: int = 4096, layers_used: int = 23,
                       proj_out: int = 4096) -> dict[str, float]:
    """Multiply-adds × 2 of CLIP ViT-L/14-336 up to hidden_states[-2] (23 of 24 layers) plus the projector.

    Per layer with N tokens: QKV 3·N·d², attention scores and weighted sum 2·N²·d, output projection N·d², MLP
    2·N·d·mlp; ×2 FLOPs per multiply-add. Layer norms, softmax and GELU are a few percent and left out.
    """
    n = (image // patch) ** 2 + 1
    per_layer = 2 * (3 * n * d * d + 2 * n * n * d + n * d * d + 2 * n * d * mlp)
    patch_embed = 2 * (n - 1) * (3 * patch * patch) * d
    projector = 2 * n * d * proj_out
    total = layers_used * per_layer + patch_embed + projector
    return {"tokens": n, "per_layer": per_layer, "patch_embed": patch_embed, "projector": projector, "total": total}


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.2f}/s ({seconds:.2f} s for {n})"


def _bench_full_tower(tiles: list, repeats_n: int = 2) -> None:
    """The real tower's shapes at random weights: tiles/s batched vs single, bf16 (and fp32 when
    MEDAPP_BENCH_FP32=1: it is 2-3x slower here and the GPU estimate needs only the FLOPs)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=1024, intermediate_size=4096,
                           num_hidden_layers=24, num_attention_heads=16)
    torch.manual_seed(0)
    tower = CLIPVisionModel(cfg).eval()
    projector = torch.nn.Linear(1024, 4096)
    pixels = torch.randn(len(tiles), 3, 336, 336)

    def run(batch: torch.Tensor, dtype: torch.dtype) -> None:
        vision = getattr(tower, "vision_model", tower)  # transformers 5 dropped the vision_model level
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            hidden = vision.pre_layrnorm(vision.embeddings(batch))
            for layer in vision.encoder.layers[:-1]:
                hidden = layer(hidden, None)
            projector(hidden).float().mean(dim=1)

    n = min(repeats_n, len(tiles))
    dtypes = (torch.bfloat16, torch.float32) if os.environ.get("MEDAPP_BENCH_FP32") == "1" else (torch.bfloat16,)
    for dtype in dtypes:
        run(pixels[:1], dtype)  # warm-up
        start = time.perf_counter()
        for i in range(n):
            run(pixels[i : i + 1], dtype)
        single = time.perf_counter() - start
        start = time.perf_counter()
        run(pixels[:n], dtype)
        batched = time.perf_counter() - start
        name = str(dtype).removeprefix("torch.")
        print(f"(e) ViT-L/14-336 tower {name:8s} one by one {_rate(n, single)}   batch {n} {_rate(n, batched)}"
              f"   batched/single speed {single / batched:.2f}x")


def main() -> None:
    import numpy as np

    from bench._slides import blob_mask, write_block_slide

    small = os.environ.get("MEDAPP_BENCH_SLIDE_SMALL") == "1"
    cols, rows = (40, 32) if small else (196, 157)  # × 512 px blocks → 20 480 × 16 384 or 100 352 × 80 384
    work = Path(tempfile.mkdtemp(prefix="medapp-bench-slide-"))
    try:
        mask = blob_mask(cols, rows, [(0.3, 0.35, 0.06), (0.62, 0.55, 0.08), (0.45, 0.78, 0.04)],
                         planted=[(int(cols * 0.62) + dx, int(rows * 0.55) + dy) for dx in (0, 1) for dy in (0, 1)])
        start = time.perf_counter()
        path = write_block_slide(work / "big.tif", mask, tile=512, mpp=0.25)
        wrote = time.perf_counter() - start
        print(f"(a) wrote {cols * 512} x {rows * 512} px pyramid ({path.stat().st_size / 1e6:.0f} MB, "
              f"{int((mask > 0).sum())} of {mask.size} level-0 tiles tissue) in {wrote:.1f} s")

        from dicom_io.slide import Slide
        from medapp.slide_level.candidates import candidate_grid, read_tile

        slide = Slide(path)
        print(f"    levels {slide.level_dimensions}")
        start = time.perf_counter()
        grid, cands = candidate_grid(slide, 20, 336)
        print(f"(b) candidates at 20x: {len(cands)} tissue tiles of {grid.cols * grid.rows} grid cells "
              f"({grid.tile0:.0f} level-0 px each, read at level {grid.level}) in {time.perf_counter() - start:.2f} s")

        from medapp.slide_level.candidates import stream_tiles

        n_read = min(200, len(cands))
        start = time.perf_counter()
        tiles = [read_tile(slide, grid, c.box) for c in cands[:n_read]]
        t_one = time.perf_counter() - start
        start = time.perf_counter()
        for _ in stream_tiles(slide, grid, cands[n_read : 2 * n_read], workers=2):
            pass
        t_two = time.perf_counter() - start
        n_two = len(cands[n_read : 2 * n_read])
        print(f"(c) tile read + resize, one thread {_rate(n_read, t_one)}"
              + (f"   two threads {_rate(n_two, t_two)}" if n_two else ""))

        from medapp.model_holder import ModelHolder

        engine = ModelHolder(model_dir=_golden() / "dragonfly-v2-tiny", device="cpu", quant="none").get()
        n_score = min(64, len(tiles))
        engine.mean_embeddings(tiles[:8], batch_size=8)  # warm-up
        start = time.perf_counter()
        single = engine.mean_embeddings(tiles[:n_score], batch_size=1)
        t_single = time.perf_counter() - start
        start = time.perf_counter()
        batched = engine.mean_embeddings(tiles[:n_score], batch_size=8)
        t_batched = time.perf_counter() - start
        assert np.allclose(single, batched, atol=1e-4)
        print(f"(d) tiny model mean_embeddings one by one {_rate(n_score, t_single)}   batch 8 "
              f"{_rate(n_score, t_batched)}   batched/single speed {t_single / t_batched:.2f}x")

        if os.environ.get("MEDAPP_BENCH_TOWER", "1") != "0":
            _bench_full_tower(tiles[:8])

        from medapp.slide_level.job import describe_slide
        from medapp.slide_level.settings import SlideLevelSettings

        settings = SlideLevelSettings(caption_max_new_tokens=16, description_max_new_tokens=48)
        stage_start: dict[str, float] = {}

        def on_progress(p) -> None:
            stage_start.setdefault(p.item, time.perf_counter())

        start = time.perf_counter()
        outcome = describe_slide(engine, path, work / "out", settings=settings, on_progress=on_progress)
        first = time.perf_counter() - start
        end = start + first
        marks = [start] + [stage_start.get(k, end) for k in ("regions captioned", "description")] + [end]
        start = time.perf_counter()
        again = describe_slide(engine, path, work / "out", settings=settings)
        second = time.perf_counter() - start
        print(f"(f) one slide, tiny model: {first:.1f} s ({outcome.tiles_scored} tiles scored in "
              f"{outcome.scorer_calls} batches, {outcome.regions} regions, status {outcome.status}); "
              f"second run {second:.2f} s ({again.status})")
        print(f"    stages: scoring {marks[1] - marks[0]:.1f} s ({outcome.tiles_scored / (marks[1] - marks[0]):.1f} "
              f"tiles/s incl. reads), captioning 8 regions {marks[2] - marks[1]:.1f} s, description + outputs "
              f"{marks[3] - marks[2]:.1f} s")

        flops = vit_flops_per_tile()
        print(f"    FLOPs per tile (ViT-L/14-336 to hidden_states[-2] + projector): {flops['total'] / 1e9:.0f} GFLOP "
              f"({flops['tokens']} tokens; {flops['per_layer'] / 1e9:.2f} GFLOP per layer x 23, projector "
              f"{flops['projector'] / 1e9:.1f})")
        for gpu, peak in (("A100 bf16 312 TFLOP/s", 312e12), ("L4 bf16 121 TFLOP/s", 121e12)):
            for mfu in (0.3, 0.5):
                rate = peak * mfu / flops["total"]
                print(f"    {gpu} at {mfu:.0%} utilisation: {rate:6.0f} tiles/s, {len(cands) / rate:6.1f} s for "
                      f"this slide's {len(cands)} tiles")
        slide.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
