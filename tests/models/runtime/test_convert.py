"""The one-time pickle → safetensors conversion and `medapp model convert|check|list`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medapp.cli import main as cli_main
from models.checkpoint import require_safetensors
from models.convert import UnpicklingWarning, convert_checkpoint
from models.errors import CheckpointFormatError, ModelError, PickleCheckpointError
from models.manifest import read_manifest


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bytes of a tensor, so equality is bit-exact (NaN and -0.0 included)."""
    return t.contiguous().view(torch.uint8)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, pickle_v2_checkpoint: Path) -> Path:
    dst = tmp_path_factory.mktemp("converted") / "v2-safetensors"
    with pytest.warns(UnpicklingWarning, match=r"unpickling 2 file\(s\).*weights_only=True"):
        convert_checkpoint(pickle_v2_checkpoint, dst, max_shard_bytes=3_000_000)  # ~8 MB → 3 shards
    return dst


class TestConvert:
    def test_layout(self, converted: Path) -> None:
        files = require_safetensors(converted)
        assert files.index == "model.safetensors.index.json"
        n = len(files.files)
        assert n > 1 and files.files == tuple(f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1))
        index = json.loads((converted / "model.safetensors.index.json").read_text())
        per_shard = {f: [k for k, v in index["weight_map"].items() if v == f] for f in files.files}
        for name, keys in per_shard.items():  # within the limit, unless one tensor alone is larger (the 4 MB embeddings)
            assert len(keys) == 1 or (converted / name).stat().st_size <= 3_000_000 + 10_000, name
        for name in ("config.json", "tokenizer.json", "preprocessor_config.json", "image_encoder/config.json"):
            assert (converted / name).is_file(), name
        assert not list(converted.glob("*.bin")) and not list(converted.glob("*.bin.index.json"))
        assert len(index["weight_map"]) == 62

    def test_tensors_are_bit_identical(self, converted: Path, v2_checkpoint: Path) -> None:
        reference = load_file(str(v2_checkpoint / "model.safetensors"))
        got: dict[str, torch.Tensor] = {}
        for name in require_safetensors(converted).files:
            got.update(load_file(str(converted / name)))
        assert got.keys() == reference.keys()
        for key, tensor in reference.items():
            assert got[key].dtype == tensor.dtype and got[key].shape == tensor.shape, key
            assert torch.equal(_bits(got[key]), _bits(tensor)), key

    def test_manifest_matches_sha256sum(self, converted: Path) -> None:
        manifest = read_manifest(converted)
        assert set(manifest) == {str(p.relative_to(converted)) for p in converted.rglob("*")
                                 if p.is_file() and p.name != "SHA256SUMS"}
        result = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=converted,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_check_reports_a_verified_v2_checkpoint(self, converted: Path, v2_checkpoint: Path) -> None:
        from models.check import check_checkpoint
        from models.checkpoint import checkpoint_sha256

        report = check_checkpoint(converted)
        assert report["ok"], report["problems"]
        assert (report["version"], report["n_params"], report["dtype"]) == ("v2", 4_167_008, "bfloat16")
        assert report["missing_keys"] == report["unexpected_keys"] == report["mismatched_shapes"] == []
        assert report["hash_status"] == "verified"
        assert report["checkpoint_sha256"] == checkpoint_sha256(converted, compute=False)
        assert report["checkpoint_sha256"] != checkpoint_sha256(v2_checkpoint)  # different file layout

    def test_refuses_existing_destination_and_safetensors_source(self, converted: Path, pickle_v2_checkpoint: Path,
                                                                 v2_checkpoint: Path, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="already exists and is not empty"):
            convert_checkpoint(pickle_v2_checkpoint, converted)
        with pytest.raises(ModelError, match="already holds safetensors weights"):
            convert_checkpoint(v2_checkpoint, tmp_path / "out")

    def test_refuses_pickles_with_code(self, tmp_path: Path, v2_checkpoint: Path) -> None:
        import shutil

        src = tmp_path / "evil"
        src.mkdir()
        shutil.copy2(v2_checkpoint / "config.json", src / "config.json")
        torch.save({"w": torch.zeros(2), "extra": Path("x")}, src / "pytorch_model.bin")  # not a tensor type
        with pytest.warns(UnpicklingWarning), pytest.raises(CheckpointFormatError, match="refused by torch's safe unpickler"):
            convert_checkpoint(src, tmp_path / "out")
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


class TestCli:
    def test_check_pickle_folder_exits_2_naming_convert(self, pickle_v2_checkpoint: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
        assert cli_main(["model", "check", str(pickle_v2_checkpoint), "--json"]) == 2
        report = json.loads(capsys.readouterr().out)
        assert report["weights_format"] == "pickle" and report["missing_keys"] == report["unexpected_keys"] == []
        assert "medapp model convert" in report["problems"][0]

    def test_convert_then_check_then_list(self, pickle_v2_checkpoint: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        import os

        dst = Path(os.environ["MEDAPP_MODELS_DIR"]) / "tiny-v2"
        assert cli_main(["model", "convert", str(pickle_v2_checkpoint), str(dst)]) == 0
        captured = capsys.readouterr()
        assert "WARNING: unpickling 2 file(s)" in captured.err and f"converted to {dst}" in captured.out
        assert cli_main(["model", "check", str(dst)]) == 0
        out = capsys.readouterr().out
        assert "Dragonfly v2" in out and "4,167,008" in out and "hashes       verified" in out and "result       OK" in out
        assert cli_main(["model", "list"]) == 0
        assert f"dragonfly-v2-tiny-bin\tsafetensors\tmodels-dir\t{dst}" in capsys.readouterr().out  # source id kept

    def test_model_errors_are_one_line_exit_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli_main(["model", "check", str(tmp_path / "missing")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("medapp: ") and "no such checkpoint folder" in err and err.count("\n") == 1


def test_loading_refuses_pickle_then_loads_the_conversion(pickle_v2_checkpoint: Path, converted: Path) -> None:
    from models.loading import load_model

    with pytest.raises(PickleCheckpointError, match="medapp model convert"):
        load_model(pickle_v2_checkpoint, device="cpu")
    model, processor = load_model(converted, device="cpu", dtype="float32")
    assert model.config.version == "v2" and next(model.parameters()).dtype == torch.float32
    assert processor is not None


def test_convert_from_the_hf_cache_keeps_the_model_id(pickle_v2_checkpoint: Path, fake_hf_cache, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The official repos hold pickle shards: found in the cache, refused, converted by id, listed under that id."""
    from models.checkpoint import list_checkpoints, model_id_for, revision_for
    from models.loading import load_model

    repo_id = "togethercomputer/Llama-3.1-8B-Dragonfly-Med-v2"
    snapshot = fake_hf_cache(tmp_path / "hub", repo_id, pickle_v2_checkpoint, "f" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert [(e.model_id, e.weights_format) for e in list_checkpoints()] == [(repo_id, "pickle")]
    with pytest.raises(PickleCheckpointError, match=f"medapp model convert {snapshot}"):
        load_model(repo_id, device="cpu")
    dst = tmp_path / "med-v2"
    with pytest.warns(UnpicklingWarning):
        convert_checkpoint(repo_id, dst)
    assert (model_id_for(dst), revision_for(dst)) == (repo_id, "f" * 40)
    assert "medapp_conversion.json" in read_manifest(dst)
    monkeypatch.setenv("MEDAPP_MODELS_DIR", str(tmp_path))
    entries = [(e.model_id, e.weights_format, e.source) for e in list_checkpoints()]
    assert entries == [(repo_id, "safetensors", "models-dir"), (repo_id, "pickle", "hf-cache")]
