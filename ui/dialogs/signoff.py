"""The sign-off confirmation: what will be signed, what is missing, and the clinician's typed name.

Modal-less (the clinician may scroll the image while reading it). The rules are `medapp.signoff`'s: the dialog only
shows `review_for_signing` and enables "Sign" when nothing blocks and `names_match` holds; the signing itself is the
panel's `sign_confirmed` call (audited through `medapp.jobs.export.sign_report`).
"""

from __future__ import annotations

import html
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from medapp.signoff import SignoffReview, names_match, review_for_signing

__all__ = ["SignoffDialog"]

_FLAG_STYLE = "color:#9a5b00; font-weight:bold;"
_BLOCK_STYLE = "color:#b3261e; font-weight:bold;"


class SignoffDialog(QDialog):
    """Shows `report` for review; "Sign" calls `on_sign(signer_name, typed_name)`, which returns True on success."""

    def __init__(
        self,
        report: Any,
        signer: str,
        on_sign: Callable[[str, str], bool],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("signoffDialog")
        self.setWindowTitle("Sign report")
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self._report = report
        # the panel's method, held weakly: the panel holds this dialog (its child), so a strong reference back
        # would be a cycle that only Python's cyclic GC frees, on whatever thread it runs
        self._on_sign: Callable[[], Callable[..., Any] | None] = (
            weakref.WeakMethod(on_sign) if inspect.ismethod(on_sign) else lambda: on_sign
        )
        self.review: SignoffReview = review_for_signing(report)

        intro = QLabel(
            "You are signing the text below as the reporting clinician. Read every section; "
            "flagged sections need your attention."
        )
        intro.setWordWrap(True)
        self.problems = QLabel(objectName="signoffProblems")
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.TextFormat.RichText)
        self.problems.setText(self._problems_html())
        self.content = QTextBrowser(objectName="signoffContent")
        self.content.setHtml(self._content_html())
        self.content.setMinimumSize(520, 300)

        self.signer = QLineEdit(signer, objectName="signoffSigner")
        self.signer.setPlaceholderText("Your name as it appears on the report (Settings)")
        self.signer.setReadOnly(bool(signer.strip()))
        self.typed = QLineEdit(objectName="signoffTypedName")
        self.typed.setPlaceholderText("Type your name to confirm")
        form = QFormLayout()
        form.addRow("Signed by:", self.signer)
        form.addRow("Type your name:", self.typed)
        self.name_hint = QLabel(objectName="signoffNameHint")
        self.name_hint.setStyleSheet("color:#666;")

        self.buttons = QDialogButtonBox()
        self.sign_button = QPushButton("Sign", objectName="signoffSign")
        self.buttons.addButton(self.sign_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.sign_button.clicked.connect(self.sign)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.problems)
        layout.addWidget(self.content, 1)
        layout.addLayout(form)
        layout.addWidget(self.name_hint)
        layout.addWidget(self.buttons)
        self.signer.textChanged.connect(self._sync)
        self.typed.textChanged.connect(self._sync)
        self._sync()

    def _problems_html(self) -> str:
        # ✖ not ⛔: no font of a plain Linux desktop (DejaVu) has U+26D4, it drew an empty box before the one line
        # that matters most
        lines = [f'<div style="{_BLOCK_STYLE}">✖ {html.escape(b)}</div>' for b in self.review.blocking]
        lines += [f'<div style="{_FLAG_STYLE}">⚠ {html.escape(w)}</div>' for w in self.review.warnings]
        return "".join(lines) or '<div style="color:#1e6b34;">Every section has text and was reviewed.</div>'

    def _content_html(self) -> str:
        parts = []
        for s in self.review.sections:
            style = _BLOCK_STYLE if any(f.startswith("required") for f in s.flags) else _FLAG_STYLE
            flags = f' <span style="{style}">[{html.escape(", ".join(s.flags))}]</span>' if s.flags else ""
            body = html.escape(s.text).replace("\n", "<br>") if s.text.strip() else "<i>(empty)</i>"
            parts.append(f"<p><b>{html.escape(s.title)}</b>{flags}<br>{body}</p>")
        return "".join(parts)

    @property
    def name_ok(self) -> bool:
        return names_match(self.typed.text(), self.signer.text())

    def _sync(self) -> None:
        if not self.signer.text().strip():
            hint = "Enter your name as the signer, then type it again to confirm."
        elif self.typed.text().strip() and not self.name_ok:
            hint = "The typed name does not match the signer."
        else:
            hint = ""
        self.name_hint.setText(hint)
        self.sign_button.setEnabled(self.review.can_sign and self.name_ok)

    def sign(self) -> bool:
        if not self.sign_button.isEnabled():
            return False
        on_sign = self._on_sign()
        if on_sign is not None and on_sign(self.signer.text().strip(), self.typed.text()):
            self.accept()
            return True
        return False
