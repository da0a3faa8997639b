"""Start the desktop window: `main(argv)` is the `medapp.frontends` entry point behind `medapp gui`.

`main(["PATH", "--screenshot", "OUT.png"])` opens PATH, waits until the window has settled (files opened, image
rendered, slide tiles in, thumbnails drawn), saves the window as a PNG and exits — for documentation, bug reports
and tests, with no display needed (the offscreen platform is chosen when there is no display).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "make_context", "install_exception_hooks", "wait_until_settled", "exit_now"]

log = logging.getLogger(__name__)

SETTLE_POLL_MS = 50
SETTLE_TIMEOUT_MS = 120_000


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medapp gui", description="medapp desktop window")
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    parser.add_argument("--screenshot", type=Path, metavar="OUT.png")
    return parser.parse_args(list(argv) if argv is not None else sys.argv[1:])


def make_context(parent: Any = None) -> tuple[Any, list[str]]:
    """An AppContext with the user's settings, session and audit log; problems become messages, not a crash.

    A broken settings file must not lock the clinician out of the viewer: defaults are used and the message
    (which names the file and the key) is shown in the window.
    """
    from ui.context import AppContext

    problems: list[str] = []
    settings = session = audit = None
    try:
        from medapp.settings import Settings

        settings = Settings.load()
    except Exception as exc:  # noqa: BLE001 — UserError names the file; anything else is reported the same way
        problems.append(f"Settings not loaded, defaults used: {exc}")
        try:
            from medapp.settings import Settings

            settings = Settings()
        except Exception:  # noqa: BLE001
            settings = None
    try:
        from medapp.session import Session

        session = Session()
        if session.recovered_from is not None:
            problems.append(f"The previous session file was damaged and kept as {session.recovered_from}")
        if session.draft_recovered_from is not None:
            problems.append(f"The report draft was damaged and kept as {session.draft_recovered_from}")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Session not available (nothing will be autosaved): {exc}")
    try:
        from medapp.audit import AuditLog

        audit = AuditLog.from_settings(settings) if settings is not None else AuditLog()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Audit log not available: {exc}")
    return AppContext(settings, session, audit, parent), problems


def install_exception_hooks(window: Any) -> None:
    """Route uncaught exceptions (UI thread and plain threads) to the window's error dialog instead of killing it.

    PySide6 calls `sys.excepthook` for exceptions raised in slots; threads use `threading.excepthook`, which runs
    off the UI thread, so it hands the exception over through a queued signal.
    """
    from PySide6.QtCore import QObject, Signal

    class _Relay(QObject):
        raised = Signal(object)

    relay = _Relay(window)
    relay.raised.connect(window.show_error)
    window._exception_relay = relay  # keep it alive with the window
    previous = sys.excepthook

    def hook(exc_type, exc, tb):  # noqa: ANN001
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        log.error("uncaught %s (details in the error dialog)", exc_type.__name__)  # messages may name patients
        log.debug("uncaught exception", exc_info=(exc_type, exc, tb))
        from ui.workers import WorkerFailure

        relay.raised.emit(WorkerFailure.from_exception("Unexpected error", exc.with_traceback(tb)))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        from ui.workers import WorkerFailure

        log.error("uncaught %s in a background thread", args.exc_type.__name__)
        relay.raised.emit(WorkerFailure.from_exception("Background error", args.exc_value))

    sys.excepthook = hook
    threading.excepthook = thread_hook


def wait_until_settled(window: Any, done: Any, timeout_ms: int = SETTLE_TIMEOUT_MS) -> None:
    """Call `done(settled: bool)` once the window has had no work for two polls in a row (or at the timeout)."""
    from PySide6.QtCore import QTimer

    state = {"quiet": 0, "elapsed": 0}
    timer = QTimer(window)
    timer.setInterval(SETTLE_POLL_MS)

    def poll() -> None:
        state["elapsed"] += SETTLE_POLL_MS
        if window.is_settled():
            state["quiet"] += 1
        else:
            state["quiet"] = 0
        if state["quiet"] >= 3 or state["elapsed"] >= timeout_ms:
            timer.stop()
            done(state["quiet"] >= 3)

    timer.timeout.connect(poll)
    timer.start()


def exit_now(code: int) -> NoReturn:
    """End the process now that the window is closed and its work saved (closeEvent waited for the workers and the
    last session write; audit entries are written as they happen).

    Python's own shutdown would then spend seconds tearing down what torch and transformers loaded, with nothing
    left to do: measured from the window closing to the process gone, 0.3-0.6 s without a model but 2.8-3.7 s with
    the tiny test model loaded on CPU (a bare `import torch` alone costs 1.3 s). The atexit handlers still run —
    logging, temporary folders, Ray's shutdown of a local cluster — then the process ends without module teardown.
    """
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 — a closed pipe must not keep the process alive
                pass
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the window; returns its exit code when the caller already had a QApplication (tests), otherwise ends the
    process through `exit_now` once the window is closed."""
    args = _parse(argv)
    no_display = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    )
    if no_display and args.screenshot is not None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    elif no_display:
        # Qt would abort the process with a platform-plugin message; say what to do instead.
        print("medapp: no display found (DISPLAY / WAYLAND_DISPLAY are not set). Run medapp in a desktop session, "
              "or use --screenshot OUT.png (renders offscreen) or the command-line subcommands (medapp --help).",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow

    owns_process = QApplication.instance() is None  # not a test or a host application that made its own
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "medapp"])
    app.setApplicationName("medapp")
    context, problems = make_context()
    window = MainWindow(context)
    context.setParent(window)
    window.show()
    if args.screenshot is None:
        install_exception_hooks(window)
    for problem in problems:
        window.show_error(problem)
    failures: list[str] = []
    window.open_failed.connect(lambda failure: failures.append(failure.summary()))
    if args.paths:
        window.open_paths(args.paths)

    if args.screenshot is not None:
        out = args.screenshot
        result = {"code": 0}

        def shoot(settled: bool) -> None:
            for box in list(window.error_boxes):
                box.hide()  # the picture shows the window, the error goes to stderr
            out.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(out)):
                print(f"medapp: could not write the screenshot {out}", file=sys.stderr)
                result["code"] = 1
            elif not settled:
                print(f"medapp: the window was still busy after {SETTLE_TIMEOUT_MS // 1000} s; saved anyway",
                      file=sys.stderr)
            for message in failures:
                print(f"medapp: {message}", file=sys.stderr)
            if failures:
                result["code"] = 2
            window.close()
            app.quit()

        wait_until_settled(window, shoot)
        app.exec()
        code = result["code"]
    else:
        code = int(app.exec())
    if owns_process:
        exit_now(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
