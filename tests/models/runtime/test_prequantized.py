"""Pre-quantised NF4 checkpoints: `medapp model convert SRC DST --quant 4bit`, loading them without quantising,
the loader's choice of such a folder for `--quant 4bit`, and `model check` on them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import bitsandbytes as bnb  # a declared dependency: a missing one must fail, not skip
import pytest
import torch
from PIL import Image

from medapp.cli import main as cli_main
from models.check import check_checkpoint
from models.checkpoint import checkpoint_sha256, count_parameters, list_checkpoints
from models.errors import CheckpointFormatError, ModelError, PickleCheckpointError, QuantizationUnavailableError
from models.loading import LoadedCheckpoint, load
from models.memory import mapped_ranges
from models.prequantized import QUANT_STATE_SUFFIXES, find_prequantized, prequantized_info
from models.prompts import build_prompt

QUESTION = "Provide a brief description of the given image."


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, v2_checkpoint: Path) -> tuple[Path, Path]:
    """(source, pre-quantised copy written by the CLI next to it)."""
    base = tmp_path_factory.mktemp("prequant")
    src = base / "dragonfly-v2-tiny"
    shutil.copytree(v2_checkpoint, src)
    dst = base / "dragonfly-v2-tiny-nf4"
    assert cli_main(["model", "convert", str(src), str(dst), "--quant", "4bit"]) == 0
    return src, dst


@pytest.fixture
def quantise_calls() -> Iterator[list[int]]:
    """Counts bitsandbytes' quantiser calls (the one function both quantise-on-load paths end in)."""
    calls: list[int] = []
    real = bnb.functional.quantize_4bit

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(bnb.functional, "quantize_4bit", counting):
        yield calls


