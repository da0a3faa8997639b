"""Measurement tools in the viewers: a known 10 mm line on 0.5 mm pixels reads 10.0 mm, an ROI's mean HU equals
numpy's on the modality values, angle / ellipse / freehand / note, slides in µm, px when nothing calibrates, the
Measurements panel (delete, Findings), and the session keeping them per image. Screenshots of each tool."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from medapp.measurements import length, roi_mask
from ui.main_window import open_job
from ui.panels.measurements import MeasurementsPanel
from ui.viewer.image_viewer import ImageViewer
from ui.viewer.measure_items import SELECTED_INK
from ui.viewer.slide_viewer import SlideViewer

L, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton


def _ct_file(tmp_path, ct_dataset, *, size=64, name="ct.dcm", **attrs):
    """A CT with 0.5 mm pixels whose HU vary from pixel to pixel (so a mean over the wrong pixels would show)."""
    yy, xx = np.mgrid[0:size, 0:size]
    pixels = (1024 + (xx * 7 + yy * 13) % 300 - 100).astype(np.int16)
    attrs.setdefault("PixelSpacing", [0.5, 0.5])
    ds = ct_dataset(pixels, **attrs)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _show(qtbot, app_context, path, size=(512, 512)) -> ImageViewer:
    _, _, stack, setup = open_job(path)
    viewer = ImageViewer(app_context)
    qtbot.addWidget(viewer)
    viewer.resize(*size)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_stack(stack, setup)
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    return viewer


def _vp(viewer, x: float, y: float) -> QPointF:
    """Image pixel coordinates → viewport position, exactly (float), through the view's transform."""
    return viewer.viewportTransform().map(QPointF(x, y))


def _send(viewer, kind, pos: QPointF, button, buttons) -> None:
    vp = viewer.viewport()
    event = QMouseEvent(kind, pos, vp.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, event)


def _drag(viewer, *points: tuple[float, float]) -> None:
    """Press at the first image point, move through the others, release at the last."""
    first = _vp(viewer, *points[0])
    _send(viewer, QEvent.Type.MouseButtonPress, first, L, L)
    for p in points[1:]:
        _send(viewer, QEvent.Type.MouseMove, _vp(viewer, *p), NONE, L)
    _send(viewer, QEvent.Type.MouseButtonRelease, _vp(viewer, *points[-1]), L, NONE)


def _click(viewer, x: float, y: float) -> None:
    pos = _vp(viewer, x, y)
    _send(viewer, QEvent.Type.MouseMove, pos, NONE, NONE)
    _send(viewer, QEvent.Type.MouseButtonPress, pos, L, L)
    _send(viewer, QEvent.Type.MouseButtonRelease, pos, L, NONE)


def _items(app_context, viewer):
    return app_context.measurements.items(str(viewer.state.stack.path))


def _labels(viewer) -> list[str]:
    return [g.text for g in viewer.measurement_graphics.values()]


def test_ruler_reads_10_mm_on_half_millimetre_pixels(qtbot, app_context, tmp_path, ct_dataset):
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    qtbot.keyClick(viewer, Qt.Key.Key_M)
    assert viewer.tool == "ruler"
    _drag(viewer, (12.0, 30.0), (20.0, 30.0), (32.0, 30.0))  # 20 px × 0.5 mm
    (m,) = _items(app_context, viewer)
    assert m.kind == "ruler" and m.frame == 0
    assert np.allclose(m.points, [(12.0, 30.0), (32.0, 30.0)], atol=1e-6)
    assert _labels(viewer) == ["10.0 mm"]
    # a click without a drag measures nothing; Esc cancels a line being drawn
    _click(viewer, 40.0, 40.0)
    _send(viewer, QEvent.Type.MouseButtonPress, _vp(viewer, 5, 5), L, L)
    _send(viewer, QEvent.Type.MouseMove, _vp(viewer, 25, 5), NONE, L)
    assert viewer.measuring
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert not viewer.measuring
    _send(viewer, QEvent.Type.MouseButtonRelease, _vp(viewer, 25, 5), L, NONE)
    assert len(_items(app_context, viewer)) == 1
    qtbot.keyClick(viewer, Qt.Key.Key_M)  # the same key again: back to panning
    assert viewer.tool == "pan"


