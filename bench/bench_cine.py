"""Cine: frames painted per second against the file's frame rate, with and without rendering ahead.

pydicom's 30-frame, 30 fps colour clip plays in an offscreen ImageViewer for a few seconds; a render is made slower
on purpose (0 / 50 / 150 ms extra: a loaded machine, a big compressed clip) to show why the cine used to drop to
~6 fps: each tick waited for its own render. "ahead off" is that serial pipeline (no frames rendered ahead, no
cache), measured in the same run as "ahead on" (the current viewer), so the ratio is the result. Painted = pixmap
swaps (a late frame counts too), over the whole run, the first loop included.

Run: `./run.sh bench cine`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SECONDS = 9.0
TAIL = 3.0  # the steady rate: the last seconds, once the clip has been rendered ahead
EXTRA_MS = (0, 50, 150)


def _play(stack, extra_ms: float, ahead: bool) -> tuple[float, float, float]:
    from PySide6.QtCore import QEventLoop, QTimer

    import ui.viewer.image_viewer as iv

    slow_render = stack.render

    def render(frame=0, window=None):
        time.sleep(extra_ms / 1000.0)
        return slow_render(frame, window)

    old = iv.CINE_AHEAD, iv.CACHE_BYTES
    if not ahead:
        iv.CINE_AHEAD, iv.CACHE_BYTES = 0, 0
    stack.render = render
    try:
        viewer = iv.ImageViewer()
        viewer.resize(640, 480)
        viewer.show()
        viewer.set_stack(stack)
        loop = QEventLoop()
        while not viewer.is_current():
            QTimer.singleShot(20, loop.quit)
            loop.exec()
        painted: list[float] = []
        show = viewer._show

        def counted(qimage, key):
            painted.append(time.perf_counter())
            show(qimage, key)

        viewer._show = counted  # type: ignore[method-assign]
        start = time.perf_counter()
        viewer.start_cine()
        QTimer.singleShot(int(SECONDS * 1000), loop.quit)
        loop.exec()
        elapsed = time.perf_counter() - start
        viewer.shutdown()
        viewer.deleteLater()
        tail = sum(1 for t in painted if t >= start + elapsed - TAIL) / TAIL
        return len(painted) / elapsed, tail, 1000.0 / viewer.cine_frame_ms
    finally:
        iv.CINE_AHEAD, iv.CACHE_BYTES = old
        stack.render = slow_render


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pydicom
    from PySide6.QtWidgets import QApplication

    from medapp.documents import open_document

    app = QApplication.instance() or QApplication([])
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "examples_ybr_color.dcm"
    print(f"painted fps over {SECONDS:.0f} s (and over the last {TAIL:.0f} s)")
    print(f"{'extra render ms':>16} {'file fps':>9} {'ahead off':>14} {'ahead on':>14} {'on / file (last)':>17}")
    for extra in EXTRA_MS:
        off, off_tail, rate = _play(open_document(path), extra, ahead=False)
        on, on_tail, _ = _play(open_document(path), extra, ahead=True)
        print(f"{extra:>16} {rate:>9.1f} {off:>6.1f} ({off_tail:>5.1f}) {on:>6.1f} ({on_tail:>5.1f}) "
              f"{on / rate:>8.2f} ({on_tail / rate:.2f})", flush=True)
    del app


if __name__ == "__main__":
    main()
