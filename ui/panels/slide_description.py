"""Slide description panel: "Describe slide" for the open slide, a heat-map overlay and numbered regions to visit.

The work is the core's `medapp.slide_level.job.describe_slide` (tissue tiles scored against the overview with the
model's own vision tower, the top regions captioned in full, one description citing them), run in a worker through
the model bridge, with progress (tiles scored, regions captioned) and Cancel. Results live in the app data folder
under the slide's fingerprint, so reopening a slide shows its description at once and a second run costs nothing.

On the slide viewer the panel adds two layers (`SlideOverlay`, plain scene items, nothing in the viewer changes): the
score heat map (a toggle) and the numbered region boxes. Clicking a region in the list — or a citation "[n]" in the
description — centres the viewer on that region at the magnification it was read at. The description is always
shown under an "AI DRAFT — not reviewed" label.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import QBrush, QColor, QFont, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ui.viewer.qimage import pil_to_qimage

__all__ = ["SlideDescriptionPanel", "SlideOverlay", "describe_payload"]

DRAFT_LABEL = "AI DRAFT — not reviewed"
MAGNIFICATIONS = (5.0, 10.0, 20.0, 40.0)
OVERLAY_SIDE = 1024  # heat-map layer resolution (longest side), like the viewer's thumbnail
BOX_COLOUR = QColor(230, 30, 30)


def describe_payload(folder: Path, status: str = "done") -> dict[str, Any] | None:
    """Worker side: slide.json + the score layer (PIL RGBA) for the panel, or None when nothing is saved."""
    from medapp.slide_level.heatmap import score_overlay
    from medapp.slide_level.job import load_result, load_scores

    result = load_result(folder)
    if result is None:
        return None
    size0 = (int(result["slide"]["width"]), int(result["slide"]["height"]))
    scale = OVERLAY_SIDE / max(size0)
    layer_size = (max(1, round(size0[0] * scale)), max(1, round(size0[1] * scale)))
    boxes, scores = load_scores(folder, result)
    layer = score_overlay(layer_size, size0, boxes, scores, alpha=140)
    return {"result": result, "overlay": pil_to_qimage(layer), "status": status, "folder": folder}


class SlideOverlay:
    """Heat map and numbered boxes as items on a `SlideViewer`'s scene (level-0 coordinates)."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.heat: QGraphicsPixmapItem | None = None
        self.items: list[QGraphicsItem] = []

    def clear(self) -> None:
        scene = self.viewer.scene()
        for item in ([self.heat] if self.heat is not None else []) + self.items:
            scene.removeItem(item)
        self.heat, self.items = None, []
        self.viewer.viewport().update()

    def show(self, overlay: Any, size0: tuple[int, int], regions: list[dict[str, Any]], heat_visible: bool) -> None:
        self.clear()
        scene = self.viewer.scene()
        pixmap = QPixmap.fromImage(overlay)
        self.heat = QGraphicsPixmapItem(pixmap)
        self.heat.setScale(size0[0] / max(1, pixmap.width()))
        self.heat.setZValue(5)  # over the tiles (z 0.5 / 1), under the ROI (z 10)
        self.heat.setVisible(heat_visible)
        scene.addItem(self.heat)
        pen = QPen(BOX_COLOUR, 2.5)
        pen.setCosmetic(True)  # the same on-screen width at every zoom
        font = QFont()
        font.setBold(True)
        font.setPointSize(11)
        for region in regions:
            x, y, w, h = region["box"]
            rect = QGraphicsRectItem(QRectF(x, y, w, h))
            rect.setPen(pen)
            rect.setZValue(11)
            label = QGraphicsSimpleTextItem(str(region["number"]))
            label.setFont(font)
            label.setBrush(QBrush(BOX_COLOUR))
            label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setPos(x + w, y)
            label.setZValue(12)
            for item in (rect, label):
                scene.addItem(item)
                self.items.append(item)
        self.viewer.viewport().update()

    def set_heat_visible(self, on: bool) -> None:
        if self.heat is not None:
            self.heat.setVisible(on)
            self.viewer.viewport().update()


