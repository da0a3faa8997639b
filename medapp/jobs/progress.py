"""Progress reports for long jobs, without any UI toolkit: the CLI turns them into tqdm bars, the window into a
progress dialog. The ETA is the simple rate over this run (items done / seconds so far), which is what a user
watching a batch expects; it is `None` until the first item is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback", "EtaClock"]


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    eta_s: float | None = None
    item: str = ""  # what was just finished (a display name, never written to the audit log)
    failed: int = 0
    skipped: int = 0  # already done before this run (resume); `done` and `total` count this run only

    @property
    def overall_done(self) -> int:
        """Done counting the earlier runs: a resumed batch of 10 with 4 left shows "8 of 10", not "4 / 6"."""
        return self.skipped + self.done

    @property
    def overall_total(self) -> int:
        return self.skipped + self.total


ProgressCallback = Callable[[Progress], None]


class EtaClock:
    """Measures the rate of the items processed in this run (resumed items do not count)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.start = time.monotonic()

    def eta(self, done: int) -> float | None:
        if done <= 0:
            return None
        elapsed = time.monotonic() - self.start
        return elapsed / done * max(0, self.total - done)
