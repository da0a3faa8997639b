"""Content hashes that identify inputs without revealing them.

The audit log and the report provenance must say *which* image a model saw without storing anything a person could
read (a file name may carry a patient name). A SHA-256 of the bytes does that: the same file always gives the same
hash, and the hash cannot be turned back into the file. Images are hashed over their decoded pixels plus mode and
size, so the hash names exactly what was sent to the model (a window or region change gives a new hash), which is
also the key of the per-image conversation in the session.

Whole-slide files are the exception: hashing gigabytes on every open costs seconds to minutes, so a slide is named
by :func:`slide_fingerprint`, a SHA-256 over its size and its first and last MiB (where the TIFF/SVS header, the
directory and the DICOM header live). That identifies which slide was opened without reading all of it; it is *not*
a proof that no byte in the middle changed, and it never equals the full-file hash of the same slide.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "image_sha256", "slide_fingerprint", "text_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed by `hashlib.file_digest` (whole-slide images never load into memory).

    The one file hash of medapp; `models.manifest.sha256_file` is the same stdlib call for checkpoints (models may not
    import medapp), with a cache and progress on top."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def slide_fingerprint(path: str | Path, sample: int = _CHUNK) -> str:
    """Bounded-cost identity of a (huge) slide file: SHA-256 of a version tag, the size, the first and the last
    `sample` bytes. Reads at most 2 x `sample` bytes whatever the file size."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest.update(f"medapp-slide-fingerprint-v1:{size}:".encode())
        digest.update(fh.read(sample))
        if size > sample:
            fh.seek(max(sample, size - sample))
            digest.update(fh.read(sample))
    return digest.hexdigest()


def image_sha256(image: Any) -> str:
    """SHA-256 of a PIL image's mode, size and pixel bytes."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
