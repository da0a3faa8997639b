"""Main window: welcome → example CT, folders into the browser with thumbnails, slides, errors keep the window up,
drag and drop, model status, `medapp gui PATH --screenshot`."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from ui.viewer.image_viewer import ImageViewer
from ui.viewer.slide_viewer import SlideViewer

REPO = Path(__file__).resolve().parents[2]


def _settle(qtbot, window, timeout=20000):
    qtbot.waitUntil(window.is_settled, timeout=timeout)


def test_bare_start_welcome_opens_example_ct(qtbot, make_window, screenshots):
    window = make_window()
    assert window.stack.currentWidget() is window.welcome
    assert window.context.current_model_input() is None
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        qtbot.mouseClick(window.welcome.ct_button, Qt.MouseButton.LeftButton)
    _settle(qtbot, window)
    viewer = window.current_viewer
    assert isinstance(viewer, ImageViewer)
    assert viewer.state.modality == "CT" and viewer.state.n_frames == 1
    assert window.windowTitle() == "medapp — CT_small.dcm"
    # the study browser lists it with a thumbnail; the session remembers it (recent files)
    qtbot.waitUntil(lambda: window.browser.thumbnail_count() == 1, timeout=10000)
    assert window.recent_paths()[0].name == "CT_small.dcm"
    assert [a.text() for a in window.recent_menu.actions()][0].endswith("CT_small.dcm")
    # the model input is the viewer's: CT, 128×128, at the displayed window
    mi = window.context.current_model_input()
    assert mi.image.size == (128, 128) and mi.modality == "CT"
    # the tag browser follows the image on screen
    window.act_tags.trigger()
    qtbot.waitUntil(window.tag_dock.isVisible, timeout=5000)
    window.tag_browser.search.setText("Modality")
    assert ("(0008,0060)", "Modality", "CS", "CT") in window.tag_browser.visible_rows()
    window.act_tags.trigger()
    # press a lung preset through the keyboard and screenshot the window
    labels = [c.label for c in viewer.state.choices]
    qtbot.keyClick(viewer, getattr(Qt.Key, f"Key_{labels.index('ct-abdomen') + 1}"))
    _settle(qtbot, window)
    assert viewer.state.window_label == "ct-abdomen"
    window.grab().save(str(screenshots / "main_window_ct.png"))


def test_folder_opens_into_browser_with_thumbnails(qtbot, make_window, ct_series_dir, pydicom_test_files):
    window = make_window()
    with qtbot.waitSignal(window.document_shown, timeout=30000):
        window.open_paths([pydicom_test_files / "dicomdirtests"])
    _settle(qtbot, window, 30000)
    entries = window.browser.entries()
    series = [e for e in entries if e.kind == "series"]
    assert len(series) >= 10
    assert any("CT" in e.label for e in series) and any("MR" in e.label for e in series)
    # patients are numbered, no names, until patient data is switched on
    tree_text = []
    it = [window.browser.tree.topLevelItem(i) for i in range(window.browser.tree.topLevelItemCount())]
    while it:
        item = it.pop()
        tree_text.append(item.text(0))
        it.extend(item.child(i) for i in range(item.childCount()))
    assert any(t.startswith("Patient 1") for t in tree_text)
    qtbot.waitUntil(lambda: window.browser.thumbnail_count() >= len(series) - 1, timeout=30000)
    # activating a series row opens it (a 5-image CT series)
    target = next(e for e in series if "SmartScore" in e.label)
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window._open_entry(target)
    _settle(qtbot, window)
    assert window.image_viewer.state.n_frames == 5
    qtbot.keyClick(window.image_viewer, Qt.Key.Key_End)
    assert window.image_viewer.state.frame == 4
    # the view is autosaved in the session (off the UI thread) once it settles
    _settle(qtbot, window)
    snapshot = window.context.session.view(window.image_viewer.stack.path)
    assert snapshot.frame == 4 and snapshot.window is not None and snapshot.region is None
    # W/L and frame survive switching away and back (the session restores the view)
    labels = [c.label for c in window.image_viewer.state.choices]
    qtbot.keyClick(window.image_viewer, getattr(Qt.Key, f"Key_{labels.index('ct-lung') + 1}"))
    lung = window.image_viewer.state.window
    _settle(qtbot, window)
    other = next(e for e in series if "Scout" in e.label)
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window._open_entry(other)
    _settle(qtbot, window)
    assert window.image_viewer.state.n_frames == 2
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window._open_entry(target)
    _settle(qtbot, window)
    state = window.image_viewer.state
    assert state.frame == 4 and state.window_label == "ct-lung"  # the preset's name, not "saved"
    assert (state.window.center, state.window.width) == (lung.center, lung.width)


def test_open_errors_keep_the_window_alive(qtbot, make_window, tmp_path, example_ct):
    window = make_window()
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"DICM but not really" * 10)
    missing = tmp_path / "nope.dcm"
    with qtbot.waitSignals([window.open_failed, window.open_failed], timeout=20000):
        window.open_paths([bad, missing])
    qtbot.waitUntil(lambda: len(window.error_boxes) == 2, timeout=5000)
    texts = sorted(box.text() for box in window.error_boxes)
    assert any("broken.dcm" in t for t in texts) and any("nope.dcm" in t for t in texts)
    assert all(box.windowModality() == Qt.WindowModality.NonModal and box.isVisible() for box in window.error_boxes)
    # a crash inside any worker is a dialog too, and the window keeps working
    def explode():
        raise RuntimeError("worker blew up")

    window.context.workers.run(explode, name="Test job")
    qtbot.waitUntil(lambda: any("worker blew up" in b.text() for b in window.error_boxes), timeout=5000)
    assert window.isVisible()
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window.open_paths([example_ct])
    _settle(qtbot, window)
    assert window.image_viewer.state.modality == "CT"


def test_drop_a_slide_then_region_to_model(qtbot, make_window, svs_slide, screenshots):
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(svs_slide))])
    enter = QDragEnterEvent(QPoint(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)  # (offscreen Qt delivers no synthetic drops without a drag in progress)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window.dropEvent(drop)
    _settle(qtbot, window)
    viewer = window.current_viewer
    assert isinstance(viewer, SlideViewer)
    assert window.mag_menu.isEnabled()
    viewer.set_magnification(10.0)
    viewer.set_roi((800, 800, 400, 300))
    mi = window.context.current_model_input()
    assert mi.kind == "slide" and mi.region == (800, 800, 400, 300) and mi.image.size == (200, 150)
    _settle(qtbot, window)
    window.grab().save(str(screenshots / "main_window_slide.png"))


def test_model_status_in_status_bar(qtbot, make_window):
    window = make_window()
    label = window.status.model_label
    assert label.text() == "Model not configured"
    info = types.SimpleNamespace(model_id="x", device="cuda:0", quant="4bit")
    window.context.model.set_engine(types.SimpleNamespace(info=info))
    assert label.text() == "Model ready on CUDA 4-bit"
    window.context.model.set_engine(types.SimpleNamespace(info=types.SimpleNamespace(device="cpu", quant="none")))
    assert label.text() == "Model ready on CPU"

    def failing_loader():
        raise FileNotFoundError("/models/x: no config.json")

    window.context.model.set_configured(True)
    assert label.text() == "Model not loaded"
    window.context.model.load(failing_loader)
    qtbot.waitUntil(lambda: "failed" in label.text(), timeout=5000)
    assert "no config.json" in label.text()


def test_cli_gui_screenshot(tmp_path, ct_series_dir):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDAPP_HOME=str(tmp_path / "home"))
    proc = subprocess.run(
        [sys.executable, "-m", "medapp", "gui", str(ct_series_dir), "--screenshot", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 400 and image.shape[1] > 800
    assert image.std() > 10  # a real picture, not a blank window


def test_cli_gui_reports_a_missing_frontend(monkeypatch):
    from medapp.cli import gui
    from medapp.errors import UserError

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [])
    with pytest.raises(UserError, match="not installed"):
        gui.load_frontend()


def test_uncaught_exceptions_become_dialogs(qtbot, make_window):
    """Exceptions outside workers (a slot, a plain thread) go to the error dialog through the installed hooks."""
    import threading

    from ui.app import install_exception_hooks

    window = make_window()
    old_sys, old_thread = sys.excepthook, threading.excepthook
    try:
        install_exception_hooks(window)
        try:
            raise KeyError("slot failed")
        except KeyError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        try:
            raise OSError("thread failed")
        except OSError as exc:
            args = types.SimpleNamespace(exc_type=OSError, exc_value=exc, exc_traceback=exc.__traceback__,
                                         thread=threading.current_thread())
            threading.excepthook(args)
            del args  # it holds the traceback, which holds this frame (and the window): a cycle for the GC
        qtbot.waitUntil(lambda: len(window.error_boxes) == 2, timeout=5000)
    finally:
        sys.excepthook, threading.excepthook = old_sys, old_thread
    texts = " ".join(b.text() for b in window.error_boxes)
    assert "slot failed" in texts and "thread failed" in texts
    assert window.isVisible()
    box = window.show_key_help()
    assert "Right-drag" in box.text() and not box.isModal()


def test_gpu_memory_text_reads_torch_only_when_loaded(monkeypatch):
    from ui.status import gpu_memory_text

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert gpu_memory_text() == ""
    cuda = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True,
                                 mem_get_info=lambda: (6e9, 24e9))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert gpu_memory_text() == "GPU 18.0/24.0 GB"


def test_cli_gui_screenshot_reports_unreadable_input(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDAPP_HOME=str(tmp_path / "home"))
    missing = tmp_path / "no_such_study.dcm"
    proc = subprocess.run(
        [sys.executable, "-m", "medapp", "gui", str(missing), "--screenshot", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 2
    assert "no_such_study.dcm" in proc.stderr and "Traceback" not in proc.stderr
    assert out.is_file()  # the window (welcome page) is still saved


@pytest.mark.slow
def test_load_golden_tiny_model_from_settings(qtbot, tmp_path, monkeypatch, v2_checkpoint, example_ct, screenshots):
    """Settings name the tiny golden checkpoint: the status goes not loaded → loading → ready on CPU; then a question
    about the CT on screen streams an answer into the integrated chat panel (screenshot)."""
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    from medapp.settings import Settings
    from ui.context import AppContext
    from ui.main_window import MainWindow

    window = MainWindow(AppContext(settings=Settings(model_dir=str(v2_checkpoint))))
    qtbot.addWidget(window)
    label = window.status.model_label
    qtbot.waitUntil(lambda: label.text() == "Model not loaded", timeout=20000)
    assert label.toolTip() == str(v2_checkpoint)
    window.load_model()
    assert label.text().startswith("Model loading")
    qtbot.waitUntil(lambda: label.text() == "Model ready on CPU", timeout=180000)
    assert window.context.model.engine.info.model_id == "dragonfly-v2-tiny"
    window.resize(1400, 860)
    window.show()
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window.open_paths([example_ct])
    _settle(qtbot, window)
    from medapp.conversations import conversation_key

    panel = window.chat_panel
    with qtbot.waitSignal(panel.answer_finished, timeout=120000) as blocker:
        panel.ask("What does this CT slice show?")
    key, turn = blocker.args
    shown = window.context.current_model_input()
    assert key == conversation_key(shown)  # the conversation of the study and image on screen
    assert turn.view.pixels == shown.key  # the answer is about exactly what is on screen
    assert turn.answer.strip()
    _settle(qtbot, window)
    window.grab().save(str(screenshots / "main_window_ct_chat.png"))
    window.close()


def test_tools_menu_opens_the_dialogs(qtbot, make_window):
    window = make_window()
    assert window.act_settings.isEnabled() and window.act_batch.isEnabled()
    window.act_settings.trigger()
    qtbot.waitUntil(lambda: window._settings_dialog.isVisible(), timeout=5000)
    window._settings_dialog.close()
    window.act_batch.trigger()
    qtbot.waitUntil(lambda: window._batch_dialog.isVisible(), timeout=5000)
    window._batch_dialog.close()
    assert window.isVisible()


def test_a_slow_earlier_open_never_replaces_a_later_one(qtbot, make_window, example_ct, svs_slide, monkeypatch):
    """Open the CT (slow) then the slide (fast): the slide stays on screen; the CT still joins the browser."""
    import threading

    import ui.main_window as mw

    gate = threading.Event()
    real = mw.open_job

    def gated(path, presets=None):
        if Path(path) == example_ct:
            gate.wait(10)
        return real(path, presets)

    monkeypatch.setattr(mw, "open_job", gated)
    window = make_window()
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window.open_paths([example_ct])
        window.open_paths([svs_slide])
    assert isinstance(window.current_viewer, SlideViewer)
    gate.set()
    qtbot.waitUntil(lambda: len(window.browser.entries()) == 2, timeout=20000)
    _settle(qtbot, window)
    assert isinstance(window.current_viewer, SlideViewer)


def test_second_folder_shows_its_own_first_series(qtbot, make_window, pydicom_test_files, ct_series_dir):
    window = make_window()
    with qtbot.waitSignal(window.document_shown, timeout=30000):
        window.open_paths([pydicom_test_files / "dicomdirtests"])
    _settle(qtbot, window, 30000)
    with qtbot.waitSignal(window.document_shown, timeout=30000):
        window.open_paths([ct_series_dir])
    _settle(qtbot, window, 30000)
    state = window.image_viewer.state
    assert state.n_frames == 15 and state.stack.metadata.get("series_description") == "Synthetic axial"


def test_recent_files_survive_a_restart_and_reopen(qtbot, make_window, example_ct):
    first = make_window()
    with qtbot.waitSignal(first.document_shown, timeout=20000):
        first.open_paths([example_ct])
    _settle(qtbot, first)
    first.close()
    second = make_window()  # same session folder: a restart
    assert second.welcome.recent.count() == 1 and second.welcome.recent.isVisibleTo(second.welcome)
    assert second.welcome.recent.item(0).text() == "CT_small.dcm"
    with qtbot.waitSignal(second.document_shown, timeout=20000):
        second.recent_menu.actions()[0].trigger()
    assert second.image_viewer.state.modality == "CT"


def test_cli_gui_without_a_display_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["MEDAPP_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, "-m", "medapp"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "no display found" in proc.stderr and "--screenshot" in proc.stderr


# -- issue #15 item 6: toolbar buttons, objective buttons, stale status texts -----------------------------------------
def _open(qtbot, window, path: Path) -> None:
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window.open_paths([path])
    _settle(qtbot, window)


def test_window_button_opens_its_menu_on_a_click_and_applies_the_preset(qtbot, make_window, example_ct):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QToolButton

    window = make_window()
    _open(qtbot, window, example_ct)
    viewer = window.current_viewer
    button = window.toolbar.widgetForAction(window.window_menu.menuAction())
    assert isinstance(button, QToolButton)
    assert button.popupMode() == QToolButton.ToolButtonPopupMode.InstantPopup, "a click anywhere opens the menu"
    for menu in (window.window_menu, window.mag_menu):
        mode = window.toolbar.widgetForAction(menu.menuAction()).popupMode()
        assert mode == QToolButton.ToolButtonPopupMode.InstantPopup
    lung = next(a for a in window.window_menu.actions() if a.text().startswith("ct-lung"))
    seen: list[bool] = []

    def pick() -> None:  # runs inside the menu's own event loop, i.e. only if the click opened it
        seen.append(window.window_menu.isVisible())
        lung.trigger()
        window.window_menu.close()

    QTimer.singleShot(300, pick)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(4, button.height() // 2))  # the body, not arrow
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen == [True]
    assert viewer.state.window_label == "ct-lung"


def test_slide_objective_buttons_zoom_and_hide_for_a_ct(qtbot, make_window, svs_slide, example_ct, screenshots):
    from ui.main_window import SLIDE_BUTTON_MAGS

    window = make_window()
    _open(qtbot, window, example_ct)
    assert [a.text() for a in window.mag_actions] == ["1×", "5×", "10×", "20×", "40×"]
    assert not any(a.isVisible() for a in window.mag_actions), "no objective buttons for a CT"
    window.image_viewer.cursor_info.emit("x 10 y 20: -998 HU")  # the mouse was over the CT
    assert "HU" in window.status.cursor_label.text()

    _open(qtbot, window, svs_slide)
    viewer = window.current_viewer
    assert isinstance(viewer, SlideViewer) and viewer.base_mag == 20
    assert window.status.cursor_label.text() == "", "no HU readout left over on a slide"
    assert all(a.isVisible() and a.isEnabled() for a in window.mag_actions)
    # review: every measuring tool has its button on screen, not behind the toolbar's » (the window is 1400 px)
    for act in window.measure_actions.values():
        button = window.measure_toolbar.widgetForAction(act)
        assert button is not None and button.isVisible(), act.text()
    for act, mag in zip(window.mag_actions, SLIDE_BUTTON_MAGS, strict=True):
        button = window.toolbar.widgetForAction(act)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        lowest = viewer._min_zoom() * viewer.base_mag  # this small test slide cannot go down to 1× in the window
        assert viewer.magnification == pytest.approx(max(mag, lowest), rel=1e-6), act.text()
    _settle(qtbot, window)
    window.toolbar.grab().save(str(screenshots / "toolbar_slide_magnification.png"))
    window.grab().save(str(screenshots / "main_window_slide_40x.png"))
    _open(qtbot, window, example_ct)  # the image buttons come back for an image
    assert all(a.isVisible() for a in (window.act_1to1, window.window_menu.menuAction(), window.act_overlay))


def test_exit_now_runs_the_exit_handlers_and_keeps_the_code(tmp_path):
    """The window ends the process without Python's module teardown (seconds with torch loaded), but what atexit
    promises still happens (logging, temporary folders, Ray's shutdown) and the exit code is the window's."""
    marker = tmp_path / "handler-ran"
    code = (
        "import atexit, pathlib, sys\n"
        "from ui.app import exit_now\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        "print('buffered output', end='')\n"
        "exit_now(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert marker.read_text() == "yes"
    assert done.stdout == "buffered output", "stdout is flushed before the process ends"


def test_the_image_gets_more_width_than_the_assistant_dock(make_window):
    """Review: the Report tab's six buttons in one row made the Assistant dock ≥ 650 px wide, so on a 1400 px window
    the image viewer had 478 px. In two rows the dock's minimum is set by narrower panels and the viewer is wider."""
    window = make_window(size=(1400, 860))
    panel = window.report_panel
    assert panel.minimumSizeHint().width() <= max(window.slide_panel.minimumSizeHint().width(),
                                                  window.chat_panel.minimumSizeHint().width()) + 20
    assert window.stack.width() > window.panel_dock.width() + 100


def test_window_menu_acts_on_the_active_view_and_ticks_its_preset(qtbot, make_window, example_ct, ct_series_dir):
    """Review: with a prior active in view 2, Window → ct-lung changed view 1; and the menu never said which preset
    was on screen."""
    from ui.browser import BrowserEntry

    window = make_window()
    _open(qtbot, window, ct_series_dir)
    main = window.image_viewer
    window.open_entry_in(BrowserEntry("prior", "path", example_ct), 1)
    cell = window.grid.cells[1]
    qtbot.waitUntil(lambda: cell.stack is not None and window.grid.active is cell, timeout=20000)
    before = main.state.window
    lung = next(a for a in window.window_menu.actions() if a.text().startswith("ct-lung"))
    lung.trigger()
    assert cell.state.window_label == "ct-lung" and main.state.window == before
    window.window_menu.aboutToShow.emit()
    assert [a.text().split()[0] for a in window.window_menu.actions() if a.isChecked()] == ["ct-lung"]
    cell.state.apply_preset(5)  # the key 5 in the view
    window.window_menu.aboutToShow.emit()
    ticked = [a for a in window.window_menu.actions() if a.isChecked()]
    assert len(ticked) == 1 and ticked[0].text().startswith(cell.state.window_label)


def test_view_menu_shows_the_viewer_keys_and_the_toolbar_keeps_short_texts(make_window):
    """Review: the View menu listed Fit, Invert, Rotate … with no key, so the one-key habits stayed hidden."""
    window = make_window()
    assert window.act_fit.text().endswith("\tF") and window.act_reset_view.text().endswith("\tBackspace")
    assert window.act_rotate.text().endswith("\t]") and window.act_flip.text().endswith("\tH")
    button = window.toolbar.widgetForAction(window.act_fit)
    assert button.text() == "Fit to window"


def test_patient_data_and_overlay_buttons_reach_every_view_of_a_layout(qtbot, make_window, example_ct,
                                                                      ct_series_dir):
    """Review: "Show patient data" and "Overlay" changed view 1 only; the prior beside it kept its own."""
    from ui.browser import BrowserEntry

    window = make_window()
    _open(qtbot, window, ct_series_dir)
    window.act_phi.trigger()
    window.open_entry_in(BrowserEntry("prior", "path", example_ct), 1)
    cell = window.grid.cells[1]
    qtbot.waitUntil(lambda: cell.stack is not None, timeout=20000)
    assert window.image_viewer.state.show_phi and cell.state.show_phi, "a view filled later follows too"
    window.act_overlay.trigger()
    assert not window.image_viewer.state.show_overlay and not cell.state.show_overlay
    window.act_phi.trigger()
    window.act_overlay.trigger()
    assert cell.state.show_overlay and not cell.state.show_phi


def test_cine_button_plays_the_active_view(qtbot, make_window, ct_series_dir):
    """Review: the Cine button always played view 1, whichever view was active."""
    from ui.browser import BrowserEntry

    window = make_window()
    _open(qtbot, window, ct_series_dir)
    main, cell = window.image_viewer, window.grid.cells[1]
    window.open_entry_in(BrowserEntry("prior", "path", ct_series_dir), 1)
    qtbot.waitUntil(lambda: cell.stack is not None and window.grid.active is cell, timeout=20000)
    assert window.act_cine.isEnabled()
    window.act_cine.trigger()
    assert cell.cine_interval_ms is not None and main.cine_interval_ms is None and window.act_cine.isChecked()
    window.grid.set_active(main)  # the other view: the button shows that one (not playing)
    assert not window.act_cine.isChecked()
    window.grid.set_active(cell)
    assert window.act_cine.isChecked()
    window.act_cine.trigger()
    assert cell.cine_interval_ms is None and not window.act_cine.isChecked()


def test_a_findings_edit_typed_just_before_closing_survives_the_restart(qtbot, make_window, example_ct):
    """The window ends the process right after closing (ui.app.exit_now): an edit still inside the report's
    autosave delay must already be in the session file by then."""
    first = make_window()
    with qtbot.waitSignal(first.document_shown, timeout=20000):
        first.open_paths([example_ct])
    _settle(qtbot, first)
    first.panels.setCurrentWidget(first.report_panel)
    first.report_panel.insert_findings("Ruler: 12.0 mm.")  # starts a report for the study
    editor = first.report_panel.editor("findings")
    editor.setFocus()
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(editor, " Typed last.")
    assert first.report_panel._autosave.isActive()  # not saved by the timer yet
    first.close()
    second = make_window()  # same session folder: a restart
    with qtbot.waitSignal(second.document_shown, timeout=20000):
        second.open_paths([example_ct])
    _settle(qtbot, second)
    assert second.report_panel.report.text("findings").endswith("Typed last.")
