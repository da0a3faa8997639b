"""Append-only, keyed hash-chained audit log (JSON Lines) of what was opened, asked, drafted, signed and exported.

HIPAA §164.312(b) asks for audit controls on systems that handle patient images; a reviewer must be able to trust
that the log was not edited afterwards. Three layers, each closing a gap the one before leaves open:

1. **SHA-256 chain** (every entry, also in logs written before keys existed): each entry carries the hash of the
   previous entry (``prev``) and its own ``hash`` over ``prev + canonical JSON``. Changing, inserting or deleting a
   line breaks the chain at that line and `verify` names it. Anyone can recompute it, so on its own it shows
   accidents, not an editor who re-hashes the whole file.
2. **HMAC chain** (``mac``): HMAC-SHA256 with a per-installation key over the previous entry's ``mac`` and the
   entry. The key (`medapp.paths.audit_key_path()`, 32 random bytes from `secrets`, file mode 0600) is created on
   the first append; it lives outside the audit folder and never enters the log. Without it an edited or re-hashed
   chain cannot be given valid MACs, and dropping the MACs to pass as an old log is caught by the anchor.
3. **Anchor** (`medapp.paths.audit_anchor_path()`): the entry count and head hash/MAC, itself MAC'ed with the key,
   rewritten atomically after every append *under the same file lock*. A cut end, an emptied or deleted log, or
   a log rebuilt without MACs no longer matches it. The report provenance (`jobs.report.draft_report`) carries the
   report's own entry number and MAC, so every printed report is an anchor outside this computer too
   (`medapp audit verify --expect N:MAC`).

What it does NOT protect against (stated so nobody relies on it for more):

* Someone who can read the key file and write the log can forge a consistent log and anchor: the key is a file of
  the same user, not a hardware token. Protect the data folder with the OS account; ship logs elsewhere
  (syslog, WORM storage) if insiders with that access are in scope.
* Rolling back log *and* anchor together to an earlier copy of both is consistent locally; only anchors kept
  elsewhere (the ones printed in reports) expose it. The anchor alone protects against truncation or rollback of
  the log alone.
* Deleting log, anchor and key together leaves a fresh installation: detectable only by their absence.
* Entries written before keys existed ("legacy, unkeyed") are covered only by the SHA chain until the first keyed
  entry, whose MAC then binds their final hash (a later rewrite of them breaks that link); a log that is entirely
  legacy verifies as "legacy, unkeyed", which says that a rewrite or a cut end cannot be detected.

An append refuses (`AuditWriteError`, fail closed) when the log no longer matches its anchor, so new entries do
not paper over a truncation. A crash between the log line and the anchor leaves the anchor one entry behind; that
is accepted (and said) by `verify` and healed by the next append.

The log holds no patient data: no names, IDs, dates of birth or paths. Inputs are identified by content hashes. The
question text and file base names are kept only when the user opts in (settings ``audit_question_text`` /
``audit_file_names``); `AuditLog.record` drops them otherwise, so a caller cannot leak them by mistake. Free-form
values are refused: every detail key must be in `DETAIL_KEYS`.

Writers serialise through a lock file, so the window and a command-line run can log to the same file at once. A
log kept at another path than the default keeps its key and anchor beside it (``<log>.key``, ``<log>.anchor.json``)
unless given.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import io
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from medapp import paths
from medapp.errors import UserError

__all__ = [
    "AuditLog", "AuditError", "AuditWriteError", "VerifyResult", "verify", "EVENTS", "DETAIL_KEYS", "GENESIS",
    "parse_expect", "companion_paths",
]

GENESIS = "0" * 64
EVENTS = frozenset({"open", "ask", "report", "sign", "export", "caption", "deid", "model", "eval"})
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


def _entry_mac(key: bytes, prev_mac: str, body: Mapping[str, Any]) -> str:
    """HMAC-SHA256 of the previous entry's MAC (GENESIS before the first keyed entry) and the entry."""
    return hmac.new(key, (prev_mac + _canonical(body)).encode("utf-8"), hashlib.sha256).hexdigest()


_ANCHOR_TAG = "medapp-audit-anchor-v1\n"


