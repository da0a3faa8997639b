"""Fixtures shared by every test package: where the golden Dragonfly data lives, headless Qt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_k] = "1"

REPO = Path(__file__).resolve().parents[1]


def _golden_dir() -> Path:
    env = os.environ.get("MEDAPP_GOLDEN")
    return Path(env) if env else REPO.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """../shared/golden (reference data from the official Dragonfly code). Missing data is a failure, not a skip."""
    path = _golden_dir()
    assert (path / "README.md").is_file(), f"golden data not found at {path} (set MEDAPP_GOLDEN)"
    return path


@pytest.fixture(scope="session")
def v2_checkpoint(golden_dir: Path) -> Path:
    return golden_dir / "dragonfly-v2-tiny"


@pytest.fixture(scope="session")
def v1_checkpoint(golden_dir: Path) -> Path:
    return golden_dir / "dragonfly-v1-tiny"


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    """The DICOM files bundled inside the installed pydicom wheel (found at run time, not a copied list)."""
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"
