"""Slide viewer: lazy tiles in a worker with a bounded cache, magnification steps, minimap, scale bar, model input."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from ui.main_window import open_job
from ui.viewer.magnification import base_magnification, scale_bar, step_magnification
from ui.viewer.slide_viewer import SlideViewer, model_level
from ui.viewer.tiles import TileCache, TileKey, tiles_for_view


def _slide_viewer(qtbot, app_context, path, *, cache_tiles=512, size=(800, 600)) -> SlideViewer:
    kind, _, slide, setup = open_job(path)
    assert kind == "slide"
    viewer = SlideViewer(app_context, cache_tiles=cache_tiles)
    qtbot.addWidget(viewer)
    viewer.resize(*size)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_slide(slide, setup)
    app_context.set_input_provider(viewer.model_input)
    return viewer


def _wait_idle(qtbot, viewer):
    qtbot.waitUntil(viewer.is_idle, timeout=20000)


def test_svs_magnification_tiles_and_model_input(qtbot, app_context, svs_slide, slide_levels, screenshots):
    viewer = _slide_viewer(qtbot, app_context, svs_slide)
    assert viewer.base_mag == pytest.approx(20.0)  # AppMag = 20
    _wait_idle(qtbot, viewer)
    assert viewer.tiles_read == 0  # fitted: the 1024 px thumbnail is sharp enough, no tile read
    viewer.set_magnification(10.0)
    assert viewer.magnification == pytest.approx(10.0)
    assert viewer.zoom == pytest.approx(0.5)
    _wait_idle(qtbot, viewer)
    assert viewer.tiles_read == 0  # still covered by the thumbnail (downsample 2)
    viewer.set_magnification(20.0)
    _wait_idle(qtbot, viewer)
    assert viewer.tiles_read > 0
    read = viewer.tiles_read
    # the tiles on screen are those of level 0 covering the view (800×600 → at most 4×4 tiles)
    assert {k.level for k in viewer._items} == {0}
    assert 6 <= len(viewer._items) <= 16
    # panning back and forth reuses the cache
    viewer.center_on(QPointF(1500, 1500))
    _wait_idle(qtbot, viewer)
    viewer.center_on(QPointF(1024, 1024))
    _wait_idle(qtbot, viewer)
    assert viewer.cache.hits > 0
    assert viewer.tiles_read >= read
    # the minimap frame is the visible part of the slide
    x, y, w, h = viewer.visible_rect()
    mm = viewer.minimap.view_rect
    assert (mm.x(), mm.y(), mm.width(), mm.height()) == pytest.approx((x, y, w, h))
    # magnification steps (+ / −)
    viewer.set_magnification(10.0)
    viewer.step_magnification(+1)
    assert viewer.magnification == pytest.approx(20.0)
    viewer.step_magnification(+1)
    assert viewer.magnification == pytest.approx(40.0)  # one step of digital zoom past the scan
    viewer.step_magnification(+1)
    assert viewer.magnification == pytest.approx(40.0)
    viewer.set_magnification(5.0)
    _wait_idle(qtbot, viewer)
    assert viewer.magnification == pytest.approx(5.0)
    # what the model gets: the visible view at the on-screen resolution (downsample 4 at 5×)
    mi = app_context.current_model_input()
    assert mi.kind == "slide" and mi.region is not None
    rx, ry, rw, rh = mi.region
    assert mi.image.size == (round(rw / 4), round(rh / 4))
    expected = slide_levels[2][ry // 4 : ry // 4 + mi.image.size[1], rx // 4 : rx // 4 + mi.image.size[0]]
    diff = np.abs(np.asarray(mi.image).astype(int) - expected.astype(int)).mean()
    assert diff < 12, diff  # same pixels up to JPEG loss
    # the ModelInput's ViewState reproduces it through the core's render_view (what `medapp render` prints)
    from medapp.view import render_view

    assert mi.view_state.level == 2 and mi.view_state.region == mi.region
    assert np.array_equal(np.asarray(render_view(mi.view_state)), np.asarray(mi.image))
    # screenshot at 20× on the edge of a tissue blob: tiles from level 0, minimap frame, scale bar
    viewer.set_magnification(20.0)
    viewer.center_on(QPointF(1000, 1050))
    _wait_idle(qtbot, viewer)
    assert {k.level for k in viewer._items} == {0}
    viewer.grab().save(str(screenshots / "slide_viewer.png"))


def test_drawn_region_goes_to_model(qtbot, app_context, tiled_tiff_slide, slide_levels):
    viewer = _slide_viewer(qtbot, app_context, tiled_tiff_slide)
    assert viewer.base_mag == pytest.approx(20.0)  # no objective power in a generic TIFF: 10 µm / 0.5 mpp
    viewer.set_magnification(20.0)  # 1:1 with level 0
    viewer.set_roi((600, 700, 300, 200))
    mi = app_context.current_model_input()
    assert mi.region == (600, 700, 300, 200) and mi.image.size == (300, 200)
    diff = np.abs(np.asarray(mi.image).astype(int) - slide_levels[0][700:900, 600:900].astype(int)).mean()
    assert diff < 12, diff
    whole = app_context.current_model_input(use_region=False)
    assert whole.region != mi.region
    viewer.set_roi(None)
    assert app_context.current_model_input().region == tuple(int(round(v)) for v in viewer.visible_rect())


def test_tile_cache_is_bounded(qtbot, app_context, tiled_tiff_slide):
    viewer = _slide_viewer(qtbot, app_context, tiled_tiff_slide, cache_tiles=6)
    viewer.set_magnification(20.0)
    for point in ((300, 300), (1700, 300), (300, 1700), (1700, 1700)):
        viewer.center_on(QPointF(*point))
        _wait_idle(qtbot, viewer)
    assert viewer.tiles_read > 6
    assert len(viewer.cache) <= 6


def test_tiles_for_view_centre_first():
    # level-0 view 1024×512 at downsample 2 = 512×256 level px = two tiles; the edge at 512 is exclusive
    keys = tiles_for_view((0, 0, 1024, 512), level=1, level_dims=(1024, 1024), downsample=2.0, tile=256)
    assert sorted(keys) == [TileKey(1, 0, 0), TileKey(1, 1, 0)]
    keys = tiles_for_view((100, 100, 1024, 512), level=1, level_dims=(1024, 1024), downsample=2.0, tile=256)
    assert len(keys) == 6
    big = tiles_for_view((0, 0, 2048, 2048), 0, (2048, 2048), 1.0)
    assert len(big) == 64
    centre = big[0]
    assert centre.col in (3, 4) and centre.row in (3, 4)
    assert tiles_for_view((5000, 5000, 10, 10), 0, (2048, 2048), 1.0) == []


def test_tile_cache_lru():
    from PySide6.QtGui import QImage

    cache = TileCache(2)
    a, b, c = TileKey(0, 0, 0), TileKey(0, 1, 0), TileKey(0, 2, 0)
    cache.put(a, QImage(1, 1, QImage.Format.Format_RGB888))
    cache.put(b, QImage(1, 1, QImage.Format.Format_RGB888))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, QImage(1, 1, QImage.Format.Format_RGB888))
    assert a in cache and c in cache and b not in cache


@pytest.mark.parametrize(
    ("power", "mpp", "expected"), [(20.0, (0.5, 0.5), 20.0), (None, (0.25, 0.25), 40.0), (None, None, None)]
)
def test_base_magnification(power, mpp, expected):
    assert base_magnification(power, mpp) == expected


def test_magnification_steps_and_scale_bar():
    assert step_magnification(10.0, +1, 20.0) == 20.0
    assert step_magnification(10.0, -1, 20.0) == 5.0
    assert step_magnification(7.0, +1, 20.0) == 10.0
    assert step_magnification(1.25, -1, 20.0) == 1.25
    assert step_magnification(40.0, +1, 20.0) == 40.0
    assert step_magnification(20.0, +1, 10.0) == 20.0  # base 10×: at most 20×
    length, px, label = scale_bar(0.5)  # 0.5 µm per screen pixel: 60 µm ideal → 50 µm
    assert (length, px, label) == (50.0, 100.0, "50 µm")
    length, px, label = scale_bar(40.0)  # 4800 µm ideal → 2 mm... 5 mm is too long
    assert label == "2 mm" and px == pytest.approx(50.0)
    with pytest.raises(ValueError, match="positive"):
        scale_bar(0.0)


def test_model_level_and_the_cores_region_render(tiled_tiff_slide, monkeypatch):
    """The viewer picks the level (the screen's); the core's render_slide_region reads it and shrinks."""
    from dicom_io import RegionError
    from medapp.view import render_slide_region

    _, _, slide, _ = open_job(tiled_tiff_slide)
    region = (0, 0, 2048, 1024)
    assert model_level(slide, region, 1.0) == 0
    assert render_slide_region(slide, region, 0).size == (2048, 1024)
    assert model_level(slide, region, 3.0) == 1  # level 1: finer than the screen
    assert render_slide_region(slide, region, 1).size == (1024, 512)
    monkeypatch.setattr("medapp.view.MAX_MODEL_SIDE", 600)
    assert model_level(slide, region, 1.0) == 2  # 2048 / 4 = 512 ≤ 600
    assert render_slide_region(slide, region, 2).size == (512, 256)
    monkeypatch.setattr("medapp.view.MAX_MODEL_SIDE", 300)
    assert model_level(slide, region, 1.0) == 2  # the coarsest level, still over
    monkeypatch.setattr("medapp.view.MODEL_SIDE", 300)
    assert render_slide_region(slide, region, 2).size == (300, 150)  # then shrunk to the core's model side
    with pytest.raises(RegionError, match="empty"):
        render_slide_region(slide, (0, 0, 0, 10), 0)
    with pytest.raises(RegionError, match="level 3 out of range"):
        render_slide_region(slide, region, 3)


def test_model_input_over_the_model_side_is_render_views_pixels(qtbot, app_context, tiled_tiff_slide, monkeypatch):
    """A read at the screen's level larger than the core's MODEL_SIDE is shrunk exactly as `render_view` shrinks it
    (the viewer once kept up to 4096 px, so its image and its ViewState's differed)."""
    from medapp.view import render_view

    monkeypatch.setattr("medapp.view.MODEL_SIDE", 500)
    viewer = _slide_viewer(qtbot, app_context, tiled_tiff_slide)
    viewer.set_magnification(20.0)  # 1:1 with level 0: the region is read at level 0, 1200×800 px
    viewer.set_roi((0, 0, 1200, 800))
    mi = app_context.current_model_input()
    assert mi.view_state.level == 0 and mi.image.size == (500, 333)
    assert np.array_equal(np.asarray(render_view(mi.view_state)), np.asarray(mi.image))


def test_zoom_step_keeps_previous_level_until_new_tiles_arrive(qtbot, app_context, tiled_tiff_slide, monkeypatch):
    """No flash back to the thumbnail: level-1 tiles stay under the view while the level-0 tiles are read."""
    monkeypatch.setattr("ui.viewer.slide_viewer.THUMB_SIDE", 256)  # thumbnail at downsample 8: tiles from level 1 up
    viewer = _slide_viewer(qtbot, app_context, tiled_tiff_slide, size=(512, 512))
    viewer.set_zoom(0.4)  # downsample 2.5: level 1
    _wait_idle(qtbot, viewer)
    assert {k.level for k in viewer._items} == {1}
    level1 = set(viewer._items)
    gate = __import__("threading").Event()
    real = viewer.slide.read_region

    def slow_read(*args, **kwargs):
        gate.wait(10)
        return real(*args, **kwargs)

    viewer.slide.read_region = slow_read
    try:
        viewer.set_zoom(1.5)
        qtbot.waitUntil(lambda: bool(viewer._pending), timeout=5000)
        assert viewer._backdrop and set(viewer._backdrop) <= level1  # old tiles still drawn
        assert all(item.zValue() < 1 for item in viewer._backdrop.values())
    finally:
        gate.set()
    _wait_idle(qtbot, viewer)
    viewer.slide.read_region = real
    assert not viewer._backdrop and {k.level for k in viewer._items} == {0}


def test_slide_keys(qtbot, app_context, svs_slide):
    from PySide6.QtCore import Qt

    viewer = _slide_viewer(qtbot, app_context, svs_slide)
    qtbot.keyClick(viewer, Qt.Key.Key_4)  # 10×
    assert viewer.magnification == pytest.approx(10.0)
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert viewer.magnification == pytest.approx(20.0)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    assert viewer.magnification == pytest.approx(5.0)
    qtbot.keyClick(viewer, Qt.Key.Key_5)  # 20×: the slide is larger than the screen
    x0 = viewer.visible_rect()[0]
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.visible_rect()[0] > x0  # pans a quarter screen
    qtbot.keyClick(viewer, Qt.Key.Key_R)
    assert viewer.tool == "roi"
    viewer.set_roi((10, 10, 100, 100))
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert viewer.roi is None
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert viewer.visible_rect() == pytest.approx((0, 0, 2048, 2048))


def test_dicom_wsi_slide_in_viewer(qtbot, app_context, dicom_wsi_slide):
    viewer = _slide_viewer(qtbot, app_context, dicom_wsi_slide)
    assert viewer.base_mag == pytest.approx(20.0)  # from the 0.5 µm pixel spacing
    viewer.set_magnification(20.0)
    _wait_idle(qtbot, viewer)
    assert viewer.tiles_read > 0 and {k.level for k in viewer._items} == {0}
    mi = app_context.current_model_input()
    assert mi.kind == "slide" and mi.image.size == (mi.region[2], mi.region[3])


def test_roi_tool_draws_the_region_with_the_mouse(qtbot, app_context, tiled_tiff_slide):
    """The shared ROI tool (ui.viewer.roi_tool): left-drag draws a level-0 region; with "pan" it pans instead."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    def mouse(kind, pos, button, buttons):
        p = QPointF(pos)
        QApplication.sendEvent(vp, QMouseEvent(kind, p, vp.mapToGlobal(p), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))

    viewer = _slide_viewer(qtbot, app_context, tiled_tiff_slide)
    viewer.set_magnification(20.0)  # 1:1 with level 0
    vp = viewer.viewport()
    with pytest.raises(ValueError, match="unknown tool"):
        viewer.set_tool("lasso")
    with qtbot.waitSignal(viewer.tool_changed, timeout=1000) as changed:
        viewer.set_tool("roi")
    assert changed.args == ["roi"] and viewer.tool == "roi"
    x0, y0 = viewer.visible_rect()[:2]
    a, b = viewer.mapFromScene(QPointF(x0 + 100, y0 + 50)), viewer.mapFromScene(QPointF(x0 + 300, y0 + 170))
    L, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    with qtbot.waitSignal(viewer.roi_changed, timeout=3000) as drawn:
        mouse(QEvent.Type.MouseButtonPress, b, L, L)  # drawn from bottom-right to top-left: normalized
        mouse(QEvent.Type.MouseMove, a, none, L)
        assert viewer._roi_item.isVisible()
        mouse(QEvent.Type.MouseButtonRelease, a, L, none)
    x, y, w, h = drawn.args[0]
    assert abs(x - (x0 + 100)) <= 1 and abs(y - (y0 + 50)) <= 1 and abs(w - 200) <= 2 and abs(h - 120) <= 2
    assert viewer.roi == drawn.args[0] and app_context.current_model_input().region == viewer.roi
    qtbot.keyClick(viewer, Qt.Key.Key_R)  # back to panning: a left-drag no longer touches the region
    assert viewer.tool == "pan"
    roi = viewer.roi
    mouse(QEvent.Type.MouseButtonPress, a, L, L)
    mouse(QEvent.Type.MouseMove, b, none, L)
    mouse(QEvent.Type.MouseButtonRelease, b, L, none)
    assert viewer.roi == roi
