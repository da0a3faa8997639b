"""StackState is a Qt face over the core's ViewerState: the model's events become Qt signals, a slide is no stack,
and a deleted adapter stops listening to a state that outlives it."""

from __future__ import annotations

from pathlib import Path

from medapp.documents import make_window, open_document
from medapp.viewer_state import ViewerState
from ui.viewer.stack_state import StackState


def test_model_changes_arrive_as_qt_signals_in_order(qtbot, example_ct: Path) -> None:
    model = ViewerState()
    state = StackState(model)
    got: list[tuple[str, object]] = []
    state.stack_changed.connect(lambda s: got.append(("stack", s)))
    state.frame_changed.connect(lambda f: got.append(("frame", f)))
    state.window_changed.connect(lambda w: got.append(("window", w)))
    state.roi_changed.connect(lambda r: got.append(("roi", r)))
    stack = open_document(example_ct)
    model.open(stack)  # written to the model directly (as the CLI or a test would): the adapter follows
    assert [name for name, _ in got] == ["stack", "frame", "window", "roi"] and got[0][1] is stack
    got.clear()
    model.set_window(make_window(-600, 1500), "ct-lung")
    model.set_region((1, 1, 10, 10))
    assert got == [("window", model.window), ("roi", (1, 1, 10, 10))]
    assert state.window_label == "ct-lung" and state.roi == (1, 1, 10, 10) and state.modality == "CT"


def test_a_slide_is_no_stack_for_the_image_viewer(qtbot, example_ct: Path, tiled_tiff_slide: Path) -> None:
    model = ViewerState()
    state = StackState(model)
    model.open(open_document(example_ct))
    shown: list[object] = []
    state.stack_changed.connect(shown.append)
    regions: list[object] = []
    state.roi_changed.connect(regions.append)
    model.open(open_document(tiled_tiff_slide))
    model.set_region((0, 0, 50, 50))
    assert shown == [None] and state.stack is None and state.roi is None and state.n_frames == 0
    assert regions == [None]  # the reset on open only, not the slide's region
    state.set_stack(None)  # clearing the image viewer leaves the slide alone
    assert model.is_slide


def test_a_deleted_adapter_stops_listening(qtbot, example_ct: Path) -> None:
    from PySide6.QtCore import QCoreApplication, QEvent, QObject

    model = ViewerState()
    parent = QObject()
    state = StackState(model, parent)
    frames: list[int] = []
    state.frame_changed.connect(frames.append)
    n_before = len(model.events.frame)
    parent.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert len(model.events.frame) == n_before - 1
    model.open(open_document(example_ct))  # no deleted QObject is touched
