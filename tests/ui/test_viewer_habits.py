"""Weasis / QuPath viewer habits: invert, rotate, mirror, one-key reset, orientation markers, smooth small images,
cine on the file's frame time (asserted on the timer's schedule, not on wall time), and 1×2 / 2×2 layouts with
linked scrolling to compare with a prior. Screenshots of the 2×2 layout and of invert / rotate / markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, Qt

from medapp.view import open_cached
from ui.browser import BrowserEntry
from ui.main_window import open_job
from ui.viewer.image_viewer import SMOOTH_MAX_ZOOM, ImageViewer


def _show(qtbot, app_context, path: Path, size=(400, 400)) -> ImageViewer:
    kind, _, stack, setup = open_job(path)
    if kind == "collection":
        stack, setup = stack.patients[0].studies[0].series[0].open(), None
    viewer = ImageViewer(app_context)
    qtbot.addWidget(viewer)
    viewer.resize(*size)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_stack(stack, setup)
    app_context.set_input_provider(viewer.model_input)
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    return viewer


def _centre(grab, viewer) -> np.ndarray:
    """The middle of the viewport (the corners and edge middles hold overlay text and markers)."""
    arr = grab(viewer.viewport())
    h, w = arr.shape[:2]
    return arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(np.int32)


def _settled(qtbot, viewer) -> None:
    qtbot.waitUntil(viewer.is_current, timeout=10000)


def test_invert_shows_the_negative_but_the_model_sees_the_file(qtbot, app_context, example_ct, grab):
    viewer = _show(qtbot, app_context, example_ct)
    before = _centre(grab, viewer)
    model_before = np.asarray(app_context.current_model_input().image)
    qtbot.keyClick(viewer, Qt.Key.Key_I)
    assert viewer.state.invert
    _settled(qtbot, viewer)
    after = _centre(grab, viewer)
    assert np.abs((255 - before) - after).mean() < 2.0  # the negative of what was on screen
    assert np.array_equal(np.asarray(app_context.current_model_input().image), model_before)
    qtbot.keyClick(viewer, Qt.Key.Key_I)
    _settled(qtbot, viewer)
    assert np.abs(_centre(grab, viewer) - before).mean() < 1.0


def test_rotate_and_mirror_move_the_pixels_not_the_image_coordinates(qtbot, app_context, example_ct, grab):
    viewer = _show(qtbot, app_context, example_ct)  # 128² in a square viewport: fit is the same after a turn
    before = _centre(grab, viewer)
    qtbot.keyClick(viewer, Qt.Key.Key_BracketRight)
    assert viewer.state.rotation == 90
    _settled(qtbot, viewer)
    turned = _centre(grab, viewer)
    assert np.abs(np.rot90(before, k=-1) - turned).mean() < 3.0  # clockwise
    # the image pixel under a screen point is still an image pixel (ROI, cursor readout, measurements)
    top_left = viewer.mapFromScene(QPointF(1.0, 1.0))
    assert top_left.x() > viewer.viewport().width() / 2 and top_left.y() < viewer.viewport().height() / 2
    qtbot.keyClick(viewer, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(viewer, Qt.Key.Key_H)
    assert (viewer.state.rotation, viewer.state.flip_h) == (0, True)
    _settled(qtbot, viewer)
    assert np.abs(before[:, ::-1] - _centre(grab, viewer)).mean() < 3.0
    qtbot.keyClick(viewer, Qt.Key.Key_H, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.state.flip_v and viewer.state.rotation == 0
    assert abs(viewer.zoom - viewer.transform().m22() * -1) < 1e-6  # the view mirrors top-bottom at the same zoom


def test_backspace_resets_window_zoom_and_transform(qtbot, app_context, example_ct):
    viewer = _show(qtbot, app_context, example_ct)
    fitted = viewer.zoom
    state = viewer.state
    qtbot.keyClick(viewer, Qt.Key.Key_2)  # another window preset
    qtbot.keyClick(viewer, Qt.Key.Key_I)
    qtbot.keyClick(viewer, Qt.Key.Key_BracketRight)
    qtbot.keyClick(viewer, Qt.Key.Key_H)
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert state.window != state.default_window and viewer.zoom > fitted
    qtbot.keyClick(viewer, Qt.Key.Key_Backspace)
    assert state.window == state.default_window and not state.model.transformed
    assert abs(viewer.zoom - fitted) < 1e-6 and viewer.transform().m12() == 0 and viewer.transform().m11() > 0
    _settled(qtbot, viewer)


def test_orientation_markers_follow_rotation_and_mirroring(qtbot, app_context, ct_series_dir, pydicom_test_files):
    viewer = _show(qtbot, app_context, ct_series_dir)  # axial: IOP (1, 0, 0, 0, 1, 0)
    assert viewer.markers() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    viewer.state.rotate(90)
    assert viewer.markers() == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    viewer.state.flip_horizontal()
    assert viewer.markers() == {"left": "A", "right": "P", "top": "R", "bottom": "L"}
    viewer.set_stack(open_job(pydicom_test_files / "examples_ybr_color.dcm")[2])
    assert viewer.markers() is None  # no geometry in the file: no letters rather than wrong ones


def test_small_images_are_smooth_at_fit_and_real_pixels_when_zoomed_far(qtbot, app_context, example_ct, grab):
    viewer = _show(qtbot, app_context, example_ct, size=(800, 800))  # 128 px shown at ~6×
    assert viewer.zoom > SMOOTH_MAX_ZOOM and viewer.smooth
    row = _centre(grab, viewer)[100, :, 0]
    same = float(np.mean(row[1:] == row[:-1]))
    assert same < 0.5, f"{same:.0%} of neighbours equal: blocky"  # nearest at 6× would repeat ~5 of 6
    viewer.zoom_by(1.25)  # the radiologist zooms further by hand: real pixels
    assert not viewer.smooth
    viewer.fit()
    assert viewer.smooth


def test_cine_runs_on_the_file_frame_time_one_frame_per_tick(qtbot, app_context, pydicom_test_files):
    """30 fps clip: a precise timer at round(33.333) ms, one frame per tick, and once the clip is cached every tick
    paints its frame inside the tick (no decode or worker round trip), so painted fps == tick rate."""
    viewer = _show(qtbot, app_context, pydicom_test_files / "examples_ybr_color.dcm")
    frame_ms = viewer.state.stack.frame_time_ms
    n = viewer.state.n_frames
    ticks: list[tuple[int, bool]] = []
    viewer.start_cine()
    timer = viewer.cine_timer
    assert timer.timerType() == Qt.TimerType.PreciseTimer
    assert timer.interval() == round(frame_ms) == 33
    assert abs(1000.0 / timer.interval() - 1000.0 / frame_ms) / (1000.0 / frame_ms) < 0.10
    # runs after the viewer's own slot (connected later): did this tick's frame reach the screen within it?
    timer.timeout.connect(lambda: ticks.append((viewer.state.frame, viewer.is_current())))
    qtbot.waitUntil(lambda: len(ticks) >= 2 * n + 5, timeout=60000)
    viewer.stop_cine()
    frames = [f for f, _ in ticks]
    assert all((b - a) % n == 1 for a, b in zip(frames, frames[1:], strict=False))  # advance per tick is exactly 1
    second_loop = ticks[n + 5 :]
    assert all(painted for _, painted in second_loop), "a cached frame was not painted within its tick"


def _prior(tmp_path: Path, synthetic_ct_series) -> Path:
    folder = tmp_path / "prior"
    synthetic_ct_series(folder, zs=[k * 5.0 for k in range(8)], size=64, marker=True, SeriesDescription="Prior axial")
    return folder


def test_two_by_two_layout_links_scrolling_by_position(qtbot, make_window, ct_series_dir, tmp_path,
                                                       synthetic_ct_series, screenshots):
    window = make_window()
    window.open_paths([ct_series_dir])  # 15 slices 2.5 mm apart
    qtbot.waitUntil(lambda: window.image_viewer.stack is not None, timeout=20000)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    window.layout_actions["2x2"].trigger()
    grid = window.grid
    assert grid.n_visible == 4 and all(c.isVisible() for c in grid.visible_cells())
    prior_series = open_cached(_prior(tmp_path, synthetic_ct_series)).series[0]  # 8 slices 5 mm apart
    window.open_entry_in(BrowserEntry("prior", "series", prior_series), 1)
    cell = grid.cells[1]
    qtbot.waitUntil(lambda: cell.stack is not None and cell.is_current(), timeout=20000)
    assert grid.active is cell and window.current_viewer is cell
    assert window.context.current_model_input().description.startswith("CT, Prior axial")  # active cell → panels
    # scroll the current study: the prior follows to the same table position
    main = window.image_viewer
    main.state.set_frame(8)  # z = 20 mm
    assert cell.state.frame == 4  # z = 20 mm in the prior
    qtbot.keyClick(cell, Qt.Key.Key_Down)  # and back the other way: prior z = 25 → current z = 25
    assert (cell.state.frame, main.state.frame) == (5, 10)
    window.act_link.trigger()  # unlinked: each scrolls alone
    main.state.set_frame(0)
    assert cell.state.frame == 5
    window.act_link.trigger()
    # a third view: the same prior, rotated and inverted, to show the habits side by side
    window.open_entry_in(BrowserEntry("prior", "series", prior_series), 2)
    third = grid.cells[2]
    qtbot.waitUntil(lambda: third.stack is not None and third.is_current(), timeout=20000)
    third.state.rotate(90)
    third.state.set_invert(True)
    main.state.set_frame(6)
    for c in grid.visible_cells()[:3]:
        qtbot.waitUntil(c.is_current, timeout=10000)
    assert (cell.state.frame, third.state.frame) == (3, 3)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    sizes = {(c.width(), c.height()) for c in grid.visible_cells()}
    assert max(w for w, _ in sizes) - min(w for w, _ in sizes) <= 2  # equal cells
    window.grab().save(str(screenshots / "layout_2x2_linked.png"))
    window.layout_actions["1x1"].trigger()
    assert grid.n_visible == 1 and grid.active is main and not cell.isVisible()


def test_habits_screenshot_invert_rotate_markers(qtbot, make_window, ct_series_dir, screenshots):
    window = make_window(size=(1100, 700))
    window.open_paths([ct_series_dir])
    qtbot.waitUntil(lambda: window.image_viewer.stack is not None, timeout=20000)
    viewer = window.image_viewer
    viewer.state.set_frame(7)
    window.act_rotate.trigger()
    window.act_invert.trigger()
    qtbot.waitUntil(window.is_settled, timeout=20000)
    assert viewer.markers() == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    window.grab().save(str(screenshots / "viewer_invert_rotate_markers.png"))
    window.act_reset_view.trigger()
    assert not viewer.state.model.transformed


def _drop_on(widget, mime) -> bool:
    """Send a drag-enter and a drop of `mime` to `widget` (what Qt does under the mouse); True if accepted."""
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop.isAccepted()


def test_drag_a_browser_row_or_a_file_onto_a_view(qtbot, make_window, ct_series_dir, example_ct):
    from PySide6.QtCore import QMimeData, QUrl

    window = make_window()
    window.open_paths([ct_series_dir])
    qtbot.waitUntil(lambda: window.image_viewer.stack is not None, timeout=20000)
    window.set_layout("1x2")
    grid = window.grid
    # a file from the desktop onto view 2
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(example_ct))])
    assert _drop_on(grid._frames[1], files)
    qtbot.waitUntil(lambda: grid.cells[1].stack is not None, timeout=20000)
    assert grid.cells[1].stack.path.name == "CT_small.dcm" and window.image_viewer.stack.kind == "series"
    # the series row of the browser onto view 2: its mime names the row, the window opens that entry
    items = [i for i in window.browser._all_items() if i.data(0, Qt.ItemDataRole.UserRole + 1) is not None]
    row = window.browser.tree.mimeData(items[:1])
    assert row.hasFormat("application/x-medapp-browser-entry") and window.browser.dragged_entry is not None
    assert _drop_on(grid._frames[1], row)
    qtbot.waitUntil(lambda: grid.cells[1].stack is not None and grid.cells[1].stack.kind == "series", timeout=20000)
    assert grid.cells[1].state.n_frames == 15
    # something that is neither is refused (the window's own drop handling stays in charge)
    assert not _drop_on(grid._frames[1], QMimeData())
    # the row's context menu: "Open in view 3" switches to 2×2 and fills view 3
    menu = window.browser.view_menu(window.browser.dragged_entry)
    actions = {a.text(): a for a in menu.actions()}
    assert list(actions) == ["Open", "Open in view 2", "Open in view 3", "Open in view 4"]
    actions["Open in view 3"].trigger()
    qtbot.waitUntil(lambda: grid.cells[2].stack is not None, timeout=20000)
    assert grid.layout_name == "2x2" and window.layout_actions["2x2"].isChecked() and grid.active is grid.cells[2]
    qtbot.waitUntil(window.is_settled, timeout=20000)


def test_the_session_brings_back_rotation_and_inversion(qtbot, make_window, example_ct, ct_series_dir):
    window = make_window()
    window.open_paths([example_ct])
    qtbot.waitUntil(lambda: window.image_viewer.stack is not None, timeout=20000)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    state = window.image_viewer.state
    qtbot.keyClick(window.image_viewer, Qt.Key.Key_BracketRight)
    qtbot.keyClick(window.image_viewer, Qt.Key.Key_I)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    saved = window.context.session.view(example_ct)
    assert (saved.rotation, saved.invert) == (90, True)
    window.open_paths([ct_series_dir])  # another study, then back
    qtbot.waitUntil(lambda: state.stack is not None and state.stack.kind == "series", timeout=20000)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    assert state.rotation == 0 and not state.invert
    window.open_paths([example_ct])
    qtbot.waitUntil(lambda: state.stack is not None and state.stack.kind == "dicom", timeout=20000)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    assert (state.rotation, state.invert) == (90, True)
    assert window.image_viewer.markers() is not None


def test_markers_are_drawn_at_the_edges_and_hidden_with_the_overlay(qtbot, app_context, ct_series_dir, grab):
    viewer = _show(qtbot, app_context, ct_series_dir, size=(400, 400))

    def ink_at_edges() -> dict[str, bool]:
        arr = grab(viewer.viewport()).astype(np.int32)
        h, w = arr.shape[:2]
        ink = (np.abs(arr[..., 0] - 255) < 40) & (np.abs(arr[..., 1] - 220) < 40) & (np.abs(arr[..., 2] - 120) < 50)
        return {"left": bool(ink[h // 2 - 20 : h // 2 + 20, :30].any()),
                "right": bool(ink[h // 2 - 20 : h // 2 + 20, w - 30 :].any()),
                "top": bool(ink[:30, w // 2 - 20 : w // 2 + 20].any()),
                "bottom": bool(ink[h - 30 :, w // 2 - 20 : w // 2 + 20].any())}

    assert all(ink_at_edges().values())
    qtbot.keyClick(viewer, Qt.Key.Key_V)
    assert not any(ink_at_edges().values())


def test_the_layout_menu_ticks_exactly_the_layout_on_screen(qtbot, make_window):
    """Review: after "Open in view 2" switched the grid to 1×2, View → Layout showed both 1×1 and 1×2 ticked (the
    tick was set with the action's signals blocked, so the exclusive group never unticked the old one)."""
    window = make_window()
    grid, actions = window.grid, window.layout_actions

    def ticked() -> list[str]:
        return [name for name, act in actions.items() if act.isChecked()]

    assert ticked() == ["1x1"]
    grid.set_layout("1x2")  # what "Open in view 2" does
    assert ticked() == ["1x2"] and grid.layout_name == "1x2"
    actions["2x2"].trigger()  # the menu
    assert ticked() == ["2x2"] and grid.layout_name == "2x2"
    grid.set_layout("1x2")
    actions["1x1"].trigger()
    assert ticked() == ["1x1"] and grid.layout_name == "1x1"
    actions["1x1"].trigger()  # the checked item again: an exclusive group keeps it, the layout stays
    assert ticked() == ["1x1"] and grid.layout_name == "1x1"
