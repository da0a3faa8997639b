"""Image viewer: W/L drag and preset keys change the pixels, slice keys and wheel move through a series, zoom at the
cursor, ROI → model input, cine at the frame time, overlay without PHI by default, tag browser search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QModelIndex, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from ui.main_window import open_job
from ui.viewer.image_viewer import ImageViewer
from ui.viewer.keymap import slice_target
from ui.viewer.overlay import stack_overlay


def _show(qtbot, app_context, path: Path, size=(400, 400)) -> ImageViewer:
    kind, _, stack, setup = open_job(path)
    if kind == "collection":  # a folder: its (only) series
        series = stack.patients[0].studies[0].series[0]
        stack = series.open()
        setup = None
    assert stack.kind in ("dicom", "series", "image")
    viewer = ImageViewer(app_context)
    qtbot.addWidget(viewer)
    viewer.resize(*size)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_stack(stack, setup)
    app_context.set_input_provider(viewer.model_input)  # what the main window does for the active viewer
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    return viewer


def _centre(grab, viewer) -> np.ndarray:
    """The middle of the viewport (the corners hold overlay text)."""
    arr = grab(viewer.viewport())
    h, w = arr.shape[:2]
    return arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(np.int32)


def _mouse(widget, kind, pos: QPoint, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    p = QPointF(pos)
    event = QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def _right_drag(viewer, start: QPoint, end: QPoint) -> None:
    vp = viewer.viewport()
    R, none = Qt.MouseButton.RightButton, Qt.MouseButton.NoButton
    _mouse(vp, QEvent.Type.MouseButtonPress, start, R, R)
    _mouse(vp, QEvent.Type.MouseMove, (start + end) / 2, none, R)
    _mouse(vp, QEvent.Type.MouseMove, end, none, R)
    _mouse(vp, QEvent.Type.MouseButtonRelease, end, R, none)


def test_window_level_drag_changes_pixels(qtbot, app_context, example_ct, grab):
    viewer = _show(qtbot, app_context, example_ct)
    state = viewer.state
    before_window = state.window
    before = _centre(grab, viewer)
    _right_drag(viewer, QPoint(200, 200), QPoint(260, 150))  # wider and lower
    assert state.window_label == "custom"
    assert state.window.width > before_window.width  # horizontal → width
    assert state.window.center < before_window.center  # up → lower level
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    after = _centre(grab, viewer)
    assert np.abs(after - before).mean() > 2.0
    # the model gets the same window the screen shows
    model_image = np.asarray(viewer.model_input().image)
    expected = np.asarray(state.stack.render_rgb(state.frame, state.window))
    assert np.array_equal(model_image, expected)


def test_preset_keys_file_window_first_then_ct_presets(qtbot, app_context, ct_series_dir, grab):
    viewer = _show(qtbot, app_context, ct_series_dir)
    state = viewer.state
    assert state.window_label == "file" and (state.window.center, state.window.width) == (40, 400)
    assert state.choices[0].label == "file"
    labels = [c.label for c in state.choices]
    assert "ct-lung" in labels and "ct-bone" in labels
    shown = {}
    for number in (1, labels.index("ct-lung") + 1, labels.index("ct-bone") + 1):
        qtbot.keyClick(viewer, getattr(Qt.Key, f"Key_{number}"))
        qtbot.waitUntil(viewer.is_current, timeout=10000)
        shown[state.window_label] = _centre(grab, viewer)
    assert set(shown) == {"file", "ct-lung", "ct-bone"}
    # lung window shows air (−1000 HU) grey, the file's soft-tissue window shows it black: pixels differ
    assert np.abs(shown["ct-lung"] - shown["file"]).mean() > 5
    assert np.abs(shown["ct-bone"] - shown["file"]).mean() > 5
    qtbot.keyClick(viewer, Qt.Key.Key_9 if len(labels) < 9 else Qt.Key.Key_0)
    qtbot.keyClick(viewer, Qt.Key.Key_0)  # back to the file's window
    assert state.window_label == "file"


def test_slice_keys_move_through_series(qtbot, app_context, ct_series_dir, grab):
    viewer = _show(qtbot, app_context, ct_series_dir)
    state = viewer.state
    assert state.n_frames == 15
    first = _centre(grab, viewer)
    steps = [
        (Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier, 1),
        (Qt.Key.Key_Right, Qt.KeyboardModifier.NoModifier, 2),
        (Qt.Key.Key_Up, Qt.KeyboardModifier.NoModifier, 1),
        (Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier, 11),
        (Qt.Key.Key_End, Qt.KeyboardModifier.NoModifier, 14),
        (Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier, 14),  # clamped at the last slice
        (Qt.Key.Key_PageUp, Qt.KeyboardModifier.NoModifier, 4),
        (Qt.Key.Key_Home, Qt.KeyboardModifier.NoModifier, 0),
        (Qt.Key.Key_PageDown, Qt.KeyboardModifier.NoModifier, 10),
    ]
    for key, mod, expected in steps:
        qtbot.keyClick(viewer, key, mod)
        assert state.frame == expected, (key, mod)
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    assert np.abs(_centre(grab, viewer) - first).mean() > 1.0  # another slice, other pixels
    corners = stack_overlay(state, viewer.zoom)
    assert "Im 11/15" in corners["bl"]


def test_wheel_scrolls_slices_and_ctrl_wheel_zooms_at_cursor(qtbot, app_context, ct_series_dir):
    viewer = _show(qtbot, app_context, ct_series_dir)
    vp = viewer.viewport()

    def wheel(dy: int, pos: QPoint, mods=Qt.KeyboardModifier.NoModifier):
        p = QPointF(pos)
        event = QWheelEvent(p, vp.mapToGlobal(p), QPoint(0, 0), QPoint(0, dy), Qt.MouseButton.NoButton, mods,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(vp, event)

    wheel(-120, QPoint(200, 200))
    wheel(-120, QPoint(200, 200))
    assert viewer.state.frame == 2
    wheel(120, QPoint(200, 200))
    assert viewer.state.frame == 1
    cursor = QPoint(120, 140)
    before = viewer.mapToScene(cursor)
    zoom = viewer.zoom
    wheel(120, cursor, Qt.KeyboardModifier.ControlModifier)
    assert viewer.zoom == pytest.approx(zoom * 1.25)
    after = viewer.mapToScene(cursor)
    assert abs(after.x() - before.x()) < 0.5 and abs(after.y() - before.y()) < 0.5  # zoom at the cursor
    assert viewer.state.frame == 1
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    assert viewer.zoom == pytest.approx(1.0)
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert viewer.zoom == pytest.approx(400 / 64, rel=0.02)


def test_roi_becomes_model_input(qtbot, app_context, example_ct):
    viewer = _show(qtbot, app_context, example_ct)
    qtbot.keyClick(viewer, Qt.Key.Key_R)
    assert viewer.tool == "roi"
    vp = viewer.viewport()
    a, b = viewer.mapFromScene(QPointF(20, 30)), viewer.mapFromScene(QPointF(84, 70))
    L, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    with qtbot.waitSignal(app_context.current_input_changed, timeout=3000):
        _mouse(vp, QEvent.Type.MouseButtonPress, a, L, L)
        _mouse(vp, QEvent.Type.MouseMove, b, none, L)
        _mouse(vp, QEvent.Type.MouseButtonRelease, b, L, none)
    x, y, w, h = viewer.state.roi
    assert abs(x - 20) <= 1 and abs(y - 30) <= 1 and abs(w - 64) <= 2 and abs(h - 40) <= 2
    model_input = app_context.current_model_input()
    assert model_input.region == viewer.state.roi
    assert model_input.image.size == (w, h)
    full = viewer.state.stack.render_rgb(0, viewer.state.window)
    assert np.array_equal(np.asarray(model_input.image), np.asarray(full)[y : y + h, x : x + w])
    assert "region" in model_input.description and "CT" in model_input.description
    from medapp.view import render_view  # the ViewState reproduces the same pixels through the core

    assert np.array_equal(np.asarray(render_view(model_input.view_state)), np.asarray(model_input.image))
    whole = app_context.current_model_input(use_region=False)
    assert whole.image.size == (128, 128)
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert viewer.state.roi is None and app_context.current_model_input().region is None


def test_cine_runs_at_dicom_frame_time(qtbot, app_context, pydicom_test_files):
    viewer = _show(qtbot, app_context, pydicom_test_files / "examples_ybr_color.dcm")
    assert viewer.state.colour and viewer.state.window is None  # colour: no W/L
    qtbot.keyClick(viewer, Qt.Key.Key_Space)
    assert viewer.cine_interval_ms == 33  # (0018,1063) Frame Time 33.333 ms
    qtbot.waitUntil(lambda: viewer.state.frame >= 3, timeout=10000)
    qtbot.keyClick(viewer, Qt.Key.Key_Space)
    assert viewer.cine_interval_ms is None


def test_overlay_hides_patient_data_until_asked(qtbot, app_context, ct_series_dir):
    viewer = _show(qtbot, app_context, ct_series_dir)
    state = viewer.state
    text = " ".join(" ".join(v) for v in stack_overlay(state, 1.0, phi=viewer.phi).values())
    assert "Synthetic axial" in text and "W 400 L 40 (file)" in text and "Im 1/15" in text
    assert "Phantom" not in text and "SYN-0001" not in text
    qtbot.keyClick(viewer, Qt.Key.Key_P)
    text = " ".join(" ".join(v) for v in stack_overlay(state, 1.0, phi=viewer.phi).values())
    assert "Phantom" in text and "SYN-0001" in text


def test_tag_browser_search(qtbot, example_ct):
    from ui.tag_browser import TagBrowser

    kind, _, stack, _ = open_job(example_ct)
    browser = TagBrowser()
    qtbot.addWidget(browser)
    browser.set_dataset(stack.dataset(0))
    rows = browser.visible_rows()
    assert any(r[1] == "Modality" and r[3] == "CT" for r in rows)
    assert all(r[3] == "‹hidden›" for r in rows if r[1] in ("PatientName", "PatientID"))
    browser.search.setText("0028,0030")
    rows = browser.visible_rows()
    assert [r[1] for r in rows] == ["PixelSpacing"]
    browser.search.setText("rescale")
    assert {r[1] for r in browser.visible_rows()} >= {"RescaleIntercept", "RescaleSlope"}
    browser.search.setText("")
    browser.phi_box.setChecked(True)
    name = [r for r in browser.visible_rows() if r[1] == "PatientName"][0]
    assert name[3] != "‹hidden›"


def test_browser_elides_long_labels_in_the_middle_with_the_full_label_as_tooltip(qtbot, app_context, example_ct):
    """Series differ at both ends ("CT Thorax 1.25 mm … (312 im)"): a narrow dock keeps both ends."""
    from ui.browser import StudyBrowser

    _, _, stack, _ = open_job(example_ct)
    browser = StudyBrowser(app_context.workers)
    qtbot.addWidget(browser)
    label = "CT Thorax arterial phase 1.25 mm soft tissue kernel B30f reconstruction (312 im)"
    item = browser.add_opened(stack, label)
    browser.resize(180, 300)
    browser.show()
    assert browser.tree.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert item.toolTip(0) == label


def test_browser_tells_a_current_and_a_prior_series_apart_in_the_default_dock(qtbot, app_context, example_ct):
    """Review: in the 250 px dock, eliding alone drew "CT #3 …20 im)" for both "CT #3 CT chest current (20 im)" and
    "CT #3 CT chest prior (20 im)"; the label wraps beside its thumbnail now, so the two rows look different."""
    from ui.browser import THUMB_PX, StudyBrowser

    browser = StudyBrowser(app_context.workers)
    qtbot.addWidget(browser)
    browser.resize(180, 300)  # a series row sits three levels deep in the 250 px dock: about this much text room
    browser.show()
    qtbot.waitExposed(browser)
    items = [browser.add_opened(open_job(example_ct)[2], f"CT #3 CT chest {which} (20 im)", select=False)
             for which in ("current", "prior")]
    assert items[0] is not items[1]
    qtbot.waitUntil(lambda: all(not item.icon(0).isNull() for item in items), timeout=10000)  # thumbnails in
    browser.tree.setCurrentIndex(QModelIndex())  # no current-row highlight on either
    shot = browser.tree.viewport().grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)

    def text_pixels(item) -> bytes:  # the dark (text) pixels right of the thumbnail; the row highlight is light
        rect = browser.tree.visualItemRect(item)
        area = shot.copy(rect.x() + THUMB_PX + 8, rect.y(), rect.width() - THUMB_PX - 8, rect.height())
        return bytes(b < 100 for b in bytes(area.constBits())[: area.sizeInBytes()])

    assert text_pixels(items[0]) != text_pixels(items[1])


@pytest.mark.parametrize(
    ("action", "arg", "current", "shift", "expected"),
    [("step", 1, 0, False, 1), ("step", 1, 0, True, 10), ("step", -1, 3, True, 0), ("page", 1, 0, False, 10),
     ("last", 0, 2, False, 99), ("first", 0, 50, False, 0), ("step", 1, 99, False, 99)],
)
def test_slice_target(action, arg, current, shift, expected):
    assert slice_target(action, arg, current, 100, shift) == expected


def test_plain_colour_image_has_no_window_and_goes_to_model_unchanged(qtbot, app_context, tmp_path, grab):
    from PIL import Image

    rgb = np.zeros((60, 90, 3), np.uint8)
    rgb[:, :45] = (200, 30, 30)
    rgb[:, 45:] = (20, 40, 220)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    viewer = _show(qtbot, app_context, path)
    assert viewer.state.colour and viewer.state.window is None and viewer.state.choices == []
    _right_drag(viewer, QPoint(200, 200), QPoint(260, 150))  # no window to change: nothing happens
    assert viewer.state.window is None
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert viewer.state.window is None
    assert np.array_equal(np.asarray(app_context.current_model_input().image), rgb)
    centre = grab(viewer.viewport())[200, 100]  # left half on screen is red
    assert centre[0] > 150 and centre[2] < 80


def test_dicomdir_file_opens_as_collection(pydicom_test_files):
    kind, _, collection, _ = open_job(pydicom_test_files / "dicomdirtests" / "DICOMDIR")
    assert kind == "collection"
    assert sum(len(st.series) for p in collection.patients for st in p.studies) >= 10


def test_a_frame_that_fails_to_render_reports_and_settles(qtbot, app_context, ct_series_dir):
    """A slice that cannot be decoded: the failure reaches the window's error channel, the viewer stays usable."""
    viewer = _show(qtbot, app_context, ct_series_dir)
    stack = viewer.state.stack
    real = stack.render

    def render(frame=0, window=None):
        if frame == 3:
            raise OSError(f"{stack.path}: slice 4 is truncated")
        return real(frame, window)

    stack.render = render
    failures = []
    app_context.workers.worker_failed.connect(failures.append)
    viewer.state.set_frame(3)
    qtbot.waitUntil(lambda: bool(failures), timeout=10000)
    qtbot.waitUntil(viewer.is_idle, timeout=10000)
    assert not viewer.is_current() and "truncated" in failures[0].message
    viewer.state.set_frame(4)
    qtbot.waitUntil(viewer.is_current, timeout=10000)


def test_overlay_text_reads_over_tissue(qapp):
    """Corner text sits on a translucent dark plate: over the pinks of stained tissue a 1-px halo alone left light
    text on a light background (issue #15 item 6)."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    from ui.viewer.overlay import paint_overlay
    from ui.viewer.qimage import qimage_to_array

    tissue = QColor(225, 165, 205)
    image = QImage(320, 120, QImage.Format.Format_RGB32)
    image.fill(tissue)
    painter = QPainter(image)
    paint_overlay(painter, QRectF(0, 0, 320, 120), {"tl": ["Slide 2048×2048, 3 levels"], "tr": [], "bl": [],
                                                     "br": []})
    painter.end()
    luminance = qimage_to_array(image).astype(float).mean(axis=2)
    block = luminance[6:24, 6:150]  # the top-left line
    backdrop = (tissue.red() + tissue.green() + tissue.blue()) / 3
    assert np.median(block) < 0.6 * backdrop, "the text's surroundings are darkened"
    assert block.max() > 200, "the text itself stays light"
    assert luminance[80:, 200:].mean() == pytest.approx(backdrop, abs=1), "the rest of the image is untouched"
