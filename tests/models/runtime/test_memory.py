"""Memory that matches the weights (issue #12 item 2): after a load no tensor views the safetensors mapping, and the
process's resident memory grows by the parameter bytes (within 10 %), for NF4 and bf16 on the CPU.

The model is real-shaped where memory is decided: hidden 1024, the full Llama-3 vocabulary (128256, so the
unquantised embeddings and lm_head are 263 MB each in bf16, as in the 8B model they dominate what stays dense),
Llama-3-8B's MLP width, two layers and the tiny CLIP. Loading it keeps one mapping of the whole 712 MB file alive
through the embedding views unless `models.memory.own_weight_storages` runs: measured before that pass (NF4, every
page read once) the process grew by 1.42× the parameter bytes and the whole file stayed mapped.

Each load is measured in a fresh subprocess: RSS after loading and reading every parameter page once, minus the RSS
of the same process after importing torch / transformers / bitsandbytes and loading the processor (the runtime).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from models.memory import format_bytes, mapped_ranges, memory_report, own_weight_storages, parameter_bytes

BOUND = 0.10  # the "within 10 % of the parameter bytes plus the runtime"

_MEASURE = r"""
import gc, json, os, sys, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(2)
import transformers, bitsandbytes
import models.auto
from models.loading import load
from models.memory import mapped_ranges, parameter_bytes, resident_bytes

import time
folder, warm_up, quant = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
# The runtime: everything a load allocates besides the weights (tokenizer, transformers' and bitsandbytes' state),
# taken from loading the tiny checkpoint the same way once.
warm = load(warm_up, device="cpu", quant=quant, dtype="bfloat16")
del warm
gc.collect()
base = resident_bytes()
t1 = time.perf_counter()
loaded = load(folder, device="cpu", quant=quant, dtype="bfloat16")
gc.collect()
t2 = time.perf_counter()
with torch.no_grad():  # read one element per page of every tensor: resident as if the model had run
    for t in [*loaded.model.parameters(), *loaded.model.buffers()]:
        flat = t.detach().reshape(-1)
        float(flat[:: max(1, 4096 // t.element_size())].float().sum())
after = resident_bytes()
weights = os.path.join(folder, "model.safetensors")
print(json.dumps({
    "base": base, "after": after, "params": parameter_bytes(loaded.model),
    "mapped": sum(end - start for start, end in mapped_ranges([weights])),
    "seconds": [round(t1 - t0, 1), round(t2 - t1, 1), round(time.perf_counter() - t2, 1)],
    "dtypes": sorted({str(p.dtype) for p in loaded.model.parameters()}),
    "owned": all(p.untyped_storage().nbytes() == p.numel() * p.element_size() and p.is_contiguous()
                 for p in loaded.model.parameters()),
}))
"""


@pytest.fixture(scope="module")
def real_shaped_checkpoint(tmp_path_factory: pytest.TempPathFactory, golden_dir: Path) -> Path:
    """A Dragonfly v2 checkpoint with hidden 1024, vocab 128256, MLP 14336, 2 layers, tiny CLIP; bf16 safetensors."""
    import torch
    from safetensors.torch import save_file

    from models.configuration_dragonfly import DragonflyConfig
    from models.modeling_dragonfly import DragonflyForCausalLM

    src = golden_dir / "dragonfly-v2-tiny"
    dst = tmp_path_factory.mktemp("real-shaped") / "dragonfly-1024"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "keys.txt"))
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    shape = {"hidden_size": 1024, "intermediate_size": 14336, "num_attention_heads": 8, "num_key_value_heads": 2,
             "num_hidden_layers": 2}
    config.update(shape)
    config["text_config"] = {**config["text_config"], **shape, "head_dim": 128}
    (dst / "config.json").chmod(0o644)
    (dst / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    with torch.device("meta"):
        model = DragonflyForCausalLM(DragonflyConfig.from_pretrained(str(dst)))
    generator = torch.Generator().manual_seed(0)
    tensors = {key: (torch.randn(value.shape, generator=generator, dtype=torch.bfloat16) * 0.02).contiguous()
               for key, value in model.state_dict().items()}  # the official key names (models.modeling_dragonfly)
    assert tensors["language_model.model.embed_tokens.weight"].shape == (128256, 1024)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    del tensors, model
    return dst


def _measure(folder: Path, warm_up: Path, quant: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(folder), str(warm_up), quant], capture_output=True, text=True,
                            timeout=500, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("quant,dtypes", [("4bit", ["torch.bfloat16", "torch.uint8"]), ("none", ["torch.bfloat16"])])
def test_resident_memory_matches_the_parameter_bytes(real_shaped_checkpoint: Path, v2_checkpoint: Path, quant: str,
                                                     dtypes: list[str]) -> None:
    m = _measure(real_shaped_checkpoint, v2_checkpoint, quant)
    grown = m["after"] - m["base"]
    print(f"{quant}: parameters {format_bytes(m['params'])}, RSS grew {format_bytes(grown)} "
          f"({grown / m['params']:.3f}×) over a runtime of {format_bytes(m['base'])}; seconds {m['seconds']}")
    assert m["dtypes"] == dtypes  # NF4 really replaced the decoder's linears (uint8), the rest stayed bf16
    assert m["mapped"] == 0  # no mapping of the weight file survives the load
    assert m["owned"]  # every parameter is contiguous in a storage of its own size
    assert abs(grown - m["params"]) <= BOUND * m["params"], (grown, m["params"])


def test_views_into_a_mapped_file_get_owned_copies_and_the_mapping_goes(tmp_path: Path) -> None:
    """The pass itself, on a file mapped by safetensors the way transformers maps it: tied tensors stay tied."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from torch import nn

    file = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(4096, dtype=torch.float32).reshape(64, 64), "b": torch.ones(64)}, str(file))
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64))
    with safe_open(str(file), framework="pt") as fh:
        a, b = fh.get_tensor("a"), fh.get_tensor("b")
    model[0].weight.data, model[0].bias.data = a, b
    model[1].weight = model[0].weight  # tied
    model[1].register_buffer("table", a)
    del a, b
    ranges = mapped_ranges([file])
    assert ranges, "safetensors no longer maps the file: this test no longer exercises the views"
    param = model[0].weight
    copied = own_weight_storages(model, [file])
    assert copied == 64 * 64 * 4 + 64 * 4  # each distinct tensor once: the tied weight and the buffer share a copy
    assert model[0].weight is param and model[1].weight is param  # same Parameter objects, still tied
    assert model[1].table.data_ptr() == param.data_ptr()
    assert torch.equal(param, torch.arange(4096, dtype=torch.float32).reshape(64, 64))
    assert mapped_ranges([file]) == []
    assert own_weight_storages(model, [file]) == 0  # nothing left to do


