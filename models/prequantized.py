"""Pre-quantised (NF4) checkpoints: what they are and how the loader finds one.

Why: quantise-on-load reads the 16 GB bf16 checkpoint and runs bitsandbytes' quantiser over 7 B decoder weights on
every start (minutes on a CPU). A folder that already holds the packed NF4 weights is read in about the time it takes
to read 5.7 GB, with nothing left to compute.

The format is the standard one, not ours: transformers' `save_pretrained` of a bitsandbytes 4-bit model. Every
quantised ``X.weight`` is stored packed (uint8, two 4-bit codes per byte) with its quant state beside it
(``X.weight.absmax``, ``.quant_map``, ``.nested_absmax``, ``.nested_quant_map``,
``.quant_state.bitsandbytes__nf4``), and ``config.json`` gains a ``quantization_config`` (NF4, double quantisation,
the skipped modules). So `transformers.AutoModelForCausalLM.from_pretrained(folder)` (with `models.auto` imported)
and `bitsandbytes` load it without quantising again, and the rest of config.json stays in the official layout.
What is quantised is exactly what quantise-on-load quantises (`models.devices.QUANT_SKIP_MODULES`: the vision tower,
the projector and ``lm_head`` stay dense), and the values are those quantise-on-load computes from the same source,
so both give the same logits.

Besides the weights the folder has every side file of the source (tokenizer, processor, ``image_encoder/``), its own
``SHA256SUMS`` and a ``medapp_conversion.json`` recording the source's model id, revision, folder and checkpoint
SHA-256 (`models.checkpoint.checkpoint_sha256`), which is how `find_prequantized` knows that a folder was made from
*this* source and not from an older copy of it.

This module (what a pre-quantised folder is, and finding one) is torch-free; the writer is `models.quantize`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from models.checkpoint import CONVERSION_RECORD, checkpoint_sha256, models_dir
from models.errors import CheckpointFormatError
from models.manifest import HashCache

__all__ = [
    "QUANT_STATE_SUFFIXES",
    "PREQUANTIZED_TOOL",
    "find_prequantized",
    "prequantized_info",
]

# The tensors bitsandbytes stores beside a packed 4-bit ``X.weight`` (transformers' Bnb4BitHfQuantizer.serialized_names).
QUANT_STATE_SUFFIXES = (".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map",
                        ".quant_state.bitsandbytes__nf4")
PREQUANTIZED_TOOL = "medapp model convert --quant 4bit"


def prequantized_info(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's ``quantization_config`` from config.json when it holds pre-quantised weights, else None.

    A config that declares something other than bitsandbytes NF4 is an error: medapp could not load it correctly.
    """
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    quant = config.get("quantization_config") if isinstance(config, dict) else None
    if not quant:
        return None
    if not isinstance(quant, dict) or quant.get("quant_method") != "bitsandbytes" or not quant.get("load_in_4bit") \
            or quant.get("bnb_4bit_quant_type") != "nf4":
        raise CheckpointFormatError(
            f"{Path(folder) / 'config.json'}: quantization_config {quant!r} is not bitsandbytes NF4 4-bit, the only "
            "pre-quantised format medapp loads"
        )
    return quant


def _record(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / CONVERSION_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def find_prequantized(
    folder: str | os.PathLike[str], search_dirs: list[Path] | None = None, *, hash_cache: HashCache | None = None,
) -> Path | None:
    """A pre-quantised folder made from the checkpoint `folder`, or None.

    Looked for among `folder`'s siblings and in medapp's models folder (plus `search_dirs`); a candidate counts only
    if its conversion record names `folder`'s checkpoint SHA-256 (from SHA256SUMS / HF blob names / the hash cache;
    a folder with none of these is hashed once, then cached), so a stale conversion of an older copy is never picked.
    """
    source = Path(folder).resolve()
    if prequantized_info(source) is not None:
        return source
    candidates: list[Path] = []
    for base in [source.parent, models_dir(), *(search_dirs or [])]:
        if base.is_dir():
            candidates += sorted(p for p in base.iterdir() if p.is_dir() and p.resolve() != source)
    matching = [p for p in dict.fromkeys(candidates)
                if _record(p).get("tool") == PREQUANTIZED_TOOL and _record(p).get("source_sha256")]
    if not matching:
        return None
    want = checkpoint_sha256(source, compute=True, cache=hash_cache)
    for candidate in matching:
        if _record(candidate).get("source_sha256") == want:
            try:
                if prequantized_info(candidate) is not None:
                    return candidate.resolve()
            except CheckpointFormatError:
                continue
    return None
