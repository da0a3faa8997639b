"""Append-only, hash-chained audit log (JSON Lines) of what was opened, asked, drafted, signed and exported.

HIPAA §164.312(b) asks for audit controls on systems that handle patient images; a reviewer must be able to trust
that the log was not edited afterwards. Each entry therefore carries the SHA-256 of the previous entry and its own
hash over ``previous hash + canonical JSON of the entry``; changing, inserting or deleting any line breaks the
chain at that line, and `verify` names it. (Truncating the *end* of the log cannot be detected from the log alone;
copy the last hash elsewhere if that matters.)

The log holds no patient data: no names, IDs, dates of birth or paths. Inputs are identified by content hashes. The
question text and file base names are kept only when the user opts in (settings ``audit_question_text`` /
``audit_file_names``); `AuditLog.record` drops them otherwise, so a caller cannot leak them by mistake. Free-form
values are refused: every detail key must be in `DETAIL_KEYS`.

Writers serialise through a lock file, so the window and a command-line run can log to the same file at once.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medapp import paths
from medapp.errors import UserError

__all__ = ["AuditLog", "AuditError", "AuditWriteError", "VerifyResult", "verify", "EVENTS", "DETAIL_KEYS", "GENESIS"]

GENESIS = "0" * 64
EVENTS = frozenset({"open", "ask", "report", "sign", "export", "caption", "deid", "model"})
# Keys whose values can never carry patient data (counts, hashes, enums, numbers).
_SAFE_KEYS = frozenset(
    {
        "kind", "modality", "frames", "frame", "region", "window", "n_inputs", "n_done", "n_failed", "n_skipped",
        "cancelled", "stop_reason", "n_tokens", "answer_chars", "format", "deidentified", "output_sha256",
        "prompt_sha256", "template", "report_state", "turn", "device", "quant", "dtype", "model_id", "batch_size",
        "seconds", "error", "resumed",
    }
)
# DICOM network events (medapp.jobs.pacs): the remote node's address and DICOM UIDs only, never names or patient IDs;
# a search records which filters were used, not their values.
EVENTS = EVENTS | {"pacs_echo", "pacs_find", "pacs_get", "pacs_store"}
_SAFE_KEYS = _SAFE_KEYS | {"node", "level", "filters", "n_results", "study_uid", "series_uids", "sop_uids",
                           "retrieve", "n_expected", "n_received", "n_cached", "outcomes"}
_OPT_IN_QUESTION = "question"
_OPT_IN_FILE_NAMES = "file_names"
DETAIL_KEYS = _SAFE_KEYS | {_OPT_IN_QUESTION, _OPT_IN_FILE_NAMES}


class AuditError(Exception):
    """A caller passed an event or a detail the log must not hold (a programming error)."""


class AuditWriteError(UserError):
    """The audit log cannot be appended to (permissions, disk, lock, a damaged last line). Jobs fail closed on it:
    no model use goes unaudited."""


def _canonical(obj: Mapping[str, Any]) -> str:
    """One fixed text form per entry: sorted keys, no spaces, UTF-8 kept (hash input and line format)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _entry_hash(prev: str, body: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev + _canonical(body)).encode("utf-8")).hexdigest()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still log, but say so
        return "unknown"