def test_quantisation_state_read_from_the_file_is_owned_too(tmp_path: Path) -> None:
    """A pre-quantised NF4 checkpoint stores the 4-bit scales as tensors of their own: they must not keep the file
    mapped either (the state here is a stand-in with bitsandbytes' QuantState attribute names)."""
    from types import SimpleNamespace

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from torch import nn

    file = tmp_path / "q.safetensors"
    save_file({"packed": torch.arange(256, dtype=torch.uint8), "absmax": torch.full((8,), 3, dtype=torch.uint8),
               "absmax2": torch.ones(2), "code": torch.linspace(-1, 1, 16)}, str(file))
    with safe_open(str(file), framework="pt") as fh:
        packed, absmax, absmax2, code = (fh.get_tensor(k) for k in ("packed", "absmax", "absmax2", "code"))
    module = nn.Module()
    module.weight = nn.Parameter(packed, requires_grad=False)
    module.weight.quant_state = SimpleNamespace(absmax=absmax, code=code, offset=None,
                                                state2=SimpleNamespace(absmax=absmax2, code=code))
    del packed, absmax, absmax2, code
    assert mapped_ranges([file])
    assert own_weight_storages(module, [file]) == 256 + 8 + 2 * 4 + 16 * 4  # the shared code copied once
    state = module.weight.quant_state
    assert state.code is state.state2.code and torch.equal(state.absmax, torch.full((8,), 3, dtype=torch.uint8))
    assert mapped_ranges([file]) == []


def test_parameter_bytes_counts_tied_weights_once() -> None:
    from torch import nn

    model = nn.Sequential(nn.Linear(8, 4, bias=False), nn.Linear(8, 4, bias=False), nn.Linear(4, 8, bias=False))
    model[1].weight = model[0].weight
    assert parameter_bytes(model) == 2 * 8 * 4 * 4


def test_nf4_parameter_bytes_include_the_quantisation_state(golden_dir: Path) -> None:
    from models.loading import load

    loaded = load(golden_dir / "dragonfly-v2-tiny", device="cpu", quant="4bit", dtype="bfloat16")
    packed = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    assert parameter_bytes(loaded.model) > packed  # absmax and codes of every 4-bit layer


