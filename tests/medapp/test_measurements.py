"""Measurements without a screen: calibration from the file, lengths / angles / areas, ROI statistics on the
modality values (HU), masks at pixel centres, Findings text, the store and the session."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from medapp.measurements import (
    DETECTOR_CAVEAT,
    Calibration,
    Measurement,
    MeasurementStore,
    angle_degrees,
    area,
    calibration_for,
    describe,
    document_key,
    findings_text,
    insert_into_findings,
    label_lines,
    length,
    roi_mask,
    roi_stats,
    value_unit,
    with_stats,
)

MM05 = Calibration(0.5, 0.5, "mm", "PixelSpacing")


def _write_ct(tmp_path, ct_dataset, name="ct.dcm", **attrs):
    pixels = (np.arange(64 * 64).reshape(64, 64) % 700).astype(np.int16)
    ds = ct_dataset(pixels, **attrs)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_calibration_from_dicom_pixel_spacing(tmp_path, ct_dataset):
    from medapp.documents import open_document

    stack = open_document(_write_ct(tmp_path, ct_dataset, PixelSpacing=[0.5, 0.25]))
    cal = calibration_for(stack)
    # DICOM order is (row spacing, column spacing): across = 0.25, down = 0.5
    assert (cal.sx, cal.sy, cal.unit, cal.source, cal.caveat) == (0.25, 0.5, "mm", "PixelSpacing", "")
    assert value_unit(stack) == "HU"
    assert document_key(stack) == str(stack.path)


def test_imager_pixel_spacing_is_read_and_carries_the_detector_caveat(tmp_path, ct_dataset):
    from medapp.documents import open_document

    path = _write_ct(tmp_path, ct_dataset, Modality="DX", ImagerPixelSpacing=[0.2, 0.2])
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelSpacing
    ds.save_as(path)
    stack = open_document(path)
    assert stack.metadata["imager_pixel_spacing_mm"] == [0.2, 0.2]
    cal = calibration_for(stack)
    assert cal.unit == "mm" and cal.source == "ImagerPixelSpacing" and cal.caveat == DETECTOR_CAVEAT
    assert "detector plane" in cal.describe()
    assert value_unit(stack) == ""  # DX values have no known unit
    text = findings_text([Measurement("ruler", ((0, 0), (50, 0)))], cal)
    assert text.splitlines() == ["Ruler: 10.0 mm.", f"Sizes from ImagerPixelSpacing: {DETECTOR_CAVEAT}."]
    assert cal.describe().count("ImagerPixelSpacing") == 1
    assert label_lines(Measurement("ruler", ((0, 0), (50, 0))), cal) == ["10.0 mm (at detector)"]
    assert label_lines(Measurement("angle", ((1, 0), (0, 0), (0, 1))), cal) == ["90.0°"]  # magnification leaves angles alone


def test_pixel_spacing_wins_over_imager_pixel_spacing():
    doc = types.SimpleNamespace(kind="dicom", metadata={"pixel_spacing_mm": [0.5, 0.5],
                                                         "imager_pixel_spacing_mm": [0.6, 0.6]})
    assert calibration_for(doc) == MM05


def test_slide_mpp_and_nothing_calibrated():
    slide = types.SimpleNamespace(kind="slide", mpp=(0.25, 0.5), metadata={})
    cal = calibration_for(slide)
    assert (cal.sx, cal.sy, cal.unit) == (0.25, 0.5, "µm")
    none = calibration_for(types.SimpleNamespace(kind="image", metadata={"pixel_spacing_mm": [0, 1]}))
    assert not none.calibrated and none.unit == "px" and "pixels" in none.describe()
    assert calibration_for(types.SimpleNamespace(kind="slide", mpp=None)).unit == "px"


def test_ten_mm_line_on_half_millimetre_pixels():
    ruler = Measurement("ruler", ((10.0, 10.0), (30.0, 10.0)))
    assert length(*ruler.points, MM05) == pytest.approx(10.0)
    assert describe(ruler, MM05) == "Ruler: 10.0 mm"
    diagonal = Measurement("ruler", ((0, 0), (12, 16)))  # 3-4-5: 20 px = 10 mm
    assert label_lines(diagonal, MM05) == ["10.0 mm"]
    assert label_lines(diagonal, Calibration()) == ["20.0 px"]  # nothing calibrates: px, never mm


def test_anisotropic_pixels_scale_each_axis():
    cal = Calibration(0.5, 2.0, "mm", "PixelSpacing")
    assert length((0, 0), (0, 5), cal) == pytest.approx(10.0)
    assert length((0, 0), (20, 0), cal) == pytest.approx(10.0)
    # 45° in pixels is not 45° on the patient when pixels are 4× taller than wide
    assert angle_degrees((10, 0), (0, 0), (10, 10), Calibration()) == pytest.approx(45.0)
    assert angle_degrees((10, 0), (0, 0), (10, 10), cal) == pytest.approx(math.degrees(math.atan(4.0)))


def test_angle_degrees():
    angle = Measurement("angle", ((10, 0), (0, 0), (0, 7)))
    assert label_lines(angle, MM05) == ["90.0°"]
    assert angle_degrees((1, 0), (0, 0), (-1, 0), MM05) == pytest.approx(180.0)
    assert angle_degrees((0, 0), (0, 0), (1, 1), MM05) == 0.0  # a degenerate arm


def test_areas_in_square_units():
    rect = Measurement("rect", ((10, 10), (30, 20)))  # 20 × 10 px = 10 × 5 mm
    assert area(rect, MM05) == pytest.approx(50.0)
    ellipse = Measurement("ellipse", ((0, 0), (20, 10)))
    assert area(ellipse, MM05) == pytest.approx(math.pi * 5 * 2.5)
    triangle = Measurement("freehand", ((0, 0), (20, 0), (0, 20)))
    assert area(triangle, MM05) == pytest.approx(50.0)
    assert area(Measurement("ruler", ((0, 0), (1, 1))), MM05) is None
    um = Calibration(0.5, 0.5, "µm", "slide mpp")
    assert label_lines(Measurement("rect", ((0, 0), (100, 100))), um) == ["area 2500 µm²"]
    assert label_lines(Measurement("rect", ((0, 0), (4000, 4000))), um) == ["area 4.000 mm²"]
    assert label_lines(Measurement("ruler", ((0, 0), (4000, 0))), um) == ["2.00 mm"]


def test_rect_mask_counts_pixel_centres_exactly():
    cut = roi_mask(Measurement("rect", ((2, 3), (12, 13))), (20, 20))
    rows, cols, mask = cut
    assert mask.sum() == 100 and (rows.start, cols.start) == (3, 2)
    assert roi_mask(Measurement("rect", ((30, 30), (40, 40))), (20, 20)) is None  # outside the image
    # a rectangle hanging over the edge is clipped to the image
    assert roi_mask(Measurement("rect", ((-5, -5), (4, 4))), (20, 20))[2].sum() == 16


def test_ellipse_and_freehand_masks_match_a_brute_force_test():
    yy, xx = np.mgrid[0:40, 0:40] + 0.5
    ellipse = Measurement("ellipse", ((5.2, 8.1), (33.7, 27.9)))
    full = np.zeros((40, 40), bool)
    rows, cols, mask = roi_mask(ellipse, (40, 40))
    full[rows, cols] = mask
    a, b, mx, my = (33.7 - 5.2) / 2, (27.9 - 8.1) / 2, (33.7 + 5.2) / 2, (27.9 + 8.1) / 2
    assert np.array_equal(full, ((xx - mx) / a) ** 2 + ((yy - my) / b) ** 2 <= 1)
    # a concave freehand shape (an L): its notch is outside
    ell = Measurement("freehand", ((0, 0), (20, 0), (20, 10), (10, 10), (10, 20), (0, 20)))
    full[:] = False
    rows, cols, mask = roi_mask(ell, (40, 40))
    full[rows, cols] = mask
    assert full.sum() == 300 and not full[15, 15] and full[15, 5] and full[5, 15]


def test_roi_mean_hu_equals_numpy_on_the_modality_values(tmp_path, ct_dataset):
    from medapp.documents import open_document

    stack = open_document(_write_ct(tmp_path, ct_dataset))
    values = stack.modality_values(0)  # HU: stored - 1024
    rect = Measurement("rect", ((8, 4), (40, 20)))
    stats = roi_stats(values, rect)
    expected = values[4:20, 8:40]
    assert stats["n"] == expected.size
    assert stats["mean"] == pytest.approx(float(expected.mean()))
    assert stats["sd"] == pytest.approx(float(expected.std()))
    assert (stats["min"], stats["max"]) == (float(expected.min()), float(expected.max()))
    assert stats["min"] < 0  # HU (rescaled), not stored values
    measured = with_stats(rect, values)
    line = describe(measured, calibration_for(stack), value_unit(stack))
    assert f"mean {expected.mean():.1f} HU" in line and "area" in line
    assert with_stats(Measurement("ruler", ((0, 0), (1, 1))), values).stats is None


def test_colour_roi_gives_channel_means():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    stats = roi_stats(rgb, Measurement("rect", ((0, 0), (5, 5))))
    assert stats == {"n": 25.0, "mean_r": 200.0, "mean_g": 100.0, "mean_b": 50.0}
    assert "mean RGB 200/100/50" in describe(Measurement("rect", ((0, 0), (5, 5)), stats=stats), Calibration())


def test_measurement_validation_and_round_trip():
    with pytest.raises(ValueError):
        Measurement("ruler", ((0, 0),))
    with pytest.raises(ValueError):
        Measurement("freehand", ((0, 0), (1, 1)))
    with pytest.raises(ValueError):
        Measurement("circle", ((0, 0), (1, 1)))
    with pytest.raises(ValueError):
        Measurement("ruler", ((0, 0), (float("nan"), 1)))
    m = Measurement("ellipse", ((1, 2), (3, 4)), frame=5, stats={"n": 3.0, "mean": 1.0, "sd": 0, "min": 1, "max": 1})
    assert Measurement.from_dict(m.to_dict()) == m


def test_findings_text_lists_frames_and_says_px_when_uncalibrated():
    items = [Measurement("ruler", ((0, 0), (20, 0)), frame=2), Measurement("text", ((1, 1),), label="cyst?"),
             Measurement("angle", ((10, 0), (0, 0), (0, 10)), frame=1)]
    text = findings_text(items, MM05, "HU", n_frames=10)
    assert text.splitlines() == ["Note: cyst? (image 1).", "Angle: 90.0° (image 2).", "Ruler: 10.0 mm (image 3)."]
    uncal = findings_text(items[:1], Calibration(), n_frames=1)
    assert uncal.splitlines() == ["Ruler: 20.0 px.", "Note: no pixel spacing in the file: sizes are in pixels."]
    assert findings_text([], MM05) == ""


def test_insert_into_findings_appends_or_starts_a_report():
    report = insert_into_findings(None, "Ruler: 10.0 mm.", "CT")
    assert report.text("findings") == "Ruler: 10.0 mm." and "findings" in report.edited
    insert_into_findings(report, "Angle: 90.0°.")
    assert report.text("findings") == "Ruler: 10.0 mm.\nAngle: 90.0°."
    # review: Insert pressed again (or after one more measurement) added every earlier line a second time
    insert_into_findings(report, "Ruler: 10.0 mm.\nAngle: 90.0°.\nRuler: 10.0 mm.")
    assert report.text("findings") == "Ruler: 10.0 mm.\nAngle: 90.0°.\nRuler: 10.0 mm."  # two equal rulers: two lines
    report.sign("Dr Test Reader")
    insert_into_findings(report, "Angle: 90.0°.")
    assert report.is_signed, "nothing new: the signed report is left alone"


def test_store_events_and_frames():
    store = MeasurementStore()
    seen = []
    store.changed.connect(seen.append)
    a = Measurement("ruler", ((0, 0), (1, 0)), frame=0)
    b = Measurement("ruler", ((0, 0), (2, 0)), frame=3)
    store.add("x.dcm", a)
    store.add("x.dcm", b)
    assert store.items("x.dcm", frame=3) == [b] and len(store.items("x.dcm")) == 2
    store.update("x.dcm", Measurement("ruler", ((0, 0), (5, 0)), frame=3, id=b.id))
    assert store.items("x.dcm", frame=3)[0].points[1] == (5.0, 0.0)
    store.remove("x.dcm", a.id)
    store.clear("x.dcm")
    assert store.items("x.dcm") == [] and store.items(None) == []
    assert seen == ["x.dcm"] * 5


def test_session_keeps_measurements_per_image(tmp_path):
    from medapp.session import Session

    session = Session(tmp_path / "s")
    session.open(tmp_path / "a.dcm")
    m = Measurement("rect", ((1, 1), (5, 5)), frame=2, stats={"n": 16.0, "mean": 3.0, "sd": 0.0, "min": 3, "max": 3})
    session.set_measurements(tmp_path / "a.dcm", [m])
    session.close(tmp_path / "a.dcm")
    again = Session(tmp_path / "s")  # a restart reads the file
    assert again.measurements(tmp_path / "a.dcm") == [m]
    assert again.measurements(tmp_path / "b.dcm") == []
    again.state.measurements[str(tmp_path / "a.dcm")].append({"kind": "ruler", "points": [[0, 0]]})  # damaged
    assert again.measurements(tmp_path / "a.dcm") == [m]
    again.set_measurements(tmp_path / "a.dcm", [])
    assert str(tmp_path / "a.dcm") not in Session(tmp_path / "s").state.measurements


def test_a_long_freehand_outline_on_a_big_image():
    """2000 outline points around a 1500² box (the scanline mask): the pixel count is the circle's area."""
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    ring = Measurement("freehand", tuple(zip(1000 + 750 * np.cos(t), 1000 + 750 * np.sin(t), strict=True)))
    rows, cols, mask = roi_mask(ring, (2048, 2048))
    assert mask.shape == (1500, 1500)
    assert mask.sum() == pytest.approx(math.pi * 750**2, rel=1e-3)
    ellipse = roi_mask(Measurement("ellipse", ((250, 250), (1750, 1750))), (2048, 2048))[2]
    assert np.count_nonzero(mask != ellipse) < 0.001 * mask.size  # the polygon hugs the same circle


def test_named_measurements():
    ruler = Measurement("ruler", ((0, 0), (20, 0)), label="lesion 1")
    assert describe(ruler, MM05) == "Ruler (lesion 1): 10.0 mm"
    assert label_lines(ruler, MM05) == ["lesion 1: 10.0 mm"]
    roi = Measurement("rect", ((0, 0), (2, 2)), label="liver", stats={"n": 4, "mean": 50, "sd": 1, "min": 49, "max": 51})
    assert label_lines(roi, MM05, "HU") == ["liver: area 1.0 mm²", "mean 50.0 HU, SD 1.0", "min 49.0, max 51.0 HU"]


def test_kept_measurement_lines_are_those_findings_still_holds() -> None:
    from medapp.measurements import kept_measurement_lines

    text = "Ruler: 10.0 mm.\nRuler: 10.0 mm.\nAngle: 90.0°."
    findings = "Mass in the left lobe.\nRuler: 10.0 mm.\n  Angle: 90.0°.  \n"  # one ruler line deleted by hand
    assert kept_measurement_lines(findings, text) == "Ruler: 10.0 mm.\nAngle: 90.0°."
    assert kept_measurement_lines("", text) == "" and kept_measurement_lines(findings, "") == ""
