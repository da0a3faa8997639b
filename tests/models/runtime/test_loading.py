"""Finding checkpoints (local folders, the Hugging Face cache), refusing pickles, and integrity checks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from models.checkpoint import (
    checkpoint_sha256,
    count_parameters,
    find_checkpoints,
    list_checkpoints,
    model_id_for,
    require_safetensors,
    resolve_checkpoint,
    weight_files,
)
from models.errors import CheckpointFormatError, ChecksumMismatchError, ModelNotFoundError, PickleCheckpointError
from models.manifest import HashCache, checkpoint_fingerprint, read_manifest, verify_files, write_manifest

MED_V2 = "togethercomputer/Llama-3.1-8B-Dragonfly-Med-v2"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestHuggingFaceCache:
    def test_found_listed_and_resolved_offline(self, tmp_path: Path, v2_checkpoint: Path, fake_hf_cache: Callable,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        cache = tmp_path / "hub"
        snapshot = fake_hf_cache(cache, MED_V2, v2_checkpoint)
        other = cache / "models--someone--not-dragonfly" / "snapshots" / "abc"
        other.mkdir(parents=True)
        (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (other / "model.safetensors").write_bytes(b"")
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))

        entries = list_checkpoints()
        assert [(e.model_id, e.revision, e.weights_format, e.source) for e in entries] == [
            (MED_V2, "0123456789abcdef0123456789abcdef01234567", "safetensors", "hf-cache")
        ]
        assert find_checkpoints() == [snapshot]
        assert resolve_checkpoint(MED_V2) == snapshot
        assert resolve_checkpoint("Llama-3.1-8B-Dragonfly-Med-v2") == snapshot  # short name of a known id
        assert model_id_for(snapshot) == MED_V2

    def test_hf_home_is_honoured(self, tmp_path: Path, v2_checkpoint: Path, fake_hf_cache: Callable,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
        snapshot = fake_hf_cache(tmp_path / "hfhome" / "hub", MED_V2, v2_checkpoint)
        monkeypatch.delenv("HF_HUB_CACHE")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
        assert find_checkpoints() == [snapshot]

    def test_fingerprint_from_blob_names_equals_hashing_the_files(self, tmp_path: Path, v2_checkpoint: Path,
                                                                  fake_hf_cache: Callable) -> None:
        snapshot = fake_hf_cache(tmp_path / "hub", MED_V2, v2_checkpoint)
        from_blobs = checkpoint_sha256(snapshot, compute=False)
        assert from_blobs == checkpoint_fingerprint({"model.safetensors": _sha256(v2_checkpoint / "model.safetensors")})
        assert checkpoint_sha256(v2_checkpoint) == from_blobs  # hashed (no manifest, no blob names)

    def test_missing_id_names_the_download_and_never_downloads(self, tmp_path: Path) -> None:
        with pytest.raises(ModelNotFoundError, match=r"Llama-3-8B-Dragonfly-v1 is not in the Hugging Face cache.*never downloads"):
            resolve_checkpoint("togethercomputer/Llama-3-8B-Dragonfly-v1", hf_cache=tmp_path)

    def test_converted_checkpoints_in_the_models_folder_are_listed(self, v2_checkpoint: Path) -> None:
        models = Path(os.environ["MEDAPP_MODELS_DIR"])
        shutil.copytree(v2_checkpoint, models / "my-dragonfly")
        assert [(e.model_id, e.source) for e in list_checkpoints()] == [("my-dragonfly", "models-dir")]


class TestWeightFiles:
    def test_golden_checkpoint(self, v2_checkpoint: Path) -> None:
        files = require_safetensors(v2_checkpoint)
        assert (files.format, files.files, files.index) == ("safetensors", ("model.safetensors",), None)
        assert count_parameters(v2_checkpoint) == 4_167_008  # golden README

    def test_pickle_only_folder_names_the_convert_command(self, pickle_v2_checkpoint: Path) -> None:
        assert weight_files(pickle_v2_checkpoint).format == "pickle"
        with pytest.raises(PickleCheckpointError, match=rf"only pickle weights.*medapp model convert {pickle_v2_checkpoint} "):
            require_safetensors(pickle_v2_checkpoint)

    def test_shards_without_index(self, tmp_path: Path) -> None:
        (tmp_path / "a.safetensors").write_bytes(b"x")
        (tmp_path / "b.safetensors").write_bytes(b"x")
        with pytest.raises(CheckpointFormatError, match="2 .safetensors files but no model.safetensors.index.json"):
            weight_files(tmp_path)

    def test_index_listing_a_missing_shard(self, tmp_path: Path) -> None:
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "model-00001-of-00002.safetensors"}}))
        with pytest.raises(CheckpointFormatError, match="lists missing shard.*model-00001-of-00002"):
            weight_files(tmp_path)

    def test_no_weights_and_not_a_folder(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointFormatError, match="no weight files"):
            weight_files(tmp_path)
        with pytest.raises(CheckpointFormatError, match="no config.json"):
            resolve_checkpoint(tmp_path)
        with pytest.raises(ModelNotFoundError, match="no such checkpoint folder"):
            resolve_checkpoint(tmp_path / "nope")

    def test_truncated_safetensors_header(self, tmp_path: Path, v2_checkpoint: Path) -> None:
        from models.checkpoint import tensor_index

        shutil.copy2(v2_checkpoint / "config.json", tmp_path / "config.json")
        (tmp_path / "model.safetensors").write_bytes((v2_checkpoint / "model.safetensors").read_bytes()[:4])
        with pytest.raises(CheckpointFormatError, match=r"model.safetensors: unreadable safetensors header"):
            tensor_index(tmp_path)


class TestManifest:
    def test_fast_and_full_verification(self, tmp_path: Path, v2_checkpoint: Path) -> None:
        folder = tmp_path / "ckpt"
        shutil.copytree(v2_checkpoint, folder)
        cache = HashCache(tmp_path / "cache.json")
        write_manifest(folder, {"model.safetensors": _sha256(folder / "model.safetensors"),
                                "config.json": _sha256(folder / "config.json")})
        assert read_manifest(folder)["config.json"] == _sha256(folder / "config.json")
        full = verify_files(folder, ["model.safetensors"], full=True, cache=cache)
        assert (full.status, sorted(full.checked)) == ("verified", ["config.json", "model.safetensors"])
        # Same size and mtime as cached, different content: the fast check trusts the cache entry, which now disagrees
        cache.put(folder / "model.safetensors", "0" * 64)
        fast = verify_files(folder, ["model.safetensors"], full=False, cache=cache)
        assert (fast.status, fast.mismatched) == ("mismatch", ["model.safetensors"])

        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF  # flip a weight byte: new mtime, so the cache entry is stale and the file is re-hashed
        (folder / "model.safetensors").write_bytes(bytes(data))
        full = verify_files(folder, ["model.safetensors"], full=True, cache=cache)
        assert (full.status, full.mismatched) == ("mismatch", ["model.safetensors"])

    def test_load_refuses_an_incomplete_folder(self, tmp_path: Path, v2_checkpoint: Path) -> None:
        from models.loading import load

        folder = tmp_path / "ckpt"
        shutil.copytree(v2_checkpoint, folder)
        write_manifest(folder, {"model.safetensors": "a" * 64, "tokenizer.model": "b" * 64})
        with pytest.raises(ChecksumMismatchError, match="listed in the manifest but missing: tokenizer.model"):
            load(folder, device="cpu")

    def test_malformed_manifest(self, tmp_path: Path) -> None:
        (tmp_path / "SHA256SUMS").write_text("not a hash line\n")
        with pytest.raises(CheckpointFormatError, match="SHA256SUMS: line 1"):
            read_manifest(tmp_path)


def test_sha256_file_reports_progress_and_uses_the_cache(tmp_path: Path, v2_checkpoint: Path) -> None:
    from models.manifest import sha256_file

    file = v2_checkpoint / "model.safetensors"
    seen: list[int] = []
    cache = HashCache(tmp_path / "cache.json")
    assert sha256_file(file, cache, seen.append) == _sha256(file)
    assert sum(seen) == file.stat().st_size and len(seen) >= 1
    seen.clear()
    assert sha256_file(file, cache, seen.append) == _sha256(file) and seen == []  # second time: from the cache
