"""The Hugging Face front door: AutoConfig / AutoModelForCausalLM / AutoProcessor on Dragonfly folders, strictly."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

import models.auto  # noqa: F401  (the front door)
from models.configuration_dragonfly import DragonflyConfig
from models.errors import CheckpointFormatError
from models.loading import load_model
from models.modeling_dragonfly import DragonflyForCausalLM
from models.processing_dragonfly import DragonflyProcessor

VERSIONS = ["v2", "v1"]


def _folder(version: str, v2_checkpoint: Path, v1_checkpoint: Path) -> Path:
    return v2_checkpoint if version == "v2" else v1_checkpoint


@pytest.mark.parametrize("version", VERSIONS)
def test_auto_classes_give_dragonfly(version: str, v2_checkpoint: Path, v1_checkpoint: Path) -> None:
    folder = _folder(version, v2_checkpoint, v1_checkpoint)
    config = AutoConfig.from_pretrained(folder)
    assert isinstance(config, DragonflyConfig)
    assert config.version == version  # the image_encoder subfolder was resolved against the folder
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert isinstance(model, DragonflyForCausalLM) and model.version == version
    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, DragonflyProcessor)
    assert processor.version == version


def test_auto_processor_on_a_saved_folder(v2_checkpoint: Path, tmp_path: Path) -> None:
    DragonflyProcessor.from_pretrained(v2_checkpoint).save_pretrained(tmp_path)
    shutil.copy(v2_checkpoint / "config.json", tmp_path / "config.json")
    shutil.copytree(v2_checkpoint / "image_encoder", tmp_path / "image_encoder")
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), DragonflyProcessor)


def test_auto_model_logits_equal_the_loader(golden_cases: dict, v2_checkpoint: Path) -> None:
    case = golden_cases[("v2", "pub_224x224")]
    ours, _ = load_model(v2_checkpoint, device="cpu", dtype="float32")
    auto = AutoModelForCausalLM.from_pretrained(v2_checkpoint, dtype=torch.float32).eval()
    inputs = {k: case.batch[k] for k in ("input_ids", "attention_mask", "image_patches", "image_patches_indices")}
    with torch.no_grad():
        a = ours(**inputs, use_cache=False).logits
        b = auto(**inputs, use_cache=False).logits
    assert torch.equal(a, b)


def _modified_copy(src: Path, dst: Path, change: Any) -> Path:
    """A copy of a checkpoint folder whose weights are `change(tensors)` (written with safetensors.torch)."""
    shutil.copytree(src, dst)
    target = dst / "model.safetensors"
    tensors = load_file(src / "model.safetensors")
    target.chmod(0o644)
    target.unlink()
    save_file(change(tensors), target, metadata={"format": "pt"})
    (dst / "SHA256SUMS").unlink(missing_ok=True)
    return dst


LOADERS = {
    "DragonflyForCausalLM": DragonflyForCausalLM.from_pretrained,
    "AutoModelForCausalLM": AutoModelForCausalLM.from_pretrained,
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_missing_tensor_is_named(loader: str, v2_checkpoint: Path, tmp_path: Path) -> None:
    key = "vision_embed_tokens.weight"

    def drop(t: dict) -> dict:
        return {k: v for k, v in t.items() if k != key}

    folder = _modified_copy(v2_checkpoint, tmp_path / "ckpt", drop)
    with pytest.raises(CheckpointFormatError, match=r"missing keys: .*vision_embed_tokens\.weight"):
        LOADERS[loader](folder)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_unexpected_tensor_is_named(loader: str, v2_checkpoint: Path, tmp_path: Path) -> None:
    def add(t: dict) -> dict:
        return {**t, "vision_embed_tokens.extra": torch.zeros(3)}

    folder = _modified_copy(v2_checkpoint, tmp_path / "ckpt", add)
    with pytest.raises(CheckpointFormatError, match=r"unexpected keys: .*vision_embed_tokens\.extra"):
        LOADERS[loader](folder)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_misshaped_tensor_is_named(loader: str, v2_checkpoint: Path, tmp_path: Path) -> None:
    key = "vision_embed_tokens.bias"

    def reshape(t: dict) -> dict:
        return {**t, key: torch.zeros(t[key].numel() + 1, dtype=t[key].dtype)}

    folder = _modified_copy(v2_checkpoint, tmp_path / "ckpt", reshape)
    with pytest.raises(CheckpointFormatError, match=r"vision_embed_tokens\.bias"):
        LOADERS[loader](folder)


def test_output_loading_info_still_works(v2_checkpoint: Path) -> None:
    model, info = DragonflyForCausalLM.from_pretrained(v2_checkpoint, output_loading_info=True)
    assert isinstance(model, DragonflyForCausalLM)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_front_door_opens_through_the_package_names(v2_checkpoint: Path) -> None:
    """A fresh process: `import models` registers nothing (torch-free); `from models import DragonflyProcessor`
    (any torch-side name) opens the Auto classes."""
    import subprocess
    import sys

    code = (
        "import sys, models\n"
        "assert 'torch' not in sys.modules\n"
        "from models import DragonflyProcessor\n"
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor\n"
        f"folder = {str(v2_checkpoint)!r}\n"
        "print(type(AutoConfig.from_pretrained(folder)).__name__, type(AutoProcessor.from_pretrained(folder)).__name__,"
        " type(AutoModelForCausalLM.from_pretrained(folder)).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["DragonflyConfig", "DragonflyProcessor", "DragonflyForCausalLM"]


def test_saved_model_has_no_auto_map_and_reopens(v1_checkpoint: Path, tmp_path: Path) -> None:
    """Registration, not `auto_map` (which would ask for trust_remote_code): the saved config stays official."""
    import json

    model = AutoModelForCausalLM.from_pretrained(v1_checkpoint, dtype=torch.float32)
    model.save_pretrained(tmp_path)
    AutoProcessor.from_pretrained(v1_checkpoint).save_pretrained(tmp_path)
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())
    again = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert isinstance(again, DragonflyForCausalLM) and again.version == "v1"
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), DragonflyProcessor)
