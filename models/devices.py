"""Device, dtype and 4-bit choices for loading Dragonfly, with a clear error for every mode this machine cannot run.

Why a module of its own: the same three questions (which device, which dtype, which quantisation) are asked by the
loader, the engine, `medapp model check` and the settings dialog, and the answers must agree everywhere. Everything
here resolves *before* any weight is read, so a wrong choice fails in milliseconds instead of after a 16 GB load.

Policy (see the README's "Hardware" section):

* ``device="auto"`` picks CUDA when torch sees a GPU, otherwise the CPU. ``"cuda"`` / ``"cuda:N"`` without such a
  GPU raises :class:`~models.errors.DeviceUnavailableError`; it never silently falls back to the CPU, because a user
  who asked for the GPU would otherwise wait minutes for an answer without knowing why.
* dtype: CUDA runs bfloat16. The CPU runs float32 when the weights fit comfortably in RAM in float32 (exact, and
  float32 GEMV is faster than bf16 GEMV on CPUs without bf16 vector units), otherwise bfloat16 (the 8B model is 33 GB
  in float32, 16.7 GB in bf16).
* ``quant="4bit"``: NF4 with double quantisation through transformers' ``BitsAndBytesConfig``. The vision tower
  (``image_encoder``), the projector (``vision_embed_tokens``) and ``lm_head`` stay unquantised: the official forward
  casts pixels to the projector's weight dtype, which would be uint8 for a packed 4-bit layer and destroy the image;
  ``lm_head`` is kept for logit fidelity (it is 1 GB of an 8B model's 16 GB, and the standard bitsandbytes advice).
  bitsandbytes >= 0.48 runs NF4 on the CPU too. (Its import warns that the optional ``kernels`` package is missing:
  do NOT install it, it downloads code from the Hugging Face hub at run time.)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.errors import DeviceUnavailableError, ModelError, QuantizationUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DEVICES",
    "QUANTS",
    "DTYPES",
    "QUANT_SKIP_MODULES",
    "LoadPlan",
    "resolve_device",
    "resolve_dtype",
    "bnb_4bit_config",
    "plan_load",
]

DEVICES = ("auto", "cpu", "cuda")
QUANTS = ("none", "4bit")
DTYPES = ("float32", "bfloat16", "float16")
# Substrings of module names that bitsandbytes must leave as plain nn.Linear (see the module docstring).
QUANT_SKIP_MODULES = ("image_encoder", "vision_embed_tokens", "lm_head")
# The CPU runs float32 only if the float32 weights take at most this share of physical RAM.
_FP32_RAM_SHARE = 0.5
_MIN_BNB_CPU = (0, 48)


@dataclass(frozen=True)
class LoadPlan:
    """Everything `from_pretrained` needs, resolved and validated: device string, torch dtype, quant name."""

    device: str  # "cpu" or "cuda:N"
    dtype: torch.dtype
    quant: str  # "none" | "4bit"

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def device_map(self) -> dict[str, str]:
        """Everything on one device: accelerate's offloading would hide a too-small GPU behind a very slow run."""
        return {"": self.device}

    def quantization_config(self) -> Any:
        return bnb_4bit_config(self.device, self.dtype) if self.quant == "4bit" else None


def resolve_device(device: str | None) -> str:
    """Map "auto" / "cpu" / "cuda" / "cuda:N" to a concrete torch device string, or raise DeviceUnavailableError."""
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
            raise DeviceUnavailableError(
                f"device {device!r} was requested but CUDA is not available here ({build}, "
                f"{'no GPU visible' if torch.version.cuda else 'no CUDA support'}); use --device cpu or install the "
                "CUDA build of torch on a machine with an NVIDIA GPU (see README)"
            )
        index_text = name.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise DeviceUnavailableError(f"device {device!r} is not a valid CUDA device name (expected cuda or cuda:N)")
        index, count = int(index_text), torch.cuda.device_count()
        if index >= count:
            raise DeviceUnavailableError(f"device {device!r} was requested but only {count} CUDA device(s) exist")
        return f"cuda:{index}"
    raise DeviceUnavailableError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)} (or cuda:N)")


