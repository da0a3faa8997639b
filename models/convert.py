"""The one-time conversion of an official pickle checkpoint (``pytorch_model*.bin``) to safetensors.

Why: the official Dragonfly(-Med) checkpoints are pickle files, and unpickling can execute code chosen by whoever
wrote the file. medapp therefore unpickles exactly once, here, on files the user names explicitly, with
``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors and plain containers only) and a warning saying
so. Everything medapp loads afterwards is safetensors (pure data). This is the only module that calls ``torch.load``.

Output (written into a temporary sibling folder and renamed into place only when complete, so an interrupted run never
leaves a half checkpoint that looks whole):

* ``model-0000i-of-0000N.safetensors`` shards of at most ``max_shard_bytes`` (5 GB by default, like transformers),
  every tensor bit-identical to the source (same dtype, same bytes), metadata ``{"format": "pt"}``;
* ``model.safetensors.index.json`` (``metadata.total_size`` and ``weight_map``), the layout transformers reads;
* every other file of the source folder (config, tokenizer, processor files) copied unchanged, sub-folders too
  (a sub-folder with pickle weights, such as an ``image_encoder/`` of a local CLIP, is converted the same way);
* ``medapp_conversion.json``: the source model id and revision (so reports name the published model, not a folder);
* ``SHA256SUMS`` over every written file, so loading can check integrity and ``sha256sum -c`` works without medapp.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.checkpoint import (
    CONVERSION_RECORD,
    PICKLE_SUFFIXES,
    SAFETENSORS_INDEX,
    model_id_for,
    resolve_checkpoint,
    revision_for,
    weight_files,
)
from models.errors import CheckpointFormatError, ModelError
from models.manifest import MANIFEST_NAME, HashCache, sha256_file, write_manifest

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["UnpicklingWarning", "convert_checkpoint", "DEFAULT_MAX_SHARD_BYTES"]

log = logging.getLogger(__name__)
DEFAULT_MAX_SHARD_BYTES = 5 * 1000**3
# Trainer side files that are pickles but hold no weights: never unpickled, never copied.
_TRAINER_FILES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json")


class UnpicklingWarning(UserWarning):
    """Issued once per conversion: pickle files are about to be unpickled (restricted, but still unpickled)."""


def _load_pickle_shard(file: Path) -> dict[str, torch.Tensor]:
    """One shard through torch's restricted unpickler, memory-mapped when the file format allows it."""
    import torch

    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # legacy (pre-zip) serialisation cannot be memory-mapped
            if "mmap" not in str(exc).lower():
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointFormatError(
            f"{file}: refused by torch's safe unpickler (weights_only=True): it holds objects other than tensors "
            f"({' '.join(str(exc).split())[:300]})"
        ) from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointFormatError(f"{file}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise CheckpointFormatError(f"{file}: expected a dict of tensors, found {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointFormatError(f"{file}: entries that are not named tensors: {', '.join(map(str, bad[:5]))}")
    return state


def _source_shards(src: Path) -> list[str]:
    """The pickle files to convert, in the order the index lists them (or sorted when there is no index)."""
    files = weight_files(src)
    if files.format != "pickle":
        raise ModelError(f"{src}: already holds safetensors weights; there is nothing to convert")
    if files.index:
        index_path = src / files.index
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointFormatError(f"{index_path}: not a valid checkpoint index ({exc})") from exc
        ordered = list(dict.fromkeys(weight_map.values()))
        missing = [n for n in ordered if not (src / n).is_file()]
        if missing:
            raise CheckpointFormatError(f"{src}: the index lists missing shard(s): {', '.join(missing)}")
        return ordered
    return [n for n in files.files if n not in _TRAINER_FILES]


def _plan_shards(tensors: list[tuple[str, torch.Tensor]], max_bytes: int) -> list[list[tuple[str, torch.Tensor]]]:
    """Greedy split in source order; a single tensor larger than the limit gets a shard of its own."""
    shards: list[list[tuple[str, torch.Tensor]]] = [[]]
    size = 0
    for name, tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, tensor))
        size += nbytes
    return shards


def _is_weight_or_index(name: str) -> bool:
    return (
        name.endswith(PICKLE_SUFFIXES)
        or name.endswith(".safetensors")
        or name.endswith(".bin.index.json")
        or name == SAFETENSORS_INDEX
        or name == MANIFEST_NAME
        or name == CONVERSION_RECORD
        or name in _TRAINER_FILES
    )


