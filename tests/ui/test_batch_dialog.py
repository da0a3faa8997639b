"""Batch caption dialog on the real core and the tiny golden model: a small folder finishes with its outputs and
per-file errors; Cancel stops mid-way and Start resumes; a failing job leaves the dialog alive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medapp.settings import Settings
from reports.captions import read_caption_rows
from ui.context import AppContext
from ui.dialogs.batch import BatchCaptionDialog, format_eta
from ui.model_bridge import ModelBridge

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture
def folder(tmp_path, golden_dir, pydicom_test_files) -> Path:
    """Five golden PNGs, two of pydicom's DICOMs and one file that is not an image at all."""
    root = tmp_path / "cases"
    (root / "dicom").mkdir(parents=True)
    for png in sorted((golden_dir / "cases-v2").glob("*.png")):
        shutil.copy(png, root / png.name)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(pydicom_test_files / name, root / "dicom" / name)
    (root / "broken.dcm").write_bytes(b"this is not a DICOM file")
    return root


@pytest.fixture
def ctx(qtbot, tiny_engine):
    c = AppContext(settings=Settings(max_new_tokens=6, batch_size=2))
    c.model.set_engine(tiny_engine)
    yield c
    assert c.workers.shutdown(60000), "workers still running after the test"


@pytest.fixture
def dialog(qtbot, ctx, folder):
    d = BatchCaptionDialog(ctx, ModelBridge(ctx), folder=folder)
    qtbot.addWidget(d)
    d.show()
    return d


def _wait(qtbot, job):
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=300000):
        pass


def test_small_folder_finishes_with_outputs_and_errors(qtbot, dialog, folder):
    out = dialog.outputs()
    assert out["csv"] == folder.parent / "cases-captions.csv", "the table goes next to the folder, not into it"
    counts: list[tuple[int, int]] = []
    job = dialog.start()
    job.progress.connect(lambda p: hasattr(p, "done") and counts.append((p.done, p.total)))
    etas: list[str] = []
    job.progress.connect(lambda _p: etas.append(dialog.eta_label.text()))
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert not dialog.browse_folder_button.isEnabled() and not dialog.browse_csv_button.isEnabled()  # review
    _wait(qtbot, job)
    summary = dialog.summary
    assert summary is not None and not summary.cancelled
    assert (summary.total, summary.done, summary.failed) == (8, 7, 1)
    assert counts and counts[-1] == (8, 8) and [d for d, _ in counts] == sorted(d for d, _ in counts)
    assert dialog.progress.value() == dialog.progress.maximum() == 8
    assert any(text.startswith("ETA ") for text in etas), "the ETA is shown once the first batch is done"
    assert len(dialog.errors) == 1 and dialog.errors[0][0].endswith("broken.dcm")
    assert dialog.error_list.isVisible() and "broken.dcm" in dialog.error_list.item(0).text()
    assert "Finished: 7 captioned, 1 failed" in dialog.status.text()
    rows = read_caption_rows(out["csv"])
    assert len(rows) == 8 and sum(1 for r in rows if r.error) == 1
    assert all(r.caption for r in rows if not r.error)
    assert {r.model for r in rows if not r.error} == {"dragonfly-v2-tiny"}
    jsonl = [json.loads(line) for line in out["jsonl"].read_text(encoding="utf-8").splitlines()]
    assert len(jsonl) == 8
    assert out["contact_sheet"].read_bytes().startswith(b"%PDF")
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert dialog.browse_folder_button.isEnabled() and dialog.browse_csv_button.isEnabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SCREENSHOTS / "batch_dialog_finished.png"))


def test_cancel_mid_way_then_resume(qtbot, dialog, ctx):
    ctx.settings = Settings(max_new_tokens=6, batch_size=1)
    job = dialog.start()
    job.progress.connect(lambda p: hasattr(p, "done") and p.done >= 2 and dialog.cancel())
    _wait(qtbot, job)
    first = dialog.summary
    assert first.cancelled and 2 <= first.done + first.failed < first.total
    assert "Cancelled" in dialog.status.text() and dialog.start_button.isEnabled()
    written = read_caption_rows(dialog.outputs()["csv"])
    assert len(written) == first.done + first.failed
    assert not dialog.outputs()["contact_sheet"].exists(), "no contact sheet for an unfinished batch"

    _wait(qtbot, dialog.start())  # Resume is ticked: carries on where it stopped
    second = dialog.summary
    assert not second.cancelled
    assert second.skipped == first.done + first.failed, "rows already written are not redone"
    assert second.skipped + second.done + second.failed == second.total
    rows = read_caption_rows(dialog.outputs()["csv"])
    assert len({r.key for r in rows if not r.error}) == 7, "every good file captioned exactly once overall"


