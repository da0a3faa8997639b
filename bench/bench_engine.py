"""Engine benchmarks (b) and (c), each against its baseline measured in the same run.

(b) Follow-up question: time to first token with the image-prefix KV cache (prefill BOS + prompt only) against the
    same engine without it (prefill image block + prompt, visual features already computed). Measured on the golden
    tiny v2 checkpoint and on a wider random v2 model built here, whose language model (hidden 512, 8 layers) makes
    prefill cost matter more the way it does for the real 8B model.
(c) Captioning N images: `caption_batch` with several images per `generate` against one image per call, images/s.

Run: `.venv/bin/python -m bench engine` (`MEDAPP_BENCH_THREADS=1` pins torch to one thread, which is much less noisy
when other processes share the two cores). Absolute times drift 2-3x on this machine; the ratios are the result.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

QUESTION = "Provide a brief description of the given image."
TURNS = [("What modality is this?", "A chest radiograph."), ("Any effusion?", "No pleural effusion is seen.")]
FOLLOW_UP = "Is the heart size normal?"


def _golden() -> Path:
    env = os.environ.get("MEDAPP_GOLDEN")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "golden"


def _images(golden: Path, n: int) -> list:
    """The five golden case images, then deterministic variants (flips/rotations) up to n."""
    from PIL import Image, ImageOps

    base = [Image.open(p).convert("RGB") for p in sorted((golden / "cases-v2").glob("pub_*.png"))]
    out = list(base)
    ops = [ImageOps.mirror, ImageOps.flip, lambda im: im.rotate(90, expand=True), ImageOps.invert]
    k = 0
    while len(out) < n:
        out.append(ops[k // len(base) % len(ops)](base[k % len(base)]))
        k += 1
    return out[:n]


def _time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _wide_checkpoint(golden: Path, folder: Path) -> Path:
    """A random v2 checkpoint with a wider language model (tiny CLIP and tokenizer from the golden folder)."""
    import json
    import shutil

    import torch

    from models.configuration_dragonfly import DragonflyConfig
    from models.modeling_dragonfly import DragonflyForCausalLM

    src = golden / "dragonfly-v2-tiny"
    config = json.loads((src / "config.json").read_text())
    text = dict(config["text_config"], hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                num_attention_heads=8, num_key_value_heads=4, head_dim=64)
    config.update(text_config=text, hidden_size=512, image_encoder=str(src / "image_encoder"))
    torch.manual_seed(0)
    model = DragonflyForCausalLM(DragonflyConfig.from_dict(config)).to(torch.bfloat16)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json",
                 "processor_config.json"):
        shutil.copy2(src / name, folder / name)
    return folder


def bench_followup(path: Path, label: str, image, repeats: int = 5) -> None:
    from models.engine import DragonflyEngine

    engine = DragonflyEngine.from_pretrained(path, device="cpu", dtype="float32", verify="none")
    engine.encode(image)
    block = engine._encoded(image).block_ids.shape[1]
    prompt = engine.prompt_ids(TURNS, FOLLOW_UP, 1, block).shape[1]

    def ask(cached: bool) -> None:
        engine.generate(image, TURNS, FOLLOW_UP, max_new_tokens=1, use_prefix_cache=cached)

    ask(True), ask(False)  # warm-up
    with_cache, without = [], []
    for _ in range(repeats):  # interleaved, so drift hits both sides alike
        with_cache.append(_time(lambda: ask(True), 1))
        without.append(_time(lambda: ask(False), 1))
    a, b = statistics.median(with_cache), statistics.median(without)
    print(f"(b) {label}: follow-up time to first token, prefill {prompt} tokens with the prefix cache vs "
          f"{block + prompt} without")
    print(f"    with cache {a * 1000:.1f} ms, without {b * 1000:.1f} ms  ->  {b / a:.1f}x faster with the cache")


def bench_captions(path: Path, images: list, batch_size: int, max_new_tokens: int = 16) -> None:
    from models.engine import DragonflyEngine

    engine = DragonflyEngine.from_pretrained(path, device="cpu", dtype="float32", verify="none")
    engine.caption_batch(images[:2], QUESTION, max_new_tokens=2, batch_size=2)  # warm-up
    t_single = _time(lambda: engine.caption_batch(images, QUESTION, max_new_tokens=max_new_tokens, batch_size=1), 1)
    t_batch = _time(lambda: engine.caption_batch(images, QUESTION, max_new_tokens=max_new_tokens,
                                                 batch_size=batch_size), 1)
    n = len(images)
    print(f"(c) captioning {n} images, {max_new_tokens} new tokens each, tiny v2 model:")
    print(f"    one by one {n / t_single:.2f} img/s, batches of {batch_size} {n / t_batch:.2f} img/s  ->  "
          f"{t_single / t_batch:.2f}x")


def main() -> None:
    import torch

    if os.environ.get("MEDAPP_BENCH_THREADS"):  # on a shared, oversubscribed machine 1 thread is far less noisy
        torch.set_num_threads(int(os.environ["MEDAPP_BENCH_THREADS"]))
    golden = _golden()
    images = _images(golden, 8)
    print(f"torch threads: {torch.get_num_threads()}")
    bench_followup(golden / "dragonfly-v2-tiny", "golden tiny v2 (LLM hidden 16, 2 layers)", images[1])
    with tempfile.TemporaryDirectory() as tmp:
        wide = _wide_checkpoint(golden, Path(tmp) / "wide-v2")
        bench_followup(wide, "random v2, LLM hidden 512, 8 layers", images[1], repeats=3)
    bench_captions(golden / "dragonfly-v2-tiny", images, batch_size=4)


if __name__ == "__main__":
    main()
