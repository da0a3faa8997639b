"""The settings dialog: model folder (checked in a worker), device, quantisation, window presets, clinician, letterhead.

Validation is `medapp.settings.Settings`'s own: every change is tried with `Settings.updated(field=value)` and the
sentence it raises is shown under that field, so the dialog and the settings file can never disagree about what is
allowed. OK stays disabled while any field is invalid. The model folder check (`models.check.check_checkpoint`,
through the bridge) reads safetensors headers and can take seconds on an 8B checkpoint, so it runs in a worker and
its verdict appears inline. A folder that does not exist blocks OK; a folder that exists but fails the check only
warns (the check is advice: a checkpoint still being copied, say, can be fixed before the model is loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.model_bridge import JobHandle, ModelBridge

__all__ = ["SettingsDialog"]

_ERROR_STYLE = "color:#b3261e;"
_OK_STYLE = "color:#1e6b34;"
_DEVICE_LABELS = {"auto": "Automatic (CUDA if available)", "cpu": "CPU", "cuda": "CUDA (NVIDIA GPU)"}
_QUANT_LABELS = {"none": "None (full precision)", "4bit": "4-bit NF4 (bitsandbytes)"}


class SettingsDialog(QDialog):
    """Edit a copy of `ctx.settings`; OK validates, saves to `save_path` (default: the user's settings file) and
    puts the new settings on the context. Signal `settings_saved(Settings)` after a successful save."""

    settings_saved = Signal(object)

    def __init__(
        self, ctx: Any, bridge: ModelBridge, parent: QWidget | None = None, *, save_path: str | Path | None = None
    ) -> None:
        super().__init__(parent)
        from medapp.settings import DEVICES, QUANTS, Settings

        self.setWindowTitle("Settings")
        self._ctx = ctx
        self._bridge = bridge
        self._save_path = save_path
        self.original = ctx.settings if getattr(ctx, "settings", None) is not None else Settings()
        self.errors: dict[str, str] = {}
        self.check_job: JobHandle | None = None
        self.check_result: dict[str, Any] | None = None
        self._error_labels: dict[str, QLabel] = {}
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        # model folder + check
        self.model_dir = QLineEdit(self.original.model_dir or "", objectName="settingsModelDir")
        self.model_dir.setPlaceholderText("empty: look in the Hugging Face cache")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.check_button = QPushButton("Check", objectName="settingsCheck")
        self.check_button.clicked.connect(self.check_model)
        row = QHBoxLayout()
        row.addWidget(self.model_dir, 1)
        row.addWidget(browse)
        row.addWidget(self.check_button)
        form.addRow("Model folder", row)
        self.check_label = QLabel(objectName="settingsCheckResult")
        self.check_label.setWordWrap(True)
        self.check_label.hide()
        form.addRow("", self.check_label)
        self._add_error_row(form, "model_dir")

        self.device = QComboBox(objectName="settingsDevice")
        for value in DEVICES:
            self.device.addItem(_DEVICE_LABELS.get(value, value), value)
        self.device.setCurrentIndex(DEVICES.index(self.original.device))
        form.addRow("Device", self.device)
        self._add_error_row(form, "device")

        self.quant = QComboBox(objectName="settingsQuant")
        for value in QUANTS:
            self.quant.addItem(_QUANT_LABELS.get(value, value), value)
        self.quant.setCurrentIndex(QUANTS.index(self.original.quant))
        form.addRow("Quantisation", self.quant)
        self._add_error_row(form, "quant")

        self.max_new_tokens = QSpinBox(objectName="settingsMaxTokens")
        self.max_new_tokens.setRange(0, 100000)  # Settings decides what is allowed; the error shows inline
        self.max_new_tokens.setValue(self.original.max_new_tokens)
        form.addRow("Longest answer (tokens)", self.max_new_tokens)
        self._add_error_row(form, "max_new_tokens")

        self.clinician = QLineEdit(self.original.clinician_name, objectName="settingsClinician")
        self.clinician.setPlaceholderText("name printed when you sign a report")
        form.addRow("Clinician name", self.clinician)
        self._add_error_row(form, "clinician_name")

        self.letterhead = QPlainTextEdit(self.original.letterhead, objectName="settingsLetterhead")
        self.letterhead.setPlaceholderText("Department, hospital, address — printed at the top of report PDFs")
        self.letterhead.setFixedHeight(70)
        form.addRow("Letterhead", self.letterhead)
        self._add_error_row(form, "letterhead")

        self.presets = QTableWidget(0, 3, objectName="settingsPresets")
        self.presets.setHorizontalHeaderLabels(["Preset", "Center (L)", "Width (W)"])
        self.presets.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.presets.setFixedHeight(130)
        for name, win in sorted(self.original.window_presets.items()):
            self._add_preset_row(name, win.get("center", ""), win.get("width", ""))
        add = QPushButton("Add preset")
        add.clicked.connect(lambda: self._add_preset_row("", "", ""))
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self._remove_preset)
        presets_box = QVBoxLayout()
        presets_box.addWidget(self.presets)
        buttons_row = QHBoxLayout()
        buttons_row.addWidget(add)
        buttons_row.addWidget(remove)
        buttons_row.addStretch(1)
        presets_box.addLayout(buttons_row)
        form.addRow("Window presets\n(override built-ins)", presets_box)
        self._add_error_row(form, "window_presets")

        self.save_error = QLabel(objectName="settingsSaveError")
        self.save_error.setStyleSheet(_ERROR_STYLE)
        self.save_error.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.save_error)
        layout.addWidget(self.buttons)

        for signal in (
            self.model_dir.textChanged,
            self.device.currentIndexChanged,
            self.quant.currentIndexChanged,
            self.max_new_tokens.valueChanged,
            self.clinician.textChanged,
            self.letterhead.textChanged,
            self.presets.itemChanged,
        ):
            signal.connect(self.validate)
        self.model_dir.textChanged.connect(lambda _t: self._set_check_text(""))
        self.validate()
        self.resize(620, self.sizeHint().height())

    # -- building helpers --------------------------------------------------------------------------------------
    def _add_error_row(self, form: QFormLayout, name: str) -> None:
        label = QLabel(objectName=f"error_{name}")
        label.setStyleSheet(_ERROR_STYLE)
        label.setWordWrap(True)
        label.hide()
        form.addRow("", label)
        self._error_labels[name] = label

    def _add_preset_row(self, name: str, center: Any, width: Any) -> None:
        self.presets.blockSignals(True)
        row = self.presets.rowCount()
        self.presets.insertRow(row)
        for col, value in enumerate((name, center, width)):
            self.presets.setItem(row, col, QTableWidgetItem("" if value == "" else str(value)))
        self.presets.blockSignals(False)
        self.validate()

    def _remove_preset(self) -> None:
        for row in sorted({i.row() for i in self.presets.selectedIndexes()}, reverse=True):
            self.presets.removeRow(row)
        self.validate()

    def _browse(self) -> None:
        start = self.model_dir.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Dragonfly model folder", start)
        if folder:
            self.model_dir.setText(folder)
            self.check_model()

    # -- values and validation ---------------------------------------------------------------------------------
    def _presets_value(self) -> tuple[dict[str, Any], str | None]:
        """The table as the settings' dict; a row that is not a name plus two numbers is reported here."""
        out: dict[str, Any] = {}
        for row in range(self.presets.rowCount()):
            cells = [(self.presets.item(row, c).text() if self.presets.item(row, c) else "").strip() for c in range(3)]
            if not any(cells):
                continue
            name, center, width = cells
            if not name:
                return out, f"row {row + 1}: the preset needs a name"
            if name in out:
                return out, f"row {row + 1}: preset {name!r} appears twice"
            try:
                out[name] = {"center": float(center), "width": float(width)}
            except ValueError:
                return out, f"row {row + 1}: center and width of {name!r} must be numbers"
        return out, None

    def values(self) -> dict[str, Any]:
        """What the form holds, as Settings field values."""
        presets, _ = self._presets_value()
        folder = self.model_dir.text().strip()
        return {
            "model_dir": folder or None,
            "device": self.device.currentData(),
            "quant": self.quant.currentData(),
            "max_new_tokens": self.max_new_tokens.value(),
            "clinician_name": self.clinician.text().strip(),
            "letterhead": self.letterhead.toPlainText(),
            "window_presets": presets,
        }

    def validate(self, *_: Any) -> bool:
        """Check each field with the Settings rules; show the sentence under the field; enable OK if all pass."""
        from medapp.errors import UserError

        errors: dict[str, str] = {}
        values = self.values()
        for name, value in values.items():
            try:
                self.original.updated(**{name: value})
            except UserError as exc:
                errors[name] = _field_message(str(exc), name)
        _, table_problem = self._presets_value()
        if table_problem:
            errors["window_presets"] = table_problem
        folder = values["model_dir"]
        if folder and "model_dir" not in errors and not Path(folder).expanduser().is_dir():
            errors["model_dir"] = f"{folder}: no such folder"
        self.errors = errors
        for name, label in self._error_labels.items():
            label.setText(errors.get(name, ""))
            label.setVisible(name in errors)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not errors)
        return not errors

    # -- model check -------------------------------------------------------------------------------------------
    def check_model(self) -> JobHandle | None:
        """Run the checkpoint check on the folder in a worker; the verdict appears under the folder field."""
        folder = self.model_dir.text().strip()
        if not folder:
            self._set_check_text("No folder set: the Hugging Face cache is searched when the model loads.")
            return None
        if self.check_job is not None:
            return None
        job = self._bridge.check_model(Path(folder).expanduser())
        job.succeeded.connect(self._on_checked)
        job.failed.connect(self._on_check_failed)
        job.finished.connect(self._on_check_finished)
        self.check_job = job
        self.check_button.setEnabled(False)
        self._set_check_text("Checking the model folder…")
        job.start()
        return job

    def _set_check_text(self, text: str, style: str = "") -> None:
        self.check_label.setText(text)
        self.check_label.setStyleSheet(style)
        self.check_label.setVisible(bool(text))

    def _on_checked(self, result: dict[str, Any]) -> None:
        self.check_result = result
        ok = bool(result.get("ok"))
        summary = result.get("summary") or ("The checkpoint looks complete." if ok else "The checkpoint has problems.")
        self._set_check_text(("✓ " if ok else "✗ ") + summary, _OK_STYLE if ok else _ERROR_STYLE)

    def _on_check_failed(self, failure: Any) -> None:
        self.check_result = {"ok": False, "error": failure.message}
        self._set_check_text(f"✗ {failure.message or failure.exc_type}", _ERROR_STYLE)

    def _on_check_finished(self) -> None:
        self.check_job = None
        self.check_button.setEnabled(True)

    # -- save --------------------------------------------------------------------------------------------------
    def accept(self) -> None:
        from medapp.errors import UserError

        if not self.validate():
            return
        try:
            new = self.original.updated(**self.values())
            new.save(self._save_path)
        except (UserError, OSError) as exc:
            self.save_error.setText(f"Not saved: {exc}")
            return
        if self.check_job is not None:
            self.check_job.cancel()
        self._ctx.settings = new
        self.settings_saved.emit(new)
        super().accept()

    def reject(self) -> None:
        if self.check_job is not None:
            self.check_job.cancel()
        super().reject()


def _field_message(message: str, name: str) -> str:
    """`"settings: setting 'x' must be … (found …)"` → `"must be … (found …)"`: the field is beside it already."""
    marker = f"setting {name!r} "
    return message.split(marker, 1)[1] if marker in message else message
