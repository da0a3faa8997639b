"""The report panel: an AI draft the clinician edits section by section, signs and exports.

The `reports.Report` object is the single source of truth; the panel only mirrors it. Every keystroke goes into the
report at once (`Report.set_section`) and the session autosave follows within `AUTOSAVE_MS` (and immediately before
any job, sign or export and when the panel hides), so an edit is never lost, not even to a crash a second later.

Regenerating one section asks the model for a fresh draft in a worker and, when it comes back, replaces *only* that
section's text in the report as it is *then* — edits made to other sections meanwhile are untouched, and the section
being regenerated is read-only until its new text arrives (or the job is stopped), so no typing can be overwritten.
A full "Generate draft" over a report with text asks first, and keeps every editor read-only while it runs.

Signing follows `reports.Report`: it records the clinician (from Settings, or asked) and the time; editing a signed
report returns it to draft (the old signature goes to the report's history) and the banner turns back into the
"AI DRAFT — not reviewed" warning. That banner is on screen in every state except signed. "Sign…" opens a
modal-less confirmation (`ui.dialogs.signoff`) that shows what is signed with `medapp.signoff`'s flags and signs
only when nothing blocks (empty Findings / Impression) and the clinician typed their name.

The report belongs to its study: the panel follows the document on screen (`ViewerState.document`), keeps one draft
per study (`medapp.signoff.study_key`, stored in the session) and, switching image, shows that study's draft or
none. A report shown beside another study's image (a draft that arrived late, or set from elsewhere) cannot be
exported. Exports are named after the study, never the patient, in the last export folder.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from medapp.signoff import default_export_name, same_study, study_key
from medapp.viewer_state import ViewerState
from ui.model_bridge import JobHandle, ModelBridge
from ui.widgets.errors import show_worker_error

__all__ = ["ReportPanel", "SectionEditor", "DRAFT_BANNER"]

log = logging.getLogger(__name__)

DRAFT_BANNER = "AI DRAFT — not reviewed"
AUTOSAVE_MS = 300
_DRAFT_STYLE = "background:#b3261e; color:white; font-weight:bold; padding:6px; border-radius:3px;"
_SIGNED_STYLE = "background:#1e6b34; color:white; font-weight:bold; padding:6px; border-radius:3px;"


class SectionEditor(QFrame):
    """Title, "Regenerate" button and a plain-text editor for one report section."""

    edited = Signal(str, str)  # key, text
    regenerate_requested = Signal(str)

    def __init__(self, key: str, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setObjectName(f"section_{key}")
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.regenerate = QPushButton("Regenerate", objectName=f"regenerate_{key}")
        self.regenerate.setToolTip(f"Ask the model again for “{title}” only; other sections are kept as they are")
        self.regenerate.clicked.connect(lambda: self.regenerate_requested.emit(self.key))
        self.status = QLabel()
        self.status.setStyleSheet("color:#9a5b00;")
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title)
        head.addWidget(self.status, 1)
        head.addWidget(self.regenerate)
        self.editor = QPlainTextEdit(objectName=f"editor_{key}")
        self.editor.setPlainText(text)
        self.editor.setTabChangesFocus(True)
        self.editor.setMinimumHeight(56)
        self._fit_height()
        self.editor.textChanged.connect(self._changed)
        # wrapped lines are known only once laid out at the panel's width: fit again then (and on every resize)
        self.editor.document().documentLayout().documentSizeChanged.connect(self._relayout)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(head)
        layout.addWidget(self.editor)

    def _changed(self) -> None:
        self._fit_height()
        self.edited.emit(self.key, self.editor.toPlainText())

    #: the fewest lines a section's box shows: Findings is where the text is, so it never starts as a 3-line slot
    MIN_LINES = {"findings": 10}

    def _fit_height(self) -> None:
        least = self.MIN_LINES.get(self.key, 2)
        lines = max(least, min(max(14, 3 * least), self.editor.document().lineCount()
                                + self.editor.toPlainText().count("\n") // 4))
        self.editor.setFixedHeight(int(self.editor.fontMetrics().lineSpacing() * (lines + 1.2)) + 8)

    def _relayout(self, *_: object) -> None:
        self._fit_height()

    def set_text(self, text: str) -> None:
        """Replace the text without emitting `edited` (used when the model, not the user, changed it)."""
        self.editor.blockSignals(True)
        self.editor.setPlainText(text)
        self.editor.blockSignals(False)
        self._fit_height()

    def set_regenerating(self, running: bool) -> None:
        self.editor.setReadOnly(running)
        self.regenerate.setEnabled(not running)
        self.status.setText("regenerating…" if running else "")


class ReportPanel(QWidget):
    """Indication, Generate, one editor per section, Regenerate, Sign, export PDF / DICOM PDF, open the PDF.

    Public state: `report` (the `reports.Report` or None), `last_pdf` (Path of the last exported PDF).
    Signals: `report_changed(object)` after every change, `exported(str, Path)` with kind "pdf" or "dicom".
    """

    report_changed = Signal(object)
    exported = Signal(str, object)

    def __init__(self, ctx: Any, bridge: ModelBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self._bridge = bridge
        # The active report lives in the window's Qt-free view state (`ctx.view.report`), not in this widget; the
        # panel edits it and follows it when someone else (a job, another panel) replaces it.
        view = getattr(ctx, "view", None)
        self._view = view if view is not None else ViewerState()
        self._shown_report: Any = None
        self.last_pdf: Path | None = None
        self.last_error_box: QMessageBox | None = None
        self._draft_job: JobHandle | None = None
        self._source_input: Any = None  # the ModelInput the current draft was made from (for the DICOM export)
        self._section_jobs: dict[str, JobHandle] = {}
        self._editors: dict[str, SectionEditor] = {}
        self._report_key: str | None = study_key(self._view.document)  # the study the shown report belongs to
        self._drafts: dict[str | None, Any] = {}  # study key -> its report, this window run (the session persists)
        #: the document's measurements as Findings text (the window sets the Measurements panel's); a new draft keeps
        #: the ones Findings holds
        self.measurement_text: Callable[[], str] | None = None
        self.signoff_dialog: Any = None
        self._autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save_now)
        self._build()
        self._load_from_session()
        self._view.events.report.connect(self._on_state_report)
        self._view.events.document.connect(self._on_document)
        report_event, slot = self._view.events.report, self._on_state_report
        document_event, doc_slot = self._view.events.document, self._on_document
        # the state may outlive this widget: stop listening when Qt deletes it
        self.destroyed.connect(lambda *_: (report_event.disconnect(slot, missing_ok=True),
                                           document_event.disconnect(doc_slot, missing_ok=True)))

    @property
    def report(self) -> Any:
        """The active `reports.Report` (or None): `ctx.view.report`."""
        return self._view.report

    def _on_state_report(self, report: Any, *_: Any) -> None:
        if report is not self._shown_report:
            self.set_report(report, save=False)

    @property
    def report_study(self) -> str | None:
        """The study key (`medapp.signoff.study_key`) the shown report is kept under."""
        return self._report_key

    @property
    def study_matches(self) -> bool:
        """False while the shown report belongs to another study than the image on screen (exports are off)."""
        if self._view.document is None:
            return True  # nothing on screen to disagree with
        return same_study(self.report, self._report_key, self._view.document)

    def _on_document(self, document: Any, *_: Any) -> None:
        """Another image is on screen: keep the shown draft with its study and show the new study's draft."""
        key = study_key(document)
        if document is None or key == self._report_key:
            self._sync_state()
            return
        self.save_now()
        self._drafts[self._report_key] = self.report
        self._source_input = None
        report = self._drafts.get(key)
        if report is None:
            report = self._session_report(key)
        self._report_key = key
        self.indication.clear()
        self.set_report(report, save=False)
        self.status.setText("" if report is None else "The draft of this study.")

    # -- layout ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = QLabel(objectName="reportBanner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)

        self.indication = QLineEdit(objectName="reportIndication")
        self.indication.setPlaceholderText("Clinical indication (what should the report answer?)")
        self.generate_button = QPushButton("Generate draft", objectName="reportGenerate")
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop", objectName="reportStop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        top = QHBoxLayout()
        top.addWidget(QLabel("Indication:"))
        top.addWidget(self.indication, 1)
        top.addWidget(self.generate_button)
        top.addWidget(self.stop_button)

        self.stream_view = QPlainTextEdit(objectName="reportStream")
        self.stream_view.setReadOnly(True)
        self.stream_view.setMaximumHeight(90)
        self.stream_view.setPlaceholderText("The model's draft appears here while it is written.")
        self.stream_view.hide()

        self.sections_box = QWidget(objectName="reportSections")
        self.sections_layout = QVBoxLayout(self.sections_box)
        self.sections_layout.setContentsMargins(4, 4, 4, 4)
        self.sections_layout.addStretch(1)
        self.empty_label = QLabel("No report yet. Write the indication and press “Generate draft”.")
        self.empty_label.setStyleSheet("color:#666;")
        self.sections_layout.insertWidget(0, self.empty_label)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.sections_box)

        self.sign_button = QPushButton("Sign…", objectName="reportSign")
        self.sign_button.clicked.connect(lambda: self.open_signoff())
        self.pdf_button = QPushButton("Export PDF…", objectName="reportExportPdf")
        self.pdf_button.clicked.connect(lambda: self.export_pdf())
        self.dicom_button = QPushButton("Export DICOM PDF…", objectName="reportExportDicom")
        self.dicom_button.clicked.connect(lambda: self.export_dicom())
        self.deid_check = QCheckBox("De-identified", objectName="reportDeid")
        self.deid_check.setToolTip("Leave patient identifiers out of the exported PDF and DICOM header")
        self.open_button = QPushButton("Open PDF", objectName="reportOpenPdf")
        self.open_button.clicked.connect(self.open_pdf)
        from ui.dialogs.pacs_store import StoreToPacsButton  # "Store to PACS…" beside the exports

        self.store_button = StoreToPacsButton(self)
        # two rows of three: in one row the six set the whole Assistant dock's minimum width (≈650 px), which left
        # the image viewer under 500 px on a 1400 px window
        bottom = QGridLayout()
        for i, w in enumerate((self.sign_button, self.pdf_button, self.dicom_button,
                               self.open_button, self.store_button, self.deid_check)):
            bottom.addWidget(w, i // 3, i % 3)
        bottom.setColumnStretch(3, 1)

        self.status = QLabel(objectName="reportStatus")
        self.status.setStyleSheet("color:#666;")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.stream_view)
        layout.addWidget(scroll, 1)
        layout.addLayout(bottom)
        layout.addWidget(self.status)
        self._sync_state()

    # -- report <-> widgets ------------------------------------------------------------------------------------
    def _session_report(self, key: str | None) -> Any:
        session = getattr(self._ctx, "session", None)
        if session is None:
            return None
        try:
            return session.report(key)
        except Exception as exc:  # noqa: BLE001 — a damaged draft must not stop the window; say so and start empty
            log.warning("stored report draft unreadable: %s", type(exc).__name__)
            self.status.setText(f"The stored report draft could not be read ({exc}); starting empty.")
            return None

    def _load_from_session(self) -> None:
        report = self._session_report(self._report_key)
        if report is not None:
            self.set_report(report, save=False)

    def set_report(self, report: Any, *, save: bool = True) -> None:
        """Show `report` (a `reports.Report`) with one editor per section and make it the active report."""
        self._shown_report = report
        self._view.report = report
        for editor in self._editors.values():
            editor.setParent(None)
            editor.deleteLater()
        self._editors.clear()
        self.empty_label.setVisible(report is None)
        if report is not None:
            indication = report.text("indication")
            if indication and not self.indication.text():
                self.indication.setText(indication)
            for i, section in enumerate(report.sections):
                editor = SectionEditor(section.key, section.title, section.text, self.sections_box)
                editor.edited.connect(self._on_edit)
                editor.regenerate_requested.connect(self.regenerate_section)
                self.sections_layout.insertWidget(i + 1, editor)
                self._editors[section.key] = editor
        if save:
            self.save_now()
        self._sync_state()
        self.report_changed.emit(report)

    def editor(self, key: str) -> QPlainTextEdit:
        return self._editors[key].editor

    def insert_findings(self, text: str) -> None:
        """Append `text` (the Measurements panel's lines) to Findings — of a new report when there is none. The
        clinician's own words: edited by hand as far as the sign-off review is concerned."""
        from medapp.measurements import insert_into_findings

        was_signed = self.report is not None and self.report.is_signed
        before = self.report.text("findings") if self.report is not None else None
        report = insert_into_findings(self.report, text, self._view.modality)
        if before is not None and report.text("findings") == before:
            self.status.setText("Findings already lists these measurements.")
            return
        self.set_report(report)
        self.status.setText("Measurements added to Findings." + (
            " The report was signed: it is a draft again and must be signed again." if was_signed else ""))

    def _on_edit(self, key: str, text: str) -> None:
        if self.report is None:
            return
        was_signed = self.report.is_signed
        self.report.mark_edited(key)  # the clinician's words now (the sign-off review stops flagging it as AI text)
        self.report.set_section(key, text)  # a signed report returns to draft here (reports.Report rule)
        if was_signed and not self.report.is_signed:
            self.status.setText("Edited after signing: the report is a draft again and must be signed again.")
        self._autosave.start()
        self._sync_state()
        self.report_changed.emit(self.report)

    def save_now(self) -> None:
        """Write the report into the session now (autosave; also called before any job, sign or export)."""
        self._autosave.stop()
        session = getattr(self._ctx, "session", None)
        if session is not None and self.report is not None:
            session.set_report(self.report, self._report_key)

    def hideEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        self.save_now()
        super().hideEvent(event)

    def _sync_state(self) -> None:
        report = self.report
        busy = self._draft_job is not None
        if report is not None and report.is_signed:
            sig = report.signature
            when = sig.signed_at.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
            self.banner.setText(f"Signed by {sig.name} — {when}")
            self.banner.setStyleSheet(_SIGNED_STYLE)
        else:
            amended = f" (returned to draft after signing by {report.history[-1].signed_by})" if (
                report is not None and report.history) else ""
            self.banner.setText(f"{DRAFT_BANNER}{amended}")
            self.banner.setStyleSheet(_DRAFT_STYLE)
        has_text = report is not None and any(s.text.strip() for s in report.sections)
        self.generate_button.setEnabled(not busy and self._section_jobs == {})
        self.stop_button.setEnabled(busy or bool(self._section_jobs))
        self.sign_button.setEnabled(has_text and not busy and not report.is_signed)
        matches = self.study_matches
        self.pdf_button.setEnabled(report is not None and not busy and matches)
        self.dicom_button.setEnabled(report is not None and not busy and matches)
        tip = "" if matches else "This report belongs to another study than the image on screen"
        self.pdf_button.setToolTip(tip)
        self.dicom_button.setToolTip(tip)
        self.open_button.setEnabled(self.last_pdf is not None and self.last_pdf.exists())
        for key, editor in self._editors.items():
            editor.regenerate.setEnabled(not busy and key not in self._section_jobs)

    # -- generation --------------------------------------------------------------------------------------------
    def _confirm_replace(self) -> bool:
        """Asked before a full regeneration would replace a report that has text (edits would go)."""
        answer = QMessageBox.question(
            self,
            "Replace the report?",
            "Generating a new draft replaces every section, including your edits. Continue?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def generate(self) -> JobHandle | None:
        """Draft a whole report about the current input in a worker; tokens stream into the preview box."""
        if self._draft_job is not None or self._section_jobs:
            return None
        model_input = self._ctx.current_model_input()
        if model_input is None:
            self.status.setText("Open an image first.")
            return None
        if self.report is not None and any(s.text.strip() for s in self.report.sections):
            if not self._confirm_replace():
                return None
        self.save_now()
        job = self._bridge.draft_report(model_input, self.indication.text().strip())
        job.succeeded.connect(lambda _r, m=model_input: setattr(self, "_source_input", m))
        self._draft_study = self._report_key
        self.stream_view.clear()
        self.stream_view.show()
        job.token.connect(self._on_stream_token)
        job.succeeded.connect(self._on_draft)
        job.cancelled.connect(lambda _r: self.status.setText("Stopped; the report was not changed."))
        job.failed.connect(lambda f: self._on_failed("Report draft failed", f))
        job.finished.connect(self._on_draft_finished)
        self._draft_job = job
        for editor in self._editors.values():  # the new draft will replace them: typing now would be lost
            editor.editor.setReadOnly(True)
        loaded = getattr(getattr(self._ctx, "model", None), "engine", None) is not None
        self.status.setText("Writing the draft…" if loaded else "Loading the model, then writing the draft…")
        self._sync_state()
        job.start()
        return job

    def _on_stream_token(self, text: str) -> None:
        self.stream_view.moveCursor(self.stream_view.textCursor().MoveOperation.End)
        self.stream_view.insertPlainText(text)
        self.stream_view.ensureCursorVisible()

    def _on_draft(self, report: Any) -> None:
        self.stream_view.hide()
        study = getattr(self, "_draft_study", self._report_key)
        kept = self._kept_measurements() if study == self._report_key else ""
        if kept:  # the clinician's measurements stay in Findings; the AI text around them stays flagged unreviewed
            from medapp.measurements import insert_into_findings

            report = insert_into_findings(report, kept, edited=False)
        if study != self._report_key:  # the image changed while the model wrote: file the draft with its study
            self._drafts[study] = report
            session = getattr(self._ctx, "session", None)
            if session is not None:
                session.set_report(report, study)
            self.status.setText("The draft is ready for the previous study; open that study to review it.")
            return
        self.set_report(report)
        n = len(kept.splitlines())
        self.status.setText("Draft ready. Review every section, then sign." + (
            f" Your {n} measurement line{'s' if n != 1 else ''} stayed in Findings." if n else ""))

    def _kept_measurements(self) -> str:
        """Measurement lines the current Findings holds (`measurement_text`, set by the window, gives the document's
        measurements as Findings text); "" when there is no report or no provider."""
        from medapp.measurements import kept_measurement_lines

        provider = self.measurement_text
        if self.report is None or provider is None:
            return ""
        return kept_measurement_lines(self.report.text("findings"), provider())

    def _on_draft_finished(self) -> None:
        self._draft_job = None
        self.stream_view.hide()
        for key, editor in self._editors.items():
            editor.editor.setReadOnly(key in self._section_jobs)
        self._sync_state()

    def regenerate_section(self, key: str) -> JobHandle | None:
        """Ask again for section `key` only; on arrival only that section's text changes."""
        if self.report is None or self._draft_job is not None or key in self._section_jobs:
            return None
        model_input = self._ctx.current_model_input()
        if model_input is None:
            self.status.setText("Open an image first.")
            return None
        self.save_now()
        job = self._bridge.regenerate_section(model_input, self.report, key, self.indication.text().strip())
        job.succeeded.connect(lambda text, k=key, r=self.report, st=self._report_key: self._on_section(k, text, r, st))
        job.failed.connect(lambda f, k=key: self._on_failed(f"Regenerating “{k}” failed", f))
        job.finished.connect(lambda k=key: self._on_section_finished(k))
        self._section_jobs[key] = job
        self._editors[key].set_regenerating(True)
        self._sync_state()
        job.start()
        return job

    def _on_section(self, key: str, text: str, report: Any = None, study: str | None = None) -> None:
        if report is not None and report is not self.report:  # another study is shown now: update its own draft
            report.set_section(key, text)
            session = getattr(self._ctx, "session", None)
            if session is not None:
                session.set_report(report, study)
            return
        if self.report is None or key not in self._editors:
            return
        self.report.set_section(key, text)  # only this section: others keep their (possibly edited) text
        self._editors[key].set_text(text)
        self.save_now()
        self.status.setText(f"“{self.report.section(key).title}” regenerated.")
        self._sync_state()
        self.report_changed.emit(self.report)

    def _on_section_finished(self, key: str) -> None:
        self._section_jobs.pop(key, None)
        if key in self._editors:
            self._editors[key].set_regenerating(False)
        self._sync_state()

    def stop(self) -> None:
        if self._draft_job is not None:
            self._draft_job.cancel()
        for job in self._section_jobs.values():
            job.cancel()
        self.stop_button.setEnabled(False)

    def _on_failed(self, title: str, failure: Any) -> None:
        self.status.setText(f"{title}; see the message.")
        self.last_error_box = show_worker_error(self, title, failure)

    # -- sign --------------------------------------------------------------------------------------------------
    def _clinician_name(self) -> str | None:
        settings = getattr(self._ctx, "settings", None)
        name = (getattr(settings, "clinician_name", "") or "").strip()
        if name:
            return name
        name, ok = QInputDialog.getText(self, "Sign report", "Your name as it should appear on the report:")
        return name.strip() if ok and name.strip() else None

    def open_signoff(self) -> Any:
        """"Sign…": the modal-less confirmation dialog (what is signed, flags, typed name). Returns the dialog."""
        if self.report is None:
            return None
        from ui.dialogs.signoff import SignoffDialog

        if self.signoff_dialog is not None:
            self.signoff_dialog.close()
        self.save_now()
        settings = getattr(self._ctx, "settings", None)
        signer = (getattr(settings, "clinician_name", "") or "").strip()
        self.signoff_dialog = SignoffDialog(self.report, signer, self.sign_confirmed, self)
        self.signoff_dialog.show()
        return self.signoff_dialog

    def sign_confirmed(self, signer: str, typed_name: str) -> bool:
        """Sign as `signer` after the clinician typed `typed_name` (`medapp.signoff.sign_confirmed`: refuses empty
        Findings / Impression and a typed name that is not the signer's; audited)."""
        if self.report is None:
            return False
        from medapp.errors import UserError
        from medapp.reporting import ReportError
        from medapp.signoff import sign_confirmed

        report = self.report
        try:
            sign_confirmed(report, typed_name, signer, audit=getattr(self._ctx, "audit", None))
        except (ReportError, UserError) as exc:
            self.status.setText(f"Not signed: {exc}")
            self._on_failed("Cannot sign", exc)
            return False
        self.save_now()
        self.status.setText("Signed.")
        self._sync_state()
        self.report_changed.emit(report)
        return True

    def sign(self, name: str | None = None) -> bool:
        """Sign as `name` (default: the clinician in Settings, else asked) without the dialog — scripted use and
        tests; the name counts as confirmed, the sign-off rules (`medapp.signoff`) still apply."""
        if self.report is None:
            return False
        name = name or self._clinician_name()
        if not name:
            self.status.setText("Not signed: a name is needed.")
            return False
        from medapp.errors import UserError
        from medapp.reporting import ReportError
        from medapp.signoff import review_for_signing

        review = review_for_signing(self.report)
        if review.blocking:
            self._on_failed("Cannot sign", UserError("not signed: " + " ".join(review.blocking)))
            return False
        try:
            self._bridge.sign_report(self.report, name)
        except (ReportError, UserError) as exc:
            self._on_failed("Cannot sign", exc)
            return False
        self.save_now()
        self.status.setText("Signed.")
        self._sync_state()
        self.report_changed.emit(self.report)
        return True

    # -- export ------------------------------------------------------------------------------------------------
    def default_export_path(self, suffix: str) -> Path:
        """Where the save dialog starts: the last export folder (session) or home, and a file name that names the
        study (`report_<modality>_<studydate>_<short-uid>`), never the patient."""
        session = getattr(self._ctx, "session", None)
        folder = getattr(getattr(session, "state", None), "export_dir", None)
        base = Path(folder) if folder and Path(folder).is_dir() else Path.home()
        return base / default_export_name(self.report, suffix, self._view.document)

    def _ask_path(self, title: str, suffix: str, pattern: str) -> Path | None:
        start = str(self.default_export_path(suffix))
        path, _ = QFileDialog.getSaveFileName(self, title, start, pattern)
        if not path:
            return None
        path_obj = Path(path)
        return path_obj if path_obj.suffix.lower() == suffix else path_obj.with_suffix(suffix)

    def export_pdf(self, path: str | Path | None = None) -> JobHandle | None:
        """Render the report to a PDF in a worker (draft watermark unless signed; identifiers dropped when
        "De-identified" is ticked)."""
        if self.report is None:
            return None
        target = Path(path) if path is not None else self._ask_path("Export report PDF", ".pdf", "PDF (*.pdf)")
        if target is None:
            return None
        return self._export("pdf", target)

    def export_dicom(self, path: str | Path | None = None) -> JobHandle | None:
        """Write a DICOM Encapsulated PDF into the source study (de-identified when ticked), in a worker."""
        if self.report is None:
            return None
        target = Path(path) if path is not None else self._ask_path("Export DICOM PDF", ".dcm", "DICOM (*.dcm)")
        if target is None:
            return None
        return self._export("dicom", target)

    def _export(self, kind: str, target: Path) -> JobHandle | None:
        if not self.study_matches:
            self.status.setText("Not exported: this report belongs to another study than the image on screen.")
            return None
        self.save_now()
        source = None
        if kind == "dicom":  # the header of the image the draft came from (read in the worker), else what is shown
            source = self._source_input if self._source_input is not None else self._ctx.current_model_input()
        job = self._bridge.export_report(
            self.report, target, kind=kind, deidentified=self.deid_check.isChecked(), source=source
        )
        job.succeeded.connect(lambda p, k=kind: self._on_exported(k, Path(p)))
        job.failed.connect(lambda f: self._on_failed("Export failed", f))
        job.finished.connect(self._sync_state)
        self.status.setText("Exporting…")
        job.start()
        return job

    def _on_exported(self, kind: str, path: Path) -> None:
        if kind == "pdf":
            self.last_pdf = path
        session = getattr(self._ctx, "session", None)
        if session is not None:
            try:
                session.set_export_dir(path.parent)
            except OSError:
                log.warning("could not remember the export folder")
        self.status.setText(f"Saved {path.name}" + (" (de-identified)" if self.deid_check.isChecked() else ""))
        self._sync_state()
        self.exported.emit(kind, path)

    def open_pdf(self) -> bool:
        """Open the last exported PDF in the system viewer."""
        if self.last_pdf is None or not self.last_pdf.exists():
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.last_pdf)))
