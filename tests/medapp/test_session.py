"""Session autosave: every change is on disk at once, a new Session on the same folder restores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medapp.session import Session


def _draft() -> dict:
    from reports.model import Report, Section

    return Report(sections=(Section("findings", "Findings", "clear"),), modality="CT").to_dict()


def test_state_survives_a_crash(tmp_path: Path) -> None:
    s = Session(tmp_path)
    s.open("/data/ct/slice1.dcm")
    s.set_view(frame=3, region=(10, 20, 100, 80), preset="ct-lung")
    s.add_turn("f" * 64, "Is there a nodule?", "No nodule is seen.", "eos")
    draft = _draft()
    s.set_report(draft)
    # "kill" the process: nothing is flushed or closed, a new Session simply reads the folder
    restored = Session(tmp_path)
    assert restored.state.current == "/data/ct/slice1.dcm"
    view = restored.view()
    assert (view.frame, view.region, view.preset, view.window) == (3, [10, 20, 100, 80], "ct-lung", None)
    assert restored.history("f" * 64) == [("Is there a nodule?", "No nodule is seen.")]
    assert restored.state.report_draft == draft
    assert restored.report().text("findings") == "clear"  # the stored draft is one report() accepts


def test_every_change_is_saved_and_listeners_hear_it(tmp_path: Path) -> None:
    s = Session(tmp_path)
    seen: list[str | None] = []
    s.subscribe(lambda sess: seen.append(sess.state.current))
    s.open("a.png")
    s.open("b.png")
    s.close("b.png")
    assert seen == ["a.png", "b.png", "a.png"]
    assert Session(tmp_path).state.open_paths == ["a.png"]
    s.set_view(window=(40, 400))
    assert Session(tmp_path).view().window == [40.0, 400.0]


def test_damaged_file_is_moved_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text('{"open_paths": [')
    s = Session(tmp_path)
    assert s.state.open_paths == [] and s.recovered_from is not None and s.recovered_from.exists()
    s.open("x.png")
    assert Session(tmp_path).state.open_paths == ["x.png"]


def test_report_draft_round_trips_as_a_report(tmp_path: Path) -> None:
    from reports.model import Report, Section

    report = Report(sections=(Section("findings", "Findings", "No acute abnormality."),), modality="CT")
    s = Session(tmp_path)
    s.set_report(report)
    again = Session(tmp_path).report()
    assert isinstance(again, Report) and again.text("findings") == "No acute abnormality." and again.state == "draft"
    s.clear_report()
    assert Session(tmp_path).report() is None


def test_damaged_draft_is_moved_aside_and_the_rest_restored(tmp_path: Path) -> None:
    s = Session(tmp_path)
    s.open("/data/ct/slice1.dcm")
    s.set_view(frame=2)
    s.add_turn("f" * 64, "Is there a nodule?", "No.")
    s.set_report(_draft())
    data = json.loads((tmp_path / "session.json").read_text(encoding="utf-8"))
    data["report_draft"]["sections"] = {"findings": "a dict where a list belongs"}  # e.g. a newer/buggy writer
    (tmp_path / "session.json").write_text(json.dumps(data), encoding="utf-8")

    restored = Session(tmp_path)
    assert restored.recovered_from is None  # the session itself was fine
    assert restored.state.open_paths == ["/data/ct/slice1.dcm"] and restored.view().frame == 2
    assert restored.history("f" * 64) == [("Is there a nodule?", "No.")]
    assert restored.report() is None
    aside = restored.draft_recovered_from
    assert aside is not None and json.loads(aside.read_text(encoding="utf-8")) == data["report_draft"]
    again = Session(tmp_path)  # the cleaned state was saved: no second copy set aside
    assert again.draft_recovered_from is None and again.state.open_paths == ["/data/ct/slice1.dcm"]


def test_set_report_refuses_a_dict_that_is_no_report(tmp_path: Path) -> None:
    from reports import ReportError

    s = Session(tmp_path)
    with pytest.raises(ReportError):
        s.set_report({"state": "draft", "sections": {"Findings": "clear"}})
    assert Session(tmp_path).state.report_draft is None
