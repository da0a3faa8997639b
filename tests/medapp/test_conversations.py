"""Chat history per image without Qt: stopped turns are shown but never sent as context; a session keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from medapp.conversations import ChatTurn, ConversationStore
from medapp.session import Session


@pytest.mark.parametrize("with_session", [False, True])
def test_history_context_and_clear(tmp_path: Path, with_session: bool) -> None:
    store = ConversationStore(Session(tmp_path) if with_session else None)
    assert store.persistent is with_session
    store.record("img-a", ChatTurn("Q1", "A1"))
    store.record("img-a", ChatTurn("Q2", "half an ans", stopped=True))
    store.record("img-b", ChatTurn("Other", "image"))
    assert [(t.question, t.stopped) for t in store.history("img-a")] == [("Q1", False), ("Q2", True)]
    assert store.context("img-a") == [("Q1", "A1")]  # the stopped answer is not sent to the model
    store.clear("img-a")
    assert store.history("img-a") == [] and store.context("img-b") == [("Other", "image")]


def test_a_session_store_survives_a_restart(tmp_path: Path) -> None:
    ConversationStore(Session(tmp_path)).record("img", ChatTurn("Q", "A", stopped=True))
    again = ConversationStore(Session(tmp_path)).history("img")
    assert [(t.question, t.answer, t.stopped) for t in again] == [("Q", "A", True)] and again[0].when


def test_turn_dict_round_trip_ignores_unknown_keys() -> None:
    turn = ChatTurn("Q", "A", stopped=True, model="m", when="t")
    assert ChatTurn.from_dict({**turn.to_dict(), "extra": 1}) == turn


# -- conversations belong to the study and image, each turn keeps its view (issue #15 item 4) -----------------------
def _input(path: Path, *, window=None, region=None, frame: int = 0):
    from medapp.documents import make_window
    from medapp.model_input import model_input_for
    from medapp.viewer_state import ViewerState

    state = ViewerState.for_path(path)  # a folder: its first series, as the window shows it
    state.set_frame(frame)
    if window is not None:
        state.set_window(make_window(*window), "custom")
    state.set_region(region)
    return model_input_for(state, description=f"view {window} {region}")


def test_the_key_is_the_study_and_image_not_the_view(ct_small: Path, tmp_path: Path, synthetic_ct_series) -> None:
    from medapp.conversations import conversation_key

    plain = _input(ct_small)
    lung = _input(ct_small, window=(-600.0, 1500.0))
    region = _input(ct_small, region=(10, 10, 40, 30))
    assert plain.key != lung.key != region.key, "three different model inputs (pixels)"
    key = conversation_key(plain)
    assert key == conversation_key(lung) == conversation_key(region)
    header = plain.dataset
    assert key == f"uid:{header.StudyInstanceUID}|sop:{header.SOPInstanceUID}#0"

    files = synthetic_ct_series(tmp_path / "series", n=4, size=32)
    series_keys = {conversation_key(_input(tmp_path / "series", frame=i)) for i in range(4)}
    assert len(series_keys) == 4, "every image of a series has its own conversation"
    study = {k.split("|")[0] for k in series_keys}
    assert len(study) == 1 and study != {key.split("|")[0]}, "one study for the series, not CT_small's"
    assert all("#" not in k for k in series_keys), "an instance of a series is named by its SOP UID alone"
    assert files


def test_a_picture_and_a_slide_are_keyed_by_their_path(tmp_path: Path, svs_slide: Path) -> None:
    from PIL import Image

    from medapp.conversations import conversation_key

    picture = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(picture)
    a, b = _input(picture), _input(picture, region=(0, 0, 20, 20))
    assert conversation_key(a) == conversation_key(b) and conversation_key(a).startswith(f"path:{picture}|")

    from medapp.documents import open_document
    from medapp.model_input import model_input_for
    from medapp.viewer_state import ViewerState

    state = ViewerState()
    state.open(open_document(svs_slide))
    state.visible, state.downsample = (0, 0, 2048, 2048), 4.0
    whole = model_input_for(state)
    state.visible, state.downsample = (512, 512, 256, 256), 1.0  # zoomed in: another magnification and part
    zoomed = model_input_for(state)
    state.set_region((600, 600, 100, 80))
    region = model_input_for(state)
    assert whole.view_id != zoomed.view_id != region.view_id
    assert conversation_key(whole) == conversation_key(zoomed) == conversation_key(region) == f"path:{svs_slide}|slide"


def test_context_is_only_the_turns_about_the_same_pixels(tmp_path: Path) -> None:
    from medapp.conversations import TurnView

    store = ConversationStore(Session(tmp_path))
    lung, bone = TurnView(label="lung", pixels="p-lung"), TurnView(label="bone", pixels="p-bone")
    store.record("study|img", ChatTurn("Q lung", "A lung", view=lung))
    store.record("study|img", ChatTurn("Q bone", "A bone", view=bone))
    store.record("study|img", ChatTurn("Q lung 2", "cut", stopped=True, view=lung))
    assert [t.question for t in store.history("study|img")] == ["Q lung", "Q bone", "Q lung 2"]
    assert store.context("study|img", pixels="p-lung") == [("Q lung", "A lung")]
    assert store.context("study|img", pixels="p-bone") == [("Q bone", "A bone")]
    assert store.context("study|img", pixels="p-other") == []


def test_the_view_and_its_thumbnail_survive_the_session(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from medapp.conversations import TurnView, thumbnail_png

    png = thumbnail_png(Image.new("RGB", (300, 150), (10, 200, 30)))
    assert Image.open(io.BytesIO(png)).size == (64, 32)
    view = TurnView(label="CT, image 1/1, ct-lung W 1500 / L -600, region 40×30 at (10, 10)", kind="dicom", frame=0,
                    window=(-600.0, 1500.0), region=(10, 10, 40, 30), pixels="abc", thumbnail=png)
    ConversationStore(Session(tmp_path)).record("k", ChatTurn("Q", "A", model="tiny", view=view))
    (again,) = ConversationStore(Session(tmp_path)).history("k")
    assert again.view == view and again.model == "tiny"
    assert ChatTurn.from_dict(again.to_dict()) == again
    assert TurnView(frame=2, window=(40.0, 400.0)).summary() == "image 3, W 400 / L 40"


def test_an_older_session_stays_readable(tmp_path: Path) -> None:
    import json

    from medapp.conversations import LEGACY_LABEL, TurnView

    (tmp_path / "session.json").write_text(json.dumps({
        "version": 1, "open_paths": [], "current": None, "views": {},
        "conversations": {"f" * 64: [{"question": "Old Q", "answer": "Old A", "time": "t", "stop_reason": ""}],
                          "k": [{"question": "New Q", "answer": "A", "future_field": 1, "view": {"label": "x",
                                                                                                   "thumbnail": "!!"}}]},
    }), encoding="utf-8")
    session = Session(tmp_path)
    assert session.recovered_from is None
    (old,) = ConversationStore(session).history("f" * 64)
    assert (old.question, old.answer, old.view) == ("Old Q", "Old A", None)
    # Shown again while exactly those pixels are on screen, first, labelled, and as context for those pixels only.
    store = ConversationStore(session)
    store.record("uid:1|sop:2#0", ChatTurn("New about it", "A2", view=TurnView(label="now", pixels="f" * 64)))
    turns = store.history("uid:1|sop:2#0", pixels="f" * 64)
    assert [t.question for t in turns] == ["Old Q", "New about it"] and turns[0].view.label == LEGACY_LABEL
    assert store.context("uid:1|sop:2#0", pixels="f" * 64) == [("Old Q", "Old A"), ("New about it", "A2")]
    assert [t.question for t in store.history("uid:1|sop:2#0", pixels="e" * 64)] == ["New about it"]
    assert store.context("uid:1|sop:2#0", pixels="e" * 64) == []
    (new,) = ConversationStore(session).history("k")
    assert new.view is not None and new.view.label == "x" and new.view.thumbnail == b"", "a bad thumbnail is dropped"
