"""The local cache of retrieved studies: resumable, verified, never half-written.

Layout: ``ROOT/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` plus ``ROOT/<Study>/.medapp-index.jsonl``.
Why this shape: files named by SOP Instance UID make a second retrieve of the same instance a no-op instead of a
duplicate; each file is written to a ``.part`` temp file, flushed and renamed, and only then appended to the index
with its size and SHA-256. So after any crash or a peer dying mid-transfer the index lists exactly the complete
files; `StudyCache.open` drops index lines whose file is missing or changed, deletes ``.part`` files and files the
index does not vouch for, and the next retrieve asks only for what is missing. UIDs are checked to be digits and
dots before they become file names (a peer cannot write outside the cache). A lock file keeps two medapp
processes from filling the same study at once. The index holds UIDs and hashes only, no patient data.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.pacs.errors import PacsError
from medapp.pacs.query import is_uid

__all__ = ["CacheEntry", "StudyCache", "INDEX_NAME"]

INDEX_NAME = ".medapp-index.jsonl"


@dataclass(frozen=True)
class CacheEntry:
    sop_uid: str
    series_uid: str
    sop_class: str
    sha256: str
    size: int

    def to_json(self) -> str:
        return json.dumps({"sop": self.sop_uid, "series": self.series_uid, "class": self.sop_class,
                           "sha256": self.sha256, "size": self.size}, separators=(",", ":"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class StudyCache:
    """One study's folder in the cache. Thread-safe `put` (the C-STORE handler runs on pynetdicom's thread)."""

    def __init__(self, root: str | Path, study_uid: str) -> None:
        if not is_uid(study_uid):
            raise PacsError(f"study UID: {study_uid!r} is not a DICOM UID")
        self.root = Path(root)
        self.study_uid = study_uid
        self.folder = self.root / study_uid
        self.index_path = self.folder / INDEX_NAME
        self.entries: dict[str, CacheEntry] = {}
        self._lock = threading.Lock()
        self._file_lock: Any = None

    # -- opening and checking -------------------------------------------------------------------------------------
    def open(self, *, verify: bool = True) -> StudyCache:
        """Take the study's lock, then load and repair the index (see the module docstring). Returns self."""
        from filelock import FileLock, Timeout

        if self.root.exists() and not self.root.is_dir():
            raise PacsError(f"{self.root}: not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file_lock = FileLock(str(self.folder / ".medapp-cache.lock"), timeout=0.5)
            self._file_lock.acquire()
        except Timeout:
            raise PacsError(f"{self.folder}: another medapp retrieve is filling this study; wait for it to "
                            "end") from None
        except OSError as exc:
            raise PacsError(f"{self.folder}: cannot create the cache folder ({exc.strerror or exc})") from exc
        try:
            self._load(verify)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None

    def __enter__(self) -> StudyCache:
        return self.open() if self._file_lock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, verify: bool) -> None:
        entries: dict[str, CacheEntry] = {}
        dirty = False
        if self.index_path.exists():
            for line in self.index_path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    d = json.loads(line)
                    entry = CacheEntry(d["sop"], d["series"], str(d.get("class", "")), d["sha256"], int(d["size"]))
                except (ValueError, KeyError, TypeError):
                    dirty = True  # a line cut by a crash: its file is re-fetched
                    continue
                if not (is_uid(entry.sop_uid) and is_uid(entry.series_uid)):
                    dirty = True
                    continue
                path = self.path_for(entry.series_uid, entry.sop_uid)
                ok = path.is_file() and path.stat().st_size == entry.size
                if ok and verify:
                    ok = _sha256(path) == entry.sha256
                if ok:
                    entries[entry.sop_uid] = entry
                else:
                    dirty = True
        # Files the index does not vouch for: temp files and files renamed just before a crash.
        wanted = {self.path_for(e.series_uid, e.sop_uid) for e in entries.values()}
        for path in self.folder.rglob("*"):
            if path.is_file() and path.parent != self.folder and path not in wanted:
                path.unlink(missing_ok=True)
        self.entries = entries
        if dirty:
            self._rewrite_index()

    def _rewrite_index(self) -> None:
        from reports.atomic import atomic_write_text

        text = "".join(e.to_json() + "\n" for e in self.entries.values())
        atomic_write_text(self.index_path, text)

    # -- reading ------------------------------------------------------------------------------------------------
    def path_for(self, series_uid: str, sop_uid: str) -> Path:
        return self.folder / series_uid / f"{sop_uid}.dcm"

    def has(self, sop_uid: str) -> bool:
        return sop_uid in self.entries

    def files(self, series_uid: str | None = None) -> list[Path]:
        return sorted(self.path_for(e.series_uid, e.sop_uid) for e in self.entries.values()
                      if series_uid is None or e.series_uid == series_uid)

    # -- writing ------------------------------------------------------------------------------------------------
    def put(self, series_uid: str, sop_uid: str, sop_class: str, data: bytes) -> bool:
        """Store one complete instance. False (and nothing written) when the cache already has it."""
        if not (is_uid(series_uid) and is_uid(sop_uid)):
            raise PacsError("the PACS sent an instance whose UIDs are not valid DICOM UIDs")
        with self._lock:
            if sop_uid in self.entries:
                return False
            path = self.path_for(series_uid, sop_uid)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                entry = CacheEntry(sop_uid, series_uid, sop_class, hashlib.sha256(data).hexdigest(), len(data))
                with open(self.index_path, "a", encoding="utf-8") as fh:
                    fh.write(entry.to_json() + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise PacsError(f"{self.folder}: cannot write to the cache ({exc.strerror or exc})") from exc
            self.entries[sop_uid] = entry
            return True