def test_ruler_follows_zoom_and_pan(qtbot, app_context, tmp_path, ct_dataset):
    """Points are image pixels whatever the view's transform: zoomed in and scrolled, 10 mm is still 10 mm."""
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    viewer.zoom_by(3.0)
    viewer.centerOn(QPointF(40, 40))
    viewer.set_tool("ruler")
    _drag(viewer, (30.0, 35.0), (42.0, 51.0))  # 3-4-5: 20 px
    (m,) = _items(app_context, viewer)
    assert length(*m.points, viewer_cal(viewer)) == pytest.approx(10.0, abs=1e-6)


def viewer_cal(viewer):
    from medapp.measurements import calibration_for

    return calibration_for(viewer.state.stack)


def test_rectangle_roi_mean_hu_equals_numpy(qtbot, app_context, tmp_path, ct_dataset):
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    qtbot.keyClick(viewer, Qt.Key.Key_B)
    _drag(viewer, (10.0, 20.0), (42.0, 36.0))
    (m,) = _items(app_context, viewer)
    hu = viewer.state.stack.modality_values(0)
    expected = hu[20:36, 10:42]
    assert m.stats["n"] == expected.size == 512
    assert m.stats["mean"] == pytest.approx(float(expected.mean()))
    assert m.stats["sd"] == pytest.approx(float(expected.std()))
    assert (m.stats["min"], m.stats["max"]) == (float(expected.min()), float(expected.max()))
    assert m.stats["min"] < 0  # HU after the rescale, not stored values or display grey levels
    (label,) = _labels(viewer)
    assert label.splitlines()[0] == "area 128.0 mm²"  # 32 × 16 px × 0.25 mm²
    assert f"mean {expected.mean():.1f} HU" in label


def test_ellipse_and_freehand_rois(qtbot, app_context, tmp_path, ct_dataset):
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    hu = viewer.state.stack.modality_values(0)
    qtbot.keyClick(viewer, Qt.Key.Key_E)
    _drag(viewer, (8.0, 8.0), (40.0, 28.0))
    qtbot.keyClick(viewer, Qt.Key.Key_D)
    outline = [(44.0, 40.0), (60.0, 40.0), (60.0, 60.0), (44.0, 60.0)]
    steps = [(x0 + (x1 - x0) * t / 8, y0 + (y1 - y0) * t / 8)
             for (x0, y0), (x1, y1) in zip(outline, outline[1:] + outline[:1], strict=True) for t in range(8)]
    _drag(viewer, *steps, (44.0, 40.5))
    ellipse, freehand = _items(app_context, viewer)
    assert ellipse.kind == "ellipse" and freehand.kind == "freehand" and len(freehand.points) > 10
    for m in (ellipse, freehand):
        rows, cols, mask = roi_mask(m, hu.shape)
        assert m.stats["mean"] == pytest.approx(float(hu[rows, cols][mask].mean()))
        assert m.stats["n"] == mask.sum()
    labels = _labels(viewer)
    assert labels[0].startswith(f"area {np.pi * 16 * 10 / 4:.1f} mm²")  # π/4 × 32 × 20 px × 0.25 mm²
    assert labels[1].startswith("area 80.") and "HU" in labels[1]  # ≈ 16 × 20 px × 0.25 mm²


def test_angle_by_drag_then_click_and_by_three_clicks(qtbot, app_context, tmp_path, ct_dataset):
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    qtbot.keyClick(viewer, Qt.Key.Key_A)
    _drag(viewer, (40.0, 10.0), (10.0, 10.0))  # first arm: end → vertex
    assert viewer.measuring
    _click(viewer, 10.0, 40.0)
    _click(viewer, 50.0, 50.0)
    _click(viewer, 30.0, 30.0)
    _click(viewer, 60.0, 30.0)
    first, second = _items(app_context, viewer)
    assert _labels(viewer) == ["90.0°", "45.0°"]
    assert first.points[1] == pytest.approx((10.0, 10.0))


def test_text_note_and_delete_key(qtbot, app_context, tmp_path, ct_dataset):
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    viewer.label_provider = lambda: "small cyst?"
    qtbot.keyClick(viewer, Qt.Key.Key_T)
    _click(viewer, 20.0, 20.0)
    viewer.label_provider = lambda: None  # cancelled dialog: nothing added
    _click(viewer, 30.0, 20.0)
    (note,) = _items(app_context, viewer)
    assert note.kind == "text" and note.label == "small cyst?" and note.points == ((20.0, 20.0),)
    assert _labels(viewer) == ["small cyst?"]
    viewer.state.model.rotate(90)
    qtbot.keyClick(viewer, Qt.Key.Key_Backspace)  # the viewer's "reset the view": it keeps the measurements
    assert viewer.state.model.rotation == 0 and len(_items(app_context, viewer)) == 1
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    assert _items(app_context, viewer) == [] and viewer.measurement_graphics == {}


