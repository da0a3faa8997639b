"""C-FIND in the Study Root information model: studies by patient, date, modality, accession; series; instances.

Why filters are checked here and not left to the PACS: a malformed date or a stray backslash is silently read as
"match nothing" (or "match everything") by many PACS, which looks like an empty worklist. Each bad filter is one
sentence instead. Results are plain dataclasses (strings, ints) so the CLI can print them as JSON and the window
can fill a table; they hold patient data and are never logged.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from medapp.pacs.association import associate, lost, make_ae, require_service, status_text
from medapp.pacs.errors import PacsError
from medapp.pacs.nodes import LocalAE, Node

__all__ = ["StudyQuery", "StudyMatch", "SeriesMatch", "InstanceMatch", "find_studies", "find_series",
           "find_instances", "parse_date", "is_uid"]

FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_uid(value: Any) -> bool:
    """A syntactically valid DICOM UID (digits and dots, at most 64 characters): safe as a file name too."""
    return isinstance(value, str) and len(value) <= 64 and bool(_UID.match(value))


def parse_date(text: str, what: str) -> date:
    """``YYYYMMDD`` or ``YYYY-MM-DD`` → date, else `PacsError` naming the option."""
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise PacsError(f"{what}: {text!r} is not a date (use YYYY-MM-DD or YYYYMMDD)")


def _text_filter(value: str | None, what: str, limit: int) -> str:
    value = (value or "").strip()
    if "\\" in value:
        raise PacsError(f"{what}: a backslash is not allowed (it separates DICOM values)")
    if any(ord(c) < 32 for c in value):
        raise PacsError(f"{what}: control characters are not allowed")
    if len(value) > limit:
        raise PacsError(f"{what}: at most {limit} characters")
    return value


@dataclass(frozen=True)
class StudyQuery:
    """Study-level filters; empty ones match everything. Names and IDs may use the wildcards ``*`` and ``?``."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: date | None = None
    date_to: date | None = None
    modality: str = ""
    accession: str = ""
    study_uid: str = ""

    def __post_init__(self) -> None:
        _text_filter(self.patient_id, "patient ID", 64)
        _text_filter(self.patient_name, "patient name", 64 * 5)
        _text_filter(self.accession, "accession number", 16)
        if self.modality and not re.match(r"^[A-Z0-9_]{1,16}$", self.modality):
            raise PacsError(f"modality: {self.modality!r} is not a DICOM modality code (e.g. CT, MR, SM)")
        if self.study_uid and not is_uid(self.study_uid):
            raise PacsError(f"study UID: {self.study_uid!r} is not a DICOM UID")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise PacsError(f"date range: {self.date_from} is after {self.date_to}")

    def used_filters(self) -> list[str]:
        """The names of the filters that are set: what the audit log may keep (the values are patient data)."""
        return [k for k, v in asdict(self).items() if v]

    def date_range(self) -> str:
        """The DICOM date range matching value: ``A-B``, ``A-``, ``-B`` or ``""``."""
        if not (self.date_from or self.date_to):
            return ""
        a = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        b = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return a if a == b else f"{a}-{b}"


@dataclass(frozen=True)
class StudyMatch:
    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    description: str = ""
    modalities: str = ""
    n_series: int | None = None
    n_instances: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SeriesMatch:
    study_uid: str
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    n_instances: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InstanceMatch:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str = ""
    number: int | None = None


