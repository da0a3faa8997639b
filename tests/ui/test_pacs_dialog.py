"""The PACS browser, node settings and "Store to PACS" against a real Orthanc on 127.0.0.1 (network guarded)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from tests.medapp.pacs_support import (  # noqa: F401 — fixtures
    HOST,
    NetworkGuard,
    copies_of,
    ct_mr_examples,
    free_port,
    orthanc,
    study_datasets,
    write_pacs_settings,
)

WAIT_MS = 30000


@pytest.fixture
def pacs_ctx(orthanc, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An AppContext whose settings name the test Orthanc; connections elsewhere are blocked."""
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    write_pacs_settings(orthanc)
    NetworkGuard({(HOST, orthanc.dicom_port), (HOST, orthanc.http_port)}).install(monkeypatch)
    from medapp.audit import AuditLog
    from medapp.settings import Settings
    from ui.context import AppContext

    settings = Settings.load()
    ctx = AppContext(settings=settings, audit=AuditLog.from_settings(settings))
    yield ctx
    assert ctx.workers.shutdown(5000)


@pytest.fixture
def browser(pacs_ctx, qtbot, tmp_path: Path):
    from ui.dialogs.pacs import PacsBrowser

    dialog = PacsBrowser(pacs_ctx)
    qtbot.addWidget(dialog)
    dialog.cache_dir.setText(str(tmp_path / "cache"))
    dialog.show()
    qtbot.waitExposed(dialog)
    yield dialog
    assert dialog.workers.shutdown(5000)


def test_search_screenshot_retrieve_and_open(browser, orthanc, qtbot, screenshots: Path) -> None:
    with qtbot.waitSignal(browser.searched, timeout=WAIT_MS) as found:
        browser.search()
    assert found.args == [2] and browser.table.rowCount() == 2
    ids = [browser.table.item(r, 2).text() for r in range(2)]
    assert ids == ["4MR1", "1CT1"]  # newest first
    assert browser.table.item(1, 1).text() == "CT" and browser.table.item(1, 0).text() == "2004-01-19"
    assert browser.retrieve_button.isEnabled() and not browser.cancel_button.isEnabled()
    path = screenshots / "pacs_browser.png"
    assert browser.grab().save(str(path)) and path.stat().st_size > 10_000

    browser.table.selectRow(1)
    with qtbot.waitSignal(browser.retrieved, timeout=WAIT_MS) as got:
        browser.retrieve()
    result = got.args[0]
    assert result.expected == 1 and result.received == 1
    assert browser.progress.value() == browser.progress.maximum() == 1
    ct, _ = ct_mr_examples()
    assert [p.name for p in Path(result.folder).rglob("*.dcm")] == [f"{pydicom.dcmread(ct).SOPInstanceUID}.dcm"]
    assert "1 retrieved now" in browser.status.text()
    qtbot.waitUntil(browser.open_button.isEnabled, timeout=WAIT_MS)  # the worker has finished
    assert not browser.cancel_button.isEnabled()
    assert browser.grab().save(str(screenshots / "pacs_browser_retrieved.png"))
    with qtbot.waitSignal(browser.open_requested, timeout=1000) as opened:
        browser.open_button.click()
    assert opened.args == [Path(result.folder)]


def test_search_form_filters(browser, qtbot) -> None:
    browser.modality.setCurrentText("MR")
    with qtbot.waitSignal(browser.searched, timeout=WAIT_MS) as found:
        browser.search()
    assert found.args == [1] and browser.table.item(0, 2).text() == "4MR1"
    browser.date_from.setText("2004-13-45")
    assert browser.search() is None and "is not a date" in browser.status.text()


def test_echo_ok_then_a_dead_node_fails_in_the_dialog_not_the_app(browser, pacs_ctx, orthanc, qtbot,
                                                                   monkeypatch) -> None:
    with qtbot.waitSignal(browser.echoed, timeout=WAIT_MS) as echoed:
        browser.echo()
    assert echoed.args == [True] and "echo OK" in browser.status.text()

    from medapp.settings import Settings

    dead = free_port()
    pacs_ctx.settings = Settings.load().updated(
        pacs_nodes=[{"name": "dead", "ae_title": "DEAD", "host": HOST, "port": dead}])
    browser.reload_nodes()
    with qtbot.waitSignal(browser.echoed, timeout=WAIT_MS) as echoed:
        browser.echo()
    assert echoed.args == [False]
    assert "cannot connect" in browser.status.text() and "only the configured PACS" in browser.status.text()
    assert browser.isVisible() and browser.search_button.isEnabled()  # still usable


