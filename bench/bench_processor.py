"""Benchmark (a): Dragonfly image preprocessing per image, ours against the official processor and the floor.

* **official**: what the official `DragonflyProcessor.process_anyres_image` does, on the installed transformers:
  Pillow stretches the image to the global, medium and high grids, cuts the crops, and each crop goes through
  `CLIPImageProcessorPil.preprocess(crop, return_tensors="pt")`; the crops are stacked with torch. torch runs one
  intra-op thread here: with two, on this loaded 2-core machine, the official path took twice as long (its OpenMP
  workers wait for a core), which would flatter our ratios.
* **floor**: the three Pillow resizes alone, one after the other. Every exact path must compute them (they define the
  pixels), so one core cannot go below it; threads can. (Except for a gray picture sent as RGB: ours resizes one
  band of it, and the floor stays that of the RGB resizes the official code makes.)
* **ours**: `models._pixels.image_patches` (threads), and "ours-1t" (the same work in one thread).

A loaded 2-core machine cannot show what the threads give on free cores, so a second table runs ours job by job in
one thread (each job's CPU time measured) and lays the jobs out, in the pool's order and with their dependencies, on
1, 2, 4 and 8 idle cores: the wall time ours would take there, over the floor's CPU time.

All four run in turn on the same image, in a rotating order, and each ratio is taken within a round before the median
over rounds: this machine's speed drifts 2-3x under load, so seconds from different moments do not compare. The load
average is printed with the results. Every size checks that ours is bit-identical to the official tensors.

Run: `./run.sh bench processor` (or `.venv/bin/python -m bench processor`)
"""

from __future__ import annotations

import heapq
import itertools
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
from PIL import Image

SIZES = [(512, 512), (2048, 2048), (4000, 3000)]
ROUNDS = {(512, 512): 9, (2048, 2048): 7, (4000, 3000): 5}
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
#: (version, content): colour photos for both versions, and a gray picture sent as RGB (a CT, MR or radiograph as
#: medapp renders it for the model), where ours resizes one band instead of three (models/_pixels.py).
CASES = [("v2", "colour"), ("v1", "colour"), ("v2", "gray")]