class AuditLog:
    """One audit file. `record` appends one chained entry and returns it."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        include_question_text: bool = False,
        include_file_names: bool = False,
    ) -> None:
        self.path = Path(path) if path is not None else paths.audit_path()
        self.include_question_text = include_question_text
        self.include_file_names = include_file_names

    @classmethod
    def from_settings(cls, settings: Any, path: str | Path | None = None) -> AuditLog:
        return cls(
            path,
            include_question_text=bool(settings.audit_question_text),
            include_file_names=bool(settings.audit_file_names),
        )

    def record(
        self,
        event: str,
        *,
        inputs: Sequence[str] = (),
        model_sha256: str | None = None,
        question: str | None = None,
        file_names: Iterable[str | Path] = (),
        **details: Any,
    ) -> dict[str, Any]:
        """Append an `event` with input hashes, the model checkpoint hash and PHI-free details.

        `question` and `file_names` are stored only if the matching opt-in is on (file names as base names only).
        """
        if event not in EVENTS:
            raise AuditError(f"unknown audit event {event!r} (known: {', '.join(sorted(EVENTS))})")
        bad = set(details) - _SAFE_KEYS
        if bad:
            raise AuditError(f"audit details not allowed (could hold patient data): {', '.join(sorted(bad))}")
        for h in inputs:
            if not (isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)):
                raise AuditError(f"audit inputs must be SHA-256 hex digests, got {h!r}")
        clean: dict[str, Any] = {k: v for k, v in details.items() if v is not None}
        if question is not None and self.include_question_text:
            clean[_OPT_IN_QUESTION] = question
        names = [Path(n).name for n in file_names]
        if names and self.include_file_names:
            clean[_OPT_IN_FILE_NAMES] = names
        body: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user": _os_user(),
            "event": event,
            "inputs": list(inputs),
            "model_sha256": model_sha256,
            "details": clean,
        }
        return self._append(body)

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=30):
                seq, prev = _tail(self.path)
                entry = {"seq": seq + 1, "prev": prev, **body}
                entry["hash"] = _entry_hash(prev, entry)
                line = _canonical(entry) + "\n"
                with open(self.path, "a", encoding="utf-8", newline="\n") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
        except Timeout:
            raise AuditWriteError(f"{self.path}: the audit log is locked by another medapp process (waited 30 s)") from None
        except OSError as exc:
            raise AuditWriteError(f"{self.path}: cannot write the audit log ({exc.strerror or exc})") from exc
        return entry


def _tail(path: Path) -> tuple[int, str]:
    """(seq, hash) of the last entry, reading only the end of the file. (0, GENESIS) for a new log."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, GENESIS
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block = 4096
        data = b""
        while True:
            start = max(0, size - block)
            fh.seek(start)
            data = fh.read(size - start)
            lines = data.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                break
            block *= 4
    try:
        last = json.loads(lines[-1])
        return int(last["seq"]), str(last["hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditWriteError(
            f"{path}: the last line of the audit log is damaged; run `medapp audit verify {path}` "
            "and move the file aside before logging again"
        ) from exc


@dataclass(frozen=True)
class VerifyResult:
    """`ok`, the number of intact entries, and for a broken log the first bad line (1-based) and why."""

    path: Path
    ok: bool
    entries: int
    line: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path}: OK, {self.entries} entries, hash chain intact"
        return f"{self.path}: line {self.line}: {self.problem}"


def verify(path: str | Path | None = None) -> VerifyResult:
    """Check every line's JSON, sequence number, link to the previous hash and own hash; stop at the first break."""
    path = Path(path) if path is not None else paths.audit_path()
    prev, count = GENESIS, 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            def broken(problem: str, lineno: int = lineno) -> VerifyResult:
                return VerifyResult(path, False, count, lineno, problem)

            if not raw.endswith(b"\n"):
                return broken("incomplete last line (the write was interrupted or the file was cut)")
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return broken("not a valid JSON entry")
            if not isinstance(entry, dict) or "hash" not in entry:
                return broken("entry has no hash")
            stored = entry.pop("hash")
            if entry.get("seq") != count + 1:
                return broken(f"sequence number {entry.get('seq')!r}, expected {count + 1} (an entry was removed or inserted)")
            if entry.get("prev") != prev:
                return broken("does not chain to the previous entry (an entry before it was removed, inserted or edited)")
            if _entry_hash(prev, entry) != stored:
                return broken("content does not match its hash (the entry was edited)")
            prev, count = stored, count + 1
    return VerifyResult(path, True, count)
