"""DragonflyForCausalLM beyond the golden numbers: loading, key names, generation with caches, batching, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from models._compat import cache_kwargs
from models.variants import image_block_len

PROMPT = (
    "<|start_header_id|>user<|end_header_id|>\n\nProvide a brief description of the given image.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
SHORT_PROMPT = "<|start_header_id|>user<|end_header_id|>\n\nWhat?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
EOS = [128000, 128009]


def _official_keys(folder: Path) -> list[str]:
    return [line.split("\t")[0] for line in (folder / "keys.txt").read_text().splitlines() if line.strip()]


def _image(golden_dir: Path, name: str) -> Image.Image:
    with Image.open(golden_dir / "cases-v2" / f"{name}.png") as im:
        return im.convert("RGB")


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_checkpoint_loads_strictly_with_official_keys(version: str, golden_dir: Path, torch_threads: None) -> None:
    from models.modeling_dragonfly import DragonflyForCausalLM

    folder = golden_dir / f"dragonfly-{version}-tiny"
    model, info = DragonflyForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert list(model.state_dict()) == _official_keys(folder)
    assert model.version == version and model.config.version == version


def test_save_pretrained_round_trips(dragonfly_models: dict, v2_checkpoint: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from models.modeling_dragonfly import DragonflyForCausalLM

    model = dragonfly_models["v2"]
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert sorted(saved) == sorted(_official_keys(v2_checkpoint))
    reloaded = DragonflyForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert reloaded.config.version == "v2"
    for (k1, a), (k2, b) in zip(model.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(a, b), k1


def test_load_state_dict_accepts_official_keys(dragonfly_models: dict, v1_checkpoint: Path) -> None:
    from safetensors.torch import load_file

    from models.configuration_dragonfly import DragonflyConfig
    from models.modeling_dragonfly import DragonflyForCausalLM

    fresh = DragonflyForCausalLM(DragonflyConfig.from_pretrained(v1_checkpoint))
    official = {k: v.float() for k, v in load_file(v1_checkpoint / "model.safetensors").items()}
    fresh.load_state_dict(official, strict=True)
    for key, value in dragonfly_models["v1"].state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_answer_depends_on_the_image(version: str, dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    model, proc = dragonfly_models[version], dragonfly_processors[version]
    scores = []
    for name in ("pub_512x512", "pub_800x600"):
        batch = proc(text=[PROMPT], images=[_image(golden_dir, name)], return_tensors="pt", is_generate=True)
        with torch.no_grad():
            out = model.generate(
                **batch, max_new_tokens=3, do_sample=False, eos_token_id=EOS, output_scores=True, return_dict_in_generate=True
            )
        scores.append(torch.stack(out.scores))
    assert float((scores[0][0] - scores[1][0]).abs().max()) > 0.1


def test_generate_with_cache_equals_full_forwards(dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    """The image enters on the first step and is never dropped; later steps feed only the new token."""
    model, proc = dragonfly_models["v1"], dragonfly_processors["v1"]
    batch = proc(text=[PROMPT], images=[_image(golden_dir, "pub_224x224")], return_tensors="pt", is_generate=True)
    calls: list[int] = []
    hook = model.image_encoder.embeddings.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            cached = model.generate(**batch, max_new_tokens=6, do_sample=False, eos_token_id=EOS)
    finally:
        hook.remove()
    assert len(calls) == 1  # the image is encoded once, on the prefill step
    ids = batch["input_ids"]
    with torch.no_grad():
        feats = model.get_image_features(batch["image_patches"])
        for _ in range(6):
            logits = model(input_ids=ids, image_patches_indices=batch["image_patches_indices"], image_features=feats, logits_to_keep=1).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, ids)


def test_chunked_prefill_equals_one_pass(dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    """An engine may prefill the image block, keep its cache, then feed the question: same logits as one pass."""
    from transformers import DynamicCache

    model, proc = dragonfly_models["v2"], dragonfly_processors["v2"]
    batch = proc(text=[PROMPT], images=[_image(golden_dir, "pub_1000x250_wide")], return_tensors="pt", is_generate=True)
    split = image_block_len(proc.variant_spec)
    ids, idx = batch["input_ids"], batch["image_patches_indices"]
    with torch.no_grad():
        feats = model.get_image_features(batch["image_patches"])
        full = model(input_ids=ids, image_patches_indices=idx, image_features=feats).logits[:, split:]
        cache = DynamicCache(config=model.config.text_config)
        model(input_ids=ids[:, :split], image_patches_indices=idx, image_features=feats, **cache_kwargs(cache), use_cache=True)
        # The second chunk holds no placeholder: no image needed, and none is encoded.
        rest = model(input_ids=ids[:, split:], image_patches_indices=idx, **cache_kwargs(cache), use_cache=True).logits
    assert float((full - rest).abs().max()) < 1e-4


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_cache_under_either_name_continues_positions(
    name: str, dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path
) -> None:
    """transformers 5.24 passes the cache as `cache` and no `cache_position`; earlier releases `past_key_values`.

    Under either name, a chunk fed after a cached prefix must continue at the cache's length: the second chunk's
    logits equal those of one pass, and a wrong position (restarting at 0) would scatter image features into it.
    """
    import warnings

    from transformers import DynamicCache

    model, proc = dragonfly_models["v2"], dragonfly_processors["v2"]
    batch = proc(text=[PROMPT], images=[_image(golden_dir, "pub_512x512")], return_tensors="pt", is_generate=True)
    split = image_block_len(proc.variant_spec)
    ids, idx = batch["input_ids"], batch["image_patches_indices"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # our forward hands the cache on under the installed name
        feats = model.get_image_features(batch["image_patches"])
        full = model(input_ids=ids, image_patches_indices=idx, image_features=feats).logits[:, split:]
        cache = DynamicCache(config=model.config.text_config)
        model(input_ids=ids[:, :split], image_patches_indices=idx, image_features=feats, use_cache=True, **{name: cache})
        assert cache.get_seq_length() == split
        rest = model(input_ids=ids[:, split:], image_patches_indices=idx, use_cache=True, **{name: cache}).logits
    assert cache.get_seq_length() == ids.shape[1]
    assert float((full - rest).abs().max()) < 1e-4


def test_two_different_caches_are_refused(dragonfly_models: dict) -> None:
    from transformers import DynamicCache

    model = dragonfly_models["v2"]
    with pytest.raises(ValueError, match="give the KV cache once"):
        model(input_ids=torch.tensor([[1, 2]]), cache=DynamicCache(), past_key_values=DynamicCache())


def test_left_padded_batch_matches_single_runs(dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    model, proc = dragonfly_models["v1"], dragonfly_processors["v1"]
    images = [_image(golden_dir, "pub_512x512"), _image(golden_dir, "pub_250x1000_tall")]
    prompts = [PROMPT, SHORT_PROMPT]
    batch = proc(text=prompts, images=images, return_tensors="pt", is_generate=True)
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][0, 0] == 1  # second prompt is shorter
    options = dict(max_new_tokens=4, do_sample=False, eos_token_id=EOS, output_scores=True, return_dict_in_generate=True)
    with torch.no_grad():
        together = model.generate(**batch, **options)
        for b in range(2):
            single = proc(text=[prompts[b]], images=[images[b]], return_tensors="pt", is_generate=True)
            alone = model.generate(**single, **options)
            assert together.sequences[b, -4:].tolist() == alone.sequences[0, -4:].tolist()
            # Tokens alone barely depend on RoPE positions in this tiny model (positions that ignored the padding
            # left them unchanged); every step's logits must agree to float32 noise.
            ours, ref = torch.stack([s[b] for s in together.scores]), torch.stack([s[0] for s in alone.scores])
            assert float((ours - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


def test_mismatched_image_count_is_a_clear_error(dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    model, proc = dragonfly_models["v1"], dragonfly_processors["v1"]
    batch = proc(text=[PROMPT], images=[_image(golden_dir, "pub_224x224")], return_tensors="pt", is_generate=True)
    with torch.no_grad():
        feats = model.get_image_features(batch["image_patches"])
        with pytest.raises(ValueError, match="image has 100 features"):
            model(input_ids=batch["input_ids"], image_patches_indices=batch["image_patches_indices"], image_features=[feats[0][:100]])
        with pytest.raises(ValueError, match="2 images for a batch of 1"):
            model(input_ids=batch["input_ids"], image_patches_indices=batch["image_patches_indices"], image_features=feats * 2)
        with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
            model(input_ids=None)
        with pytest.raises(ValueError, match="neither image_patches nor image_features"):
            model(input_ids=batch["input_ids"], image_patches_indices=batch["image_patches_indices"])
        with pytest.raises(ValueError, match="without image_patches_indices"):
            model(input_ids=batch["input_ids"], image_features=feats)


def test_bf16_model_runs_the_image_path(v2_checkpoint: Path, dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    """float32 pixels are cast to the bf16 tower's dtype; the result stays close to the float32 model's."""
    from models.modeling_dragonfly import DragonflyForCausalLM

    model = DragonflyForCausalLM.from_pretrained(v2_checkpoint, dtype=torch.bfloat16)
    batch = dragonfly_processors["v2"](text=[PROMPT], images=[_image(golden_dir, "pub_224x224")], return_tensors="pt", is_generate=True)
    with torch.no_grad():
        assert model.penultimate_hidden_state(batch["image_patches"][0][:2]).dtype == torch.bfloat16
        feats = model.get_image_features(batch["image_patches"])[0]
        reference = dragonfly_models["v2"].get_image_features(batch["image_patches"])[0]
    assert feats.dtype == torch.bfloat16
    assert float((feats.float() - reference).abs().max()) < 0.1 * float(reference.abs().max())


def test_4bit_llm_with_unquantised_vision(v2_checkpoint: Path, dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    """NF4 language model on CPU through BitsAndBytesConfig; tower and projector stay real tensors; logits stay close."""
    from transformers import BitsAndBytesConfig

    from models.modeling_dragonfly import DragonflyForCausalLM

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
        llm_int8_skip_modules=["image_encoder", "vision_embed_tokens", "lm_head"],
    )
    model = DragonflyForCausalLM.from_pretrained(v2_checkpoint, quantization_config=quant, dtype=torch.float32, device_map="cpu")
    assert type(model.language_model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert model.vision_embed_tokens.weight.dtype == torch.float32
    assert model.image_encoder.embeddings.patch_embedding.weight.dtype == torch.float32
    batch = dragonfly_processors["v2"](text=[PROMPT], images=[_image(golden_dir, "pub_512x512")], return_tensors="pt", is_generate=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=2, do_sample=False, eos_token_id=EOS, output_scores=True, return_dict_in_generate=True)
        exact = dragonfly_models["v2"](**batch, logits_to_keep=1).logits[0, -1]
    first = out.scores[0][0]
    # NF4 on a 16-wide random model is coarse (max |diff| about 30 % of the logit scale); the logits must still
    # follow the exact ones closely as a whole.
    corr = float(torch.corrcoef(torch.stack([first, exact]))[0, 1])
    print(f"4-bit vs float32 first-step logits: corr {corr:.4f}, mean |diff| {float((first - exact).abs().mean()):.4f}")
    assert corr > 0.9
    assert float((first - exact).abs().mean()) < 0.1 * float(exact.abs().max())


def test_generate_from_kept_image_features_and_prefix_cache(dragonfly_models: dict, dragonfly_processors: dict, golden_dir: Path) -> None:
    """What an engine does: encode once, prefill the image block once, then answer from a copy of that cache."""
    import copy

    from transformers import DynamicCache

    model, proc = dragonfly_models["v1"], dragonfly_processors["v1"]
    batch = proc(text=[PROMPT], images=[_image(golden_dir, "pub_800x600")], return_tensors="pt", is_generate=True)
    with torch.no_grad():
        fresh = model.generate(**batch, max_new_tokens=5, do_sample=False, eos_token_id=EOS)
        feats = model.get_image_features(batch["image_patches"])
        kept = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            image_patches_indices=batch["image_patches_indices"], image_features=feats,
            max_new_tokens=5, do_sample=False, eos_token_id=EOS,
        )
        block = image_block_len(proc.variant_spec)
        prefix = DynamicCache(config=model.config.text_config)
        model(input_ids=batch["input_ids"][:, :block], image_patches_indices=batch["image_patches_indices"],
              image_features=feats, **cache_kwargs(prefix), use_cache=True)
        reused = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            image_patches_indices=batch["image_patches_indices"], **cache_kwargs(copy.deepcopy(prefix)),
            max_new_tokens=5, do_sample=False, eos_token_id=EOS,
        )
    assert torch.equal(kept, fresh) and torch.equal(reused, fresh)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_vision_features_skip_the_last_layer_and_equal_hidden_states_minus_2(
    version: str, dragonfly_models: dict, golden_cases: dict
) -> None:
    """Only the layers up to the second-to-last run, and the result equals transformers' `hidden_states[-2]`."""
    model = dragonfly_models[version]
    pixels = golden_cases[(version, "pub_800x600")].batch["image_patches"][0][:3]
    layers = model.image_encoder.encoder.layers
    calls: list[int] = []
    hooks = [layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i)) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            ours = model.penultimate_hidden_state(pixels)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == list(range(len(layers) - 1))  # the last encoder layer never runs
    with torch.no_grad():
        reference = model.image_encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    assert torch.equal(ours, reference)
