"""medapp.signoff: what blocks signing, what is flagged, the typed-name confirmation, and the report's study."""

from __future__ import annotations

import json

import pytest

from medapp.audit import AuditLog
from medapp.errors import UserError
from medapp.session import Session
from medapp.signoff import (
    default_export_name,
    names_match,
    report_study_key,
    review_for_signing,
    same_study,
    sign_confirmed,
    study_key,
)
from reports.model import Identifiers, Provenance, Report

UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


def _report(findings: str = "Clear lungs.", impression: str = "Normal.", ai: bool = True, **texts: str) -> Report:
    report = Report(
        modality="CT",
        identifiers=Identifiers(patient_name="Doe John", study_date="20040119", study_instance_uid=UID),
        provenance=Provenance(model_id="dragonfly-v2-tiny") if ai else Provenance(),
    )
    for key, text in {"exam": "CT chest", "findings": findings, "impression": impression, **texts}.items():
        report.set_section(key, text)
    return report


@pytest.mark.parametrize("empty", ["findings", "impression"])
def test_empty_findings_or_impression_blocks(empty):
    report = _report(**{empty: "  \n"})
    review = review_for_signing(report)
    assert not review.can_sign and any(empty.capitalize() in b for b in review.blocking)
    flags = {s.key: s.flags for s in review.sections}
    assert flags[empty] == ("required, empty",)
    with pytest.raises(UserError, match="not signed"):
        sign_confirmed(report, "Dr A", "Dr A")
    assert not report.is_signed


def test_missing_required_section_blocks():
    report = Report(modality="CT")
    report.set_section("findings", "Something.")
    assert any("Impression" in b for b in review_for_signing(report).blocking)


def test_empty_and_unedited_ai_sections_are_warnings():
    report = _report(technique="", comparison="None.")
    report.mark_edited("impression")
    review = review_for_signing(report)
    assert review.can_sign
    flags = {s.key: s.flags for s in review.sections}
    assert flags["technique"] == ("empty",)
    assert flags["findings"] == ("AI text, not edited",) and flags["impression"] == ()
    assert any("Findings" in w for w in review.warnings) and any("Technique" in w for w in review.warnings)
    assert {s.key: s.flags for s in review_for_signing(_report(ai=False)).sections}["findings"] == ()


def test_typed_name_must_match_the_signer(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    report = _report()
    assert names_match("  dr  ana SOUZA ", "Dr Ana Souza") and not names_match("", "")
    for typed in ("", "Dr Ana", "Dr Ana Souzaa"):
        with pytest.raises(UserError, match="type your name"):
            sign_confirmed(report, typed, "Dr Ana Souza", audit=audit)
    assert not report.is_signed
    with pytest.raises(UserError, match="clinician"):
        sign_confirmed(report, "x", "  ", audit=audit)
    signature = sign_confirmed(report, "dr ana  souza", " Dr Ana Souza ", audit=audit)
    assert report.is_signed and signature.name == "Dr Ana Souza"
    events = [json.loads(line)["event"] for line in audit.path.read_text().splitlines()]
    assert events == ["sign"], "audited as before (medapp.jobs.export.sign_report)"
    assert any("already signed" in b for b in review_for_signing(report).blocking)


def test_edited_flag_round_trips_and_is_not_content():
    report = _report()
    before = report.content_sha256()
    report.sign("Dr A")
    report.mark_edited("findings")
    assert report.is_signed and report.content_sha256() == before, "marking is bookkeeping, not an amendment"
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.edited == frozenset({"findings"}) and again.is_signed
    old = report.to_dict()
    old.pop("edited")
    assert Report.from_dict(old).edited == frozenset(), "reports written before the flag still load"
    assert "edited" not in _report().to_dict(), "an unedited report keeps the old JSON shape"


class _Doc:
    def __init__(self, uid: str | None, path: str = "/x/a.dcm", modality: str = "CT") -> None:
        self.path, self._uid, self.metadata = path, uid, {"modality": modality}

    def dataset(self, frame: int = 0):
        return {"StudyInstanceUID": self._uid} if self._uid else {}


def test_study_keys_and_matching():
    ct, other, plain = _Doc(UID), _Doc("1.2.3", "/x/b.dcm"), _Doc(None, "/x/c.png")
    assert study_key(ct) == f"uid:{UID}" and study_key(plain) == "path:/x/c.png" and study_key(None) is None
    report = _report()
    assert report_study_key(report) == f"uid:{UID}"
    assert same_study(report, study_key(ct), ct) and not same_study(report, study_key(ct), other)
    unnamed = Report()
    assert same_study(unnamed, "path:/x/c.png", plain) and not same_study(unnamed, "path:/x/c.png", ct)


def test_default_export_name_names_the_study_not_the_patient():
    name = default_export_name(_report(), ".pdf")
    assert name == f"report_CT_20040119_{UID.replace('.', '')[-8:]}.pdf"
    assert "Doe" not in name and "John" not in name
    assert default_export_name(Report(), ".dcm") == "report.dcm"
    assert default_export_name(Report(), ".pdf", _Doc("1.2.345", modality="MR")) == "report_MR_12345.pdf"


def test_session_keeps_one_draft_per_study_and_loads_old_sessions(tmp_path):
    session = Session(tmp_path / "s")
    ct, mr = _report(), _report(findings="MR text.")
    session.set_report(ct, "uid:1")
    session.set_report(mr, "uid:2")
    session.set_export_dir(tmp_path)
    again = Session(tmp_path / "s")
    assert again.report("uid:1").text("findings") == "Clear lungs." and again.report("uid:2").text("findings") == "MR text."
    assert again.report("uid:3") is None and again.report() is None and again.state.export_dir == str(tmp_path)
    # a session written before drafts were per study: one draft, found again by its study's UID
    legacy = {"version": 1, "open_paths": [], "current": None, "views": {}, "conversations": {},
              "report_draft": _report().to_dict()}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "session.json").write_text(json.dumps(legacy))
    old = Session(tmp_path / "old")
    assert old.report().text("findings") == "Clear lungs." and old.report(f"uid:{UID}") is not None
    assert old.report("uid:9") is None and old.state.report_drafts == {}
