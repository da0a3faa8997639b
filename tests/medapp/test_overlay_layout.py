"""The corner-text layout: no two boxes of the overlay (corner lines, orientation letters) intersect at any view
size, the letters are always there, and the important lines survive as long as there is any room for them."""

from __future__ import annotations

import itertools

import pytest

from medapp.overlay_layout import ELLIPSIS, Box, elide_right, layout_overlay

# A proportional-ish font: wide capitals and digits, narrow punctuation (close to DejaVu Sans at 10 pt).
_NARROW = set(" .,:;'()[]/|il1ftrj")


def text_width(text: str) -> float:
    return sum(3.5 if c in _NARROW else 8.5 if c.isupper() or c in "×µ…%" else 6.8 for c in text)


def marker_width(text: str) -> float:
    return 11.5 * len(text)


LINE_H, INK_TOP, MARKER_H = 15.0, 2.0, 15.0  # DejaVu Sans: 10 pt line, its empty top, 13 pt bold capital + halo

#: what a CT series shows in a 2×2 cell, patient data on (the densest overlay there is)
DENSE = {
    "tl": ["CT Synthetic axial abdomen portal venous", "ABDOMEN", "Series 3"],
    "tr": ["Synthetic^Phantom", "ID SYN-0001", "DOB 19700101", "Study 20240101", "Acc ACC1"],
    "bl": ["Im 8/15", "W 400 L 40 (ct-abdomen, from the file)", "Zoom 187%"],
    "br": ["64×64", "0.70×0.70 mm/px", "Thk 2.5 mm", "ROI 20×20 at 10,12"],
}
AXIAL = {"left": "R", "right": "L", "top": "A", "bottom": "P"}
OBLIQUE = {"left": "RA", "right": "LP", "top": "AL", "bottom": "PR"}


def _layout(w, h, corners=DENSE, markers=AXIAL, **kw):
    return layout_overlay(w, h, corners, markers, measure=text_width, line_height=LINE_H, ink_top=INK_TOP,
                          marker_measure=marker_width, marker_height=MARKER_H, **kw)


def _inside(box: Box, w: float, h: float) -> bool:
    return box.x >= 0 and box.y >= 0 and box.right <= w and box.bottom <= h


@pytest.mark.parametrize("markers", [AXIAL, OBLIQUE, None], ids=["axial", "oblique", "no-letters"])
def test_nothing_overlaps_at_any_cell_width(markers):
    for width in range(200, 1201, 20):
        for height in (140, 200, 260, 380, 600, 900):
            layout = _layout(width, height, markers=markers)
            assert not layout.collisions(gap=6.0, gap_y=2.0), (width, height, layout.collisions(gap=6.0, gap_y=2.0)[:2])
            assert all(_inside(p.box, width, height) for p in layout.placed()), (width, height)
            # the letters are never dropped, shortened or moved off their edge
            assert {p.key: p.text for p in layout.markers} == (markers or {})
            for p in layout.markers:
                if p.key in ("top", "bottom"):
                    assert p.box.x + p.box.w / 2 == pytest.approx(width / 2)
                else:
                    assert p.box.y + p.box.h / 2 == pytest.approx(height / 2)


def test_every_combination_of_corners_fits():
    """Any subset of corners, few or many lines: still no overlap (a lone corner gets the full width)."""
    for keys in itertools.chain.from_iterable(itertools.combinations(DENSE, n) for n in range(1, 5)):
        corners = {k: DENSE[k] for k in keys}
        for width in (200, 240, 330, 700):
            for height in (160, 240, 400):
                layout = _layout(width, height, corners)
                assert not layout.collisions(gap=6.0, gap_y=2.0), (keys, width, height)


def test_the_first_line_of_every_corner_survives_in_a_2x2_cell():
    """A 2×2 cell of a 1400×860 window (~240 × 370 px): each corner keeps its first lines, cut with "…" where
    needed, and the window line is still there (width and level are read in every cell)."""
    layout = _layout(240, 370)
    for corner in ("tl", "tr", "bl", "br"):
        lines = [p.text for p in layout.corner(corner)]
        assert lines and lines[0].rstrip(ELLIPSIS) and DENSE[corner][0].startswith(lines[0].rstrip(ELLIPSIS))
    assert any(p.text.startswith("W 400 L 40") for p in layout.corner("bl"))
    assert layout.elided > 0 and not layout.dropped  # 370 px is tall enough for every line
    wide = _layout(1200, 860)
    assert wide.elided == 0 and not wide.dropped  # a big view shows everything whole
    assert [p.text for p in wide.corner("bl")] == DENSE["bl"]


