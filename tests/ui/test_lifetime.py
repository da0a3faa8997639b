"""Widgets are freed by reference counting alone, never left to Python's cyclic GC.

Why it matters: a Qt object caught in a reference cycle is destroyed whenever the cyclic GC next runs, on whatever
thread triggered the collection — often a worker thread — and destroying a QObject (its timers, its thread pool,
its child widgets) off the GUI thread crashes the process in QApplication::notify. The cycles came from children
holding their Qt parent (the bridge its context, the signature dialog its panel), from the context holding a
viewer's method and from closures over `self` on the context's signals.

Each test runs with the cyclic GC disabled: after close → deleteLater → dropping the last reference, the widget's
Python wrapper and its context must be gone (weak references dead) and a collection must find no Qt object.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QHBoxLayout, QWidget
from shiboken6 import Shiboken

from ui.context import AppContext


def _flush() -> None:
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _qt_objects_in_cycles() -> list[str]:
    """Names of the Qt classes a cyclic collection would find now (the objects are then freed, on this thread)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return sorted({type(o).__name__ for o in gc.garbage if isinstance(o, Shiboken.Object)} - {"QMetaObject"})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()


def _assert_freed_by_refcount(qtbot, build: Callable[[AppContext], QWidget],
                              use: Callable[[Any, QWidget, AppContext], None] | None = None) -> None:
    with _no_cyclic_gc():
        ctx = AppContext()
        widget = build(ctx)
        widget.resize(900, 700)
        widget.show()
        qtbot.waitExposed(widget)
        if use is not None:
            use(qtbot, widget, ctx)
        refs = {"widget": weakref.ref(widget), "context": weakref.ref(ctx)}
        name = type(widget).__name__
        widget.close()
        widget.deleteLater()
        _flush()
        del widget, ctx
        _flush()
        alive = [k for k, ref in refs.items() if ref() is not None]
        assert not alive, f"{name}: {alive} still alive without the cyclic GC (in a reference cycle)"
    assert _qt_objects_in_cycles() == [], f"{name} left Qt objects for the cyclic GC"


def _main_window(ctx: AppContext) -> QWidget:
    from ui.main_window import MainWindow

    return MainWindow(ctx)


def _image_viewer(ctx: AppContext) -> QWidget:
    from ui.viewer.image_viewer import ImageViewer

    return ImageViewer(ctx)


def _slide_viewer(ctx: AppContext) -> QWidget:
    from ui.viewer.slide_viewer import SlideViewer

    return SlideViewer(ctx)


def _chat(ctx: AppContext) -> QWidget:
    from ui.model_bridge import ModelBridge
    from ui.panels.chat import ChatPanel

    return ChatPanel(ctx, ModelBridge(ctx))


def _report(ctx: AppContext) -> QWidget:
    from ui.model_bridge import ModelBridge
    from ui.panels.report import ReportPanel

    return ReportPanel(ctx, ModelBridge(ctx))


def _slide_panel(ctx: AppContext) -> QWidget:
    from ui.model_bridge import ModelBridge
    from ui.panels.slide_description import SlideDescriptionPanel
    from ui.viewer.slide_viewer import SlideViewer

    box = QWidget()
    layout = QHBoxLayout(box)
    viewer = SlideViewer(ctx)
    layout.addWidget(viewer)
    layout.addWidget(SlideDescriptionPanel(ctx, ModelBridge(ctx), viewer))
    return box


def _status(ctx: AppContext) -> QWidget:
    from ui.status import StatusBar

    return StatusBar(ctx)


def _browser(ctx: AppContext) -> QWidget:
    from ui.browser import StudyBrowser

    return StudyBrowser(ctx.workers)


def _batch(ctx: AppContext) -> QWidget:
    from ui.dialogs.batch import BatchCaptionDialog
    from ui.model_bridge import ModelBridge

    return BatchCaptionDialog(ctx, ModelBridge(ctx))


@pytest.mark.parametrize("build", [_main_window, _image_viewer, _slide_viewer, _chat, _report, _slide_panel,
                                   _status, _browser, _batch],
                         ids=lambda f: f.__name__.strip("_"))
def test_widget_is_freed_by_refcount(qtbot, build):
    _assert_freed_by_refcount(qtbot, build)


def test_viewer_registered_as_the_model_input_is_freed(qtbot, example_ct):
    """The context asks the active viewer for the model input; it must not keep the viewer (and itself) alive."""
    from ui.main_window import open_job

    def use(qtbot, viewer, ctx):
        _, _, stack, setup = open_job(example_ct)
        viewer.set_stack(stack, setup)
        ctx.set_input_provider(viewer.model_input)
        qtbot.waitUntil(viewer.is_current, timeout=10000)
        assert ctx.current_model_input() is not None

    _assert_freed_by_refcount(qtbot, _image_viewer, use)


def test_window_that_opened_a_file_is_freed(qtbot, example_ct, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))

    def use(qtbot, window, ctx):
        window.open_paths([example_ct])
        qtbot.waitUntil(lambda: window.current_viewer is not None and window.is_settled(), timeout=20000)

    _assert_freed_by_refcount(qtbot, _main_window, use)


def test_report_panel_with_signature_dialog_is_freed(qtbot):
    """The signature dialog (a child of the panel) calls the panel back; it must not hold the panel strongly."""
    from reports.model import Report

    def use(qtbot, panel, ctx):
        report = Report(modality="CT")
        report.set_section("findings", "No focal lesion.")
        panel.set_report(report)
        panel.open_signoff()
        assert panel.signoff_dialog is not None

    _assert_freed_by_refcount(qtbot, _report, use)