def test_measurements_belong_to_their_frame(qtbot, app_context, ct_series_dir):
    _, _, collection, _ = open_job(ct_series_dir)
    stack = collection.patients[0].studies[0].series[0].open()
    viewer = ImageViewer(app_context)
    qtbot.addWidget(viewer)
    viewer.resize(400, 400)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_stack(stack)
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    viewer.state.set_frame(3)
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    viewer.set_tool("rect")
    _drag(viewer, (10.0, 10.0), (30.0, 30.0))
    (m,) = app_context.measurements.items(str(stack.path))
    assert m.frame == 3
    assert m.stats["mean"] == pytest.approx(float(stack.modality_values(3)[10:30, 10:30].mean()))
    assert len(viewer.measurement_graphics) == 1
    viewer.state.set_frame(4)
    assert viewer.measurement_graphics == {}  # drawn on frame 3 only
    viewer.state.set_frame(3)
    assert len(viewer.measurement_graphics) == 1
    # the panel names the image; selecting highlights it; double-clicking from another image goes back to it
    panel = MeasurementsPanel(app_context)
    qtbot.addWidget(panel)
    panel.selected.connect(viewer.highlight_measurement)
    assert panel.lines()[0].endswith("(image 4)")
    panel.list.item(0).setSelected(True)
    (graphic,) = viewer.measurement_graphics.values()
    assert graphic.ink == SELECTED_INK
    viewer.state.set_frame(9)
    panel.list.itemDoubleClicked.emit(panel.list.item(0))
    assert viewer.state.frame == 3
    assert panel.findings_text() == panel.lines()[0].replace("  (image 4)", " (image 4).")


