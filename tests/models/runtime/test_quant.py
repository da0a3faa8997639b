"""4-bit NF4 for real on the CPU (bitsandbytes CPU backend): what is quantised, what is not, and how close it stays."""

from __future__ import annotations

from pathlib import Path

import bitsandbytes as bnb  # a declared dependency: a missing one must fail, not skip
import pytest
import torch
from PIL import Image
from torch import nn

from models.loading import LoadedCheckpoint, load
from models.prompts import build_prompt

QUESTION = "Provide a brief description of the given image."


def _inputs(loaded: LoadedCheckpoint, golden_dir: Path, version: str, case: str = "pub_512x512") -> dict:
    image = Image.open(golden_dir / f"cases-{version}" / f"{case}.png").convert("RGB")
    return loaded.processor(text=[build_prompt(QUESTION)], images=[image], return_tensors="pt", is_generate=True)


def _last8_logits(loaded: LoadedCheckpoint, inputs: dict) -> torch.Tensor:
    with torch.inference_mode():
        return loaded.model(**inputs).logits[0, -8:].float()


@pytest.fixture(scope="module")
def nf4_v2(v2_checkpoint: Path) -> LoadedCheckpoint:
    return load(v2_checkpoint, device="cpu", quant="4bit", dtype="float32")


@pytest.mark.parametrize("version,dtype", [("v2", "float32"), ("v1", "bfloat16")])
def test_language_model_is_nf4_and_vision_stays_dense(version: str, dtype: str, golden_dir: Path,
                                                      nf4_v2: LoadedCheckpoint) -> None:
    loaded = nf4_v2 if version == "v2" else load(golden_dir / "dragonfly-v1-tiny", device="cpu", quant="4bit", dtype=dtype)
    model, want = loaded.model, getattr(torch, dtype)
    quantised = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    decoder_linears = [n for n, m in model.language_model.model.layers.named_modules() if isinstance(m, nn.Linear)]
    assert len(quantised) == len(decoder_linears) == 14  # q k v o gate up down × 2 layers, and nothing else
    assert all(n.startswith("language_model.model.layers.") for n in quantised)
    for module in quantised.values():
        assert module.weight.dtype == torch.uint8
        state = module.weight.quant_state
        assert state.quant_type == "nf4" and state.nested  # double quantisation
        assert module.compute_dtype == want
    for name in ("vision_embed_tokens", "language_model.lm_head"):
        module = model.get_submodule(name)
        assert type(module) is nn.Linear and module.weight.dtype == want, name
    vision = [m for m in model.image_encoder.modules() if isinstance(m, nn.Linear)]
    assert vision and all(type(m) is nn.Linear and m.weight.dtype == want for m in vision)


def test_nf4_computes_exactly_the_dequantised_model(nf4_v2: LoadedCheckpoint, v2_checkpoint: Path,
                                                    golden_dir: Path) -> None:
    """The error is quantisation error only: an fp32 model given the dequantised NF4 weights gives the same logits."""
    reference = load(v2_checkpoint, device="cpu", dtype="float32")
    inputs = _inputs(reference, golden_dir, "v2")
    dense = _last8_logits(reference, inputs)
    for name, module in nf4_v2.model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            reference.model.get_submodule(name).weight.data.copy_(weight.float())
    four_bit = _last8_logits(nf4_v2, inputs)
    scale = dense.abs().max()
    assert float((four_bit - _last8_logits(reference, inputs)).abs().max() / scale) < 1e-4
    # Against the unquantised fp32 model (reported in the engine notes; a 16-wide random model is a worst case):
    # measured max |Δ|/scale 0.42, mean 0.05, top-1 agreement 4/8 on this case.
    delta = (four_bit - dense).abs() / scale
    agreement = float((four_bit.argmax(-1) == dense.argmax(-1)).float().mean())
    print(f"NF4 vs fp32 last-8 logits: max|Δ|/scale {float(delta.max()):.3f}, mean {float(delta.mean()):.3f}, "
          f"top-1 agreement {agreement:.2f}")
    assert float(delta.mean()) < 0.1 and float(delta.max()) < 0.6


def test_nf4_generates_and_still_sees_the_image(nf4_v2: LoadedCheckpoint, golden_dir: Path) -> None:
    from models.engine import DragonflyEngine

    engine = DragonflyEngine(nf4_v2.model, nf4_v2.processor, quant="4bit")
    a = Image.open(golden_dir / "cases-v2" / "pub_512x512.png").convert("RGB")
    answer = engine.generate(a, [], QUESTION, max_new_tokens=4)
    assert len(answer.token_ids) == 4 and answer.text
    assert engine.generate(a, [("q", "a")], "and?", max_new_tokens=4).token_ids == \
        engine.generate(a, [("q", "a")], "and?", max_new_tokens=4, use_prefix_cache=False).token_ids
    la, lb = _last8_logits(nf4_v2, _inputs(nf4_v2, golden_dir, "v2")), \
        _last8_logits(nf4_v2, _inputs(nf4_v2, golden_dir, "v2", "pub_1000x250_wide"))
    assert float((la - lb).abs().max()) > 1e-2  # an unquantised vision path still changes the answer
    assert engine.info.quant == "4bit" and engine.info.dtype == "float32"
