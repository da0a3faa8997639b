"""Benchmark (d): time to the first token of an answer, broken down by stage (the engine's own `Timings`).

Stages (models/engine.py `Timings`): preprocess (hash, pixels, token ids, chat prompt), CLIP (vision tower +
projection), image-block prefill (the KV cache of the 2098 image positions), prompt prefill (BOS + chat prompt, with
`generate`'s setup), first token (from that forward to the streamer's first call). Two situations per model: a **new
image** (every stage runs) and a **follow-up** about the same image (the image encoding and its KV cache come from
the engine's cache).

Models:
* the golden tiny v2 checkpoint (LLM hidden 16, CLIP hidden 32): what is left is the app's own overhead;
* a **real-shaped short** v2 model built at random here: Llama-3.1-8B widths (hidden 4096, MLP 14336, 32 heads,
  8 KV heads, vocabulary 128256) with 2 decoder layers, and CLIP ViT-L/14-336 widths (hidden 1024, MLP 4096,
  16 heads, 577 tokens per crop) with 2 encoder layers, in bfloat16. Every per-token cost has the real size; the
  stacks are 16× (LLM) and 12× (CLIP) shorter, so the full model's stage times are roughly those × that
  (plus the 8B model's memory traffic). The output embedding is tied to the input one to keep the process under
  4 GB (same FLOPs; the real checkpoint is untied). Built in about 10-30 s.

Each figure is a median over rounds run one after another; stage figures are comparable within a run only (this
machine's speed drifts 2-3×, and other engineers share its 2 cores). No baseline: the breakdown is the result.

Run: `./run.sh bench ttft` (`MEDAPP_BENCH_THREADS=N` pins torch threads, `MEDAPP_BENCH_REAL=0` skips the real-shaped
model, `MEDAPP_BENCH_ROUNDS=N` changes the rounds).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

QUESTION = "Provide a brief description of the given image."
FOLLOW_UP = "Is there anything abnormal?"
STAGES = ("preprocess", "clip", "image_prefill", "prompt_prefill", "first_token")


def _golden() -> Path:
    env = os.environ.get("MEDAPP_GOLDEN")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "golden"


def _real_shaped_engine(golden: Path, llm_layers: int = 2, clip_layers: int = 2) -> Any:
    """Random bf16 Dragonfly v2 with 8B/ViT-L widths and short stacks, wrapped in the app's engine."""
    import torch

    from models.configuration_dragonfly import DragonflyConfig
    from models.engine import DragonflyEngine
    from models.modeling_dragonfly import DragonflyForCausalLM
    from models.processing_dragonfly import DragonflyProcessor

    text = dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=llm_layers, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0, bos_token_id=128000,
        eos_token_id=128001, tie_word_embeddings=True,
    )
    vision = dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=clip_layers, num_attention_heads=16,
        image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    )
    config = DragonflyConfig(text_config=text, vision_config=vision, tie_word_embeddings=True)
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # build straight in bf16: an fp32 build would need 6 GB first
    try:
        model = DragonflyForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    processor = DragonflyProcessor.from_pretrained(golden / "dragonfly-v2-tiny")
    return DragonflyEngine(model, processor, model_id="random-real-shaped-v2")


def _tiny_engine(golden: Path) -> Any:
    from models.engine import DragonflyEngine

    return DragonflyEngine.from_pretrained(golden / "dragonfly-v2-tiny", device="cpu", dtype="float32", verify="none")


def _n_params(model: Any) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _measure(engine: Any, image: Any, rounds: int) -> tuple[list[Any], list[Any]]:
    """Per round: clear the image cache, ask (new image), then ask a follow-up (cached image); both timed."""
    from models.engine import Timings

    fresh, follow = [], []
    for _ in range(rounds):
        engine.clear_cache()
        t = Timings()
        engine.generate(image, [], QUESTION, max_new_tokens=1, timings=t)
        fresh.append(t)
        t = Timings()
        engine.generate(image, [(QUESTION, "A radiograph.")], FOLLOW_UP, max_new_tokens=1, timings=t)
        follow.append(t)
    return fresh, follow


def _report(label: str, fresh: list[Any], follow: list[Any]) -> None:
    def med(rows: list[Any], name: str) -> float:
        return statistics.median(getattr(r, name) for r in rows) * 1000

    print(f"{label}")
    print(f"    {'stage (median ms)':<22} {'new image':>11} {'follow-up':>11}")
    for name in STAGES:
        print(f"    {name.replace('_', ' '):<22} {med(fresh, name):11.1f} {med(follow, name):11.1f}")
    sums = [statistics.median(sum(r.stages().values()) for r in rows) * 1000 for rows in (fresh, follow)]
    print(f"    {'sum of stages':<22} {sums[0]:11.1f} {sums[1]:11.1f}")
    print(f"    {'total to first token':<22} {med(fresh, 'total'):11.1f} {med(follow, 'total'):11.1f}", flush=True)


def main() -> None:
    import torch

    from bench.bench_processor import _test_image

    if os.environ.get("MEDAPP_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["MEDAPP_BENCH_THREADS"]))
    rounds = int(os.environ.get("MEDAPP_BENCH_ROUNDS", 0)) or 3
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch threads: {torch.get_num_threads()}, cores: {os.cpu_count()}, load average (1 min): {load:.1f}; "
          f"{rounds} rounds, medians")
    golden = _golden()
    images = {"512x512": _test_image(512, 512), "2048x2048": _test_image(2048, 2048)}

    tiny = _tiny_engine(golden)
    _measure(tiny, images["512x512"], 1)  # warm-up
    for size, image in images.items():
        _report(f"(d) golden tiny v2 (LLM hidden 16, CLIP hidden 32), image {size}", *_measure(tiny, image, rounds + 2))
    del tiny

    if os.environ.get("MEDAPP_BENCH_REAL", "1") != "0":
        start = time.perf_counter()
        engine = _real_shaped_engine(golden)
        print(f"real-shaped model built in {time.perf_counter() - start:.1f} s: {_n_params(engine.model) / 1e9:.2f} B "
              f"parameters (bf16)", flush=True)
        _report("(d) real-shaped short v2 (Llama-3.1-8B widths × 2 layers, CLIP ViT-L/14-336 widths × 2 layers, "
                "bf16), image 2048x2048", *_measure(engine, images["2048x2048"], rounds))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"peak resident memory: {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