def test_failure_in_worker_shows_dialog_and_stays_usable(qtbot, dialog):
    csv = dialog.outputs()["csv"]
    csv.write_text("file,region,caption\n", encoding="utf-8")
    dialog.resume_check.setChecked(False)  # the core refuses to overwrite a table without Resume
    _wait(qtbot, dialog.start())
    qtbot.waitUntil(lambda: dialog.last_error_box is not None)
    assert "already exists" in dialog.last_error_box.text()
    assert dialog.isVisible() and dialog.start_button.isEnabled() and dialog.summary is None


def test_bad_inputs_are_explained_before_starting(qtbot, dialog, tmp_path):
    dialog.folder.setText(str(tmp_path / "missing"))
    assert dialog.start() is None and "no such folder" in dialog.status.text()
    dialog.folder.setText(str(tmp_path))
    dialog.csv_path.setText(str(tmp_path / "captions.txt"))
    assert dialog.start() is None and "must be a .csv file" in dialog.status.text()


def test_format_eta():
    assert format_eta(None) == ""
    assert format_eta(42.4) == "ETA 42 s"
    assert format_eta(65) == "ETA 1 min 05 s"
    assert format_eta(2 * 3600 + 3 * 60) == "ETA 2 h 03 min"


# -- issue #15 item 6: counts on resume, stage texts, ETA after cancel, the outputs button --------------------------
def _texts_during(job, dialog) -> list[tuple[str, str, int, int]]:
    """(status, ETA, bar value, bar maximum) after the dialog handled each progress event."""
    seen: list[tuple[str, str, int, int]] = []
    job.progress.connect(lambda _e: seen.append((dialog.status.text(), dialog.eta_label.text(),
                                                 dialog.progress.value(), dialog.progress.maximum())))
    return seen


def test_resume_counts_the_earlier_run_and_cancel_clears_the_eta(qtbot, dialog, ctx, monkeypatch):
    ctx.settings = Settings(max_new_tokens=6, batch_size=1)
    job = dialog.start()
    etas: list[str] = []
    job.progress.connect(lambda p: hasattr(p, "done") and (etas.append(dialog.eta_label.text()),
                                                           p.done >= 3 and dialog.cancel()))
    assert not dialog.open_button.isEnabled(), "nothing written yet"
    _wait(qtbot, job)
    first = dialog.summary
    assert first.cancelled and any(e.startswith("ETA ") for e in etas), "an ETA was shown while it ran"
    assert dialog.eta_label.text() == "", "no ETA for a run that was cancelled"
    already = first.done + first.failed
    assert dialog.progress.value() == already and dialog.progress.maximum() == 8

    opened: list[str] = []
    from PySide6.QtGui import QDesktopServices

    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    assert dialog.open_button.isEnabled(), "the table of the cancelled run can be looked at"
    dialog.open_button.click()
    assert opened == [str(dialog.outputs()["csv"].parent)]

    job = dialog.start()  # Resume is ticked
    seen = _texts_during(job, dialog)
    _wait(qtbot, job)
    statuses = [s for s, *_ in seen]
    assert f"8 to caption, {already} already done" in statuses, "the plan is told before the model is asked"
    assert not any("Loading the model" in s for s in statuses), "the model was loaded: no 'loading' stage"
    counted = [(value, maximum) for status, _eta, value, maximum in seen if status.startswith("Captioned ")]
    assert counted and counted[0][0] == already + 1 and all(m == 8 for _, m in counted), (
        "the bar counts the earlier run: 'N of 8', not 'n of the rest'")
    assert f"Captioned {already + 1} of 8" in statuses
    assert dialog.progress.format() == "%v of %m" and dialog.progress.text() == "8 of 8"
    assert dialog.eta_label.text() == "" and dialog.open_button.isEnabled()
    assert dialog.summary.skipped == already and not dialog.summary.cancelled
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SCREENSHOTS / "batch_dialog_resumed.png"))


def test_loading_stage_only_when_the_model_is_not_loaded(qtbot, folder, tiny_engine):
    """Without a loaded model the job loads it and says so (dialog and status bar); with one it never says so."""
    from ui.context import ModelState

    context = AppContext(settings=Settings(max_new_tokens=4, batch_size=4))
    states: list[ModelState] = []
    context.model.status_changed.connect(lambda status: states.append(status.state))
    dialog = BatchCaptionDialog(context, ModelBridge(context, load_engine=lambda: tiny_engine), folder=folder)
    qtbot.addWidget(dialog)
    job = dialog.start()
    seen = _texts_during(job, dialog)
    _wait(qtbot, job)
    statuses = [s for s, *_ in seen]
    loading = [i for i, s in enumerate(statuses) if s.startswith("Loading the model")]
    captioning = [i for i, s in enumerate(statuses) if s.startswith("Captioning")]
    assert loading and captioning and loading[0] < captioning[0]
    assert statuses[0] == "Listing the folder…"
    assert states[:2] == [ModelState.LOADING, ModelState.READY], "the status bar said 'loading', then 'ready'"
    assert dialog.summary is not None and not dialog.summary.cancelled
    assert context.workers.shutdown(60000)
