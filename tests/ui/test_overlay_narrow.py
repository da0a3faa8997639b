"""Corner text and orientation letters in the narrow views of a 2×2 layout (1400×860 window, views ~320 px wide):
nothing overlaps, the letters are all there, every corner keeps its first line. Checked on the layout the views
really painted (`ImageViewer.overlay_layout`) and on the pixels; screenshot of the window."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from medapp.overlay_layout import ELLIPSIS
from medapp.view import open_cached
from ui.browser import BrowserEntry
from ui.viewer.image_viewer import ImageViewer


def _painted(qtbot, viewer: ImageViewer, grab) -> np.ndarray:
    """Paint the view now and return its pixels (the layout attribute is from this very paint)."""
    viewer.overlay_layout = None
    arr = grab(viewer.viewport())
    assert viewer.overlay_layout is not None
    return arr


def _check(viewer: ImageViewer, arr: np.ndarray, corners=("tl", "tr", "bl", "br")) -> None:
    layout = viewer.overlay_layout
    w, h = viewer.viewport().width(), viewer.viewport().height()
    clash = layout.collisions(gap=4.0, gap_y=2.0)  # side by side ≥ 4 px apart, above one another ≥ 2 px
    assert not clash, [(a.text, b.text) for a, b in clash]
    for p in layout.placed():
        assert p.box.x >= 0 and p.box.y >= 0 and p.box.right <= w and p.box.bottom <= h, p
    assert {p.key for p in layout.markers} == {"left", "right", "top", "bottom"}  # never dropped
    for corner in corners:
        assert layout.corner(corner) and layout.corner(corner)[0].text.rstrip(ELLIPSIS), corner
    assert any(p.text.startswith("W ") for p in layout.corner("bl"))  # the window is read in every view
    # the letters are really drawn where the layout says (their warm ink), the top one centred
    ink = (np.abs(arr[..., 0].astype(int) - 255) < 40) & (np.abs(arr[..., 1].astype(int) - 220) < 40)
    top = next(p for p in layout.markers if p.key == "top")
    assert ink[int(top.box.y): int(top.box.bottom), int(top.box.x): int(top.box.right) + 1].any()
    assert abs(top.box.x + top.box.w / 2 - w / 2) < 1


def test_two_by_two_overlay_does_not_overlap(qtbot, make_window, ct_series_dir, tmp_path, synthetic_ct_series,
                                             screenshots, grab):
    window = make_window()  # 1400 × 860
    window.open_paths([ct_series_dir])
    qtbot.waitUntil(lambda: window.image_viewer.stack is not None, timeout=20000)
    qtbot.waitUntil(window.is_settled, timeout=20000)
    window.act_phi.setChecked(True)  # patient data on: the top-right corner is filled too
    qtbot.keyClick(window.image_viewer, Qt.Key.Key_2)  # a named preset: "W … L … (name)" is a long line
    window.layout_actions["2x2"].trigger()
    grid = window.grid
    folder = tmp_path / "prior"
    synthetic_ct_series(folder, zs=[k * 5.0 for k in range(8)], size=64, marker=True,
                        SeriesDescription="Prior axial abdomen portal venous phase", BodyPartExamined="ABDOMEN")
    prior = open_cached(folder).series[0]
    for index in (1, 2, 3):
        window.open_entry_in(BrowserEntry("prior", "series", prior), index)
        qtbot.waitUntil(lambda i=index: grid.cells[i].stack is not None and grid.cells[i].is_current(),
                        timeout=20000)
    grid.cells[2].state.rotate(90)
    grid.cells[3].state.flip_horizontal()
    qtbot.waitUntil(window.is_settled, timeout=20000)
    cells = grid.visible_cells()
    assert len(cells) == 4 and max(c.viewport().width() for c in cells) < 340  # narrow views (the Qt-free layout tests go down to 200 px)
    window.grab().save(str(screenshots / "layout_2x2_overlay.png"))
    for cell in cells:  # patient data are shown in view 1 (the window's study)
        _check(cell, _painted(qtbot, cell, grab), ("tl", "tr", "bl", "br") if cell is cells[0] else ("tl", "bl", "br"))
    # something was cut to fit, in the narrow views only: a wide view shows the same lines whole
    assert any(c.overlay_layout.elided for c in cells)
    window.layout_actions["1x1"].trigger()
    qtbot.waitUntil(window.is_settled, timeout=20000)
    main = window.image_viewer
    _painted(qtbot, main, grab)
    assert main.overlay_layout.elided == 0 and not main.overlay_layout.dropped
    assert not main.overlay_layout.collisions(gap=4.0, gap_y=2.0)