def test_nodes_dialog_validates_echoes_and_saves(pacs_ctx, orthanc, qtbot) -> None:
    from medapp import paths
    from ui.dialogs.pacs import PacsNodesDialog

    dialog = PacsNodesDialog(pacs_ctx)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 1).text() == orthanc.aet
    dialog.table.item(0, 3).setText("not-a-port")
    dialog.accept()
    assert "port must be a port number" in dialog.status.text() and dialog.result() == 0
    dialog.table.item(0, 3).setText(str(orthanc.dicom_port))
    dialog.echo()
    qtbot.waitUntil(lambda: "echo OK" in dialog.status.text(), timeout=WAIT_MS)
    dialog.add_node({"name": "second", "ae_title": "OTHER", "host": "10.1.2.3", "port": 104, "retrieve": "move"})
    with qtbot.waitSignal(dialog.settings_saved, timeout=1000):
        dialog.accept()
    saved = json.loads(paths.settings_path().read_text())
    assert [n["name"] for n in saved["pacs_nodes"]] == ["test-orthanc", "second"]
    assert saved["pacs_nodes"][1]["retrieve"] == "move" and pacs_ctx.settings.pacs_nodes == saved["pacs_nodes"]


class _Panel(QWidget):
    """What StoreToPacsButton reads from the report panel: `report`, `_ctx`, `_source_input`, `status`."""

    from PySide6.QtCore import Signal

    report_changed = Signal(object)

    def __init__(self, ctx, report, dataset) -> None:
        super().__init__()
        self._ctx = ctx
        self.report = report
        self._source_input = type("Input", (), {"dataset": dataset})()
        self.status = QLabel(self)


def _report():
    from reports.model import Provenance, Report, Section

    return Report(sections=(Section("findings", "Findings", "No acute finding."),
                            Section("impression", "Impression", "Normal study.")),
                  modality="CT", provenance=Provenance(model_id="tiny", checkpoint_sha256="0" * 64))


def test_store_to_pacs_shows_each_outcome(pacs_ctx, orthanc, qtbot, monkeypatch) -> None:
    from ui.dialogs.pacs import StoreToPacsButton

    ct, _ = ct_mr_examples()
    [blob] = copies_of(ct, 1)
    orthanc.upload(blob)
    source = pydicom.dcmread(io.BytesIO(blob))
    report = _report()
    panel = _Panel(pacs_ctx, report, source)
    qtbot.addWidget(panel)
    button = StoreToPacsButton(panel)

    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or QMessageBox.StandardButton.No)
    assert button.store() is None and asked == ["Store an unsigned draft?"]  # a draft needs a yes
    assert [ds.Modality for ds in study_datasets(orthanc, source.StudyInstanceUID)] == ["CT"]  # nothing sent

    report.sign("Dr Test")
    with qtbot.waitSignal(button.stored, timeout=WAIT_MS) as stored:
        button.store()
    outcomes = stored.args[0]
    assert [(o.kind, o.ok) for o in outcomes] == [("Encapsulated PDF", True), ("Basic Text SR", True)]
    assert "Encapsulated PDF stored" in panel.status.text() and "Basic Text SR stored" in panel.status.text()
    assert button.outcome_box is not None and "✔ Basic Text SR: stored" in button.outcome_box.text()
    stored_objects = study_datasets(orthanc, source.StudyInstanceUID)
    assert sorted(ds.Modality for ds in stored_objects) == ["CT", "DOC", "SR"]
    [sr] = [ds for ds in stored_objects if ds.Modality == "SR"]
    assert sr.VerificationFlag == "VERIFIED" and str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Dr Test"
    qtbot.waitUntil(button.isEnabled, timeout=WAIT_MS)
    assert button.workers.shutdown(5000)


def test_main_window_pacs_menu_opens_the_browser_whose_open_shows_the_study(make_window, qtbot, tmp_path) -> None:
    import shutil

    window = make_window()
    assert window.act_pacs.text() == "&PACS…"
    window.act_pacs.trigger()
    browser = window.pacs_browser
    assert browser.isVisible() and browser.parent() is window
    if window.report_panel is not None:
        assert window.report_panel.store_button.text() == "Store to PACS…"
    ct, _ = ct_mr_examples()
    study = tmp_path / "cache" / "1.2.3"
    (study / "4.5.6").mkdir(parents=True)
    shutil.copy(ct, study / "4.5.6" / "7.8.9.dcm")
    with qtbot.waitSignal(window.document_shown, timeout=WAIT_MS):
        browser.open_requested.emit(study)  # what "Open" sends after a retrieve
    browser.close()


def test_a_cancelled_retrieve_is_a_cancel_not_a_failure(qtbot) -> None:
    """The user's Cancel ends the worker as `cancelled` (no error box); a PACS-side cancel stays an error."""
    import threading

    from medapp.pacs.errors import RetrieveCancelled
    from ui.dialogs.pacs import _retrieve
    from ui.workers import Cancelled

    def job(*, cancel, progress):
        raise RetrieveCancelled("retrieve cancelled")

    asked = threading.Event()
    asked.set()
    with pytest.raises(Cancelled):
        _retrieve(job, cancel=asked)
    with pytest.raises(RetrieveCancelled):
        _retrieve(job, cancel=threading.Event())  # not asked by the user: the PACS cancelled