def test_short_views_drop_the_last_lines_first():
    layout = _layout(400, 120)  # the left letter sits at 52…68 px: room for 2 lines above it and 2 below
    def shown(corner: str) -> list[str]:
        return [p.text.rstrip(ELLIPSIS) for p in layout.corner(corner)]

    assert len(shown("tl")) == 2 and all(full.startswith(s) for s, full in zip(shown("tl"), DENSE["tl"], strict=False))
    assert shown("bl")[0] == "Im 8/15" and shown("bl")[1].startswith("W 400 L 40")  # zoom goes, window stays
    assert len(shown("bl")) == 2
    assert "Zoom 187%" in layout.dropped and "Series 3" in layout.dropped
    # without a letter the two blocks share the side; a tie costs the bottom corner first
    no_letters = _layout(400, 100, markers=None)
    assert (len(no_letters.corner("tl")), len(no_letters.corner("bl"))) == (3, 2)


def test_lines_level_with_the_top_letter_stop_short_of_it():
    layout = _layout(240, 370)
    top = next(p for p in layout.markers if p.key == "top")
    first_tl, first_tr = layout.corner("tl")[0], layout.corner("tr")[0]
    assert first_tl.box.right <= top.box.x - 8 and first_tr.box.x >= top.box.right + 8
    # lines below the letter's row may use the whole half
    third = layout.corner("tl")[2]
    assert third.box.y >= top.box.bottom


def test_a_narrow_corner_lends_its_room_to_the_other():
    corners = {"bl": ["W 400 L 40 (ct-abdomen, from the file)"], "br": ["64×64"]}
    layout = _layout(300, 300, corners, markers=None)
    line = layout.corner("bl")[0]
    assert line.text == corners["bl"][0] or line.box.w > 300 / 2  # more than half: br needs only 5 characters
    assert not layout.collisions(gap=8.0)


def test_a_lone_corner_is_not_cut_by_a_small_rectangle():
    """The slide's scale-bar label is drawn in a strip 24 px high: it must still be drawn."""
    layout = layout_overlay(160, 24, {"bl": ["500 µm"]}, measure=text_width, line_height=LINE_H,
                            origin=(10.0, 400.0))
    (line,) = layout.lines
    assert line.text == "500 µm" and line.box.x == 16.0 and line.box.bottom == pytest.approx(400 + 24 - 6)


def test_elide_right():
    assert elide_right("Zoom 100%", 500, text_width) == "Zoom 100%"
    cut = elide_right("W 400 L 40 (ct-abdomen)", 80, text_width)
    assert cut.endswith(ELLIPSIS) and "W 400 L 40 (ct-abdomen)".startswith(cut[:-1]) and text_width(cut) <= 80
    assert text_width(elide_right("W 400 L 40 (ct-abdomen)", 80 + 8.5, text_width)) > text_width(cut) - 1e-9
    # a number is never cut: a level of "-6" would be read as one
    for room in range(60, 100):
        cut = elide_right("W 1500 L -600 (lung)", room, text_width)
        assert cut.rstrip(ELLIPSIS).split(" ")[-1] in ("W", "1500", "L", "-600", "(lu", "(l", "(", "(lung"), (room, cut)
    assert elide_right("W 1500 L -600", text_width("W 1500 L -6…"), text_width) == "W 1500 L…"
    assert elide_right("0.70×0.70 mm/px", text_width("0.70×0.70 m…"), text_width) == "0.70×0.70 m…"
    assert elide_right("0.70×0.70 mm/px", text_width("0.70×0.7…"), text_width) == ""  # rather nothing than 0.7
    assert elide_right("ABDOMEN", 5, text_width) == ""  # not even one letter: left out, not a lone "…"
    assert elide_right("ABDOMEN", -3, text_width) == ""
