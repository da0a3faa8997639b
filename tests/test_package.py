"""House rules that hold for the whole project."""

import subprocess
import sys


def test_import_medapp_is_light() -> None:
    code = (
        "import sys, medapp, medapp.cli, models, dicom_io, reports; "
        "print(' '.join(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing medapp pulled in: {out.stdout.strip()}"


def test_medapp_help_answers() -> None:
    out = subprocess.run([sys.executable, "-m", "medapp", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage: medapp" in out.stdout
