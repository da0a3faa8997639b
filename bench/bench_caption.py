"""(d) `medapp caption --ray`: images/s with 1 vs 2 CPU actors on this machine, and a per-GPU estimate on paper.

Throughput: one local Ray (2 CPUs, loopback only) captions the same folder of N images with 1 and 2 actors
(tiny golden v2 model, batches of 4, 16 new tokens), in the same run, so the ratio is the result; absolute numbers
drift 2-3x on this shared machine. Rate = rows after the first batch / time from the first to the last batch, so
the actors' start-up (model load) is not counted; the wall time including it is printed too. The CPU actors get the
default plan (one actor: 2 torch threads; two actors: 1 thread each, `plan_actors`).

Estimate: the FLOPs of captioning one image are *measured* on the tiny model (torch's FlopCounterMode, split into
vision encoder, projector and language model) together with the token counts (image block, prompt, answer). The
token layout of the tiny checkpoint is the real v2 layout (41 crops, 2098-token image block), so the counts carry
over; the FLOPs are scaled by parameters (2 FLOPs per parameter per token, checked against the tiny measurement)
to Llama-3.1-8B + CLIP ViT-L/14-336 and divided by a GPU's dense bf16 throughput at an assumed utilisation.
Decoding is memory-bound and costed separately (weights read once per step for a whole batch).

Run: `./run.sh bench caption` (needs the extra: `pip install 'medapp[cluster]'`).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_engine import QUESTION, _golden, _images

N_IMAGES = 48
BATCH = 4
NEW_TOKENS = 16

# Dragonfly-Med v2 8B: Llama-3.1-8B (32 layers, width 4096, 8 KV heads of 128, MLP 14336, vocabulary 128256) and
# CLIP ViT-L/14-336 (24 layers, width 1024, MLP 4096; the penultimate layer's output is used, so 23 run).
REAL = {"llm_layers": 32, "d": 4096, "kv": 1024, "mlp": 14336, "vocab": 128256,
        "vit_layers": 23, "vd": 1024, "vmlp": 4096, "patch": 14}
WEIGHT_BYTES = 16.1e9  # bf16 weights read per decode step (language model + projector)
GPUS = {  # dense bf16 tensor FLOP/s and memory bandwidth (vendor data sheets)
    "NVIDIA L4": (121e12, 0.3e12),
    "NVIDIA A100 80GB": (312e12, 2.0e12),
    "NVIDIA H100 SXM": (989e12, 3.35e12),
}
MFU = 0.4  # assumed share of peak reached in prefill (batched, long sequences)
DECODE_BATCH = 8


def _folder(root: Path) -> Path:
    folder = root / "images"
    folder.mkdir()
    for k, image in enumerate(_images(_golden(), N_IMAGES)):
        image.save(folder / f"img_{k:03d}.png")
    return folder


def _one_thread() -> type:
    """The captioning actor pinned to one torch thread (defined here, so Ray ships it by value)."""
    from medapp.cluster.stages import Captioner

    class OneThreadCaptioner(Captioner):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["threads"] = 1
            super().__init__(*args, **kwargs)

    return OneThreadCaptioner


def _run(folder: Path, out: Path, model: Path, actors: int, captioner: type | None = None) -> tuple[float, float]:
    """(steady images/s, wall seconds) of one `caption_batch_ray` run."""
    from medapp.jobs.caption import list_items
    from medapp.jobs.caption_ray import caption_batch_ray
    from reports.captions import CaptionWriter

    items = list_items(folder)
    stamps: list[tuple[float, int]] = []
    start = time.perf_counter()
    with CaptionWriter(out) as writer:
        caption_batch_ray(items, writer, model_dir=model, device="cpu", actors=actors, batch_size=BATCH,
                          captioner=captioner,
                          max_new_tokens=NEW_TOKENS, on_progress=lambda p: stamps.append((time.perf_counter(),
                                                                                           p.done)))
    wall = time.perf_counter() - start
    (t0, n0), (t1, n1) = stamps[0], stamps[-1]
    return ((n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")), wall


def throughput(model: Path) -> None:
    from medapp.cluster.runtime import ray_session

    with tempfile.TemporaryDirectory(prefix="mbench") as tmp:
        folder = _folder(Path(tmp))
        with ray_session(None, num_cpus=2, object_store_memory=200 * 2**20, temp_dir=str(Path(tmp) / "ray")):
            # "1t": one actor pinned to one torch thread, to tell actor scaling from torch's threading on 2 cores
            runs: dict[str, list[tuple[float, float]]] = {"1": [], "2": [], "1t": []}
            for k, name in enumerate(("1", "2", "1t", "1t", "2", "1")):  # interleaved: drift hits all alike
                captioner = _one_thread() if name == "1t" else None
                runs[name].append(_run(folder, Path(tmp) / f"c{k}.csv", model, int(name[0]), captioner))
    (r1, w1), (r2, w2), (r1t, w1t) = (tuple(statistics.median(v) for v in zip(*runs[n], strict=True))
                                      for n in ("1", "2", "1t"))
    print(f"(d) captioning {N_IMAGES} images on a local Ray (2 CPUs), batches of {BATCH}, {NEW_TOKENS} new tokens, "
          f"tiny v2 model, median of 2 runs each (load average now {os.getloadavg()[0]:.1f}):")
    print(f"    1 actor {r1:.2f} img/s (wall {w1:.1f} s), 2 actors {r2:.2f} img/s (wall {w2:.1f} s)  ->  "
          f"{r2 / r1:.2f}x")
    print(f"    1 actor on 1 torch thread {r1t:.2f} img/s (wall {w1t:.1f} s): 2 actors are {r2 / r1t:.2f}x that")


def matmul_flops(a: dict[str, int], *, crops: int, crop_tokens: int, prefill: int, answer: int) -> dict[str, float]:
    """Multiply-add FLOPs (2 per weight per token) of captioning one image, by part, for architecture `a`.

    Attention score/value products are listed apart: torch's FlopCounterMode does not see them on the CPU path the
    tiny model takes, so the matmul parts are what the measurement checks."""
    vit_layer = 4 * a["vd"] ** 2 + 2 * a["vd"] * a["vmlp"]
    llm_layer = 2 * a["d"] ** 2 + 2 * a["d"] * a["kv"] + 3 * a["d"] * a["mlp"]
    vis_tokens = crops * crop_tokens
    return {
        "vision": 2.0 * (3 * a["patch"] ** 2 * a["vd"] * crops * (crop_tokens - 1) + a["vit_layers"] * vit_layer *
                         vis_tokens),
        "projector": 2.0 * a["vd"] * a["d"] * vis_tokens,
        "llm": 2.0 * a["llm_layers"] * llm_layer * (prefill + answer),
        "lm_head": 2.0 * a["d"] * a["vocab"] * answer,
        "attention": 2.0 * a["llm_layers"] * a["d"] * prefill**2 + 4.0 * a["vit_layers"] * a["vd"] * crop_tokens**2 *
        crops,
    }


def flops_estimate(model: Path) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models.engine import DragonflyEngine

    engine = DragonflyEngine.from_pretrained(model, device="cpu", dtype="float32", verify="none")
    image = _images(_golden(), 1)[0]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        generation = engine.caption_batch([image], QUESTION, max_new_tokens=NEW_TOKENS, batch_size=1)[0]
    per_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(engine.model).__name__
    measured = {
        "llm": per_module.get(f"{root}.language_model.model", 0),
        "lm_head": per_module.get(f"{root}.language_model.lm_head", 0),
        "projector": per_module.get(f"{root}.vision_embed_tokens", 0),
    }
    measured["vision"] = counter.get_total_flops() - sum(measured.values())
    batch = engine.processor(text=["x"], images=[image], return_tensors="pt", is_generate=True)
    crops = batch["image_patches"][0].shape[0]
    block = engine._encoded(image).block_ids.shape[1]
    prefill = block + engine.prompt_ids([], QUESTION, 1, block).shape[1]
    answer = len(generation.token_ids)
    text, vis = engine.model.config.text_config, engine.model.image_encoder.config
    used = vis.num_hidden_layers - 1  # the penultimate layer's output is used
    tiny = {"llm_layers": text.num_hidden_layers, "d": text.hidden_size, "kv": text.num_key_value_heads *
            text.head_dim, "mlp": text.intermediate_size, "vocab": text.vocab_size, "vit_layers": used,
            "vd": vis.hidden_size, "vmlp": vis.intermediate_size, "patch": vis.patch_size}
    crop_tokens = (vis.image_size // vis.patch_size) ** 2 + 1
    shape = {"crops": crops, "crop_tokens": crop_tokens, "prefill": prefill, "answer": answer}
    formula = matmul_flops(tiny, **shape)
    print(f"(e) one image: {crops} crops x {crop_tokens} vision tokens, prefill {prefill} tokens (image block "
          f"{block}), {answer} answer tokens")
    print("    tiny v2, measured (FlopCounterMode) vs formula: " + ", ".join(
        f"{k} {measured[k]:.3e}/{formula[k]:.3e}" for k in ("vision", "projector", "llm", "lm_head")))
    real = matmul_flops(REAL, **shape)
    prefill_flops = real["vision"] + real["projector"] + real["attention"] + real["llm"] * prefill / (prefill + answer)
    print(f"    Dragonfly-Med v2 8B, same formula: {sum(real.values()):.2e} FLOPs/image (vision {real['vision']:.2e}, "
          f"language model {real['llm']:.2e}, attention {real['attention']:.2e}); prefill {prefill_flops:.2e}")
    for gpu, (peak, bandwidth) in GPUS.items():
        for tokens in (NEW_TOKENS, 128):
            prefill_s = prefill_flops / (MFU * peak)
            decode_s = tokens * WEIGHT_BYTES / bandwidth / DECODE_BATCH  # one weight read per step for the batch
            print(f"    {gpu}: {prefill_s:.2f} s prefill + {decode_s:.2f} s decode per image ({tokens} tokens, "
                  f"batches of {DECODE_BATCH}, {MFU:.0%} of peak) -> ~{1 / (prefill_s + decode_s):.1f} img/s per GPU")


def main() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    model = _golden() / "dragonfly-v2-tiny"
    flops_estimate(model)
    throughput(model)


if __name__ == "__main__":
    main()
