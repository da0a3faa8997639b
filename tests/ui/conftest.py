"""Fixtures for the window tests: headless Qt, a per-test AppContext, small real inputs written on the fly."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture
def app_context(qtbot):
    """A fresh AppContext whose workers are shut down after the test (no thread outlives its test)."""
    from ui.context import AppContext

    ctx = AppContext()
    yield ctx
    assert ctx.workers.shutdown(5000), "workers still running after the test"
