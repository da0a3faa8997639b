"""The arrows of the house and the code's hygiene are kept by tools, not by convention.

`lint-imports` checks the contracts in pyproject.toml (Qt only in ui; ui talks to medapp only; models, dicom_io and
reports independent and never importing medapp or ui; no torch in dicom_io or reports), `ruff` the lint rules, and
`mypy` the types of models, dicom_io, reports and medapp. Each runs as the installed tool on the whole tree, so a
violation anywhere fails `./run.sh test` with the tool's own report in the assertion message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def test_import_contracts_hold() -> None:
    out = _run(str(BIN / "lint-imports"), "--no-cache")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_ruff_is_clean() -> None:
    out = _run(str(BIN / "ruff"), "check", "--no-cache", "medapp", "models", "dicom_io", "reports", "ui", "tests", "bench")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    out = _run(sys.executable, "-m", "mypy", "--cache-dir", os.devnull)
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