def test_uncalibrated_image_says_px(qtbot, app_context, tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(path)
    viewer = _show(qtbot, app_context, path)
    viewer.set_tool("ruler")
    _drag(viewer, (5.0, 5.0), (25.0, 5.0))
    viewer.set_tool("rect")
    _drag(viewer, (10.0, 10.0), (20.0, 20.0))
    ruler, rect = _labels(viewer)
    assert ruler == "20.0 px" and "mm" not in ruler
    assert rect.splitlines() == ["area 100.0 px²", "mean 90.0, SD 0.0", "min 90.0, max 90.0"]


def test_slide_ruler_in_micrometres(qtbot, app_context, tiled_tiff_slide, screenshots):
    _, _, slide, setup = open_job(tiled_tiff_slide)
    viewer = SlideViewer(app_context)
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_slide(slide, setup)
    qtbot.waitUntil(viewer.is_idle, timeout=20000)
    qtbot.keyClick(viewer, Qt.Key.Key_M)
    _drag(viewer, (100.0, 200.0), (700.0, 200.0))  # 600 level-0 px × 0.5 µm
    viewer.set_tool("rect")
    _drag(viewer, (1000.0, 1000.0), (1400.0, 1200.0))
    ruler, rect = app_context.measurements.items(str(slide.path))
    assert np.allclose(ruler.points, [(100.0, 200.0), (700.0, 200.0)], atol=1e-6)
    assert rect.stats is None  # slides: area only
    assert sorted(_labels(viewer)) == ["300.0 µm", "area 20000 µm²"]
    viewer.set_tool("freehand")
    _drag(viewer, *[(600 + 250 * np.cos(t), 1500 + 180 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 60)])
    qtbot.waitUntil(viewer.is_idle, timeout=20000)
    viewer.grab().save(str(screenshots / "measure_slide.png"))
    assert len(viewer.measurement_graphics) == 3


def test_panel_lists_deletes_and_inserts_into_findings(qtbot, make_window, tmp_path, ct_dataset, screenshots):
    path = _ct_file(tmp_path, ct_dataset)
    window = make_window()
    with qtbot.waitSignal(window.document_shown, timeout=20000):
        window.open_paths([path])
    viewer = window.image_viewer
    qtbot.waitUntil(viewer.is_current, timeout=10000)
    panel = window.measure_panel
    assert panel.calibration_label.text() == "Calibration: 0.5 × 0.5 mm/px (PixelSpacing)"
    window.measure_actions["ruler"].trigger()
    assert viewer.tool == "ruler"
    _drag(viewer, (12.0, 30.0), (32.0, 30.0))
    viewer.set_tool("rect")
    assert window.measure_actions["rect"].isChecked() and not window.measure_actions["ruler"].isChecked()
    _drag(viewer, (10.0, 20.0), (42.0, 36.0))
    viewer.set_tool("angle")
    _drag(viewer, (40.0, 10.0), (10.0, 10.0))
    _click(viewer, 10.0, 40.0)
    lines = panel.lines()
    assert lines[0] == "Ruler: 10.0 mm" and lines[1].startswith("Rectangle: area 128.0 mm², mean ")
    assert lines[2] == "Angle: 90.0°"
    panel.list.item(0).setSelected(True)
    assert panel.edit_label("lesion 1")
    assert panel.lines()[0] == "Ruler (lesion 1): 10.0 mm"
    assert "lesion 1: 10.0 mm" in _labels(viewer)
    panel.list.clearSelection()
    panel.list.item(2).setSelected(True)
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert len(panel.lines()) == 2 and len(viewer.measurement_graphics) == 2
    qtbot.mouseClick(panel.insert_button, Qt.MouseButton.LeftButton)
    report = window.report_panel.report
    findings = report.text("findings")
    assert findings.splitlines()[0] == "Ruler (lesion 1): 10.0 mm." and "mean" in findings and "HU" in findings
    assert window.panels.currentWidget() is window.report_panel
    assert window.report_panel.editor("findings").toPlainText() == findings
    window.grab().save(str(screenshots / "measure_window_findings.png"))
    # a new AI draft replaces Findings, but the measurement lines the clinician inserted and kept stay in it; the
    # AI text stays flagged as unreviewed (Findings is not marked edited by the carry-over)
    from reports.model import Report
    from reports.templates import template_for

    draft = Report.from_template(template_for("CT"), {"findings": "No acute abnormality.", "impression": "Normal."},
                                 modality="CT")
    window.report_panel._on_draft(draft)
    findings_after = window.report_panel.report.text("findings").splitlines()
    assert findings_after[0] == "No acute abnormality." and findings_after[1:] == findings.splitlines()
    assert "findings" not in window.report_panel.report.edited
    assert "measurement lines stayed in Findings" in window.report_panel.status.text()
    help_box = window.show_key_help()
    assert "ruler / angle" in help_box.text() and "rectangle / ellipse / freehand ROI" in help_box.text()
    help_box.close()
    # kept in the session: a restart brings them back on the same image
    qtbot.waitUntil(lambda: len(window.context.session.measurements(path)) == 2, timeout=5000)
    window.close()
    second = make_window()
    with qtbot.waitSignal(second.document_shown, timeout=20000):
        second.open_paths([path])
    qtbot.waitUntil(second.image_viewer.is_current, timeout=10000)
    assert second.measure_panel.lines() == panel.lines()
    assert len(second.image_viewer.measurement_graphics) == 2


def test_panel_shows_the_detector_plane_caveat(qtbot, app_context, tmp_path, ct_dataset, screenshots):
    import pydicom

    path = _ct_file(tmp_path, ct_dataset, Modality="DX", ImagerPixelSpacing=[0.2, 0.2])
    ds = pydicom.dcmread(path)
    del ds.PixelSpacing
    ds.save_as(path)
    viewer = _show(qtbot, app_context, path)
    panel = MeasurementsPanel(app_context)
    qtbot.addWidget(panel)
    assert "ImagerPixelSpacing" in panel.calibration_label.text()
    assert "detector plane" in panel.calibration_label.text()
    viewer.set_tool("ruler")
    _drag(viewer, (0.0, 10.0), (50.0, 10.0))
    assert panel.lines() == ["Ruler: 10.0 mm"]
    assert _labels(viewer) == ["10.0 mm (at detector)"]  # on the image too, where the panel may not be looked at
    assert "detector plane" in panel.findings_text()
    panel.resize(300, 260)
    panel.show()
    qtbot.waitExposed(panel)
    panel.grab().save(str(screenshots / "measure_panel_detector_caveat.png"))


def test_screenshots_of_each_tool(qtbot, app_context, example_ct, screenshots):
    """pydicom's CT_small (0.66 mm pixels): every tool drawn, grabbed for review."""
    viewer = _show(qtbot, app_context, example_ct, size=(640, 640))
    viewer.set_tool("ruler")
    _drag(viewer, (14.0, 100.0), (112.0, 100.0))
    viewer.set_tool("angle")
    _drag(viewer, (20.0, 20.0), (45.0, 45.0))
    _click(viewer, 75.0, 22.0)
    viewer.set_tool("rect")
    _drag(viewer, (58.0, 62.0), (84.0, 86.0))
    viewer.set_tool("ellipse")
    _drag(viewer, (10.0, 60.0), (36.0, 84.0))
    viewer.set_tool("freehand")
    ring = [(64 + 12 * np.cos(t), 30 + 9 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    _drag(viewer, *ring)
    viewer.label_provider = lambda: "note: check this"
    viewer.set_tool("text")
    _click(viewer, 8.0, 118.0)
    viewer.set_tool("pan")
    assert len(viewer.measurement_graphics) == 6
    viewer.grab().save(str(screenshots / "measure_ct_tools.png"))
    viewer.zoom_by(2.0)
    viewer.centerOn(QPointF(80, 70))
    viewer.grab().save(str(screenshots / "measure_ct_zoomed.png"))  # labels near the right edge move left
    assert (screenshots / "measure_ct_tools.png").stat().st_size > 1000


def test_insert_into_a_signed_report_returns_it_to_draft(qtbot, app_context):
    from medapp.reporting import Report
    from ui.model_bridge import ModelBridge
    from ui.panels.report import ReportPanel

    panel = ReportPanel(app_context, ModelBridge(app_context))
    qtbot.addWidget(panel)
    report = Report.from_dict(Report().to_dict())
    report.set_section("findings", "Normal lungs.")
    report.set_section("impression", "Normal.")
    report.sign("Dr Test Reader")
    panel.set_report(report, save=False)
    assert panel.report.is_signed
    panel.insert_findings("Ruler: 10.0 mm.")
    assert panel.report.text("findings") == "Normal lungs.\nRuler: 10.0 mm."
    assert not panel.report.is_signed and "signed again" in panel.status.text()
    assert panel.editor("findings").toPlainText() == "Normal lungs.\nRuler: 10.0 mm."
    panel.insert_findings("Ruler: 10.0 mm.")  # again: nothing new, said so
    assert panel.report.text("findings") == "Normal lungs.\nRuler: 10.0 mm." and "already" in panel.status.text()


def test_points_are_image_pixels_under_rotation_and_flip(qtbot, app_context, tmp_path, ct_dataset):
    """Rotating the view and flipping the image item (what the viewer's rotate / flip may do) leaves the measured
    points in image pixels: mapping goes viewport → scene → image item."""
    from PySide6.QtGui import QTransform

    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    item = viewer._pixmap_item
    item.setTransform(QTransform(-1, 0, 0, 1, 64, 0))  # mirrored left-right
    viewer.rotate(90)

    def at(x, y):
        return viewer.viewportTransform().map(item.mapToScene(QPointF(x, y)))

    viewer.set_tool("ruler")
    _send(viewer, QEvent.Type.MouseButtonPress, at(10.0, 20.0), L, L)
    _send(viewer, QEvent.Type.MouseMove, at(20.0, 20.0), NONE, L)
    _send(viewer, QEvent.Type.MouseButtonRelease, at(30.0, 20.0), L, NONE)
    (m,) = _items(app_context, viewer)
    assert np.allclose(m.points, [(10.0, 20.0), (30.0, 20.0)], atol=1e-6)
    assert _labels(viewer) == ["10.0 mm"]
    (graphic,) = viewer.measurement_graphics.values()
    start = graphic.mapToScene(QPointF(10.0, 20.0))
    assert np.allclose((start.x(), start.y()), (item.mapToScene(QPointF(10.0, 20.0)).x(),
                                                 item.mapToScene(QPointF(10.0, 20.0)).y()))


def test_roi_statistics_wait_for_the_frame_values(qtbot, app_context, tmp_path, ct_dataset):
    """An ROI drawn before the frame's values are decoded gets its statistics when they arrive, once."""
    viewer = _show(qtbot, app_context, _ct_file(tmp_path, ct_dataset))
    values = viewer._values
    viewer._values = None  # as if the render worker had not delivered them yet
    viewer.set_tool("ellipse")
    _drag(viewer, (10.0, 10.0), (30.0, 26.0))
    (m,) = _items(app_context, viewer)
    assert m.stats is None and _labels(viewer)[0].count("\n") == 0  # area only, for now
    viewer._values = values
    viewer.frame_rendered.emit()
    (m,) = _items(app_context, viewer)
    rows, cols, mask = roi_mask(m, values[1].shape)
    assert m.stats["mean"] == pytest.approx(float(values[1][rows, cols][mask].mean()))
    assert "HU" in _labels(viewer)[0]
