"""Opening, the recent list and the session sync without a window (`medapp.workspace.Workspace`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medapp.documents import make_window
from medapp.session import Session
from medapp.settings import Settings
from medapp.viewer_state import ViewerState
from medapp.workspace import MAX_RECENT, Workspace


def test_open_tells_stacks_slides_and_folders_apart(ct_small: Path, tiled_tiff_slide: Path, tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(ct_small, folder / "ct.dcm")
    workspace = Workspace(settings=Settings(window_presets={"mine": {"center": 33, "width": 333}}))
    stack = workspace.open(ct_small)
    assert stack.kind == "stack" and stack.setup is not None and stack.setup.window is not None
    assert [c.label for c in stack.setup.choices][-1] == "mine"  # the user's presets join the number keys
    assert workspace.open(tiled_tiff_slide).kind == "slide"
    collection = workspace.open(folder)
    assert collection.kind == "collection" and collection.setup is None
    series = collection.document.series[0]
    assert workspace.open_series(series).kind == "stack"


@pytest.mark.parametrize("with_session", [False, True])
def test_recent_list_most_recent_first_without_duplicates(tmp_path: Path, with_session: bool) -> None:
    workspace = Workspace(Session(tmp_path / "s") if with_session else None)
    assert workspace.recent_paths() == [] and workspace.last_folder() == Path.home()
    for i in range(MAX_RECENT + 2):
        workspace.remember(tmp_path / f"f{i}.dcm")
    workspace.remember(tmp_path / "f3.dcm")  # opened again: back to the top, once
    recent = workspace.recent_paths()
    assert recent[0] == tmp_path / "f3.dcm" and len(recent) == MAX_RECENT == len(set(recent))
    assert workspace.last_folder() == tmp_path
    if with_session:  # a restart sees the same list
        assert Workspace(Session(tmp_path / "s")).recent_paths() == recent


def test_views_are_saved_and_given_back(ct_small: Path, tmp_path: Path) -> None:
    workspace = Workspace(Session(tmp_path))
    state = ViewerState()
    opening = workspace.open(ct_small)
    state.open(opening.document, opening.setup)
    workspace.save_view(ct_small, state)  # not open in the session yet: skipped, no error
    workspace.remember(ct_small)
    workspace.mark_current(ct_small)
    state.set_frame(0)
    state.set_window(make_window(-600, 1500), "ct-lung")
    state.set_region((4, 4, 40, 40))
    workspace.save_view(ct_small, state)

    again = ViewerState()
    restarted = Workspace(Session(tmp_path))
    again.open(opening.document, opening.setup)
    restarted.restore_view(again)
    assert again.window_values() == (-600.0, 1500.0) and again.region == (4, 4, 40, 40)
    assert restarted.session.state.current == str(ct_small)
