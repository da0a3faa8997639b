"""Report panel on the real core and the tiny golden model: generate → edit → regenerate one section → sign →
export PDF and DICOM PDF, autosave through the session, the draft banner, and worker failures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PySide6.QtGui import QFontMetrics

from medapp.audit import AuditLog
from medapp.session import Session
from medapp.settings import Settings
from ui.context import AppContext, ModelInput
from ui.model_bridge import ModelBridge
from ui.panels.report import DRAFT_BANNER, ReportPanel

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
INDICATION = "Cough for three weeks"


@pytest.fixture
def ct(pydicom_test_files):
    import dicom_io

    return dicom_io.open_path(pydicom_test_files / "CT_small.dcm")


@pytest.fixture
def ctx(qtbot, tmp_path, tiny_engine, ct):
    import dicom_io

    c = AppContext(
        settings=Settings(clinician_name="Dr Test Reader", max_new_tokens=24, letterhead="Radiology, Test Hospital"),
        session=Session(tmp_path / "session"),
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )
    c.model.set_engine(tiny_engine)
    window = dicom_io.Window(40.0, 400.0)
    c.set_input_provider(
        lambda use_region=True: ModelInput(
            lambda: ct.render_rgb(0, window), description="CT slice 1", source=ct.path, modality="CT",
            dataset=lambda: ct.dataset(0), frame=0, window=window, kind=ct.kind,
        )
    )
    yield c
    assert c.workers.shutdown(30000), "workers still running after the test"


@pytest.fixture
def panel(qtbot, ctx):
    widget = ReportPanel(ctx, ModelBridge(ctx))
    qtbot.addWidget(widget)
    widget.resize(640, 860)
    widget.show()
    return widget


def _run(qtbot, job):
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    return job


def _generate(qtbot, panel, indication=INDICATION) -> list[str]:
    panel.indication.setText(indication)
    tokens: list[str] = []
    job = panel.generate()
    assert job is not None
    job.token.connect(tokens.append)
    _run(qtbot, job)
    assert panel.report is not None, panel.status.text()
    return tokens


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_generate_edit_sign_export_pdf(qtbot, panel, ctx, tmp_path):
    assert DRAFT_BANNER in panel.banner.text() and not panel.sign_button.isEnabled()
    tokens = _generate(qtbot, panel)
    report = panel.report
    assert len(tokens) >= 3, "the draft streamed into the preview"
    assert report.provenance.model_id == "dragonfly-v2-tiny" and report.modality == "CT"
    assert report.text("indication") == INDICATION
    assert report.text("findings").strip(), "the model's text is kept (leftovers go to Findings)"
    for section in report.sections:
        assert panel.editor(section.key).toPlainText() == section.text
    assert DRAFT_BANNER in panel.banner.text()

    panel.editor("impression").setPlainText("No acute abnormality.")
    assert report.text("impression") == "No acute abnormality."
    qtbot.waitUntil(lambda: Session(ctx.session.directory).report().text("impression") == "No acute abnormality.")

    draft_pdf = tmp_path / "draft.pdf"
    _run(qtbot, panel.export_pdf(draft_pdf))
    draft_text = _pdf_text(draft_pdf.read_bytes())
    assert "AI DRAFT" in draft_text and "No acute abnormality." in draft_text
    assert "Radiology, Test Hospital" in draft_text, "letterhead from Settings"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(SCREENSHOTS / "report_panel_draft.png"))

    assert panel.sign()
    assert report.is_signed and "Signed by Dr Test Reader" in panel.banner.text()
    assert DRAFT_BANNER not in panel.banner.text() and not panel.sign_button.isEnabled()
    signed_pdf = tmp_path / "signed.pdf"
    _run(qtbot, panel.export_pdf(signed_pdf))
    signed_text = _pdf_text(signed_pdf.read_bytes())
    assert "No acute abnormality." in signed_text and "Dr Test Reader" in signed_text
    assert "AI DRAFT" not in signed_text
    assert panel.last_pdf == signed_pdf and panel.open_button.isEnabled()
    assert Session(ctx.session.directory).report().is_signed
    events = [json.loads(line)["event"] for line in ctx.audit.path.read_text().splitlines()]
    assert events == ["report", "export", "sign", "export"]
    assert {"indication", "impression"} <= report.edited, "the typed indication and the edit are the clinician's"
    panel.grab().save(str(SCREENSHOTS / "report_panel_signed.png"))

    panel.editor("findings").setPlainText("Small left pleural effusion.")
    assert not report.is_signed, "editing a signed report returns it to draft (reports.Report rule)"
    assert DRAFT_BANNER in panel.banner.text() and "Dr Test Reader" in panel.banner.text()
    assert panel.sign_button.isEnabled()


def test_open_pdf_uses_the_desktop_service(qtbot, panel, tmp_path, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    _generate(qtbot, panel)
    assert not panel.open_button.isEnabled()
    _run(qtbot, panel.export_pdf(tmp_path / "r.pdf"))
    assert panel.open_pdf() and opened == [str(tmp_path / "r.pdf")]


def test_regenerate_one_section_keeps_other_edits(qtbot, panel):
    _generate(qtbot, panel)
    model_findings = panel.report.text("findings")
    panel.editor("findings").setPlainText("To be replaced by the model.")
    job = panel.regenerate_section("findings")
    assert job is not None and panel.editor("findings").isReadOnly(), "no typing into a section being regenerated"
    panel.editor("impression").setPlainText("Typed while the findings were regenerated.")
    _run(qtbot, job)
    assert panel.report.text("findings") == model_findings == panel.editor("findings").toPlainText()
    assert panel.report.text("impression") == "Typed while the findings were regenerated."
    assert panel.editor("impression").toPlainText() == "Typed while the findings were regenerated."
    assert panel.report.text("indication") == INDICATION
    assert not panel.editor("findings").isReadOnly()


def test_new_draft_over_edits_asks_first(qtbot, panel, monkeypatch):
    _generate(qtbot, panel)
    panel.editor("impression").setPlainText("Mine.")
    monkeypatch.setattr(panel, "_confirm_replace", lambda: False)
    assert panel.generate() is None and panel.report.text("impression") == "Mine."
    monkeypatch.setattr(panel, "_confirm_replace", lambda: True)
    job = panel.generate()
    assert all(panel.editor(s.key).isReadOnly() for s in panel.report.sections), "no typing into a doomed draft"
    _run(qtbot, job)
    assert panel.report.text("impression") != "Mine." and not panel.editor("impression").isReadOnly()


def test_stopped_draft_leaves_report_unchanged(qtbot, panel, ctx):
    ctx.settings = Settings(max_new_tokens=400)
    job = panel.generate()
    tokens: list[str] = []
    job.token.connect(tokens.append)
    qtbot.waitUntil(lambda: len(tokens) >= 2, timeout=120000)
    panel.stop()
    _run(qtbot, job)
    assert panel.report is None and "Stopped" in panel.status.text()
    assert panel.generate_button.isEnabled()


def test_export_dicom_pdf_deidentified(qtbot, panel, ct, tmp_path):
    import pydicom

    source = ct.dataset(0)
    _generate(qtbot, panel)
    assert panel.report.identifiers.patient_name, "identifiers come from the shown frame's header"
    panel.deid_check.setChecked(True)
    out = tmp_path / "report.dcm"
    _run(qtbot, panel.export_dicom(out))
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and ds.Modality == "DOC"
    assert str(ds.PatientName) != str(source.PatientName)
    assert ds.StudyInstanceUID != source.StudyInstanceUID, "UIDs remapped by the de-identifier"
    pdf = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
    text = _pdf_text(pdf)
    assert "AI DRAFT" in text and panel.report.identifiers.patient_name not in text

    panel.deid_check.setChecked(False)
    identified = tmp_path / "identified.dcm"
    _run(qtbot, panel.export_dicom(identified))
    ds = pydicom.dcmread(identified)
    assert ds.StudyInstanceUID == source.StudyInstanceUID and str(ds.PatientName) == str(source.PatientName)


def test_dicom_export_refuses_another_study(qtbot, panel, ctx, pydicom_test_files, tmp_path):
    import dicom_io

    _generate(qtbot, panel)
    restarted = ReportPanel(ctx, ModelBridge(ctx))  # after a restart the draft's own image is not known
    qtbot.addWidget(restarted)
    mr = dicom_io.open_path(pydicom_test_files / "MR_small.dcm")
    ctx.set_input_provider(lambda use_region=True: ModelInput(
        lambda: mr.render_rgb(0), description="MR", source=mr.path, modality="MR", dataset=lambda: mr.dataset(0)))
    _run(qtbot, restarted.export_dicom(tmp_path / "wrong.dcm"))
    qtbot.waitUntil(lambda: restarted.last_error_box is not None)
    assert "another study" in restarted.last_error_box.text() and not (tmp_path / "wrong.dcm").exists()


def test_failure_in_worker_shows_dialog_and_panel_lives(qtbot, panel):
    from medapp.jobs.report import MAX_INDICATION_CHARS

    panel.indication.setText("x" * (MAX_INDICATION_CHARS + 1))  # the core refuses it inside the worker
    _run(qtbot, panel.generate())
    qtbot.waitUntil(lambda: panel.last_error_box is not None)
    assert "the limit is" in panel.last_error_box.text()
    assert panel.isVisible() and panel.generate_button.isEnabled() and panel.report is None
    _generate(qtbot, panel)  # and it still works


def test_edits_survive_a_restart_through_the_session(qtbot, panel, ctx):
    _generate(qtbot, panel)
    panel.editor("findings").setPlainText("Edited just before the crash.")
    directory = ctx.session.directory
    qtbot.waitUntil(lambda: Session(directory).report().text("findings") == "Edited just before the crash.")
    restarted = AppContext(session=Session(directory))
    again = ReportPanel(restarted, ModelBridge(restarted))
    qtbot.addWidget(again)
    assert again.editor("findings").toPlainText() == "Edited just before the crash."
    assert again.indication.text() == INDICATION
    assert DRAFT_BANNER in again.banner.text()


# -- sign-off dialog and the report's study (issue #15 item 3) -------------------------------------------------
def _typed_report(findings: str, impression: str):
    from reports.model import Identifiers, Provenance, Report

    report = Report(
        modality="CT",
        identifiers=Identifiers(patient_name="Doe^Jane", study_date="20040119", study_instance_uid="1.2.3.4567"),
        provenance=Provenance(model_id="dragonfly-v2-tiny"),
    )
    for key, text in (("exam", "CT chest"), ("indication", INDICATION), ("technique", ""),
                      ("findings", findings), ("impression", impression)):
        report.set_section(key, text)
    return report


def test_sign_refused_with_empty_findings_or_impression(qtbot, panel, ctx):
    panel.set_report(_typed_report("asdf qwer zxcv", ""))
    assert panel.sign_button.isEnabled(), "Sign… opens the review even when something blocks"
    panel.sign_button.click()
    dialog = panel.signoff_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    dialog.typed.setText("Dr Test Reader")
    assert not dialog.sign_button.isEnabled() and "Impression is empty" in dialog.problems.text()
    metrics = QFontMetrics(dialog.problems.font())  # review: the blocking line's sign was a missing-glyph box
    assert all(metrics.inFontUcs4(ord(ch)) for ch in dialog.problems.text() if ord(ch) > 0x7F)
    assert not dialog.sign() and not panel.report.is_signed
    assert not panel.sign(), "the scripted path follows the same rules"
    assert not panel.report.is_signed
    panel.set_report(_typed_report("", "Normal."))
    assert not panel.sign() and not panel.report.is_signed


def test_signoff_requires_the_typed_name(qtbot, panel, ctx):
    panel.set_report(_typed_report("No consolidation.", "No acute abnormality."))
    panel.editor("impression").setPlainText("No acute abnormality. Reviewed.")
    dialog = panel.open_signoff()
    assert dialog.signer.text() == "Dr Test Reader" and dialog.signer.isReadOnly()
    text = dialog.content.toPlainText()
    assert "No consolidation." in text and "[AI text, not edited]" in text and "[empty]" in text
    assert "Technique is empty" in dialog.problems.text()
    assert not dialog.sign_button.isEnabled()
    dialog.typed.setText("Dr Someone Else")
    assert not dialog.sign_button.isEnabled() and "does not match" in dialog.name_hint.text()
    dialog.typed.setText("  dr test   reader ")
    assert dialog.sign_button.isEnabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialog.resize(640, 620)
    dialog.grab().save(str(SCREENSHOTS / "signoff.png"))
    dialog.sign_button.click()
    assert panel.report.is_signed and panel.report.signature.name == "Dr Test Reader"
    assert not dialog.isVisible() and "Signed by Dr Test Reader" in panel.banner.text()
    events = [json.loads(line)["event"] for line in ctx.audit.path.read_text().splitlines()]
    assert events == ["sign"]


@pytest.fixture
def mr(pydicom_test_files):
    import dicom_io

    return dicom_io.open_path(pydicom_test_files / "MR_small.dcm")


def test_report_follows_the_study(qtbot, panel, ctx, ct, mr):
    from reports.model import Report

    ctx.view.open(ct)
    assert panel.report is None
    ct_report = Report(modality="CT")
    ct_report.set_section("findings", "CT findings.")
    panel.set_report(ct_report)
    panel.editor("findings").setPlainText("CT findings, edited.")
    ctx.view.open(mr)
    assert panel.report is None and panel.report_study != f"uid:{ct.dataset(0).StudyInstanceUID}"
    mr_report = Report(modality="MR")
    mr_report.set_section("findings", "MR findings.")
    panel.set_report(mr_report)
    ctx.view.open(ct)
    assert panel.report is ct_report and panel.editor("findings").toPlainText() == "CT findings, edited."
    ctx.view.open(mr)
    assert panel.report is mr_report
    # and a restart finds each study's draft in the session
    again = ReportPanel(ctx, ModelBridge(ctx))
    qtbot.addWidget(again)
    assert again.report.text("findings") == "MR findings."
    ctx.view.open(ct)
    assert again.report.text("findings") == "CT findings, edited."


def test_export_disabled_for_another_study(qtbot, panel, ctx, ct, mr, tmp_path):
    from reports.model import Identifiers, Report

    ctx.view.open(mr)
    late = Report(modality="CT", identifiers=Identifiers(study_instance_uid=str(ct.dataset(0).StudyInstanceUID)))
    late.set_section("findings", "CT findings.")
    ctx.view.report = late  # set from elsewhere while the MR is on screen
    assert panel.report is late and not panel.study_matches
    assert not panel.pdf_button.isEnabled() and not panel.dicom_button.isEnabled()
    assert panel.export_pdf(tmp_path / "x.pdf") is None and not (tmp_path / "x.pdf").exists()
    assert "another study" in panel.status.text()
    ctx.view.open(ct)
    ctx.view.report = late
    assert panel.study_matches and panel.pdf_button.isEnabled() and panel.dicom_button.isEnabled()


def test_default_export_name_names_the_study(qtbot, panel, ctx, ct, tmp_path):
    ctx.view.open(ct)
    _generate(qtbot, panel)
    ids = panel.report.identifiers
    assert ids.patient_name and ids.study_instance_uid
    path = panel.default_export_path(".pdf")
    assert path.name.startswith(f"report_CT_{ids.study_date}_") and path.name.endswith(".pdf")
    assert ids.study_instance_uid.replace(".", "")[-8:] in path.name
    for part in ids.patient_name.replace("^", " ").split():
        assert part.lower() not in path.name.lower()
    out = tmp_path / "exports"
    out.mkdir()
    _run(qtbot, panel.export_pdf(out / path.name))
    assert ctx.session.state.export_dir == str(out) and panel.default_export_path(".dcm").parent == out


def test_section_regenerated_after_a_study_switch_stays_with_its_study(qtbot, panel, ctx, ct, mr):
    ctx.view.open(ct)
    _generate(qtbot, panel)
    ct_report = panel.report
    job = panel.regenerate_section("findings")
    ctx.view.open(mr)  # the clinician moves on while the model rewrites the CT findings
    _run(qtbot, job)
    assert panel.report is None, "the MR shows no CT text"
    ctx.view.open(ct)
    assert panel.report is ct_report and panel.editor("findings").toPlainText() == ct_report.text("findings")


def test_findings_box_is_at_least_ten_lines_and_grows(qtbot, panel):
    """Findings is where the report's text is: never a 3-line slot, and it grows with the text (issue #15 item 6)."""
    panel.set_report(_typed_report("No focal lesion.", "Normal study."))
    findings, impression = panel.editor("findings"), panel.editor("impression")
    line = findings.fontMetrics().lineSpacing()
    assert findings.height() >= 10 * line
    assert impression.height() < 5 * line, "the other sections stay compact"
    findings.setPlainText("\n".join(f"Finding {i}." for i in range(20)))
    qtbot.waitUntil(lambda: findings.height() >= 20 * line, timeout=5000)
