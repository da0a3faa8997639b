"""`check_checkpoint` on the real 8B layouts (meta device: no weights, no download) and its problem reports."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from models.check import check_checkpoint, expected_tensors, format_report

# config.json of togethercomputer/Llama-3.1-8B-Dragonfly-Med-v2 (as published; see dragonfly-notes §3.1).
MED_V2_CONFIG = {
    "architectures": ["DragonflyForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "image_encoder": "openai/clip-vit-large-patch14-336", "image_size": 300, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "dragonfly", "num_attention_heads": 32,
    "num_channels": 3, "num_hidden_layers": 32, "num_key_value_heads": 8, "patch_size": 30, "rms_norm_eps": 1e-05,
    "rope_scaling": None, "rope_theta": 500000.0,
    "text_config": {"bos_token_id": 128000, "eos_token_id": 128001, "intermediate_size": 14336,
                    "max_position_embeddings": 8192, "model_type": "llama", "num_key_value_heads": 8,
                    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "vocab_size": 128256},
    "text_pretrained_model_name_or_path": "meta-llama/Meta-Llama-3.1-8B-Instruct", "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.44.2", "use_cache": True, "vocab_size": 128256,
}


@pytest.mark.parametrize("encoder,version,n_keys,n_params", [
    ("openai/clip-vit-large-patch14-336", "v2", 684, 8_337_967_104),  # 291 LLM + 391 CLIP-L + 2 projector keys
    ("openai/clip-vit-base-patch32", "v1", 492, 8_120_867_072),
])
def test_real_8b_layouts_are_known_offline(tmp_path: Path, encoder: str, version: str, n_keys: int,
                                           n_params: int) -> None:
    (tmp_path / "config.json").write_text(json.dumps(dict(MED_V2_CONFIG, image_encoder=encoder)))
    got_version, tensors = expected_tensors(tmp_path)
    assert (got_version, len(tensors)) == (version, n_keys)
    assert sum(math.prod(shape) for shape in tensors.values()) == n_params
    assert tensors["vision_embed_tokens.weight"] == (4096, 1024 if version == "v2" else 768)
    assert tensors["image_encoder.vision_model.pre_layrnorm.weight"]  # official spelling of the CLIP key


def test_missing_and_misshaped_tensors_are_listed(tmp_path: Path, v2_checkpoint: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "broken"
    shutil.copytree(v2_checkpoint, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["vision_embed_tokens.bias"]
    tensors["language_model.model.norm.weight"] = torch.ones(8, dtype=torch.bfloat16)
    tensors["extra.weight"] = torch.zeros(2, dtype=torch.bfloat16)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    report = check_checkpoint(folder, verify_hashes=False)
    assert not report["ok"]
    assert report["missing_keys"] == ["vision_embed_tokens.bias"]
    assert report["unexpected_keys"] == ["extra.weight"]
    assert report["mismatched_shapes"] == ["language_model.model.norm.weight: checkpoint [8], model [16]"]
    assert report["hash_status"] == "no-manifest"
    text = format_report(report)
    assert "1 missing tensor(s), e.g. vision_embed_tokens.bias" in text and text.endswith("NOT OK")

    from models.errors import CheckpointFormatError
    from models.loading import load

    with pytest.raises(CheckpointFormatError, match=r"weights do not match the config — missing keys: vision_embed_tokens\.bias; unexpected keys: extra\.weight; mismatched shapes: language_model\.model\.norm\.weight"):
        load(folder, device="cpu", dtype="float32")  # loading is strict too: no silently random layer


def test_runtime_modules_import_without_torch() -> None:
    """medapp imports models.checkpoint to list checkpoints at start-up: that must not pull in torch or transformers."""
    import subprocess
    import sys

    code = ("import sys, models.checkpoint, models.variants, models.loading, models.devices, models.manifest, "
            "models.check, models.convert, models.engine, medapp.cli.model; heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_models_modules_import_each_other_without_a_circle() -> None:
    """Every `models.*` import (module level or inside a function) points one way: loading uses check and checkpoint,
    check and convert use checkpoint, and nothing leads back. A circle would make any of them hard to change alone."""
    import ast
    from graphlib import CycleError, TopologicalSorter

    import models

    package = Path(models.__file__).parent
    graph: dict[str, set[str]] = {}
    for file in package.glob("*.py"):
        name = "models" if file.stem == "__init__" else f"models.{file.stem}"
        deps = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("models."):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("models."))
    for user in ("models.loading", "models.check", "models.convert"):
        assert "models.checkpoint" in graph[user], user
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as err:  # pragma: no cover - the message names the circle
        pytest.fail(f"import circle in models: {' -> '.join(err.args[1])}")