def _anchor_mac(key: bytes, anchor: Mapping[str, Any]) -> str:
    fields = {k: anchor.get(k) for k in ("entries", "head_hash", "head_mac")}
    return hmac.new(key, (_ANCHOR_TAG + _canonical(fields)).encode("utf-8"), hashlib.sha256).hexdigest()


class _KeyProblem(Exception):
    """The key or anchor file exists but cannot be used (message names the file)."""


def _read_key(path: Path) -> bytes | None:
    """The installation key, None if there is none yet."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _KeyProblem(f"{path}: cannot read the audit key ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise _KeyProblem(f"{path}: the audit key file is damaged (expected 64 hex digits)")
    return key


def _create_key(path: Path) -> bytes:
    """Read the key, creating it (0600, `secrets`) when missing; a concurrent creator wins cleanly (O_EXCL)."""
    key = _read_key(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = _read_key(path)
        if key is None:
            raise _KeyProblem(f"{path}: the audit key vanished while it was being created") from None
        return key
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    if os.name == "posix":
        os.chmod(path, 0o600)  # the mode given to os.open is the most the umask allows; make it exact
    key = _read_key(path)
    assert key is not None
    return key


def _read_anchor(path: Path, key: bytes | None) -> dict[str, Any] | None:
    """The anchor, None if there is none; `_KeyProblem` if it is damaged or its MAC is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _KeyProblem(f"{path}: the audit anchor cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    if not (isinstance(data, dict) and isinstance(data.get("entries"), int) and isinstance(data.get("mac"), str)
            and isinstance(data.get("head_mac"), str)):  # fmt: skip
        raise _KeyProblem(f"{path}: the audit anchor is damaged")
    if key is not None and not hmac.compare_digest(_anchor_mac(key, data), data["mac"]):
        raise _KeyProblem(f"{path}: the audit anchor does not match its MAC (it was edited)")
    return data


def _write_anchor(path: Path, key: bytes, entries: int, head_hash: str, head_mac: str) -> None:
    from reports.atomic import atomic_write_text

    anchor: dict[str, Any] = {"version": 1, "entries": entries, "head_hash": head_hash, "head_mac": head_mac}
    anchor["mac"] = _anchor_mac(key, anchor)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write_text(path, _canonical(anchor) + "\n")
    except Exception as exc:  # ReportError from the atomic writer, with the cause
        raise OSError(str(exc)) from exc


def companion_paths(path: str | Path | None = None) -> tuple[Path, Path, Path]:
    """(log, key, anchor) for the log at `path` (default: this user's log)."""
    return _companions(Path(path) if path is not None else None)


def _companions(path: Path | None) -> tuple[Path, Path, Path]:
    """(log, key, anchor): the data-folder key and anchor for the default log, siblings for any other log."""
    default = paths.audit_path()
    if path is None or os.path.abspath(path) == os.path.abspath(default):
        return default, paths.audit_key_path(), paths.audit_anchor_path()
    path = Path(path)
    return path, path.with_name(path.name + ".key"), path.with_name(path.name + ".anchor.json")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no login name (some containers): still log, but say so
        return "unknown"


