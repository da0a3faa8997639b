"""Sign-off rules and "which study is this report about": Qt-free, shared by the window and the tests.

Why here: signing is a clinical act, so its rules must not live in a widget. `review_for_signing` says what would
be signed (every section with its flags), what blocks signing (empty Findings or Impression) and what the clinician
should look at again (empty other sections, AI-written sections nobody edited). `sign_confirmed` signs only when
nothing blocks and the clinician typed their own name (the signer name from Settings), case and spaces ignored;
the signature itself goes through `medapp.jobs.export.sign_report`, which audits it as before.

The study helpers tie a report to the study it belongs to (`study_key`), so the report panel can keep one draft per
study, refuse exports while a report is shown beside another study's image, and name exported files after the study
(never after the patient: `default_export_name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medapp.errors import UserError

__all__ = [
    "REQUIRED_SECTIONS",
    "SectionReview",
    "SignoffReview",
    "review_for_signing",
    "names_match",
    "sign_confirmed",
    "study_key",
    "report_study_key",
    "same_study",
    "default_export_name",
]

#: Sections a signed report must never leave empty (clinical-anchors: findings and impression are the report).
REQUIRED_SECTIONS: tuple[str, ...] = ("findings", "impression")

FLAG_EMPTY = "empty"
FLAG_REQUIRED_EMPTY = "required, empty"
FLAG_AI_UNEDITED = "AI text, not edited"


@dataclass(frozen=True)
class SectionReview:
    key: str
    title: str
    text: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignoffReview:
    """What signing would vouch for: every section (with flags), the blocking problems and the warnings."""

    sections: tuple[SectionReview, ...]
    blocking: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def can_sign(self) -> bool:
        return not self.blocking


def review_for_signing(report: Any) -> SignoffReview:
    """Check `report` (a `reports.Report`) before signing; never changes it."""
    if report is None:
        return SignoffReview((), ("There is no report to sign.",), ())
    ai = bool(getattr(report, "is_ai_draft", False))
    edited = set(getattr(report, "edited", ()) or ())
    sections: list[SectionReview] = []
    blocking: list[str] = []
    warnings: list[str] = []
    present = {s.key for s in report.sections}
    for key in REQUIRED_SECTIONS:
        if key not in present:
            blocking.append(f"The report has no {key.capitalize()} section.")
    for s in report.sections:
        flags: list[str] = []
        empty = not s.text.strip()
        if empty and s.key in REQUIRED_SECTIONS:
            flags.append(FLAG_REQUIRED_EMPTY)
            blocking.append(f"{s.title} is empty: a report is not signed without it.")
        elif empty:
            flags.append(FLAG_EMPTY)
            warnings.append(f"{s.title} is empty.")
        elif ai and s.key not in edited:
            flags.append(FLAG_AI_UNEDITED)
            warnings.append(f"{s.title} is the model's text and was not edited: read it before signing.")
        sections.append(SectionReview(s.key, s.title, s.text, tuple(flags)))
    if getattr(report, "is_signed", False):
        blocking.append("The report is already signed.")
    return SignoffReview(tuple(sections), tuple(blocking), tuple(warnings))


def _normalise(name: str) -> str:
    return " ".join((name or "").split()).casefold()


def names_match(typed_name: str, expected_name: str) -> bool:
    """True when the typed name is the signer's name, ignoring case and extra spaces (never for a blank name)."""
    expected = _normalise(expected_name)
    return bool(expected) and _normalise(typed_name) == expected


def sign_confirmed(
    report: Any, typed_name: str, expected_name: str, *, when: datetime | None = None, audit: Any = None
) -> Any:
    """Sign `report` as `expected_name` after the clinician confirmed by typing it (`typed_name`).

    `UserError` when a blocking problem remains or the typed name does not match; otherwise the signature from
    `medapp.jobs.export.sign_report` (audited)."""
    from medapp.jobs.export import sign_report

    review = review_for_signing(report)
    if review.blocking:
        raise UserError("not signed: " + " ".join(review.blocking))
    if not (expected_name or "").strip():
        raise UserError("a report is signed with the clinician's name; set it in the settings (clinician_name)")
    if not names_match(typed_name, expected_name):
        raise UserError("not signed: type your name exactly as it appears on the report to confirm")
    return sign_report(report, expected_name.strip(), when=when, audit=audit)


# -- the report's study -----------------------------------------------------------------------------------------
def study_key(document: Any) -> str | None:
    """The key a document's report drafts are kept under: ``uid:<StudyInstanceUID>`` when its header names one,
    else ``path:<file>``; None when nothing is open."""
    if document is None:
        return None
    dataset = getattr(document, "dataset", None)
    if callable(dataset):
        try:
            header = dataset(0)
        except Exception:  # noqa: BLE001 — an unreadable header: fall back to the path
            header = None
        uid = str(header.get("StudyInstanceUID", "") or "").strip() if header is not None else ""
        if uid:
            return f"uid:{uid}"
    path = getattr(document, "path", None)
    return f"path:{path}" if path is not None else None


def report_study_key(report: Any) -> str | None:
    """``uid:<StudyInstanceUID>`` of the study the report names, or None when it names none."""
    uid = str(getattr(getattr(report, "identifiers", None), "study_instance_uid", "") or "").strip()
    return f"uid:{uid}" if uid else None


def same_study(report: Any, report_key: str | None, document: Any) -> bool:
    """Does `report` (kept under `report_key`) belong to the document on screen? A report naming a study UID must
    match the document's; otherwise the key it was filed under must be the document's key."""
    doc_key = study_key(document)
    if report is None:
        return True
    if doc_key is None:
        return False
    named = report_study_key(report)
    if named is not None and doc_key.startswith("uid:"):
        return named == doc_key
    return report_key == doc_key


def _clean(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", part or "")


def default_export_name(report: Any, suffix: str = ".pdf", document: Any = None) -> str:
    """``report_<modality>_<studydate>_<short-uid><suffix>``: names the study, never the patient. Parts that are
    unknown are left out (``report.pdf`` for a report about nothing identifiable)."""
    ids = getattr(report, "identifiers", None)
    modality = _clean(getattr(report, "modality", "") or "")
    if not modality and document is not None:
        modality = _clean(str((getattr(document, "metadata", None) or {}).get("modality") or ""))
    date = _clean(getattr(ids, "study_date", "") or "")
    uid = re.sub(r"[^0-9A-Za-z]", "", str(getattr(ids, "study_instance_uid", "") or ""))
    if not uid and document is not None:
        key = study_key(document) or ""
        uid = re.sub(r"[^0-9A-Za-z]", "", key[4:]) if key.startswith("uid:") else ""
    parts = ["report", modality, date, uid[-8:]]
    return "_".join(p for p in parts if p) + suffix
