"""`medapp model convert SRC DST --quant 4bit`: write a pre-quantised NF4 copy of a safetensors checkpoint, once.

The format, and why it is worth having, are described in `models.prequantized` (torch-free, used by the loader and
the check). This module loads the source with quantise-on-load (`models.loading.load`, the same code path as
``--quant 4bit`` without a pre-quantised folder, so the stored values are exactly what that path computes) and saves
it with transformers' own `save_pretrained`, which writes the bitsandbytes quant state beside each packed weight.
Output is written into a temporary sibling folder and renamed into place only when complete, like `models.convert`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.checkpoint import (
    CONVERSION_RECORD,
    SAFETENSORS_INDEX,
    checkpoint_sha256,
    model_id_for,
    require_safetensors,
    resolve_checkpoint,
    revision_for,
)
from models.convert import publish_folder
from models.errors import ModelError, PickleCheckpointError
from models.manifest import MANIFEST_NAME, HashCache
from models.prequantized import PREQUANTIZED_TOOL, prequantized_info

__all__ = ["quantize_checkpoint"]

log = logging.getLogger(__name__)


def _dominant_dtype(folder: Path) -> str:
    """The stored floating dtype (bfloat16 for the official checkpoints): quantised from it, the rest kept in it."""
    from models.checkpoint import tensor_index

    sizes: dict[str, int] = {}
    for shape, dtype, _ in tensor_index(folder).values():
        n = 1
        for d in shape:
            n *= d
        sizes[dtype] = sizes.get(dtype, 0) + n
    name = {"BF16": "bfloat16", "F32": "float32", "F16": "float16"}.get(max(sizes, key=lambda k: sizes[k]), "bfloat16")
    return "float32" if name == "float16" else name  # the CPU cannot compute in float16


def _copy_side_files(src: Path, out: Path) -> None:
    """Everything but the weights, the index, the manifest and the conversion record (sub-folders whole)."""
    for item in sorted(src.iterdir()):
        if item.is_dir():
            shutil.copytree(item, out / item.name)
        elif item.is_file() and not (item.name.endswith(".safetensors") or item.name in (
                SAFETENSORS_INDEX, MANIFEST_NAME, CONVERSION_RECORD, "config.json")):
            shutil.copy2(item, out / item.name)


def quantize_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    device: str = "cpu",
    max_shard_bytes: int = 5 * 1000**3,
    progress: Callable[[str], None] | None = None,
    hash_cache: HashCache | None = None,
) -> Path:
    """Quantise the safetensors checkpoint `src` to NF4 once and write the pre-quantised folder `dst` (new or empty).

    Written into a temporary sibling and renamed into place when complete, like `models.convert`. Returns `dst`.
    """
    from models.loading import load

    say = progress or (lambda message: log.info("%s", message))
    src_dir = resolve_checkpoint(src)
    try:
        require_safetensors(src_dir)
    except PickleCheckpointError as exc:  # name both steps: the plain conversion first, then this one
        raise PickleCheckpointError(f"{exc}; then quantise that folder with `medapp model convert FOLDER {dst} "
                                    "--quant 4bit`") from exc
    if prequantized_info(src_dir) is not None:
        raise ModelError(f"{src_dir}: already holds pre-quantised 4-bit weights; there is nothing to quantise")
    out = Path(dst).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out}: already exists and is not empty; choose a new destination folder")
    cache = hash_cache or HashCache()
    say(f"hashing the source {src_dir} (once; recorded so the loader knows what this folder was made from)")
    source_sha = checkpoint_sha256(src_dir, compute=True, cache=cache)
    dtype = _dominant_dtype(src_dir)
    say(f"loading {src_dir} and quantising it to NF4 (compute dtype {dtype})")
    loaded = load(src_dir, device, "4bit", dtype, verify="fast", hash_cache=cache, prequantized=False)

    import bitsandbytes
    import transformers

    def fill(tmp: Path) -> None:
        scratch = tmp / ".save"
        say("writing the NF4 safetensors weights")
        loaded.model.save_pretrained(str(scratch), safe_serialization=True, max_shard_size=max_shard_bytes)
        for item in scratch.iterdir():
            if item.name.endswith(".safetensors") or item.name == SAFETENSORS_INDEX:
                os.replace(item, tmp / item.name)
        saved_config = json.loads((scratch / "config.json").read_text(encoding="utf-8"))
        shutil.rmtree(scratch)
        _copy_side_files(src_dir, tmp)
        # The source's config.json (official layout) plus the quantization_config transformers wrote, nothing else.
        config = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
        config["quantization_config"] = saved_config["quantization_config"]
        record["quantization"]["skip_modules"] = config["quantization_config"].get("llm_int8_skip_modules")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    record: dict[str, Any] = {
        "source_model_id": model_id_for(src_dir), "source_revision": revision_for(src_dir),
        "source_path": str(src_dir), "source_sha256": source_sha,
        "source_files": list(require_safetensors(src_dir).files),
        "quantization": {"method": "bitsandbytes-nf4", "double_quant": True, "dtype": dtype, "skip_modules": None,
                         "bitsandbytes": bitsandbytes.__version__, "transformers": transformers.__version__},
        "tool": PREQUANTIZED_TOOL,
    }
    return publish_folder(out, fill, record, say, cache)
