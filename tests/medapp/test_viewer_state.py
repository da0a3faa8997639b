"""The one Qt-free view state: events, clamping, and the shapes derived from it (ViewState, session snapshot,
model input). Plain pytest: no Qt, no screen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medapp.documents import make_window, open_document
from medapp.model_input import model_input_for
from medapp.session import Session
from medapp.view import render_view
from medapp.viewer_state import ViewerState


@pytest.fixture
def ct_state(ct_small: Path) -> ViewerState:
    state = ViewerState()
    state.open(open_document(ct_small))
    return state


class TestOpen:
    def test_document_event_fires_once_after_everything_is_reset(self, ct_small: Path):
        state = ViewerState()
        seen: list[tuple[int, object, object]] = []
        state.events.document.connect(lambda new, old: seen.append((state.frame, state.region, state.window)))
        frame_events: list[int] = []
        state.events.frame.connect(lambda new, old: frame_events.append(new))
        stack = open_document(ct_small)
        state.open(stack)
        state.set_region((10, 10, 20, 20))
        state.open(stack)  # the same file again is still a fresh start, announced again
        assert len(seen) == 2
        assert seen[1][0] == 0 and seen[1][1] is None and seen[1][2] == state.default_window
        assert frame_events == []  # the reset is silent: the document event says it all
        assert state.kind == "dicom" and state.modality == "CT" and state.n_frames == 1

    def test_closing_clears_everything(self, ct_state: ViewerState):
        ct_state.open(None)
        assert ct_state.document is None and ct_state.window is None and ct_state.to_view() is None
        with pytest.raises(ValueError, match="nothing is open"):
            render_view(ct_state)
        assert model_input_for(ct_state) is None


class TestInput:
    def test_frame_is_clamped_and_only_changes_are_announced(self, ct_state: ViewerState):
        events: list[tuple[int, int]] = []
        ct_state.events.frame.connect(lambda new, old: events.append((new, old)))
        ct_state.set_frame(7)  # one frame only
        ct_state.set_frame(-3)
        assert ct_state.frame == 0 and events == []

    def test_window_label_is_current_when_the_window_event_fires(self, ct_state: ViewerState):
        labels: list[str] = []
        ct_state.events.window.connect(lambda new, old: labels.append(ct_state.window_label))
        ct_state.set_window(make_window(-600, 1500), "ct-lung")
        assert labels == ["ct-lung"] and ct_state.window_values() == (-600.0, 1500.0)
        ct_state.reset_window()
        assert ct_state.window == ct_state.default_window and ct_state.window_label == ct_state.setup.label

    def test_presets_by_number_and_name(self, ct_state: ViewerState):
        labels = [c.label for c in ct_state.choices]
        assert "ct-lung" in labels  # CT gets the built-in presets
        assert ct_state.apply_preset_named("ct-lung") and ct_state.window_label == "ct-lung"
        assert not ct_state.apply_preset(len(labels) + 1) and not ct_state.apply_preset_named("nope")

    def test_region_is_clipped_and_normalised(self, ct_state: ViewerState):
        ct_state.set_region((120, 100, 50, 50))  # 128 x 128 image
        assert ct_state.region == (120, 100, 8, 28)
        ct_state.set_region((30, 30, -20, -10))  # dragged up-left
        assert ct_state.region == (10, 20, 20, 10)
        ct_state.set_region((127, 127, 5, 5))  # 1 x 1 after clipping: no region
        assert ct_state.region is None

    def test_nothing_open_ignores_input(self):
        state = ViewerState()
        state.set_frame(3)
        state.set_window(make_window(0, 100))
        state.set_region((0, 0, 10, 10))
        assert (state.frame, state.window, state.region) == (0, None, None)


class TestDerived:
    def test_model_input_is_what_render_view_reproduces(self, ct_state: ViewerState):
        ct_state.set_window(make_window(40, 400), "custom")
        ct_state.set_region((16, 32, 64, 48))
        given = model_input_for(ct_state)
        assert given.region == (16, 32, 64, 48) and given.view_state == ct_state.to_view()
        assert given.image.size == (64, 48)
        assert np.array_equal(np.asarray(given.image), np.asarray(render_view(ct_state.to_view())))
        assert np.array_equal(np.asarray(given.image), np.asarray(render_view(ct_state)))  # the live state too
        whole = model_input_for(ct_state, use_region=False)
        assert whole.region is None and whole.image.size == (128, 128)
        ct_state.set_frame(0)
        ct_state.set_window(make_window(-600, 1500), "ct-lung")
        assert given.window.center == 40  # captured: later changes do not alter an input already taken

    def test_session_round_trip(self, ct_state: ViewerState, ct_small: Path, tmp_path: Path):
        session = Session(tmp_path)
        session.open(ct_small)
        ct_state.set_window(make_window(-600, 1500), "ct-lung")
        ct_state.set_region((1, 2, 30, 40))
        session.save_view_state(ct_small, ct_state)

        again = ViewerState()
        again.open(open_document(ct_small))
        again.restore(Session(tmp_path).view(ct_small))  # a new Session reads the file: what a restart sees
        # review: a preset kept across a restart is shown by its name (the overlay said "(saved)")
        assert again.window_values() == (-600.0, 1500.0) and again.window_label == "ct-lung"
        assert again.region == (1, 2, 30, 40) and again.to_view() == ct_state.to_view()
        ct_state.set_window(make_window(-123, 456), "custom")  # a dragged window has no name: "saved"
        session.save_view_state(ct_small, ct_state)
        third = ViewerState()
        third.open(open_document(ct_small))
        third.restore(Session(tmp_path).view(ct_small))
        assert third.window_values() == (-123.0, 456.0) and third.window_label == "saved"

    def test_slide_view_follows_the_screen(self, tiled_tiff_slide: Path):
        state = ViewerState()
        state.open(open_document(tiled_tiff_slide))
        assert state.is_slide and state.stack is None and state.window is None and model_input_for(state) is None
        width, height = state.document.level_dimensions[0]
        state.visible = (0, 0, width, height)
        state.downsample = 4.0
        view = state.to_view()
        assert view.region == (0, 0, width, height) and view.level == model_input_for(state).view_state.level
        assert view.level >= 1  # a quarter-resolution screen does not read level 0
        state.set_region((10, 10, 10**6, 10**6))
        assert state.region == (10, 10, width - 10, height - 10)  # clipped to level 0
        snap = state.snapshot()
        assert snap.window is None and snap.region == [10, 10, width - 10, height - 10]


def test_for_path_files_and_folders(ct_small: Path, tmp_path: Path) -> None:
    import shutil

    state = ViewerState.for_path(ct_small)
    assert state.kind == "dicom" and state.to_view().path == ct_small
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(ct_small, folder / "a.dcm")
    assert ViewerState.for_path(folder).kind in ("dicom", "series")  # the first series, as the window shows it


def test_importing_the_state_pulls_in_no_qt_and_no_torch() -> None:
    code = (
        "import sys, medapp.viewer_state, medapp.model_input, medapp.documents, medapp.reporting; "
        "print(' '.join(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