class AuditLog:
    """One audit file. `record` appends one chained entry and returns it."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        include_question_text: bool = False,
        include_file_names: bool = False,
        key_path: str | Path | None = None,
        anchor_path: str | Path | None = None,
    ) -> None:
        self.path, self.key_path, self.anchor_path = _companions(Path(path) if path is not None else None)
        if key_path is not None:
            self.key_path = Path(key_path)
        if anchor_path is not None:
            self.anchor_path = Path(anchor_path)
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
        """Under the lock: check the log against its anchor, append one line (fsync), then move the anchor."""
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=30):
                key = _create_key(self.key_path)
                seq, prev, prev_mac = _tail(self.path)
                self._check_anchor(key, seq, prev_mac)
                entry = {"seq": seq + 1, "prev": prev, **body}
                digest = _entry_hash(prev, entry)
                mac = _entry_mac(key, prev_mac, entry)
                entry["hash"], entry["mac"] = digest, mac
                line = _canonical(entry) + "\n"
                with open(self.path, "a", encoding="utf-8", newline="\n") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
                _write_anchor(self.anchor_path, key, seq + 1, digest, mac)
        except Timeout:
            raise AuditWriteError(f"{self.path}: the audit log is locked by another medapp process (waited 30 s)") from None
        except _KeyProblem as exc:
            raise AuditWriteError(str(exc)) from exc
        except OSError as exc:
            raise AuditWriteError(f"{self.path}: cannot write the audit log ({exc.strerror or exc})") from exc
        return entry

    def _check_anchor(self, key: bytes, seq: int, tail_mac: str) -> None:
        """Refuse to append to a log that no longer reaches its anchor: new entries must not hide a cut end."""
        anchor = _read_anchor(self.anchor_path, key)
        if anchor is None:
            if tail_mac != GENESIS:
                raise AuditWriteError(
                    f"{self.anchor_path}: the audit anchor is missing although {self.path} holds keyed entries; "
                    f"run `medapp audit verify` and move the log aside before logging again"
                )
            return
        problem = None
        if anchor["entries"] > seq:
            problem = f"the log has {seq} entries but its anchor records {anchor['entries']} (its end was cut off)"
        elif anchor["entries"] == seq and not hmac.compare_digest(anchor["head_mac"], tail_mac):
            problem = "its last entry does not match the anchor (the log was rewritten)"
        if problem is not None:
            raise AuditWriteError(
                f"{self.path}: {problem}; run `medapp audit verify`, keep the log and {self.anchor_path.name} for "
                "review and move both aside before logging again"
            )


def _tail(path: Path) -> tuple[int, str, str]:
    """(seq, hash, mac) of the last entry, reading only the end of the file. (0, GENESIS, GENESIS) for a new log;
    the mac is GENESIS for a legacy (unkeyed) last entry, which is where the first keyed entry's MAC chain starts."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, GENESIS, GENESIS
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
        return int(last["seq"]), str(last["hash"]), str(last.get("mac") or GENESIS)
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditWriteError(
            f"{path}: the last line of the audit log is damaged; run `medapp audit verify {path}` "
            "and move the file aside before logging again"
        ) from exc


@dataclass(frozen=True)
class VerifyResult:
    """`ok`, the number of intact entries, and for a broken log the first bad line (1-based, None when the problem
    is the log as a whole, e.g. a cut end) and why. `legacy` counts the unkeyed entries at the start; `anchored`
    says the end was checked against the anchor; `note` is something true but harmless worth saying."""

    path: Path
    ok: bool
    entries: int
    line: int | None = None
    problem: str | None = None
    legacy: int = 0
    anchored: bool = False
    note: str | None = None

    def __str__(self) -> str:
        if not self.ok:
            where = f"line {self.line}: " if self.line is not None else ""
            return f"{self.path}: {where}{self.problem}"
        if not self.anchored:
            text = (f"{self.path}: OK (legacy, unkeyed), {self.entries} entries, hash chain intact; written without "
                    "a key and anchor, so a rewrite or a cut end cannot be detected")
        else:
            text = f"{self.path}: OK, {self.entries} entries, HMAC chain intact and the end matches the anchor"
            if self.legacy:
                text += f"; the first {self.legacy} entries predate keyed auditing (legacy, unkeyed)"
        return text + (f"; {self.note}" if self.note else "")


def parse_expect(text: str) -> tuple[int, str]:
    """"N:MAC" (as printed in a report's provenance) -> (N, mac prefix of at least 12 hex digits)."""
    seq, _, mac = text.strip().partition(":")
    mac = mac.strip().lower()
    if not seq.isdigit() or int(seq) < 1 or len(mac) < 12 or any(c not in "0123456789abcdef" for c in mac):
        raise UserError(f"--expect: expected ENTRY:HMAC as printed in a report (e.g. 17:3fa2c9...), got {text!r}")
    return int(seq), mac