def _convert_into(src: Path, out: Path, max_shard_bytes: int, say: Callable[[str], None]) -> None:
    """Write the safetensors shards, the index and copies of the other files of `src` into the new folder `out`."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)  # publish_folder made it, empty
    names = _source_shards(src)
    tensors: list[tuple[str, Any]] = []
    seen: dict[str, str] = {}
    for name in names:
        say(f"reading {src / name}")
        for key, tensor in _load_pickle_shard(src / name).items():
            if key in seen:
                raise CheckpointFormatError(f"{src}: tensor {key!r} appears in both {seen[key]} and {name}")
            seen[key] = name
            tensors.append((key, tensor))
    shards = _plan_shards(tensors, max_shard_bytes)
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, start=1):
        file_name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        storages: set[tuple[int, int]] = set()
        payload = {}
        for key, tensor in shard:
            # safetensors refuses tensors that share memory (tied or sliced storage): give each its own copy.
            ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
            t = tensor.contiguous()
            if ident in storages or t.numel() * t.element_size() != t.untyped_storage().nbytes():
                t = t.clone()
            storages.add(ident)
            payload[key] = t
            weight_map[key] = file_name
            total += t.numel() * t.element_size()
        say(f"writing {file_name} ({len(payload)} tensors)")
        save_file(payload, str(out / file_name), metadata={"format": "pt"})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    for item in sorted(src.iterdir()):
        if item.is_dir():
            try:
                sub_format = weight_files(item).format
            except ModelError:
                sub_format = None
            if sub_format == "pickle":
                _convert_into(item, out / item.name, max_shard_bytes, say)
            else:
                shutil.copytree(item, out / item.name, ignore=shutil.ignore_patterns(*_TRAINER_FILES, "*.bin", "*.pt", "*.pth"))
        elif item.is_file() and not _is_weight_or_index(item.name):
            shutil.copy2(item, out / item.name)  # follows HF-cache symlinks to the blob


def convert_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: Callable[[str], None] | None = None,
    hash_cache: HashCache | None = None,
) -> Path:
    """Convert the pickle checkpoint `src` (folder or cached hub id) into a new safetensors folder `dst`.

    Issues an :class:`UnpicklingWarning` first. `dst` must not exist yet (or be an empty folder). Returns `dst`.
    """
    src_dir = resolve_checkpoint(src)
    out = Path(dst).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out}: already exists and is not empty; choose a new destination folder")
    if max_shard_bytes <= 0:
        raise ModelError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    names = _source_shards(src_dir)
    say = progress or (lambda message: log.info("%s", message))
    message = (
        f"unpickling {len(names)} file(s) from {src_dir} with torch.load(weights_only=True): only tensors and plain "
        "containers are accepted, but convert only checkpoints from a source you trust"
    )
    warnings.warn(message, UnpicklingWarning, stacklevel=2)
    if progress is not None:
        progress(f"WARNING: {message}")

    record = {"source_model_id": model_id_for(src_dir), "source_revision": revision_for(src_dir),
              "source_files": names, "tool": "medapp model convert"}
    return publish_folder(out, lambda tmp: _convert_into(src_dir, tmp, max_shard_bytes, say), record, say,
                          hash_cache)


def publish_folder(
    out: Path, fill: Callable[[Path], Any], record: dict[str, Any], say: Callable[[str], None],
    hash_cache: HashCache | None = None,
) -> Path:
    """Write a new checkpoint folder `out` all or nothing: `fill(tmp)` writes the weights into a temporary sibling,
    then the conversion `record` and SHA256SUMS are added and the folder is renamed into place. A failure or an
    interrupt leaves no half-written `out`. The hashes go into the hash cache (a rename keeps size and mtime), so the
    first load need not re-read gigabytes. Shared by `convert_checkpoint` and `models.quantize`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        fill(tmp)
        (tmp / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        say("hashing the written files (SHA256SUMS)")
        hashes = {
            str(p.relative_to(tmp)): sha256_file(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.name != MANIFEST_NAME
        }
        write_manifest(tmp, hashes)
        if out.exists():
            out.rmdir()  # empty, checked by the caller
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cache = hash_cache or HashCache()
    for name, value in hashes.items():
        cache.put(out / name, value)
    say(f"done: {out}")
    return out
