"""The batch caption dialog: a folder in, a caption table (CSV, optional JSONL) and a contact sheet PDF out.

All the work is `medapp.jobs.caption_batch` in a worker (through `ModelBridge.caption_batch`): it writes each row as
it is produced and skips rows already in the table when "Resume" is ticked, so Cancel loses at most the batch in
flight and pressing Start again carries on where it stopped. The dialog shows the count, the ETA the core measures
(rate of this run), and every file that failed with its reason; a bad file never stops the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.model_bridge import JobHandle, ModelBridge
from ui.widgets.errors import show_worker_error

__all__ = ["BatchCaptionDialog", "format_eta"]


def format_eta(seconds: float | None) -> str:
    """"ETA 1 min 05 s" / "ETA 2 h 03 min" / "" while unknown (before the first batch is done)."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"ETA {s} s"
    if s < 3600:
        return f"ETA {s // 60} min {s % 60:02d} s"
    return f"ETA {s // 3600} h {(s % 3600) // 60:02d} min"


class BatchCaptionDialog(QDialog):
    """Choose a folder and outputs, Start / Cancel / resume, watch progress and per-file errors.

    Signal `batch_finished(summary)` with the core's `CaptionSummary` (also after a cancel).
    Public for tests: `start()`, `cancel()`, `summary`, `errors` (list of (key, message)).
    """

    batch_finished = Signal(object)

    def __init__(
        self, ctx: Any, bridge: ModelBridge, parent: QWidget | None = None, *, folder: str | Path = ""
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Caption a folder")
        self._ctx = ctx
        self._bridge = bridge
        self.job: JobHandle | None = None
        self.summary: Any = None
        self.errors: list[tuple[str, str]] = []
        self.last_error_box = None
        self._plan: tuple[int, int] | None = None  # (files, already in the table) once the folder is listed

        self.folder = QLineEdit(str(folder), objectName="batchFolder")
        self.folder.setPlaceholderText("folder of images, DICOM files or slides")
        self.browse_folder_button = QPushButton("Browse…")
        self.browse_folder_button.clicked.connect(self._browse_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.browse_folder_button)

        self.csv_path = QLineEdit(objectName="batchCsv")
        self.jsonl_check = QCheckBox("JSONL too", objectName="batchJsonl")
        self.jsonl_check.setChecked(True)
        self.sheet_check = QCheckBox("Contact sheet PDF", objectName="batchSheet")
        self.sheet_check.setChecked(True)
        self.browse_csv_button = QPushButton("Browse…")
        self.browse_csv_button.clicked.connect(self._browse_csv)
        out_row = QHBoxLayout()
        out_row.addWidget(self.csv_path, 1)
        out_row.addWidget(self.browse_csv_button)
        extra_row = QHBoxLayout()
        extra_row.addWidget(self.jsonl_check)
        extra_row.addWidget(self.sheet_check)
        extra_row.addStretch(1)

        from medapp.jobs.caption import CAPTION_PROMPT

        self.prompt = QLineEdit(CAPTION_PROMPT, objectName="batchPrompt")
        self.resume_check = QCheckBox("Resume: skip images already in the table", objectName="batchResume")
        self.resume_check.setChecked(True)

        form = QFormLayout()
        form.addRow("Folder", folder_row)
        form.addRow("Caption table (CSV)", out_row)
        form.addRow("", extra_row)
        form.addRow("Instruction", self.prompt)
        form.addRow("", self.resume_check)

        self.progress = QProgressBar(objectName="batchProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        self.eta_label = QLabel(objectName="batchEta")
        self.status = QLabel(objectName="batchStatus")
        self.status.setWordWrap(True)
        self.error_list = QListWidget(objectName="batchErrors")
        self.error_list.setMaximumHeight(120)
        self.error_list.setWordWrap(True)
        self.error_list.hide()

        self.start_button = QPushButton("Start", objectName="batchStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(lambda: self.start())
        self.cancel_button = QPushButton("Cancel", objectName="batchCancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        self.open_button = QPushButton("Open output folder", objectName="batchOpenOutputs")
        self.open_button.setToolTip("Show the caption table and contact sheet in the file manager")
        self.open_button.setEnabled(False)  # until a run has written something
        self.open_button.clicked.connect(self.open_outputs)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.progress, 1)
        bar_row.addWidget(self.eta_label)
        layout.addLayout(bar_row)
        layout.addWidget(self.status)
        layout.addWidget(self.error_list)
        layout.addLayout(buttons)
        self.folder.textChanged.connect(self._suggest_outputs)
        self._suggest_outputs()
        self.resize(620, self.sizeHint().height())

    # -- inputs ------------------------------------------------------------------------------------------------
    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to caption", self.folder.text() or str(Path.home()))
        if folder:
            self.folder.setText(folder)

    def _browse_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Caption table", self.csv_path.text(), "CSV (*.csv)")
        if path:
            self.csv_path.setText(path)

    def _suggest_outputs(self) -> None:
        """Default table next to the folder (`<folder>-captions.csv`), never inside it: it would be captioned."""
        text = self.folder.text().strip()
        if text and not self.csv_path.isModified():
            folder = Path(text).expanduser()
            self.csv_path.setText(str(folder.parent / f"{folder.name}-captions.csv"))

    def outputs(self) -> dict[str, Path | None]:
        csv = Path(self.csv_path.text().strip()).expanduser()
        return {
            "csv": csv,
            "jsonl": csv.with_suffix(".jsonl") if self.jsonl_check.isChecked() else None,
            "contact_sheet": csv.with_name(csv.stem + "-contact-sheet.pdf") if self.sheet_check.isChecked() else None,
        }

    def _input_problem(self) -> str | None:
        folder_text = self.folder.text().strip()
        if not folder_text:
            return "Choose a folder to caption."
        folder = Path(folder_text).expanduser()
        if not folder.is_dir():
            return f"{folder}: no such folder"
        csv_text = self.csv_path.text().strip()
        if not csv_text:
            return "Choose where to write the caption table."
        csv = Path(csv_text).expanduser()
        if csv.suffix.lower() != ".csv":
            return f"{csv}: the caption table must be a .csv file"
        if not csv.parent.is_dir():
            return f"{csv.parent}: the output folder does not exist"
        return None

    # -- run ---------------------------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.job is not None

    def start(self) -> JobHandle | None:
        """Start (or resume) captioning; returns the job, or None with the reason in the status line."""
        if self.job is not None:
            return None
        problem = self._input_problem()
        if problem:
            self.status.setText(problem)
            self.status.setStyleSheet("color:#b3261e;")
            return None
        self.status.setStyleSheet("")
        self.errors = []
        self.error_list.clear()
        self.error_list.hide()
        self.summary = None
        self._plan = None
        out = self.outputs()
        job = self._bridge.caption_batch(
            Path(self.folder.text().strip()).expanduser(),
            csv_path=out["csv"],
            jsonl_path=out["jsonl"],
            contact_sheet=out["contact_sheet"],
            prompt=self.prompt.text().strip() or None,
            resume=self.resume_check.isChecked(),
        )
        job.progress.connect(self._on_progress)
        job.succeeded.connect(self._on_done)
        job.cancelled.connect(self._on_done)
        job.failed.connect(self._on_failed)
        job.finished.connect(self._on_finished)
        self.job = job
        self.progress.setRange(0, 0)  # busy until the first count arrives (listing a big folder takes a moment)
        self.eta_label.clear()
        self.status.setText("Listing the folder…")
        self._set_running(True)
        job.start()
        return job

    def cancel(self) -> None:
        """Stop after the batch in flight; rows written so far stay, and Start resumes from there."""
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling after the current batch…")

    def _on_progress(self, event: Any) -> None:
        if isinstance(event, tuple) and event and event[0] == "stage":
            self._on_stage(str(event[1]))
            return
        if isinstance(event, tuple) and event and event[0] == "plan":
            _, total, already = event
            self._plan = (int(total), int(already))
            self._show_counts(int(already), int(total))
            self.status.setText(f"{total} to caption, {already} already done" if already else f"{total} to caption")
            return
        if isinstance(event, tuple) and event and event[0] == "error":
            _, key, message = event
            self.errors.append((key, message))
            self.error_list.addItem(f"{key}: {message}")
            self.error_list.show()
            return
        if isinstance(event, tuple) and event and event[0] == "contact_sheet":
            self.status.setText("Writing the contact sheet…")
            return
        done, total = getattr(event, "overall_done", None), getattr(event, "overall_total", None)
        if done is None or total is None:
            return
        self._show_counts(int(done), int(total))
        self.eta_label.setText(format_eta(getattr(event, "eta_s", None)))
        failed = getattr(event, "failed", 0)
        self.status.setText(f"Captioned {done} of {total}" + (f" ({failed} failed)" if failed else ""))

    def _on_stage(self, stage: str) -> None:
        plan = self._plan
        already = f" ({plan[1]} of {plan[0]} already done)" if plan and plan[1] else ""
        if stage == "listing":
            self.status.setText("Listing the folder…")
        elif stage == "loading":
            self.status.setText("Loading the model (the first time takes a minute)…" + already)
        elif stage == "captioning":
            self.status.setText("Captioning…" + already)

    def _show_counts(self, done: int, total: int) -> None:
        """"8 of 10" on the bar: the rows of earlier runs count, so a resumed batch does not restart at 0."""
        self.progress.setFormat("%v of %m")
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _on_done(self, summary: Any) -> None:
        self.summary = summary
        if summary is None:  # cancelled before the worker started: nothing was written
            self.status.setText("Cancelled before anything was captioned.")
            return
        parts = [f"{summary.done} captioned"]
        if summary.skipped:
            parts.append(f"{summary.skipped} already done (skipped)")
        if summary.failed:
            parts.append(f"{summary.failed} failed")
        verb = "Cancelled" if summary.cancelled else "Finished"
        self.status.setText(f"{verb}: " + ", ".join(parts) + (". Press Start to resume." if summary.cancelled else "."))
        self._show_counts(summary.skipped + summary.done + summary.failed, summary.total)
        for key, message in getattr(summary, "errors", []):
            if (key, message) not in self.errors:
                self.errors.append((key, message))
                self.error_list.addItem(f"{key}: {message}")
        self.error_list.setVisible(bool(self.errors))
        self.batch_finished.emit(summary)

    def _on_failed(self, failure: Any) -> None:
        self.status.setText(f"Stopped by an error: {failure.message or failure.exc_type}")
        self.status.setStyleSheet("color:#b3261e;")
        self.last_error_box = show_worker_error(self, "Batch captioning failed", failure)

    def _on_finished(self) -> None:
        self.job = None
        self.eta_label.clear()  # an ETA for a run that is over (finished, cancelled or failed) means nothing
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self._set_running(False)
        self.open_button.setEnabled(self.outputs()["csv"].exists())

    def open_outputs(self) -> bool:
        """Open the folder holding the caption table (and contact sheet) in the system's file manager."""
        folder = self.outputs()["csv"].parent
        return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.start_button.setText("Start")
        self.cancel_button.setEnabled(running)
        self.close_button.setEnabled(not running)
        # the Browse buttons too: a folder picked mid-run would rename the outputs "Open output folder" shows
        for w in (self.folder, self.browse_folder_button, self.csv_path, self.browse_csv_button, self.jsonl_check,
                  self.sheet_check, self.prompt, self.resume_check):
            w.setEnabled(not running)

    def reject(self) -> None:
        if self.job is not None:  # closing with Esc while running: cancel, keep the dialog until it stops
            self.cancel()
            return
        super().reject()
