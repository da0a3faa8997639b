"""Issue #15 items 4 and 5 in the real window, driven by real QTest keys and mouse events.

Item 4: a conversation belongs to the study and image, so its history stays on screen across window / level, region
and magnification changes (each answer labelled with the view it was about), and a new study shows its own.
Item 5: asking (or Esc) gives the keyboard back to the viewer; viewer keys never fire with Ctrl / Alt, with Shift
on a letter, or into a text field; a click without a drag keeps the drawn region.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from ui.viewer.image_viewer import ImageViewer
from ui.viewer.slide_viewer import SlideViewer

L = Qt.MouseButton.LeftButton


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, tiny_engine):
    """The main window with a session, short answers and the tiny golden engine loaded."""
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    from medapp.session import Session
    from medapp.settings import Settings
    from ui.context import AppContext
    from ui.main_window import MainWindow

    ctx = AppContext(settings=Settings(max_new_tokens=6), session=Session(tmp_path / "session"))
    ctx.model.set_engine(tiny_engine)
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.resize(1400, 860)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=5000)
    yield win
    win.close()
    assert ctx.workers.shutdown(30000), "workers still running after the test"


def _open(qtbot, win, path: Path):
    with qtbot.waitSignal(win.document_shown, timeout=30000):
        win.open_paths([path])
    qtbot.waitUntil(win.is_settled, timeout=30000)
    return win.current_viewer


def _idle_preview(qtbot, chat):
    qtbot.waitUntil(lambda: not chat.is_busy and not chat._preview_pending, timeout=30000)


def _ask_by_typing(qtbot, win, question: str) -> None:
    """Click into the question box, type, press Enter (real key events); wait for the answer."""
    chat = win.chat_panel
    _idle_preview(qtbot, chat)
    qtbot.mouseClick(chat.question, L)
    assert QApplication.focusWidget() is chat.question
    qtbot.keyClicks(chat.question, question)
    qtbot.keyClick(chat.question, Qt.Key.Key_Return)
    assert chat.is_busy, "Enter asked"
    qtbot.waitUntil(lambda: not chat.is_busy, timeout=120000)
    _idle_preview(qtbot, chat)


def _key(qtbot, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key press where the keyboard is (the focus widget), as a user's key would go."""
    qtbot.keyClick(QApplication.focusWidget(), key, modifier)


def _drag(qtbot, viewer, a: QPoint, b: QPoint) -> None:
    vp = viewer.viewport()
    qtbot.mousePress(vp, L, pos=a)
    qtbot.mouseMove(vp, pos=QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2))
    qtbot.mouseMove(vp, pos=b)
    qtbot.mouseRelease(vp, L, pos=b)


def _transcript(win) -> str:
    return win.chat_panel.transcript.toPlainText()


def test_history_survives_preset_region_and_a_new_study(qtbot, window, example_ct, pydicom_test_files, screenshots):
    win, chat = window, window.chat_panel
    viewer = _open(qtbot, win, example_ct)
    assert isinstance(viewer, ImageViewer)
    labels = [c.label for c in viewer.state.choices]
    lung = labels.index("ct-lung") + 1

    _ask_by_typing(qtbot, win, "Default window question")
    assert QApplication.focusWidget() is viewer, "asking gave the keyboard back to the viewer"
    _key(qtbot, getattr(Qt.Key, f"Key_{lung}"))  # the lung preset, typed where the keyboard now is
    assert viewer.state.window_label == "ct-lung" and chat.question.text() == ""
    _idle_preview(qtbot, chat)
    assert "Default window question" in _transcript(win), "the history survived the preset change"
    _ask_by_typing(qtbot, win, "Lung window question")

    _key(qtbot, Qt.Key.Key_R)  # region tool, then draw with the mouse
    a, b = viewer.mapFromScene(QPointF(20, 30)), viewer.mapFromScene(QPointF(90, 100))
    with qtbot.waitSignal(viewer.state.roi_changed, timeout=3000):
        _drag(qtbot, viewer, a, b)
    assert viewer.state.roi is not None
    _idle_preview(qtbot, chat)
    text = _transcript(win)
    assert "Default window question" in text and "Lung window question" in text, "the history survived the region"
    _ask_by_typing(qtbot, win, "Region question")

    turns = win._bridge.chat_history(chat._shown_key)
    assert [t.question for t in turns] == ["Default window question", "Lung window question", "Region question"]
    views = [t.view for t in turns]
    assert len({v.pixels for v in views}) == 3 and all(v.thumbnail for v in views)
    assert "ct-lung" not in views[0].label and "ct-lung" in views[1].label and views[1].region is None
    assert views[2].region == viewer.state.roi and "region" in views[2].label
    text = _transcript(win)
    assert text.count("About: ") == 3 and text.count("on screen") == 1, "one label per turn; the current view marked"
    assert len(chat.transcript.images) == 3 and not any(i.isNull() for i in chat.transcript.images.values())
    chat.grab().save(str(screenshots / "chat_history_views.png"))

    # A new study shows its own (empty) history; going back brings the first one back.
    other = _open(qtbot, win, pydicom_test_files / "MR_small.dcm")
    _idle_preview(qtbot, chat)
    assert other.state.modality == "MR" and "Default window question" not in _transcript(win)
    _ask_by_typing(qtbot, win, "MR question")
    _open(qtbot, win, example_ct)
    _idle_preview(qtbot, chat)
    qtbot.waitUntil(lambda: "Region question" in _transcript(win), timeout=10000)
    assert "Default window question" in _transcript(win) and "MR question" not in _transcript(win)


