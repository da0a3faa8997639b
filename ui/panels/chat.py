"""The chat panel: questions about exactly the image (or region) on screen, answers streamed token by token.

What the panel owns is presentation only. The conversation lives in the session (through the bridge, keyed by
study and image, `medapp.conversations.conversation_key`), so switching images swaps the history, changing the
window, region or magnification keeps it, and nothing is lost when the window closes. Each turn is shown under a
line naming the view it was about (thumbnail, window, region), marked "on screen" when that is the current view.
Asking, or Esc in the panel, hands the keyboard back to the viewer (`focus_viewer`), so "1" applies a preset
instead of typing into the question. The model runs
in a worker (`ModelBridge.ask`); tokens arrive as queued signals and are appended at the end of the transcript, so
streaming costs one cursor insert per token. Stop sets the job's cancel event (the engine checks it before every
token) and the panel drops anything that still arrives, so the text stops at once.

Answers are always drawn as AI output: a coloured block with an "AI draft · not reviewed" label naming the model,
so a screenshot of the panel can never pass for a clinician's words.
"""

from __future__ import annotations

import hashlib
import html
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from ui.model_bridge import ChatTurn, JobHandle, ModelBridge
from ui.widgets.errors import show_worker_error
from ui.widgets.images import thumbnail_pixmap

__all__ = ["ChatPanel"]

THUMB_PX = 112
AI_LABEL = "AI output · not reviewed"
_AI_STYLE = "background:#fff4e0; border-left:4px solid #d98c00; padding:4px;"
_THUMB_SCHEME = "turnthumb"  # <img src="turnthumb:<hash>">: a turn's thumbnail, served by _Transcript


class _Transcript(QTextBrowser):
    """The transcript, serving the turns' thumbnails (`images`, by content hash) to its HTML."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images: dict[str, QImage] = {}

    def loadResource(self, kind: int, url: QUrl | str) -> Any:  # noqa: N802 (Qt override)
        url = QUrl(url)
        if url.scheme() == _THUMB_SCHEME:
            return self.images.get(url.path(), QImage())
        return super().loadResource(kind, url)


def _describe_input(model_input: Any, size: tuple[int, int] | None = None) -> str:
    """One line about what the model is given: the viewer's description, the region and the pixel size."""
    parts = [str(getattr(model_input, "description", "") or "image")]
    region = getattr(model_input, "region", None)
    if region is not None:
        x, y, w, h = (int(v) for v in region)
        if f"{w}×{h}" not in parts[0]:  # both viewers' descriptions name their region already: not twice
            parts.append(f"region {w}×{h} at ({x}, {y})")
    if size is not None:
        parts.append(f"{size[0]}×{size[1]} px")
    return " · ".join(parts)


def _identity(model_input: Any) -> tuple[Any, ...]:
    """Which image an input shows, without reading anything: the same identity means the same conversation."""
    return (getattr(model_input, "kind", None), str(getattr(model_input, "source", None)),
            getattr(model_input, "frame", None))


def _thumb_name(png: bytes) -> str:
    return hashlib.sha1(png, usedforsecurity=False).hexdigest()[:16]