def test_mapped_ranges_is_none_where_the_maps_cannot_be_read(tmp_path: Path) -> None:
    assert mapped_ranges([tmp_path], maps=tmp_path / "no-such-maps") is None


class TestReport:
    def test_cpu_report_has_rss_and_no_cuda_peak(self) -> None:
        from torch import nn

        report = memory_report(nn.Linear(256, 256), "cpu")
        assert report.parameter_bytes == (256 * 256 + 256) * 4
        assert report.resident_bytes is not None and report.resident_bytes > report.parameter_bytes
        assert report.cuda_max_allocated is None and report.cuda_allocated is None and report.note == ""
        text = "\n".join(report.lines())
        assert "process RSS" in text and "cuda" not in text
        assert json.loads(json.dumps(report.as_dict()))["device"] == "cpu"

    def test_cuda_requested_where_cuda_is_unavailable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import torch
        from torch import nn

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # true on this machine; forced on a GPU one
        report = memory_report(nn.Linear(4, 4), "cuda:0")
        assert report.cuda_max_allocated is None
        assert "not available" in report.note and "not available" in "\n".join(report.lines())

    def test_cuda_peak_is_read_from_the_device_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Plumbing only (no GPU here): the report asks torch for the peak of the device it was given."""
        import torch
        from torch import nn

        asked: list[int] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: asked.append(i) or 3_000_000_000)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: 2_000_000_000)
        report = memory_report(nn.Linear(4, 4), "cuda:1")
        assert asked == [1] and report.cuda_max_allocated == 3_000_000_000
        assert "cuda peak    3.00 GB (torch.cuda.max_memory_allocated), now 2.00 GB" in report.lines()

    @pytest.mark.gpu
    def test_cuda_load_reports_its_peak(self, golden_dir: Path) -> None:
        from models.loading import load

        loaded = load(golden_dir / "dragonfly-v2-tiny", device="cuda", quant="4bit", dtype="bfloat16")
        report = memory_report(loaded.model, loaded.plan.device)
        assert report.cuda_max_allocated is not None and report.cuda_max_allocated >= report.parameter_bytes

    def test_format_bytes(self) -> None:
        assert format_bytes(None) == "unknown" and format_bytes(6_400_000_000) == "6.40 GB"
        assert format_bytes(512_000) == "0.5 MB"


class TestCheckLoad:
    """`medapp model check DIR --load`: the checkpoint report, then the memory of a real load."""

    def test_json_has_the_memory_of_the_load(self, v2_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
        from medapp.cli import main as cli_main

        args = ["model", "check", str(v2_checkpoint), "--no-hash", "--load", "--device", "cpu", "--quant", "4bit",
                "--dtype", "bfloat16", "--json"]
        assert cli_main(args) == 0
        memory = json.loads(capsys.readouterr().out)["memory"]
        assert memory["device"] == "cpu" and memory["quant"] == "4bit" and memory["dtype"] == "bfloat16"
        assert memory["parameter_bytes"] > 8_000_000  # the 128256 × 16 bf16 embeddings and lm_head alone are 8.2 MB
        assert memory["resident_bytes"] > memory["parameter_bytes"]
        assert memory["mapped_weight_bytes"] == 0 and memory["cuda_max_allocated"] is None

    def test_text_lines(self, v2_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
        from medapp.cli import main as cli_main

        assert cli_main(["model", "check", str(v2_checkpoint), "--no-hash", "--load", "--device", "cpu",
                         "--quant", "none", "--dtype", "float32"]) == 0
        out = capsys.readouterr().out
        assert "result       OK" in out and "loaded       none float32 on cpu in " in out
        assert "parameters   16.7 MB on cpu" in out and "(process RSS)" in out and "cuda" not in out

    def test_a_checkpoint_that_is_not_ok_is_not_loaded(self, tmp_path: Path, v2_checkpoint: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
        from medapp.cli import main as cli_main

        broken = tmp_path / "broken"
        shutil.copytree(v2_checkpoint, broken)
        config = json.loads((broken / "config.json").read_text(encoding="utf-8"))
        config["text_config"]["num_hidden_layers"] = 3  # a layer the weights do not have
        (broken / "config.json").chmod(0o644)
        (broken / "config.json").write_text(json.dumps(config), encoding="utf-8")
        assert cli_main(["model", "check", str(broken), "--no-hash", "--load", "--device", "cpu", "--json"]) == 2
        report = json.loads(capsys.readouterr().out)
        assert report["missing_keys"] and "memory" not in report
