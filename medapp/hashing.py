"""Content hashes that identify inputs without revealing them.

The audit log and the report provenance must say *which* image a model saw without storing anything a person could
read (a file name may carry a patient name). A SHA-256 of the bytes does that: the same file always gives the same
hash, and the hash cannot be turned back into the file. Images are hashed over their decoded pixels plus mode and
size, so the hash names exactly what was sent to the model (a window or region change gives a new hash), which is
also the key of the per-image conversation in the session.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "image_sha256", "text_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (streamed, so whole-slide images do not load into memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def image_sha256(image: Any) -> str:
    """SHA-256 of a PIL image's mode, size and pixel bytes."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