def _physical_ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX: unknown
        return None


def resolve_dtype(device: str, dtype: str | torch.dtype | None, n_params: int | None = None) -> torch.dtype:
    """The compute dtype: the caller's choice if valid on `device`; None or "auto": bf16 on CUDA, fp32/bf16 on CPU by RAM."""
    import torch

    if isinstance(dtype, str) and dtype.strip().lower() in ("", "auto"):
        dtype = None
    if dtype is not None:
        if isinstance(dtype, torch.dtype):
            chosen = dtype
        else:
            key = str(dtype).strip().lower().removeprefix("torch.")
            aliases = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
            key = aliases.get(key, key)
            if key not in DTYPES:
                raise ModelError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
            chosen = getattr(torch, key)
        if chosen == torch.float16 and device == "cpu":
            raise ModelError("dtype float16 is not supported on the CPU (use float32 or bfloat16)")
        if chosen not in (torch.float32, torch.bfloat16, torch.float16):
            raise ModelError(f"unsupported dtype {chosen}: choose one of {', '.join(DTYPES)}")
        return chosen
    if device.startswith("cuda"):
        return torch.bfloat16
    ram = _physical_ram_bytes()
    if n_params is None or ram is None:
        return torch.float32 if n_params is not None and n_params < 1e9 else torch.bfloat16
    return torch.float32 if n_params * 4 <= _FP32_RAM_SHARE * ram else torch.bfloat16


def _import_bitsandbytes() -> Any:
    """Import bitsandbytes quietly, or explain why 4-bit is not available."""
    import logging

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*kernels.*")
            logger = logging.getLogger("bitsandbytes")
            level = logger.level
            logger.setLevel(logging.ERROR)  # the "pip install kernels" hint: never act on it (it downloads)
            try:
                import bitsandbytes
            finally:
                logger.setLevel(level)
    except Exception as exc:  # ImportError, or a broken native library
        raise QuantizationUnavailableError(
            f"4-bit needs the bitsandbytes package, which cannot be imported here ({type(exc).__name__}: {exc}); "
            "use --quant none"
        ) from exc
    return bitsandbytes


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def bnb_4bit_config(device: str, compute_dtype: torch.dtype) -> Any:
    """NF4 + double quantisation, vision tower / projector / lm_head unquantised; raises if 4-bit cannot run here."""
    import torch

    bnb = _import_bitsandbytes()
    version = getattr(bnb, "__version__", "0")
    if device == "cpu" and _version_tuple(version) < _MIN_BNB_CPU:
        raise QuantizationUnavailableError(
            f"4-bit on the CPU needs bitsandbytes >= {'.'.join(map(str, _MIN_BNB_CPU))} (installed: {version}); "
            "use --quant none or upgrade bitsandbytes"
        )
    if device.startswith("cuda") and not torch.cuda.is_available():  # resolve_device normally catches this first
        raise DeviceUnavailableError("4-bit on CUDA was requested but CUDA is not available")
    if compute_dtype == torch.float16 and device == "cpu":
        raise QuantizationUnavailableError("4-bit on the CPU computes in float32 or bfloat16, not float16")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=list(QUANT_SKIP_MODULES),
    )


def plan_load(
    device: str | None = "auto", quant: str | None = "none", dtype: str | torch.dtype | None = None,
    n_params: int | None = None,
) -> LoadPlan:
    """Validate the whole request up front: device, dtype and quantisation, raising the matching ModelError."""
    q = (quant or "none").strip().lower()
    if q in ("4", "4-bit", "nf4"):
        q = "4bit"
    if q not in QUANTS:
        raise QuantizationUnavailableError(f"unknown quantisation {quant!r}: choose one of {', '.join(QUANTS)}")
    dev = resolve_device(device)
    dt = resolve_dtype(dev, dtype, n_params)
    plan = LoadPlan(device=dev, dtype=dt, quant=q)
    if q == "4bit":
        plan.quantization_config()  # raises now if bitsandbytes cannot serve this device
    return plan