def test_slide_history_survives_magnification_and_region(qtbot, window, svs_slide, screenshots):
    win, chat = window, window.chat_panel
    viewer = _open(qtbot, win, svs_slide)
    assert isinstance(viewer, SlideViewer)
    viewer.setFocus()
    _key(qtbot, Qt.Key.Key_3)  # 5×
    qtbot.waitUntil(viewer.is_idle, timeout=20000)
    _ask_by_typing(qtbot, win, "Question at 5x")
    assert QApplication.focusWidget() is viewer
    _key(qtbot, Qt.Key.Key_4)  # 10×: another part at another resolution
    qtbot.waitUntil(viewer.is_idle, timeout=20000)
    _idle_preview(qtbot, chat)
    assert "Question at 5x" in _transcript(win), "the history survived the magnification change"
    _ask_by_typing(qtbot, win, "Question at 10x")
    viewer.set_roi((800, 800, 300, 200))
    _idle_preview(qtbot, chat)
    assert "Question at 5x" in _transcript(win) and "Question at 10x" in _transcript(win)
    views = [t.view for t in win._bridge.chat_history(chat._shown_key)]
    assert "5×" in views[0].label and "10×" in views[1].label and views[0].level is not None


def test_keys_never_fire_with_modifiers_or_into_text(qtbot, window, example_ct):
    win, chat = window, window.chat_panel
    viewer = _open(qtbot, win, example_ct)
    state = viewer.state
    viewer.setFocus()
    first = state.window_label
    for modifier in (Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier):
        _key(qtbot, Qt.Key.Key_2, modifier)
        assert state.window_label == first, f"{modifier} + 2 is no preset"
    _key(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert not state.show_phi, "a capital P (typed text) does not show patient data"
    _key(qtbot, Qt.Key.Key_2)
    assert state.window_label != first, "the plain key still works (the guard is not blocking everything)"
    _key(qtbot, Qt.Key.Key_P)
    assert state.show_phi and win.act_phi.isChecked()
    _key(qtbot, Qt.Key.Key_P)
    assert not state.show_phi

    # Typing in the question box: the keys are text, even when one reaches the viewer directly.
    qtbot.mouseClick(chat.question, L)
    qtbot.keyClicks(chat.question, "p1v")
    assert chat.question.text() == "p1v" and not state.show_phi and state.show_overlay
    label = state.window_label
    qtbot.keyClick(viewer, Qt.Key.Key_P)  # sent to the viewer while the question box has the keyboard
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert not state.show_phi and state.window_label == label
    # Esc in the question box: back to the viewer, the question kept, the region (none here) untouched.
    _key(qtbot, Qt.Key.Key_Escape)
    assert QApplication.focusWidget() is viewer and chat.question.text() == "p1v"
    _key(qtbot, Qt.Key.Key_1)
    assert state.window_label == state.choices[0].label


@pytest.mark.parametrize("kind", ["image", "slide"])
def test_a_click_keeps_the_region_a_drag_redraws_it(qtbot, window, example_ct, svs_slide, kind):
    win = window
    viewer = _open(qtbot, win, example_ct if kind == "image" else svs_slide)
    viewer.setFocus()
    _key(qtbot, Qt.Key.Key_R)
    assert viewer.tool == "roi"

    def roi():
        return viewer.state.roi if kind == "image" else viewer.roi

    centre = viewer.viewport().rect().center()
    a, b = centre - QPoint(60, 40), centre + QPoint(50, 40)
    _drag(qtbot, viewer, a, b)
    drawn = roi()
    assert drawn is not None
    qtbot.mouseClick(win.chat_panel.question, L)  # the keyboard goes elsewhere ...
    qtbot.mouseClick(viewer.viewport(), L, pos=centre + QPoint(100, 60))  # ... and a click brings it back
    assert roi() == drawn, "a click without a drag keeps the region"
    assert viewer._roi_item.isVisible()
    small = QApplication.startDragDistance() - 2
    _drag(qtbot, viewer, centre, centre + QPoint(small // 2, small - small // 2))
    assert roi() == drawn, "a jitter below the drag distance is still a click"
    _drag(qtbot, viewer, a, centre)
    assert roi() is not None and roi() != drawn, "a real drag draws a new region"
