"""Workers: results, progress and failures arrive as signals on the UI thread; cancel is cooperative."""

from __future__ import annotations

import threading

import pytest

from ui.workers import Cancelled, Worker, WorkerFailure, WorkerManager


@pytest.fixture
def manager(qtbot):
    m = WorkerManager()
    yield m
    assert m.shutdown(5000)


def test_result_and_progress_arrive_on_ui_thread(qtbot, manager):
    ui_thread = threading.get_ident()
    seen: list[tuple[str, object, bool]] = []

    def job(n: int, progress):
        for i in range(n):
            progress(i)
        return threading.get_ident()

    worker = Worker(job, 3)
    worker.signals.progress.connect(lambda v: seen.append(("progress", v, threading.get_ident() == ui_thread)))
    worker.signals.result.connect(lambda v: seen.append(("result", v != ui_thread, threading.get_ident() == ui_thread)))
    with qtbot.waitSignals([worker.signals.result, worker.signals.finished], order="strict", timeout=5000):
        manager.start(worker)
    assert seen == [("progress", 0, True), ("progress", 1, True), ("progress", 2, True), ("result", True, True)]
    qtbot.waitUntil(lambda: manager.active == 0)


def test_exception_becomes_failure_signal(qtbot, manager):
    def broken():
        raise ValueError("/data/x.dcm: bad VR")

    failures: list[WorkerFailure] = []
    manager.worker_failed.connect(failures.append)
    worker = Worker(broken, name="Open file")
    errors: list[str] = []
    worker.signals.error.connect(errors.append)
    with qtbot.waitSignals([worker.signals.error, worker.signals.finished], timeout=5000):
        manager.start(worker)
    qtbot.waitUntil(lambda: len(failures) == 1)
    assert failures[0].exc_type == "ValueError"
    # A bare ValueError is a bug, not bad input: the same sentence the CLI prints, with the crash log's path.
    summary = failures[0].summary()
    assert summary.startswith("Open file: internal error: ValueError: /data/x.dcm: bad VR (details: ")
    assert "raise ValueError" in failures[0].traceback
    assert errors == [summary]


def test_user_error_keeps_its_own_message(qtbot, manager):
    from dicom_io.errors import CorruptFileError

    def broken():
        raise CorruptFileError("/data/x.dcm", "bad VR")

    failures: list[WorkerFailure] = []
    manager.worker_failed.connect(failures.append)
    worker = Worker(broken, name="Open file")
    with qtbot.waitSignal(worker.signals.finished, timeout=5000):
        manager.start(worker)
    qtbot.waitUntil(lambda: len(failures) == 1)
    assert failures[0].summary() == "Open file: /data/x.dcm: bad VR"


def test_cancel_is_cooperative(qtbot, manager):
    started = threading.Event()
    steps: list[int] = []

    def slow(cancel: threading.Event):
        started.set()
        for i in range(1000):
            if cancel.wait(0.01):
                raise Cancelled()
            steps.append(i)
        return "finished"

    results: list[object] = []
    worker = manager.run(slow, on_result=results.append)
    assert started.wait(5)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=5000):
        worker.cancel()
    assert results == []
    assert len(steps) < 1000


def test_callable_without_cancel_or_progress_gets_neither(qtbot, manager):
    worker = Worker(lambda a, b=2: a + b, 1, b=5)
    assert "cancel" not in worker.kwargs and "progress" not in worker.kwargs
    with qtbot.waitSignal(worker.signals.result, timeout=5000) as blocker:
        manager.start(worker)
    assert blocker.args == [6]


def test_context_model_input_and_model_holder(qtbot, app_context):
    """The context coalesces input changes, renders the input lazily and reports a failing model load."""
    from PIL import Image

    from ui.context import ModelInput, ModelState, image_key

    calls: list[int] = []

    def render():
        calls.append(1)
        return Image.new("L", (4, 3), 7)

    assert app_context.current_model_input() is None
    with qtbot.waitSignal(app_context.current_input_changed, timeout=2000):
        app_context.set_input_provider(lambda use_region=True: ModelInput(render, description="test", source=None))

    mi = app_context.current_model_input()
    assert calls == []  # nothing rendered until asked
    assert mi.image.mode == "RGB" and mi.image.size == (4, 3)
    assert mi.key == image_key(Image.new("RGB", (4, 3), (7, 7, 7)))
    assert calls == [1]

    def bad_loader():
        raise RuntimeError("no checkpoint in /models/x")

    with qtbot.waitSignal(app_context.model.status_changed, timeout=5000,
                          check_params_cb=lambda s: s.state is ModelState.FAILED):
        app_context.model.load(bad_loader)
    assert "no checkpoint" in app_context.model.status.text()


def test_failure_log_carries_no_message(qtbot, manager, caplog):
    """Error messages name files, and file names can name patients: the log gets the exception type only."""
    def broken():
        raise ValueError("/studies/DOE^JOHN/1.dcm: truncated")

    worker = Worker(broken, name="Open DOE^JOHN")
    with caplog.at_level("WARNING"), qtbot.waitSignal(worker.signals.finished, timeout=5000):
        manager.start(worker)
    assert "ValueError" in caplog.text
    assert "DOE" not in caplog.text
