"""Fixtures for the loading / conversion / engine tests: isolated caches and checkpoints written in tmp."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# Files of a checkpoint folder that are not weights (copied into every checkpoint the tests build).
SIDE_FILES = (
    "config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
    "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
)


REVISION = "0123456789abcdef0123456789abcdef01234567"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_fake_hf_cache(root: Path, repo_id: str, src: Path, revision: str = REVISION) -> Path:
    """The hub cache layout: blobs named by SHA-256, snapshot files as relative symlinks, refs/main → revision."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    for file in sorted(p for p in src.rglob("*") if p.is_file() and p.name != "keys.txt"):
        rel = file.relative_to(src)
        blob = repo / "blobs" / _sha256(file)
        shutil.copyfile(file, blob)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


@pytest.fixture
def fake_hf_cache() -> Callable[..., Path]:
    """`fake_hf_cache(root, repo_id, src_folder[, revision]) -> snapshot folder`."""
    return make_fake_hf_cache


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's hash cache, models folder or Hugging Face cache."""
    base = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("MEDAPP_HASH_CACHE", str(base / "sha256-cache.json"))
    monkeypatch.setenv("MEDAPP_MODELS_DIR", str(base / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(base / "hf-empty"))


def copy_side_files(src: Path, dst: Path) -> None:
    """Config, tokenizer and processor files, and the `image_encoder/` folder the tiny configs point to."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        shutil.copy2(src / name, dst / name)
    if (src / "image_encoder").is_dir():
        shutil.copytree(src / "image_encoder", dst / "image_encoder")


def write_pickle_checkpoint(src: Path, dst: Path) -> dict:
    """The safetensors checkpoint `src` re-saved the official way: two `pytorch_model-0000x-of-00002.bin` shards
    plus `pytorch_model.bin.index.json` (keys split in file order), side files copied. Returns the tensors."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(src / "model.safetensors"))
    keys = list(tensors)
    half = len(keys) // 2
    parts = [keys[:half], keys[half:]]
    copy_side_files(src, dst)
    weight_map = {}
    for i, part in enumerate(parts, start=1):
        name = f"pytorch_model-{i:05d}-of-00002.bin"
        torch.save({k: tensors[k] for k in part}, dst / name)
        weight_map.update({k: name for k in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (dst / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}), encoding="utf-8"
    )
    return tensors


@pytest.fixture(scope="session")
def pickle_v2_checkpoint(tmp_path_factory: pytest.TempPathFactory, v2_checkpoint: Path) -> Path:
    """The tiny v2 checkpoint as an official-style sharded pickle folder."""
    dst = tmp_path_factory.mktemp("pickle") / "dragonfly-v2-tiny-bin"
    write_pickle_checkpoint(v2_checkpoint, dst)
    return dst