def _str(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Any, keyword: str) -> int | None:
    text = _str(ds, keyword)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _find(local: LocalAE, node: Node, identifier: Any, *, cancel: threading.Event | None = None,
          limit: int | None = None) -> list[Any]:
    """Send one C-FIND and collect the matches; a lost connection or a failure status is a `PacsError`."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

    ae = make_ae(local)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    level = identifier.QueryRetrieveLevel.lower()
    matches: list[Any] = []
    with associate(ae, node, what=f"a {level} search") as assoc:
        require_service(assoc, node, FIND_MODEL, "searching (C-FIND, Study Root)")
        last = time.monotonic()
        for status, found in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            if not status:
                raise PacsError(f"{lost(assoc, node, f'the {level} search', last)} ({len(matches)} matches received)")
            last = time.monotonic()
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if found is None:
                    assoc.abort()
                    raise PacsError(f"{node}: the PACS sent a malformed {level} search result")
                matches.append(found)
                if (cancel is not None and cancel.is_set()) or (limit is not None and len(matches) >= limit):
                    assoc.abort()
                    break
            elif code == 0x0000:
                break
            else:
                raise PacsError(f"{node}: the {level} search failed with {status_text(status)}")
    return matches


def _identifier(level: str, **keys: Any) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    if any(isinstance(v, str) and not v.isascii() for v in keys.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def find_studies(local: LocalAE, node: Node, query: StudyQuery, *, limit: int = 1000,
                 cancel: threading.Event | None = None) -> list[StudyMatch]:
    """Studies matching `query` (at most `limit`; the search is aborted once that many arrived)."""
    ident = _identifier(
        "STUDY",
        PatientID=query.patient_id,
        PatientName=query.patient_name,
        StudyDate=query.date_range(),
        ModalitiesInStudy=query.modality,
        AccessionNumber=query.accession,
        StudyInstanceUID=query.study_uid,
        StudyTime="",
        StudyDescription="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
    )
    out = []
    for ds in _find(local, node, ident, cancel=cancel, limit=limit):
        uid = _str(ds, "StudyInstanceUID")
        if not is_uid(uid):
            raise PacsError(f"{node}: the PACS sent a study without a valid Study Instance UID")
        out.append(StudyMatch(
            study_uid=uid,
            patient_id=_str(ds, "PatientID"),
            patient_name=_str(ds, "PatientName"),
            study_date=_str(ds, "StudyDate"),
            study_time=_str(ds, "StudyTime"),
            accession=_str(ds, "AccessionNumber"),
            description=_str(ds, "StudyDescription"),
            modalities=_str(ds, "ModalitiesInStudy"),
            n_series=_int(ds, "NumberOfStudyRelatedSeries"),
            n_instances=_int(ds, "NumberOfStudyRelatedInstances"),
        ))
    return sorted(out, key=lambda m: (m.study_date, m.study_time), reverse=True)


def find_series(local: LocalAE, node: Node, study_uid: str, *, modality: str = "",
                cancel: threading.Event | None = None) -> list[SeriesMatch]:
    """The series of one study (optionally of one modality)."""
    if not is_uid(study_uid):
        raise PacsError(f"study UID: {study_uid!r} is not a DICOM UID")
    ident = _identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="", Modality=modality,
                        SeriesNumber="", SeriesDescription="", NumberOfSeriesRelatedInstances="")
    out = []
    for ds in _find(local, node, ident, cancel=cancel):
        uid = _str(ds, "SeriesInstanceUID")
        if not is_uid(uid):
            raise PacsError(f"{node}: the PACS sent a series without a valid Series Instance UID")
        out.append(SeriesMatch(study_uid, uid, _str(ds, "Modality"), _int(ds, "SeriesNumber"),
                               _str(ds, "SeriesDescription"), _int(ds, "NumberOfSeriesRelatedInstances")))
    return sorted(out, key=lambda m: (m.number is None, m.number or 0, m.series_uid))


def find_instances(local: LocalAE, node: Node, study_uid: str, series_uid: str, *,
                   cancel: threading.Event | None = None) -> list[InstanceMatch]:
    """The instances of one series: what a retrieve must bring, so the cache can tell when it is complete."""
    ident = _identifier("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID="",
                        SOPClassUID="", InstanceNumber="")
    out = []
    for ds in _find(local, node, ident, cancel=cancel):
        uid = _str(ds, "SOPInstanceUID")
        if not is_uid(uid):
            raise PacsError(f"{node}: the PACS sent an instance without a valid SOP Instance UID")
        out.append(InstanceMatch(study_uid, series_uid, uid, _str(ds, "SOPClassUID"), _int(ds, "InstanceNumber")))
    return out
