"""Report panel: generate → edit → regenerate one section → sign → export PDF, autosave, draft banner, failures."""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest
from PIL import Image

from medapp.session import Session
from medapp.settings import Settings
from ui.context import AppContext, ModelInput
from ui.model_bridge import ModelBridge
from ui.panels.report import DRAFT_BANNER, ReportPanel

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

DRAFT_TEXT = "FINDINGS: Lungs are clear. No effusion.\nIMPRESSION: Normal study.\nRECOMMENDATIONS: None."


class ScriptedEngine:
    """Stand-in for the engine's `generate` contract; each call's text is taken from `texts` in turn."""

    def __init__(self) -> None:
        self.info = types.SimpleNamespace(model_id="golden/dragonfly-v2-tiny", device="cpu", checkpoint_sha256="0" * 64)
        self.texts = [DRAFT_TEXT]
        self.calls = 0
        self.fail: Exception | None = None
        self.delay = 0.0

    def generate(self, image, turns, question, *, max_new_tokens, do_sample=False, on_token=None, cancel=None, **_):
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        out = []
        for word in text.split(" "):
            if cancel is not None and cancel.is_set():
                return types.SimpleNamespace(text=" ".join(out), token_ids=[0] * len(out), stop_reason="cancelled")
            out.append(word)
            if on_token is not None:
                on_token(word + " ")
            time.sleep(self.delay)
        return types.SimpleNamespace(text=text, token_ids=[0] * len(out), stop_reason="eos")


@pytest.fixture
def engine():
    return ScriptedEngine()


@pytest.fixture
def ctx(qtbot, tmp_path, engine):
    c = AppContext(settings=Settings(clinician_name="Dr Test Reader"), session=Session(tmp_path / "session"))
    c.model.set_engine(engine)
    image = Image.new("RGB", (96, 80), (90, 90, 90))
    c.set_input_provider(lambda use_region=True: ModelInput(lambda: image, description="CT slice", source=None, modality="CT"))
    yield c
    assert c.workers.shutdown(10000), "workers still running after the test"


@pytest.fixture
def panel(qtbot, ctx):
    widget = ReportPanel(ctx, ModelBridge(ctx))
    qtbot.addWidget(widget)
    widget.resize(640, 820)
    widget.show()
    return widget


def _run(qtbot, job):
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=30000):
        pass
    return job


def _generate(qtbot, panel, indication="Cough for three weeks"):
    panel.indication.setText(indication)
    _run(qtbot, panel.generate())
    assert panel.report is not None


def test_generate_edit_sign_export_pdf(qtbot, panel, ctx, tmp_path):
    from pypdf import PdfReader

    assert DRAFT_BANNER in panel.banner.text()
    _generate(qtbot, panel)
    assert panel.editor("findings").toPlainText() == "Lungs are clear. No effusion."
    assert panel.editor("impression").toPlainText() == "Normal study."
    assert panel.editor("indication").toPlainText() == "Cough for three weeks"
    assert DRAFT_BANNER in panel.banner.text()

    panel.editor("impression").setPlainText("No acute abnormality.")
    assert panel.report.text("impression") == "No acute abnormality."
    qtbot.waitUntil(lambda: Session(ctx.session.directory).report().text("impression") == "No acute abnormality.")

    draft_pdf = tmp_path / "draft.pdf"
    _run(qtbot, panel.export_pdf(draft_pdf))
    assert "AI DRAFT" in "".join(p.extract_text() for p in PdfReader(draft_pdf).pages)

    assert panel.sign()
    assert panel.report.is_signed and "Signed by Dr Test Reader" in panel.banner.text()
    assert DRAFT_BANNER not in panel.banner.text()
    signed_pdf = tmp_path / "signed.pdf"
    _run(qtbot, panel.export_pdf(signed_pdf))
    text = "".join(p.extract_text() for p in PdfReader(signed_pdf).pages)
    assert "No acute abnormality." in text and "Dr Test Reader" in text
    assert "AI DRAFT" not in text
    assert panel.last_pdf == signed_pdf and panel.open_button.isEnabled()
    assert Session(ctx.session.directory).report().is_signed

    panel.editor("findings").setPlainText("Lungs are clear. Small left effusion.")
    assert not panel.report.is_signed, "editing a signed report returns it to draft (reports.Report rule)"
    assert DRAFT_BANNER in panel.banner.text() and "Dr Test Reader" in panel.banner.text()
    assert panel.sign_button.isEnabled()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(SCREENSHOTS / "report_panel_draft.png"))
    panel.sign()
    panel.grab().save(str(SCREENSHOTS / "report_panel_signed.png"))


def test_regenerate_one_section_keeps_other_edits(qtbot, panel, engine):
    _generate(qtbot, panel)
    engine.texts = ["FINDINGS: Something else entirely.\nIMPRESSION: A new impression."]
    engine.delay = 0.02
    job = panel.regenerate_section("impression")
    assert panel.editor("impression").isReadOnly(), "the section being regenerated cannot be typed into"
    panel.editor("findings").setPlainText("My own findings, typed during the regeneration.")
    _run(qtbot, job)
    assert panel.editor("impression").toPlainText() == "A new impression."
    assert panel.report.text("findings") == "My own findings, typed during the regeneration."
    assert panel.editor("findings").toPlainText() == "My own findings, typed during the regeneration."
    assert not panel.editor("impression").isReadOnly()


def test_stopped_draft_leaves_report_unchanged(qtbot, panel, engine):
    engine.delay = 0.05
    job = panel.generate()
    qtbot.waitUntil(lambda: len(panel.stream_view.toPlainText()) > 0, timeout=10000)
    panel.stop()
    _run(qtbot, job)
    assert panel.report is None and "Stopped" in panel.status.text()


def test_failure_in_worker_shows_dialog_and_panel_lives(qtbot, panel, engine):
    engine.fail = RuntimeError("model crashed")
    _run(qtbot, panel.generate())
    qtbot.waitUntil(lambda: panel.last_error_box is not None)
    assert "model crashed" in panel.last_error_box.text()
    assert panel.isVisible() and panel.generate_button.isEnabled() and panel.report is None


def test_edits_survive_a_restart_through_the_session(qtbot, panel, ctx):
    _generate(qtbot, panel)
    panel.editor("findings").setPlainText("Edited before the crash.")
    directory = ctx.session.directory
    qtbot.waitUntil(lambda: Session(directory).report().text("findings") == "Edited before the crash.", timeout=5000)
    restarted = AppContext(session=Session(directory))
    again = ReportPanel(restarted, ModelBridge(restarted))
    qtbot.addWidget(again)
    assert again.editor("findings").toPlainText() == "Edited before the crash."
    assert again.indication.text() == "Cough for three weeks"
    assert DRAFT_BANNER in again.banner.text()
