"""Batch caption tables: CSV (+ optional JSONL) rows appended as the batch runs, safe against crashes, resumable.

Each row is written with one ``write`` call, then flushed and fsync'ed, so after a crash or a kill the file holds
every finished row. A crash *during* a write can leave a partial last line; opening the writer again cuts that tail
(for CSV at the last line break outside quotes, so a caption with line breaks is never cut in half) and the row is
redone on resume. :meth:`CaptionWriter.done_keys` gives the (file, region) pairs already captioned without error.

The CSV is written first, then the JSONL, and resume reads the CSV only; a crash between the two writes would leave
a row in the CSV alone, and resume would then skip it for good. So opening a table with a JSONL beside it appends
the CSV rows the JSONL lacks (matched by file, region, time and input hash) before anything new is written.

Spreadsheet safety: a caption beginning with ``=``, ``+``, ``@`` (or ``-`` followed by a non-space) would run as a
formula when a clinician opens the CSV in Excel, so such CSV cells get a leading apostrophe (OWASP CSV injection
advice); :func:`read_caption_rows` removes it again. JSONL keeps the raw text.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from reports.errors import ReportError

__all__ = ["COLUMNS", "CaptionRow", "CaptionWriter", "read_caption_rows", "read_jsonl_rows", "region_key"]

log = logging.getLogger(__name__)

COLUMNS = ("file", "region", "caption", "model", "time", "input_sha256", "error")
_BOM = "\ufeff"  # lets Excel detect UTF-8 (CJK and µ in captions)


def region_key(region: Any) -> str:
    """A stable text form of a region: ``""`` for the whole image, ``"x,y,w,h"`` (``"x,y,w,h@level"``) for a crop."""
    if region is None or region == "":
        return ""
    if isinstance(region, str):
        return region.strip()
    values = [int(v) for v in region]
    if len(values) == 4:
        return ",".join(map(str, values))
    if len(values) == 5:
        return ",".join(map(str, values[:4])) + f"@{values[4]}"
    raise ReportError(f"region must be (x, y, w, h) or (x, y, w, h, level), got {region!r}")


@dataclass(frozen=True)
class CaptionRow:
    """One captioned input. ``error`` is empty on success, else a one-line reason (the row is then retried)."""

    file: str
    region: str = ""
    caption: str = ""
    model: str = ""
    time: str = ""
    input_sha256: str = ""
    error: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.region)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_TRIGGERS = ("=", "+", "@", "\t", "\r")


def _is_formula(value: str) -> bool:
    """Would a spreadsheet run this cell? (an apostrophe-prefixed formula counts, so guarding round-trips)."""
    if value.startswith("'"):
        return _is_formula(value[1:])
    return value.startswith(_TRIGGERS) or (len(value) > 1 and value[0] == "-" and not value[1].isspace())


def _guard(value: str) -> str:
    return "'" + value if _is_formula(value) else value


def _unguard(value: str) -> str:
    return value[1:] if value.startswith("'") and _is_formula(value[1:]) else value


def _utf8_safe(value: str) -> str:
    value = str(value).replace("\x00", "")  # NUL breaks csv readers
    return value.encode("utf-8", "replace").decode("utf-8")


def _csv_line(row: CaptionRow) -> str:
    buf = io.StringIO()
    values = row.to_dict()
    for name in ("caption", "error", "model"):
        values[name] = _guard(values[name])
    csv.writer(buf, lineterminator="\r\n").writerow([values[c] for c in COLUMNS])
    return buf.getvalue()


def _complete_csv_prefix(text: str) -> int:
    """Length of the longest prefix that ends at a record boundary (a line break outside quotes)."""
    end = len(text)
    while end > 0:
        cut = text.rfind("\n", 0, end)
        if cut < 0:
            return 0
        if text.count('"', 0, cut) % 2 == 0:
            return cut + 1
        end = cut
    return 0


def _repair_tail(path: Path, is_csv: bool) -> None:
    """Cut a partial last record left by a crash mid-write (logged, never silent)."""
    raw = path.read_bytes()
    if not raw or raw.endswith(b"\n"):
        return
    text = raw.decode("utf-8", errors="replace") if is_csv else ""
    if is_csv:
        keep = len(text[: _complete_csv_prefix(text)].encode("utf-8"))
    else:
        keep = raw.rfind(b"\n") + 1
    log.warning("%s: removed an incomplete last row (%d bytes) left by an interrupted run", path.name, len(raw) - keep)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def read_caption_rows(csv_path: str | os.PathLike[str]) -> list[CaptionRow]:
    """Every complete row of a caption CSV (header checked; a partial last record is ignored)."""
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read caption table: {exc}") from exc
    text = text[: _complete_csv_prefix(text)]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != COLUMNS:
        raise ReportError(f"{path}: not a medapp caption table (columns {header[:7]!r}, expected {list(COLUMNS)!r})")
    rows = []
    for n, rec in enumerate(reader, 2):
        if len(rec) != len(COLUMNS):
            raise ReportError(f"{path}: record {n} has {len(rec)} fields, expected {len(COLUMNS)}")
        values = dict(zip(COLUMNS, rec, strict=True))
        for name in ("caption", "error", "model"):
            values[name] = _unguard(values[name])
        rows.append(CaptionRow(**values))
    return rows


def _row_identity(row: CaptionRow) -> tuple[str, ...]:
    """What makes two copies of a row the same row (the caption text is left out: it is the long, free part)."""
    return (row.file, row.region, row.time, row.input_sha256)


def read_jsonl_rows(jsonl_path: str | os.PathLike[str]) -> list[CaptionRow]:
    """Every complete row of a caption JSONL file (a partial last line is ignored, as in the CSV)."""
    path = Path(jsonl_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read caption rows: {exc}") from exc
    rows = []
    for n, line in enumerate(text.split("\n")[:-1], 1):  # the text after the last newline is unfinished
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rows.append(CaptionRow(**{c: str(data.get(c, "")) for c in COLUMNS}))
        except (ValueError, AttributeError) as exc:
            raise ReportError(f"{path}: line {n} is not a caption row ({exc})") from exc
    return rows


class CaptionWriter:
    """Append caption rows to ``csv_path`` (and ``jsonl_path`` if given), one durable row at a time.

    Opening an existing table continues it (resume); its header must match. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, csv_path: str | os.PathLike[str], jsonl_path: str | os.PathLike[str] | None = None) -> None:
        self.csv_path = Path(csv_path)
        self.jsonl_path = Path(jsonl_path) if jsonl_path is not None else None
        self._csv = self._open(self.csv_path, is_csv=True)
        self._jsonl = self._open(self.jsonl_path, is_csv=False) if self.jsonl_path is not None else None
        if self._jsonl is not None:
            try:
                self._catch_up_jsonl()
            except BaseException:
                self.close()
                raise

    def _open(self, path: Path, *, is_csv: bool) -> TextIO:
        if not path.parent.is_dir():
            raise ReportError(f"{path}: folder {path.parent} does not exist")
        try:
            if path.exists():
                _repair_tail(path, is_csv)  # may leave an empty file if the crash hit the header
            fresh = not path.exists() or path.stat().st_size == 0
            if not fresh and is_csv:
                read_caption_rows(path)  # validates the header and every record before we append
            fh = open(path, "a", encoding="utf-8", newline="")
        except OSError as exc:
            raise ReportError(f"{path}: cannot open caption table: {exc.strerror or exc}") from exc
        if fresh and is_csv:
            self._durable(fh, _BOM + ",".join(COLUMNS) + "\r\n")
        return fh

    def _catch_up_jsonl(self) -> None:
        """Append to the JSONL every CSV row it lacks (a crash between the two writes of one row)."""
        assert self.jsonl_path is not None and self._jsonl is not None
        have: Counter[tuple[str, ...]] = Counter(_row_identity(r) for r in read_jsonl_rows(self.jsonl_path))
        missing = []
        for row in read_caption_rows(self.csv_path):
            ident = _row_identity(row)
            if have[ident] > 0:
                have[ident] -= 1
            else:
                missing.append(row)
        if not missing:
            return
        log.warning("%s: added %d row(s) present only in %s (an interrupted run)", self.jsonl_path.name,
                    len(missing), self.csv_path.name)
        try:
            self._durable(self._jsonl, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in missing))
        except OSError as exc:
            raise ReportError(f"{self.jsonl_path}: cannot append caption rows: {exc.strerror or exc}") from exc

    @staticmethod
    def _durable(fh: TextIO, text: str) -> None:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())

    def write(self, row: CaptionRow) -> None:
        """Append one row to both files, each flushed and fsync'ed before returning."""
        if self._csv.closed:
            raise ReportError(f"{self.csv_path}: caption writer is closed")
        # Lone surrogates (a bad decode upstream) cannot be stored as UTF-8: replace them, keep the row.
        row = CaptionRow(**{k: _utf8_safe(v) for k, v in row.to_dict().items()})
        try:
            self._durable(self._csv, _csv_line(row))
            if self._jsonl is not None:
                self._durable(self._jsonl, json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
        except OSError as exc:
            raise ReportError(f"{self.csv_path}: cannot append caption row: {exc.strerror or exc}") from exc

    def add(
        self,
        file: str | os.PathLike[str],
        caption: str = "",
        *,
        region: Any = None,
        model: str = "",
        input_sha256: str = "",
        error: str | BaseException = "",
        time: datetime | None = None,
    ) -> CaptionRow:
        """Build and write a row (time defaults to now, UTC; an exception becomes its one-line message)."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        row = CaptionRow(
            file=str(file),
            region=region_key(region),
            caption=caption,
            model=model,
            time=(time or datetime.now(UTC)).isoformat(timespec="seconds"),
            input_sha256=input_sha256,
            error=" ".join(str(error).split()),
        )
        self.write(row)
        return row

    def rows(self) -> list[CaptionRow]:
        return read_caption_rows(self.csv_path)

    def done_keys(self, *, include_errors: bool = False) -> set[tuple[str, str]]:
        """(file, region) pairs already captioned; failed rows count only with ``include_errors=True``."""
        return {r.key for r in self.rows() if include_errors or not r.error}

    def close(self) -> None:
        for fh in (self._csv, self._jsonl):
            if fh is not None and not fh.closed:
                fh.close()

    def __enter__(self) -> CaptionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
