"""DragonflyConfig: official config.json files, both official encoder ids offline, head_dim, RoPE, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.configuration_dragonfly import DragonflyConfig


@pytest.mark.parametrize(("version", "crop", "tokens"), [("v2", 336, 577), ("v1", 224, 50)])
def test_golden_configs(version: str, crop: int, tokens: int, golden_dir: Path) -> None:
    cfg = DragonflyConfig.from_pretrained(golden_dir / f"dragonfly-{version}-tiny")
    assert cfg.model_type == "dragonfly"
    assert cfg.version == version
    assert cfg.vision_config.image_size == crop and cfg.tokens_per_crop == tokens
    assert cfg.vision_config.hidden_size == 32  # read from image_encoder/config.json, not a built-in
    text = cfg.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads, text.head_dim) == (16, 2, 2, 4)
    assert text.rope_parameters["rope_type"] == "default" and text.rope_parameters["rope_theta"] == 500000.0
    assert text.tie_word_embeddings is False


@pytest.mark.parametrize(
    ("hub_id", "version", "hidden", "layers"),
    [("openai/clip-vit-large-patch14-336", "v2", 1024, 24), ("openai/clip-vit-base-patch32", "v1", 768, 12)],
)
def test_official_hub_ids_resolve_without_download(hub_id: str, version: str, hidden: int, layers: int) -> None:
    # The released config.json: text_config lacks hidden size, layers, heads and head_dim (LlamaConfig defaults).
    text = {"model_type": "llama", "vocab_size": 128256, "intermediate_size": 14336, "num_key_value_heads": 8,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 8192}
    cfg = DragonflyConfig(image_encoder=hub_id, text_config=text)
    assert cfg.version == version
    assert (cfg.vision_config.hidden_size, cfg.vision_config.num_hidden_layers) == (hidden, layers)
    assert cfg.vision_config.hidden_act == "quick_gelu"
    assert cfg.text_config.hidden_size == 4096 and cfg.text_config.head_dim == 128
    assert cfg.text_config.rope_parameters["rope_type"] == "default"  # no llama3 scaling unless asked


def test_rope_scaling_only_when_asked() -> None:
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}
    cfg = DragonflyConfig(image_encoder="openai/clip-vit-large-patch14-336",
                          text_config={"model_type": "llama", "rope_theta": 500000.0, "rope_scaling": scaling})
    assert cfg.text_config.rope_parameters["rope_type"] == "llama3"


def test_save_and_reload_is_self_contained(golden_dir: Path, tmp_path: Path) -> None:
    cfg = DragonflyConfig.from_pretrained(golden_dir / "dragonfly-v1-tiny")
    cfg.save_pretrained(tmp_path)  # no image_encoder/ subfolder next to it: vision_config must be inside
    again = DragonflyConfig.from_pretrained(tmp_path)
    assert again.version == "v1" and again.vision_config.to_dict() == cfg.vision_config.to_dict()
    assert again.text_config.to_dict() == cfg.text_config.to_dict()


def test_unknown_encoder_is_a_clear_error(tmp_path: Path, golden_dir: Path) -> None:
    data = json.loads((golden_dir / "dragonfly-v2-tiny" / "config.json").read_text())
    data["image_encoder"] = "someone/unknown-clip"
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown-clip.*nothing is downloaded"):
        DragonflyConfig.from_pretrained(tmp_path)


def test_unsupported_crop_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="image_size 448"):
        DragonflyConfig(vision_config={"image_size": 448, "patch_size": 14})


def test_unresolved_subfolder_encoder_refuses_to_build_a_model(golden_dir: Path) -> None:
    from models.modeling_dragonfly import DragonflyForCausalLM

    data = json.loads((golden_dir / "dragonfly-v2-tiny" / "config.json").read_text())
    cfg = DragonflyConfig(**data)  # built from the dict, not from the folder: "image_encoder" cannot be found
    with pytest.raises(ValueError, match="DragonflyConfig.from_pretrained"):
        DragonflyForCausalLM(cfg)
