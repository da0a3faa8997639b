"""Chat panel: streamed answers, Stop, per-image history in the session, copy, region, worker failures."""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest
from PIL import Image

from medapp.session import Session
from ui.context import AppContext, ModelInput
from ui.model_bridge import ModelBridge
from ui.panels.chat import AI_LABEL, ChatPanel

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


class ScriptedEngine:
    """Stand-in for models.engine.DragonflyEngine (documented `generate` contract) until the engine lands: streams
    numbered tokens, stops on `cancel` before the next token like the real one. The real `medapp.jobs.ask` runs."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.info = types.SimpleNamespace(model_id="golden/dragonfly-v2-tiny", device="cpu", checkpoint_sha256="0" * 64)
        self.fail: Exception | None = None

    def generate(self, image, turns, question, *, max_new_tokens, do_sample=False, on_token=None, cancel=None, **_):
        self.calls.append({"image": image, "question": question, "turns": list(turns)})
        if self.fail is not None:
            raise self.fail
        out: list[str] = []
        reason = "max_new_tokens"
        for i in range(6 if question.startswith("short") else 400):
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            tok = f"w{i} "
            out.append(tok)
            if on_token is not None:
                on_token(tok)
            time.sleep(0.002)
        return types.SimpleNamespace(text="".join(out), token_ids=list(range(len(out))), stop_reason=reason)


def _image(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (64, 48), color)


class Viewer:
    """What a viewer publishes into the context: the image on screen and an optional ROI."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.image = _image((200, 10, 10))
        self.region: tuple[int, int, int, int] | None = None
        ctx.set_input_provider(self.provide)

    def provide(self, use_region: bool = True) -> ModelInput:
        image, region = self.image, self.region if use_region else None
        if region is not None:
            x, y, w, h = region
            image = image.crop((x, y, x + w, y + h))
        return ModelInput(lambda: image, description="test image", source=None, region=region)

    def show(self, image: Image.Image, region=None) -> None:
        self.image, self.region = image, region
        self.ctx.notify_input_changed(immediate=True)


@pytest.fixture
def jobs():
    """The engine double; named `jobs` because tests read the calls the job made."""
    return ScriptedEngine()


@pytest.fixture
def ctx(qtbot, tmp_path, jobs):
    c = AppContext(session=Session(tmp_path / "session"))
    c.model.set_engine(jobs)
    yield c
    assert c.workers.shutdown(10000), "workers still running after the test"


@pytest.fixture
def panel(qtbot, ctx, jobs):
    viewer = Viewer(ctx)
    bridge = ModelBridge(ctx)
    widget = ChatPanel(ctx, bridge)
    widget.viewer = viewer
    qtbot.addWidget(widget)
    widget.resize(520, 640)
    widget.show()
    return widget


def _answer(panel: ChatPanel, qtbot, question: str):
    job = panel.ask(question)
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=20000):
        pass
    return job


def test_answer_streams_in_and_is_marked_as_ai(qtbot, panel, ctx, jobs):
    seen: list[str] = []
    job = panel.ask("short question")
    job.token.connect(lambda _t: seen.append(panel.transcript.toPlainText()))
    with qtbot.waitSignal(job.finished, timeout=20000):
        pass
    assert len(seen) >= 2 and len(seen[0]) < len(seen[-1]), "text grew token by token"
    text = panel.transcript.toPlainText()
    assert "short question" in text and AI_LABEL in text and "w5" in text
    key = panel.viewer.provide().key
    assert ctx.session.history(key) == [("short question", "w0 w1 w2 w3 w4 w5 ")]
    assert panel.sent_image is not None and panel.sent_image.size == (64, 48)
    assert panel.ask_button.isEnabled() and not panel.stop_button.isEnabled()


def test_stop_cancels_within_a_token(qtbot, panel, ctx, jobs):
    job = panel.ask("long question")
    qtbot.waitUntil(lambda: "w2" in panel.transcript.toPlainText(), timeout=20000)
    panel.stop()
    shown_at_stop = panel.transcript.toPlainText().count(" w")
    with qtbot.waitSignal(job.finished, timeout=20000):
        pass
    turn = panel.last_answer()
    assert turn is not None and turn.stopped
    n_tokens = len(turn.answer.split())
    assert n_tokens < 400
    assert n_tokens <= shown_at_stop + 2, "at most the token in flight arrives after Stop"
    assert "[stopped]" in panel.transcript.toPlainText()


def test_history_is_per_image_and_follows_the_session(qtbot, panel, ctx, jobs):
    _answer(panel, qtbot, "short first")
    _answer(panel, qtbot, "short second")
    assert jobs.calls[1]["turns"] == [("short first", "w0 w1 w2 w3 w4 w5 ")], "earlier turn sent as context"
    panel.viewer.show(_image((0, 0, 250)))
    qtbot.waitUntil(lambda: "short first" not in panel.transcript.toPlainText())
    _answer(panel, qtbot, "short blue")
    panel.viewer.show(_image((200, 10, 10)))
    qtbot.waitUntil(lambda: "short second" in panel.transcript.toPlainText())
    assert "short blue" not in panel.transcript.toPlainText()
    reopened = Session(ctx.session.directory)
    assert [q for q, _ in reopened.history(panel.viewer.provide().key)] == ["short first", "short second"]


def test_copy_puts_labelled_answer_on_clipboard(qtbot, panel):
    from PySide6.QtGui import QGuiApplication

    _answer(panel, qtbot, "short copy")
    text = panel.copy_last_answer()
    assert QGuiApplication.clipboard().text() == text
    assert text.startswith(f"[{AI_LABEL}") and "short copy" in text and "w5" in text


def test_ask_about_region_sends_the_roi_or_the_whole_view(qtbot, panel, jobs):
    assert not panel.region_check.isEnabled()
    panel.viewer.show(_image((10, 200, 10)), region=(8, 4, 20, 10))
    assert panel.region_check.isEnabled() and panel.region_check.isChecked(), "a fresh ROI is what is asked about"
    _answer(panel, qtbot, "short region")
    assert jobs.calls[-1]["image"].size == (20, 10)
    assert "region 20×10 at (8, 4)" in panel.input_label.text()
    panel.region_check.setChecked(False)
    _answer(panel, qtbot, "short whole")
    assert jobs.calls[-1]["image"].size == (64, 48)
    panel.viewer.show(_image((10, 200, 10)), region=None)
    assert not panel.region_check.isEnabled()


def test_failure_in_worker_shows_dialog_and_panel_lives(qtbot, panel, jobs):
    jobs.fail = RuntimeError("engine exploded")
    _answer(panel, qtbot, "short boom")
    qtbot.waitUntil(lambda: panel.last_error_box is not None)
    assert "engine exploded" in panel.last_error_box.text()
    assert panel.isVisible() and panel.ask_button.isEnabled()
    assert "short boom" not in panel.transcript.toPlainText(), "a failed turn is not kept as an answer"
