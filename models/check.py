"""`medapp model check DIR`: is this folder a complete, intact Dragonfly checkpoint that medapp can load?

Why a check apart from loading: loading a 16 GB checkpoint takes minutes and fails on the first problem; the check
reads only the safetensors headers (shapes, dtypes) and compares them with the key set the model class declares,
built on the meta device (no memory, no weights), so it lists *every* missing, unexpected or mis-shaped tensor in
about a second. Hash verification is the slow part and runs on demand (cached by size + mtime, see models.manifest).
A pickle checkpoint is reported too (keys from its index when it has one), with the conversion command to run.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.checkpoint import (
    logical_parameter_count,
    model_id_for,
    read_config,
    require_safetensors,
    resolve_checkpoint,
    tensor_index,
    weight_files,
)
from models.errors import CheckpointFormatError, PickleCheckpointError
from models.manifest import HashCache, checkpoint_fingerprint, known_hash, read_manifest, sha256_file, verify_files
from models.prequantized import QUANT_STATE_SUFFIXES, prequantized_info

__all__ = ["check_checkpoint", "expected_prequantized_tensors", "expected_tensors", "format_report"]

# safetensors dtype names → torch names, for a report people read.
_DTYPE_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64", "U8": "uint8",
                "I8": "int8", "I32": "int32", "I64": "int64", "BOOL": "bool"}


def expected_tensors(folder: Path) -> tuple[str, dict[str, tuple[int, ...]]]:
    """(version, {official key: shape}) of the model its config describes, built on the meta device."""
    config, model = _meta_model(folder)
    return config.version, {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _meta_model(folder: Path) -> tuple[Any, Any]:
    """(config, model) of the folder's config.json, the model built on the meta device (shapes, no memory)."""
    import torch

    from models.configuration_dragonfly import DragonflyConfig
    from models.modeling_dragonfly import DragonflyForCausalLM

    try:
        config = DragonflyConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointFormatError(f"{folder / 'config.json'}: not a usable Dragonfly config ({exc})") from exc
    with torch.device("meta"):
        return config, DragonflyForCausalLM(config)


