"""The report document: sections, identifiers, key images, provenance and the draft → signed state.

Design choices (the GUI and the app core rely on them):

* Every part is an immutable value (frozen dataclasses, tuples) except :class:`Report` itself. Editing goes through
  attribute assignment on the report (``report.sections = ...``) or the helpers (:meth:`Report.set_section`,
  :meth:`Report.add_key_image` ...), so the report always sees an edit.
* **Editing a signed report returns it to draft.** A clinician expects an amendment to need re-signing, so the
  old signature moves to :attr:`Report.history` (who signed, when, when it was reopened) and the watermark comes back
  until someone signs again. Nothing is frozen silently and nothing raises mid-edit in the GUI.
* As a second guard the signature stores the SHA-256 of the signed content; :attr:`Report.is_signed` is true only
  while the content still matches, so an edit that slips past ``__setattr__`` (``object.__setattr__``, a hand-edited
  autosave file) can never show as signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.errors import ReportError, SignedReportError

__all__ = [
    "SECTION_KEYS",
    "Section",
    "Identifiers",
    "KeyImage",
    "Provenance",
    "Signature",
    "Amendment",
    "Report",
    "FORMAT",
    "FORMAT_VERSION",
    "default_title",
]

FORMAT = "medapp.report"
FORMAT_VERSION = 1

#: The canonical section keys, in the order of the ACR practice parameter (clinical-anchors C.1).
SECTION_KEYS: tuple[str, ...] = (
    "exam",
    "indication",
    "technique",
    "comparison",
    "findings",
    "impression",
    "limitations",
    "recommendations",
)
_DEFAULT_TITLES = {
    "exam": "Exam",
    "indication": "Clinical indication",
    "technique": "Technique",
    "comparison": "Comparison",
    "findings": "Findings",
    "impression": "Impression",
    "limitations": "Limitations",
    "recommendations": "Recommendations",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(when: datetime) -> datetime:
    """Naive times are taken as the machine's local time (what a clinician typed) and given its offset."""
    return when if when.tzinfo is not None else when.astimezone()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _parse_time(value: Any, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ReportError(f"report JSON: {where} must be an ISO time string, not {type(value).__name__}")
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError as exc:
        raise ReportError(f"report JSON: {where}: {value!r} is not an ISO time") from exc


@dataclass(frozen=True)
class Section:
    """One titled part of the report. ``key`` is stable (``findings``), ``title`` is what the PDF prints."""

    key: str
    title: str
    text: str = ""

    def __post_init__(self) -> None:
        for name in ("key", "title", "text"):
            if not isinstance(getattr(self, name), str):
                raise ReportError(f"section {self.key!r}: {name} must be a string")
        if not self.key.strip():
            raise ReportError("section key must not be empty")


@dataclass(frozen=True)
class Identifiers:
    """Patient and study identifiers shown in the report header (and left out of a de-identified rendering)."""

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""
    study_instance_uid: str = ""
    referring_physician: str = ""
    institution: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                object.__setattr__(self, f.name, "")
            elif not isinstance(value, str):
                object.__setattr__(self, f.name, str(value))

    @classmethod
    def from_dataset(cls, ds: Any) -> Identifiers:
        """Read the identifiers from a pydicom Dataset (absent elements become empty strings)."""

        def get(keyword: str) -> str:
            value = ds.get(keyword, "")
            return "" if value is None else str(value).strip()

        return cls(
            patient_name=get("PatientName").replace("^", " ").strip(),
            patient_id=get("PatientID"),
            birth_date=get("PatientBirthDate"),
            sex=get("PatientSex"),
            accession_number=get("AccessionNumber"),
            study_date=get("StudyDate"),
            study_description=get("StudyDescription"),
            study_instance_uid=get("StudyInstanceUID"),
            referring_physician=get("ReferringPhysicianName").replace("^", " ").strip(),
            institution=get("InstitutionName"),
        )

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class KeyImage:
    """An image the report refers to: PNG bytes (or a PNG/JPEG path), its caption and how it was displayed.

    ``window_center``/``window_width`` (and an optional preset name) record the VOI window the clinician used, so a
    reader can reproduce the view; ``frame`` and ``region`` (x, y, width, height in source pixels) say which part of
    the study it shows.
    """

    caption: str = ""
    png: bytes | None = None
    path: str | None = None
    window_center: float | None = None
    window_width: float | None = None
    window_name: str = ""
    frame: int | None = None
    region: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if (self.png is None) == (self.path is None):
            raise ReportError("key image needs exactly one of png bytes or a path")
        if self.png is not None:
            if not isinstance(self.png, (bytes, bytearray)) or not bytes(self.png).startswith(PNG_MAGIC):
                raise ReportError("key image: png must be PNG-encoded bytes (no PNG signature found)")
            object.__setattr__(self, "png", bytes(self.png))
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))
        if self.region is not None:
            region = tuple(self.region)
            if len(region) != 4 or not all(isinstance(v, (int, float)) for v in region):
                raise ReportError(f"key image: region must be (x, y, width, height), got {self.region!r}")
            object.__setattr__(self, "region", tuple(int(v) for v in region))
        if not isinstance(self.caption, str):
            raise ReportError("key image: caption must be a string")

    @classmethod
    def from_pil(cls, image: Any, caption: str = "", **kwargs: Any) -> KeyImage:
        """Encode a PIL image as PNG (what was on screen) and keep it in the report."""
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return cls(caption=caption, png=buf.getvalue(), **kwargs)

    def image_bytes(self) -> bytes:
        """The encoded image; a missing or unreadable file is a :class:`ReportError` naming it."""
        if self.png is not None:
            return self.png
        assert self.path is not None
        try:
            return Path(self.path).read_bytes()
        except OSError as exc:
            raise ReportError(f"{self.path}: key image cannot be read: {exc.strerror or exc}") from exc

    def window_text(self) -> str:
        """``"W 400 / L 40 (ct-mediastinum)"`` or ``""`` when no window was recorded."""
        parts = []
        if self.window_width is not None and self.window_center is not None:
            parts.append(f"W {self.window_width:g} / L {self.window_center:g}")
        if self.window_name:
            parts.append(f"({self.window_name})" if parts else self.window_name)
        return " ".join(parts)

    def _digest(self) -> str:
        try:
            return hashlib.sha256(self.image_bytes()).hexdigest()
        except ReportError:
            return "missing:" + str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "caption": self.caption,
            "png_base64": None if self.png is None else base64.b64encode(self.png).decode("ascii"),
            "path": self.path,
            "window_center": self.window_center,
            "window_width": self.window_width,
            "window_name": self.window_name,
            "frame": self.frame,
            "region": None if self.region is None else list(self.region),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "key image") -> KeyImage:
        if not isinstance(d, Mapping):
            raise ReportError(f"report JSON: {where} must be an object")
        png = None
        if d.get("png_base64"):
            try:
                png = base64.b64decode(d["png_base64"], validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise ReportError(f"report JSON: {where}.png_base64 is not valid base64") from exc
        try:
            return cls(
                caption=d.get("caption") or "",
                png=png,
                path=d.get("path"),
                window_center=d.get("window_center"),
                window_width=d.get("window_width"),
                window_name=d.get("window_name") or "",
                frame=d.get("frame"),
                region=None if d.get("region") is None else tuple(d["region"]),
            )
        except ReportError as exc:
            raise ReportError(f"report JSON: {where}: {exc}") from exc


@dataclass(frozen=True)
class Provenance:
    """Where the draft came from: enough to reproduce or audit it (clinical-anchors C.4)."""

    model_id: str = ""
    checkpoint_sha256: str = ""
    prompt: str = ""
    app_version: str = ""
    created: datetime | None = None
    input_hashes: tuple[tuple[str, str], ...] = ()  # (label, sha256) pairs; __post_init__ also takes a mapping
    # The app's audit-log anchor when the draft was made: its own entry number and that entry's HMAC. A printed
    # report is then a copy of the anchor outside the computer (`medapp audit verify --expect SEQ:HMAC`), so a log
    # cut back or rewritten together with its local anchor still shows. None/"" for reports made without a log.
    audit_seq: int | None = None
    audit_hmac: str = ""

    def __post_init__(self) -> None:
        if self.audit_seq is not None and (not isinstance(self.audit_seq, int) or self.audit_seq < 1):
            raise ReportError(f"provenance: audit_seq must be a positive entry number, got {self.audit_seq!r}")
        hashes = self.input_hashes
        pairs = tuple(hashes.items()) if isinstance(hashes, Mapping) else tuple(tuple(p) for p in hashes)
        if not all(len(p) == 2 for p in pairs):
            raise ReportError("provenance: input_hashes must map an input label to its sha256")
        object.__setattr__(self, "input_hashes", tuple((str(k), str(v)) for k, v in pairs))
        if self.created is not None:
            object.__setattr__(self, "created", _aware(self.created))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "checkpoint_sha256": self.checkpoint_sha256,
            "prompt": self.prompt,
            "app_version": self.app_version,
            "created": _iso(self.created),
            "input_hashes": dict(self.input_hashes),
            # only when present: older reports keep their exact dict, hence their content hash and signatures
            **({"audit_seq": self.audit_seq, "audit_hmac": self.audit_hmac} if self.audit_seq is not None else {}),
        }

    @property
    def audit_anchor(self) -> str:
        """"SEQ:HMAC" as `medapp audit verify --expect` takes it, or "" without an audit entry."""
        return f"{self.audit_seq}:{self.audit_hmac}" if self.audit_seq is not None else ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        if not isinstance(d, Mapping):
            raise ReportError("report JSON: provenance must be an object")
        hashes = d.get("input_hashes") or {}
        if not isinstance(hashes, Mapping):
            raise ReportError("report JSON: provenance.input_hashes must be an object")
        return cls(
            model_id=str(d.get("model_id") or ""),
            checkpoint_sha256=str(d.get("checkpoint_sha256") or ""),
            prompt=str(d.get("prompt") or ""),
            app_version=str(d.get("app_version") or ""),
            created=_parse_time(d.get("created"), "provenance.created"),
            input_hashes=tuple(hashes.items()),
            audit_seq=_audit_seq(d.get("audit_seq")),
            audit_hmac=str(d.get("audit_hmac") or ""),
        )


