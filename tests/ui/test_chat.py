"""Chat panel on the real core and the tiny golden model: streamed answers, Stop, per-image history kept in the
session, copy, ask about region, and a worker failure that leaves the panel alive."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from medapp.audit import AuditLog
from medapp.conversations import conversation_key
from medapp.session import Session
from medapp.settings import Settings
from ui.context import AppContext, ModelInput
from ui.model_bridge import ModelBridge
from ui.panels.chat import AI_LABEL, ChatPanel

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LONG = 400  # max_new_tokens for the Stop test: far more than are generated before Stop is pressed


class CtViewer:
    """What the image viewer publishes into the context: pydicom's CT slice at a window, with an optional ROI
    (the same `render_rgb` call the real viewer makes)."""

    def __init__(self, ctx: AppContext, path: Path) -> None:
        import dicom_io

        self.ctx = ctx
        self.stack = dicom_io.open_path(path)
        self.window = dicom_io.Window(40.0, 400.0)
        self.region: tuple[int, int, int, int] | None = None
        self.render_threads: list[int] = []
        ctx.set_input_provider(self.provide)

    def _render(self, window, roi):
        self.render_threads.append(threading.get_ident())
        return self.stack.render_rgb(0, window, region=roi)

    def provide(self, use_region: bool = True) -> ModelInput:
        stack, window, roi = self.stack, self.window, self.region if use_region else None
        return ModelInput(
            lambda: self._render(window, roi),
            description=f"CT slice 1 · W {window.width:g} / L {window.center:g}",
            source=stack.path,
            region=roi,
            modality="CT",
            kind=stack.kind,
        )

    def show(self, *, window=None, region=None) -> None:
        self.window = window or self.window
        self.region = region
        self.ctx.notify_input_changed(immediate=True)


@pytest.fixture
def ctx(qtbot, tmp_path, tiny_engine):
    c = AppContext(
        settings=Settings(max_new_tokens=12),
        session=Session(tmp_path / "session"),
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )
    c.model.set_engine(tiny_engine)
    yield c
    assert c.workers.shutdown(30000), "workers still running after the test"


@pytest.fixture
def panel(qtbot, ctx, pydicom_test_files):
    widget = ChatPanel(ctx, ModelBridge(ctx))
    widget.viewer = CtViewer(ctx, pydicom_test_files / "CT_small.dcm")
    qtbot.addWidget(widget)
    widget.resize(520, 640)
    widget.show()
    return widget


def _answer(panel: ChatPanel, qtbot, question: str):
    job = panel.ask(question)
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    return job


def _audit(ctx: AppContext, event: str) -> list[dict]:
    lines = ctx.audit.path.read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == event]


def test_answer_streams_in_and_is_marked_as_ai(qtbot, panel, ctx):
    snapshots: list[str] = []
    job = panel.ask("What does this CT slice show?")
    assert job is not None and panel.stop_button.isEnabled() and not panel.ask_button.isEnabled()
    job.token.connect(lambda _t: snapshots.append(panel.transcript.toPlainText()))
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    assert len(snapshots) >= 3, "the answer arrived token by token"
    assert all(len(a) < len(b) for a, b in zip(snapshots, snapshots[1:], strict=False)), "the transcript grew with every token"
    turn = panel.last_answer()
    assert turn is not None and not turn.stopped and turn.answer.strip()
    text = panel.transcript.toPlainText()
    assert "What does this CT slice show?" in text and AI_LABEL in text and turn.answer.strip()[:20] in text
    assert _audit(ctx, "ask")[-1]["details"]["n_tokens"] == 12
    key = conversation_key(panel.viewer.provide())
    assert ctx.session.history(key) == [("What does this CT slice show?", turn.answer)]
    assert panel.sent_image is not None and panel.sent_image.size == (128, 128)
    assert panel.sent_image.tobytes() == panel.viewer.provide().image.tobytes(), "the thumbnail is what was sent"
    assert panel.ask_button.isEnabled() and not panel.stop_button.isEnabled()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _answer(panel, qtbot, "Is there any abnormality?")
    qtbot.waitUntil(lambda: panel.input_label.text().startswith("Sent to the model"))
    panel.grab().save(str(SCREENSHOTS / "chat_answer.png"))


def test_stop_cancels_within_a_token(qtbot, panel, ctx):
    ctx.settings = Settings(max_new_tokens=LONG)
    pieces: list[str] = []
    job = panel.ask("Describe everything in detail.")
    # What the panel shows: a token the worker emitted just before Stop may still be queued when Stop returns;
    # the panel drops such tokens (job.is_cancelled), and so does this listener.
    job.token.connect(lambda piece: None if job.is_cancelled else pieces.append(piece))
    qtbot.waitUntil(lambda: len(pieces) >= 3, timeout=120000)
    panel.stop()
    shown_at_stop = len(pieces)
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    assert len(pieces) == shown_at_stop, "no token is shown after Stop"
    event = _audit(ctx, "ask")[-1]["details"]
    assert event["stop_reason"] == "cancelled"
    assert event["n_tokens"] <= shown_at_stop + 2 < LONG, "the engine stopped within a token of Stop"
    turn = panel.last_answer()
    assert turn is not None and turn.stopped
    assert "[stopped]" in panel.transcript.toPlainText()
    assert panel.ask_button.isEnabled()

    job = panel.ask("And again, until the window closes.")  # closing the window cancels through the bridge
    more: list[str] = []
    job.token.connect(more.append)
    qtbot.waitUntil(lambda: len(more) >= 2, timeout=120000)
    panel._bridge.cancel_all()
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    assert panel.last_answer().question.startswith("And again") and panel.last_answer().stopped
    assert not job.is_running


def test_stop_before_the_model_starts_keeps_nothing(qtbot, panel):
    job = panel.ask("Never mind")
    job.cancel()  # before the worker thread picks it up (or before its first token)
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    assert panel.ask_button.isEnabled() and not panel.stop_button.isEnabled()
    turn = panel.last_answer()
    assert turn is None or turn.stopped, "either nothing was asked, or it stopped at once"


def test_history_belongs_to_the_image_not_the_view_and_is_kept_in_the_session(qtbot, panel, ctx):
    """Issue #15 item 4: another window or region keeps the conversation on screen; each turn is labelled with
    its view; only the turns about the same pixels go to the model as context."""
    import dicom_io

    _answer(panel, qtbot, "First question")
    _answer(panel, qtbot, "Second question")
    key = conversation_key(panel.viewer.provide())
    panel.viewer.show(window=dicom_io.Window(300.0, 1500.0))  # other pixels, same image: the same conversation
    qtbot.waitUntil(lambda: not panel._preview_pending)
    assert "First question" in panel.transcript.toPlainText(), "the history stayed across the window change"
    _answer(panel, qtbot, "Bone window question")
    panel.viewer.show(window=dicom_io.Window(40.0, 400.0), region=(16, 24, 64, 48))
    qtbot.waitUntil(lambda: not panel._preview_pending)
    text = panel.transcript.toPlainText()
    assert all(q in text for q in ("First question", "Second question", "Bone window question"))
    assert text.count("About: CT slice 1 · W 400 / L 40") == 2 and text.count("About: CT slice 1 · W 1500") == 1
    assert "on screen" not in text, "no answer is about the region now on screen"
    reopened = Session(ctx.session.directory)
    assert [q for q, _ in reopened.history(key)] == ["First question", "Second question", "Bone window question"]
    turns = [e["details"]["turn"] for e in _audit(ctx, "ask")]
    assert turns == [1, 2, 1], "context: the earlier turns about the same pixels only, not the other window's"
    thumbnails = panel.transcript.images
    assert len(thumbnails) == 2 and all(not i.isNull() and max(i.width(), i.height()) == 64 for i in thumbnails.values())


def test_copy_puts_labelled_answer_on_clipboard(qtbot, panel):
    from PySide6.QtGui import QGuiApplication

    _answer(panel, qtbot, "Copy me")
    text = panel.copy_last_answer()
    assert QGuiApplication.clipboard().text() == text
    assert text.startswith(f"[{AI_LABEL}") and "Q: Copy me" in text and panel.last_answer().answer in text
    assert "\nAbout: CT slice 1 · W 400 / L 40\n" in text, "the copy says which view the answer was about"


def test_ask_about_region_sends_the_roi_or_the_whole_view(qtbot, panel):
    assert not panel.region_check.isEnabled()
    panel.viewer.show(region=(16, 24, 64, 48))
    assert panel.region_check.isEnabled() and panel.region_check.isChecked(), "a fresh ROI is what is asked about"
    assert "region 64×48 at (16, 24)" in panel.input_label.text()
    _answer(panel, qtbot, "What is in the region?")
    assert panel.sent_image.size == (64, 48)
    panel.region_check.setChecked(False)
    _answer(panel, qtbot, "And in the whole slice?")
    assert panel.sent_image.size == (128, 128)
    panel.viewer.show(region=None)
    assert not panel.region_check.isEnabled()


def test_failure_in_worker_shows_dialog_and_panel_lives(qtbot, panel):
    from medapp.jobs.ask import MAX_QUESTION_CHARS

    _answer(panel, qtbot, "x" * (MAX_QUESTION_CHARS + 1))  # the core refuses it inside the worker
    qtbot.waitUntil(lambda: panel.last_error_box is not None)
    assert "the limit is" in panel.last_error_box.text()
    assert panel.isVisible() and panel.ask_button.isEnabled() and not panel.stop_button.isEnabled()
    assert "xxxxxxxx" not in panel.transcript.toPlainText(), "a failed question is not kept as a turn"
    _answer(panel, qtbot, "Still working?")
    assert panel.last_answer().question == "Still working?"


def test_internal_error_is_one_sentence_and_the_question_stays_in_the_box(qtbot, panel, ctx, monkeypatch, tmp_path):
    """A bug in the model path: the dialog says what the CLI says, the app stays up, the typed question is kept."""
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    engine = ctx.model.engine

    def broken_generate(*args, **kwargs):
        raise RuntimeError("tensor shapes do not match")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "generate", broken_generate)
        panel.question.setText("Is there a pleural effusion?")
        job = panel.ask()
        with qtbot.waitSignal(job.finished, timeout=120000):
            pass
    qtbot.waitUntil(lambda: panel.last_error_box is not None)
    text = panel.last_error_box.text()
    assert text.startswith("internal error: RuntimeError: tensor shapes do not match (details: ")
    (log,) = (tmp_path / "home" / "crash").glob("crash-*.txt")
    assert str(log) in text
    assert panel.question.text() == "Is there a pleural effusion?"
    assert panel.isVisible() and panel.ask_button.isEnabled()
    _answer(panel, qtbot, "Still working?")
    assert panel.last_answer().question == "Still working?"


def test_pixels_are_rendered_off_the_ui_thread(qtbot, panel):
    import dicom_io

    ui_thread = threading.get_ident()
    qtbot.waitUntil(lambda: panel.thumbnail.pixmap() is not None and not panel.thumbnail.pixmap().isNull())
    panel.viewer.show(window=dicom_io.Window(300.0, 1500.0), region=(0, 0, 64, 64))
    qtbot.waitUntil(lambda: "Will be sent" in panel.input_label.text() and "px" in panel.input_label.text())
    _answer(panel, qtbot, "Where was this rendered?")
    assert panel.viewer.render_threads and ui_thread not in panel.viewer.render_threads


def test_without_a_model_the_first_question_loads_it_or_explains(
    qtbot, tmp_path, pydicom_test_files, v2_checkpoint, monkeypatch
):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))  # no model anywhere
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    ctx = AppContext(settings=Settings(max_new_tokens=4), session=Session(tmp_path / "s"))
    try:
        plain = ChatPanel(ctx, ModelBridge(ctx))
        qtbot.addWidget(plain)
        plain.viewer = CtViewer(ctx, pydicom_test_files / "CT_small.dcm")
        _answer(plain, qtbot, "Anyone there?")
        qtbot.waitUntil(lambda: plain.last_error_box is not None)
        assert "Dragonfly" in plain.last_error_box.text(), "the core says which model to get and where to put it"
        assert ctx.model.engine is None and plain.ask_button.isEnabled()

        # With the model folder in the settings, the first question loads the model in its worker.
        ctx.settings = Settings(max_new_tokens=4, model_dir=str(v2_checkpoint), device="cpu")
        ctx.model.reset()  # settings changed: the context builds a new core holder from them
        lazy = ChatPanel(ctx, ModelBridge(ctx))
        qtbot.addWidget(lazy)
        _answer(lazy, qtbot, "Load yourself")
        assert lazy.last_error_box is None and lazy.last_answer().answer
        qtbot.waitUntil(lambda: ctx.model.engine is not None, timeout=5000)
        assert ctx.model.engine.info.model_id == "dragonfly-v2-tiny"
    finally:
        assert ctx.workers.shutdown(30000)


def test_the_input_line_names_the_region_once():
    """Review: "slide region 800×800 px at (1635, 1791), 10× · region 800×800 at (1635, 1791) · 200×200 px" — the
    viewers' descriptions carry the region, the panel added it again."""
    from types import SimpleNamespace

    from ui.panels.chat import _describe_input

    slide = SimpleNamespace(description="slide region 800×800 px at (1635, 1791), 10×", region=(1635, 1791, 800, 800))
    assert _describe_input(slide, (200, 200)) == "slide region 800×800 px at (1635, 1791), 10× · 200×200 px"
    ct = SimpleNamespace(description="CT, image 1/1, W 400 L 40, region 64×48 at (16, 24)", region=(16, 24, 64, 48))
    assert _describe_input(ct).count("64×48") == 1
    bare = SimpleNamespace(description="CT slice 1", region=(16, 24, 64, 48))  # a description without it: added
    assert _describe_input(bare) == "CT slice 1 · region 64×48 at (16, 24)"
