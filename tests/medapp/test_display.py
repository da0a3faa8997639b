"""Display transform and what follows from it, Qt-free: orientation markers from ImageOrientationPatient (axial,
coronal, sagittal, oblique; moved by rotate / flip), slice positions and linked scrolling, and the transform as
evented ViewerState fields that the session saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medapp.display import (
    direction_letters,
    display_matrix,
    image_orientation,
    linked_frame,
    orientation_markers,
    screen_axes,
    slice_positions,
)
from medapp.documents import open_document
from medapp.model_input import model_input_for
from medapp.session import Session, SessionState, ViewSnapshot
from medapp.viewer_state import ViewerState

YBR_COLOR = "examples_ybr_color.dcm"  # pydicom's 30-frame colour ultrasound-like clip (no geometry)
AXIAL = (1, 0, 0, 0, 1, 0)  # rows go to the patient's left, columns to posterior
CORONAL = (1, 0, 0, 0, 0, -1)  # rows to the left, columns to the feet
SAGITTAL = (0, 1, 0, 0, 0, -1)  # rows to posterior, columns to the feet


@pytest.fixture
def ybr_color() -> Path:
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files" / YBR_COLOR


def _edges(markers: dict[str, str] | None) -> tuple[str, str, str, str]:
    assert markers is not None
    return markers["left"], markers["right"], markers["top"], markers["bottom"]


class TestMarkers:
    def test_standard_planes_read_like_every_viewer(self):
        # radiological convention: the patient's right on the screen's left
        assert _edges(orientation_markers(AXIAL)) == ("R", "L", "A", "P")
        assert _edges(orientation_markers(CORONAL)) == ("R", "L", "H", "F")
        assert _edges(orientation_markers(SAGITTAL)) == ("A", "P", "H", "F")

    def test_rotation_moves_the_letters_with_the_anatomy(self):
        # 90° clockwise: what was at the top (anterior) is now on the right
        assert _edges(orientation_markers(AXIAL, rotation=90)) == ("P", "A", "R", "L")
        assert _edges(orientation_markers(AXIAL, rotation=180)) == ("L", "R", "P", "A")
        assert _edges(orientation_markers(AXIAL, rotation=270)) == ("A", "P", "L", "R")

    def test_flips_swap_one_pair(self):
        assert _edges(orientation_markers(AXIAL, flip_h=True)) == ("L", "R", "A", "P")
        assert _edges(orientation_markers(CORONAL, flip_v=True)) == ("R", "L", "F", "H")

    def test_oblique_names_the_major_axis_first(self):
        c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
        tilted = (c, s, 0, -s, c, 0)  # axial turned 30° in plane
        left, right, top, bottom = _edges(orientation_markers(tilted))
        assert (right, left) == ("LP", "RA")
        assert (bottom, top) == ("PR", "AL")
        # a tilt of a few degrees stays a plain letter (no "LP" for scanner noise)
        c5, s5 = np.cos(np.radians(5)), np.sin(np.radians(5))
        assert _edges(orientation_markers((c5, s5, 0, -s5, c5, 0))) == ("R", "L", "A", "P")

    def test_double_oblique_can_have_three_letters(self):
        assert direction_letters((0.6, -0.5, 0.62)) == "HLA"

    @pytest.mark.parametrize("iop", [None, (), (1, 0, 0), (0, 0, 0, 0, 1, 0), ("x", 0, 0, 0, 1, 0), (np.nan,) * 6])
    def test_unknown_orientation_gives_no_markers(self, iop):
        assert orientation_markers(iop) is None

    def test_screen_axes_follow_the_normal_form(self):
        # flip then rotate: horizontal flip of a 90°-rotated image = vertical flip composed differently,
        # the matrix must stay a signed permutation (pixels map to pixels)
        for rotation in (0, 90, 180, 270):
            for fh in (False, True):
                for fv in (False, True):
                    m = display_matrix(rotation, fh, fv)
                    assert sorted(np.abs(m).ravel().tolist()) == [0, 0, 1, 1]
        right, down = screen_axes(90)
        assert right.tolist() == [0, -1] and down.tolist() == [1, 0]  # screen right shows image "up"


class TestViewerStateTransform:
    @pytest.fixture
    def state(self, ct_small: Path) -> ViewerState:
        state = ViewerState()
        state.open(open_document(ct_small))
        return state

    def test_fields_are_evented(self, state: ViewerState):
        seen: list[tuple[str, object]] = []
        for name in ("invert", "rotation", "flip_h", "flip_v"):
            getattr(state.events, name).connect(lambda value, *_, n=name: seen.append((n, value)))
        state.set_invert(True)
        state.rotate(90)
        state.rotate(-180)
        state.flip_vertical()
        assert seen == [("invert", True), ("rotation", 90), ("rotation", 270), ("rotation", 90), ("flip_v", True)]

    def test_flip_of_a_rotated_view_mirrors_the_screen(self, state: ViewerState):
        """Rotate 90° then mirror left-right: the screen's left and right swap, top and bottom stay."""
        state.rotate(90)
        iop = image_orientation(state.document)
        before = orientation_markers(iop, state.rotation, state.flip_h, state.flip_v)
        state.flip_horizontal()
        after = orientation_markers(iop, state.rotation, state.flip_h, state.flip_v)
        assert before is not None and after is not None
        assert (after["left"], after["right"]) == (before["right"], before["left"])
        assert (after["top"], after["bottom"]) == (before["top"], before["bottom"])

    def test_reset_and_open_clear_the_transform(self, state: ViewerState, ct_small: Path):
        state.set_window(state.setup.choices[-1].window, "x")
        state.set_invert(True)
        state.rotate(270)
        state.flip_horizontal()
        assert state.transformed
        state.reset_display()
        assert not state.transformed and state.window == state.setup.window
        state.rotate(90)
        state.open(open_document(ct_small))
        assert state.rotation == 0

    def test_colour_images_and_nothing_open_ignore_invert(self, ybr_color: Path):
        state = ViewerState()
        state.set_invert(True)
        state.rotate(90)
        assert not state.transformed
        state.open(open_document(ybr_color))
        state.set_invert(True)
        assert state.invert is False

    def test_model_input_ignores_the_display_transform(self, state: ViewerState):
        plain = model_input_for(state).image
        state.set_invert(True)
        state.rotate(90)
        state.flip_horizontal()
        shown = model_input_for(state).image
        assert shown.size == plain.size and np.array_equal(np.asarray(shown), np.asarray(plain))

    def test_session_keeps_the_transform(self, state: ViewerState, tmp_path: Path):
        state.set_invert(True)
        state.rotate(90)
        state.flip_vertical()
        session = Session(tmp_path)
        session.open(state.path)
        session.save_view_state(state.path, state)
        reloaded = Session(tmp_path).view(state.path)
        assert (reloaded.invert, reloaded.rotation, reloaded.flip_h, reloaded.flip_v) == (True, 270, False, True)
        fresh = ViewerState()
        fresh.open(state.document)
        fresh.restore(reloaded)
        assert (fresh.invert, fresh.rotation, fresh.flip_h, fresh.flip_v) == (True, 270, False, True)

    def test_a_snapshot_from_a_newer_version_still_loads(self):
        loaded = SessionState.from_dict({"views": {"/a.dcm": {"frame": 2, "rotation": 90, "zoom_mode": "fit"}}})
        assert loaded.views["/a.dcm"] == ViewSnapshot(frame=2, rotation=90)


class TestLinkedScrolling:
    def test_nearest_position_then_index(self):
        prior = [0.0, 5.0, 10.0, 15.0]
        current = [0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0]
        assert linked_frame(4, current, prior, 4) == 2  # 10 mm
        assert linked_frame(1, prior, current, 7) == 2  # 5 mm
        assert linked_frame(6, current, None, 4) == 3  # no geometry: same index, clamped
        assert linked_frame(2, None, None, 10) == 2
        assert linked_frame(0, current, prior, 0) == 0

    def test_series_positions_from_headers(self, tmp_path: Path, synthetic_ct_series):
        from medapp.view import open_cached

        folder = tmp_path / "series"
        synthetic_ct_series(folder, zs=[0.0, 2.5, 5.0, 7.5], size=16)
        collection = open_cached(folder)
        stack = collection.series[0].open()
        positions = slice_positions(stack)
        assert positions is not None and np.allclose(sorted(positions), [0.0, 2.5, 5.0, 7.5])
        assert image_orientation(stack, 0) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    def test_single_file_without_geometry(self, ybr_color: Path):
        stack = open_document(ybr_color)
        assert slice_positions(stack) is None  # one header for all frames: linked by index
        assert image_orientation(stack) is None