def _last8_logits(loaded: LoadedCheckpoint, golden_dir: Path) -> torch.Tensor:
    image = Image.open(golden_dir / "cases-v2" / "pub_512x512.png").convert("RGB")
    inputs = loaded.processor(text=[build_prompt(QUESTION)], images=[image], return_tensors="pt", is_generate=True)
    with torch.inference_mode():
        return loaded.model(**inputs).logits[0, -8:].float()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_reloads_without_quantising_and_gives_the_quantise_on_load_logits(
    pair: tuple[Path, Path], golden_dir: Path, dtype: str, quantise_calls: list[int],
) -> None:
    src, dst = pair
    on_load = load(src, device="cpu", quant="4bit", dtype=dtype, prequantized=False)
    assert on_load.folder == src.resolve() and len(quantise_calls) == 14  # the patch sees quantise-on-load work
    quantise_calls.clear()
    pre = load(dst, device="cpu", quant="4bit", dtype=dtype)
    assert quantise_calls == []  # nothing quantised again
    assert pre.folder == dst.resolve() and pre.plan.quant == "4bit"
    assert pre.n_params == on_load.n_params == 4_167_008
    four_bit = {n: m for n, m in pre.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    reference = dict(on_load.model.named_modules())
    assert len(four_bit) == 14 and all(n.startswith("language_model.model.layers.") for n in four_bit)
    for name, module in four_bit.items():
        ref = reference[name]
        assert torch.equal(module.weight.data, ref.weight.data), name  # the same packed codes
        assert torch.equal(module.weight.quant_state.absmax, ref.weight.quant_state.absmax), name
        assert module.weight.quant_state.nested and module.compute_dtype == getattr(torch, dtype)
    dense = {n: p.dtype for n, p in pre.model.named_parameters() if getattr(p, "quant_state", None) is None}
    assert dense and set(dense.values()) == {getattr(torch, dtype)}
    assert torch.equal(_last8_logits(pre, golden_dir), _last8_logits(on_load, golden_dir))
    # the pre-quantised load owns its tensors too: no part of the weight file stays mapped (models.memory)
    assert mapped_ranges(sorted(dst.glob("*.safetensors"))) == []


def test_quant_4bit_picks_the_prequantised_copy_of_that_checkpoint(pair: tuple[Path, Path],
                                                                   quantise_calls: list[int]) -> None:
    src, dst = pair
    assert find_prequantized(src) == dst.resolve()
    loaded = load(src, device="cpu", quant="4bit", dtype="float32")
    assert loaded.folder == dst.resolve() and quantise_calls == []
    assert loaded.model_id == "dragonfly-v2-tiny"  # provenance names the source model
    assert load(src, device="cpu", quant="none", dtype="float32").folder == src.resolve()
    with pytest.raises(QuantizationUnavailableError, match="pre-quantised 4-bit.*--quant 4bit"):
        load(dst, device="cpu", quant="none")


def test_a_copy_made_from_other_weights_is_not_picked(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = pair
    other = tmp_path / "edited"
    shutil.copytree(src, other)
    (other / "SHA256SUMS").unlink(missing_ok=True)
    with open(other / "model.safetensors", "r+b") as fh:  # one byte of tensor data changed: another checkpoint
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    shutil.copytree(dst, tmp_path / "edited-nf4")  # a sibling whose record names the original's hash
    assert find_prequantized(other) is None
    assert find_prequantized(tmp_path / "edited-nf4") == (tmp_path / "edited-nf4").resolve()


def test_folder_is_the_standard_format_with_manifest_and_record(pair: tuple[Path, Path]) -> None:
    from safetensors import safe_open

    src, dst = pair
    config = json.loads((dst / "config.json").read_text())
    source_config = json.loads((src / "config.json").read_text())
    quant = config.pop("quantization_config")
    assert config == source_config  # official layout otherwise unchanged
    assert quant["quant_method"] == "bitsandbytes" and quant["load_in_4bit"] and quant["bnb_4bit_quant_type"] == "nf4"
    assert quant["bnb_4bit_use_double_quant"] is True
    assert quant["llm_int8_skip_modules"] == ["image_encoder", "vision_embed_tokens", "lm_head"]
    assert prequantized_info(dst) == quant and prequantized_info(src) is None
    with safe_open(str(dst / "model.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
        q = "language_model.model.layers.0.self_attn.q_proj.weight"
        assert {q + s for s in QUANT_STATE_SUFFIXES} <= keys
        assert fh.get_slice(q).get_dtype() == "U8" and fh.get_slice(q).get_shape() == [128, 1]  # 16×16 codes / 2
        assert fh.get_slice("language_model.lm_head.weight").get_dtype() == "BF16"
        assert "image_encoder.vision_model.post_layernorm.weight" in keys  # official names, CLIP dense
    assert not [p for p in dst.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    record = json.loads((dst / "medapp_conversion.json").read_text())
    assert record["source_sha256"] == checkpoint_sha256(src) and record["source_path"] == str(src.resolve())
    assert record["tool"] == "medapp model convert --quant 4bit"
    assert record["quantization"]["skip_modules"] == quant["llm_int8_skip_modules"]
    result = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=dst, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_transformers_alone_loads_it_without_quantising(pair: tuple[Path, Path], quantise_calls: list[int]) -> None:
    from transformers import AutoModelForCausalLM

    import models.auto  # noqa: F401  (registers the Auto classes)

    model = AutoModelForCausalLM.from_pretrained(str(pair[1]), device_map={"": "cpu"}, local_files_only=True)
    assert quantise_calls == []
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 14


def test_check_knows_both_kinds(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = pair
    dense, packed = check_checkpoint(src), check_checkpoint(dst)
    assert dense["ok"] and dense["quantization"] is None
    assert packed["ok"], packed["problems"]
    assert packed["quantization"] == "nf4" and packed["hash_status"] == "verified"
    assert packed["n_params"] == dense["n_params"] == count_parameters(dst) == 4_167_008
    assert packed["dtype"] == "bfloat16" and packed["dtypes"]["uint8"] == 14 * 3  # weight, absmax, state
    assert packed["missing_keys"] == packed["unexpected_keys"] == packed["mismatched_shapes"] == []
    assert cli_main(["model", "check", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "quantised    NF4 4-bit" in out and "result       OK" in out


def test_check_and_loader_refuse_a_missing_quant_state(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(pair[1], broken)
    (broken / "SHA256SUMS").unlink()
    tensors = load_file(str(broken / "model.safetensors"))
    gone = "language_model.model.layers.1.mlp.down_proj.weight.absmax"
    del tensors[gone]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    report = check_checkpoint(broken, verify_hashes=False)
    assert not report["ok"] and report["missing_keys"] == [gone]
    with pytest.raises(CheckpointFormatError, match=f"missing keys: {gone}"):
        load(broken, device="cpu", quant="4bit", dtype="float32")


def test_convert_refuses_a_prequantised_source_and_list_marks_it(pair: tuple[Path, Path], tmp_path: Path,
                                                               pickle_v2_checkpoint: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from models.quantize import quantize_checkpoint

    src, dst = pair
    with pytest.raises(PickleCheckpointError, match=r"medapp model convert .*; then quantise .*--quant 4bit"):
        quantize_checkpoint(pickle_v2_checkpoint, tmp_path / "from-pickle")
    with pytest.raises(ModelError, match="already holds pre-quantised 4-bit weights"):
        quantize_checkpoint(dst, tmp_path / "again")
    with pytest.raises(ModelError, match="already exists and is not empty"):
        quantize_checkpoint(src, dst)
    shelf = tmp_path / "shelf"  # names that sort the copy first: the order must come from what the folders hold
    shutil.copytree(dst, shelf / "a-nf4")
    shutil.copytree(src, shelf / "b-dense")
    entries = list_checkpoints(extra_dirs=[shelf])
    assert [(e.path.name, e.quantization) for e in entries] == [("b-dense", None), ("a-nf4", "nf4")]
    models_dir = Path(os.environ["MEDAPP_MODELS_DIR"])
    shutil.copytree(dst, models_dir / "tiny-nf4")
    assert cli_main(["model", "list"]) == 0
    assert f"dragonfly-v2-tiny\tsafetensors-nf4\tmodels-dir\t{models_dir / 'tiny-nf4'}" in capsys.readouterr().out


def test_settings_with_quant_4bit_load_the_prequantised_copy(pair: tuple[Path, Path],
                                                             quantise_calls: list[int]) -> None:
    from medapp.model_holder import ModelHolder
    from medapp.settings import Settings

    src, dst = pair
    holder = ModelHolder(Settings(model_dir=str(src), device="cpu", quant="4bit", dtype="float32"))
    info = holder.get().info
    assert quantise_calls == []
    assert (info.quant, info.dtype, info.model_id) == ("4bit", "float32", "dragonfly-v2-tiny")
    assert info.checkpoint_sha256 == checkpoint_sha256(dst) != checkpoint_sha256(src)  # provenance: what ran
