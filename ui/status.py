"""Status bar widgets: model state (not configured / loading / ready on CUDA 4-bit / CPU), GPU memory, busy work.

GPU memory is read from torch only when the engine runs on CUDA (torch is then already imported), on a slow timer;
the window never imports torch for the status bar.
"""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from ui.context import AppContext, ModelState, ModelStatus

__all__ = ["StatusBar", "gpu_memory_text"]


def gpu_memory_text() -> str:
    """ "GPU 5.1/24.0 GB" when torch is loaded and CUDA is in use, else "" (never imports torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return ""
        free, total = torch.cuda.mem_get_info()
        return f"GPU {(total - free) / 1e9:.1f}/{total / 1e9:.1f} GB"
    except Exception:  # noqa: BLE001 — a driver hiccup must not break the status bar
        return ""


class StatusBar(QStatusBar):
    """Messages on the left; cursor value, running jobs, model state and GPU memory on the right."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.cursor_label = QLabel()
        self.busy_label = QLabel()
        self.model_label = QLabel()
        self.gpu_label = QLabel()
        for label in (self.cursor_label, self.busy_label, self.model_label, self.gpu_label):
            self.addPermanentWidget(label)
        self.gpu_label.hide()
        context.model.status_changed.connect(self.show_model_status)
        context.workers.busy_changed.connect(self._busy)
        # a bound method, not a lambda: a lambda on the context's signal would hold this widget as long as the context
        context.status_message.connect(self._show_message)
        self._gpu_timer = QTimer(self)
        self._gpu_timer.setInterval(2000)
        self._gpu_timer.timeout.connect(self._update_gpu)
        self.show_model_status(context.model.status)

    def _show_message(self, text: str) -> None:
        self.showMessage(text, 6000)

    def show_model_status(self, status: ModelStatus) -> None:
        self.model_label.setText(status.text())
        self.model_label.setToolTip(status.error or status.extra.get("hint") or status.text())
        on_cuda = status.state is ModelState.READY and status.detail.upper().startswith("CUDA")
        if on_cuda:
            self._gpu_timer.start()
            self._update_gpu()
        else:
            self._gpu_timer.stop()
            self.gpu_label.hide()

    def _update_gpu(self) -> None:
        text = gpu_memory_text()
        self.gpu_label.setText(text)
        self.gpu_label.setVisible(bool(text))

    def _busy(self, count: int) -> None:
        self.busy_label.setText(f"{count} task(s) running" if count else "")

    def set_cursor_text(self, text: Any) -> None:
        self.cursor_label.setText(str(text))