def _test_image(width: int, height: int) -> Image.Image:
    """Deterministic photo-like content: smooth gradients, a disc, block noise (resampling has real work to do)."""
    rng = np.random.default_rng(width * 7 + height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    disc = ((x - width / 2) ** 2 + (y - height / 2) ** 2) < (min(width, height) / 3) ** 2
    base[disc] = 255 - base[disc]
    blocks = rng.integers(0, 40, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return Image.fromarray(np.clip(base + blocks, 0, 255).astype(np.uint8))


def _gray_image(width: int, height: int) -> Image.Image:
    """The test image's luminance in all three bands."""
    return _test_image(width, height).convert("L").convert("RGB")


def _official(image: Image.Image, processor, version: str):
    """The official pixel path (process_anyres_image): resize, divide into patches, preprocess crop by crop, stack."""
    import torch

    from models._geometry import crop_boxes, grid_sizes
    from models.variants import VARIANTS

    variant = VARIANTS[version]
    low, medium, high = grid_sizes(image.size, variant)
    crops = [image.resize(low, Image.Resampling.BICUBIC)]
    for size in (medium, high):
        big = image.resize(size, Image.Resampling.BICUBIC)
        crops += [big.crop(box) for box in crop_boxes(size, variant.crop_size)]
    return torch.stack([processor.preprocess(c, return_tensors="pt")["pixel_values"][0] for c in crops])


def _floor(image: Image.Image, version: str) -> None:
    from models._geometry import grid_sizes
    from models.variants import VARIANTS

    for size in grid_sizes(image.size, VARIANTS[version]):
        image.resize(size, Image.Resampling.BICUBIC)


def _ours(image: Image.Image, normalizer, version: str, concurrent: bool = True) -> np.ndarray:
    from models._pixels import image_patches
    from models.variants import VARIANTS

    return image_patches(image, VARIANTS[version], normalizer, concurrent=concurrent)


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (all its threads): the work, which other processes' load on
    the machine inflates far less than the wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class _Recorder(Executor):
    """Runs each submitted job at once in the calling thread and records (job name, grid, CPU seconds); the names
    are those of `image_patches`'s two kinds of job, `first` (a first pass) and `line`."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, int, float]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        start = time.thread_time()
        future.set_result(fn(*args, **kwargs))
        self.jobs.append((fn.__name__, int(args[0]), time.thread_time() - start))
        return future


def _makespan(jobs: list[tuple[str, int, float]], cores: int) -> float:
    """Wall time of the jobs on `cores` idle cores: first passes at once, each grid's lines once its first pass ends,
    every job started as soon as a core is free (in the order the pool would run them)."""
    first = {grid: cpu for name, grid, cpu in jobs if name == "first"}
    lines = [(grid, cpu) for name, grid, cpu in jobs if name != "first"]
    order = itertools.count()
    ready = [(0.0, next(order), "first", grid, cpu) for grid, cpu in first.items()]
    heapq.heapify(ready)
    free_at, end = [0.0] * cores, 0.0
    while ready:
        at, _, name, grid, cpu = heapq.heappop(ready)
        core = min(range(cores), key=free_at.__getitem__)
        free_at[core] = max(free_at[core], at) + cpu
        end = max(end, free_at[core])
        if name == "first":
            for line_grid, line_cpu in lines:
                if line_grid == grid:
                    heapq.heappush(ready, (free_at[core], next(order), "line", grid, line_cpu))
    return end


def _free_cores_table(normalizer) -> None:
    from models import _pixels
    from models._geometry import grid_sizes
    from models.variants import VARIANTS

    print("\nours on idle cores (job CPU times measured here, medians of 5, laid out on N cores) / floor CPU time")
    print(f"{'':>9} {'size':>9} {'floor ms':>9} {'work/floor':>10} {'1 core':>7} {'2 cores':>8} {'4 cores':>8} {'8 cores':>8}")
    pool = _pixels._POOL
    try:
        for version, content in CASES:
            for width, height in SIZES:
                image = (_test_image if content == "colour" else _gray_image)(width, height)
                runs = []
                for _ in range(5):
                    _pixels._POOL = recorder = _Recorder()
                    _pixels.image_patches(image, VARIANTS[version], normalizer)
                    runs.append(recorder.jobs)
                jobs = [(name, grid, statistics.median(r[i][2] for r in runs)) for i, (name, grid, _) in enumerate(runs[0])]
                floor = []
                for _ in range(5):
                    start = time.thread_time()
                    for size in grid_sizes(image.size, VARIANTS[version]):
                        image.resize(size, Image.Resampling.BICUBIC)
                    floor.append(time.thread_time() - start)
                f = statistics.median(floor)
                spans = "".join(f" {_makespan(jobs, c) / f:{w}.2f}" for c, w in ((1, 7), (2, 8), (4, 8), (8, 8)))
                work = sum(cpu for _, _, cpu in jobs) / f
                print(f"{f'{version} {content}':>9} {f'{width}x{height}':>9} {f * 1e3:9.0f} {work:10.2f}{spans}", flush=True)
    finally:
        _pixels._POOL = pool


def _ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of the per-round ratio (pairs taken at the same moment)."""
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


def main() -> None:
    import torch
    from transformers import CLIPImageProcessorPil

    from models._pixels import Normalizer
    from models.variants import VARIANTS

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the official path's faster setting here (module docstring)
    normalizer = Normalizer(MEAN, STD)
    path = "float32 arithmetic" if normalizer.exact_arithmetic else "table gather"
    print(f"normalisation path: {path} (bit-identical to the table on all 256 values per channel)")
    print(f"{os.cpu_count()} cores; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("wall: median seconds, and ratios per round (median over rounds): ours/official (speed-up), ours/floor;")
    print("cpu: the same ratios in CPU time of the process (the work, all threads counted)")
    print(f"{'':>9} {'size':>9} {'official':>9} {'floor':>7} {'ours':>7} {'ours-1t':>8}"
          f" {'ours/official':>15} {'ours/floor':>10} {'1t/floor':>9} | {'cpu: ours/off':>13} {'ours/floor':>10}"
          f" {'1t/floor':>9}  identical")
    for version, content in CASES:
        s = VARIANTS[version].crop_size
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": s}, crop_size={"height": s, "width": s}, resample=3, image_mean=MEAN, image_std=STD
        )
        for width, height in SIZES:
            image = (_test_image if content == "colour" else _gray_image)(width, height)
            official = _official(image, processor, version).numpy()  # warm-up + correctness
            same = np.array_equal(official, _ours(image, normalizer, version))
            same = same and np.array_equal(official, _ours(image, normalizer, version, False))
            runs: dict[str, Callable[[], object]] = {
                "official": lambda image=image, p=processor, v=version: _official(image, p, v),
                "floor": lambda image=image, v=version: _floor(image, v),
                "ours": lambda image=image, v=version: _ours(image, normalizer, v),
                "ours-1t": lambda image=image, v=version: _ours(image, normalizer, v, False),
            }
            times: dict[str, list[float]] = {name: [] for name in runs}
            cpu: dict[str, list[float]] = {name: [] for name in runs}
            names = list(runs)
            for r in range(ROUNDS[(width, height)]):  # rotate the order so no path always runs first or last
                for name in names[r % 4 :] + names[: r % 4]:
                    wall_s, cpu_s = _time(runs[name])
                    times[name].append(wall_s)
                    cpu[name].append(cpu_s)
            med = {name: statistics.median(t) for name, t in times.items()}
            vs_official = _ratio(times["ours"], times["official"])
            print(
                f"{f'{version} {content}':>9} {f'{width}x{height}':>9} {med['official']:9.3f} {med['floor']:7.3f} {med['ours']:7.3f}"
                f" {med['ours-1t']:8.3f} {vs_official:6.3f} ({1 / vs_official:4.1f}x)"
                f" {_ratio(times['ours'], times['floor']):10.2f} {_ratio(times['ours-1t'], times['floor']):9.2f} |"
                f" {_ratio(cpu['ours'], cpu['official']):13.3f} {_ratio(cpu['ours'], cpu['floor']):10.2f}"
                f" {_ratio(cpu['ours-1t'], cpu['floor']):9.2f}  {same}",
                flush=True,
            )
            if not same:
                raise SystemExit(f"{version} {content} {width}x{height}: our tensors differ from the official ones")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    torch.set_num_threads(torch_threads)
    _free_cores_table(normalizer)


if __name__ == "__main__":
    main()
