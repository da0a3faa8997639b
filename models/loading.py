"""Load a Dragonfly checkpoint into a model and a processor: validated, offline, strict, safetensors only.

Why these rules:

* **Offline, always.** `models.offline` forces ``HF_HUB_OFFLINE``; on top of that every call here passes
  ``local_files_only=True``. The checkpoint is resolved by `models.checkpoint` (a folder, or a snapshot in the local
  Hugging Face cache); nothing is ever downloaded. The official configs name the CLIP encoder by hub id, but its
  weights are inside the Dragonfly checkpoint, so no separate CLIP download is needed (`models.variants` knows the
  official encoders' shapes).
* **Safetensors only.** The official checkpoints are pickle ``.bin`` files; unpickling runs code chosen by whoever
  wrote the file. Loading refuses them with :class:`PickleCheckpointError`, which names the one-time conversion
  (`medapp model convert SRC DST`, :mod:`models.convert`). ``torch.load`` is called nowhere else.
* **Strict.** Missing, unexpected or mis-shaped weights are an error, never silently random-initialised layers; the
  error lists the tensors (from `models.check`, which reads only the headers).
* **Integrity.** When the folder has a ``SHA256SUMS`` manifest (written by convert) every load checks that the listed
  files are there and that no cached hash disagrees; a full re-hash is `medapp model check`'s job.
* **Pre-quantised when possible.** ``quant="4bit"`` loads a pre-quantised NF4 folder made from the requested
  checkpoint (`models.prequantized.find_prequantized`, written by `medapp model convert SRC DST --quant 4bit`) when
  one exists, instead of quantising on every load; a pre-quantised folder asked for with ``quant="none"`` is an
  error (it cannot be un-quantised), never a silent 4-bit run.

Where checkpoints are found, their ids and hashes: `models.checkpoint`; `medapp model check`: `models.check`;
conversion: `models.convert` (pickle → safetensors). This module only loads (and depends on those, never the other way
round); `models.quantize` (→ pre-quantised NF4) builds on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.check import check_checkpoint
from models.checkpoint import count_parameters, model_id_for, read_config, require_safetensors, resolve_checkpoint
from models.devices import LoadPlan, plan_load
from models.errors import CheckpointFormatError, ModelError, QuantizationUnavailableError
from models.manifest import HashCache, raise_for_report, verify_files
from models.memory import own_weight_storages, reset_peak_memory
from models.prequantized import find_prequantized, prequantized_info
from models.strict import loading_info_problems, problem_lines, weights_error

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LoadedCheckpoint", "load", "load_model"]


@dataclass
class LoadedCheckpoint:
    """A loaded model with everything the engine reports about it."""

    model: Any
    processor: Any
    folder: Path
    plan: LoadPlan
    n_params: int
    model_id: str


def _loading_problems(info: dict[str, Any] | None) -> list[str]:
    return loading_info_problems(info)


def _key_problems(folder: Path) -> list[str]:
    """Missing / unexpected / mis-shaped tensors against the config (headers only), as short sentences."""
    try:
        report = check_checkpoint(folder, verify_hashes=False)
    except ModelError:
        return []
    return problem_lines(report, ("missing_keys", "unexpected_keys", "mismatched_shapes"))


def load(
    path: str | os.PathLike[str], device: str = "auto", quant: str = "none",
    dtype: str | torch.dtype | None = None, *, verify: str = "fast", hash_cache: HashCache | None = None,
    prequantized: bool = True,
) -> LoadedCheckpoint:
    """Resolve, validate and load a checkpoint. `verify`: "fast" (every load), "full" (re-hash) or "none".

    `prequantized`: with quant "4bit", load a pre-quantised folder made from this checkpoint when there is one.
    """
    folder = resolve_checkpoint(path)
    folder, pre = _prequantized_choice(folder, quant, prequantized, hash_cache)
    read_config(folder)
    files = require_safetensors(folder)
    if verify not in ("fast", "full", "none"):
        raise ModelError(f"unknown verify mode {verify!r}: choose fast, full or none")
    if verify != "none":
        report = verify_files(folder, files.files, full=verify == "full", cache=hash_cache or HashCache())
        raise_for_report(folder, report)
    n_params = count_parameters(folder)
    plan = plan_load(device, quant, dtype, n_params=n_params)

    from models.auto import DragonflyForCausalLM, DragonflyProcessor  # the torch side, with the Auto classes registered

    kwargs: dict[str, Any] = {
        "dtype": plan.dtype,
        "device_map": plan.device_map(),
        "use_safetensors": True,
        "local_files_only": True,
        "output_loading_info": True,
    }
    if plan.quant == "4bit" and pre is None:
        kwargs["quantization_config"] = plan.quantization_config()
    reset_peak_memory(plan.device)  # `medapp model check --load` reports this load's CUDA peak
    try:
        model, info = DragonflyForCausalLM.from_pretrained(str(folder), **kwargs)
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        error = weights_error(folder, _key_problems(folder))
        if error is not None:  # say which tensors, not transformers' "look at the above report"
            raise error from exc
        raise CheckpointFormatError(f"{folder}: the model could not be loaded ({type(exc).__name__}: {exc})") from exc
    error = weights_error(folder, _loading_problems(info))
    if error is not None:
        raise error
    if pre is not None:
        _use_compute_dtype(model, plan.dtype)
    # No tensor may stay a view into the safetensors mapping: one view keeps the whole file mapped (models.memory).
    own_weight_storages(model, [folder / name for name in files.files])
    model.eval()
    try:
        processor = DragonflyProcessor.from_pretrained(str(folder))
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointFormatError(f"{folder}: the processor/tokenizer could not be loaded ({exc})") from exc
    return LoadedCheckpoint(model, processor, folder, plan, n_params, model_id_for(folder))


def _prequantized_choice(
    folder: Path, quant: str, wanted: bool, hash_cache: HashCache | None,
) -> tuple[Path, dict[str, Any] | None]:
    """The folder to load and its quantization_config when it is pre-quantised (see the module docstring)."""
    info = prequantized_info(folder)
    four_bit = (quant or "none").strip().lower() in ("4bit", "4", "4-bit", "nf4")
    if info is not None and not four_bit:
        raise QuantizationUnavailableError(
            f"{folder}: holds pre-quantised 4-bit (NF4) weights, which cannot be loaded unquantised; use --quant "
            "4bit (setting \"quant\": \"4bit\"), or load the unquantised checkpoint it was made from"
        )
    if info is None and four_bit and wanted:
        found = find_prequantized(folder, hash_cache=hash_cache)
        if found is not None:
            return found, prequantized_info(found)
    return folder, info


def _use_compute_dtype(model: Any, dtype: torch.dtype) -> None:
    """Make a pre-quantised model what quantise-on-load gives for the plan's dtype.

    transformers keeps a pre-quantised checkpoint's stored dtype for some dense tensors (the dtype argument is not
    applied to all of them), and the stored quant state names the dtype the folder was quantised from. So: every
    dense floating parameter in the plan's dtype, and the 4-bit layers computing in it and dequantising to it.
    """
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is not None and hasattr(module, "compute_dtype"):
            module.compute_dtype = dtype
            state.dtype = dtype
        for param in module.parameters(recurse=False):
            if getattr(param, "quant_state", None) is None and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)


def load_model(
    path: str | os.PathLike[str], device: str = "auto", quant: str = "none", dtype: str | torch.dtype | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """`(model, processor)` for a local folder or cached hub id; see `load` for the checks made before loading."""
    loaded = load(path, device, quant, dtype, **kwargs)
    return loaded.model, loaded.processor
