"""dicom_io stays a leaf: no torch, no Qt, no other medapp package (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dicom_io

FORBIDDEN = ("torch", "transformers", "PySide6", "medapp", "models", "reports", "ui")


def test_no_forbidden_imports_in_source() -> None:
    offenders = []
    for path in Path(dicom_io.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders


def test_opening_and_rendering_loads_no_heavy_modules(pydicom_test_files: Path) -> None:
    code = (
        "import sys, dicom_io; o = dicom_io.open_path(sys.argv[1]); o.render_rgb(0); "
        "print(' '.join(m for m in ('torch', 'transformers', 'PySide6', 'medapp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(pydicom_test_files / "CT_small.dcm")],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == ""
