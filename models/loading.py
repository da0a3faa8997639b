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

Where checkpoints are found, their ids and hashes: `models.checkpoint`; `medapp model check`: `models.check`;
conversion: `models.convert`. This module only loads (and depends on those, never the other way round).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.check import check_checkpoint
from models.checkpoint import count_parameters, model_id_for, read_config, require_safetensors, resolve_checkpoint
from models.devices import LoadPlan, plan_load
from models.errors import CheckpointFormatError, ModelError
from models.manifest import HashCache, raise_for_report, verify_files

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LoadedCheckpoint", "load", "load_model", "weights_error"]


@dataclass
class LoadedCheckpoint:
    """A loaded model with everything the engine reports about it."""

    model: Any
    processor: Any
    folder: Path
    plan: LoadPlan
    n_params: int
    model_id: str


def _problem_lines(report: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """"missing keys: a, b, c (+2 more)" for every non-empty list among `keys` (at most five names each)."""
    out = []
    for key in keys:
        values = [str(v) for v in report.get(key) or []]
        if values:
            shown = ", ".join(values[:5]) + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")
            out.append(f"{key.replace('_', ' ')}: {shown}")
    return out


def _loading_problems(info: dict[str, Any] | None) -> list[str]:
    return _problem_lines(info or {}, ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))


def _key_problems(folder: Path) -> list[str]:
    """Missing / unexpected / mis-shaped tensors against the config (headers only), as short sentences."""
    try:
        report = check_checkpoint(folder, verify_hashes=False)
    except ModelError:
        return []
    return _problem_lines(report, ("missing_keys", "unexpected_keys", "mismatched_shapes"))


def weights_error(folder: str | os.PathLike[str], info: dict[str, Any] | None = None) -> CheckpointFormatError | None:
    """The loader's strict-keys error for `folder`, or None when the weights match.

    `info` is transformers' loading info (`output_loading_info=True`); without it (transformers raised before
    reporting, e.g. on a mis-shaped tensor) the folder's safetensors headers are compared with its config instead.
    The message names the missing / unexpected / mis-shaped tensors; `DragonflyForCausalLM.from_pretrained` (and
    so `AutoModelForCausalLM`) raises it too.
    """
    problems = _loading_problems(info) if info is not None else _key_problems(Path(folder))
    if not problems:
        return None
    return CheckpointFormatError(f"{folder}: weights do not match the config — {'; '.join(problems)}")


def load(
    path: str | os.PathLike[str], device: str = "auto", quant: str = "none",
    dtype: str | torch.dtype | None = None, *, verify: str = "fast", hash_cache: HashCache | None = None,
) -> LoadedCheckpoint:
    """Resolve, validate and load a checkpoint. `verify`: "fast" (every load), "full" (re-hash) or "none"."""
    folder = resolve_checkpoint(path)
    read_config(folder)
    files = require_safetensors(folder)
    if verify not in ("fast", "full", "none"):
        raise ModelError(f"unknown verify mode {verify!r}: choose fast, full or none")
    if verify != "none":
        report = verify_files(folder, files.files, full=verify == "full", cache=hash_cache or HashCache())
        raise_for_report(folder, report)
    n_params = count_parameters(folder)
    plan = plan_load(device, quant, dtype, n_params=n_params)

    from models.modeling_dragonfly import DragonflyForCausalLM
    from models.processing_dragonfly import DragonflyProcessor

    kwargs: dict[str, Any] = {
        "dtype": plan.dtype,
        "device_map": plan.device_map(),
        "use_safetensors": True,
        "local_files_only": True,
        "output_loading_info": True,
    }
    if plan.quant == "4bit":
        kwargs["quantization_config"] = plan.quantization_config()
    try:
        model, info = DragonflyForCausalLM.from_pretrained(str(folder), **kwargs)
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        error = weights_error(folder)
        if error is not None:  # say which tensors, not transformers' "look at the above report"
            raise error from exc
        raise CheckpointFormatError(f"{folder}: the model could not be loaded ({type(exc).__name__}: {exc})") from exc
    error = weights_error(folder, info)
    if error is not None:
        raise error
    model.eval()
    try:
        processor = DragonflyProcessor.from_pretrained(str(folder))
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointFormatError(f"{folder}: the processor/tokenizer could not be loaded ({exc})") from exc
    return LoadedCheckpoint(model, processor, folder, plan, n_params, model_id_for(folder))


def load_model(
    path: str | os.PathLike[str], device: str = "auto", quant: str = "none", dtype: str | torch.dtype | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """`(model, processor)` for a local folder or cached hub id; see `load` for the checks made before loading."""
    loaded = load(path, device, quant, dtype, **kwargs)
    return loaded.model, loaded.processor
