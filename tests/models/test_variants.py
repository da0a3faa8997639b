"""Dragonfly variants as data: processor and model agree for every variant; the config records and checks its variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.variants import (
    VARIANTS,
    UnknownVariantError,
    Variant,
    image_token_runs,
    infer_variant,
    n_image_tokens,
    variant_named,
)

PROMPT = "<|start_header_id|>user<|end_header_id|>\n\nWhat?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
_TINY_TEXT = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
              "max_position_embeddings": 4096, "rope_theta": 500000.0}


def _tiny_vision(variant: Variant) -> dict:
    """A 2-layer (penultimate = first) CLIP with the variant's crop and patch size: same token counts as the real tower, tiny weights."""
    return {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": variant.crop_size, "patch_size": variant.patch_size, "hidden_act": "quick_gelu"}


def _tiny_processor(variant: Variant, golden_dir: Path):
    from transformers import AutoTokenizer, CLIPImageProcessorPil

    from models.processing_dragonfly import DragonflyProcessor

    s = variant.crop_size
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": s}, crop_size={"height": s, "width": s}, resample=3)
    tokenizer = AutoTokenizer.from_pretrained(golden_dir / "tokenizer")
    return DragonflyProcessor(image_processor=image_processor, tokenizer=tokenizer, variant=variant.name)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_processor_image_tokens_equal_model_feature_rows(name: str, golden_dir: Path, torch_threads: None) -> None:
    """For every variant in the table: the placeholders the processor lays out are exactly the rows the model makes,
    and a forward pass scatters them without error (a tiny random model per variant)."""
    from models.configuration_dragonfly import DragonflyConfig
    from models.modeling_dragonfly import DragonflyForCausalLM

    variant = VARIANTS[name]
    torch.manual_seed(0)
    config = DragonflyConfig(variant=name, vision_config=_tiny_vision(variant), text_config=dict(_TINY_TEXT))
    model = DragonflyForCausalLM(config).eval()
    proc = _tiny_processor(variant, golden_dir)
    batch = proc(text=[PROMPT], images=[Image.new("RGB", (300, 200), (90, 40, 160))], is_generate=True)

    placeholders = int((batch["input_ids"] == proc.placeholder_id).sum())
    newlines = int((batch["input_ids"] == proc.newline_id).sum())
    assert batch["image_patches"][0].shape == (variant.n_crops, 3, variant.crop_size, variant.crop_size)
    with torch.no_grad():
        rows = model.get_image_features(batch["image_patches"])[0].shape[0]
        logits = model(**batch, logits_to_keep=1).logits
    assert placeholders == rows == n_image_tokens(variant)
    assert newlines == len(image_token_runs(variant))
    assert int(batch["image_patches_indices"].max()) == rows - 1
    assert torch.isfinite(logits).all()


def test_model_refuses_a_crop_count_its_variant_does_not_make(dragonfly_models: dict) -> None:
    model = dragonfly_models["v2"]
    with pytest.raises(ValueError, match="expects 41 crops per image, got 29"):
        model.image_features_from_projected(torch.zeros(29, 577, model.config.text_config.hidden_size))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_official_configs_infer_their_variant(name: str, golden_dir: Path) -> None:
    from models.configuration_dragonfly import DragonflyConfig

    variant = VARIANTS[name]
    assert DragonflyConfig(image_encoder=variant.image_encoder).variant == name  # the released config.json form
    assert infer_variant("image_encoder", variant.crop_size, variant.patch_size) is variant  # a local CLIP folder
    cfg = DragonflyConfig.from_pretrained(golden_dir / f"dragonfly-{name}-tiny")  # config.json without "variant"
    assert "variant" not in json.loads((golden_dir / f"dragonfly-{name}-tiny" / "config.json").read_text())
    assert cfg.variant == name and cfg.variant_spec is variant


def test_saved_config_records_the_variant(golden_dir: Path, tmp_path: Path) -> None:
    from models.configuration_dragonfly import DragonflyConfig

    DragonflyConfig.from_pretrained(golden_dir / "dragonfly-v1-tiny").save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["variant"] == "v1"
    assert DragonflyConfig.from_pretrained(tmp_path).variant == "v1"


def test_unknown_layouts_and_names_raise() -> None:
    from models.configuration_dragonfly import DragonflyConfig

    # A 336-px encoder that is not v2's ViT-L/14 must not silently take v2's path.
    with pytest.raises(UnknownVariantError, match="not an official Dragonfly layout"):
        DragonflyConfig(vision_config={"image_size": 336, "patch_size": 16})
    with pytest.raises(UnknownVariantError, match="unknown Dragonfly variant 'v3'"):
        DragonflyConfig(variant="v3", image_encoder="openai/clip-vit-large-patch14-336")
    with pytest.raises(UnknownVariantError, match="variant 'v1' uses 224 px"):
        DragonflyConfig(variant="v1", image_encoder="openai/clip-vit-large-patch14-336")
    with pytest.raises(UnknownVariantError):
        variant_named("v3")


def test_bare_processor_accepts_only_official_crop_sizes(golden_dir: Path) -> None:
    from transformers import AutoTokenizer, CLIPImageProcessorPil

    from models.processing_dragonfly import DragonflyProcessor

    tokenizer = AutoTokenizer.from_pretrained(golden_dir / "tokenizer")
    odd = CLIPImageProcessorPil(size={"shortest_edge": 448}, crop_size={"height": 448, "width": 448})
    with pytest.raises(UnknownVariantError, match="image_size 448"):
        DragonflyProcessor(image_processor=odd, tokenizer=tokenizer)
    v2_sized = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    with pytest.raises(ValueError, match="crops 336 px but Dragonfly v1 uses 224"):
        DragonflyProcessor(image_processor=v2_sized, tokenizer=tokenizer, variant="v1")


def test_table_rejects_inconsistent_variants() -> None:
    with pytest.raises(ValueError, match="exactly one of pool_kernel and zoom_top_k"):
        Variant("vx", "x", crop_size=336, patch_size=14, medium_grids=((2, 2),))
    with pytest.raises(ValueError, match="does not divide"):
        Variant("vx", "x", crop_size=336, patch_size=14, medium_grids=((2, 2),), pool_kernel=5)
