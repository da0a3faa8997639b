"""SHA-256 of checkpoint files: the `SHA256SUMS` manifest, a hash cache, and the checkpoint fingerprint.

Why: a report or an audit entry must say exactly which weights produced an answer, and a half-copied 16 GB folder must
not load silently. Hashing 16 GB takes about a minute, so it happens once (when `medapp model convert` writes the
files, or the first time `medapp model check` verifies them) and the result is cached, keyed by the file's absolute
path, size and modification time: a file that is replaced or edited gets a new mtime and is hashed again.

The manifest uses the `sha256sum` format (``<64 hex>  <relative path>``), so ``sha256sum -c SHA256SUMS`` checks a
converted folder without medapp. The checkpoint fingerprint (`checkpoint_fingerprint`) is the SHA-256 of the sorted
manifest lines of the weight files (``*.safetensors`` in the folder itself): the same value whether it comes from the
manifest, from the Hugging Face cache's blob names, or from hashing the files, and independent of config edits.
This module imports no torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import CheckpointFormatError, ChecksumMismatchError

__all__ = [
    "MANIFEST_NAME",
    "HashCache",
    "HashReport",
    "sha256_file",
    "read_manifest",
    "write_manifest",
    "verify_files",
    "known_hash",
    "checkpoint_fingerprint",
]

MANIFEST_NAME = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _default_cache_path() -> Path:
    env = os.environ.get("MEDAPP_HASH_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("medapp")) / "sha256-cache.json"


class HashCache:
    """A JSON file mapping "abs path" -> {size, mtime_ns, sha256}; a stale or unreadable entry is simply recomputed."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else _default_cache_path()
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, file: Path) -> str | None:
        st = file.stat()
        entry = self._read().get(str(file.resolve()))
        if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            value = entry.get("sha256")
            return value if isinstance(value, str) and _HEX64.match(value) else None
        return None

    def put(self, file: Path, sha256: str) -> None:
        st = file.stat()
        with self._lock:
            data = self._read()
            data[str(file.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError:
                pass  # a read-only cache only costs time, never correctness


class _Reporting(io.RawIOBase):
    """A binary file seen through `readinto` only, telling `progress(bytes)` after every read (for file_digest)."""

    def __init__(self, raw: io.BufferedReader, progress: Callable[[int], None]) -> None:
        super().__init__()
        self._raw, self._progress = raw, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        if n:
            self._progress(n)
        return n


def sha256_file(
    file: Path, cache: HashCache | None = None, progress: Callable[[int], None] | None = None
) -> str:
    """Hex SHA-256 of a file, from the cache when size and mtime still match; `progress(bytes)` per chunk read."""
    file = Path(file)
    if cache is not None:
        cached = cache.get(file)
        if cached:
            return cached
    with open(file, "rb") as fh:
        value = hashlib.file_digest(fh if progress is None else _Reporting(fh, progress), "sha256").hexdigest()
    if cache is not None:
        cache.put(file, value)
    return value


def read_manifest(folder: Path) -> dict[str, str] | None:
    """`{relative path: sha256}` from folder/SHA256SUMS, None when there is no manifest; a bad line is an error."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise CheckpointFormatError(f"{path}: line {number} is not '<sha256>  <file>'")
        entries[match.group(2)] = match.group(1).lower()
    return entries


def write_manifest(folder: Path, hashes: dict[str, str]) -> Path:
    """Write folder/SHA256SUMS (sorted, sha256sum format) and return its path."""
    path = Path(folder) / MANIFEST_NAME
    text = "".join(f"{hashes[name]}  {name}\n" for name in sorted(hashes))
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class HashReport:
    """Outcome of comparing files with a manifest: status is "verified", "mismatch", "incomplete" or "no-manifest"."""

    status: str
    checked: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # weight files present but not in the manifest

    @property
    def ok(self) -> bool:
        return self.status in ("verified", "no-manifest")

    def as_dict(self) -> dict:
        return {"status": self.status, "checked": self.checked, "mismatched": self.mismatched,
                "missing": self.missing, "unlisted": self.unlisted}


def verify_files(
    folder: Path, weight_names: Iterable[str], *, full: bool, cache: HashCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> HashReport:
    """Compare the folder with its manifest.

    ``full=False`` (every load): every listed file exists, every weight file is listed, and any hash already in the
    cache matches; nothing is read. ``full=True`` (`medapp model check`): every listed file is hashed (cache aware).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return HashReport(status="no-manifest")
    report = HashReport(status="verified")
    report.unlisted = sorted(name for name in weight_names if name not in manifest)
    for name, expected in sorted(manifest.items()):
        file = folder / name
        if not file.is_file():
            report.missing.append(name)
            continue
        if full:
            actual = sha256_file(file, cache, progress)
        else:
            cached = cache.get(file) if cache is not None else None
            if cached is None:
                continue
            actual = cached
        report.checked.append(name)
        if actual != expected:
            report.mismatched.append(name)
    if report.mismatched:
        report.status = "mismatch"
    elif report.missing or report.unlisted:
        report.status = "incomplete"
    return report


def raise_for_report(folder: Path, report: HashReport) -> None:
    """Turn a failed HashReport into a ChecksumMismatchError naming the files."""
    if report.ok:
        return
    parts = []
    if report.mismatched:
        parts.append("SHA-256 differs from the manifest for " + ", ".join(report.mismatched))
    if report.missing:
        parts.append("listed in the manifest but missing: " + ", ".join(report.missing))
    if report.unlisted:
        parts.append("weight files not in the manifest: " + ", ".join(report.unlisted))
    raise ChecksumMismatchError(f"{folder}: {'; '.join(parts)} (re-copy or re-convert the checkpoint)")


def known_hash(file: Path, manifest: dict[str, str] | None, name: str, cache: HashCache | None) -> str | None:
    """A file's SHA-256 without reading it: manifest, else Hugging Face blob name (cache symlink), else hash cache."""
    if manifest and name in manifest:
        return manifest[name]
    file = Path(file)
    if file.is_symlink():
        target = Path(os.readlink(file)).name
        if _HEX64.match(target) and file.resolve().parent.name == "blobs":
            return target  # the HF cache names LFS blobs by their SHA-256
    if cache is not None:
        return cache.get(file)
    return None


def checkpoint_fingerprint(file_hashes: dict[str, str]) -> str:
    """SHA-256 over the sorted `sha256sum` lines of the weight files: one value for the whole set of weights."""
    text = "".join(f"{file_hashes[name]}  {name}\n" for name in sorted(file_hashes))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