class SlideDescriptionPanel(QWidget):
    """Describe the slide on screen; list its regions; show the cited description. `set_document` follows the
    window's `document_shown`."""

    def __init__(self, context: Any, bridge: Any, viewer: Any, parent: QWidget | None = None,
                 settings: Any = None) -> None:
        super().__init__(parent)
        self.context = context
        self.bridge = bridge
        self.viewer = viewer
        self.settings = settings  # medapp.slide_level.SlideLevelSettings or None for the defaults
        self.slide: Any = None
        self.payload: dict[str, Any] | None = None
        self.handle: Any = None
        self.overlay = SlideOverlay(viewer)

        self.describe_button = QPushButton("Describe slide")
        self.describe_button.setToolTip("Score the tissue against the overview, read the top regions and write a "
                                        "description that cites them (AI draft)")
        self.cancel_button = QPushButton("Cancel")
        from medapp.slide_level.settings import SlideLevelSettings

        defaults = settings or SlideLevelSettings()
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 32)
        self.top_k.setValue(defaults.top_k)
        self.top_k.setPrefix("regions ")
        self.top_k.setToolTip("How many regions are read in full")
        self.magnification = QComboBox()
        for mag in sorted(set(MAGNIFICATIONS) | {float(defaults.magnification)}):
            self.magnification.addItem(f"{mag:g}×", mag)
        self.magnification.setCurrentIndex(self.magnification.findData(float(defaults.magnification)))
        self.magnification.setToolTip("Objective magnification the candidate tiles are read at")
        self.heat_toggle = QCheckBox("Heat map")
        self.heat_toggle.setChecked(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.stage = QLabel("Open a whole-slide image to describe it.")
        self.stage.setWordWrap(True)
        self.regions = QListWidget()
        self.regions.setWordWrap(True)
        self.regions.setToolTip("Click a region to centre the slide on it at its magnification")
        self.description = QTextBrowser()
        self.description.setOpenLinks(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.describe_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.top_k)
        buttons.addWidget(self.magnification)
        buttons.addStretch(1)
        buttons.addWidget(self.heat_toggle)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.regions)
        split.addWidget(self.description)
        split.setSizes([220, 320])
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage)
        layout.addWidget(split, 1)

        self.describe_button.clicked.connect(self.describe)
        self.cancel_button.clicked.connect(self.cancel)
        self.heat_toggle.toggled.connect(self.overlay.set_heat_visible)
        self.regions.itemClicked.connect(lambda item: self.go_to_region(int(item.data(Qt.ItemDataRole.UserRole))))
        self.description.anchorClicked.connect(self._anchor)
        self._sync()

    # --- state ------------------------------------------------------------------------------------------------
    def _sync(self) -> None:
        running = self.handle is not None and self.handle.is_running
        self.describe_button.setEnabled(self.slide is not None and not running)
        self.top_k.setEnabled(not running)
        self.magnification.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.heat_toggle.setEnabled(self.payload is not None)

    def set_document(self, opened: Any) -> None:
        """The window shows `opened`: a slide enables Describe and shows its saved description, if any."""
        if self.handle is not None and self.handle.is_running:
            self.handle.cancel()
        self.overlay.clear()
        self.payload = None
        self.regions.clear()
        self.description.clear()
        self.progress.reset()
        is_slide = getattr(opened, "kind", "") == "slide"
        self.slide = opened if is_slide else None
        self.stage.setText("Describe the slide to find the regions worth reading." if is_slide
                           else "Open a whole-slide image to describe it.")
        self._sync()
        if is_slide:
            self._start(load_only=True)

    # --- jobs -------------------------------------------------------------------------------------------------
    def describe(self) -> None:
        """Run (or resume) the description of the slide on screen in a worker."""
        if self.slide is not None:
            self._start(load_only=False)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.stage.setText("Cancelling… (finished steps are kept; Describe continues from them)")

    def _start(self, *, load_only: bool) -> None:
        from medapp.slide_level.settings import SlideLevelSettings

        path = Path(self.slide.path)
        settings = (self.settings or SlideLevelSettings()).updated(
            top_k=self.top_k.value(), magnification=float(self.magnification.currentData()))
        audit = getattr(self.context, "audit", None)
        loader = self.bridge.engine_loader()  # the bridge's own "load on first use" rule

        def job(on_token: Any, progress: Any, cancel: Any) -> dict[str, Any] | None:
            from medapp.slide_level.job import default_output_folder, describe_slide

            folder = default_output_folder(path)
            if load_only:
                payload = describe_payload(folder, "saved")
            else:
                engine = self.bridge.engine(loader)
                outcome = describe_slide(engine, path, folder, settings=settings, on_progress=progress, cancel=cancel,
                                         audit=audit)
                payload = describe_payload(folder, outcome.status)
            return None if payload is None else {**payload, "slide_path": path}

        handle = self.bridge.make_job("Load slide description" if load_only else "Describe slide", job)
        handle.progress.connect(self._progress)
        handle.succeeded.connect(self._done)
        handle.cancelled.connect(self._done)
        handle.failed.connect(self._failed)
        handle.finished.connect(self._sync)
        self.handle = handle
        handle.start()
        if not load_only:
            self.stage.setText("Starting… (the model loads on first use)")
            self.progress.setRange(0, 0)
        self._sync()

    def _progress(self, p: Any) -> None:
        if not hasattr(p, "done"):
            return
        self.progress.setRange(0, max(1, int(p.total)))
        self.progress.setValue(int(p.done))
        self.progress.setFormat(f"{p.item}: %v / %m")
        self.stage.setText(f"{p.item}: {p.done} of {p.total}")

    def _failed(self, failure: Any) -> None:
        self.progress.setRange(0, 1)
        self.progress.reset()
        self.stage.setText(f"Could not describe the slide: {getattr(failure, 'message', failure)}")

    def _done(self, payload: Any) -> None:
        self.progress.setRange(0, 1)
        if not payload:
            if self.handle is not None and self.handle.is_cancelled:
                self.stage.setText("Cancelled. Describe continues from the finished steps.")
            return
        if self.slide is None or Path(self.slide.path) != payload.get("slide_path"):
            return  # another document is on screen now: this result belongs to the slide that was closed
        self.show_payload(payload)

    # --- results ----------------------------------------------------------------------------------------------
    def show_payload(self, payload: dict[str, Any]) -> None:
        result = payload["result"]
        complete = bool(result.get("complete"))
        self.payload = payload
        size0 = (int(result["slide"]["width"]), int(result["slide"]["height"]))
        regions = result.get("regions", [])
        self.overlay.show(payload["overlay"], size0, regions, self.heat_toggle.isChecked())
        self.regions.clear()
        for region in regions:
            caption = region.get("caption") or "(not captioned yet)"
            item = QListWidgetItem(f"[{region['number']}]  {region['magnification']:g}×  score {region['score']:.3g}\n"
                                   f"{caption}")
            item.setData(Qt.ItemDataRole.UserRole, region["number"])
            self.regions.addItem(item)
        self.description.setHtml(self._description_html(result))
        self.progress.setValue(1 if complete else 0)
        status = payload.get("status")
        if complete:
            self.stage.setText(f"{len(regions)} regions; click one (or a citation) to go there.")
        elif status == "cancelled":
            self.stage.setText("Cancelled. Describe continues from the finished steps.")
        else:
            self.stage.setText("Unfinished description; Describe continues it.")
        self._sync()

    @staticmethod
    def _description_html(result: dict[str, Any]) -> str:
        desc = result.get("description") or {}
        parts = [f'<p style="color:#b71c1c; font-weight:bold">{html.escape(DRAFT_LABEL)}</p>']
        text = desc.get("text")
        if not text:
            parts.append("<p><i>No description yet.</i></p>")
            return "".join(parts)
        linked = re.sub(r"\[(\d+)\]", r'<a href="region:\1">[\1]</a>', html.escape(text))
        parts.append(f'<p style="background:#fff4e0; padding:4px">{linked}</p>')
        if desc.get("invalid_citations"):
            cites = ", ".join(f"[{n}]" for n in desc["invalid_citations"])
            parts.append(f'<p style="color:#9b1c1c">Citations of regions that do not exist were removed: {cites}</p>')
        if desc.get("uncited_sentences"):
            parts.append(f'<p style="color:#9b1c1c">{desc["uncited_sentences"]} sentence(s) cite no region.</p>')
        return "".join(parts)

    def _anchor(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith("region:") and text[7:].isdigit():
            self.go_to_region(int(text[7:]))

    def go_to_region(self, number: int) -> None:
        """Centre the viewer on region `number` at the magnification it was read at."""
        if self.payload is None:
            return
        region = next((r for r in self.payload["result"].get("regions", []) if r["number"] == number), None)
        if region is None:
            return
        x, y, w, h = region["box"]
        self.viewer.set_magnification(float(region["magnification"]))
        self.viewer.center_on(QPointF(x + w / 2, y + h / 2))
