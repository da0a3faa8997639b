"""Settings dialog: inline validation from medapp.settings, model folder check in a worker, save."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from medapp.settings import Settings
from ui.context import AppContext
from ui.dialogs.settings import SettingsDialog
from ui.model_bridge import ModelBridge


@pytest.fixture
def ctx(qtbot):
    presets = {"ct-lung": {"center": -600, "width": 1500}}
    c = AppContext(settings=Settings(clinician_name="Dr A", window_presets=presets))
    yield c
    assert c.workers.shutdown(20000)


@pytest.fixture
def dialog(qtbot, ctx, tmp_path):
    d = SettingsDialog(ctx, ModelBridge(ctx), save_path=tmp_path / "settings.json")
    qtbot.addWidget(d)
    d.show()
    return d


def _ok(dialog) -> bool:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()


def test_shows_current_settings(dialog):
    assert dialog.clinician.text() == "Dr A"
    assert dialog.presets.rowCount() == 1 and dialog.presets.item(0, 0).text() == "ct-lung"
    assert dialog.device.currentData() == "auto" and dialog.quant.currentData() == "none"
    assert _ok(dialog) and dialog.errors == {}


def test_invalid_values_are_shown_inline_and_block_ok(qtbot, dialog, tmp_path):
    dialog.max_new_tokens.setValue(0)
    label = dialog.findChild(type(dialog.check_label), "error_max_new_tokens")
    assert label.isVisible() and "must be a whole number from 1 to 8192" in label.text()
    assert not _ok(dialog)
    dialog.max_new_tokens.setValue(256)
    assert not label.isVisible() and _ok(dialog)

    dialog.presets.item(0, 2).setText("0")
    preset_label = dialog.findChild(type(dialog.check_label), "error_window_presets")
    assert "width of at least 1" in preset_label.text() and not _ok(dialog)
    dialog.presets.item(0, 2).setText("wide")
    assert "must be numbers" in preset_label.text()
    dialog.presets.item(0, 2).setText("1600")
    assert _ok(dialog)

    dialog.model_dir.setText(str(tmp_path / "nowhere"))
    assert "no such folder" in dialog.errors["model_dir"] and not _ok(dialog)


def test_model_folder_check_runs_in_a_worker(qtbot, dialog, v2_checkpoint, tmp_path):
    dialog.model_dir.setText(str(v2_checkpoint))
    job = dialog.check_model()
    assert job is not None and not dialog.check_button.isEnabled()
    with qtbot.waitSignal(job.finished, timeout=60000):
        pass
    assert dialog.check_result["ok"], dialog.check_result
    assert dialog.check_label.text().startswith("✓") and "Dragonfly v2" in dialog.check_label.text()

    empty = tmp_path / "empty-model"
    empty.mkdir()
    dialog.model_dir.setText(str(empty))
    job = dialog.check_model()
    with qtbot.waitSignal(job.finished, timeout=60000):
        pass
    assert dialog.check_label.text().startswith("✗")
    assert str(empty) in dialog.check_label.text() or "config" in dialog.check_label.text()
    assert dialog.isVisible() and dialog.check_button.isEnabled()


def test_ok_saves_and_updates_the_context(qtbot, dialog, ctx, tmp_path):
    dialog.clinician.setText("Dr B Reader")
    dialog.quant.setCurrentIndex(dialog.quant.findData("4bit"))
    dialog.letterhead.setPlainText("Radiology, General Hospital")
    with qtbot.waitSignal(dialog.settings_saved, timeout=5000) as saved:
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    new = saved.args[0]
    assert ctx.settings is new and new.clinician_name == "Dr B Reader" and new.quant == "4bit"
    on_disk = json.loads((tmp_path / "settings.json").read_text())
    assert on_disk["letterhead"] == "Radiology, General Hospital"
    assert on_disk["window_presets"] == {"ct-lung": {"center": -600.0, "width": 1500.0}}
    assert Settings.load(tmp_path / "settings.json") == new
