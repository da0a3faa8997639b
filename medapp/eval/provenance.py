"""What a reviewer needs to trust a result: which model, which data, which software, which settings.

Why content hashes: "we ran Dragonfly-Med on SLAKE" proves nothing; "checkpoint sha256 X, NF4 4-bit, test.json
sha256 Y, these 2094 images hashing to Z, medapp 0.1.0, this prompt" can be checked by anyone holding the same files.
Image folders are summarised by one digest over the sorted (relative path, file sha256) pairs of the images the run
actually used, so a swapped or re-encoded image changes it; parquet copies hold their images, so their file hashes
cover them.
"""

from __future__ import annotations

import hashlib
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from medapp import __version__
from medapp.eval.datasets import EvalDataset, Question
from medapp.hashing import file_sha256

__all__ = ["dataset_provenance", "software_versions", "engine_provenance", "now"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def dataset_provenance(dataset: EvalDataset, questions: list[Question]) -> dict[str, Any]:
    """Hashes of the dataset files and of the images used, plus counts (no absolute paths: they may be private)."""
    files = {_relative(f, dataset.root): file_sha256(f) for f in dataset.files}
    images = sorted({q.image for q in questions if isinstance(q.image, Path)})
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{_relative(image, dataset.root)}\0{file_sha256(image)}\n".encode())
    return {
        "name": dataset.name,
        "source": dataset.source,
        "files_sha256": files,
        "n_images": len(images) if images else None,
        "images_sha256": digest.hexdigest() if images else None,
        "n_questions": len(questions),
        "n_questions_in_copy": len(dataset.questions),
    }


def software_versions() -> dict[str, str]:
    """medapp, Python and the libraries that change answers (torch, transformers, bitsandbytes) or reading."""
    out = {"medapp": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "bitsandbytes", "pyarrow", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def engine_provenance(engine: Any) -> dict[str, Any]:
    """The loaded model as the engine describes it (checkpoint hash, quantisation, device, dtype)."""
    info = engine.info
    return {
        "model_id": info.model_id,
        "version": info.version,
        "checkpoint_sha256": info.checkpoint_sha256,
        "quant": info.quant,
        "device": info.device,
        "dtype": info.dtype,
        "n_params": info.n_params,
    }
