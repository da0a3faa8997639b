"""Device, dtype and 4-bit resolution: every mode this machine cannot run fails early with a clear error."""

from __future__ import annotations

import sys

import pytest
import torch

from models import devices
from models.devices import QUANT_SKIP_MODULES, bnb_4bit_config, plan_load, resolve_device, resolve_dtype
from models.errors import DeviceUnavailableError, ModelError, QuantizationUnavailableError


class TestResolveDevice:
    def test_cuda_without_cuda_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.raises(DeviceUnavailableError, match=r"'cuda' was requested but CUDA is not available.*--device cpu"):
            resolve_device("cuda")
        with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
            plan_load("cuda:0", "4bit")

    def test_auto_falls_back_to_cpu_only_when_asked_for_auto(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve_device("auto") == "cpu"
        assert resolve_device(None) == "cpu"
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        assert resolve_device("auto") == "cuda:0"
        assert resolve_device("CUDA") == "cuda:0"

    def test_cuda_index_out_of_range(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        with pytest.raises(DeviceUnavailableError, match=r"'cuda:1'.*only 1 CUDA device"):
            resolve_device("cuda:1")
        with pytest.raises(DeviceUnavailableError, match="not a valid CUDA device"):
            resolve_device("cuda:x")

    def test_unknown_device(self) -> None:
        with pytest.raises(DeviceUnavailableError, match=r"unknown device 'tpu'"):
            resolve_device("tpu")


class TestResolveDtype:
    def test_cuda_defaults_to_bf16(self) -> None:
        assert resolve_dtype("cuda:0", None, 8_000_000_000) == torch.bfloat16

    def test_cpu_picks_fp32_only_when_it_fits(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(devices, "_physical_ram_bytes", lambda: 24 * 1024**3)
        assert resolve_dtype("cpu", None, 4_167_008) == torch.float32
        assert resolve_dtype("cpu", None, 8_340_000_000) == torch.bfloat16  # 33 GB in fp32 > half of 24 GB
        assert resolve_dtype("cpu", "auto", 4_167_008) == torch.float32  # the settings' default spelling
        assert resolve_dtype("cuda:0", "auto", 4_167_008) == torch.bfloat16

    def test_explicit_names_and_aliases(self) -> None:
        assert resolve_dtype("cpu", "bf16", None) == torch.bfloat16
        assert resolve_dtype("cpu", "torch.float32", None) == torch.float32
        assert resolve_dtype("cpu", torch.bfloat16, None) == torch.bfloat16

    def test_bad_dtypes(self) -> None:
        with pytest.raises(ModelError, match="unknown dtype 'int4'"):
            resolve_dtype("cpu", "int4", None)
        with pytest.raises(ModelError, match="float16 is not supported on the CPU"):
            resolve_dtype("cpu", "float16", None)


class TestQuantisation:
    def test_nf4_double_quant_keeps_vision_projector_and_head(self) -> None:
        config = bnb_4bit_config("cpu", torch.float32)
        assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
        assert config.bnb_4bit_use_double_quant is True
        assert config.bnb_4bit_compute_dtype == torch.float32
        assert set(config.llm_int8_skip_modules) == {"image_encoder", "vision_embed_tokens", "lm_head"}
        assert tuple(config.llm_int8_skip_modules) == QUANT_SKIP_MODULES

    def test_plan_for_cpu_4bit(self) -> None:
        plan = plan_load("cpu", "4bit", "bf16", n_params=1000)
        assert (plan.device, plan.quant, plan.dtype_name) == ("cpu", "4bit", "bfloat16")
        assert plan.device_map() == {"": "cpu"}
        assert plan.quantization_config().bnb_4bit_compute_dtype == torch.bfloat16
        assert plan_load("cpu", "none", "fp32").quantization_config() is None

    def test_unknown_quant(self) -> None:
        with pytest.raises(QuantizationUnavailableError, match=r"unknown quantisation '8bit'.*none, 4bit"):
            plan_load("cpu", "8bit")

    def test_missing_bitsandbytes_is_reported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
        with pytest.raises(QuantizationUnavailableError, match="needs the bitsandbytes package.*--quant none"):
            plan_load("cpu", "4bit")

    def test_old_bitsandbytes_on_cpu_is_reported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import types

        monkeypatch.setitem(sys.modules, "bitsandbytes", types.SimpleNamespace(__version__="0.43.1"))
        with pytest.raises(QuantizationUnavailableError, match=r"CPU needs bitsandbytes >= 0\.48 \(installed: 0\.43\.1\)"):
            bnb_4bit_config("cpu", torch.float32)


def test_engine_on_cuda_without_cuda_fails_before_loading(v2_checkpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.engine import DragonflyEngine
    from models.loading import load_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    import models.modeling_dragonfly as modeling

    monkeypatch.setattr(modeling.DragonflyForCausalLM, "from_pretrained",
                        classmethod(lambda cls, *a, **k: pytest.fail("weights were loaded")))
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        DragonflyEngine.from_pretrained(v2_checkpoint, device="cuda")
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        load_model(v2_checkpoint, device="cuda", quant="4bit")


@pytest.mark.gpu
def test_engine_on_cuda_answers_like_on_the_cpu(v2_checkpoint) -> None:
    """On a GPU workstation: the tiny v2 engine in float32 on CUDA gives the CPU's greedy tokens."""
    from PIL import Image

    from models.engine import DragonflyEngine

    image = Image.new("RGB", (96, 64), (40, 90, 140))
    answers = [
        DragonflyEngine.from_pretrained(v2_checkpoint, device=device, dtype="float32")
        .generate(image, [], "What is shown?", max_new_tokens=4).token_ids
        for device in ("cpu", "cuda")
    ]
    assert answers[0] == answers[1]