def expected_prequantized_tensors(
    folder: Path, quantization_config: dict[str, Any]
) -> tuple[str, dict[str, tuple[int, ...] | None]]:
    """(version, {key: shape or None}) of a pre-quantised (bitsandbytes NF4) checkpoint of that config.

    Every plain `nn.Linear` that transformers' bitsandbytes integration converts (its own `should_convert_module`
    rule with the folder's `llm_int8_skip_modules`) is stored packed, ``[ceil(n/2), 1]`` uint8 for an n-element
    weight, with its quant-state tensors beside it (shape None: their size depends on the block size).
    """
    from torch import nn
    from transformers.quantizers.quantizers_utils import should_convert_module

    config, model = _meta_model(folder)
    expected: dict[str, tuple[int, ...] | None] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    skip = list(quantization_config.get("llm_int8_skip_modules") or [])
    for name, module in model.named_modules():
        if type(module) is nn.Linear and name and should_convert_module(name, skip):
            key = f"{name}.weight"
            expected[key] = ((module.weight.numel() + 1) // 2, 1)
            for suffix in QUANT_STATE_SUFFIXES:
                expected[key + suffix] = None
    return config.version, expected


def _pickle_keys(folder: Path, index_name: str | None) -> list[str] | None:
    if not index_name:
        return None
    try:
        return sorted(json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_checkpoint(
    path: str | os.PathLike[str], *, verify_hashes: bool = True, hash_cache: HashCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """A JSON-ready report: version, parameter count, dtype, key problems, hash status, and `ok`.

    Keys: path, model_id, weights_format, files, version, n_params, dtype (the dominant stored dtype; of the dense
    tensors in a pre-quantised folder), dtypes
    (tensor count per dtype), n_tensors, missing_keys, unexpected_keys, mismatched_shapes, hash_status
    ("verified" | "mismatch" | "incomplete" | "no-manifest" | "not-checked"), hash (details),
    checkpoint_sha256 (when every weight file's hash is known), quantization ("nf4" for a pre-quantised folder,
    written by `medapp model convert --quant 4bit`, else None), problems (sentences), ok.
    """
    folder = resolve_checkpoint(path)
    read_config(folder)
    files = weight_files(folder)
    quant = prequantized_info(folder)
    expected: dict[str, tuple[int, ...] | None]
    if quant is None:
        version, dense = expected_tensors(folder)
        expected = dict(dense)
    else:
        version, expected = expected_prequantized_tensors(folder, quant)
    report: dict[str, Any] = {
        "path": str(folder),
        "model_id": model_id_for(folder),
        "weights_format": files.format,
        "files": list(files.files),
        "version": version,
        "n_params": None,
        "dtype": None,
        "dtypes": {},
        "n_tensors": None,
        "missing_keys": [],
        "unexpected_keys": [],
        "mismatched_shapes": [],
        "hash_status": "not-checked",
        "hash": {},
        "checkpoint_sha256": None,
        "quantization": "nf4" if quant else None,  # pre-quantised bitsandbytes NF4 (double quantised) weights
        "problems": [],
    }
    if files.format == "pickle":
        try:
            require_safetensors(folder)
        except PickleCheckpointError as exc:
            report["problems"].append(str(exc))
        keys = _pickle_keys(folder, files.index)
        if keys is not None:
            report["missing_keys"] = sorted(set(expected) - set(keys))
            report["unexpected_keys"] = sorted(set(keys) - set(expected))
        report["ok"] = False
        return report

    stored = tensor_index(folder)
    report["n_tensors"] = len(stored)
    report["n_params"] = logical_parameter_count(stored)
    counts = Counter(_DTYPE_NAMES.get(dtype, dtype) for _, dtype, _ in stored.values())
    report["dtypes"] = dict(counts.most_common())
    by_size: Counter[str] = Counter()
    for key, (shape, dtype, _) in stored.items():
        if quant is None or expected.get(key, ()) is not None and dtype != "U8":  # dense tensors: what they are kept in
            by_size[_DTYPE_NAMES.get(dtype, dtype)] += math.prod(shape)
    report["dtype"] = by_size.most_common(1)[0][0] if by_size else None
    report["missing_keys"] = sorted(set(expected) - set(stored))
    report["unexpected_keys"] = sorted(set(stored) - set(expected))
    report["mismatched_shapes"] = sorted(
        f"{k}: checkpoint {list(stored[k][0])}, model {list(expected[k] or ())}"
        for k in set(stored) & set(expected)
        if expected[k] is not None and tuple(stored[k][0]) != tuple(expected[k] or ())
    )
    for name, label in (("missing_keys", "missing"), ("unexpected_keys", "unexpected"),
                        ("mismatched_shapes", "mis-shaped")):
        if report[name]:
            report["problems"].append(f"{len(report[name])} {label} tensor(s), e.g. {report[name][0]}")

    cache = hash_cache or HashCache()
    hashes = verify_files(folder, files.files, full=verify_hashes, cache=cache, progress=progress)
    report["hash"] = hashes.as_dict()
    report["hash_status"] = hashes.status if (verify_hashes or hashes.status != "verified") else "not-checked"
    if not hashes.ok:
        report["problems"].append(f"hash check: {hashes.status} ({hashes.as_dict()})")
    manifest = read_manifest(folder)
    known = {name: known_hash(folder / name, manifest, name, cache) for name in files.files}
    if verify_hashes:  # on demand: hash what nothing else vouches for (cached, so only the first check is slow)
        known = {name: value or sha256_file(folder / name, cache, progress) for name, value in known.items()}
    if all(known.values()):
        report["checkpoint_sha256"] = checkpoint_fingerprint(known)  # type: ignore[arg-type]
    report["ok"] = not report["problems"]
    return report


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form `medapp model check` prints."""
    lines = [
        f"checkpoint   {report['path']}",
        f"model        {report['model_id']} (Dragonfly {report['version']})",
        f"weights      {report['weights_format']}: {', '.join(report['files'])}",
    ]
    if report["n_params"] is not None:
        dtypes = ", ".join(f"{k} ×{v}" for k, v in report["dtypes"].items())
        lines.append(f"parameters   {report['n_params']:,} in {report['n_tensors']} tensors")
        lines.append(f"dtype        {report['dtype']} (tensors: {dtypes})")
    if report.get("quantization"):
        lines.append("quantised    NF4 4-bit, double quantised (bitsandbytes), loads without quantising again")
    for name in ("missing_keys", "unexpected_keys", "mismatched_shapes"):
        values = report[name]
        shown = "none" if not values else f"{len(values)}: " + ", ".join(values[:8]) + (" …" if len(values) > 8 else "")
        lines.append(f"{name.replace('_', ' '):<12} {shown}")
    lines.append(f"hashes       {report['hash_status']}")
    if report["checkpoint_sha256"]:
        lines.append(f"sha256       {report['checkpoint_sha256']}")
    for problem in report["problems"]:
        lines.append(f"PROBLEM      {problem}")
    lines.append("result       " + ("OK" if report["ok"] else "NOT OK"))
    return "\n".join(lines)
