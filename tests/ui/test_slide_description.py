"""Slide description panel on the real core and the tiny golden model: Describe runs in a worker with progress and
Cancel (then resumes), the heat map is a toggle layer on the slide viewer, numbered boxes are drawn, and clicking a
region centres the viewer on it at its magnification. Saves artifacts/screenshots/slide_description.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QHBoxLayout, QWidget

from medapp.audit import AuditLog
from medapp.settings import Settings
from tests.medapp.test_slide_level import write_test_slide
from ui.context import AppContext
from ui.main_window import open_job
from ui.model_bridge import ModelBridge
from ui.panels.slide_description import DRAFT_LABEL, SlideDescriptionPanel
from ui.viewer.slide_viewer import SlideViewer


@pytest.fixture(scope="module")
def tiny_engine(v2_checkpoint):
    from medapp.model_holder import ModelHolder

    return ModelHolder(model_dir=v2_checkpoint, device="cpu").get()


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory) -> Path:
    return write_test_slide(tmp_path_factory.mktemp("slide_panel") / "synthetic.tif")


@pytest.fixture
def setup(qtbot, tmp_path, monkeypatch, tiny_engine, slide_path):
    from medapp.slide_level.settings import SlideLevelSettings

    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))
    ctx = AppContext(settings=Settings(max_new_tokens=8), audit=AuditLog(tmp_path / "audit.jsonl"))
    ctx.model.set_engine(tiny_engine)
    kind, _, slide, prepared = open_job(slide_path)
    assert kind == "slide"
    container = QWidget()
    layout = QHBoxLayout(container)
    viewer = SlideViewer(ctx)
    settings = SlideLevelSettings(top_k=4, caption_batch_size=2, caption_max_new_tokens=6,
                                  description_max_new_tokens=20, overview_side=512)
    panel = SlideDescriptionPanel(ctx, ModelBridge(ctx), viewer, settings=settings)
    layout.addWidget(viewer, 3)
    layout.addWidget(panel, 2)
    qtbot.addWidget(container)
    container.resize(1200, 640)
    container.show()
    qtbot.waitExposed(container)
    viewer.set_slide(slide, prepared)
    panel.set_document(slide)
    qtbot.waitUntil(lambda: not panel.handle.is_running, timeout=20000)  # the saved-result lookup: nothing yet
    yield panel, viewer, container
    viewer.shutdown()
    assert ctx.workers.shutdown(60000), "workers still running after the test"


def _run(qtbot, panel):
    seen = []
    original = panel._progress
    panel._progress = lambda p: (seen.append((p.item, p.done, p.total)), original(p))
    panel.describe()
    handle = panel.handle
    assert handle.is_running and not panel.describe_button.isEnabled() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not handle.is_running, timeout=240000)
    return seen


def test_cancel_then_describe_heat_map_and_go_to_region(qtbot, setup, screenshots, grab):
    panel, viewer, container = setup
    assert panel.regions.count() == 0 and panel.describe_button.isEnabled()

    panel.describe()
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.handle.is_running, timeout=120000)
    assert "ancel" in panel.stage.text() and panel.regions.count() == 0

    seen = _run(qtbot, panel)
    stages = {s for s, _, _ in seen}
    assert {"tiles scored", "regions captioned", "description"} <= stages
    assert max(d for s, d, t in seen if s == "regions captioned") == 4
    assert panel.regions.count() == 4
    assert DRAFT_LABEL in panel.description.toPlainText()
    assert panel.overlay.heat is not None and panel.overlay.heat.isVisible()
    assert len(panel.overlay.items) == 8  # 4 boxes + 4 numbers

    viewer.fit()
    qtbot.waitUntil(viewer.is_idle, timeout=20000)
    with_heat = grab(viewer)
    container.grab().save(str(screenshots / "slide_description.png"))
    panel.heat_toggle.setChecked(False)
    assert not panel.overlay.heat.isVisible()
    without = grab(viewer)
    assert (abs(with_heat.astype(int) - without.astype(int)).sum(axis=2) > 30).mean() > 0.05
    panel.heat_toggle.setChecked(True)

    region = panel.payload["result"]["regions"][2]
    panel.regions.itemClicked.emit(panel.regions.item(2))
    assert viewer.magnification == pytest.approx(region["magnification"])
    x, y, w, h = viewer.visible_rect()
    bx, by, bw, bh = region["box"]
    assert x <= bx + bw / 2 <= x + w and y <= by + bh / 2 <= y + h
    qtbot.waitUntil(viewer.is_idle, timeout=20000)
    container.grab().save(str(screenshots / "slide_description_region.png"))

    # reopening the slide shows the saved description without running the model
    panel.set_document(viewer.slide)
    qtbot.waitUntil(lambda: not panel.handle.is_running, timeout=20000)
    assert panel.regions.count() == 4 and panel.payload["status"] == "saved"

    # fewer regions from the panel's own control: the scores come from the cache, only the reading is redone
    assert panel.top_k.value() == 4 and panel.magnification.currentData() == 20.0
    panel.top_k.setValue(2)
    seen = _run(qtbot, panel)
    assert panel.regions.count() == 2 and panel.payload["result"]["settings"]["top_k"] == 2
    assert all(done == total for stage, done, total in seen if stage == "tiles scored")  # nothing left to score