class ChatPanel(QWidget):
    """Question box, streamed transcript, Stop, Copy, "Ask about region", and a thumbnail of the model's input.

    `ctx` is the app context (`current_model_input(use_region=...)`, signal `current_input_changed`); `bridge` runs
    the model jobs and keeps the per-image history. Signals: `answer_finished(key, ChatTurn)` after every answer
    (stopped ones included), `busy_changed(bool)`.
    """

    answer_finished = Signal(str, object)
    busy_changed = Signal(bool)
    focus_viewer = Signal()  # after asking and on Esc: the window gives the keyboard back to the viewer

    def __init__(self, ctx: Any, bridge: ModelBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self._bridge = bridge
        self._job: JobHandle | None = None
        self._job_input: Any = None
        self.sent_image: Any = None  # the exact PIL image the model was given for the last question
        self._sent_pixels: str | None = None  # content hash of the last input sent
        self._sent_thumb: Any = None
        self._sent_view_id = ""  # cheap identity of the view last sent (no pixels), when the viewer gives one
        self._preview_serial = 0
        self._preview_pending = False
        self._preview_job: JobHandle | None = None
        self._shown_key: str | None = None  # the conversation on screen (study and image)
        self._shown_pixels: str | None = None  # the view previewed last (its turns are marked "on screen")
        self._shown_identity: tuple[Any, ...] | None = None  # (kind, source, frame) of the conversation on screen
        self.last_error_box = None
        self._asked_text = ""
        self._build()
        signal = getattr(ctx, "current_input_changed", None)
        if signal is not None:
            signal.connect(self.refresh_input)
        self.refresh_input()

    # -- layout ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.thumbnail = QLabel(objectName="chatThumbnail")
        self.thumbnail.setFixedSize(THUMB_PX, THUMB_PX)
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setStyleSheet("background:#111; color:#aaa; border:1px solid #444;")
        self.input_label = QLabel(objectName="chatInputLabel")
        self.input_label.setWordWrap(True)
        self.region_check = QCheckBox("Ask about region", objectName="chatRegionCheck")
        self.region_check.setToolTip("Send only the rectangle drawn on the image instead of the whole view")
        self.region_check.toggled.connect(lambda _=False: self.refresh_input())
        side = QVBoxLayout()
        side.addWidget(self.input_label)
        side.addWidget(self.region_check)
        side.addStretch(1)
        header = QHBoxLayout()
        header.addWidget(self.thumbnail)
        header.addLayout(side, 1)

        self.transcript = _Transcript()
        self.transcript.setObjectName("chatTranscript")
        self.transcript.setOpenExternalLinks(False)
        self.transcript.setPlaceholderText("Ask a question about the image on screen.")

        self.question = QLineEdit(objectName="chatQuestion")
        self.question.setPlaceholderText("Question about this image… (Enter to ask)")
        self.question.returnPressed.connect(self.ask)
        self.ask_button = QPushButton("Ask", objectName="chatAsk")
        self.ask_button.clicked.connect(self.ask)
        self.stop_button = QPushButton("Stop", objectName="chatStop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.copy_button = QPushButton("Copy", objectName="chatCopy")
        self.copy_button.setToolTip("Copy the last answer (with its AI label) to the clipboard")
        self.copy_button.clicked.connect(self.copy_last_answer)
        row = QHBoxLayout()
        row.addWidget(self.question, 1)
        row.addWidget(self.ask_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.copy_button)

        self.status = QLabel(objectName="chatStatus")
        self.status.setStyleSheet("color:#666;")

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.question.installEventFilter(self)
        self.transcript.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """Esc in the question box or the transcript: back to the viewer (the question text stays)."""
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ):
            self.focus_viewer.emit()
            return True
        return super().eventFilter(watched, event)

    # -- input and history -------------------------------------------------------------------------------------
    def _current_input(self) -> Any:
        """The context's current input; with "Ask about region" unticked, the whole view instead of the ROI."""
        if self.region_check.isEnabled() and not self.region_check.isChecked():
            return self._ctx.current_model_input(use_region=False)
        return self._ctx.current_model_input()

    def refresh_input(self, *_: Any) -> None:
        """Re-read the current input: offer "Ask about region" only when an ROI exists, preview what would be sent
        and show the history of that image (unless an answer is still streaming into the transcript)."""
        roi_input = self._ctx.current_model_input()
        has_region = roi_input is not None and getattr(roi_input, "region", None) is not None
        choosable = has_region  # every input provider can give the whole view instead (`use_region=False`)
        if choosable != self.region_check.isEnabled() or has_region != self.region_check.isChecked() and not choosable:
            self.region_check.blockSignals(True)
            self.region_check.setEnabled(choosable)
            self.region_check.setChecked(has_region)  # a freshly drawn ROI is what the user means to ask about
            self.region_check.blockSignals(False)
        model_input = roi_input if (not has_region or self.region_check.isChecked()) else self._current_input()
        self.ask_button.setEnabled(model_input is not None and not self.is_busy)
        if self.is_busy:
            return
        if model_input is None:
            self.thumbnail.clear()
            self.thumbnail.setText("no image")
            self.input_label.setText("Open an image to ask about it.")
            self._shown_key = None
            self._shown_identity = None
            self._preview_pending = False
            self.transcript.clear()
            return
        # Rendering and hashing the pixels can take long (slides, large photos): done in a worker, shown when ready.
        view_id = getattr(model_input, "view_id", "")
        verb = "Sent to the model" if view_id and view_id == self._sent_view_id else "Will be sent to the model"
        self.input_label.setText(f"{verb}: {_describe_input(model_input)}")
        self._preview_serial += 1
        self._preview_pending = True
        if self._preview_job is not None:
            self._preview_job.cancel()  # superseded: skipped if its worker has not started yet
        job = self._bridge.preview(model_input)
        job.succeeded.connect(lambda result, n=self._preview_serial, m=model_input: self._on_preview(n, m, *result))
        job.failed.connect(lambda failure: isValid(self)
                           and self.input_label.setText(f"Cannot render the image: {failure.message}"))
        job.finished.connect(lambda j=job: self._preview_job is j and setattr(self, "_preview_job", None))
        self._preview_job = job
        job.start()

    def _on_preview(
        self, serial: int, model_input: Any, key: str, pixels: str, thumb: Any, size: tuple[int, int]
    ) -> None:
        if not isValid(self):
            return  # the panel was closed while the preview rendered (lambdas are not disconnected by Qt)
        if serial != self._preview_serial or self.is_busy:
            return  # a newer view (or a question) superseded this preview
        self._preview_pending = False
        if pixels == self._sent_pixels and self._sent_thumb is not None:
            self._show_thumbnail(model_input, self._sent_thumb, size, "Sent to the model")
        else:
            self._show_thumbnail(model_input, thumb, size, "Will be sent to the model")
        self._shown_identity = _identity(model_input)
        if key != self._shown_key or pixels != self._shown_pixels:  # same conversation: only the "on screen" marks
            self._shown_key = key
            self._shown_pixels = pixels
            self._render_history(key)

    def _show_thumbnail(self, model_input: Any, thumb: Any, size: tuple[int, int], verb: str) -> None:
        self.thumbnail.setPixmap(thumbnail_pixmap(thumb, THUMB_PX - 4))
        text = f"{verb}: {_describe_input(model_input, size)}"
        self.input_label.setText(text)
        self.thumbnail.setToolTip(text)

    def _render_history(self, key: str) -> None:
        turns = self._bridge.chat_history(key, self._shown_pixels)
        images: dict[str, QImage] = {}
        for turn in turns:
            png = turn.view.thumbnail if turn.view is not None else b""
            if png:
                images.setdefault(_thumb_name(png), QImage.fromData(png, "PNG"))
        self.transcript.images = images
        self.transcript.setHtml("".join(self._turn_html(turn) for turn in turns))
        self.transcript.moveCursor(QTextCursor.MoveOperation.End)

    def _view_html(self, turn: ChatTurn) -> str:
        """The line above a turn naming the view it was about: thumbnail, description (window, region,
        magnification), time; "on screen" when that view is the one previewed now."""
        view = turn.view
        if view is None:
            return ""
        cells = ""
        image = self.transcript.images.get(_thumb_name(view.thumbnail)) if view.thumbnail else None
        if image is not None and not image.isNull():
            src = f"{_THUMB_SCHEME}:{_thumb_name(view.thumbnail)}"
            cells += f"<td width='{image.width()}'><img src='{src}' width='{image.width()}' height='{image.height()}'></td>"
        here = " · <b style='color:#2a7a2a;'>on screen</b>" if view.pixels and view.pixels == self._shown_pixels else ""
        when = f"<br>{html.escape(turn.when.replace('T', ' ')[:19])}" if turn.when else ""
        cells += (f"<td style='color:#555; font-size:small;'>About: {html.escape(view.summary())}{here}{when}</td>")
        return f"<table cellpadding='2' style='margin-top:10px;'><tr>{cells}</tr></table>"

    @staticmethod
    def _question_html(question: str) -> str:
        return f"<p style='margin:8px 0 2px 0; white-space:pre-wrap;'><b>You:</b> {html.escape(question)}</p>"

    @staticmethod
    def _ai_header_html(model: str) -> str:
        who = f" · {html.escape(model)}" if model else ""
        return f"<p style='margin:0; color:#9a5b00; font-size:small;'><b>{AI_LABEL}</b>{who}</p>"

    def _turn_html(self, turn: ChatTurn) -> str:
        answer = html.escape(turn.answer)  # pre-wrap below keeps tabs, runs of spaces and newlines as generated
        note = " <i style='color:#b00;'>[stopped]</i>" if turn.stopped else ""
        return (
            self._view_html(turn)
            + self._question_html(turn.question)
            + f"<table width='100%' cellpadding='4'><tr><td style='{_AI_STYLE}'>"
            + self._ai_header_html(turn.model)
            + f"<p style='margin:2px 0; white-space:pre-wrap;'>{answer}{note}</p></td></tr></table>"
        )

    # -- asking ------------------------------------------------------------------------------------------------
    @property
    def is_busy(self) -> bool:
        return self._job is not None

    def ask(self, question: str | None = None) -> JobHandle | None:
        """Send `question` (default: the text in the box) about the current input; returns the running job."""
        text = (question if isinstance(question, str) else self.question.text()).strip()
        if not text or self.is_busy:
            return None
        model_input = self._current_input()
        if model_input is None:
            self.status.setText("Open an image first.")
            return None
        self._asked_text = text  # put back into the box if the question fails: typed work is never lost
        self.question.clear()
        if self._preview_pending:  # the view changed and its preview has not come back yet
            self._preview_serial += 1
            self._preview_pending = False
            if _identity(model_input) != self._shown_identity:  # another image: its conversation is not known yet
                self._shown_key = None
                self._shown_identity = None
                self.transcript.clear()
        self._job_input = model_input
        self._sent_view_id = getattr(model_input, "view_id", "")
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml(self._question_html(text))
        cursor.insertBlock()
        cursor.insertHtml(self._ai_header_html(self._bridge.model_label()))
        cursor.insertBlock()
        self.transcript.setTextCursor(cursor)

        job = self._bridge.ask(model_input, text)
        job.token.connect(self._on_token)
        job.progress.connect(self._on_progress)
        job.succeeded.connect(self._on_done)
        job.cancelled.connect(self._on_done)
        job.failed.connect(self._on_failed)
        job.finished.connect(lambda j=job: self._on_finished(j))
        self._job = job
        self._set_busy(True)
        loaded = getattr(getattr(self._ctx, "model", None), "engine", None) is not None
        self.status.setText("Generating…" if loaded else "Loading the model (first question only), then answering…")
        job.start()
        self.focus_viewer.emit()  # the keyboard goes back to the image: "1" applies a preset, not a digit
        return job

    def stop(self) -> None:
        """Stop the running answer: the engine stops before its next token; what was streamed is kept, marked."""
        if self._job is not None:
            self._job.cancel()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping…")

    def _on_token(self, text: str) -> None:
        if self._job is None or self._job.is_cancelled:
            return
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.transcript.setTextCursor(cursor)
        self.transcript.ensureCursorVisible()

    def _on_progress(self, event: Any) -> None:
        if isinstance(event, tuple) and len(event) == 3 and event[0] == "input" and self._job_input is not None:
            _, self.sent_image, self._sent_thumb = event
            self._show_thumbnail(self._job_input, self._sent_thumb, self.sent_image.size, "Sent to the model")

    def _on_done(self, result: Any) -> None:
        if self._job is None:
            return
        if result is None:  # stopped before the model started: nothing was asked, nothing is kept
            self._on_nothing_asked()
            return
        key, turn = result
        self._sent_pixels = turn.view.pixels if turn.view is not None else None
        self._shown_key = key
        self._shown_identity = _identity(self._job_input)
        self._shown_pixels = self._sent_pixels
        self._render_history(key)
        self._settle("Stopped." if turn.stopped else "Done.")
        self.answer_finished.emit(key, turn)  # after the panel is idle again, so listeners see a settled panel

    def _on_failed(self, failure: Any) -> None:
        if not self.question.text().strip():
            self.question.setText(self._asked_text)
        self._on_nothing_asked("The model failed; see the message. Your question is back in the box.")
        self.last_error_box = show_worker_error(self, "Question failed", failure)

    def _on_nothing_asked(self, status: str = "Stopped before the model started.") -> None:
        """Drop the pending question and any half-streamed answer: the history holds no failed turns."""
        if self._shown_key is not None:
            self._render_history(self._shown_key)
        else:
            self.transcript.clear()
        self._settle(status)

    def _settle(self, status: str) -> None:
        """Back to idle as soon as the outcome is known (`finished` follows right after, and changes nothing)."""
        self._job = None
        self._job_input = None
        self._set_busy(False)
        self.status.setText(status)

    def _on_finished(self, job: JobHandle) -> None:
        if self._job is job:  # no outcome signal (cannot happen with JobHandle, but never stay busy)
            self._settle("Stopped.")
        if self._job is None:
            self.refresh_input()

    def _set_busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)
        self.ask_button.setEnabled(not busy)
        self.busy_changed.emit(busy)

    # -- copy --------------------------------------------------------------------------------------------------
    def last_answer(self) -> ChatTurn | None:
        if self._shown_key is None:
            return None
        turns = self._bridge.chat_history(self._shown_key, self._shown_pixels)
        return turns[-1] if turns else None

    def copy_last_answer(self) -> str:
        """Put the last answer on the clipboard, labelled as AI output so a paste elsewhere stays marked."""
        turn = self.last_answer()
        if turn is None:
            return ""
        model = f", {turn.model}" if turn.model else ""
        about = f"\nAbout: {turn.view.summary()}" if turn.view is not None else ""
        text = f"[{AI_LABEL}{model}]{about}\nQ: {turn.question}\nA: {turn.answer}"
        QGuiApplication.clipboard().setText(text)
        self.status.setText("Answer copied.")
        return text
