"""Where a Dragonfly checkpoint is and what it holds, without loading it: folders, ids, weight files, headers, hashes.

Why a module of its own: loading (`models.loading`), `medapp model check` (`models.check`) and `medapp model convert`
(`models.convert`) all need to resolve a folder (local, or a snapshot in the local Hugging Face cache), list its weight
files, read tensor names and shapes from the safetensors headers and name the checkpoint (model id, revision,
fingerprint). Keeping that here lets those three depend on this module instead of on each other.

Rules:

* **Offline, always.** A checkpoint is a folder on disk or a snapshot already in the local Hugging Face cache; nothing
  here downloads (the offline variables are forced by `models.offline`).
* **Safetensors only for loading.** Pickle weights are recognised (so check can report them and convert can read
  them) but `require_safetensors` refuses them with :class:`PickleCheckpointError`, naming the conversion command.
* **Headers, not tensors.** `tensor_index` reads shapes and dtypes through `safetensors.safe_open` (the header only),
  so checking a 16 GB checkpoint takes a second and needs no torch.
* **Fingerprints from known hashes.** `checkpoint_sha256` uses the SHA256SUMS manifest, the HF cache's blob names or
  the hash cache (`models.manifest`) before it reads any file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import CheckpointFormatError, ModelError, ModelNotFoundError, PickleCheckpointError
from models.manifest import HashCache, checkpoint_fingerprint, known_hash, read_manifest, sha256_file

__all__ = [
    "CONVERSION_RECORD",
    "KNOWN_MODEL_IDS",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_INDEX",
    "CheckpointEntry",
    "WeightFiles",
    "checkpoint_sha256",
    "count_parameters",
    "find_checkpoints",
    "hf_cache_dir",
    "list_checkpoints",
    "logical_parameter_count",
    "model_id_for",
    "models_dir",
    "read_config",
    "require_safetensors",
    "resolve_checkpoint",
    "revision_for",
    "tensor_index",
    "weight_files",
]

KNOWN_MODEL_IDS = (
    "togethercomputer/Llama-3.1-8B-Dragonfly-Med-v2",
    "togethercomputer/Llama-3.1-8B-Dragonfly-v2",
    "togethercomputer/Llama-3-8B-Dragonfly-Med-v1",
    "togethercomputer/Llama-3-8B-Dragonfly-v1",
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_INDEX = "model.safetensors.index.json"


# --------------------------------------------------------------------------------------------- where checkpoints live
def hf_cache_dir(hf_cache: str | os.PathLike[str] | None = None) -> Path:
    """The Hugging Face hub cache: the argument, else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.

    Read from the environment at call time (huggingface_hub reads it once at import), so tests and settings can move it.
    """
    if hf_cache:
        return Path(hf_cache).expanduser()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def models_dir() -> Path:
    """Where converted checkpoints go by default: $MEDAPP_MODELS_DIR, else the per-user data folder's `models/`."""
    env = os.environ.get("MEDAPP_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("medapp")) / "models"


@dataclass(frozen=True)
class CheckpointEntry:
    """One Dragonfly checkpoint found on disk."""

    path: Path
    model_id: str  # "togethercomputer/…" for HF-cache snapshots, the folder name otherwise
    revision: str | None  # HF commit hash of the snapshot
    weights_format: str  # "safetensors" | "pickle"
    source: str  # "hf-cache" | "models-dir"
    quantization: str | None = None  # "nf4": pre-quantised by `medapp model convert --quant 4bit`


def _quantization_of(folder: Path) -> str | None:
    """"nf4" when config.json declares pre-quantised weights (see models.prequantized), else None."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return "nf4" if isinstance(config, dict) and config.get("quantization_config") else None


def _is_dragonfly_folder(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "dragonfly"


def _format_of(folder: Path) -> str | None:
    try:
        return weight_files(folder).format
    except ModelError:
        return None


def list_checkpoints(
    hf_cache: str | os.PathLike[str] | None = None, extra_dirs: list[Path] | None = None
) -> list[CheckpointEntry]:
    """Every Dragonfly checkpoint in the HF cache (all snapshots of any repo) and in medapp's models folder."""
    entries: list[CheckpointEntry] = []
    cache = hf_cache_dir(hf_cache)
    if cache.is_dir():
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound, CorruptedCacheException

        try:
            info = scan_cache_dir(cache)
        except (CacheNotFound, CorruptedCacheException, OSError):
            info = None
        for repo in sorted(info.repos if info else [], key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            for rev in sorted(repo.revisions, key=lambda r: ("main" not in r.refs, -r.last_modified)):
                folder = Path(rev.snapshot_path)
                fmt = _format_of(folder) if _is_dragonfly_folder(folder) else None
                if fmt:
                    entries.append(CheckpointEntry(folder, repo.repo_id, rev.commit_hash, fmt, "hf-cache"))
    for base in [models_dir(), *(extra_dirs or [])]:
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            fmt = _format_of(folder) if _is_dragonfly_folder(folder) else None
            if fmt:
                entries.append(CheckpointEntry(folder, model_id_for(folder), _converted_from(folder)[1], fmt,
                                               "models-dir", _quantization_of(folder)))
    known = {mid: i for i, mid in enumerate(KNOWN_MODEL_IDS)}
    # Loadable (safetensors) first, then the known checkpoints in KNOWN_MODEL_IDS order (Med-v2 first); pre-quantised
    # copies after every full checkpoint (the loader goes from a full one to its copy when 4-bit is asked for).
    return sorted(entries, key=lambda e: (e.weights_format != "safetensors", e.quantization is not None,
                                          known.get(e.model_id, len(known)), e.source, str(e.path)))


def find_checkpoints(hf_cache: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders of the Dragonfly checkpoints on this machine (see `list_checkpoints` for details about each)."""
    return [entry.path for entry in list_checkpoints(hf_cache)]


def _repo_id_from_name(text: str) -> str | None:
    text = text.strip()
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text
    for mid in KNOWN_MODEL_IDS:
        if text == mid.split("/", 1)[1]:
            return mid
    return None


def _snapshot_in_cache(repo_id: str, cache: Path) -> Path | None:
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text(encoding="utf-8").strip()
        if (candidate / "config.json").is_file():
            return candidate
    folders = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
    return max(folders, key=lambda p: p.stat().st_mtime) if folders else None


def resolve_checkpoint(path_or_id: str | os.PathLike[str], hf_cache: str | os.PathLike[str] | None = None) -> Path:
    """A local checkpoint folder, or a hub id ("togethercomputer/…" or its short name) found in the local HF cache."""
    text = os.fspath(path_or_id)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointFormatError(f"{path}: not a model checkpoint folder (no config.json)")
        return path.resolve()
    if path.exists():
        raise CheckpointFormatError(f"{path}: expected a checkpoint folder, got a file")
    repo_id = _repo_id_from_name(text)
    if repo_id is not None:
        cache = hf_cache_dir(hf_cache)
        found = _snapshot_in_cache(repo_id, cache)
        if found is not None:
            return found
        raise ModelNotFoundError(
            f"{repo_id} is not in the Hugging Face cache at {cache} and medapp never downloads. On a machine with "
            f"internet access run `hf download {repo_id}` (it fills that cache; copy it here, or set HF_HUB_CACHE), "
            "or pass the checkpoint folder itself"
        )
    raise ModelNotFoundError(f"{path}: no such checkpoint folder")


CONVERSION_RECORD = "medapp_conversion.json"


def _converted_from(folder: Path) -> tuple[str | None, str | None]:
    """(source model id, source revision) recorded by `medapp model convert`, or (None, None)."""
    try:
        record = json.loads((Path(folder) / CONVERSION_RECORD).read_text(encoding="utf-8"))
        return record.get("source_model_id"), record.get("source_revision")
    except (OSError, ValueError, AttributeError):
        return None, None


def model_id_for(folder: Path) -> str:
    """The checkpoint's model id, for provenance: "togethercomputer/…" for an HF-cache snapshot
    (…/models--org--name/snapshots/<rev>) or for a folder converted from one, else the folder name."""
    folder = Path(folder)
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name.removeprefix("models--").replace("--", "/", 1)
    source, _ = _converted_from(folder)
    return source or folder.name


def revision_for(folder: Path) -> str | None:
    """The HF commit of a cache snapshot, or of the snapshot a converted folder came from."""
    folder = Path(folder)
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.name
    return _converted_from(folder)[1]


# --------------------------------------------------------------------------------------------------- weight files
@dataclass(frozen=True)
class WeightFiles:
    """The top-level weight files of a checkpoint folder, by format, and the index file that lists them (if any)."""

    folder: Path
    format: str  # "safetensors" | "pickle"
    files: tuple[str, ...]
    index: str | None


def weight_files(folder: Path) -> WeightFiles:
    """Which weights the folder holds; safetensors win when both kinds exist (then the pickle files are never read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFoundError(f"{folder}: no such checkpoint folder")
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = tuple(sorted(set(weight_map.values())))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointFormatError(f"{index}: not a valid safetensors index ({exc})") from exc
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointFormatError(f"{folder}: {SAFETENSORS_INDEX} lists missing shard(s): {', '.join(missing)}")
        return WeightFiles(folder, "safetensors", names, SAFETENSORS_INDEX)
    safetensors = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
    if len(safetensors) == 1:
        return WeightFiles(folder, "safetensors", tuple(safetensors), None)
    if len(safetensors) > 1:
        raise CheckpointFormatError(
            f"{folder}: {len(safetensors)} .safetensors files but no {SAFETENSORS_INDEX} to say how they fit together"
        )
    pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if pickles:
        index_name = next((p.name for p in folder.glob("*.bin.index.json")), None)
        return WeightFiles(folder, "pickle", tuple(pickles), index_name)
    raise CheckpointFormatError(f"{folder}: no weight files (.safetensors) in this checkpoint folder")


def require_safetensors(folder: Path) -> WeightFiles:
    """The folder's safetensors files, or PickleCheckpointError naming the conversion command."""
    files = weight_files(folder)
    if files.format != "safetensors":
        dst = models_dir() / (model_id_for(folder).split("/")[-1] + "-safetensors")
        shown = ", ".join(files.files[:3]) + (", …" if len(files.files) > 3 else "")
        raise PickleCheckpointError(
            f"{folder}: holds only pickle weights ({shown}); medapp does not unpickle files when loading because "
            f"unpickling can run arbitrary code. Convert them once with `medapp model convert {folder} {dst}` "
            "and load the new folder"
        )
    return files


def read_config(folder: Path) -> dict[str, Any]:
    """config.json as a dict; an error unless it is a Dragonfly config."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointFormatError(f"{path}: missing (not a checkpoint folder)") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointFormatError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(config, dict) or config.get("model_type") != "dragonfly":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointFormatError(f"{path}: model_type is {kind!r}, not 'dragonfly'")
    return config


def _tensor_meta(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """`{key: (shape, safetensors dtype)}` of one .safetensors file, read by `safetensors.safe_open` from its header
    (no tensor data, no torch)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy") as fh:
            out = {}
            for key in fh.keys():
                tensor = fh.get_slice(key)
                out[key] = (tuple(tensor.get_shape()), str(tensor.get_dtype()))
            return out
    except (OSError, SafetensorError) as exc:
        raise CheckpointFormatError(f"{file}: unreadable safetensors header ({exc})") from exc


def tensor_index(folder: Path) -> dict[str, tuple[tuple[int, ...], str, str]]:
    """`{key: (shape, safetensors dtype, file)}` for every tensor in the checkpoint, from the headers only."""
    files = require_safetensors(folder)
    out: dict[str, tuple[tuple[int, ...], str, str]] = {}
    for name in files.files:
        for key, (shape, dtype) in _tensor_meta(Path(folder) / name).items():
            out[key] = (shape, dtype, name)
    return out


_NF4_STATE = ".quant_state.bitsandbytes__nf4"  # beside every packed weight of a pre-quantised folder


def logical_parameter_count(index: dict[str, tuple[tuple[int, ...], str, str]]) -> int:
    """Parameters of the model a `tensor_index` describes: a pre-quantised weight (uint8, two 4-bit codes per byte)
    counts as the weight it packs, and its quant-state tensors (absmax, code books) count as none."""
    packed = {key[: -len(_NF4_STATE)] for key in index if key.endswith(_NF4_STATE)}
    total = 0
    for key, (shape, _, _) in index.items():
        if key in packed:
            total += 2 * math.prod(shape)
        elif not any(key.startswith(weight + ".") for weight in packed):
            total += math.prod(shape)
    return total


def count_parameters(folder: Path) -> int:
    """Number of model parameters (from the headers), the same for a checkpoint and its pre-quantised copy."""
    return logical_parameter_count(tensor_index(folder))


def checkpoint_sha256(
    path: str | os.PathLike[str], *, compute: bool = True, cache: HashCache | None = None
) -> str | None:
    """Fingerprint of the checkpoint's weight files (see models.manifest.checkpoint_fingerprint).

    Per-file hashes come from the SHA256SUMS manifest, the HF cache's blob names or the hash cache; only when none of
    these knows a file and `compute` is true is the file read (slow for 16 GB, then cached). None if unknown.
    """
    folder = resolve_checkpoint(path)
    files = require_safetensors(folder)
    cache = cache or HashCache()
    manifest = read_manifest(folder)
    hashes: dict[str, str] = {}
    for name in files.files:
        value = known_hash(folder / name, manifest, name, cache)
        if value is None:
            if not compute:
                return None
            value = sha256_file(folder / name, cache)
        hashes[name] = value
    return checkpoint_fingerprint(hashes)
