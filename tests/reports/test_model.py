"""Report document: draft → signed, amendments return to draft, JSON round trip, templates as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reports import KeyImage, Report, ReportError, Section, SignedReportError
from reports.atomic import atomic_write_json
from reports.templates import load_templates, template_for


def test_sign_edit_resign_cycle(make_report) -> None:
    report = make_report()
    assert report.state == "draft" and not report.is_signed
    when = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    sig = report.sign("  Dr Ana Souza ", when)
    assert report.is_signed and sig.name == "Dr Ana Souza" and sig.signed_at == when
    with pytest.raises(SignedReportError, match="already signed by Dr Ana Souza"):
        report.sign("Someone else")
    report.set_section("impression", "6 mm nodule.")
    assert report.state == "draft" and report.signature is None
    assert report.history[-1].signed_by == "Dr Ana Souza" and report.history[-1].signed_at == when
    report.sign("Dr Ana Souza")
    assert report.is_signed
    report.add_key_image(report.key_images[0])  # any content attribute edit reopens
    assert not report.is_signed and len(report.history) == 2


def test_sign_refuses_blank_name_and_empty_report() -> None:
    report = Report(sections=(Section("findings", "Findings", "  "),))
    with pytest.raises(ReportError, match="clinician's name"):
        report.sign("  ")
    with pytest.raises(ReportError, match="all empty"):
        report.sign("Dr X")


def test_backdoor_edit_never_shows_as_signed(make_report) -> None:
    report = make_report()
    report.sign("Dr A")
    object.__setattr__(report, "sections", (Section("findings", "Findings", "tampered"),))
    assert not report.is_signed and report.state == "draft"


def test_json_round_trip_keeps_everything(make_report, tmp_path: Path) -> None:
    report = make_report()
    report.sign("Dr Ana Souza", datetime(2026, 11, 22, 4, 0, tzinfo=UTC))
    path = atomic_write_json(tmp_path / "draft.json", report.to_dict())
    back = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    assert back.to_dict() == report.to_dict()
    assert back.is_signed and back.key_images[0].png == report.key_images[0].png
    assert back.provenance.input_hashes == (("CT_small.dcm", "cd" * 32),)
    assert back.identifiers.patient_name.startswith("王小明")


def test_from_dict_rejects_tampered_signature_and_bad_input(make_report) -> None:
    d = make_report().to_dict()
    d["signature"] = {"name": "Dr A", "signed_at": "2026-11-22T04:00:00+00:00", "content_sha256": "0" * 64}
    back = Report.from_dict(d)
    assert not back.is_signed and back.history[-1].reason == "content does not match the signature"
    for broken, msg in [
        ({**d, "format": "other"}, "format"),
        ({**d, "version": 99}, "version 99"),
        ({**d, "sections": [{"key": "findings", "title": "F", "text": 5}]}, r"sections\[0\].text"),
        ({**d, "key_images": [{"png_base64": "!!!"}]}, "base64"),
        ({**d, "key_images": [{"png_base64": "aGVsbG8="}]}, "PNG signature"),
        ({**d, "provenance": {"created": "yesterday"}}, "not an ISO time"),
    ]:
        with pytest.raises(ReportError, match=msg):
            Report.from_dict(broken)


def test_key_image_validation(ct_png: bytes) -> None:
    with pytest.raises(ReportError, match="exactly one"):
        KeyImage(caption="x")
    with pytest.raises(ReportError, match="region"):
        KeyImage(png=ct_png, region=(1, 2, 3))
    k = KeyImage(png=ct_png, window_center=-600, window_width=1500)
    assert k.window_text() == "W 1500 / L -600"


def test_from_template_keeps_unknown_keys() -> None:
    t = template_for("CR")
    r = Report.from_template(t, {"findings": "clear", "odd_extra": "kept"})
    assert [s.key for s in r.sections][: len(t.sections)] == list(t.keys)
    assert r.text("odd_extra") == "kept" and r.template == "chest-radiograph"
    with pytest.raises(ReportError, match="twice"):
        Report(sections=(Section("a", "A"), Section("a", "A")))


def test_added_sections_get_one_title_rule() -> None:
    """A template-filled and a hand-added unknown section read the same ("odd_extra" -> "Odd extra")."""
    from reports.model import default_title

    from_template = Report.from_template(template_for("CR"), {"odd_extra": "kept"})
    by_hand = Report()
    by_hand.set_section("odd_extra", "kept")
    by_hand.set_section("impression", "clear")
    assert from_template.section("odd_extra").title == by_hand.section("odd_extra").title == "Odd extra"
    assert default_title("odd_extra") == "Odd extra" and by_hand.section("impression").title == "Impression"


@pytest.mark.parametrize(
    ("modality", "name"),
    [("CR", "chest-radiograph"), ("dx", "chest-radiograph"), ("CT", "ct"), ("MR", "mr"), ("US", "ultrasound"),
     ("SM", "pathology"), ("slide", "pathology"), ("MG", "generic"), (None, "generic"), ("", "generic")],
)
def test_template_for(modality: str | None, name: str) -> None:
    t = template_for(modality)
    assert t.name == name
    assert "findings" in t.keys and "impression" in t.keys and t.prompt


def test_bad_template_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"format": "medapp.report-templates", "templates": [{"name": "x", "prompt": "p", '
                   '"sections": [{"key": "findings", "title": "F"}]}]}')
    with pytest.raises(ReportError, match=r"t\.json: template 'x' lacks section\(s\) impression"):
        load_templates(bad)
    bad.write_text("{nope")
    with pytest.raises(ReportError, match=r"t\.json: invalid JSON at line 1"):
        load_templates(bad)


def test_import_is_light() -> None:
    """The GUI and the CLI import reports at start-up: reportlab and pydicom load only when rendering."""
    import subprocess
    import sys

    code = (
        "import sys, reports, reports.model, reports.templates, reports.parse, reports.captions, reports.atomic; "
        "print(' '.join(m for m in ('reportlab', 'pydicom', 'torch', 'PIL', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