def verify(
    path: str | Path | None = None,
    *,
    key_path: str | Path | None = None,
    anchor_path: str | Path | None = None,
    expect: tuple[int, str] | None = None,
) -> VerifyResult:
    """Check every line's JSON, sequence number, hash link and MAC, then the end against the anchor.

    Stops at the first break. `expect` = (entry number, MAC or a prefix of it), e.g. from a report's provenance:
    that entry must exist and carry that MAC."""
    path, default_key, default_anchor = _companions(Path(path) if path is not None else None)
    key_path = Path(key_path) if key_path is not None else default_key
    anchor_path = Path(anchor_path) if anchor_path is not None else default_anchor
    try:
        key = _read_key(key_path)
        anchor = _read_anchor(anchor_path, key)
    except _KeyProblem as exc:
        return VerifyResult(path, False, 0, None, str(exc))
    prev, prev_mac, count, legacy = GENESIS, GENESIS, 0, 0
    keyed = False
    macs: dict[int, str] = {}  # MACs of the entries the anchor and `expect` name
    wanted = {n for n in ((anchor or {}).get("entries"), expect[0] if expect else None) if n}
    fh: IO[bytes]
    try:
        fh = open(path, "rb")  # closed by the `with fh` below
    except FileNotFoundError:  # a deleted log is an empty one here; the anchor, if any, tells the difference
        fh = io.BytesIO(b"")
    except OSError as exc:
        return VerifyResult(path, False, 0, None, f"cannot read the audit log ({exc.strerror or exc})")
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            def broken(problem: str, lineno: int = lineno) -> VerifyResult:  # noqa: B023 — called in this iteration
                return VerifyResult(path, False, count, lineno, problem, legacy)  # noqa: B023

            if not raw.endswith(b"\n"):
                return broken("incomplete last line (the write was interrupted or the file was cut)")
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return broken("not a valid JSON entry")
            if not isinstance(entry, dict) or "hash" not in entry:
                return broken("entry has no hash")
            stored = entry.pop("hash")
            mac = entry.pop("mac", None)
            if entry.get("seq") != count + 1:
                return broken(f"sequence number {entry.get('seq')!r}, expected {count + 1} (an entry was removed or inserted)")
            if entry.get("prev") != prev:
                return broken("does not chain to the previous entry (an entry before it was removed, inserted or edited)")
            if _entry_hash(prev, entry) != stored:
                return broken("content does not match its hash (the entry was edited)")
            if mac is None:
                if keyed:
                    return broken("entry has no HMAC after keyed entries (it was inserted or rewritten without the "
                                  "key)")
                legacy += 1
            else:
                if key is None:
                    return broken(f"entry has an HMAC but the audit key {key_path} is missing, so the chain cannot be "
                                  "checked (was the key deleted?)")
                if not isinstance(mac, str) or not hmac.compare_digest(_entry_mac(key, prev_mac, entry), mac):
                    return broken("HMAC does not match (the entry was edited, or the chain re-hashed without the key)")
                keyed, prev_mac = True, mac
            if count + 1 in wanted:
                macs[count + 1] = mac or ""
            prev, count = stored, count + 1

    def whole(problem: str) -> VerifyResult:
        return VerifyResult(path, False, count, None, problem, legacy)

    note = None
    if anchor is None:
        if key is not None:
            return whole(f"the audit anchor {anchor_path} is missing, so a cut end cannot be ruled out (it exists "
                         "from the first keyed entry on; was it deleted?)")
        anchored = False
    else:
        if key is None:
            return whole(f"the audit key {key_path} is missing, so the anchor and the chain cannot be checked")
        n = anchor["entries"]
        if n > count:
            what = "the log is empty" if count == 0 else f"the log ends at entry {count}"
            return whole(f"{what} but its anchor records {n} entries: entries were cut from the end (or the log "
                         "was emptied or replaced)")
        if not hmac.compare_digest(macs.get(n, ""), anchor["head_mac"]):
            return whole(f"entry {n} does not match the anchor's HMAC: the log was rewritten or rebuilt without the "
                         "key")
        if count - n == 1:
            note = "the anchor is one entry behind (an append was interrupted); the next entry brings it up to date"
        elif count > n:
            return whole(f"the anchor is {count - n} entries behind the log: the anchor file was replaced by an "
                         "older copy")
        anchored = True
    if expect is not None:
        seq, mac_prefix = expect
        if seq > count:
            return whole(f"entry {seq} named by --expect is not in the log (it has {count} entries): the end was cut "
                         "off or the log replaced")
        if not macs.get(seq, "").startswith(mac_prefix):
            return whole(f"entry {seq} does not carry the HMAC given by --expect: the log was rewritten or replaced")
        note = "; ".join(p for p in (note, f"entry {seq} matches --expect") if p)
    return VerifyResult(path, True, count, legacy=legacy, anchored=anchored, note=note)