def _audit_seq(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportError("report JSON: provenance.audit_seq must be a whole number")
    return value


@dataclass(frozen=True)
class Signature:
    """A named clinician's sign-off, bound to the SHA-256 of the content they saw."""

    name: str
    signed_at: datetime
    content_sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "signed_at": self.signed_at.isoformat(), "content_sha256": self.content_sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str) or not d.get("content_sha256"):
            raise ReportError("report JSON: signature needs name, signed_at and content_sha256")
        when = _parse_time(d.get("signed_at"), "signature.signed_at")
        if when is None:
            raise ReportError("report JSON: signature.signed_at is missing")
        return cls(name=d["name"], signed_at=when, content_sha256=str(d["content_sha256"]))


@dataclass(frozen=True)
class Amendment:
    """A signature that an edit invalidated: who had signed, when, and when the report went back to draft."""

    signed_by: str
    signed_at: datetime
    reopened_at: datetime
    reason: str = "edited after signing"

    def to_dict(self) -> dict[str, str]:
        return {
            "signed_by": self.signed_by,
            "signed_at": self.signed_at.isoformat(),
            "reopened_at": self.reopened_at.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Amendment:
        if not isinstance(d, Mapping):
            raise ReportError("report JSON: history entries must be objects")
        signed_at = _parse_time(d.get("signed_at"), "history.signed_at")
        reopened_at = _parse_time(d.get("reopened_at"), "history.reopened_at")
        if signed_at is None or reopened_at is None:
            raise ReportError("report JSON: history entries need signed_at and reopened_at")
        return cls(str(d.get("signed_by") or ""), signed_at, reopened_at, str(d.get("reason") or ""))


#: Report attributes whose change is an amendment (everything except state bookkeeping).
_CONTENT_FIELDS = frozenset({"modality", "template", "sections", "identifiers", "key_images", "provenance"})


@dataclass(eq=False)
class Report:
    """A draft or signed report. Create one with :meth:`from_template` or directly with sections."""

    sections: tuple[Section, ...] = ()
    modality: str = ""
    template: str = ""
    identifiers: Identifiers = field(default_factory=Identifiers)
    key_images: tuple[KeyImage, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)
    signature: Signature | None = None
    history: tuple[Amendment, ...] = ()
    report_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Keys of the sections a clinician has edited by hand (:meth:`mark_edited`), or whose text never came from the
    #: model (the typed indication, the exam line from the header). Review bookkeeping, not content: it is outside
    #: the content hash, so marking never reopens a signature. A report with a model in its provenance whose
    #: section is not in here still holds the model's words (the sign-off review flags it).
    edited: frozenset[str] = frozenset()

    # -- construction -------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "sections":
            value = _as_sections(value)
        elif name == "key_images":
            value = tuple(value)
            if not all(isinstance(k, KeyImage) for k in value):
                raise ReportError("key_images must be KeyImage objects")
        if name in _CONTENT_FIELDS and getattr(self, "_ready", False) and self.signature is not None:
            if getattr(self, name) != value:
                self._reopen("edited after signing")
        object.__setattr__(self, name, value)

    @classmethod
    def from_template(
        cls,
        template: Any,
        texts: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Report:
        """Sections in the template's order and titles, filled from *texts* (e.g. ``parse_sections`` output).

        Keys in *texts* the template does not know are kept as extra sections at the end, never dropped.
        """
        texts = dict(texts or {})
        sections = [Section(s.key, s.title, texts.pop(s.key, "") or "") for s in template.sections]
        for key, text in texts.items():
            sections.append(Section(key, default_title(key), text or ""))
        kwargs.setdefault("template", template.name)
        return cls(sections=tuple(sections), **kwargs)

    # -- reading ------------------------------------------------------------------------------------------------
    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)

    def text(self, key: str) -> str:
        """The text of section *key*, ``""`` when the report has no such section."""
        try:
            return self.section(key).text
        except KeyError:
            return ""

    @property
    def title(self) -> str:
        """The exam line if filled, else the template name: what the PDF title and DICOM DocumentTitle show."""
        exam = self.text("exam").strip().splitlines()
        if exam and exam[0].strip():
            return exam[0].strip()
        return f"{self.modality} report".strip() if self.modality else "Report"

    def content_sha256(self) -> str:
        """SHA-256 over everything a signature vouches for (sections, identifiers, images, provenance)."""
        payload = {
            "modality": self.modality,
            "template": self.template,
            "sections": [[s.key, s.title, s.text] for s in self.sections],
            "identifiers": self.identifiers.to_dict(),
            "key_images": [
                {**{k: v for k, v in k_img.to_dict().items() if k != "png_base64"}, "sha256": k_img._digest()}
                for k_img in self.key_images
            ],
            "provenance": self.provenance.to_dict(),
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        # surrogatepass: a report loaded from an old file may hold lone surrogates; hashing must not raise on them
        # (identical bytes to plain UTF-8 for every valid string, so existing signatures still verify)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def is_signed(self) -> bool:
        return self.signature is not None and self.signature.content_sha256 == self.content_sha256()

    @property
    def state(self) -> str:
        """``"signed"`` or ``"draft"``."""
        return "signed" if self.is_signed else "draft"

    # -- editing ------------------------------------------------------------------------------------------------
    def set_section(self, key: str, text: str, title: str | None = None) -> None:
        """Replace a section's text (adds the section at the end if the report lacks it)."""
        if not isinstance(text, str):
            raise ReportError(f"section {key!r}: text must be a string")
        new = []
        found = False
        for s in self.sections:
            if s.key == key:
                new.append(replace(s, text=text, title=title if title is not None else s.title))
                found = True
            else:
                new.append(s)
        if not found:
            new.append(Section(key, title or default_title(key), text))
        self.sections = tuple(new)

    def mark_edited(self, key: str) -> None:
        """Record that the clinician edited section *key* (kept in the JSON; not part of the signed content)."""
        if key not in self.edited:
            object.__setattr__(self, "edited", frozenset((*self.edited, key)))

    @property
    def is_ai_draft(self) -> bool:
        """True when a model wrote the draft (its provenance names a model)."""
        return bool(self.provenance.model_id)

    def add_key_image(self, image: KeyImage) -> None:
        self.key_images = (*self.key_images, image)

    def remove_key_image(self, index: int) -> None:
        images = list(self.key_images)
        del images[index]
        self.key_images = tuple(images)

    # -- state --------------------------------------------------------------------------------------------------
    def sign(self, name: str, when: datetime | None = None) -> Signature:
        """Sign the current content as clinician *name*; the watermark disappears from later renderings.

        Raises :class:`ReportError` for a blank name or a report with no text at all, and
        :class:`SignedReportError` if it is already signed (edit it first: that returns it to draft).
        """
        if not isinstance(name, str) or not name.strip():
            raise ReportError("signing needs the clinician's name")
        if self.is_signed:
            assert self.signature is not None
            raise SignedReportError(f"report is already signed by {self.signature.name}")
        if not any(s.text.strip() for s in self.sections):
            raise ReportError("refusing to sign a report whose sections are all empty")
        if self.signature is not None:  # stale signature (content changed behind our back): keep it in history
            self._reopen("content changed after signing")
        sig = Signature(name.strip(), _aware(when) if when is not None else _now(), self.content_sha256())
        object.__setattr__(self, "signature", sig)
        return sig

    def _reopen(self, reason: str) -> None:
        sig = self.signature
        if sig is None:
            return
        entry = Amendment(sig.name, sig.signed_at, _now(), reason)
        object.__setattr__(self, "history", (*self.history, entry))
        object.__setattr__(self, "signature", None)

    # -- JSON ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (key images inline as base64 PNG) that :meth:`from_dict` turns back into an equal report."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "report_id": self.report_id,
            "modality": self.modality,
            "template": self.template,
            "sections": [{"key": s.key, "title": s.title, "text": s.text} for s in self.sections],
            "identifiers": self.identifiers.to_dict(),
            "key_images": [k.to_dict() for k in self.key_images],
            "provenance": self.provenance.to_dict(),
            "signature": None if self.signature is None else self.signature.to_dict(),
            "history": [h.to_dict() for h in self.history],
            # only when present: older readers and files keep their exact shape
            **({"edited": sorted(self.edited)} if self.edited else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        """Rebuild a report; a signature that no longer matches the content is kept in history, not honoured."""
        if not isinstance(d, Mapping):
            raise ReportError("report JSON: top level must be an object")
        if d.get("format") != FORMAT:
            raise ReportError(f"report JSON: format is {d.get('format')!r}, expected {FORMAT!r}")
        version = d.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ReportError(f"report JSON: version {version!r} is not supported (this app reads ≤ {FORMAT_VERSION})")
        raw_sections = d.get("sections", [])
        if not isinstance(raw_sections, list):
            raise ReportError("report JSON: sections must be a list")
        sections = []
        for i, s in enumerate(raw_sections):
            if not isinstance(s, Mapping):
                raise ReportError(f"report JSON: sections[{i}] must be an object")
            for name in ("key", "title", "text"):
                if not isinstance(s.get(name, ""), str):
                    raise ReportError(f"report JSON: sections[{i}].{name} must be a string")
            sections.append(Section(s.get("key", ""), s.get("title", ""), s.get("text", "")))
        ids = d.get("identifiers") or {}
        if not isinstance(ids, Mapping):
            raise ReportError("report JSON: identifiers must be an object")
        known = {f.name for f in fields(Identifiers)}
        images = d.get("key_images") or []
        if not isinstance(images, list):
            raise ReportError("report JSON: key_images must be a list")
        history = d.get("history") or []
        if not isinstance(history, list):
            raise ReportError("report JSON: history must be a list")
        edited = d.get("edited") or []
        if not isinstance(edited, list) or not all(isinstance(k, str) for k in edited):
            raise ReportError("report JSON: edited must be a list of section keys")
        report = cls(
            edited=frozenset(edited),
            sections=tuple(sections),
            modality=str(d.get("modality") or ""),
            template=str(d.get("template") or ""),
            identifiers=Identifiers(**{k: v for k, v in ids.items() if k in known}),
            key_images=tuple(KeyImage.from_dict(k, f"key_images[{i}]") for i, k in enumerate(images)),
            provenance=Provenance.from_dict(d.get("provenance") or {}),
            history=tuple(Amendment.from_dict(h) for h in history),
            report_id=str(d.get("report_id") or uuid.uuid4().hex),
        )
        if d.get("signature"):
            object.__setattr__(report, "signature", Signature.from_dict(d["signature"]))
            if not report.is_signed:
                report._reopen("content does not match the signature")
        return report


def _as_sections(value: Iterable[Any]) -> tuple[Section, ...]:
    out = []
    seen: set[str] = set()
    for s in value:
        if not isinstance(s, Section):
            raise ReportError(f"sections must be Section objects, got {type(s).__name__}")
        if s.key in seen:
            raise ReportError(f"section key {s.key!r} appears twice")
        seen.add(s.key)
        out.append(s)
    return tuple(out)


def default_title(key: str) -> str:
    """The conventional title of a section key (``"clinical_history"`` -> ``"Clinical history"``): the one rule for
    every section added without an explicit title, so a template-filled and a hand-added section read the same."""
    return _DEFAULT_TITLES.get(key, key.replace("_", " ").capitalize())
