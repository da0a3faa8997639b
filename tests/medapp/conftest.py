"""Fixtures for the app core: an isolated MEDAPP_HOME per test, and inputs built from real libraries."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def medapp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every per-user file (settings, session, audit) into a fresh folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAPP_HOME", str(home))
    return home
